"""NetworkX MultiDiGraph conversion and its GraphML export.

NetworkX holds one Python object per node and per edge, so this conversion is the one place
where work grows with Python objects per edge; ``limit`` keeps a user from building a 5-million
edge graph by accident (about 1 kB of memory per edge).
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from amlgraph.export._graphml import write_graphml
from amlgraph.graph._networkx import DEFAULT_LIMIT, check_size, to_networkx  # noqa: F401

if TYPE_CHECKING:
    from amlgraph.graph import TransactionGraph

FILENAME = "graph.graphml"


def write_networkx(graph: "TransactionGraph", out_dir: Path, *, force: bool = False,
                   limit: int = DEFAULT_LIMIT) -> list[Path]:
    """Write ``graph.graphml`` of the MultiDiGraph into ``out_dir``, an existing directory without
    it (``export_graph`` gives a staging directory and commits it); edge ids in the file are the
    ``edge_row`` keys.

    The size limit is the in-memory one: GraphML readers (networkx among them) build the whole
    graph in memory, so the export refuses what they could not load either.

    Raises:
        ConfigError: above ``limit`` edges without ``force``.
    """
    check_size(graph, force=force, limit=limit)
    path = Path(out_dir) / FILENAME
    write_graphml(graph, path)
    return [path]
