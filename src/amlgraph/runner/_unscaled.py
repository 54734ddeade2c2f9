"""The features of a finished run before any log or scaling, read from its checkpoints.

The graph (``graph_created``) holds the normalised features only. The values as defined are in
the chunks the ``normalized`` step read: the ``node_features`` chunks (table ``features_train``
and the XOR-coded ``xor_val``, ``xor_test`` (``steps._view_codec``), or ``features_all`` where the
features have one view) and
the ``edge_features`` chunks (table ``features``, in the graph's edge order). The step
checkpoints list those chunks (value ``parts``: name and key) and ``node_features`` its views
(value ``views``).

Only the checkpoints the graph was built from are read: the keys recorded in the graph's
manifest (``key_components.inputs``) lead to the ``edge_features`` and ``normalized`` checkpoints,
and ``normalized``'s to ``node_features``. A rerun with other parameters that replaced one of
them, or a chunk that is missing or damaged, is refused with a CheckpointError.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from amlgraph.errors import CheckpointError
from amlgraph.graph import GRAPH_STEP, TransactionGraph
from amlgraph.runner._compact import compacted_reason
from amlgraph.store import CheckpointStore, is_url, open_store
from amlgraph.steps._view_codec import decode_views

SPLIT_VIEWS = ("train", "val", "test")


def _rerun_hint(path: Path, step: str) -> str:
    return (f"rerun `amlgraph run DATA --checkpoint-dir {path} --resume-from {step}` to recompute "
            f"it, then export again")


def _inputs(store: CheckpointStore, path: Path, name: str) -> dict[str, str]:
    manifest = store.manifest(name)
    inputs = ((manifest or {}).get("key_components") or {}).get("inputs") or {}
    if not inputs:
        raise CheckpointError(f"{path}: the {name!r} checkpoint does not record the checkpoints it was "
                              f"built from, so its unscaled features cannot be found; "
                              f"{_rerun_hint(path, 'node_features')}")
    return inputs


def _step(store: CheckpointStore, path: Path, name: str, key: str | None) -> Any:
    ckpt = store.load(name, key=key) if key else None
    if ckpt is None:
        reason = store.check(name, key)[1] if key else "not recorded"
        raise CheckpointError(f"{path}: the {name!r} checkpoint the graph was built from is not usable "
                              f"({reason}); {_rerun_hint(path, name)}")
    return ckpt


def _scan(store: CheckpointStore, path: Path, step: Any, table: str) -> pl.DataFrame:
    """Table ``table`` of every chunk a step checkpoint lists, in order, as one frame."""
    files = []
    for part in step.value("parts"):
        ckpt = store.load(part["name"], key=part["key"])
        if ckpt is None:
            reason = store.check(part["name"], part["key"])[1]
            raise CheckpointError(f"{path}: chunk {part['name']!r} of {step.name!r} is not usable "
                                  f"({reason}); {_rerun_hint(path, step.name)}")
        files.append(str(ckpt.table_path(table)))
    return pl.read_parquet(files) if files else pl.DataFrame()


class _Listed:
    """Parts recorded by another checkpoint, read like a step checkpoint's by :func:`_scan`."""

    def __init__(self, parts: list[dict], name: str):
        self.parts, self.name = parts, name

    def value(self, name: str) -> list[dict]:
        return self.parts


def load_unscaled(checkpoint_dir: str | Path,
                  graph: TransactionGraph) -> tuple[dict[str, pl.DataFrame], pl.DataFrame]:
    """The node and edge features of ``graph`` as defined, before any log or scaling.

    Args:
        checkpoint_dir: the run's checkpoint directory.
        graph: its graph (``load_graph(checkpoint_dir)``), whose node and edge order the tables
            follow.

    Returns:
        ``(nodes, edges)``: ``nodes`` maps ``train``, ``val`` and ``test`` to one frame each
        (``node_id`` then the node features, one row per node in node-id order; one frame for all
        three where the run computed one view), ``edges`` is one frame (``row`` then the edge
        features, one row per edge in the graph's edge order). Counts are Int64, flags Int8, codes
        Int16/Int32, the rest Float64, as the steps computed them.

    Raises:
        CheckpointError: a checkpoint or chunk the graph was built from is missing, damaged or
            replaced, or its tables do not line up with the graph (rows, node ids, names).
    """
    path = checkpoint_dir if is_url(checkpoint_dir) else Path(checkpoint_dir)
    store = open_store(path, create=False)
    if compacted_reason(store.load("data_loaded", verify="none")):
        raise CheckpointError(f"{path}: its checkpoints were compacted (checkpoints clean --compact), which "
                              "removed the feature checkpoints the unscaled features are read from; rerun "
                              f"`amlgraph run DATA --checkpoint-dir {path} --fresh` (without --compact), then "
                              "export again")
    graph_inputs = _inputs(store, path, GRAPH_STEP)
    edge_step = _step(store, path, "edge_features", graph_inputs.get("edge_features"))
    # normalized is the way to node_features (its recorded inputs name the one it scaled) and
    # to the pattern_features chunks it paired with the edge chunks, when the run had them.
    norm_step = _step(store, path, "normalized", graph_inputs.get("normalized"))
    node_step = _step(store, path, "node_features", _inputs(store, path, "normalized").get("node_features"))

    views = list(node_step.value("views")) if "views" in node_step.values else ["all"]
    if (views == list(SPLIT_VIEWS)) != graph.has_split_views:
        raise CheckpointError(f"{path}: the node_features checkpoint has the views {views}, which does "
                              f"not match the graph; {_rerun_hint(path, 'node_features')}")
    frames = dict(decode_views(lambda table: _scan(store, path, node_step, table), views))
    nodes = frames if views == list(SPLIT_VIEWS) else dict.fromkeys(SPLIT_VIEWS, frames[views[0]])
    for view, frame in nodes.items():
        if frame.columns != ["node_id", *graph.node_feature_names] or \
                not np.array_equal(frame["node_id"].to_numpy(), np.arange(graph.num_nodes)):
            raise CheckpointError(f"{path}: the node_features chunks ({view}) do not line up with the "
                                  f"graph's nodes and feature names; {_rerun_hint(path, 'node_features')}")

    edges = _scan(store, path, edge_step, "features")
    if "pattern_parts" in norm_step.values:
        patterns = _scan(store, path, _Listed(norm_step.value("pattern_parts"), "pattern_features"), "features")
        if not patterns["row"].equals(edges["row"]):
            raise CheckpointError(f"{path}: the pattern_features chunks do not hold the edge_features rows "
                                  f"in their order; {_rerun_hint(path, 'edge_features')}")
        edges = pl.concat([edges, patterns.select(c for c in patterns.columns if c.startswith("pattern_"))],
                          how="horizontal")
    missing = [c for c in ["row", *graph.edge_feature_names] if c not in edges.columns]
    if missing:
        raise CheckpointError(f"{path}: the edge_features chunks lack the columns {missing} of the graph; "
                              f"{_rerun_hint(path, 'edge_features')}")
    edges = edges.select(["row", *graph.edge_feature_names])
    if not np.array_equal(edges["row"].to_numpy(), graph.edge_row):
        raise CheckpointError(f"{path}: the edge_features chunks are not in the graph's edge order "
                              f"(their rows differ from edge_row); {_rerun_hint(path, 'edge_features')}")
    return nodes, edges
