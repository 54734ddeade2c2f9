"""Helpers shared by the pipeline tests: content digests of a finished run's outputs."""
from __future__ import annotations

import hashlib
import sys

import numpy as np
import polars as pl

GRAPH_ARRAYS = ("edge_index", "edge_row", "timestamp", "x", "edge_attr", "y", "node_y", "split",
                "synthetic_edge_attr", "synthetic_y")


def digest_array(a) -> str:
    a = np.ascontiguousarray(np.asarray(a))
    return hashlib.sha256(str((a.dtype.str, a.shape)).encode() + a.tobytes()).hexdigest()


def digest_table(df: pl.DataFrame) -> str:
    h = hashlib.sha256(str(df.schema).encode())
    for col in df.columns:
        s = df[col]
        h.update(col.encode())
        h.update(s.to_numpy().tobytes() if s.dtype.is_numeric() else "\x00".join(map(str, s.to_list())).encode())
    return h.hexdigest()


def graph_digest(graph) -> dict[str, str]:
    """sha256 of every array and table of a TransactionGraph, plus its names and weights."""
    out = {name: digest_array(getattr(graph, name)) for name in GRAPH_ARRAYS
           if getattr(graph, name) is not None}
    out["nodes"] = digest_table(graph.nodes)
    out["raw"] = digest_table(graph.raw)
    out["names"] = repr((graph.node_feature_names, graph.edge_feature_names))
    out["class_weights"] = repr(sorted(graph.class_weights.items()))
    return out


def amlgraph_cmd(*args: str) -> list[str]:
    """The real command line, as a subprocess would run it."""
    return [sys.executable, "-m", "amlgraph", *args]
