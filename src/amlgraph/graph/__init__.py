"""The transaction graph: accounts, transactions, features, labels, the split and its views.

Shared vocabulary of the library: it knows no store, runner or export. Public surface:
:class:`TransactionGraph`, :func:`graph_payload` (the one checkpoint layout), :func:`random_graph`,
and the conversions ``TransactionGraph.to_pyg`` / ``to_networkx`` (in ``_pyg`` / ``_networkx``).
"""
from amlgraph.graph._graph import (
    GRAPH_STEP,
    NODE_COLUMNS,
    RAW_COLUMNS,
    TransactionGraph,
    graph_payload,
    graph_values,
)
from amlgraph.graph._random import random_graph

__all__ = ["GRAPH_STEP", "NODE_COLUMNS", "RAW_COLUMNS", "TransactionGraph", "graph_payload", "graph_values",
           "random_graph"]
