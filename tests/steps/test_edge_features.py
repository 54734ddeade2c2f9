from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from amlgraph.errors import InputError
from amlgraph.steps.edge_features import (
    CATEGORICAL_EDGE_FEATURES, EDGE_FEATURES, FLAG_EDGE_FEATURES, edge_features,
)

T0 = 1_661_990_400


def reference(tx: pd.DataFrame, t0: int, vocab: dict, rates: dict | None = None,
              since: dict | None = None) -> pd.DataFrame:
    """docs/FEATURES.md, row by row; ``rates``/``since`` as ``split_rates`` returns them (None:
    raw amounts)."""
    dt = pd.to_datetime(tx["timestamp"], unit="s")
    out = pd.DataFrame({"row": tx["row"]})
    for name, value, period in (("hour", dt.dt.hour, 24), ("weekday", dt.dt.day_of_week, 7),
                                ("month", dt.dt.month, 12)):
        out[f"{name}_sin"] = np.sin(2 * np.pi * value / period)
        out[f"{name}_cos"] = np.cos(2 * np.pi * value / period)
    out["log_amount_paid"] = np.log1p(tx["amount_paid"])
    out["log_amount_received"] = np.log1p(tx["amount_received"])
    if rates is None:
        out["paid_received_ratio"] = tx["amount_paid"] / tx["amount_received"].clip(lower=1)
        unpriced = [0] * len(tx)
    else:
        ratio, unpriced = [], []
        for paid, got, pc, rc, split in zip(tx["amount_paid"], tx["amount_received"], tx["payment_currency"],
                                            tx["receiving_currency"], tx["split"]):
            ok = all(rates[c] is not None and since[c] is not None and since[c] <= split for c in (pc, rc))
            unpriced.append(int(not ok))
            ratio.append(paid * rates[pc] / (got * rates[rc]) if ok and got * rates[rc] > 0 else 1.0)
        out["paid_received_ratio"] = ratio
    out["payment_currency"] = tx["payment_currency"]
    out["payment_format"] = tx["payment_format"]
    out["from_bank_code"] = tx["from_bank"].map({b: i for i, b in enumerate(vocab["banks"])})
    out["timestamp_rel"] = tx["timestamp"] - t0
    out["amount_received"] = tx["amount_received"]
    out["receiving_currency"] = tx["receiving_currency"]
    out["same_bank"] = (tx["from_bank"] == tx["to_bank"]).astype(int)
    out["cross_currency"] = (tx["payment_currency"] != tx["receiving_currency"]).astype(int)
    out["self_transfer"] = (tx["src"] == tx["dst"]).astype(int)
    out["unpriced"] = unpriced
    out["label"] = tx["is_laundering"]
    out["split"] = tx["split"]
    return out


RATES = {c: (None if c == 1 else 0.5 + 0.25 * c) for c in range(15)}
SINCE = {c: (None if c == 1 else c % 3) for c in range(15)}


@pytest.mark.parametrize("priced", [False, True])
def test_matches_reference(make_tx, vocab, priced):
    tx = make_tx(seed=4)
    # reach into other months and years too
    tx = tx.with_columns(pl.when(pl.col("row") % 5 == 0).then(pl.col("timestamp") + 200 * 86_400)
                         .otherwise(pl.col("timestamp")).alias("timestamp"))
    rates, since = (RATES, SINCE) if priced else (None, None)
    got = edge_features(tx, t0=T0, vocab=vocab, usd_per_unit=rates, priced_from=since)
    want = reference(tx.to_pandas(), T0, vocab, rates, since)
    assert got.columns == ["row", *EDGE_FEATURES, "label", "split"]
    for name in got.columns:
        g, w = got[name].to_numpy(), want[name].to_numpy()
        if got[name].dtype == pl.Float64:
            np.testing.assert_allclose(g, w, rtol=1e-14, atol=1e-15, err_msg=name)
        else:
            np.testing.assert_array_equal(g, w, err_msg=name)
    assert got["self_transfer"].sum() > 0 and got["cross_currency"].sum() > 0


def test_dtypes_and_name_groups(make_tx, vocab):
    got = edge_features(make_tx(), t0=T0, vocab=vocab)
    assert got["label"].dtype == pl.Int8 and got["split"].dtype == pl.Int8
    assert got["timestamp_rel"].dtype == pl.Int64
    assert all(got[c].dtype == pl.Int8 for c in FLAG_EDGE_FEATURES)
    assert set(CATEGORICAL_EDGE_FEATURES) <= set(EDGE_FEATURES)
    assert set(FLAG_EDGE_FEATURES) <= set(EDGE_FEATURES)
    assert len(EDGE_FEATURES) == len(set(EDGE_FEATURES)) == 19


def test_chunking_changes_nothing(make_tx, vocab):
    tx = make_tx(seed=6)
    whole = edge_features(tx, t0=T0, vocab=vocab)
    parts = pl.concat([edge_features(c, t0=T0, vocab=vocab) for c in tx.iter_slices(37)])
    assert_frame_equal(parts, whole, check_exact=True)


def test_ratio_floor_and_zero_amounts(vocab):
    tx = pl.DataFrame({"row": [0, 1], "timestamp": [T0, T0], "src": [1, 2], "dst": [1, 3],
                       "from_bank": [1, 11], "to_bank": [1, 21], "amount_received": [0.0, 0.5],
                       "amount_paid": [0.0, 3.0], "receiving_currency": [0, 1],
                       "payment_currency": [0, 1], "payment_format": [0, 0],
                       "is_laundering": [0, 1], "split": [0, 2]})
    got = edge_features(tx, t0=T0, vocab=vocab)
    assert got["paid_received_ratio"].to_list() == [0.0, 3.0]
    assert got["log_amount_paid"].to_list()[0] == 0.0
    assert got["same_bank"].to_list() == [1, 0] and got["from_bank_code"].to_list() == [0, 1]
    # Priced: equal sides give 1.0; no received value gives 1.0, never a division by zero.
    priced = edge_features(tx, t0=T0, vocab=vocab, usd_per_unit={c: 2.0 for c in range(15)},
                           priced_from={c: 0 for c in range(15)})
    assert priced["paid_received_ratio"].to_list() == [1.0, 6.0] and priced["unpriced"].to_list() == [0, 0]


def test_a_rate_is_used_only_from_its_split_on(vocab):
    """A currency priced from the validation rows on: its training rows are unpriced (ratio 1.0,
    flag 1), its validation rows priced."""
    tx = pl.DataFrame({"row": [0, 1], "timestamp": [T0, T0], "src": [1, 2], "dst": [3, 4],
                       "from_bank": [1, 1], "to_bank": [11, 11], "amount_received": [10.0, 10.0],
                       "amount_paid": [5.0, 5.0], "receiving_currency": [12, 12],
                       "payment_currency": [4, 4], "payment_format": [0, 0],
                       "is_laundering": [0, 0], "split": [0, 1]})
    rates = {c: 1.0 for c in range(15)}
    rates[4] = 4.0
    since = {c: 0 for c in range(15)}
    since[4] = 1
    got = edge_features(tx, t0=T0, vocab=vocab, usd_per_unit=rates, priced_from=since)
    assert got["paid_received_ratio"].to_list() == [1.0, 2.0] and got["unpriced"].to_list() == [1, 0]


def test_unknown_bank_is_input_error(make_tx, vocab):
    with pytest.raises(InputError, match="bank"):
        edge_features(make_tx(), t0=T0, vocab={**vocab, "banks": [1, 11]})
    tx = make_tx()
    first_unknown = tx["from_bank"].filter(tx["from_bank"] != 11)[0]
    with pytest.raises(InputError, match=f"value '{first_unknown}'"):
        edge_features(tx, t0=T0, vocab={**vocab, "banks": [11, 10**15]})  # a span too wide for a table


def test_bank_codes_are_vocabulary_positions(make_tx, vocab):
    tx = make_tx()
    banks = sorted(set(tx["from_bank"].to_list()) | {10**15})  # a span too wide for a table
    for vb in (vocab["banks"], banks):
        got = edge_features(tx, t0=T0, vocab={**vocab, "banks": vb})["from_bank_code"].to_list()
        assert got == [vb.index(b) for b in tx["from_bank"].to_list()]
