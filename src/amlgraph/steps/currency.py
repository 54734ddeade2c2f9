"""Exchange rates to US Dollar, inferred from the cross-currency transactions themselves.

In a row whose two currencies differ, ``amount_received / amount_paid`` is the rate from the payment
currency to the receiving currency. The rate of a currency pair is the median of those ratios:
a median is exact and order-free, so the rates do not depend on chunking.
"""
from __future__ import annotations

import numpy as np
import polars as pl

from amlgraph.errors import ConfigError

USD = "US Dollar"


def currency_pairs(tx: pl.DataFrame) -> pl.DataFrame:
    """Extract the exchange-rate observations of a chunk of coded transactions.

    Args:
        tx: coded transactions with ``payment_currency``, ``receiving_currency`` (codes),
            ``amount_paid``, ``amount_received``.

    Returns:
        Frame of shape (n_cross, 3): ``payment_currency``, ``receiving_currency`` (Int16),
        ``ratio`` (Float64, received / paid), for rows whose currencies differ and whose paid
        amount is > 0. Frames of all chunks stacked feed :func:`usd_rates`.
    """
    return tx.filter(
        (pl.col("payment_currency") != pl.col("receiving_currency")) & (pl.col("amount_paid") > 0)
    ).select(
        pl.col("payment_currency").cast(pl.Int16), pl.col("receiving_currency").cast(pl.Int16),
        (pl.col("amount_received") / pl.col("amount_paid")).alias("ratio"),
    )


def usd_rates(pairs: pl.DataFrame, *, vocab: dict) -> tuple[dict[int, float], list[str]]:
    """Solve the US Dollar value of one unit of every currency of the vocabulary.

    Args:
        pairs: stacked output of :func:`currency_pairs` over all chunks, shape (n_cross, 3).
        vocab: the vocabularies; ``vocab["currencies"]`` gives the codes.

    Returns:
        ``(rates, warnings)``: ``rates[code]`` = USD per unit (US Dollar itself 1.0);
        ``warnings`` names each currency that no chain of pairs links to US Dollar (its rate
        falls back to 1.0, i.e. its amounts stay raw).

    The median ratio ``m`` of the ordered pair (P -> R) means 1 P = m R. A currency C is solved,
    in this order: from the pair (C -> USD) as ``m``; else from (USD -> C) as ``1 / m``; else, in
    rounds, from a pair with a currency K solved in an earlier round, the smallest code K first,
    (C -> K) before (K -> C): ``m * usd[K]`` or ``usd[K] / m``.
    """
    names = list(vocab["currencies"])
    medians = {}
    if pairs.height:
        grouped = (pairs.filter(pl.col("ratio").is_finite() & (pl.col("ratio") > 0))
                   .group_by(["payment_currency", "receiving_currency"])
                   .agg(pl.col("ratio").median()))
        medians = {(int(p), int(r)): float(m) for p, r, m in grouped.iter_rows()}
    if USD not in names:
        return {c: 1.0 for c in range(len(names))}, [f"{USD} not among the currencies: amounts stay raw"]
    usd = names.index(USD)
    rates: dict[int, float] = {usd: 1.0}
    for c in range(len(names)):
        if c in rates:
            continue
        if (c, usd) in medians:
            rates[c] = medians[(c, usd)]
        elif (usd, c) in medians:
            rates[c] = 1.0 / medians[(usd, c)]
    while True:
        solved = sorted(rates)
        new = {}
        for c in range(len(names)):
            if c in rates:
                continue
            for k in solved:
                if (c, k) in medians:
                    new[c] = medians[(c, k)] * rates[k]
                    break
                if (k, c) in medians:
                    new[c] = rates[k] / medians[(k, c)]
                    break
        if not new:
            break
        rates.update(new)
    warnings = []
    for c, name in enumerate(names):
        if c not in rates:
            rates[c] = 1.0
            warnings.append(f"no exchange rate links {name!r} to {USD}: its amounts stay raw (rate 1.0)")
    return dict(sorted(rates.items())), warnings


def rate_array(usd_per_unit: dict[int, float] | None, n_currencies: int) -> np.ndarray:
    """Rates as an array indexed by currency code, shape (n_currencies,); None -> all 1.0.

    Raises:
        ConfigError: a currency code has no rate.
    """
    if usd_per_unit is None:
        return np.ones(n_currencies, dtype=np.float64)
    missing = [c for c in range(n_currencies) if c not in usd_per_unit]
    if missing:
        raise ConfigError(f"usd_per_unit has no rate for currency codes {missing} "
                          f"(expected one per code 0..{n_currencies - 1}); pass usd_rates' result")
    return np.array([float(usd_per_unit[c]) for c in range(n_currencies)], dtype=np.float64)
