"""examples/train_gnn.py: the per-split protocol, edge mini-batches, the sampler, the help text.

Graphs are tiny (a few hundred edges) and runs take one or two epochs of a few batches.
"""
from __future__ import annotations

import dataclasses
import importlib.util
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("torch")
pytest.importorskip("torch_geometric")

from amlgraph.graph import random_graph
from amlgraph.store import CheckpointStore

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "train_gnn.py"
pytestmark = pytest.mark.pyg
FAST = ["--gbt-iter", "5", "--device", "cpu", "--hidden", "8", "--threads", "1"]


def load_example():
    spec = importlib.util.spec_from_file_location("train_gnn_example", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def marked_graph(num_nodes: int = 80, num_edges: int = 900, seed: int = 3):
    """A graph with three different node-feature views and edges that name their split.

    Node feature 0 is 1.0 in ``x_train``, 2.0 in ``x_val`` and 3.0 in ``x`` (the test view); the
    last edge feature is the edge's split code. So any input a model gets says which view and
    which edges it came from.
    """
    g = random_graph(num_nodes, num_edges, seed=seed, laundering_rate=0.15)
    views = {}
    for name, marker in (("x_train", 1.0), ("x_val", 2.0), ("x", 3.0)):
        view = np.array(g.x)
        view[:, 0] = marker
        views[name] = view
    edge_attr = np.array(g.edge_attr)
    edge_attr[:, -1] = g.split
    return dataclasses.replace(g, edge_attr=edge_attr, **views)


def test_smoke_run_through_the_store_takes_several_steps_per_epoch(tmp_path):
    graph = marked_graph()
    assert graph.has_split_views
    tables, arrays, values = graph.to_payload()
    CheckpointStore(tmp_path / "ckpt").save("graph_created", step="graph_created", key="k",
                                            tables=tables, arrays=arrays, values=values)
    out = tmp_path / "figures.json"
    returned = load_example().main([str(tmp_path / "ckpt"), "--epochs", "2", "--batch-size", "64",
                                    "--out-json", str(out), *FAST])
    figures = json.loads(out.read_text())
    assert figures["f1"] == returned["f1"]
    assert set(figures["f1"]) == {"gnn", "gbt", "gnn_shuffled", "gbt_shuffled"}
    assert all(0.0 <= v <= 1.0 for v in figures["f1"].values())
    assert set(figures["seconds"]) == set(figures["cpu_seconds"]) == set(figures["f1"])
    assert figures["graph"]["num_edges"] == 900 and sum(figures["graph"]["edges_per_split"]) == 900
    assert figures["node_feature_views"] is True
    per_epoch = math.ceil(int(np.count_nonzero(graph.split == 0)) / 64)
    assert per_epoch >= 5
    assert figures["steps"] == {"gnn": 2 * per_epoch, "gnn_shuffled": 2 * per_epoch}
    assert figures["epochs"] == {"gnn": 2, "gnn_shuffled": 2}


def test_step_budget_stops_training_mid_epoch():
    figures = load_example().main(["--epochs", "3", "--batch-size", "32", "--max-steps", "4",
                                   *FAST], graph=marked_graph())
    assert figures["steps"] == {"gnn": 4, "gnn_shuffled": 4}
    assert 0 < figures["epochs"]["gnn"] < 1


def test_gnn_trains_on_train_edges_with_x_train_and_scores_each_split_with_its_view(monkeypatch):
    import torch

    example = load_example()
    calls = []
    build = example.build_model

    def recording_model(*args, **kwargs):
        inner = build(*args, **kwargs)

        class Recorder(torch.nn.Module):
            def __init__(self):
                super().__init__()
                self.inner = inner

            def forward(self, x, edge_index, edge_attr, target_pos, *rest):
                calls.append({
                    "training": self.training,
                    "x": set(x[:, 0].tolist()),
                    "edges": set(edge_attr[:, -1].tolist()),
                    "targets": set(edge_attr[target_pos, -1].tolist()),
                    "count": len(target_pos),
                })
                return self.inner(x, edge_index, edge_attr, target_pos, *rest)

            def infer(self, x, layers, target_index, target_attr, *, chunk):
                calls.append({
                    "training": self.training,
                    "x": set(x[:, 0].tolist()),
                    "edges": set().union(*(a[:, -1].tolist() for _, a in layers)),
                    "targets": set(target_attr[:, -1].tolist()),
                    "count": len(target_attr),
                })
                return self.inner.infer(x, layers, target_index, target_attr, chunk=chunk)

        return Recorder()

    monkeypatch.setattr(example, "build_model", recording_model)
    graph = marked_graph()
    figures = example.main(["--epochs", "2", "--batch-size", "64", "--eval-chunk", "100",
                            *FAST], graph=graph)
    train = [c for c in calls if c["training"]]
    scoring = [c for c in calls if not c["training"]]
    assert len(train) == figures["steps"]["gnn"] + figures["steps"]["gnn_shuffled"]
    for call in train:  # training: x_train, training edges only, training targets
        assert call == {**call, "x": {1.0}, "edges": {0.0}, "targets": {0.0}}
    val = [c for c in scoring if c["x"] == {2.0}]
    test = [c for c in scoring if c["x"] == {3.0}]
    assert len(val) + len(test) == len(scoring)
    for call in val:  # validation: x_val, training + validation edges, validation targets
        assert call["edges"] <= {0.0, 1.0} and call["targets"] == {1.0}
    for call in test:  # test: x, every edge, test targets
        assert call["targets"] == {2.0}
    n_val, n_test = int(np.sum(graph.split == 1)), int(np.sum(graph.split == 2))
    assert [c["count"] for c in val] == [n_val] * 4  # after each of two epochs, two models
    assert [c["count"] for c in test] == [n_test] * 2


def test_gbt_node_columns_come_from_each_split_view(monkeypatch):
    import sklearn.ensemble

    example = load_example()
    seen = []

    class FakeGBT:
        def __init__(self, **kwargs):
            pass

        def fit(self, features, y, sample_weight=None):
            seen.append(("fit", features))
            return self

        def predict_proba(self, features):
            seen.append(("predict", features))
            p = features[:, 0] * 0 + 0.5
            return np.stack([1 - p, p], axis=1)

    monkeypatch.setattr(sklearn.ensemble, "HistGradientBoostingClassifier", FakeGBT)
    graph = marked_graph()
    views = example.split_views(graph)
    y_train = views["train"].y[views["train"].score]
    args = example.parse_args(FAST)
    example.train_gbt(views, y_train, graph.class_weights, args)
    d, f = graph.edge_attr.shape[1], graph.x.shape[1]
    assert [kind for kind, _ in seen] == ["fit", "predict", "predict"]
    for (_, features), split, marker in zip(seen, (0, 1, 2), (1.0, 2.0, 3.0)):
        assert features.shape == (int(np.sum(graph.split == split)), d + 2 * f)
        assert set(features[:, d - 1]) == {split}  # the scored edges are that split's
        assert set(features[:, d]) == {marker} and set(features[:, d + f]) == {marker}


def test_split_views_follow_for_split():
    example = load_example()
    graph = marked_graph()
    views = example.split_views(graph)
    for name, code, x in (("train", 0, graph.x_train), ("val", 1, graph.x_val),
                          ("test", 2, graph.x)):
        view = views[name]
        np.testing.assert_array_equal(view.x, x)
        assert int(view.split.max()) == code and len(view.split) == int(np.sum(graph.split <= code))
        np.testing.assert_array_equal(view.split[view.score], code)


def test_sampler_subgraph_is_consistent_and_bounded():
    import torch

    example = load_example()
    view = example.split_views(random_graph(200, 3000, seed=1))["test"]
    targets = view.score[:50]
    for fanouts in ([3, 2], [-1, -1], [2, 2, 2]):
        sampler = example.NeighbourSampler(view.edge_index, view.num_nodes, fanouts)
        batch = sampler.sample(targets, np.random.default_rng(0))
        np.testing.assert_array_equal(view.edge_index[:, batch.edges],
                                      batch.nodes[batch.edge_index])
        np.testing.assert_array_equal(batch.edges[batch.target_pos], targets)
        assert len(np.unique(batch.edges)) == len(batch.edges)
        assert len(np.unique(batch.nodes)) == len(batch.nodes)
        assert batch.node_counts[-1] == len(batch.nodes)
        assert batch.edge_counts[-1] == len(batch.edges)
        # the trimmed forward pass gives the logits of the full pass over the subgraph
        model = example.build_model(3, 4, 8, len(fanouts)).eval()
        inputs = example._Tensors(view).inputs(batch, "cpu")
        with torch.no_grad():
            torch.testing.assert_close(model(*inputs), model(*inputs[:4]))
    sampler = example.NeighbourSampler(view.edge_index, view.num_nodes, [3])
    nodes = np.arange(view.num_nodes)
    edges = sampler.in_edges(nodes, 3, np.random.default_rng(1))
    indegree = np.bincount(view.edge_index[1], minlength=view.num_nodes)
    np.testing.assert_array_equal(np.bincount(view.edge_index[1, edges], minlength=view.num_nodes),
                                  np.minimum(indegree, 3))
    assert len(np.unique(edges)) == len(edges)


def test_scoring_with_every_neighbour_equals_a_full_graph_pass():
    import torch

    example = load_example()
    views = example.split_views(random_graph(200, 3000, seed=1))
    torch.manual_seed(0)
    model = example.build_model(3, 4, 8, 2).eval()
    for name in ("val", "test"):
        view = views[name]
        tensors = example._Tensors(view)
        with torch.no_grad():
            logits = model(tensors.x, torch.from_numpy(view.edge_index), tensors.edge_attr,
                           torch.from_numpy(view.score))
        full = torch.softmax(logits, dim=1)[:, 1].numpy()
        for chunk in ("50", "1000000"):  # node ranges of ~50 edges, or one pass
            args = example.parse_args(["--fanouts=-1,-1", "--eval-chunk", chunk])
            np.testing.assert_allclose(example.score_edges(model, view, args, "cpu", seed=0),
                                       full, atol=1e-6)


def test_help_text_is_complete():
    example = load_example()
    help_text = subprocess.run([sys.executable, str(EXAMPLE), "--help"], capture_output=True,
                               text=True, check=True).stdout
    flat = " ".join(help_text.split())
    doc = example.__doc__.strip()
    for paragraph in doc.split("\n\n"):  # the whole docstring, no paragraph cut
        assert " ".join(paragraph.split()) in flat
    description, _ = example._help_parts()
    assert description.rstrip().endswith(".")
    for action in example.build_parser()._actions:
        if action.dest == "help":  # argparse's own
            continue
        assert action.help and action.help.rstrip().endswith((".", ")")), action.dest
        if action.option_strings:
            assert action.option_strings[-1] in help_text


def test_threshold_choice_maximises_validation_f1():
    example = load_example()
    y = np.array([0, 0, 1, 0, 1, 1])
    p = np.array([0.1, 0.2, 0.3, 0.35, 0.8, 0.9])
    threshold = example.best_threshold(y, p)
    assert example.f1_at(y, p, threshold) == pytest.approx(max(
        example.f1_at(y, p, t) for t in p))
    assert example.best_threshold(np.zeros(3), p[:3]) == 0.5


def test_pyg_export_input_carries_the_same_fields(tmp_path):
    from amlgraph.export import export_graph
    from amlgraph.export._pyg import load_pyg

    graph = random_graph(30, 200, seed=4)
    export_graph(graph, "pyg", tmp_path)
    view = load_example().PygGraph(load_pyg(tmp_path))
    for name in ("x", "edge_index", "edge_attr", "y", "split"):
        np.testing.assert_array_equal(getattr(view, name), getattr(graph, name), err_msg=name)
    assert view.class_weights == graph.class_weights
    assert (view.num_nodes, view.num_edges) == (30, 200)
    assert not view.has_split_views  # the export holds one node-feature view
    for name in ("train", "val", "test"):
        mine, theirs = view.for_split(name), graph.for_split(name)
        for field in ("x", "edge_index", "edge_attr", "y", "split"):
            np.testing.assert_array_equal(getattr(mine, field), getattr(theirs, field))


def test_pyg_export_input_gives_each_split_its_node_features(tmp_path):
    import dataclasses

    from amlgraph.export import export_graph

    base = random_graph(30, 200, seed=5)
    rng = np.random.default_rng(0)
    graph = dataclasses.replace(base, x_train=rng.normal(size=base.x.shape).astype(np.float32),
                                x_val=rng.normal(size=base.x.shape).astype(np.float32))
    assert graph.has_split_views
    export_graph(graph, "pyg", tmp_path)
    view = load_example().PygGraph.from_export(tmp_path)
    assert view.has_split_views
    for name in ("train", "val", "test"):
        np.testing.assert_array_equal(view.node_features_of(name), graph.node_features_of(name))
        mine, theirs = view.for_split(name), graph.for_split(name)
        for field in ("x", "edge_index", "edge_attr", "y", "split"):
            np.testing.assert_array_equal(getattr(mine, field), getattr(theirs, field))
