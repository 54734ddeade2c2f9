"""Compaction: after a finished run, keep what the graph, its exports, the report and a no-op
rerun need; drop what only an interrupted run or a changed parameter would reuse.

Kept: ``graph_created``, written whole first (every array in it; the pipeline's graph is linked
to the checkpoints it is read from, ``steps.graph_created``), ``weights`` and
``imbalanced`` (small; the report shows them), and ``data_loaded`` rewritten without its list of
parts and with a ``compacted`` record (the run's configuration and the data set's name stay, so
that ``status`` can judge staleness and a run of another data set is still refused). Everything
else (reader batches, coded batches, the account index, feature chunks, ``normalized``) is
removed.

A compacted ``data_loaded`` is never valid for the plan (:func:`compacted_reason`): a rerun with
the same parameters loads the graph and computes nothing; a changed parameter makes the graph
stale and recomputes from the input files, the log saying why.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from amlgraph.errors import CheckpointError
from amlgraph.graph import GRAPH_STEP

#: Checkpoints a compaction keeps besides ``data_loaded`` (rewritten).
KEPT = (GRAPH_STEP, "weights", "imbalanced")
#: The value a compacted ``data_loaded`` carries.
COMPACTED = "compacted"


@dataclass
class Compaction:
    """What :func:`compact_checkpoints` did."""

    removed: list[str]
    freed_bytes: int
    kept_bytes: int


def compacted_reason(ckpt: Any) -> str | None:
    """Why a loaded checkpoint cannot serve a run (its chunks were removed), or None."""
    if ckpt is not None and COMPACTED in ckpt.values:
        return ("compacted (checkpoints clean --compact removed the checkpoints a changed parameter "
                "would reuse): recomputing from the input files")
    return None


def compact_checkpoints(checkpoint_dir: str | Path | None = None, *, store: Any = None,
                        dry_run: bool = False) -> Compaction:
    """Compact the checkpoint directory of a finished run (see the module docstring).

    Args:
        checkpoint_dir: the run's checkpoint directory (or give ``store``).
        store: an open store instead of a directory.
        dry_run: say what would be removed, remove nothing.

    Returns:
        What was removed, the bytes freed and the bytes kept.

    Raises:
        CheckpointError: no finished run (``graph_created`` missing or damaged, or ``data_loaded``
            missing). LockedError: a run holds the directory.
    """
    if store is None:
        from amlgraph.store import CheckpointStore

        store = CheckpointStore(checkpoint_dir, create=False, verify="full")
    root = getattr(store, "root", "(in memory)")
    with store.lock():
        graph = store.load(GRAPH_STEP, verify="full")
        data = store.load("data_loaded", verify="full")
        if graph is None or data is None:
            missing = GRAPH_STEP if graph is None else "data_loaded"
            raise CheckpointError(f"{root}: nothing to compact: {missing} is missing or damaged (no finished "
                                  f"run); finish the run first: amlgraph run DATA --checkpoint-dir {root}")
        doomed = [n for n in _all_names(store) if n not in (*KEPT, "data_loaded")]
        freed = sum(store.size_bytes(n) for n in doomed)
        if not dry_run:
            if "links" in graph.values:
                _write_whole(store, graph)
            if COMPACTED not in data.values:
                _rewrite_compacted(store, data, doomed)
            for name in doomed:
                store.delete(name)
        kept = sum(store.size_bytes(n) for n in _all_names(store) if n not in doomed)
    return Compaction(removed=doomed, freed_bytes=freed, kept_bytes=kept)


def _all_names(store: Any) -> list[str]:
    """Every checkpoint in the store, damaged ones included."""
    return sorted(store._candidates())


def _write_whole(store: Any, graph: Any) -> None:
    """Save the linked graph again under its key with every array in it (read from the
    checkpoints it links to, which are still there): from here on it needs none of them."""
    from amlgraph.runner._graph import graph_of

    from amlgraph.runner._context import decodable

    whole = graph_of(store, graph)
    plain = not decodable(whole.to_payload(coded=False)[1])  # too large to decode: memory-mapped
    tables, arrays, values = whole.to_payload(coded=not plain)
    m = graph.manifest
    store.save(GRAPH_STEP, step=m["step"], key=m["key"], chunk=m.get("chunk"), tables=tables, arrays=arrays,
               values=values, metadata=dict(m.get("metadata") or {}), key_components=m.get("key_components"),
               compress=not plain)


def _rewrite_compacted(store: Any, data: Any, removed: list[str]) -> None:
    """Save ``data_loaded`` again under its key, its values without ``parts`` and with the
    ``compacted`` record. It is written before anything is removed: a compaction interrupted
    midway leaves a ``data_loaded`` that no run trusts, never one that lists missing parts."""
    from amlgraph.store._base import now_iso

    values = {v: data.value(v) for v in data.values if v != "parts"}
    values[COMPACTED] = {"at": now_iso(), "removed": removed}
    m = data.manifest
    store.save("data_loaded", step=m["step"], key=m["key"], chunk=m.get("chunk"),
               tables={t: data.table(t) for t in data.tables},
               arrays={a: data.array(a, mmap=False) for a in data.arrays}, values=values,
               metadata=dict(m.get("metadata") or {}), key_components=m.get("key_components"))
