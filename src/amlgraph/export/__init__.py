"""Exports of a finished graph, one module per format (see docs/EXPORTS.md).

Public surface: :func:`export_graph` and :data:`FORMATS`.
"""
from amlgraph.export._command import FORMATS, export_graph

__all__ = ["FORMATS", "export_graph"]
