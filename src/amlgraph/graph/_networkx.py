"""The graph as a NetworkX MultiDiGraph (every parallel transaction kept).

NetworkX holds one Python object per node and per edge, so this conversion is the one place
where work grows with Python objects per edge; ``limit`` keeps a user from building a 5-million
edge graph by accident (about 1 kB of memory per edge). Writing GraphML is ``amlgraph.export``'s.
"""
from __future__ import annotations

from typing import Any

import numpy as np

from amlgraph.errors import ConfigError

# ``graph`` below is a TransactionGraph; not imported here, since its methods import this module.
NODE_ATTRS = ("bank", "account", "node_y")
EDGE_ATTRS = ("timestamp", "y", "split")


def check_names(names: list[str], reserved: tuple[str, ...], what: str) -> None:
    """Feature names must be distinct and must not shadow the fixed attributes."""
    clash = sorted(set(names) & set(reserved))
    if clash:
        raise ConfigError(f"{what} feature names {clash} collide with the attributes {list(reserved)}")
    if len(set(names)) != len(names):
        raise ConfigError(f"{what} feature names must be distinct (got {names})")


DEFAULT_LIMIT = 2_000_000


def check_size(graph: Any, *, force: bool, limit: int) -> None:
    """Refuse graphs above ``limit`` edges unless ``force``.

    Raises:
        ConfigError: naming the size, the limit and how to force it.
    """
    if graph.num_edges > limit and not force:
        raise ConfigError(
            f"the graph has {graph.num_edges:,} edges, above the NetworkX limit of {limit:,} "
            f"(about {graph.num_edges // 1_000_000 + 1} GB in memory); pass force=True "
            "(`amlgraph export ... --format networkx --force`) to build it anyway, or use "
            "--format parquet")


def _columns(names: list[str], matrix: np.ndarray, reserved: tuple[str, ...], what: str) -> dict:
    check_names(names, reserved, what)
    return {name: matrix[:, j].astype(np.float64).tolist() for j, name in enumerate(names)}


def to_networkx(graph: Any, *, force: bool = False, limit: int = DEFAULT_LIMIT):
    """See ``TransactionGraph.to_networkx``.

    Nodes carry ``bank``, ``account``, ``node_y`` and one attribute per node feature; edges,
    keyed by ``edge_row``, carry ``timestamp``, ``y`` (the label), ``split`` and one attribute per edge
    feature. Values are plain Python numbers so that GraphML can write them.
    """
    import networkx as nx

    check_size(graph, force=force, limit=limit)
    node_cols = {
        "bank": graph.nodes["bank"].to_list(),
        "account": graph.nodes["account"].to_list(),
        "node_y": graph.node_y.astype(np.int64).tolist(),
        **_columns(graph.node_feature_names, graph.x, NODE_ATTRS, "node"),
    }
    edge_cols = {
        "timestamp": graph.timestamp.tolist(),
        "y": graph.y.astype(np.int64).tolist(),
        "split": graph.split.astype(np.int64).tolist(),
        **_columns(graph.edge_feature_names, graph.edge_attr, EDGE_ATTRS, "edge"),
    }
    g = nx.MultiDiGraph()
    node_keys = list(node_cols)
    g.add_nodes_from(zip(range(graph.num_nodes),
                         (dict(zip(node_keys, vals)) for vals in zip(*node_cols.values()))))
    edge_keys = list(edge_cols)
    g.add_edges_from(zip(graph.edge_index[0].tolist(), graph.edge_index[1].tolist(),
                         graph.edge_row.tolist(),
                         (dict(zip(edge_keys, vals)) for vals in zip(*edge_cols.values()))))
    return g
