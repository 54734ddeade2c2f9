"""Per-node statistics over prefix views of the rows: train, train + val, all (one pass).

Each incidence (a row seen from one of its nodes) carries the first view it belongs to
(``view``: 0 for a training row, 1 for a validation row, 2 for a test row; for an amount also
the first view that may price it). A statistic is computed once per (node, first view) cell and
then accumulated along the views: the validation view *extends* the training sums, counts,
extremes and distinct sets, it does not recompute them. A cell's floating-point sum runs over
its incidences in their order (``np.bincount``), so results do not depend on chunking.

Every function returns an array of shape (n, V): column v is the statistic over the incidences
whose first view is <= v. An incidence whose view is >= V belongs to no view (an amount that
cannot be priced).
"""
from __future__ import annotations

import numpy as np
import polars as pl


def _cells(pos: np.ndarray, view: np.ndarray, n_views: int) -> tuple[np.ndarray, np.ndarray]:
    keep = view < n_views
    if keep.all():
        return pos * n_views + view, keep
    return pos[keep] * n_views + view[keep], keep


def counts(pos: np.ndarray, view: np.ndarray, n: int, n_views: int) -> np.ndarray:
    """Incidences per node and view, Int64 of shape (n, V)."""
    cell, _ = _cells(pos, view, n_views)
    return np.bincount(cell, minlength=n * n_views).reshape(n, n_views).cumsum(axis=1)


def sums(pos: np.ndarray, view: np.ndarray, values: np.ndarray, n: int, n_views: int) -> np.ndarray:
    """Sum of ``values`` per node and view, Float64 of shape (n, V)."""
    cell, keep = _cells(pos, view, n_views)
    w = values if keep.all() else values[keep]
    return np.bincount(cell, weights=w, minlength=n * n_views).reshape(n, n_views).cumsum(axis=1)


def extremes(pos: np.ndarray, view: np.ndarray, values: np.ndarray, n: int, n_views: int,
             ufunc: np.ufunc, *, empty: float = 0.0) -> np.ndarray:
    """Max (``np.maximum``) or min of ``values`` per node and view; ``empty`` where none."""
    init = -np.inf if ufunc is np.maximum else np.inf
    out = np.full(n * n_views, init, dtype=np.float64)
    cell, keep = _cells(pos, view, n_views)
    ufunc.at(out, cell, (values if keep.all() else values[keep]).astype(np.float64))
    out = ufunc.accumulate(out.reshape(n, n_views), axis=1)
    out[out == init] = empty
    return out


def int_extremes(pos: np.ndarray, view: np.ndarray, values: np.ndarray, n: int, n_views: int,
                 ufunc: np.ufunc) -> np.ndarray:
    """As :func:`extremes` for Int64 values (timestamps), exact; the ufunc's identity where none."""
    info = np.iinfo(np.int64)
    init = info.min if ufunc is np.maximum else info.max
    out = np.full(n * n_views, init, dtype=np.int64)
    cell, keep = _cells(pos, view, n_views)
    ufunc.at(out, cell, values if keep.all() else values[keep])
    return ufunc.accumulate(out.reshape(n, n_views), axis=1)


def distinct(pos: np.ndarray, view: np.ndarray, values: np.ndarray, n: int, n_views: int) -> np.ndarray:
    """Distinct values per node and view (a value counts from the first view it appears in).

    Each (node, value) pair is one integer key, ``pos * width + value - vmin``, computed only when
    it fits in int64 (the width with Python integers; values spread over all of int64, such as
    bank ids up to 2**63 - 1, are first numbered densely). Few distinct values (currencies, a
    chunk's banks): a table of counts per view (one ``bincount`` each). Otherwise the distinct
    keys by hashing (Polars), with their first view.
    """
    if len(pos) == 0:
        return np.zeros((n, n_views), dtype=np.int64)
    vmin = int(values.min())
    width = int(values.max()) - vmin + 1
    if n * width >= 1 << 62:
        values = np.unique(values, return_inverse=True)[1].reshape(-1)
        vmin, width = 0, int(values.max()) + 1
    key = pos * width
    key += values
    key -= vmin
    out = np.zeros((n, n_views), dtype=np.int64)
    if n * width <= 4 * len(key) + 1_000_000:
        for v in range(n_views):
            mine = key if n_views == 1 else key[view <= v]
            seen = np.bincount(mine, minlength=n * width).reshape(n, width) > 0
            out[:, v] = seen.sum(axis=1, dtype=np.int64)
        return out
    if n_views == 1:
        return np.bincount(pl.Series(key).unique().to_numpy() // width, minlength=n).reshape(n, 1)
    first = pl.DataFrame({"k": key, "s": view}).group_by("k").agg(pl.col("s").min())
    return counts(first["k"].to_numpy() // width, first["s"].to_numpy(), n, n_views)


def mean_std(pos: np.ndarray, view: np.ndarray, values: np.ndarray, n: int,
             n_views: int) -> tuple[np.ndarray, np.ndarray]:
    """Mean and population std per node and view (two passes, each in the order of ``pos``).

    A std that overflows (amounts near the largest float) is computed again for those nodes
    from deviations scaled by their largest absolute deviation, so every finite amount gives a
    finite std; elsewhere the plain two-pass formula stands, bit for bit.
    """
    count = counts(pos, view, n, n_views)
    with np.errstate(over="ignore", invalid="ignore"):
        mean = ratio(sums(pos, view, values, n, n_views), count)
    std = np.zeros((n, n_views), dtype=np.float64)
    for v in range(n_views):
        keep = view <= v
        p, x = pos[keep], values[keep]
        with np.errstate(over="ignore", invalid="ignore"):
            dev = x - mean[p, v]
            var = ratio(np.bincount(p, weights=dev * dev, minlength=n), count[:, v])
            col = np.sqrt(var)
        bad = ~np.isfinite(col)
        if bad.any():
            with np.errstate(all="ignore"):  # a NaN mean (an overflowed sum) stays NaN, reported later
                col = _scaled_std(p, dev, n, count[:, v], bad, col)
        col[count[:, v] < 2] = 0.0
        std[:, v] = col
    return mean, std


def _scaled_std(p: np.ndarray, dev: np.ndarray, n: int, count: np.ndarray, bad: np.ndarray,
                col: np.ndarray) -> np.ndarray:
    """The std of the ``bad`` nodes from deviations scaled by their largest absolute deviation."""
    scale = np.zeros(n)
    np.maximum.at(scale, p, np.abs(dev))
    safe = np.where(scale > 0, scale, 1.0)
    unit = dev / safe[p]
    return np.where(bad, safe * np.sqrt(ratio(np.bincount(p, weights=unit * unit, minlength=n), count)), col)


def ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    """``num / den`` elementwise, 0 where ``den`` is 0; any shape."""
    return np.divide(num, den, out=np.zeros(np.shape(num), dtype=np.float64), where=den > 0)
