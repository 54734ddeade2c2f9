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


def usd_rates(pairs: pl.DataFrame, *, vocab: dict,
              given: dict[str, float] | None = None) -> tuple[dict[int, float | None], list[str]]:
    """Solve the US Dollar value of one unit of every currency of the vocabulary.

    Args:
        pairs: stacked output of :func:`currency_pairs` over all chunks, shape (n_cross, 3).
        vocab: the vocabularies; ``vocab["currencies"]`` gives the codes.
        given: USD per unit of currencies by name (``--rates FILE``); they win over inferred
            rates and seed the chains of the others.

    Returns:
        ``(rates, warnings)``: ``rates[code]`` = USD per unit (US Dollar itself 1.0), or None
        when no chain of pairs (nor a given rate) links the currency to US Dollar: its amounts
        cannot be priced and are left out of every USD feature (see ``unpriced_share``);
        ``warnings`` names each such currency.

    The median ratio ``m`` of the ordered pair (P -> R) means 1 P = m R. A currency C is solved,
    in this order: from a given rate; from the pair (C -> USD) as ``m``; else from (USD -> C) as
    ``1 / m``; else, in rounds, from a pair with a currency K solved in an earlier round, the
    smallest code K first, (C -> K) before (K -> C): ``m * usd[K]`` or ``usd[K] / m``.
    """
    names = list(vocab["currencies"])
    medians = {}
    if pairs.height:
        grouped = (pairs.filter(pl.col("ratio").is_finite() & (pl.col("ratio") > 0))
                   .group_by(["payment_currency", "receiving_currency"])
                   .agg(pl.col("ratio").median()))
        medians = {(int(p), int(r)): float(m) for p, r, m in grouped.iter_rows()}
    rates: dict[int, float] = {}
    for name, value in (given or {}).items():
        if name in names:
            rates[names.index(name)] = float(value)
    if USD in names:
        rates.setdefault(names.index(USD), 1.0)
    if not rates:
        return {c: None for c in range(len(names))}, [
            f"{USD} not among the currencies and no --rates given: no amount can be priced in USD"]
    if USD in names:
        usd = names.index(USD)
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
    out: dict[int, float | None] = {c: rates.get(c) for c in range(len(names))}
    warnings = [f"no exchange rate links {name!r} to {USD}: its amounts are left out of the USD "
                "features (node feature unpriced_share counts them); give its rate with --rates FILE"
                for c, name in enumerate(names) if out[c] is None]
    return out, warnings


def split_rates(pairs: pl.DataFrame, *, vocab: dict, given: dict[str, float] | None = None,
                ) -> tuple[dict[int, float | None], dict[int, int | None], list[str]]:
    """Rates that never read the future: each currency priced from the rows of the first split
    (train, then train + val, then all) whose rows link it to US Dollar.

    Args:
        pairs: :func:`currency_pairs` observations with a ``split`` column (Int8, 0/1/2).
        vocab, given: as :func:`usd_rates`.

    Returns:
        ``(rates, priced_from, warnings)``: ``rates[code]`` USD per unit or None (never priced);
        ``priced_from[code]`` the first split whose features may use that rate (0 train, 1 val,
        2 test) or None. A training-split feature therefore depends on training rows only.
    """
    rates: dict[int, float | None] = {}
    since: dict[int, int | None] = {}
    warnings: list[str] = []
    for s in (0, 1, 2):
        solved, warnings = usd_rates(pairs.filter(pl.col("split") <= s), vocab=vocab, given=given)
        for c, r in solved.items():
            if r is not None and rates.get(c) is None:
                rates[c], since[c] = r, s
            rates.setdefault(c, None)
            since.setdefault(c, None)
    late = [f"{vocab['currencies'][c]!r} is priced only from the {('validation', 'test')[s - 1]} rows on: "
            "training-split features leave its amounts out" for c, s in sorted(since.items()) if s]
    return dict(sorted(rates.items())), dict(sorted(since.items())), warnings + late


def rate_array(usd_per_unit: dict[int, float | None] | None, n_currencies: int) -> np.ndarray:
    """Rates as an array indexed by currency code, shape (n_currencies,): NaN where a currency
    cannot be priced; None -> all 1.0 (amounts kept raw).

    Raises:
        ConfigError: a currency code has no entry.
    """
    if usd_per_unit is None:
        return np.ones(n_currencies, dtype=np.float64)
    missing = [c for c in range(n_currencies) if c not in usd_per_unit]
    if missing:
        raise ConfigError(f"usd_per_unit has no rate for currency codes {missing} "
                          f"(expected one per code 0..{n_currencies - 1}); pass usd_rates' result")
    return np.array([np.nan if usd_per_unit[c] is None else float(usd_per_unit[c]) for c in range(n_currencies)],
                    dtype=np.float64)


#: ``priced_from`` of a currency that is never priced.
NEVER = 3


def priced_from_array(priced_from: dict[int, int | None] | None, n_currencies: int) -> np.ndarray:
    """First split whose features may use each currency's rate, shape (n_currencies,), Int8;
    :data:`NEVER` for a currency never priced; None -> all 0 (raw amounts, always usable)."""
    if priced_from is None:
        return np.zeros(n_currencies, dtype=np.int8)
    return np.array([NEVER if priced_from.get(c) is None else int(priced_from[c]) for c in range(n_currencies)],
                    dtype=np.int8)
