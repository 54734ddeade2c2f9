"""The graph as PyTorch Geometric tensors: ``Data``, or ``HeteroData`` with reverse edges.

In memory only (``TransactionGraph.to_pyg``); writing files is ``amlgraph.export``'s. torch and
torch_geometric are imported on first use.
"""
from __future__ import annotations

from typing import Any

import numpy as np

# ``graph`` below is a TransactionGraph; not imported here, since its methods import this module.
#: 2: the edge times are ``timestamp`` (``timestamps`` in version 1, still read by ``load_pyg``).
FORMAT_VERSION = 2
FWD = ("node", "to", "node")
REV = ("node", "rev_to", "node")
_EDGE_FIELDS = ("edge_attr", "y", "timestamp", "edge_row", "train_mask", "val_mask", "test_mask")
_NODE_FIELDS = ("x", "node_y")


def _tensor(a: np.ndarray, dtype=None):
    import torch

    # Checkpoint arrays are read-only memory maps: copy once so torch owns writable memory.
    t = torch.from_numpy(np.require(a, requirements=("C", "W")))
    return t if dtype is None else t.to(dtype)


def graph_tensors(graph: Any) -> tuple[dict, dict]:
    """Tensors of the graph, split into per-node and per-edge fields.

    Returns:
        (node fields, edge fields): ``x`` float32 (N, F), ``node_y`` int64 (N,); ``edge_index``
        int64 (2, E), ``edge_attr`` float32 (E, D), ``y`` int64 (E,), ``timestamp`` int64 (E,),
        ``edge_row`` int64 (E,), boolean masks (E,).
    """
    import torch

    nodes = {"x": _tensor(graph.x), "node_y": _tensor(graph.node_y, torch.long)}
    edges = {
        "edge_index": _tensor(graph.edge_index),
        "edge_attr": _tensor(graph.edge_attr),
        "y": _tensor(graph.y, torch.long),
        "timestamp": _tensor(graph.timestamp),
        "edge_row": _tensor(graph.edge_row),
        "train_mask": _tensor(graph.train_mask),
        "val_mask": _tensor(graph.val_mask),
        "test_mask": _tensor(graph.test_mask),
    }
    return nodes, edges


def _meta(graph: Any, reverse_edges: bool, split: str | None = None) -> dict:
    """The JSON beside the tensors; ``split`` names the split whose graph it is (None: the full
    graph), whose mask (``<split>_mask``) marks the edges to score."""
    return {
        "format_version": FORMAT_VERSION,
        "kind": "hetero" if reverse_edges else "data",
        "split": split,
        "num_nodes": graph.num_nodes,
        "node_feature_names": list(graph.node_feature_names),
        "edge_feature_names": list(graph.edge_feature_names),
        "class_weights": {str(k): v for k, v in graph.class_weights.items()},
        "vocab": graph.vocab,
    }


def _build(nodes: dict, edges: dict, meta: dict):
    """Assemble Data or HeteroData from tensors and the JSON metadata."""
    from torch_geometric.data import Data, HeteroData

    extra = {
        "node_feature_names": meta["node_feature_names"],
        "edge_feature_names": meta["edge_feature_names"],
        "class_weights": {int(k): float(v) for k, v in meta["class_weights"].items()},
    }
    if meta["kind"] == "data":
        return Data(num_nodes=meta["num_nodes"], **nodes, **edges, **extra)
    data = HeteroData()
    for key, value in extra.items():  # set one by one: HeteroData(**kw) reads dicts as stores
        setattr(data, key, value)
    data["node"].num_nodes = meta["num_nodes"]
    for key, value in nodes.items():
        data["node"][key] = value
    for key, value in edges.items():
        data[FWD][key] = value
    data[REV].edge_index = edges["edge_index"].flip(0)
    data[REV].edge_attr = edges["edge_attr"]
    return data


def to_pyg(graph: Any, *, reverse_edges: bool = False):
    """See ``TransactionGraph.to_pyg``."""
    nodes, edges = graph_tensors(graph)
    return _build(nodes, edges, _meta(graph, reverse_edges))
