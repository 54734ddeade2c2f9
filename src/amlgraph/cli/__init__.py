"""The ``amlgraph`` command: one module per command group; nothing in the library imports it."""
from amlgraph.cli._main import build_parser, main

__all__ = ["build_parser", "main"]
