from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
import pytest

from amlgraph.errors import ConfigError
from amlgraph.schema import CURRENCIES
from amlgraph.steps.currency import currency_pairs, rate_array, usd_rates

VOCAB = {"currencies": list(CURRENCIES)}
C = {name: i for i, name in enumerate(CURRENCIES)}


def _pairs(obs, seed=0):
    """obs: list of (paid currency, received currency, true rate, n rows) with a little noise."""
    rng = np.random.default_rng(seed)
    frames = []
    for p, r, rate, n in obs:
        paid = np.round(rng.uniform(1, 1000, n), 2)
        noise = np.ones(n)
        noise[: n // 3] = rng.uniform(0.9, 1.1, n // 3)  # outliers the median ignores
        frames.append(pd.DataFrame({"payment_currency": C[p], "receiving_currency": C[r],
                                    "amount_paid": paid, "amount_received": paid * rate * noise}))
    df = pd.concat(frames, ignore_index=True)
    df["row"] = rng.permutation(len(df))
    return pl.from_pandas(df).with_columns(pl.col("payment_currency", "receiving_currency").cast(pl.Int16))


def test_currency_pairs_keeps_cross_currency_rows_with_positive_paid():
    tx = pl.DataFrame({"payment_currency": [1, 1, 2, 3], "receiving_currency": [1, 2, 3, 4],
                       "amount_paid": [5.0, 2.0, 0.0, 4.0], "amount_received": [5.0, 6.0, 1.0, 1.0]})
    got = currency_pairs(tx)
    assert got.columns == ["payment_currency", "receiving_currency", "ratio"]
    assert got["ratio"].to_list() == [3.0, 0.25]


def test_direct_inverse_and_intermediate_rates():
    tx = _pairs([("Euro", "US Dollar", 1.1, 31), ("US Dollar", "Yen", 140.0, 20),
                 ("Rupee", "Euro", 0.011, 15), ("Euro", "Swiss Franc", 0.95, 9)])
    rates, warnings = usd_rates(currency_pairs(tx), vocab=VOCAB)
    assert rates[C["US Dollar"]] == 1.0
    assert rates[C["Euro"]] == pytest.approx(1.1, rel=1e-9)
    assert rates[C["Yen"]] == pytest.approx(1 / 140.0, rel=1e-9)
    assert rates[C["Rupee"]] == pytest.approx(0.011 * 1.1, rel=1e-9)
    assert rates[C["Swiss Franc"]] == pytest.approx(1.1 / 0.95, rel=1e-9)
    unlinked = set(CURRENCIES) - {"US Dollar", "Euro", "Yen", "Rupee", "Swiss Franc"}
    assert {c for c in unlinked if rates[C[c]] == 1.0} == unlinked
    assert len(warnings) == len(unlinked) and all("rate 1.0" in w for w in warnings)
    assert sorted(rates) == list(range(len(CURRENCIES)))


def test_rates_are_medians_and_chunk_independent():
    tx = _pairs([("Euro", "US Dollar", 1.1, 40), ("US Dollar", "Euro", 0.9, 7)], seed=3)
    rates, _ = usd_rates(currency_pairs(tx), vocab=VOCAB)
    ref = (tx.to_pandas().assign(ratio=lambda d: d.amount_received / d.amount_paid)
           .query("payment_currency == @C['Euro']")["ratio"].median())
    assert rates[C["Euro"]] == ref  # (Euro -> USD) wins over 1 / (USD -> Euro)
    chunks = [currency_pairs(part) for part in tx.sort("row").iter_slices(9)]
    again, _ = usd_rates(pl.concat(chunks[::-1]), vocab=VOCAB)
    assert again == rates


def test_no_pairs_or_no_usd():
    rates, warnings = usd_rates(currency_pairs(_pairs([("Euro", "Euro", 1.0, 3)])), vocab=VOCAB)
    assert set(rates.values()) == {1.0} and len(warnings) == len(CURRENCIES) - 1
    rates, warnings = usd_rates(pl.DataFrame(schema={"payment_currency": pl.Int16,
                                                     "receiving_currency": pl.Int16,
                                                     "ratio": pl.Float64}),
                                vocab={"currencies": ["Euro", "Yen"]})
    assert rates == {0: 1.0, 1: 1.0} and "US Dollar" in warnings[0]


def test_rate_array():
    assert rate_array(None, 3).tolist() == [1.0, 1.0, 1.0]
    assert rate_array({0: 2.0, 1: 0.5}, 2).tolist() == [2.0, 0.5]
    with pytest.raises(ConfigError, match="no rate"):
        rate_array({0: 2.0}, 2)
