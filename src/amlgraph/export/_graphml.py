"""GraphML of the transaction multigraph, written column-wise with Polars.

The file is what ``networkx.write_graphml`` writes for ``TransactionGraph.to_networkx()`` (same
keys, types and edge ids), but built with vectorised string expressions in row blocks instead of
one Python object per edge: about two orders of magnitude faster, in bounded memory. Read it back
with ``networkx.read_graphml(path, node_type=int, edge_key_type=int, force_multigraph=True)``.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import polars as pl

from amlgraph.export._io import output_file
from amlgraph.graph._networkx import EDGE_ATTRS, NODE_ATTRS, check_names

if TYPE_CHECKING:
    from amlgraph.graph import TransactionGraph

BLOCK = 200_000
_HEAD = ('<?xml version=\'1.0\' encoding=\'utf-8\'?>\n'
         '<graphml xmlns="http://graphml.graphdrawing.org/xmlns" '
         'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" '
         'xsi:schemaLocation="http://graphml.graphdrawing.org/xmlns '
         'http://graphml.graphdrawing.org/xmlns/1.0/graphml.xsd">\n')
_TYPES = {pl.Int64: "long", pl.Float32: "double", pl.String: "string"}
# Attribute names the conversion sets itself; feature names must not collide with them.
def _escape(name: str) -> str:
    return (name.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;"))


def _escape_expr(expr: pl.Expr) -> pl.Expr:
    return (expr.str.replace_all("&", "&amp;", literal=True).str.replace_all("<", "&lt;", literal=True)
            .str.replace_all(">", "&gt;", literal=True).str.replace_all('"', "&quot;", literal=True))


def _data(frame: pl.DataFrame, keys: dict[str, str]) -> list[pl.Expr]:
    parts = []
    for column, key in keys.items():
        value = pl.col(column).cast(pl.String)
        if frame.schema[column] == pl.String:
            value = _escape_expr(value)
        parts += [pl.lit(f'<data key="{key}">'), value, pl.lit("</data>")]
    return parts


def _write_lines(fh, frame: pl.DataFrame, line: pl.Expr) -> None:
    for start in range(0, frame.height, BLOCK):
        block = frame.slice(start, BLOCK).select(line.alias("l"))
        block.write_csv(fh, include_header=False, quote_style="never")


def write_graphml(graph: "TransactionGraph", path: Path) -> None:
    """Write the graph as GraphML to ``path``, a new file (not atomic by itself: ``export_graph``
    writes it into a staging directory and commits that).

    Nodes carry ``bank``, ``account``, ``node_y`` and the node features; edges, with
    ``id`` = ``edge_row``, carry ``timestamp``, ``y``, ``split`` and the edge features.
    """
    check_names(graph.node_feature_names, NODE_ATTRS, "node")
    check_names(graph.edge_feature_names, EDGE_ATTRS, "edge")
    nodes = pl.DataFrame({
        "id": graph.nodes["node_id"].cast(pl.Int64),
        "bank": graph.nodes["bank"].cast(pl.Int64),
        "account": graph.nodes["account"].cast(pl.String),
        "node_y": pl.Series(graph.node_y, dtype=pl.Int64),
        **{f"f{j}": pl.Series(graph.x[:, j], dtype=pl.Float32)
           for j in range(len(graph.node_feature_names))},
    })
    edges = pl.DataFrame({
        "id": graph.edge_row, "src": graph.edge_index[0], "dst": graph.edge_index[1],
        "timestamp": graph.timestamp,
        "y": pl.Series(graph.y, dtype=pl.Int64),
        "split": pl.Series(graph.split, dtype=pl.Int64),
        **{f"f{j}": pl.Series(graph.edge_attr[:, j], dtype=pl.Float32)
           for j in range(len(graph.edge_feature_names))},
    })
    node_names = list(NODE_ATTRS) + list(graph.node_feature_names)
    edge_names = list(EDGE_ATTRS) + list(graph.edge_feature_names)
    node_keys = {c: f"n{i}" for i, c in enumerate(nodes.columns[1:])}
    edge_keys = {c: f"e{i}" for i, c in enumerate(edges.columns[3:])}
    with output_file(path) as fh:
        fh.write(_HEAD.encode())
        for kind, keys, names, frame in (("node", node_keys, node_names, nodes),
                                         ("edge", edge_keys, edge_names, edges)):
            for (column, key), name in zip(keys.items(), names):
                fh.write(f'  <key id="{key}" for="{kind}" attr.name="{_escape(name)}" '
                         f'attr.type="{_TYPES[frame.schema[column]]}" />\n'.encode())
        fh.write(b'  <graph edgedefault="directed">\n')
        fh.flush()
        _write_lines(fh, nodes, pl.concat_str(
            [pl.lit('    <node id="'), pl.col("id").cast(pl.String), pl.lit('">'),
             *_data(nodes, node_keys), pl.lit("</node>")]))
        _write_lines(fh, edges, pl.concat_str(
            [pl.lit('    <edge source="'), pl.col("src").cast(pl.String), pl.lit('" target="'),
             pl.col("dst").cast(pl.String), pl.lit('" id="'), pl.col("id").cast(pl.String),
             pl.lit('">'), *_data(edges, edge_keys), pl.lit("</edge>")]))
        fh.write(b"  </graph>\n</graphml>\n")
