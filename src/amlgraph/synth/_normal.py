"""Ordinary (non-laundering) transactions: the calendar and one vectorised chunk of rows."""
from __future__ import annotations

import datetime as dt

import numpy as np

from amlgraph.synth._format import Rows
from amlgraph.synth._money import BITCOIN_FMT, BTC, FMT, RATE, below, draw, shares, to_amounts
from amlgraph.synth._presets import Preset
from amlgraph.synth._world import NEIGHBOURS, World, pick

# Activity by hour of day: quiet nights, busy office hours.
_HOURLY = np.array([0.25, 0.18, 0.15, 0.15, 0.18, 0.3, 0.55, 0.8, 1.0, 1.1, 1.15, 1.15,
                    1.1, 1.1, 1.1, 1.05, 1.0, 0.95, 0.85, 0.75, 0.65, 0.55, 0.45, 0.35])
_WEEKEND = 0.75
_TAIL = 0.03            # activity per tail day relative to a nominal day

SELF_SHARE = 0.09       # self-transfers among ordinary rows
NORMAL_FORMATS = shares({"Cheque": 0.37, "Credit Card": 0.27, "ACH": 0.13, "Cash": 0.12,
                         "Wire": 0.04, "Bitcoin": 0.03})
SELF_FORMATS = shares({"Reinvestment": 0.88, "Cash": 0.04, "Cheque": 0.04, "ACH": 0.03, "Wire": 0.01})
# Median dollar amount and log-spread per format (index = PAYMENT_FORMATS code).
_MEDIAN = np.zeros(7)
_SPREAD = np.zeros(7)
for _name, (_m, _s) in {"ACH": (2500, 1.9), "Bitcoin": (400, 1.6), "Cash": (350, 1.6),
                        "Cheque": (1800, 1.7), "Credit Card": (120, 1.3),
                        "Reinvestment": (3000, 1.9), "Wire": (9000, 1.8)}.items():
    _MEDIAN[FMT[_name]], _SPREAD[FMT[_name]] = _m, _s
_LOG_MEDIAN = np.log(_MEDIAN)
# Probability that a payment between countries is received in the payee's currency, per format.
NORMAL_CROSS = np.zeros(7)
for _name, _p in {"ACH": 0.25, "Wire": 0.4, "Cheque": 0.03, "Credit Card": 0.02}.items():
    NORMAL_CROSS[FMT[_name]] = _p
ROUND_SHARE = 0.25      # ordinary amounts rounded to two significant digits
#: Counterparty slots are used unevenly: slot = floor(NEIGHBOURS * u ** SLOT_POWER), u uniform.
SLOT_POWER = 1.7


def _slot(u: np.ndarray) -> np.ndarray:
    """``floor(NEIGHBOURS * u ** SLOT_POWER)`` for uniforms ``u``, int8 (the definition)."""
    return (NEIGHBOURS * u ** SLOT_POWER).astype(np.int8)


def _first_true(predicate, k: int) -> float:
    """The smallest double x in [0, 1] with ``predicate(x) >= k`` (predicate rising in x)."""
    lo, hi = 0, int(np.float64(1.0).view(np.int64))      # doubles >= 0 sort as their bits
    while hi - lo > 1:
        mid = (lo + hi) // 2
        x = np.full(64, mid, dtype=np.int64).view(np.float64)  # the vector code path
        lo, hi = (lo, mid) if predicate(x)[0] >= k else (mid, hi)
    return float(np.int64(hi).view(np.float64))


#: u at which _slot steps up: comparing u with them gives _slot(u) without a power per row.
SLOT_EDGES = np.array([_first_true(_slot, k) for k in range(1, NEIGHBOURS)])


class Timeline:
    """Maps progress through the file (0..1) to minutes, following daily and weekly rhythm.

    Args:
        preset: supplies the first day, nominal days and tail days.
    """

    def __init__(self, preset: Preset):
        epoch = dt.datetime.combine(preset.start, dt.time()).replace(tzinfo=dt.timezone.utc)
        self.start = int(epoch.timestamp()) // 60
        self.nominal = preset.days * 1440
        self.end = self.start + (preset.days + preset.tail_days) * 1440
        hours = np.arange((preset.days + preset.tail_days) * 24)
        weekday = (preset.start.weekday() + hours // 24) % 7
        weight = _HOURLY[hours % 24] * np.where(weekday >= 5, _WEEKEND, 1.0)
        weight = weight * np.where(hours >= preset.days * 24, _TAIL, 1.0)
        self._cdf = np.concatenate([[0.0], np.cumsum(weight) / weight.sum()])
        self._hours = np.arange(self._cdf.size, dtype=float)

    def minute_at(self, progress: np.ndarray) -> np.ndarray:
        """Absolute minutes (float) at ``progress`` in [0, 1], shape of ``progress``."""
        minutes = np.interp(progress, self._cdf, self._hours)
        minutes *= 60.0
        minutes += self.start
        return minutes


def normal_rows(world: World, timeline: Timeline, first: int, n: int, total: int,
                rng: np.random.Generator) -> Rows:
    """Ordinary rows ``first .. first + n`` of ``total``, in time order.

    Senders follow heavy-tailed activity (and a sweep makes every account send at least once
    when there are enough rows); most payees are one of the sender's fixed counterparties.
    """
    index = np.arange(first, first + n, dtype=np.int64)
    progress = rng.random(n)
    progress += index
    progress /= total
    t = np.floor(timeline.minute_at(progress)).astype(np.int64)
    fmt = draw(NORMAL_FORMATS, rng, n)
    is_self = rng.random(n) < SELF_SHARE
    fmt = np.where(is_self, draw(SELF_FORMATS, rng, n), fmt)

    src = pick(world.send_urn, rng, n)
    if total >= world.n_active:
        # rows whose index is a multiple of the stride (the first n_active of them) sweep
        stride = total // world.n_active
        hit = np.arange(-(-first // stride) * stride, min(first + n, stride * world.n_active),
                        stride) - first
        src[hit] = world.sweep[(hit + first) // stride]
        fmt[hit[fmt[hit] == BITCOIN_FMT]] = FMT["Cheque"]
    slot = below(SLOT_EDGES, rng.random(n))   # == _slot(u), see SLOT_EDGES
    fixed = rng.random(n) < 0.8
    anywhere = rng.integers(0, world.recv_urn.size, n)   # drawn for every row, used by 20%
    dst = world.neighbours.reshape(-1)[src * NEIGHBOURS + slot]
    other = np.flatnonzero(~fixed)
    dst[other] = world.recv_urn[anywhere[other]]
    btc = fmt == BITCOIN_FMT
    nb = int(btc.sum())
    src[btc] = pick(world.crypto_urn, rng, nb)
    dst[btc] = world.crypto[rng.integers(0, world.crypto.size, nb)]
    dst = np.where(is_self, src, dst)

    pay = np.where(btc, np.int8(BTC), world.home[src])
    code = fmt.astype(np.intp)
    cross = (rng.random(n) < NORMAL_CROSS[code]) & ~is_self
    recv = np.where(cross, world.home[dst], pay)
    usd = rng.standard_normal(n)               # in place: scale x exp(log median + spread x z)
    usd *= _SPREAD[code]
    usd += _LOG_MEDIAN[code]
    np.exp(usd, out=usd)
    usd *= world.scale[src]
    crossing = np.flatnonzero(pay != recv)
    usd[crossing] = np.maximum(usd[crossing], 1.0)
    round_to = np.zeros(n)
    rounded = np.flatnonzero((rng.random(n) < ROUND_SHARE) & ~btc)
    local = usd[rounded] * RATE[pay[rounded]]   # two significant digits in the paying currency
    round_to[rounded] = 10.0 ** np.maximum(np.floor(np.log10(np.maximum(local, 1e-9))) - 1, 0)
    paid, received = to_amounts(usd, pay, recv, round_to)
    return Rows(t, src, dst, pay, recv, fmt, paid, received, np.zeros(n, dtype=np.int8))
