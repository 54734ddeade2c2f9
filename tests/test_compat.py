"""The seed's checkpoint functions: names, call shapes, no pickle."""
from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from amlgraph import (create_checkpoint_dir, list_available_checkpoints, load_checkpoint,
                      resume_from_checkpoint, save_checkpoint)
from amlgraph.errors import CheckpointError, ConfigError
from amlgraph.store import CheckpointStore


def test_create_checkpoint_dir_names(tmp_path):
    assert create_checkpoint_dir(tmp_path, 10000) == tmp_path / "checkpoints_10000"
    assert create_checkpoint_dir(tmp_path, None) == tmp_path / "checkpoints_all"
    assert (tmp_path / "checkpoints_all" / "amlgraph-store.json").is_file()
    with pytest.raises(ConfigError, match="sample_size"):
        create_checkpoint_dir(tmp_path, -1)


@pytest.mark.parametrize("data", [
    pl.DataFrame({"a": [1, 2], "b": ["x", "y"]}),
    np.arange(12.0).reshape(3, 4),
    {"node_features": np.ones((2, 3)), "accounts": pl.DataFrame({"id": [1]}), "sample_size": 100},
    {0: 1.0, 1: 42.5},
    [1, "two", None],
])
def test_save_load_round_trip(tmp_path, data):
    d = create_checkpoint_dir(tmp_path, 100)
    save_checkpoint(d, "node_features", data, {"step": "node_features", "num_accounts": 2})
    got, meta = load_checkpoint(d, "node_features")
    assert meta["num_accounts"] == 2 and meta["step"] == "node_features" and "timestamp" in meta
    _assert_same(got, data)


def _assert_same(got, want):
    if isinstance(want, pl.DataFrame):
        assert_frame_equal(got, want)
    elif isinstance(want, np.ndarray):
        np.testing.assert_array_equal(got, want)
        assert got.flags.writeable
    elif isinstance(want, dict):
        assert list(got) == list(want)
        for k in want:
            _assert_same(got[k], want[k])
    else:
        assert got == want


def test_pandas_frames_come_back_as_pandas(tmp_path):
    d = create_checkpoint_dir(tmp_path, None)
    df = pd.DataFrame({"a": [1.5, 2.5], "s": ["x", "y"]})
    save_checkpoint(d, "edge_features", df)
    got, _ = load_checkpoint(d, "edge_features")
    pd.testing.assert_frame_equal(got, df)


def test_absent_or_damaged_is_none_none(tmp_path):
    d = create_checkpoint_dir(tmp_path, 5)
    assert load_checkpoint(d, "weights") == (None, None)
    assert load_checkpoint(tmp_path / "nowhere", "weights") == (None, None)
    save_checkpoint(d, "weights", {"a": 1})
    store = CheckpointStore(d)
    gen = d / "weights" / store.manifest("weights")["generation"]
    (gen / "values.json").write_text("{}")  # different size: quick verification catches it
    assert load_checkpoint(d, "weights") == (None, None)
    assert list_available_checkpoints(d) == []


def test_list_in_pipeline_and_numeric_chunk_order(tmp_path):
    d = create_checkpoint_dir(tmp_path, 5)
    for n in ["weights", "node_features_chunk_10", "data_loaded", "node_features_chunk_2", "node_features"]:
        save_checkpoint(d, n, {"n": n})
    assert list_available_checkpoints(d) == [
        "data_loaded", "node_features", "node_features_chunk_2", "node_features_chunk_10", "weights"]
    assert CheckpointStore(d).manifest("node_features_chunk_10")["chunk"] == 10
    assert list_available_checkpoints(tmp_path / "nowhere") == []


def test_key_is_the_content_hash(tmp_path):
    d = create_checkpoint_dir(tmp_path, 5)
    save_checkpoint(d, "normalized", np.arange(5))
    k1 = CheckpointStore(d).manifest("normalized")["key"]
    save_checkpoint(d, "normalized", np.arange(5))
    assert CheckpointStore(d).manifest("normalized")["key"] == k1
    save_checkpoint(d, "normalized", np.arange(6))
    assert CheckpointStore(d).manifest("normalized")["key"] != k1


def test_resume_from_checkpoint(tmp_path):
    d = create_checkpoint_dir(tmp_path, 5)
    save_checkpoint(d, "node_features", {"f": [1, 2]}, {"num_features": 2})
    data, meta = resume_from_checkpoint(d, "node_features")
    assert data == {"f": [1, 2]} and meta["num_features"] == 2
    assert resume_from_checkpoint(d, "edge_features") == (None, None)
    with pytest.raises(ConfigError, match="must be one of"):
        resume_from_checkpoint(d, "bogus")


def test_bad_names_and_unstorable_data(tmp_path):
    d = create_checkpoint_dir(tmp_path, 5)
    with pytest.raises(CheckpointError, match="invalid"):
        save_checkpoint(d, "../escape", [1])
    with pytest.raises(CheckpointError, match="invalid"):
        load_checkpoint(d, "a/b")
    with pytest.raises(CheckpointError, match="JSON"):
        save_checkpoint(d, "weights", object())
