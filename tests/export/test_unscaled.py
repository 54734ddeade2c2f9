"""`amlgraph export --format parquet --unscaled`: the features as the run's node_features and
edge_features checkpoints hold them (before any log or scaling) and the raw amounts, currencies
and payment formats of the input file."""
from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from amlgraph.errors import CheckpointError, ConfigError
from amlgraph.export import Unscaled, export_graph
from amlgraph.graph import random_graph
from amlgraph.steps._view_codec import decode_views
from amlgraph.runner._unscaled import load_unscaled
from amlgraph.store import CheckpointStore
from cli_inprocess import run_main


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A finished run on a generated file (node features per split, amlgraph's default)."""
    from amlgraph.runner import run_preprocessing
    from amlgraph.synth import generate

    root = tmp_path_factory.mktemp("unscaled")
    generate("tiny", root / "data", seed=3, rows=2000)
    result = run_preprocessing({"data_path": root / "data", "checkpoint_dir": root / "ckpt",
                                "quiet": True})
    [trans] = sorted((root / "data").glob("*_Trans.csv"))
    return root, result.graph, trans


def _chunk_table(ckpt_dir: Path, step: str, table: str) -> pl.DataFrame:
    store = CheckpointStore(ckpt_dir, create=False)
    parts = store.load(step).value("parts")
    return pl.concat([store.load(p["name"], key=p["key"]).table(table) for p in parts])


@pytest.fixture(scope="module")
def exported(run):
    root, _, _ = run
    result = run_main("export", root / "ckpt", "--format", "parquet", "--unscaled", "--out", root / "out")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [str(root / "out" / f) for f in
                                     ("nodes_train.parquet", "nodes_val.parquet", "nodes_test.parquet",
                                      "edges.parquet")]
    return root / "out"


def test_node_features_are_the_checkpoints_values(run, exported):
    root, graph, _ = run
    assert graph.has_split_views
    views = ["train", "val", "test"]
    # The checkpoint stores the later views XOR-coded (steps._view_codec), decoded here.
    chunks = dict(decode_views(lambda table: _chunk_table(root / "ckpt", "node_features", table), views))
    assert _chunk_table(root / "ckpt", "node_features", "xor_val")["total_sent"].dtype == pl.UInt64
    for view in views:
        nodes = pl.read_parquet(exported / f"nodes_{view}.parquet")
        chunk = chunks[view]
        assert nodes.columns == ["node_id", "bank", "account", *graph.node_feature_names, "node_y"]
        assert nodes.select("node_id", *graph.node_feature_names).equals(chunk)  # values and types
        assert pl.read_parquet_metadata(exported / f"nodes_{view}.parquet")["amlgraph.features"] == "unscaled"
    test = pl.read_parquet(exported / "nodes_test.parquet")
    train = pl.read_parquet(exported / "nodes_train.parquet")
    assert test["total_sent"].dtype == pl.Float64 and test["transaction_count"].dtype == pl.Int64
    # unscaled: money, not z-scores; the training view sees fewer rows than the test view
    assert test["total_sent"].min() >= 0 and test["total_sent"].max() > 100
    assert (train["transaction_count"] <= test["transaction_count"]).all()
    assert (train["transaction_count"] < test["transaction_count"]).any()


def test_edge_features_and_raw_columns(run, exported):
    root, graph, trans = run
    edges = pl.read_parquet(exported / "edges.parquet")
    raw_columns = ["raw_amount_paid", "raw_payment_currency", "raw_amount_received",
                   "raw_receiving_currency", "raw_payment_format"]
    assert edges.columns == ["edge_row", "src", "dst", "timestamp", *graph.edge_feature_names, *raw_columns,
                             "y", "split"]
    chunk = _chunk_table(root / "ckpt", "edge_features", "features")
    np.testing.assert_array_equal(edges["edge_row"].to_numpy(), graph.edge_row)
    assert edges.select(graph.edge_feature_names).equals(chunk.select(graph.edge_feature_names))
    # the input file's own columns, row by row (currency and format as names)
    source = pl.read_csv(trans, infer_schema_length=0)[edges["edge_row"].to_numpy()]
    assert edges["raw_amount_paid"].to_list() == [float(v) for v in source["Amount Paid"]]
    assert edges["raw_amount_received"].to_list() == [float(v) for v in source["Amount Received"]]
    assert edges["raw_payment_currency"].to_list() == source["Payment Currency"].to_list()
    assert edges["raw_receiving_currency"].to_list() == source["Receiving Currency"].to_list()
    assert edges["raw_payment_format"].to_list() == source["Payment Format"].to_list()
    np.testing.assert_allclose(edges["log_amount_paid"].to_numpy(),
                               np.log1p(edges["raw_amount_paid"].to_numpy()))
    assert edges["amount_received"].equals(edges["raw_amount_received"], check_names=False)
    np.testing.assert_array_equal(edges["y"].to_numpy(), graph.y)


def test_the_scaled_export_differs(run, exported, tmp_path):
    _, graph, _ = run
    export_graph(graph, "parquet", tmp_path)
    scaled = pl.read_parquet(tmp_path / "nodes_test.parquet")
    np.testing.assert_array_equal(scaled.select(graph.node_feature_names).to_numpy(), graph.x)
    assert not scaled["total_sent"].equals(pl.read_parquet(exported / "nodes_test.parquet")["total_sent"])


@pytest.mark.parametrize("fmt", ["pyg", "multignn", "networkx"])
def test_other_formats_refuse_unscaled_in_one_line(run, tmp_path, fmt):
    root, _, _ = run
    result = run_main("export", root / "ckpt", "--format", fmt, "--unscaled", "--out", tmp_path / "out")
    assert result.returncode == 2
    assert result.stderr.strip() == f"amlgraph: error: --unscaled applies to --format parquet only, not {fmt}"
    assert not (tmp_path / "out").exists()


def test_export_graph_refuses_unscaled_tables_of_another_format_or_graph(run, tmp_path):
    root, graph, _ = run
    nodes, edges = load_unscaled(root / "ckpt", graph)
    with pytest.raises(ConfigError, match="parquet only"):
        export_graph(graph, "pyg", tmp_path / "a", unscaled=Unscaled(nodes, edges))
    with pytest.raises(ConfigError, match="edge order"):
        export_graph(graph, "parquet", tmp_path / "b", unscaled=Unscaled(nodes, edges.reverse()))
    other = random_graph(graph.num_nodes, graph.num_edges, seed=1)
    with pytest.raises(ConfigError, match="columns"):
        export_graph(other, "parquet", tmp_path / "c", unscaled=Unscaled(nodes, edges))
    assert not os.listdir(tmp_path)


def test_a_graph_without_its_runs_checkpoints_is_refused(tmp_path):
    g = random_graph(10, 50, seed=2)
    tables, arrays, values = g.to_payload()
    CheckpointStore(tmp_path / "ckpt").save("graph_created", step="graph_created", key="k", tables=tables,
                                            arrays=arrays, values=values)
    result = run_main("export", tmp_path / "ckpt", "--format", "parquet", "--unscaled",
                      "--out", tmp_path / "o")
    assert result.returncode != 0 and "does not record the checkpoints it was built from" in result.stderr
    assert not (tmp_path / "o").exists()
    with pytest.raises(CheckpointError):
        load_unscaled(tmp_path / "ckpt", g)
