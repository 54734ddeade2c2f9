"""Chunk task helpers: the normalised edge matrix."""
from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from amlgraph.steps import normalized as tasks
from amlgraph.steps.normalized import StandardScaler


def _frame(n: int, seed: int = 0) -> pl.DataFrame:
    rng = np.random.default_rng(seed)
    return pl.DataFrame({
        "amount": rng.lognormal(5, 3, n),                                   # scaled, log1p first
        "hour_sin": np.sin(rng.integers(0, 24, n) * 2 * np.pi / 24),        # scaled
        "timestamp_rel": rng.integers(0, 40_000_000, n, dtype=np.int64),  # scaled, an integer column
        "payment_format": rng.integers(0, 7, n).astype(np.int16),           # left as it is
        "same_bank": rng.integers(0, 2, n).astype(np.int8),                 # left as it is
    })


def _straight(feats: pl.DataFrame, columns, scaled, scaler, logged) -> np.ndarray:
    """The whole-matrix reading of the definition: float64 columns, log1p, standardise, float32."""
    x = feats.select(columns).to_numpy().astype(np.float64)
    for i, name in enumerate(scaled):
        j = columns.index(name)
        col = np.log1p(np.maximum(x[:, j], 0.0)) if name in logged else x[:, j]
        x[:, j] = (col - scaler.mean_[i]) / scaler.scale_[i]
    return x.astype(np.float32)


@pytest.mark.parametrize("n, block", [(20_001, None), (10, 3), (1, 4), (0, 8)])
def test_edge_matrix_equals_the_whole_matrix_computation(monkeypatch, n, block):
    if block is not None:
        monkeypatch.setattr(tasks, "_MATRIX_BLOCK_ROWS", block)
    feats = _frame(n)
    columns = ["payment_format", "amount", "same_bank", "hour_sin", "timestamp_rel"]
    scaled, logged = ["amount", "hour_sin", "timestamp_rel"], ["amount"]
    fit = _frame(500, seed=1)
    block_ = fit.select(scaled).to_numpy().astype(np.float64)
    block_[:, 0] = np.log1p(block_[:, 0])
    scaler = StandardScaler().fit(block_)
    got = tasks.edge_matrix(feats, columns, scaled, scaler, logged)
    want = _straight(feats, columns, scaled, scaler, logged)
    assert got.dtype == np.float32 and got.shape == (n, len(columns)) and got.flags.c_contiguous
    # bit for bit: the blocks must not change a single rounding
    assert np.array_equal(got.view(np.uint32), want.view(np.uint32))
    if n:
        assert np.array_equal(got[:, 0], feats["payment_format"].to_numpy().astype(np.float32))
