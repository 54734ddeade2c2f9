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

from amlgraph.errors import InputError
from amlgraph.export._io import output_file
from amlgraph.graph._pyg import (  # noqa: F401  (FORMAT_VERSION: public here)
    _EDGE_FIELDS, _NODE_FIELDS, FORMAT_VERSION, _build, _meta, graph_tensors,
)

if TYPE_CHECKING:
    from amlgraph.graph import TransactionGraph

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
