"""PyG conversion and the tensors-only graph.pt export."""
from __future__ import annotations

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("torch_geometric")

from torch_geometric.data import Data, HeteroData  # noqa: E402

from amlgraph.errors import InputError  # noqa: E402
from amlgraph.export import FILES, export_graph  # noqa: E402
from amlgraph.export._pyg import load_pyg  # noqa: E402
from amlgraph.graph import random_graph  # noqa: E402

pytestmark = pytest.mark.pyg


def assert_matches(data, g, fwd=None):
    edges = data if fwd is None else data[fwd]
    nodes = data if fwd is None else data["node"]
    np.testing.assert_array_equal(nodes.x.numpy(), g.x)
    np.testing.assert_array_equal(nodes.node_y.numpy(), g.node_y)
    np.testing.assert_array_equal(edges.edge_index.numpy(), g.edge_index)
    np.testing.assert_array_equal(edges.edge_attr.numpy(), g.edge_attr)
    np.testing.assert_array_equal(edges.y.numpy(), g.y)
    np.testing.assert_array_equal(edges.timestamp.numpy(), g.timestamp)
    np.testing.assert_array_equal(edges.edge_row.numpy(), g.edge_row)
    for name in ("train_mask", "val_mask", "test_mask"):
        assert getattr(edges, name).dtype == torch.bool
        np.testing.assert_array_equal(getattr(edges, name).numpy(), getattr(g, name))
    assert edges.y.dtype == torch.long and edges.edge_index.dtype == torch.long
    assert data.node_feature_names == g.node_feature_names
    assert data.edge_feature_names == g.edge_feature_names
    assert data.class_weights == g.class_weights


def test_to_pyg_data():
    g = random_graph(30, 200, seed=1)
    data = g.to_pyg()
    assert isinstance(data, Data) and data.num_nodes == 30 and data.num_edges == 200
    assert_matches(data, g)
    data.validate(raise_on_error=True)


def test_to_pyg_reverse_edges_hetero_shapes():
    g = random_graph(30, 200, seed=2)
    data = g.to_pyg(reverse_edges=True)
    assert isinstance(data, HeteroData)
    fwd, rev = ("node", "to", "node"), ("node", "rev_to", "node")
    assert set(data.edge_types) == {fwd, rev}
    assert data[fwd].edge_index.shape == data[rev].edge_index.shape == (2, 200)
    assert data[rev].edge_attr.shape == (200, 4)
    np.testing.assert_array_equal(data[rev].edge_index.numpy(), g.edge_index[::-1])
    np.testing.assert_array_equal(data[rev].edge_attr.numpy(), g.edge_attr)
    assert data["node"].num_nodes == 30
    assert_matches(data, g, fwd)


@pytest.mark.parametrize("reverse", [False, True])
def test_export_round_trip_weights_only(tmp_path, reverse):
    g = random_graph(25, 150, seed=3)
    paths = export_graph(g, "pyg", tmp_path / "out", reverse_edges=reverse)
    assert [p.name for p in paths] == list(FILES["pyg"])
    raw = torch.load(tmp_path / "out" / "graph.pt", weights_only=True)
    assert isinstance(raw, dict) and all(torch.is_tensor(v) for v in raw.values())
    meta = json.loads((tmp_path / "out" / "graph.json").read_text())
    assert meta["vocab"] == g.vocab and meta["kind"] == ("hetero" if reverse else "data")
    data = load_pyg(tmp_path / "out")
    assert isinstance(data, HeteroData if reverse else Data)
    assert_matches(data, g, ("node", "to", "node") if reverse else None)
    assert not list((tmp_path / "out").glob(".*tmp"))  # no temporary files left behind


def test_load_pyg_accepts_the_pt_path_and_overrides_kind(tmp_path):
    g = random_graph(10, 40, seed=4)
    export_graph(g, "pyg", tmp_path)
    assert isinstance(load_pyg(tmp_path / "graph.pt", reverse_edges=True), HeteroData)


class Planted:
    """Unpickling this would call print: weights_only loading must refuse it."""

    def __reduce__(self):
        return (print, ("code ran",))


def test_planted_pickle_is_refused(tmp_path, capsys):
    g = random_graph(10, 40, seed=5)
    export_graph(g, "pyg", tmp_path)
    torch.save({"node.x": torch.zeros(1), "evil": Planted()}, tmp_path / "graph.pt")
    with pytest.raises(InputError, match="refusing to unpickle"):
        load_pyg(tmp_path)
    assert "code ran" not in capsys.readouterr().out


def test_missing_json_is_reported(tmp_path):
    g = random_graph(10, 40, seed=6)
    export_graph(g, "pyg", tmp_path)
    (tmp_path / "graph.json").unlink()
    with pytest.raises(InputError, match="graph.json"):
        load_pyg(tmp_path)


def test_memory_mapped_arrays_convert(tmp_path):
    g = random_graph(10, 40, seed=7)
    np.save(tmp_path / "ea.npy", g.edge_attr)
    before = g.edge_attr.copy()
    g.edge_attr = np.load(tmp_path / "ea.npy", mmap_mode="r")
    data = g.to_pyg()
    data.edge_attr[:] = 7.0  # writable: torch owns a copy, the map is untouched
    np.testing.assert_array_equal(g.edge_attr, before)
