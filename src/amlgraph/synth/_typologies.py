"""Laundering: the eight typologies, their attempts, and the laundering rows outside any block."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from amlgraph.schema import TYPOLOGIES
from amlgraph.synth._format import Rows
from amlgraph.synth._money import BITCOIN_FMT, BTC, FMT, draw, shares, to_amounts
from amlgraph.synth._normal import Timeline
from amlgraph.synth._world import World, pick

LAUNDER_FORMATS = shares({"ACH": 0.5, "Cheque": 0.13, "Cash": 0.12, "Credit Card": 0.1,
                          "Wire": 0.08, "Bitcoin": 0.07})
LAUNDER_CROSS = np.zeros(7)
for _name, _p in {"ACH": 0.5, "Wire": 0.6, "Cheque": 0.1, "Credit Card": 0.05}.items():
    LAUNDER_CROSS[FMT[_name]] = _p
#: Share of laundering rows written in Patterns.txt blocks, and of rows in unreported attempts;
#: the rest are single laundering payments (HI-Small: ~38% of laundering rows are in no block).
REPORTED, UNREPORTED = 0.64, 0.18
#: Relative frequency of each typology after the first two rounds (which cover all eight twice).
TYPOLOGY_WEIGHTS = np.array([0.16, 0.16, 0.12, 0.1, 0.12, 0.12, 0.12, 0.1])
_TYPO_CUM = np.cumsum(TYPOLOGY_WEIGHTS / TYPOLOGY_WEIGHTS.sum())


@dataclass
class Laundering:
    """All laundering rows, and the attempts they belong to.

    Attributes:
        rows: every laundering row (label 1).
        attempt: (n,) int32 attempt index of each row, -1 for a single payment.
        headers: per attempt, the BEGIN line's text after ``BEGIN LAUNDERING ATTEMPT - ``.
        typologies: per attempt, its typology.
        reported: (n_attempts,) bool, True when the attempt is written as a Patterns.txt block.
    """

    rows: Rows
    attempt: np.ndarray
    headers: list[str]
    typologies: list[str]
    reported: np.ndarray


def _dense(rng: np.random.Generator, a: int, b: int) -> tuple[np.ndarray, np.ndarray]:
    """Random edges between a senders and b receivers, each of them on at least one edge."""
    keep = rng.random((a, b)) < 0.6
    keep[np.arange(a), rng.integers(0, b, a)] = True
    keep[rng.integers(0, a, b), np.arange(b)] = True
    i, j = np.nonzero(keep)
    return i, j


def _shape(typology: str, rng: np.random.Generator) -> tuple[str, int, np.ndarray, np.ndarray,
                                                             np.ndarray, np.ndarray]:
    """One attempt's structure on local node ids.

    Returns:
        (qualifier, n_nodes, src, dst, step, share): edges as local node ids, their stage (later
        stages happen later), and each edge's share of the laundered sum.
    """
    r = rng.integers
    if typology in ("FAN-OUT", "FAN-IN"):
        most = int(r(3, 17))
        d = int(r(2, most + 1))
        hub, leaves = np.zeros(d, dtype=np.int64), np.arange(1, d + 1)
        src, dst = (hub, leaves) if typology == "FAN-OUT" else (leaves, hub)
        kind = "Fan-Out" if typology == "FAN-OUT" else "Fan-In"
        return f"Max {most}-degree {kind}", d + 1, src, dst, np.zeros(d), np.full(d, 1 / d)
    if typology == "CYCLE":
        most = int(r(3, 13))
        n = int(r(3, most + 1))
        src = np.arange(n)
        return f"Max {most} hops", n, src, np.roll(src, -1), src.astype(float), 0.97 ** src
    if typology == "RANDOM":
        most = int(r(3, 13))
        hops = int(r(2, most + 1))
        n = max(3, 2 * hops // 3 + 1)
        walk = np.concatenate([[0], np.cumsum(r(1, n, hops))]) % n   # never stays in place
        step = np.arange(hops)
        return f"Max {most} hops", n, walk[:-1], walk[1:], step.astype(float), 0.97 ** step
    if typology == "BIPARTITE":
        a, b = int(r(2, 6)), int(r(2, 6))
        i, j = _dense(rng, a, b)
        return "", a + b, i, a + j, np.zeros(i.size), 1 / np.bincount(i, minlength=a)[i]
    if typology == "STACK":
        w = r(2, 5, 3)
        i1, j1 = _dense(rng, w[0], w[1])
        i2, j2 = _dense(rng, w[1], w[2])
        src = np.concatenate([i1, w[0] + i2])
        dst = np.concatenate([w[0] + j1, w[0] + w[1] + j2])
        step = np.concatenate([np.zeros(i1.size), np.ones(i2.size)])
        share = np.concatenate([1 / np.bincount(i1)[i1] / w[0], 1 / np.bincount(i2)[i2] / w[1]])
        return "", int(w.sum()), src, dst, step, share
    if typology == "SCATTER-GATHER":
        k = int(r(2, 7))
        mid = np.arange(1, k + 1)
        src = np.concatenate([np.zeros(k, dtype=np.int64), mid])
        dst = np.concatenate([mid, np.full(k, k + 1)])
        return "", k + 2, src, dst, np.repeat([0.0, 1.0], k), np.full(2 * k, 0.97 / k)
    if typology == "GATHER-SCATTER":
        a, b = int(r(2, 7)), int(r(2, 7))
        hub = a
        src = np.concatenate([np.arange(a), np.full(b, hub)])
        dst = np.concatenate([np.full(a, hub), np.arange(a + 1, a + 1 + b)])
        share = np.concatenate([np.full(a, 1 / a), np.full(b, 0.97 / b)])
        return "", a + b + 1, src, dst, np.repeat([0.0, 1.0], [a, b]), share
    raise ValueError(typology)


class _Maker:
    """Draws participants, times, formats, currencies and amounts for laundering rows."""

    def __init__(self, world: World, timeline: Timeline, pool: np.ndarray, rng: np.random.Generator):
        self.world, self.timeline, self.pool, self.rng = world, timeline, pool, rng

    def accounts(self, n: int) -> np.ndarray:
        """``n`` participants: mostly the laundering pool, some ordinary accounts."""
        rng, pool = self.rng, self.pool
        chosen = rng.choice(pool, size=n, replace=n > pool.size)
        outsider = rng.random(n) < 0.15
        mixed = chosen.copy()
        mixed[outsider] = pick(self.world.recv_urn, rng, int(outsider.sum()))
        # an attempt's accounts are distinct whenever the pool allows it
        return mixed if len(set(mixed.tolist())) == len(set(chosen.tolist())) else chosen

    def rows(self, src: np.ndarray, dst: np.ndarray, t: np.ndarray, usd: np.ndarray,
             fmt: np.ndarray) -> Rows:
        rng, home = self.rng, self.world.home
        n = src.size
        btc = fmt == BITCOIN_FMT
        pay = np.where(btc, BTC, home[src]).astype(np.int8)
        cross = rng.random(n) < LAUNDER_CROSS[fmt]
        recv = np.where(cross, home[dst], pay).astype(np.int8)
        usd = np.maximum(usd, 5.0)
        round_to = np.where(rng.random(n) < 0.03, 100.0, 0.0)
        paid, received = to_amounts(usd, pay, recv, np.where(btc, 0.0, round_to))
        return Rows(t.astype(np.int64), src.astype(np.int64), dst.astype(np.int64), pay, recv,
                    fmt.astype(np.int8), paid, received, np.ones(n, dtype=np.int8))

    def attempt(self, typology: str) -> tuple[str, Rows]:
        """One laundering attempt of ``typology``: its BEGIN header and its rows in stage order."""
        rng = self.rng
        qualifier, n_nodes, src, dst, step, share = _shape(typology, rng)
        nodes = self.accounts(n_nodes)
        e = src.size
        order = np.lexsort((rng.random(e), step))
        src, dst, share = src[order], dst[order], share[order]
        start = rng.random() * self.timeline.nominal
        span = min(max(float(rng.lognormal(np.log(1200.0), 0.9)), 45.0), 6480.0)
        t = self.timeline.start + np.floor(start + np.sort(rng.random(e)) * span)
        t = np.minimum(t, self.timeline.end - 1)
        base = rng.lognormal(np.log(9000.0), 0.9)
        usd = base * share * rng.uniform(0.9, 1.1, e)
        fmt = np.full(e, draw(LAUNDER_FORMATS, rng, 1)[0])
        redraw = rng.random(e) < 0.15
        fmt[redraw] = draw(LAUNDER_FORMATS, rng, int(redraw.sum()))
        header = typology + (f":  {qualifier}" if qualifier else "")
        return header, self.rows(nodes[src], nodes[dst], t, usd, fmt)

    def singles(self, n: int) -> Rows:
        """``n`` laundering payments that belong to no attempt."""
        rng = self.rng
        src = rng.choice(self.pool, size=n)
        dst = np.where(rng.random(n) < 0.5, rng.choice(self.pool, size=n),
                       pick(self.world.recv_urn, rng, n))
        dst = np.where(dst == src, pick(self.world.recv_urn, rng, n), dst)
        t = self.timeline.start + np.floor(rng.random(n) * self.timeline.nominal)
        usd = rng.lognormal(np.log(3000.0), 1.0, n)
        return self.rows(src, dst, t, usd, draw(LAUNDER_FORMATS, rng, n))


def make_laundering(world: World, timeline: Timeline, total: int, rng: np.random.Generator) -> Laundering:
    """Generate about ``total`` laundering rows (exactly, unless the last attempt overshoots).

    Attempts come first (the first 16 cover every typology twice), until REPORTED of the rows
    are in reported attempts and UNREPORTED in unreported ones; single payments fill the rest.
    The laundering pool (about half as many accounts as laundering rows) also pays normally.
    """
    n_pool = min(world.n_active, max(40, total // 2))
    pool = rng.choice(world.n_active, size=n_pool, replace=False)
    maker = _Maker(world, timeline, pool, rng)
    parts: list[Rows] = []
    attempt_of: list[np.ndarray] = []
    headers, typologies, reported = [], [], []
    rounds = np.concatenate([rng.permutation(8), rng.permutation(8)])
    done = 0
    for goal, is_reported in ((round(total * REPORTED), True),
                              (round(total * (REPORTED + UNREPORTED)), False)):
        while done < max(goal, 1 if is_reported else 0):
            k = len(headers)
            if is_reported and k < rounds.size:
                code = int(rounds[k])
            else:
                code = int(np.searchsorted(_TYPO_CUM, rng.random()))
            typology = TYPOLOGIES[min(code, 7)]
            header, rows = maker.attempt(typology)
            parts.append(rows)
            attempt_of.append(np.full(len(rows), k, dtype=np.int32))
            headers.append(header)
            typologies.append(typology)
            reported.append(is_reported)
            done += len(rows)
    if total > done:
        parts.append(maker.singles(total - done))
        attempt_of.append(np.full(total - done, -1, dtype=np.int32))
    return Laundering(Rows.concat(parts), np.concatenate(attempt_of), headers, typologies,
                      np.array(reported, dtype=bool))
