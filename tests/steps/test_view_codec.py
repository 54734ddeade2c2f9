"""The node-feature views are stored XOR-coded (steps._view_codec): decoding gives every bit back."""
from __future__ import annotations

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from amlgraph.errors import CheckpointError
from amlgraph.steps._view_codec import decode_views, encode_views, view_table

VIEWS = ["train", "val", "test"]


def _views(seed: int, n: int, same: float) -> dict[str, pl.DataFrame]:
    rng = np.random.default_rng(seed)
    train = pl.DataFrame({
        "node_id": np.arange(n, dtype=np.int64),
        "count": rng.integers(0, 9, n).astype(np.int64),
        "amount": rng.exponential(1e3, n),
        "ratio": rng.random(n).astype(np.float32),
        "flag": rng.integers(0, 2, n).astype(np.int8),
        "crypto": rng.random(n) < 0.5,
    })
    out, previous = {}, train
    for view in VIEWS:
        changed = rng.random(n) >= same
        frame = previous.with_columns(
            pl.when(pl.Series(changed)).then(pl.col("count") + 1).otherwise(pl.col("count")).alias("count"),
            pl.when(pl.Series(changed)).then(pl.col("amount") * 1.5 + 0.1).otherwise(pl.col("amount")).alias("amount"),
        ) if view != "train" else train
        out[view] = frame
        previous = frame
    return out


@settings(max_examples=25, deadline=None)
@given(seed=st.integers(0, 2**31), n=st.integers(0, 300), same=st.floats(0, 1))
def test_decoding_gives_every_view_back_bit_for_bit(seed, n, same):
    feats = _views(seed, n, same)
    feats["test"] = feats["test"].with_columns(  # special floats survive: they travel as bits
        pl.Series("amount", np.where(np.arange(n) % 7 == 3, -0.0, feats["test"]["amount"].to_numpy())))
    tables = encode_views(feats)
    assert list(tables) == ["features_train", "xor_val", "xor_test"]
    assert tables["xor_val"]["amount"].dtype == pl.UInt64 and tables["xor_val"]["ratio"].dtype == pl.UInt32
    decoded = dict(decode_views(tables.__getitem__, VIEWS))
    for view in VIEWS:
        assert decoded[view].schema == feats[view].schema
        for col in feats[view].columns:
            got, want = decoded[view][col].to_numpy(), feats[view][col].to_numpy()
            assert got.tobytes() == want.tobytes(), (view, col)


def test_equal_rows_are_stored_as_zeros_and_compress():
    feats = _views(1, 50_000, 0.8)
    tables = encode_views(feats)
    unchanged = (feats["val"]["amount"] == feats["train"]["amount"]).to_numpy()
    assert (tables["xor_val"]["amount"].to_numpy()[unchanged] == 0).all() and unchanged.mean() > 0.7
    import io

    def size(frame):
        buf = io.BytesIO()
        frame.write_parquet(buf, compression="zstd", compression_level=1)
        return len(buf.getvalue())

    assert size(tables["xor_val"]) < 0.6 * size(feats["val"])


def test_one_view_is_stored_whole_and_columns_can_be_chosen():
    feats = _views(2, 100, 0.5)
    one = encode_views({"all": feats["test"]})
    assert list(one) == ["features_all"] and view_table(["all"], "all") == "features_all"
    tables = encode_views(feats)
    decoded = dict(decode_views(tables.__getitem__, VIEWS, ["amount"]))
    assert decoded["test"].columns == ["amount"]
    assert decoded["test"]["amount"].equals(feats["test"]["amount"])


def test_misaligned_views_are_a_clear_error():
    feats = _views(3, 100, 0.5)
    tables = encode_views(feats)
    tables["xor_val"] = tables["xor_val"].head(99)
    with pytest.raises(CheckpointError, match="do not line up"):
        dict(decode_views(tables.__getitem__, VIEWS))
