"""Free space, checked before each step: a run that cannot fit stops before it writes.

Before a step is computed the runner estimates the bytes it will write and compares them with
the free space of the checkpoint directory's file system (``shutil.disk_usage``). The estimate
(:func:`estimate_bytes`) comes from the input's size for the first step, and from the measured
sizes of the checkpoints the earlier steps wrote for the later ones; the factors are those
measured on generated data (docs/CHECKPOINTS.md, "Footprint"), rounded up. A step that would not
fit stops the run with one line (needed, free, what to do), exit 3; the checkpoints already
written are kept and valid.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

from amlgraph.errors import CheckpointError
from amlgraph.runner._context import fits_decoded
from amlgraph.steps.graph_created import whole_graph_bytes

#: Bytes written per byte of the Trans files by data_loaded (reader batches, coded batches,
#: index; the reader batches are deleted when the step is saved, but written first); measured
#: 0.56 on hi-small.
DATA_LOADED_PER_INPUT = 0.65
#: Bytes of a node_features chunk per account and view (zstd Parquet, later views XOR-coded;
#: measured 42 at 1M hi-small rows, up to ~100 where accounts have many transactions).
NODE_FEATURES_PER_ACCOUNT_VIEW = 120
#: edge_features per byte of the coded batches (measured 1.04).
EDGE_FEATURES_PER_CODED = 1.15
#: imbalanced per byte of edge_features (synthetic rows; measured 0.08 at the default ratio).
IMBALANCED_PER_EDGE_FEATURES = 0.15
#: graph_created links to the checkpoints its large arrays are read from (steps.graph_created):
#: it writes the node labels and a copy of the synthetic rows, about imbalanced's size. A graph
#: too large to assemble on every load is written whole and plain instead (28.3 GB on hi-large):
#: then its arrays' bytes (``steps.graph_created.whole_graph_bytes``) come on top, times this
#: margin (hi-large: 28.30 GB written, 27.47 GB from the arrays' shapes, 1.03).
WHOLE_GRAPH_MARGIN = 1.05
#: A compressed input decodes to about this many times its size.
COMPRESSED_INPUT_FACTOR = 5
_SMALL = 64 << 10  # a step that writes values only (normalized, weights)
#: Set to 0 to skip the check (a file system whose free space is not what it reports).
ENV = "AMLGRAPH_SPACE_CHECK"


def _input_bytes(trans_files: list[Path]) -> int:
    total = 0
    for path in trans_files:
        size = path.stat().st_size
        total += size * COMPRESSED_INPUT_FACTOR if path.suffix in (".gz", ".zst") else size
    return total


def _measured(store: Any, step: str) -> int | None:
    """Bytes the checkpoints of ``step`` (its own and its chunks') hold now, None when absent."""
    names = [n for n in store._candidates() if n == step or n.startswith(step + "_")]
    if step not in names:
        return None
    return sum(store.size_bytes(n) for n in names)


def _coded_bytes(store: Any) -> int | None:
    names = [n for n in store._candidates() if n.startswith("data_loaded_chunk_")]
    return sum(store.size_bytes(n) for n in names) or None


def estimate_bytes(run: Any, step: str) -> int:
    """The bytes ``step`` is expected to write in ``run``'s store (an upper estimate)."""
    store = run.store
    trans = _input_bytes(list(run.inputs.trans_files))
    coded = _coded_bytes(store) or trans * 0.25
    edges = _measured(store, "edge_features") or coded * EDGE_FEATURES_PER_CODED
    if step == "data_loaded":
        return int(trans * DATA_LOADED_PER_INPUT)
    if step == "graph_created":
        linked = (_measured(store, "imbalanced") or 0) + _SMALL
        whole = _whole_graph_bytes(run)
        return int(linked + whole * WHOLE_GRAPH_MARGIN if whole is not None and not fits_decoded(whole) else linked)
    if step == "node_features":
        nodes = _measured(store, "node_features")
        if nodes is None:
            accounts = _accounts(run)
            nodes = accounts * _views(run) * NODE_FEATURES_PER_ACCOUNT_VIEW if accounts else trans * 0.4
        return int(nodes)
    if step == "edge_features":
        return int(coded * EDGE_FEATURES_PER_CODED)
    if step == "imbalanced":
        return int(edges * IMBALANCED_PER_EDGE_FEATURES)
    return _SMALL


def _accounts(run: Any) -> int | None:
    data = run.loaded.get("data_loaded")
    return (data.manifest.get("metadata") or {}).get("num_accounts") if data is not None else None


def _views(run: Any) -> int:
    """Node-feature views a run computes: one from all rows or from training rows, else three."""
    return 1 if run.cfg.step_params("node_features").get("node_features_from") in ("all", "train") else 3


def _whole_graph_bytes(run: Any) -> int | None:
    """The bytes of the graph's arrays written whole, from the loaded data_loaded and normalized
    checkpoints (None when either is not loaded)."""
    data, norm = run.loaded.get("data_loaded"), run.loaded.get("normalized")
    accounts = _accounts(run)
    if data is None or norm is None or accounts is None:
        return None
    if "summary" not in data.values or not {"node_columns", "edge_columns", "node_views"} <= set(norm.values):
        return None
    edges = data.value("summary")["rows"]
    node_cols, edge_cols = len(norm.value("node_columns")), len(norm.value("edge_columns"))
    # the views normalized scaled: the node matrices the step counts
    return whole_graph_bytes(int(edges), edge_cols, int(accounts), node_cols * len(norm.value("node_views")))


def _size(n: float) -> str:
    """Bytes as every command prints them (decimal kB, MB, GB)."""
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:,.1f} {unit}"
    return f"{int(n)} B"


def check_space(run: Any, step: str) -> None:
    """Stop before ``step`` when its estimated output does not fit the free space.

    Raises:
        CheckpointError: one line: needed, free, and what to do (exit 3).
    """
    root = getattr(run.store, "root", None)
    # An object store (a URL root) has no free-space figure to check against.
    if root is None or isinstance(root, str) or os.environ.get(ENV, "1") == "0":
        return
    needed = estimate_bytes(run, step)
    # What this step replaces is freed only after its new checkpoint commits: not counted.
    free = shutil.disk_usage(root).free
    if needed <= free:
        return
    raise CheckpointError(
        f"not enough free space for step {step} in {root}: it needs about {_size(needed)}, the file "
        f"system has {_size(free)} free; free space there, give another --checkpoint-dir, or keep "
        f"less with --compact (after a finished run) / `amlgraph checkpoints clean {root} --compact`")
