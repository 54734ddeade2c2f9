from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
import pytest

from amlgraph.errors import ConfigError
from amlgraph.schema import CURRENCIES
from amlgraph.steps.currency import NEVER, currency_pairs, priced_from_array, rate_array, split_rates, usd_rates

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
    # No chain to US Dollar: not priced (None), never counted as dollars.
    assert {c for c in unlinked if rates[C[c]] is None} == unlinked
    assert len(warnings) == len(unlinked) and all("left out of the USD features" in w for w in warnings)
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
    assert {v for v in rates.values() if v is not None} == {1.0} and len(warnings) == len(CURRENCIES) - 1
    rates, warnings = usd_rates(pl.DataFrame(schema={"payment_currency": pl.Int16,
                                                     "receiving_currency": pl.Int16,
                                                     "ratio": pl.Float64}),
                                vocab={"currencies": ["Euro", "Yen"]})
    assert rates == {0: None, 1: None} and "US Dollar" in warnings[0]


def test_rate_array():
    assert rate_array(None, 3).tolist() == [1.0, 1.0, 1.0]
    assert rate_array({0: 2.0, 1: 0.5}, 2).tolist() == [2.0, 0.5]
    assert np.isnan(rate_array({0: 2.0, 1: None}, 2)[1])
    assert priced_from_array({0: 0, 1: None, 2: 2}, 3).tolist() == [0, NEVER, 2]
    assert priced_from_array(None, 2).tolist() == [0, 0]
    with pytest.raises(ConfigError, match="no rate"):
        rate_array({0: 2.0}, 2)


def test_given_rates_win_and_seed_the_chains():
    tx = _pairs([("Euro", "US Dollar", 1.1, 31), ("Bitcoin", "Euro", 18_000.0, 5)])
    rates, warnings = usd_rates(currency_pairs(tx), vocab=VOCAB, given={"Euro": 1.25, "Yen": 0.007})
    assert rates[C["Euro"]] == 1.25                      # given beats the inferred 1.1
    assert rates[C["Bitcoin"]] == pytest.approx(18_000.0 * 1.25, rel=1e-9)  # chained through the given rate
    assert rates[C["Yen"]] == 0.007 and not any("Yen" in w for w in warnings)


def _with_split(tx: pl.DataFrame, split) -> pl.DataFrame:
    return currency_pairs(tx).with_columns(pl.Series("split", split, dtype=pl.Int8))


def test_split_rates_never_read_later_rows():
    train = _pairs([("Euro", "US Dollar", 1.1, 30)], seed=1)
    val = _pairs([("Euro", "US Dollar", 2.0, 30), ("Yen", "US Dollar", 0.007, 10)], seed=2)
    test = _pairs([("Rupee", "US Dollar", 0.012, 10), ("Yen", "US Dollar", 9.0, 10)], seed=3)
    pairs = pl.concat([_with_split(train, [0] * train.height), _with_split(val, [1] * val.height),
                       _with_split(test, [2] * test.height)])
    rates, since, _ = split_rates(pairs, vocab=VOCAB)
    assert rates[C["Euro"]] == usd_rates(currency_pairs(train), vocab=VOCAB)[0][C["Euro"]]  # train rows only
    assert (since[C["Euro"]], since[C["Yen"]], since[C["Rupee"]], since[C["US Dollar"]]) == (0, 1, 2, 0)
    assert rates[C["Yen"]] == pytest.approx(0.007, rel=0.2)  # from train + val, not the test rows' 9.0
    assert since[C["Bitcoin"]] is None and rates[C["Bitcoin"]] is None
    # Later rows move nothing that an earlier split uses.
    moved = pl.concat([_with_split(train, [0] * train.height), _with_split(val, [1] * val.height),
                       _with_split(test.with_columns(pl.col("amount_received") * 1.5), [2] * test.height)])
    again, since_again, _ = split_rates(moved, vocab=VOCAB)
    assert {c: again[c] for c in again if since[c] in (0, 1)} == {c: rates[c] for c in rates if since[c] in (0, 1)}
