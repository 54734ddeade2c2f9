"""TransactionGraph: validation, masks, checkpoint payload round trip, load_graph errors."""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import polars as pl
import pytest

from amlgraph.errors import CheckpointError, ConfigError
from amlgraph.graph import TransactionGraph, random_graph
from amlgraph.runner import load_graph


class DirCheckpoint:
    """A stand-in checkpoint over a directory: .parquet tables, .npy arrays, one JSON of values."""

    def __init__(self, root: Path):
        self.root = root

    @classmethod
    def save(cls, root: Path, tables, arrays, values) -> "DirCheckpoint":
        root.mkdir(parents=True, exist_ok=True)
        for name, table in tables.items():
            table.write_parquet(root / f"{name}.parquet")
        for name, array in arrays.items():
            np.save(root / f"{name}.npy", np.asarray(array))
        (root / "values.json").write_text(json.dumps(values))
        return cls(root)

    def table(self, name):
        return pl.read_parquet(self.root / f"{name}.parquet")

    def array(self, name, mmap=True):
        return np.load(self.root / f"{name}.npy", mmap_mode="r" if mmap else None)

    def value(self, name):
        return json.loads((self.root / "values.json").read_text())[name]


def assert_same_graph(a: TransactionGraph, b: TransactionGraph) -> None:
    assert a.nodes.equals(b.nodes)
    assert a.raw.equals(b.raw)
    for f in ("edge_index", "edge_row", "timestamp", "x", "edge_attr", "y", "node_y", "split"):
        np.testing.assert_array_equal(getattr(a, f), getattr(b, f), err_msg=f)
        assert getattr(a, f).dtype == getattr(b, f).dtype, f
    assert a.node_feature_names == b.node_feature_names
    assert a.edge_feature_names == b.edge_feature_names
    assert a.class_weights == b.class_weights
    assert a.vocab == b.vocab
    if a.synthetic_y is None:
        assert b.synthetic_y is None and b.synthetic_edge_attr is None
    else:
        np.testing.assert_array_equal(a.synthetic_y, b.synthetic_y)
        np.testing.assert_array_equal(a.synthetic_edge_attr, b.synthetic_edge_attr)


def test_sizes_masks_and_dtypes():
    g = random_graph(40, 300, seed=1)
    assert (g.num_nodes, g.num_edges) == (40, 300)
    masks = np.stack([g.train_mask, g.val_mask, g.test_mask])
    assert masks.dtype == bool and np.all(masks.sum(axis=0) == 1)
    np.testing.assert_array_equal(g.train_mask, g.split == 0)
    assert g.edge_index.dtype == np.int64 and g.x.dtype == np.float32 and g.y.dtype == np.int8
    # training edges come before validation edges, which come before test edges, in time
    assert g.timestamp[g.train_mask].max() <= g.timestamp[g.val_mask].min()
    assert g.timestamp[g.val_mask].max() <= g.timestamp[g.test_mask].min()
    # node_y marks exactly the endpoints of laundering edges
    expected = np.zeros(g.num_nodes, dtype=bool)
    expected[g.edge_index[:, g.y == 1].ravel()] = True
    np.testing.assert_array_equal(g.node_y.astype(bool), expected)


def test_dtypes_are_coerced():
    g = random_graph(10, 20, seed=2)
    h = dataclasses.replace(g, edge_index=g.edge_index.astype(np.int32), x=g.x.astype(np.float64),
                            y=g.y.astype(np.int64), class_weights={"0": 1, "1": 3})
    assert h.edge_index.dtype == np.int64 and h.x.dtype == np.float32 and h.y.dtype == np.int8
    assert h.class_weights == {0: 1.0, 1: 3.0}


@pytest.mark.parametrize("change, message", [
    (lambda g: {"edge_index": g.edge_index[:, :-1]}, "edge_row must have shape"),
    (lambda g: {"edge_index": g.edge_index.T}, "edge_index must have shape (2, E)"),
    (lambda g: {"edge_index": np.where(g.edge_index == 0, 10, g.edge_index)}, "outside [0, 10)"),
    (lambda g: {"edge_index": g.edge_index - 1}, "outside [0, 10)"),
    (lambda g: {"edge_index": g.edge_index.astype(np.float64)}, "edge_index must hold integers"),
    (lambda g: {"x": g.x[:, :2]}, "x must have shape (N, len(node_feature_names)) = (10, 3)"),
    (lambda g: {"edge_attr": g.edge_attr[:-1]}, "edge_attr must have shape"),
    (lambda g: {"edge_feature_names": ["a"]}, "edge_attr must have shape"),
    (lambda g: {"node_y": g.node_y[:-1]}, "node_y must have shape (10,)"),
    (lambda g: {"y": g.y + 2}, "y must hold 0 or 1"),
    (lambda g: {"split": g.split + 3}, "split must hold 0 (train)"),
    (lambda g: {"raw": g.raw[:-1]}, "raw must have 20 rows"),
    (lambda g: {"raw": g.raw.drop("to_bank")}, "missing ['to_bank']"),
    (lambda g: {"nodes": g.nodes.drop("account")}, "missing ['account']"),
    (lambda g: {"nodes": g.nodes.with_columns(node_id=g.nodes["node_id"].reverse())}, "node_id must be 0..9"),
    (lambda g: {"class_weights": {"zero": 1.0}}, "class_weights must map"),
    (lambda g: {"synthetic_y": np.ones(3, np.int8)}, "given together"),
    (lambda g: {"synthetic_y": np.ones(3, np.int8), "synthetic_edge_attr": np.ones((3, 2))},
     "synthetic_edge_attr must have shape"),
])
def test_validation_messages(change, message):
    g = random_graph(10, 20, seed=3)
    with pytest.raises(ConfigError) as info:
        dataclasses.replace(g, **change(g))
    assert message in str(info.value)


def test_empty_graph_is_valid():
    g = random_graph(5, 0, seed=0)
    assert g.num_edges == 0 and g.edge_index.shape == (2, 0)


@pytest.mark.parametrize("synthetic", [0, 7])
def test_payload_round_trip_memory_mapped(tmp_path, synthetic):
    g = random_graph(30, 200, seed=4, synthetic=synthetic)
    tables, arrays, values = g.to_payload(coded=False)  # as a graph too large to decode is written
    json.dumps(values)  # values must be JSON
    assert all(isinstance(a, np.ndarray) for a in arrays.values())
    ckpt = DirCheckpoint.save(tmp_path / "graph_created", tables, arrays, values)
    h = TransactionGraph.from_checkpoint(ckpt)
    assert_same_graph(g, h)
    assert isinstance(h.edge_attr, np.memmap) and isinstance(h.edge_index, np.memmap)
    assert h.raw.schema == g.raw.schema


def _with_views(g: TransactionGraph, seed: int) -> TransactionGraph:
    """``g`` with training and validation views: some rows equal to the next view's, some not."""
    rng = np.random.default_rng(seed)
    x_val = np.where(rng.random((g.num_nodes, 1)) < 0.6, g.x, g.x * 0.5 - 1).astype(np.float32)
    x_train = np.where(rng.random((g.num_nodes, 1)) < 0.6, x_val, 0).astype(np.float32)
    x_train[0, :] = [np.nan, -0.0, np.inf][: x_train.shape[1]]  # any bit pattern travels
    return TransactionGraph(**{**g.__dict__, "x_train": x_train, "x_val": x_val})


def test_coded_payload_round_trip_is_exact_to_the_bit(tmp_path):
    """A whole graph stores its views XOR-coded and edge_attr by column (graph._coding)."""
    g = _with_views(random_graph(300, 2_000, seed=9, synthetic=5), seed=1)
    tables, arrays, values = g.to_payload()
    assert values["coding"] == {"node_views": "xor", "edge_attr": "columns"}
    assert arrays["x_val"].dtype == np.uint32 and arrays["edge_attr"].shape == (len(g.edge_feature_names), 2_000)
    ckpt = DirCheckpoint.save(tmp_path / "graph_created", tables, arrays, values)
    h = TransactionGraph.from_checkpoint(ckpt)
    for name in ("x_train", "x_val", "x", "edge_attr"):
        assert getattr(h, name).tobytes() == getattr(g, name).tobytes(), name
        assert getattr(h, name).flags.c_contiguous and not getattr(h, name).flags.writeable
    assert_same_graph(g, h)


def test_from_checkpoint_missing_part(tmp_path):
    g = random_graph(10, 20, seed=5)
    tables, arrays, values = g.to_payload()
    del arrays["edge_attr"]
    ckpt = DirCheckpoint.save(tmp_path / "c", tables, arrays, values)
    with pytest.raises(CheckpointError, match="graph_created"):
        TransactionGraph.from_checkpoint(ckpt)


def test_load_graph_missing_directory(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint directory"):
        load_graph(tmp_path / "absent")


def test_repr_states_sizes():
    text = repr(random_graph(12, 34, seed=6, synthetic=2))
    assert "num_nodes=12" in text and "num_edges=34" in text and "synthetic=2" in text


def test_round_trip_through_the_checkpoint_store(tmp_path):
    from amlgraph.store import CheckpointStore

    g = random_graph(40, 300, seed=8, synthetic=4)
    tables, arrays, values = g.to_payload()
    CheckpointStore(tmp_path).save("graph_created", step="graph_created", key="k1",
                                   tables=tables, arrays=arrays, values=values)
    h = load_graph(tmp_path)
    assert_same_graph(g, h)
    assert not h.edge_attr.flags.writeable  # memory-mapped, read-only
    assert h.to_pyg().num_edges == 300


def test_load_graph_names_what_exists(tmp_path):
    from amlgraph.store import CheckpointStore

    CheckpointStore(tmp_path).save("data_loaded", step="data_loaded", key="k",
                                   arrays={"a": np.zeros(2)})
    with pytest.raises(CheckpointError, match=r"no valid 'graph_created' checkpoint \(found: data_loaded\)"):
        load_graph(tmp_path)


def test_for_split_builds_multignn_graphs():
    g = random_graph(num_nodes=30, num_edges=300, seed=5)
    x_train, x_val = np.asarray(g.x) + 1.0, np.asarray(g.x) + 2.0
    g = TransactionGraph(**{**{f: getattr(g, f) for f in g.__dataclass_fields__}, "x_train": x_train, "x_val": x_val})
    assert g.has_split_views
    for name, code in (("train", 0), ("val", 1), ("test", 2)):
        h = g.for_split(name)
        assert h.num_edges == int((g.split <= code).sum())
        assert np.array_equal(h.edge_row, g.edge_row[g.split <= code])
        assert np.array_equal(h.x, g.node_features_of(name))
        assert int((h.split == code).sum()) == int((g.split == code).sum())  # the edges to score
        assert h.raw.height == h.num_edges and not h.has_split_views
    with pytest.raises(ConfigError, match="split must be one of"):
        g.for_split("future")
