"""export_graph dispatch, the Parquet and NetworkX exports, and the export command."""
from __future__ import annotations

import argparse

import networkx as nx
import numpy as np
import pandas as pd
import polars as pl
import pytest

from amlgraph.errors import ConfigError
from amlgraph.cli._export import export_command
from amlgraph.export import FORMATS, export_graph
from amlgraph.graph import random_graph


@pytest.fixture
def graph():
    return random_graph(30, 200, seed=11)


def test_unknown_format(graph, tmp_path):
    with pytest.raises(ConfigError, match="must be one of"):
        export_graph(graph, "csv", tmp_path)


def test_out_must_be_a_directory(graph, tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="must be a directory"):
        export_graph(graph, "parquet", tmp_path / "file")


def test_parquet_round_trip_polars_and_pandas(graph, tmp_path):
    paths = export_graph(graph, "parquet", tmp_path / "new" / "dir")
    assert [p.name for p in paths] == ["nodes_train.parquet", "nodes_val.parquet", "nodes_test.parquet",
                                       "edges.parquet"]
    nodes, edges = pl.read_parquet(paths[2]), pl.read_parquet(paths[3])
    assert nodes.columns == ["node_id", "bank", "account", *graph.node_feature_names, "node_y"]
    assert edges.columns == ["edge_row", "src", "dst", "timestamp", *graph.edge_feature_names,
                             "y", "split"]
    assert nodes.select("node_id", "bank", "account").equals(graph.nodes)
    np.testing.assert_array_equal(nodes.select(graph.node_feature_names).to_numpy(), graph.x)
    np.testing.assert_array_equal(nodes["node_y"].to_numpy(), graph.node_y)
    np.testing.assert_array_equal(edges.select("src", "dst").to_numpy().T, graph.edge_index)
    np.testing.assert_array_equal(edges["edge_row"].to_numpy(), graph.edge_row)
    np.testing.assert_array_equal(edges["timestamp"].to_numpy(), graph.timestamp)
    np.testing.assert_array_equal(edges.select(graph.edge_feature_names).to_numpy(), graph.edge_attr)
    np.testing.assert_array_equal(edges["y"].to_numpy(), graph.y)
    np.testing.assert_array_equal(edges["split"].to_numpy() == 1, graph.val_mask)
    frame = pd.read_parquet(paths[3])
    assert len(frame) == graph.num_edges and frame["y"].sum() == graph.y.sum()


def test_parquet_refuses_clashing_feature_names(graph, tmp_path):
    graph.edge_feature_names = ["y"] + graph.edge_feature_names[1:]
    with pytest.raises(ConfigError, match="collide"):
        export_graph(graph, "parquet", tmp_path)


def test_networkx_keeps_parallel_edges(graph):
    # plant three parallel transactions between nodes 1 and 2
    graph.edge_index[:, :3] = [[1, 1, 1], [2, 2, 2]]
    g = graph.to_networkx()
    assert isinstance(g, nx.MultiDiGraph)
    assert g.number_of_nodes() == graph.num_nodes and g.number_of_edges() == graph.num_edges
    assert g.number_of_edges(1, 2) >= 3
    k = 5
    attrs = g.edges[int(graph.edge_index[0, k]), int(graph.edge_index[1, k]), int(graph.edge_row[k])]
    assert attrs["y"] == graph.y[k] and attrs["split"] == graph.split[k]
    assert attrs["timestamp"] == graph.timestamp[k]
    assert attrs["edge_f0"] == pytest.approx(float(graph.edge_attr[k, 0]))
    assert g.nodes[3]["bank"] == graph.nodes["bank"][3]
    assert g.nodes[3]["account"] == graph.nodes["account"][3]


def test_networkx_refuses_above_limit_and_forces(graph):
    with pytest.raises(ConfigError) as info:
        graph.to_networkx(limit=100)
    text = str(info.value)
    assert "200 edges" in text and "limit of 100" in text and "--force" in text
    assert graph.to_networkx(limit=100, force=True).number_of_edges() == 200


def test_graphml_round_trip(graph, tmp_path):
    [path] = export_graph(graph, "networkx", tmp_path)
    g = nx.read_graphml(path, node_type=int, edge_key_type=int, force_multigraph=True)
    assert g.is_directed() and g.is_multigraph()
    assert g.number_of_nodes() == graph.num_nodes and g.number_of_edges() == graph.num_edges
    keys = sorted(k for _, _, k in g.edges(keys=True))
    assert keys == sorted(graph.edge_row.tolist())
    got = {k: (u, v, d) for u, v, k, d in g.edges(keys=True, data=True)}
    for j in range(graph.num_edges):
        u, v, d = got[int(graph.edge_row[j])]
        assert (u, v) == tuple(graph.edge_index[:, j])
        assert d["y"] == graph.y[j] and d["split"] == graph.split[j]
        np.testing.assert_allclose([d[n] for n in graph.edge_feature_names], graph.edge_attr[j],
                                   rtol=1e-6)
    assert g.nodes[0]["account"] == graph.nodes["account"][0]


def test_graphml_refused_above_limit(tmp_path, monkeypatch):
    import amlgraph.export._networkx as mod

    big = random_graph(10, 50, seed=1)
    monkeypatch.setattr(mod, "DEFAULT_LIMIT", 20)
    with pytest.raises(ConfigError, match="limit of 20"):
        mod.write_networkx(big, tmp_path, limit=20)
    assert not list(tmp_path.iterdir())
    assert mod.write_networkx(big, tmp_path, limit=20, force=True)[0].exists()


@pytest.mark.parametrize("fmt", [f for f in FORMATS if f != "pyg"])
def test_export_command_prints_paths(graph, tmp_path, monkeypatch, capsys, fmt):
    import amlgraph.runner

    seen = []
    monkeypatch.setattr(amlgraph.runner, "load_graph", lambda d: seen.append(d) or graph)
    args = argparse.Namespace(checkpoint_dir=tmp_path / "ckpt", format=fmt, out=tmp_path / "out",
                              reverse_edges=False, force=False)
    assert export_command(args) == 0
    printed = capsys.readouterr().out.split()
    assert seen == [tmp_path / "ckpt"]
    assert printed and all((tmp_path / "out" / p).exists() or p.startswith(str(tmp_path))
                           for p in printed)
    assert not [p for p in (tmp_path / "out").iterdir() if p.name.startswith(".")]


def _as_sets(g):
    nodes = {n: tuple(sorted((a, float(np.float32(b)) if isinstance(b, float) else b)
                             for a, b in d.items())) for n, d in g.nodes(data=True)}
    edges = {(u, v, k): tuple(sorted((a, float(np.float32(b)) if isinstance(b, float) else b)
                                     for a, b in d.items()))
             for u, v, k, d in g.edges(keys=True, data=True)}
    return nodes, edges


def test_graphml_equals_networkx_own_writer(tmp_path):
    graph = random_graph(20, 120, seed=12)
    graph.nodes = graph.nodes.with_columns(
        account=pl.when(pl.col("node_id") == 3).then(pl.lit('A&<"B>')).otherwise(pl.col("account")))
    graph.edge_index[:, :4] = [[1, 1, 1, 2], [2, 2, 2, 2]]  # parallel edges and a self-loop
    [ours] = export_graph(graph, "networkx", tmp_path / "ours")
    theirs = tmp_path / "theirs.graphml"
    nx.write_graphml(graph.to_networkx(), theirs)
    read = dict(node_type=int, edge_key_type=int, force_multigraph=True)
    a, b = nx.read_graphml(ours, **read), nx.read_graphml(theirs, **read)
    assert _as_sets(a) == _as_sets(b)
    assert a.nodes[3]["account"] == 'A&<"B>'
    assert a.number_of_edges(1, 2) >= 3 and a.has_edge(2, 2)
