"""PyTorch Geometric conversion and the tensors-only ``.pt`` export: the full graph and one graph
per split.

Each graph is a flat dict of tensors written by ``torch.save`` and read back with
``torch.load(..., weights_only=True)``: no pickled Python objects, so loading a file cannot run
code. Names, class weights and vocabularies go to a JSON file beside it; ``load_pyg`` rebuilds the
``Data`` / ``HeteroData`` object from both.

Files: ``graph.pt``/``graph.json`` (the full graph, every mask) and ``<split>.pt``/``<split>.json``
for train, val and test: ``graph.for_split(split)``, the graph a model of that split may see as IBM
Multi-GNN builds it, whose ``<split>_mask`` marks the edges to score.
"""
from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING

from amlgraph.errors import ConfigError, InputError
from amlgraph.export._io import output_file
from amlgraph.graph._pyg import (  # noqa: F401  (FORMAT_VERSION: public here)
    _EDGE_FIELDS, _NODE_FIELDS, FORMAT_VERSION, _build, _meta, graph_tensors,
)

if TYPE_CHECKING:
    from amlgraph.graph import TransactionGraph

#: The graphs of a PyG export: the full one, then one per split (the file stems).
GRAPHS = ("graph", "train", "val", "test")
SPLITS = ("train", "val", "test")
FILES = tuple(f"{stem}.{ext}" for stem in GRAPHS for ext in ("pt", "json"))


def _tensor_dict(graph: "TransactionGraph") -> dict:
    nodes, edges = graph_tensors(graph)
    tensors = {f"node.{k}": v for k, v in nodes.items()}
    tensors.update({f"edge.{k}": v for k, v in edges.items()})
    return tensors


def _write_one(graph: "TransactionGraph", out_dir: Path, stem: str, split: str | None,
               reverse_edges: bool, same_as: Path | None = None) -> list[Path]:
    """Write ``<stem>.pt`` and ``<stem>.json``; ``same_as``: a ``.pt`` file of the same tensors,
    hard-linked instead of written again where the file system allows it."""
    import torch

    pt, meta_path = out_dir / f"{stem}.pt", out_dir / f"{stem}.json"
    linked = False
    if same_as is not None:
        with contextlib.suppress(OSError):
            os.link(same_as, pt)
            linked = True
    if not linked:
        tensors = _tensor_dict(graph)
        with output_file(pt) as fh:
            torch.save(tensors, fh)
        del tensors
    with output_file(meta_path) as fh:
        fh.write((json.dumps(_meta(graph, reverse_edges, split), indent=1) + "\n").encode())
    return [pt, meta_path]


def write_pyg(graph: "TransactionGraph", out_dir: Path, *, reverse_edges: bool = False) -> list[Path]:
    """Write the full graph and the graph of each split, each as ``.pt`` (dict of tensors) and
    ``.json`` (names, weights, vocabularies, the split).

    Args:
        graph: the graph.
        out_dir: an existing directory without these files (``export_graph`` gives a staging
            directory and commits the set).
        reverse_edges: record that ``load_pyg`` must build the reverse-edge ``HeteroData``.

    Returns:
        The written paths, in the order of ``FILES``.
    """
    out_dir = Path(out_dir)
    paths = _write_one(graph, out_dir, "graph", None, reverse_edges)
    for split in SPLITS:
        # The test graph has every edge and the test view of the node features, which is ``x``:
        # the full graph's tensors, linked rather than written twice.
        same = paths[0] if split == "test" else None
        paths += _write_one(graph.for_split(split), out_dir, split, split, reverse_edges, same)
    return paths


def load_pyg(path: str | Path, *, split: str | None = None, reverse_edges: bool | None = None):
    """Load a graph of an export written by ``write_pyg`` without unpickling anything.

    Args:
        path: the export directory, or one of its ``.pt`` files (the ``.json`` of the same name
            must sit beside it).
        split: with a directory, ``"train"``, ``"val"`` or ``"test"`` loads that split's graph
            (``<split>.pt``), None the full graph (``graph.pt``).
        reverse_edges: override the kind recorded at export (None keeps it).

    Returns:
        ``torch_geometric.data.Data``, or ``HeteroData`` for a reverse-edge export.

    Raises:
        ConfigError: an unknown ``split``, or one given with a ``.pt`` path of another graph.
        InputError: when a file is missing or the ``.pt`` file holds anything but tensors.
    """
    import pickle

    import torch

    if split is not None and split not in SPLITS:
        raise ConfigError(f"split must be one of None, 'train', 'val', 'test' (got {split!r})")
    path = Path(path)
    if path.is_dir():
        pt = path / f"{split or 'graph'}.pt"
    else:
        pt = path
        if split is not None and pt.stem != split:
            raise ConfigError(f"{pt} is not the {split} graph of a PyG export; pass the export "
                              f"directory with split={split!r}, or the file alone")
    meta_path = pt.with_suffix(".json")
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
    if meta.get("format_version", 1) < 2 and "edge.timestamps" in tensors:
        tensors["edge.timestamp"] = tensors.pop("edge.timestamps")  # the version 1 name
    try:
        nodes = {k: tensors[f"node.{k}"] for k in _NODE_FIELDS}
        edges = {k: tensors[f"edge.{k}"] for k in ("edge_index",) + _EDGE_FIELDS}
    except KeyError as exc:
        raise InputError(f"tensor {exc} missing", path=str(pt)) from exc
    return _build(nodes, edges, meta)
