"""Exports of a finished graph, one module per format (see docs/EXPORTS.md).

Public surface: :func:`export_graph`, :data:`FORMATS`, :data:`FILES` (the files of each format),
:class:`Unscaled` (features before any log or scaling, for a parquet export), :func:`load_pyg`
and :class:`ExportWriteError` (a write that failed on its storage; exit code 3).
"""
from amlgraph.export._command import FILES, FORMATS, export_graph
from amlgraph.export._io import ExportWriteError
from amlgraph.export._parquet import Unscaled


def load_pyg(path, *, split=None, reverse_edges=None):
    """Load a graph of a PyG export (see ``amlgraph.export._pyg.load_pyg``); needs torch."""
    from amlgraph.export._pyg import load_pyg as _load

    return _load(path, split=split, reverse_edges=reverse_edges)


__all__ = ["FILES", "FORMATS", "ExportWriteError", "Unscaled", "export_graph", "load_pyg"]
