"""A run with `--patterns`: every export format carries the pattern_* edge features."""
from __future__ import annotations

import json

import numpy as np
import polars as pl
import pytest

from amlgraph.store import CheckpointStore
from cli_inprocess import run_main

CONFIG = """[patterns]
window = 3600
scatter_gather_window = 1800
temporal_cycle_window = 3600
simple_cycle_window = 1800
max_cycle_length = 4
bins = [2, 4]
"""


@pytest.fixture(scope="module")
def run(micro_data, tmp_path_factory):
    """`amlgraph run --patterns` (windows from the [patterns] section of --config) on ~600 rows."""
    from amlgraph.runner import load_graph

    root = tmp_path_factory.mktemp("pattern_export")
    (root / "c.toml").write_text(CONFIG)
    result = run_main("run", micro_data, "--checkpoint-dir", root / "ckpt", "--config", root / "c.toml",
                      "--chunk-rows", "250", "--quiet")
    assert result.returncode == 0, result.stderr
    graph = load_graph(root / "ckpt")
    names = [n for n in graph.edge_feature_names if n.startswith("pattern_")]
    assert len(names) == 4 + 4 + 48 + 3 + 2 + 2  # fan, degree, statistics, sg + gs, cycles x 2
    return root, graph, names


def _pattern_chunks(ckpt) -> pl.DataFrame:
    store = CheckpointStore(ckpt, create=False)
    parts = store.load("pattern_features").value("parts")
    return pl.concat([store.load(p["name"], key=p["key"]).table("features") for p in parts])


def test_parquet_scaled_and_unscaled(run):
    root, graph, names = run
    out = root / "parquet"
    assert run_main("export", root / "ckpt", "--format", "parquet", "--out", out).returncode == 0
    edges = pl.read_parquet(out / "edges.parquet")
    j = [graph.edge_feature_names.index(n) for n in names]
    np.testing.assert_array_equal(edges.select(names).to_numpy(), graph.edge_attr[:, j])
    raw = root / "raw"
    assert run_main("export", root / "ckpt", "--format", "parquet", "--unscaled", "--out", raw).returncode == 0
    unscaled = pl.read_parquet(raw / "edges.parquet")
    chunks = _pattern_chunks(root / "ckpt")
    assert unscaled["edge_row"].to_list() == chunks["row"].to_list()
    assert unscaled.select(names).equals(chunks.select(names))  # the step's values and types
    assert unscaled["pattern_degree_out_src"].dtype == pl.Int64 and unscaled["pattern_degree_out_src"].max() > 1


def test_pyg(run):
    from amlgraph.export import load_pyg

    root, graph, names = run
    out = root / "pyg"
    assert run_main("export", root / "ckpt", "--format", "pyg", "--out", out).returncode == 0
    data = load_pyg(out)
    assert tuple(data.edge_attr.shape) == graph.edge_attr.shape
    meta = json.loads((out / "graph.json").read_text())
    assert set(names) <= set(json.dumps(meta).replace('"', " ").split())
    np.testing.assert_array_equal(data.edge_attr.numpy(), graph.edge_attr)


def test_multignn_and_graphml(run):
    root, graph, names = run
    out = root / "mg"
    assert run_main("export", root / "ckpt", "--format", "multignn", "--out", out).returncode == 0
    frame = pl.read_csv(out / "formatted_transactions.csv")
    assert frame.columns[10:] == names and frame.columns[9] == "Is Laundering"
    order = np.argsort(graph.edge_row, kind="stable")
    by_row = frame.sort("EdgeID")
    j = graph.edge_feature_names.index(names[0])
    np.testing.assert_allclose(by_row[names[0]].to_numpy(), graph.edge_attr[order, j], rtol=1e-6)
    nx_out = root / "nx"
    assert run_main("export", root / "ckpt", "--format", "networkx", "--out", nx_out).returncode == 0
    text = (nx_out / "graph.graphml").read_text()
    assert all(f'attr.name="{n}"' in text for n in names)
