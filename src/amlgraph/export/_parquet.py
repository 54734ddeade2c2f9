"""The graph as flat Parquet tables for pandas and Polars: one node table per split's view of the
node features (``nodes_train.parquet``, ``nodes_val.parquet``, ``nodes_test.parquet``) and
``edges.parquet``.

By default the features are the graph's, normalised (Float32). With :class:`Unscaled` tables
(read from a run's checkpoints by ``amlgraph.runner._unscaled.load_unscaled``) they are the
features as defined, before any log or scaling, in their own types, and the edges carry the raw
amounts, currencies and payment formats (names, not codes) besides.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from amlgraph.errors import ConfigError
from amlgraph.export._io import output_file

if TYPE_CHECKING:
    from amlgraph.graph import TransactionGraph

VIEWS = ("train", "val", "test")
FILES = tuple(f"nodes_{view}.parquet" for view in VIEWS) + ("edges.parquet",)
NODE_KEYS = ("node_id", "bank", "account", "node_y")
#: The raw columns of an unscaled export, after the edge features: (column, raw column, vocabulary).
RAW = (("raw_amount_paid", "amount_paid", None),
       ("raw_payment_currency", "payment_currency", "currencies"),
       ("raw_amount_received", "amount_received", None),
       ("raw_receiving_currency", "receiving_currency", "currencies"),
       ("raw_payment_format", "payment_format", "payment_formats"))
EDGE_KEYS = ("edge_row", "src", "dst", "timestamp", "y", "split") + tuple(c for c, _, _ in RAW)


@dataclass
class Unscaled:
    """The features of a graph before any log or scaling, as its run computed them.

    Attributes:
        nodes: ``{"train": frame, "val": frame, "test": frame}``: one row per node in node-id
            order, ``node_id`` then the node features (named as ``graph.node_feature_names``) of
            that split's view; the three may be one frame where the features have one view.
        edges: one row per edge in the graph's edge order: ``row`` (the Trans file row, equal to
            ``graph.edge_row``) then the edge features (named as ``graph.edge_feature_names``).
    """

    nodes: dict[str, pl.DataFrame]
    edges: pl.DataFrame


def _check_names(names: list[str], reserved: tuple[str, ...], what: str) -> None:
    clash = sorted(set(names) & set(reserved))
    if clash:
        raise ConfigError(f"{what} feature names {clash} collide with the columns {list(reserved)}")


def _features(names: list[str], matrix: np.ndarray, reserved: tuple[str, ...], what: str) -> dict:
    _check_names(names, reserved, what)
    return {name: pl.Series(name, matrix[:, j], dtype=pl.Float32) for j, name in enumerate(names)}


def check_unscaled(graph: "TransactionGraph", unscaled: Unscaled) -> None:
    """Refuse unscaled tables that do not belong to ``graph`` (shape, names, order).

    Raises:
        ConfigError: naming what differs.
    """
    for view in VIEWS:
        frame = unscaled.nodes.get(view)
        if frame is None:
            raise ConfigError(f"unscaled node features lack the {view} view")
        if frame.columns != ["node_id", *graph.node_feature_names]:
            raise ConfigError(f"unscaled node features ({view}) have the columns {frame.columns}, "
                              f"not node_id and the graph's {graph.node_feature_names}")
        if not np.array_equal(frame["node_id"].to_numpy(), np.arange(graph.num_nodes)):
            raise ConfigError(f"unscaled node features ({view}) are not one row per node in node-id order")
    edges = unscaled.edges
    if edges.columns != ["row", *graph.edge_feature_names]:
        raise ConfigError(f"unscaled edge features have the columns {edges.columns}, not row and the "
                          f"graph's {graph.edge_feature_names}")
    if not np.array_equal(edges["row"].to_numpy(), graph.edge_row):
        raise ConfigError("unscaled edge features are not in the graph's edge order (their rows differ "
                          "from graph.edge_row)")


def node_table(graph: "TransactionGraph", view: str = "test",
               unscaled: Unscaled | None = None) -> pl.DataFrame:
    """One row per node: node_id, bank, account, the F node features of ``view`` (Float32, or as
    defined when ``unscaled``), node_y (Int8)."""
    _check_names(graph.node_feature_names, NODE_KEYS, "node")
    if unscaled is None:
        features = _features(graph.node_feature_names, graph.node_features_of(view), NODE_KEYS, "node")
    else:
        frame = unscaled.nodes[view]
        features = {name: frame[name] for name in graph.node_feature_names}
    return graph.nodes.select("node_id", "bank", "account").with_columns(
        **features, node_y=pl.Series(graph.node_y, dtype=pl.Int8))


def edge_table(graph: "TransactionGraph", unscaled: Unscaled | None = None) -> pl.DataFrame:
    """One row per edge, in the graph's edge order: edge_row, src, dst, timestamp (Int64), the D
    edge features (Float32, or as defined when ``unscaled``, followed by the raw columns of
    :data:`RAW`), y and split (Int8)."""
    _check_names(graph.edge_feature_names, EDGE_KEYS, "edge")
    if unscaled is None:
        features = _features(graph.edge_feature_names, graph.edge_attr, EDGE_KEYS, "edge")
    else:
        features = {name: unscaled.edges[name] for name in graph.edge_feature_names}
        for column, raw, vocab in RAW:
            values = graph.raw[raw]
            if vocab is not None:
                names = pl.Series(list(graph.vocab[vocab]), dtype=pl.String)
                values = names.gather(values.cast(pl.Int64))
            features[column] = values.alias(column)
    return pl.DataFrame({
        "edge_row": graph.edge_row,
        "src": graph.edge_index[0],
        "dst": graph.edge_index[1],
        "timestamp": graph.timestamp,
        **features,
        "y": pl.Series(graph.y, dtype=pl.Int8),
        "split": pl.Series(graph.split, dtype=pl.Int8),
    })


def write_parquet(graph: "TransactionGraph", out_dir: Path, *,
                  unscaled: Unscaled | None = None) -> list[Path]:
    """Write ``nodes_train.parquet``, ``nodes_val.parquet``, ``nodes_test.parquet`` and
    ``edges.parquet`` (zstd) into ``out_dir``, an existing directory without them
    (``export_graph`` gives a staging directory and commits the set).

    Each file's Parquet metadata records ``amlgraph.features`` (``normalised`` or ``unscaled``)
    and, for a node file, ``amlgraph.view``.

    Returns:
        The written paths, in the order of ``FILES``.

    Raises:
        ConfigError: feature names that collide with the fixed columns, or ``unscaled`` tables of
            another graph.
    """
    if unscaled is not None:
        check_unscaled(graph, unscaled)
    kind = "normalised" if unscaled is None else "unscaled"
    paths = []
    tables = [(f"nodes_{view}.parquet", lambda view=view: node_table(graph, view, unscaled),
               {"amlgraph.view": view}) for view in VIEWS]
    tables.append(("edges.parquet", lambda: edge_table(graph, unscaled), {}))
    for name, table, meta in tables:
        path = Path(out_dir) / name
        frame = table()  # one table in memory at a time
        with output_file(path) as fh:
            frame.write_parquet(fh, compression="zstd", metadata={"amlgraph.features": kind, **meta})
        del frame
        paths.append(path)
    return paths
