"""`amlgraph export CHECKPOINT_DIR --format F --out DIR`."""
from __future__ import annotations

import argparse

from amlgraph.export import export_graph


def export_command(args: argparse.Namespace) -> int:
    """``amlgraph export CHECKPOINT_DIR --format F --out DIR``: load, write, print the paths.

    Returns:
        0 on success (errors are raised as ``AmlGraphError`` for the CLI to report).
    """
    from amlgraph.runner import load_graph

    graph = load_graph(args.checkpoint_dir)
    paths = export_graph(graph, args.format, args.out,
                         reverse_edges=getattr(args, "reverse_edges", False),
                         force=getattr(args, "force", False))
    for path in paths:
        print(path)
    return 0
