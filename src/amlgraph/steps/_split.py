"""The temporal split of data_loaded: Multi-GNN's day-bucket boundaries, and far-off dates.

See docs/FEATURES.md ("Temporal split").
"""
from __future__ import annotations

import numpy as np

from amlgraph.errors import ConfigError
from amlgraph.schema import TEST, TRAIN, VAL

SECONDS_PER_DAY = 86_400


#: A day is "far outside" the bulk of the data when it lies more than this factor times the
#: interquartile range of the rows' days, and at least :data:`FAR_DAYS_MIN` days, before the
#: first quartile or after the third (Tukey's "far out" fences, counted in rows).
FAR_IQR_FACTOR = 3
FAR_DAYS_MIN = 30


def far_dates(day_counts: dict[int, int]) -> str | None:
    """A warning naming the days far outside the bulk of the rows, or None when there are none.

    A date typo (2000 for 2022) or a stray test row puts one day decades away from the rest: the
    temporal split then counts every empty day in between, and a year-long train split may hold
    one row. The rule: with Q1 and Q3 the days by which a quarter and three quarters of the rows
    have occurred, a day with rows is far outside when it is before
    ``Q1 - max(FAR_IQR_FACTOR * (Q3 - Q1), FAR_DAYS_MIN)`` or after
    ``Q3 + max(FAR_IQR_FACTOR * (Q3 - Q1), FAR_DAYS_MIN)``.

    Args:
        day_counts: ``{day: count}`` as :func:`day_counts` returns, summed over all chunks.

    Returns:
        One line: how many rows on how many such days, the first and last few dates, the quartile
        days, and what to do; None when no day is far outside.
    """
    days = np.array(sorted(d for d, c in day_counts.items() if c > 0), dtype=np.int64)
    if len(days) < 2:
        return None
    counts = np.array([day_counts[int(d)] for d in days], dtype=np.int64)
    cum = np.cumsum(counts)
    q1, q3 = days[np.searchsorted(cum, [cum[-1] / 4, cum[-1] * 3 / 4], side="left")]
    margin = max(FAR_IQR_FACTOR * int(q3 - q1), FAR_DAYS_MIN)
    far = (days < q1 - margin) | (days > q3 + margin)
    if not far.any():
        return None
    far_days, rows = days[far], int(counts[far].sum())
    shown = [_date(d) for d in far_days] if len(far_days) <= 6 else \
        [_date(d) for d in far_days[:3]] + ["..."] + [_date(d) for d in far_days[-3:]]
    return (f"{rows:,} row{'s' if rows != 1 else ''} on {len(far_days):,} day{'s' if len(far_days) != 1 else ''} "
            f"far outside the bulk of the data (half the rows lie between {_date(q1)} and {_date(q3)}): "
            f"{', '.join(shown)}; check these dates and fix or remove those rows if they are wrong "
            "(they stretch the temporal split and every time-based feature)")


def _date(day: int) -> str:
    return str(np.datetime64(int(day), "D"))


def temporal_split_boundaries(day_counts: dict[int, int],
                              fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)) -> tuple[int, int]:
    """Choose the two day boundaries of the temporal split as IBM Multi-GNN does.

    The days from the first to the last day present (empty days included, as zeros) are
    numbered 0..D-1. For every pair i < j, the splits are days [0, i), [i, j), [j, D); the score is
    the largest relative error ``|share - fraction| / fraction`` of the three shares; the pair with
    the lowest score wins, the first in (i, j) order on ties.

    The pairs are not enumerated (D**2 / 2 of them: 1.1e9 for dates spanning 1970-2099): for each
    i, the score over j is valley-shaped, so its first minimum is found by binary searches, for
    all i at once (:func:`_first_best_j`). Memory O(D), time O(D log D); the scores compared are
    the same floating-point numbers as the all-pairs formula's, so the result is identical.

    Args:
        day_counts: ``{day: count}`` as :func:`day_counts` returns, summed over all chunks.
        fractions: target shares of train, validation and test; each > 0, summing to 1.

    Returns:
        ``(b1, b2)`` absolute day indices: train = day < b1, val = b1 <= day < b2, test = day >= b2.

    Raises:
        ConfigError: bad fractions, or fewer than two days to split.
    """
    fr = tuple(float(f) for f in fractions)
    if len(fr) != 3 or any(not f > 0 for f in fr) or abs(sum(fr) - 1.0) > 1e-9:
        raise ConfigError(f"split fractions must be three numbers > 0 summing to 1 (got {fractions!r})")
    days = [d for d, c in day_counts.items() if c > 0]
    if len(days) < 2:
        raise ConfigError(f"a temporal split needs transactions on at least 2 days (got {len(days)})")
    first, last = min(days), max(days)
    totals = np.zeros(last - first + 1, dtype=np.int64)
    for d, c in day_counts.items():
        totals[d - first] += c
    cum = np.concatenate([[0], np.cumsum(totals)])
    i = np.arange(len(totals) - 1, dtype=np.int64)  # every i has a j in (i, D)
    j, score = _first_best_j(cum, i, fr)
    best = int(np.argmin(score))  # the first i of the lowest score, with its first j: (i, j) order
    return first + int(i[best]), first + int(j[best])


def _split_score(cum: np.ndarray, i: np.ndarray, j: np.ndarray, fr: tuple[float, float, float]) -> np.ndarray:
    """Score of the splits [0, i), [i, j), [j, D) (shapes of ``i`` and ``j``, broadcast).

    The exact operations of the all-pairs formula, so that the floats compared are the same.
    """
    total = cum[-1]
    shares = (cum[i], cum[j] - cum[i], total - cum[j])
    errors = [np.abs(s / total - f) / f for s, f in zip(shares, fr)]
    return np.maximum(np.maximum(errors[0], errors[1]), errors[2])


def _first_true(pred, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
    """Per row r, the first j in [lo[r], hi[r]) with ``pred(rows, js)`` true, else hi[r].

    ``pred`` must be monotone in j (false, then true) on each row's range. A binary search for
    all rows at once: one vectorised pass per halving, not a loop per row.
    """
    lo, hi = lo.copy(), hi.copy()
    rows = np.flatnonzero(lo < hi)
    while len(rows):
        mid = (lo[rows] + hi[rows]) // 2
        hit = pred(rows, mid)
        hi[rows[hit]] = mid[hit]
        lo[rows[~hit]] = mid[~hit] + 1
        rows = rows[lo[rows] < hi[rows]]
    return lo


def _first_best_j(cum: np.ndarray, i: np.ndarray, fr: tuple[float, float, float]) -> tuple[np.ndarray, np.ndarray]:
    """For each i, the first j in (i, D) of the lowest score, and that score; shapes of ``i``.

    Why binary searches find it: with i fixed, the score is max(e0, e1(j), e2(j)) where e0 is
    constant, and e1 (validation error) and e2 (test error) are each non-increasing then
    non-decreasing in j: ``|x - f| / f`` of a share x that is monotone in j (cum is sorted, and
    rounded subtraction and division are monotone). e1 turns at p1, the first j with
    ``(cum[j] - cum[i]) / total - f1 >= 0``; e2 at p2, the first j with
    ``(total - cum[j]) / total - f2 <= 0``. Before min(p1, p2) both fall, from max(p1, p2) on both
    rise; in between one rises ("up") and one falls ("down") and ``up >= down`` turns true once,
    at m (or m = max(p1, p2) if never, or when the two turn together). So the score does not rise
    before m and does not fall from m on: its lowest value is score[m - 1] or score[m], whichever is lower
    (score[m - 1] on a tie, the earlier j), and the first j reaching a value on the falling part
    is again a binary search. Every comparison is on the same floats as the all-pairs formula.
    """
    _, f1, f2 = fr
    total = cum[-1]
    d = len(cum) - 1
    start, end = i + 1, np.full(len(i), d, dtype=np.int64)
    s2 = (total - cum[:d]) / total - f2                      # test share error sign, by j
    p2 = np.maximum(start, np.searchsorted(-s2, 0.0, side="left"))  # -s2 is sorted: first s2 <= 0
    p1 = _first_true(lambda r, j: (cum[j] - cum[i[r]]) / total - f1 >= 0, start, end)
    a, c = np.minimum(p1, p2), np.maximum(p1, p2)

    def e1(r, j):
        return np.abs((cum[j] - cum[i[r]]) / total - f1) / f1

    def e2(r, j):
        return np.abs((total - cum[j]) / total - f2) / f2

    def up_reaches_down(r, j):
        # Between a and c: e1 rises where p1 came first, else e2 does.
        first1 = p1[r] <= p2[r]
        return np.where(first1, e1(r, j) >= e2(r, j), e2(r, j) >= e1(r, j))

    m = _first_true(up_reaches_down, a, c)
    left_ok, right_ok = m - 1 >= start, m < end
    left = np.where(left_ok, _split_score(cum, i, np.where(left_ok, m - 1, start), fr), np.inf)
    right = np.where(right_ok, _split_score(cum, i, np.where(right_ok, m, start), fr), np.inf)
    use_left = left <= right
    value = np.where(use_left, left, right)
    # On the falling part [start, m) the first j whose score is <= its minimum is where it starts.
    first_left = _first_true(lambda r, j: _split_score(cum, i[r], j, fr) <= value[r], start,
                             np.where(use_left, m, start))
    return np.where(use_left, first_left, m), value


def assign_split(timestamps: np.ndarray, boundaries: tuple[int, int], *,
                 unit: int = SECONDS_PER_DAY) -> np.ndarray:
    """Split code of each transaction from its time bucket.

    Args:
        timestamps: epoch seconds of shape (n_rows,).
        boundaries: ``(b1, b2)`` from :func:`temporal_split_boundaries`, in buckets of ``unit``
            seconds (days by default; 1 for boundaries already given in epoch seconds).
        unit: bucket width in seconds.

    Returns:
        Int8 array of shape (n_rows,): TRAIN (0) for bucket < b1, VAL (1) for b1 <= bucket < b2,
        TEST (2) for bucket >= b2.
    """
    b1, b2 = boundaries
    bucket = np.asarray(timestamps, dtype=np.int64) // unit
    out = np.full(bucket.shape, TRAIN, dtype=np.int8)
    out[bucket >= b1] = VAL
    out[bucket >= b2] = TEST
    return out
