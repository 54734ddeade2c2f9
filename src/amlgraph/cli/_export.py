"""`amlgraph export CHECKPOINT_DIR --format F --out DIR [--unscaled]`."""
from __future__ import annotations

import argparse

from amlgraph.errors import ConfigError
from amlgraph.export import Unscaled, export_graph


def export_command(args: argparse.Namespace) -> int:
    """``amlgraph export CHECKPOINT_DIR --format F --out DIR``: load, write, print the paths.

    With ``--unscaled`` (parquet only) the features written are those of the run's
    ``node_features`` and ``edge_features`` checkpoints, before any log or scaling.

    Returns:
        0 on success (errors are raised as ``AmlGraphError`` for the CLI to report).
    """
    from amlgraph.runner import load_graph

    unscaled = getattr(args, "unscaled", False)
    if unscaled and args.format != "parquet":
        raise ConfigError(f"--unscaled applies to --format parquet only, not {args.format}")
    graph = load_graph(args.checkpoint_dir)
    tables = None
    if unscaled:
        from amlgraph.runner._unscaled import load_unscaled

        nodes, edges = load_unscaled(args.checkpoint_dir, graph)
        tables = Unscaled(nodes=nodes, edges=edges)
    paths = export_graph(graph, args.format, args.out,
                         reverse_edges=getattr(args, "reverse_edges", False),
                         force=getattr(args, "force", False), unscaled=tables)
    for path in paths:
        print(path)
    return 0
