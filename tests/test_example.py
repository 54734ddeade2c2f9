"""Smoke run of examples/train_gnn.py: one epoch on a tiny graph saved through the store."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

pytest.importorskip("torch")
pytest.importorskip("torch_geometric")

from amlgraph.graph import random_graph  # noqa: E402
from amlgraph.store import CheckpointStore  # noqa: E402

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "train_gnn.py"
pytestmark = pytest.mark.pyg


def load_example():
    spec = importlib.util.spec_from_file_location("train_gnn_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_smoke_run_writes_four_f1_figures(tmp_path):
    graph = random_graph(60, 600, seed=3, laundering_rate=0.1)
    tables, arrays, values = graph.to_payload()
    CheckpointStore(tmp_path / "ckpt").save("graph_created", step="graph_created", key="k",
                                            tables=tables, arrays=arrays, values=values)
    out = tmp_path / "figures.json"
    example = load_example()
    returned = example.main([str(tmp_path / "ckpt"), "--epochs", "1", "--gbt-iter", "5",
                             "--device", "cpu", "--hidden", "16", "--out-json", str(out)])
    figures = json.loads(out.read_text())
    assert figures["f1"] == returned["f1"]
    assert set(figures["f1"]) == {"gnn", "gbt", "gnn_shuffled", "gbt_shuffled"}
    assert all(0.0 <= v <= 1.0 for v in figures["f1"].values())
    assert set(figures["seconds"]) == set(figures["f1"])
    assert figures["graph"]["num_edges"] == 600 and sum(figures["graph"]["edges_per_split"]) == 600


def test_threshold_choice_maximises_validation_f1():
    import numpy as np

    example = load_example()
    y = np.array([0, 0, 1, 0, 1, 1])
    p = np.array([0.1, 0.2, 0.3, 0.35, 0.8, 0.9])
    threshold = example.best_threshold(y, p)
    assert example.f1_at(y, p, threshold) == pytest.approx(max(
        example.f1_at(y, p, t) for t in p))
    assert example.best_threshold(np.zeros(3), p[:3]) == 0.5


def test_pyg_export_input_carries_the_same_fields(tmp_path):
    import numpy as np

    from amlgraph.export import export_graph
    from amlgraph.export._pyg import load_pyg

    graph = random_graph(30, 200, seed=4)
    export_graph(graph, "pyg", tmp_path)
    view = load_example().PygGraph(load_pyg(tmp_path))
    for name in ("x", "edge_index", "edge_attr", "y", "split"):
        np.testing.assert_array_equal(getattr(view, name), getattr(graph, name), err_msg=name)
    assert view.class_weights == graph.class_weights
    assert (view.num_nodes, view.num_edges) == (30, 200)
