"""``nodes.parquet`` and ``edges.parquet``: the graph as two flat tables for pandas and Polars."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from amlgraph.errors import ConfigError
from amlgraph.export._io import output_file

if TYPE_CHECKING:
    from amlgraph.graph import TransactionGraph

NODE_KEYS = ("node_id", "bank", "account", "node_y")
EDGE_KEYS = ("edge_row", "src", "dst", "timestamp", "label", "split")


def _features(names: list[str], matrix: np.ndarray, reserved: tuple[str, ...], what: str) -> dict:
    clash = sorted(set(names) & set(reserved))
    if clash:
        raise ConfigError(f"{what} feature names {clash} collide with the columns {list(reserved)}")
    return {name: pl.Series(name, matrix[:, j], dtype=pl.Float32) for j, name in enumerate(names)}


def node_table(graph: "TransactionGraph") -> pl.DataFrame:
    """One row per node: node_id, bank, account, the F node features (Float32), node_y (Int8)."""
    return graph.nodes.select("node_id", "bank", "account").with_columns(
        **_features(graph.node_feature_names, graph.x, NODE_KEYS, "node"),
        node_y=pl.Series(graph.node_y, dtype=pl.Int8),
    )


def edge_table(graph: "TransactionGraph") -> pl.DataFrame:
    """One row per edge, in the graph's edge order: edge_row, src, dst, timestamp (Int64), the D
    edge features (Float32), label and split (Int8)."""
    return pl.DataFrame({
        "edge_row": graph.edge_row,
        "src": graph.edge_index[0],
        "dst": graph.edge_index[1],
        "timestamp": graph.timestamp,
        **_features(graph.edge_feature_names, graph.edge_attr, EDGE_KEYS, "edge"),
        "label": pl.Series(graph.y, dtype=pl.Int8),
        "split": pl.Series(graph.split, dtype=pl.Int8),
    })


def write_parquet(graph: "TransactionGraph", out_dir: Path) -> list[Path]:
    """Write ``nodes.parquet`` and ``edges.parquet`` (zstd) into ``out_dir``, an existing directory
    without them (``export_graph`` gives a staging directory and commits the pair).

    Returns:
        The two written paths.
    """
    paths = []
    for name, table in (("nodes", node_table(graph)), ("edges", edge_table(graph))):
        path = Path(out_dir) / f"{name}.parquet"
        with output_file(path) as fh:
            table.write_parquet(fh, compression="zstd")
        paths.append(path)
    return paths
