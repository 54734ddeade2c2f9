"""Currencies, countries, exchange rates and payment formats of the synthetic generator."""
from __future__ import annotations

import numpy as np

from amlgraph.schema import CURRENCIES, PAYMENT_FORMATS

#: Units of each currency per US dollar, fixed over the whole data set (roughly Sep 2022).
RATES: dict[str, float] = {
    "Australian Dollar": 1.4835, "Bitcoin": 1 / 19_850.0, "Brazil Real": 5.2155,
    "Canadian Dollar": 1.3161, "Euro": 0.9989, "Mexican Peso": 19.9965, "Ruble": 60.3003,
    "Rupee": 79.8235, "Saudi Riyal": 3.7563, "Shekel": 3.4208, "Swiss Franc": 0.9751,
    "UK Pound": 0.8663, "US Dollar": 1.0, "Yen": 142.9455, "Yuan": 6.9601,
}
RATE = np.array([RATES[c] for c in CURRENCIES])
BTC = CURRENCIES.index("Bitcoin")

#: (country, currency, share of banks). Bitcoin has no country: it goes with the Bitcoin format.
COUNTRIES = (
    ("US", "US Dollar", 0.36), ("Germany", "Euro", 0.06), ("France", "Euro", 0.05),
    ("Italy", "Euro", 0.04), ("Spain", "Euro", 0.04), ("Portugal", "Euro", 0.02),
    ("Netherlands", "Euro", 0.03), ("UK", "UK Pound", 0.06), ("Switzerland", "Swiss Franc", 0.03),
    ("Japan", "Yen", 0.04), ("China", "Yuan", 0.04), ("India", "Rupee", 0.04),
    ("Russia", "Ruble", 0.02), ("Mexico", "Mexican Peso", 0.03), ("Brazil", "Brazil Real", 0.03),
    ("Canada", "Canadian Dollar", 0.03), ("Australia", "Australian Dollar", 0.03),
    ("Saudi Arabia", "Saudi Riyal", 0.02), ("Israel", "Shekel", 0.02),
)
COUNTRY_NAMES = tuple(c[0] for c in COUNTRIES)
COUNTRY_CURRENCY = np.array([CURRENCIES.index(c[1]) for c in COUNTRIES], dtype=np.int8)
COUNTRY_SHARE = np.array([c[2] for c in COUNTRIES]) / sum(c[2] for c in COUNTRIES)

FMT = {name: i for i, name in enumerate(PAYMENT_FORMATS)}
BITCOIN_FMT = FMT["Bitcoin"]
REINVEST_FMT = FMT["Reinvestment"]


def shares(table: dict[str, float]) -> np.ndarray:
    """Turn ``{format: weight}`` into cumulative probabilities over PAYMENT_FORMATS, shape (7,)."""
    p = np.array([table.get(f, 0.0) for f in PAYMENT_FORMATS], dtype=float)
    return np.cumsum(p / p.sum())


def draw(cum: np.ndarray, rng: np.random.Generator, n: int) -> np.ndarray:
    """Draw ``n`` category codes (int8) from cumulative probabilities ``cum``.

    The code of a uniform ``u`` is the number of ``cum[:-1]`` at or below it (the last category
    takes the rest): one comparison per category, several times cheaper than a binary search.
    """
    u = rng.random(n)
    if n < 256:                               # few draws: one call beats a pass per category
        return np.minimum(np.searchsorted(cum, u, side="right"), len(cum) - 1).astype(np.int8)
    return below(cum[:-1], u)


def below(edges: np.ndarray, u: np.ndarray) -> np.ndarray:
    """Per ``u``, how many of the (few, sorted) ``edges`` are ``<= u``, as int8."""
    out = np.zeros(u.shape, dtype=np.int8)
    for edge in edges:
        out += (u >= edge).view(np.int8)
    return out


def to_amounts(usd: np.ndarray, pay_cur: np.ndarray, recv_cur: np.ndarray,
               round_to: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Convert dollar values to (amount paid, amount received), each rounded to cents.

    Received = paid x rate(received) / rate(paid), so the ratio of the written amounts is the
    exchange rate to rounding, and equal currencies give equal amounts.

    Args:
        usd: values in US dollars, shape (n,).
        pay_cur, recv_cur: currency codes, shape (n,).
        round_to: optional unit per row (1, 10, 100, ... or 0 for none) for round amounts.

    Returns:
        ``(paid, received)``, float64 arrays of shape (n,), at least 0.01.
    """
    paid = usd * RATE[pay_cur]
    if round_to is not None:
        some = np.flatnonzero(round_to > 0)
        paid[some] = np.maximum(np.round(paid[some] / round_to[some]), 1.0) * round_to[some]
    np.maximum(_cents(paid), 0.01, out=paid)
    received = paid.copy()
    cross = np.flatnonzero(pay_cur != recv_cur)    # a few percent of the rows
    rate = RATE[recv_cur[cross]] / RATE[pay_cur[cross]]
    received[cross] = np.maximum(np.round(paid[cross] * rate, 2), 0.01)
    return paid, received


def _cents(x: np.ndarray) -> np.ndarray:
    """``np.round(x, 2)`` in place (the same three steps NumPy takes: x 100, rint, / 100)."""
    x *= 100.0
    np.rint(x, out=x)
    x /= 100.0
    return x
