"""Hand-built coded transaction frames for the step tests (numpy random, fixed seeds)."""
from __future__ import annotations

import numpy as np
import polars as pl
import pytest

from amlgraph.schema import CURRENCIES, PAYMENT_FORMATS

SEP_1_2022 = 1_661_990_400  # 2022-09-01 00:00 UTC, a Thursday


def _make_tx(n: int = 400, n_nodes: int = 60, seed: int = 0, shuffle_rows: bool = True) -> pl.DataFrame:
    """Coded transactions over ``n_nodes`` nodes (the last 5 never transact).

    Includes self-transfers, cross-currency rows, Bitcoin rows, a single-row node (id n_nodes-6)
    and rows spread over 12 days, weekends and nights.
    """
    rng = np.random.default_rng(seed)
    active = n_nodes - 6
    src = rng.integers(0, active, n)
    dst = rng.integers(0, active, n)
    self_rows = rng.random(n) < 0.08
    dst[self_rows] = src[self_rows]
    bank_of = rng.integers(0, 8, n_nodes) * 10 + 1  # bank ids 1, 11, ..., 71
    pay = rng.integers(0, len(CURRENCIES), n)
    same = rng.random(n) < 0.7
    rec = np.where(same, pay, rng.integers(0, len(CURRENCIES), n))
    fmt = rng.integers(0, len(PAYMENT_FORMATS), n)
    paid = np.round(rng.exponential(500.0, n), 2)
    paid[rng.random(n) < 0.03] = 0.0
    received = np.where(pay == rec, paid, np.round(paid * rng.uniform(0.5, 2.0, n), 2))
    ts = SEP_1_2022 + rng.integers(0, 12 * 86_400 // 60, n) * 60
    # One node with exactly one row (as sender).
    src[0], dst[0] = active, 1
    rows = rng.permutation(n) if shuffle_rows else np.arange(n)
    tx = pl.DataFrame({
        "row": rows.astype(np.int64), "timestamp": ts.astype(np.int64),
        "src": src.astype(np.int64), "dst": dst.astype(np.int64),
        "from_bank": bank_of[src].astype(np.int64), "to_bank": bank_of[dst].astype(np.int64),
        "amount_received": received, "amount_paid": paid,
        "receiving_currency": rec.astype(np.int16), "payment_currency": pay.astype(np.int16),
        "payment_format": fmt.astype(np.int16),
        "is_laundering": (rng.random(n) < 0.1).astype(np.int8),
        "split": rng.integers(0, 3, n).astype(np.int8),
    })
    return tx


@pytest.fixture
def make_tx():
    """Factory: ``make_tx(n=400, n_nodes=60, seed=0)`` -> coded transactions (Polars)."""
    return _make_tx


@pytest.fixture
def vocab() -> dict:
    return {"currencies": list(CURRENCIES), "payment_formats": list(PAYMENT_FORMATS),
            "banks": [b * 10 + 1 for b in range(8)]}
