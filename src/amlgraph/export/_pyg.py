"""PyTorch Geometric conversion and the tensors-only ``graph.pt`` export.

``graph.pt`` is a flat dict of tensors written by ``torch.save`` and read back with
``torch.load(..., weights_only=True)``: no pickled Python objects, so loading a file cannot run
code. Names, class weights and vocabularies go to ``graph.json`` beside it; ``load_pyg`` rebuilds
the ``Data`` / ``HeteroData`` object from both.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from amlgraph.errors import InputError
from amlgraph.export._io import output_file

if TYPE_CHECKING:
    from amlgraph.graph import TransactionGraph

FORMAT_VERSION = 1
FWD = ("node", "to", "node")
REV = ("node", "rev_to", "node")
_EDGE_FIELDS = ("edge_attr", "y", "timestamps", "edge_row", "train_mask", "val_mask", "test_mask")
_NODE_FIELDS = ("x", "node_y")


def _tensor(a: np.ndarray, dtype=None):
    import torch

    # Checkpoint arrays are read-only memory maps: copy once so torch owns writable memory.
    t = torch.from_numpy(np.require(a, requirements=("C", "W")))
    return t if dtype is None else t.to(dtype)


def graph_tensors(graph: "TransactionGraph") -> tuple[dict, dict]:
    """Tensors of the graph, split into per-node and per-edge fields.

    Returns:
        (node fields, edge fields): ``x`` float32 (N, F), ``node_y`` int64 (N,); ``edge_index``
        int64 (2, E), ``edge_attr`` float32 (E, D), ``y`` int64 (E,), ``timestamps`` int64 (E,),
        ``edge_row`` int64 (E,), boolean masks (E,).
    """
    import torch

    nodes = {"x": _tensor(graph.x), "node_y": _tensor(graph.node_y, torch.long)}
    edges = {
        "edge_index": _tensor(graph.edge_index),
        "edge_attr": _tensor(graph.edge_attr),
        "y": _tensor(graph.y, torch.long),
        "timestamps": _tensor(graph.timestamp),
        "edge_row": _tensor(graph.edge_row),
        "train_mask": _tensor(graph.train_mask),
        "val_mask": _tensor(graph.val_mask),
        "test_mask": _tensor(graph.test_mask),
    }
    return nodes, edges


def _meta(graph: "TransactionGraph", reverse_edges: bool) -> dict:
    return {
        "format_version": FORMAT_VERSION,
        "kind": "hetero" if reverse_edges else "data",
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


def to_pyg(graph: "TransactionGraph", *, reverse_edges: bool = False):
    """See ``TransactionGraph.to_pyg``."""
    nodes, edges = graph_tensors(graph)
    return _build(nodes, edges, _meta(graph, reverse_edges))


def write_pyg(graph: "TransactionGraph", out_dir: Path, *, reverse_edges: bool = False) -> list[Path]:
    """Write ``graph.pt`` (dict of tensors) and ``graph.json`` (names, weights, vocab).

    Args:
        graph: the graph.
        out_dir: an existing directory without these files (``export_graph`` gives a staging
            directory and commits the set).
        reverse_edges: record that ``load_pyg`` must build the reverse-edge ``HeteroData``.

    Returns:
        The two written paths.
    """
    import torch

    nodes, edges = graph_tensors(graph)
    tensors = {f"node.{k}": v for k, v in nodes.items()}
    tensors.update({f"edge.{k}": v for k, v in edges.items()})
    pt, meta_path = Path(out_dir) / "graph.pt", Path(out_dir) / "graph.json"
    with output_file(pt) as fh:
        torch.save(tensors, fh)
    with output_file(meta_path) as fh:
        fh.write((json.dumps(_meta(graph, reverse_edges), indent=1) + "\n").encode())
    return [pt, meta_path]


def load_pyg(path: str | Path, *, reverse_edges: bool | None = None):
    """Load an export written by ``write_pyg`` without unpickling anything.

    Args:
        path: the export directory or its ``graph.pt``; ``graph.json`` must sit beside it.
        reverse_edges: override the kind recorded at export (None keeps it).

    Returns:
        ``torch_geometric.data.Data``, or ``HeteroData`` for a reverse-edge export.

    Raises:
        InputError: when a file is missing or ``graph.pt`` holds anything but tensors.
    """
    import pickle

    import torch

    path = Path(path)
    pt = path / "graph.pt" if path.is_dir() else path
    meta_path = pt.with_name("graph.json")
    for p in (pt, meta_path):
        if not p.is_file():
            raise InputError("missing file of a PyG export", path=str(p),
                             hint="write it with `amlgraph export CHECKPOINT_DIR --format pyg`")
    try:
        tensors = torch.load(pt, weights_only=True, map_location="cpu")
    except (pickle.UnpicklingError, RuntimeError, EOFError) as exc:
        raise InputError(f"not a tensors-only PyG export; refusing to unpickle it ({exc})",
                         path=str(pt)) from exc
    if not isinstance(tensors, dict) or not all(torch.is_tensor(v) for v in tensors.values()):
        raise InputError("expected a dict of tensors", path=str(pt))
    meta = json.loads(meta_path.read_text())
    if reverse_edges is not None:
        meta["kind"] = "hetero" if reverse_edges else "data"
    try:
        nodes = {k: tensors[f"node.{k}"] for k in _NODE_FIELDS}
        edges = {k: tensors[f"edge.{k}"] for k in ("edge_index",) + _EDGE_FIELDS}
    except KeyError as exc:
        raise InputError(f"tensor {exc} missing", path=str(pt)) from exc
    return _build(nodes, edges, meta)
