"""Exports of a finished graph, one module per format (see docs/EXPORTS.md).

Public surface: :func:`export_graph`, :data:`FORMATS`, :data:`FILES` (the files of each format)
and :class:`ExportWriteError` (a write that failed on its storage; exit code 3).
"""
from amlgraph.export._command import FILES, FORMATS, export_graph
from amlgraph.export._io import ExportWriteError

__all__ = ["FILES", "FORMATS", "ExportWriteError", "export_graph"]
