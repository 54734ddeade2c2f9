"""amlgraph.pyg.AMLDataset: PyG's dataset contract over amlgraph's checkpoints."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

pytestmark = pytest.mark.pyg
pytest.importorskip("torch_geometric")

from amlgraph.errors import ConfigError, InputError  # noqa: E402
from amlgraph.schema import STEPS  # noqa: E402


@pytest.fixture(scope="module")
def root(tmp_path_factory) -> Path:
    """A data set root with the tiny preset (files Tiny_*) in raw/, processed once."""
    from amlgraph.synth import generate

    root = tmp_path_factory.mktemp("aml")
    generate("tiny", root / "raw", seed=7)
    return root


@pytest.fixture(scope="module")
def first(root):
    """The first construction: it runs every step."""
    from amlgraph.pyg import AMLDataset

    return AMLDataset(root, name="Tiny", log=False)


def _manifests(root: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in (root / "processed" / "Tiny").rglob("manifest.json")}


def test_processing_runs_the_pipeline_into_processed(first, root):
    from torch_geometric.data import Data

    assert first.run_result.computed == list(STEPS)
    ckpt = root / "processed" / "Tiny"
    assert (ckpt / "graph_created" / "manifest.json").is_file()
    assert first.processed_dir == str(ckpt) and first.raw_file_names == ["Tiny_Trans.csv"]
    assert not list(root.rglob("*.pt")), "nothing is pickled: no data.pt, pre_transform.pt, pre_filter.pt"
    assert len(first) == 1 and first.num_classes == 2
    data = first[0]
    assert isinstance(data, Data)
    assert data.num_edges == 10_000 and data.num_nodes == first.run_result.graph.num_nodes
    assert int(data.train_mask.sum() + data.val_mask.sum() + data.test_mask.sum()) == data.num_edges
    assert first.num_node_features == data.x.shape[1] and first.num_edge_features == data.edge_attr.shape[1]


def test_a_second_instance_reuses_the_checkpoints(first, root):
    from amlgraph.pyg import AMLDataset

    before = _manifests(root)
    again = AMLDataset(root, name="Tiny", log=False)
    assert again.run_result.computed == []
    assert "graph_created" in again.run_result.loaded
    assert _manifests(root) == before, "no checkpoint was rewritten"
    assert np.array_equal(again[0].edge_index.numpy(), first[0].edge_index.numpy())


@pytest.mark.parametrize("split", ["train", "val", "test"])
def test_split_graphs_as_multignn_builds_them(first, root, split):
    from amlgraph.pyg import AMLDataset
    from amlgraph.runner import load_graph

    full = load_graph(root / "processed" / "Tiny")
    code = {"train": 0, "val": 1, "test": 2}[split]
    keep = full.split <= code
    ds = AMLDataset(root, name="Tiny", split=split, log=False)
    data = ds[0]
    assert ds.run_result.computed == []
    assert data.num_edges == int(keep.sum())
    # the split's edges, in their order in the full graph, with their own attributes
    assert np.array_equal(data.edge_row.numpy(), full.edge_row[keep])
    assert np.array_equal(data.edge_index.numpy(), full.edge_index[:, keep])
    assert np.array_equal(data.y.numpy(), full.y[keep])
    assert np.array_equal(data.edge_attr.numpy(), full.edge_attr[keep])
    # the masks mark each split's edges of this graph; the split's own mask is the one evaluated
    for name, c in (("train_mask", 0), ("val_mask", 1), ("test_mask", 2)):
        assert np.array_equal(getattr(data, name).numpy(), full.split[keep] == c), name
    own = getattr(data, f"{split}_mask")
    assert int(own.sum()) == int(np.count_nonzero(full.split == code)) > 0
    if split == "train":
        assert bool(data.train_mask.all()) and not data.val_mask.any() and not data.test_mask.any()
    # node features: the split's view (training rows only for the training graph)
    view = full.node_features_of(split) if hasattr(full, "node_features_of") else full.x
    assert np.array_equal(data.x.numpy(), view)
    assert data.num_nodes == full.num_nodes


def test_transforms(root, first):
    from amlgraph.pyg import AMLDataset

    calls = []

    def pre(d):
        calls.append(1)
        d.pre = 1
        return d

    def tf(d):
        d.seen = True
        return d

    ds = AMLDataset(root, name="Tiny", split="val", transform=tf, pre_transform=pre, log=False)
    assert ds[0].seen and ds[0].pre == 1 and len(calls) == 1


def test_download_says_where_to_put_the_ibm_files(tmp_path):
    from amlgraph.pyg import AMLDataset

    with pytest.raises(InputError) as err:
        AMLDataset(tmp_path / "ibm", name="HI-Small")
    text = str(err.value)
    assert "cannot be downloaded" in text and "HI-Small_Trans.csv" in text
    assert str(tmp_path / "ibm" / "raw") in text and "HI-Small_Patterns.txt" in text
    assert (tmp_path / "ibm" / "raw").is_dir()  # PyG made it, ready for the files


def test_bad_arguments_fail_before_any_work(tmp_path):
    from amlgraph.pyg import AMLDataset

    with pytest.raises(ConfigError, match="split must be one of"):
        AMLDataset(tmp_path, name="Tiny", split="validation")
    with pytest.raises(ConfigError, match="name must be a file prefix"):
        AMLDataset(tmp_path, name="../x")
    with pytest.raises(ConfigError, match="may not set"):
        AMLDataset(tmp_path, name="Tiny", options={"checkpoint_dir": tmp_path})
    assert not (tmp_path / "raw").exists()
