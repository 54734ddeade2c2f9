"""Exports of a finished graph: ``pyg``, ``multignn``, ``networkx``, ``parquet``.

Each format lives in its own module (``export_<format>.py``); this one dispatches and serves the
``amlgraph export`` command. Every file is written atomically (temporary file, then rename).
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from amlgraph.errors import ConfigError
from amlgraph.export._io import prepare_dir

if TYPE_CHECKING:
    from amlgraph.graph import TransactionGraph

FORMATS = ("pyg", "multignn", "networkx", "parquet")


def export_graph(graph: "TransactionGraph", fmt: str, out_dir: str | Path, *,
                 reverse_edges: bool = False, force: bool = False) -> list[Path]:
    """Write ``graph`` in format ``fmt`` into ``out_dir`` (created when absent).

    Args:
        graph: the graph.
        fmt: one of ``FORMATS``.
        out_dir: the output directory.
        reverse_edges: pyg only: load as a ``HeteroData`` with reverse edges.
        force: networkx only: export even above the size limit.

    Returns:
        The written paths.

    Raises:
        ConfigError: for an unknown format or a refused networkx export.
    """
    if fmt not in FORMATS:
        raise ConfigError(f"export format must be one of {set(FORMATS)} (got {fmt!r})")
    out = prepare_dir(Path(out_dir))
    if fmt == "pyg":
        from amlgraph.export._pyg import write_pyg

        return write_pyg(graph, out, reverse_edges=reverse_edges)
    if fmt == "multignn":
        from amlgraph.export._multignn import write_multignn

        return write_multignn(graph, out)
    if fmt == "networkx":
        from amlgraph.export._networkx import write_networkx

        return write_networkx(graph, out, force=force)
    from amlgraph.export._parquet import write_parquet

    return write_parquet(graph, out)
