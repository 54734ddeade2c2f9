"""Exports follow the protocol: one PyG graph per split beside the full graph, one Parquet node
table per split's view of the node features, and one name for the label and the time."""
from __future__ import annotations

import dataclasses
import json
import os

import numpy as np
import polars as pl
import pytest

from amlgraph.export import FILES, export_graph
from amlgraph.graph import random_graph
from amlgraph.schema import TEST, TRAIN, VAL

CODES = {"train": TRAIN, "val": VAL, "test": TEST}


@pytest.fixture
def graph():
    """A graph whose three node views differ (as node_features_from='split' makes them)."""
    g = random_graph(40, 300, seed=21, num_node_features=3)
    rng = np.random.default_rng(5)
    return dataclasses.replace(g, x_train=rng.normal(size=g.x.shape).astype(np.float32),
                               x_val=rng.normal(size=g.x.shape).astype(np.float32))


def test_the_fixture_has_distinct_views(graph):
    assert graph.has_split_views
    assert not np.array_equal(graph.x_train, graph.x_val) and not np.array_equal(graph.x_val, graph.x)


# --- pyg ----------------------------------------------------------------------------------------
torch_missing = pytest.mark.skipif(
    not all(__import__("importlib").util.find_spec(m) for m in ("torch", "torch_geometric")),
    reason="needs torch and torch_geometric")


@torch_missing
@pytest.mark.pyg
@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_pyg_graph_of_each_split(graph, tmp_path, split):
    from amlgraph.export import load_pyg

    export_graph(graph, "pyg", tmp_path)
    data = load_pyg(tmp_path, split=split)
    keep = graph.split <= CODES[split]  # train: train edges; val: train + val; test: all
    np.testing.assert_array_equal(data.edge_index.numpy(), graph.edge_index[:, keep])
    np.testing.assert_array_equal(data.edge_row.numpy(), graph.edge_row[keep])
    np.testing.assert_array_equal(data.edge_attr.numpy(), graph.edge_attr[keep])
    np.testing.assert_array_equal(data.y.numpy(), graph.y[keep])
    np.testing.assert_array_equal(data.timestamp.numpy(), graph.timestamp[keep])
    np.testing.assert_array_equal(data.x.numpy(), graph.node_features_of(split))
    np.testing.assert_array_equal(data.node_y.numpy(), graph.node_y)
    # the edges to score: the split's mask marks the split's own edges of that graph
    score = getattr(data, f"{split}_mask").numpy()
    np.testing.assert_array_equal(score, graph.split[keep] == CODES[split])
    assert score.any() and data.num_nodes == graph.num_nodes
    for other in ("train", "val", "test"):
        np.testing.assert_array_equal(getattr(data, f"{other}_mask").numpy(),
                                      graph.split[keep] == CODES[other])
    meta = json.loads((tmp_path / f"{split}.json").read_text())
    assert meta["split"] == split and meta["format_version"] == 2
    assert json.loads((tmp_path / "graph.json").read_text())["split"] is None


@torch_missing
@pytest.mark.pyg
def test_pyg_full_graph_and_file_paths(graph, tmp_path):
    from amlgraph.errors import ConfigError
    from amlgraph.export import load_pyg

    paths = export_graph(graph, "pyg", tmp_path)
    assert [p.name for p in paths] == list(FILES["pyg"])
    full = load_pyg(tmp_path)
    np.testing.assert_array_equal(full.x.numpy(), graph.x)
    assert full.num_edges == graph.num_edges
    val = load_pyg(tmp_path / "val.pt")  # a file path: its own json beside it
    assert val.num_edges == int(np.count_nonzero(graph.split <= VAL))
    np.testing.assert_array_equal(val.x.numpy(), graph.x_val)
    with pytest.raises(ConfigError, match="not the train graph"):
        load_pyg(tmp_path / "val.pt", split="train")
    with pytest.raises(ConfigError, match="split must be one of"):
        load_pyg(tmp_path, split="validation")


@torch_missing
@pytest.mark.pyg
def test_pyg_split_graphs_with_reverse_edges(graph, tmp_path):
    from amlgraph.export import load_pyg

    export_graph(graph, "pyg", tmp_path, reverse_edges=True)
    data = load_pyg(tmp_path, split="train")
    fwd, rev = ("node", "to", "node"), ("node", "rev_to", "node")
    keep = graph.split == TRAIN
    np.testing.assert_array_equal(data[fwd].edge_index.numpy(), graph.edge_index[:, keep])
    np.testing.assert_array_equal(data[rev].edge_index.numpy(), graph.edge_index[::-1][:, keep])
    np.testing.assert_array_equal(data["node"].x.numpy(), graph.x_train)
    assert bool(data[fwd].train_mask.all()) and not bool(data[fwd].val_mask.any())


@torch_missing
@pytest.mark.pyg
def test_pyg_version_1_files_still_load(graph, tmp_path):
    import torch

    from amlgraph.export import load_pyg

    export_graph(graph, "pyg", tmp_path)
    tensors = torch.load(tmp_path / "graph.pt", weights_only=True)
    tensors["edge.timestamps"] = tensors.pop("edge.timestamp")
    (tmp_path / "graph.pt").unlink()
    torch.save(tensors, tmp_path / "graph.pt")
    meta = json.loads((tmp_path / "graph.json").read_text())
    meta["format_version"] = 1
    del meta["split"]
    (tmp_path / "graph.json").write_text(json.dumps(meta))
    np.testing.assert_array_equal(load_pyg(tmp_path).timestamp.numpy(), graph.timestamp)


# --- parquet ------------------------------------------------------------------------------------
def test_parquet_node_table_per_view(graph, tmp_path):
    paths = export_graph(graph, "parquet", tmp_path)
    assert [p.name for p in paths] == ["nodes_train.parquet", "nodes_val.parquet", "nodes_test.parquet",
                                       "edges.parquet"]
    for view in ("train", "val", "test"):
        nodes = pl.read_parquet(tmp_path / f"nodes_{view}.parquet")
        assert nodes.columns == ["node_id", "bank", "account", *graph.node_feature_names, "node_y"]
        assert nodes.select("node_id", "bank", "account").equals(graph.nodes)
        np.testing.assert_array_equal(nodes.select(graph.node_feature_names).to_numpy(),
                                      graph.node_features_of(view))
        meta = pl.read_parquet_metadata(tmp_path / f"nodes_{view}.parquet")
        assert meta["amlgraph.view"] == view and meta["amlgraph.features"] == "normalised"
    edges = pl.read_parquet(tmp_path / "edges.parquet")
    assert edges.columns[-2:] == ["y", "split"] and "label" not in edges.columns


def test_one_view_graph_writes_the_same_table_three_times(tmp_path):
    g = random_graph(20, 100, seed=3)
    assert not g.has_split_views
    export_graph(g, "parquet", tmp_path)
    frames = [pl.read_parquet(tmp_path / f"nodes_{v}.parquet") for v in ("train", "val", "test")]
    assert frames[0].equals(frames[1]) and frames[1].equals(frames[2])


def test_a_parquet_export_removes_the_retired_nodes_file(graph, tmp_path):
    out = tmp_path / "E"
    out.mkdir()
    (out / "nodes.parquet").write_bytes(b"an earlier version's")  # recognised as an export file
    (out / "edges.parquet").write_bytes(b"an earlier version's")
    (out / "formatted_transactions.csv").write_bytes(b"another format's")
    export_graph(graph, "parquet", out)
    assert sorted(os.listdir(out)) == sorted(FILES["parquet"] + ("formatted_transactions.csv",))
    assert pl.read_parquet(out / "edges.parquet").height == graph.num_edges


def test_other_formats_keep_an_earlier_parquet_set_whole(graph, tmp_path):
    out = tmp_path / "E"
    out.mkdir()
    (out / "nodes.parquet").write_bytes(b"old nodes")
    (out / "edges.parquet").write_bytes(b"old edges")
    export_graph(graph, "multignn", out)
    assert sorted(os.listdir(out)) == ["edges.parquet", "formatted_transactions.csv", "nodes.parquet"]


# --- names --------------------------------------------------------------------------------------
def test_one_label_name_and_one_time_name(graph, tmp_path):
    import networkx as nx

    export_graph(graph, "parquet", tmp_path)
    edges = pl.read_parquet(tmp_path / "edges.parquet")
    assert {"y", "timestamp"} <= set(edges.columns) and not {"label", "timestamps"} & set(edges.columns)
    [path] = export_graph(graph, "networkx", tmp_path)
    g = nx.read_graphml(path, node_type=int, edge_key_type=int, force_multigraph=True)
    attrs = next(iter(g.edges(data=True)))[2]
    assert {"y", "timestamp"} <= set(attrs) and not {"label", "timestamps"} & set(attrs)
    nodes = pl.read_parquet(tmp_path / "nodes_test.parquet")
    assert "node_y" in nodes.columns
