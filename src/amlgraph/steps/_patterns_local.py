"""Kernel: fan, degree and vertex statistics of both endpoints in the half-open window (t - w, t].

For each edge and each of its four (endpoint, direction) sets - source out-edges, source in-edges,
destination out-edges, destination in-edges - the set's slice is found by binary search in the
time-sorted adjacency, then read once. Every statistic is recomputed from the slice in rank
order, never kept as a running sum: a running sum's rounding would depend on where the pass
began, and chunked runs must match one pass bit for bit. Cost: O(log d + W) per set, W the
set's size in the window.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit

from amlgraph.steps._patterns_graph import window_slice
from amlgraph.steps._patterns_params import SETS, STAT_ROWS, STATS  # noqa: F401  (re-exported)


@njit(cache=True, nogil=True)
def _amount_stats(amount, a, b, out, row, j):
    """count, sum, mean, min, max, population std of ``amount[a:b]`` into ``out[row:row+6, j]``."""
    c = b - a
    if c == 0:
        for r in range(6):
            out[row + r, j] = 0.0
        return
    s = 0.0
    lo = amount[a]
    hi = amount[a]
    for p in range(a, b):
        x = amount[p]
        s += x
        lo = min(lo, x)
        hi = max(hi, x)
    mean = s / c
    q = 0.0
    for p in range(a, b):
        d = amount[p] - mean
        q += d * d
    out[row, j] = c
    out[row + 1, j] = s
    out[row + 2, j] = mean
    out[row + 3, j] = lo
    out[row + 4, j] = hi
    out[row + 5, j] = math.sqrt(q / c)


@njit(cache=True, nogil=True)
def _gap_stats(ts, a, b, out, row, j):
    """The same six statistics of the gaps ``ts[p] - ts[p-1]`` for ``p`` in ``(a, b)``."""
    c = b - a - 1
    if c <= 0:
        for r in range(6):
            out[row + r, j] = 0.0
        return
    lo = ts[a + 1] - ts[a]
    hi = lo
    for p in range(a + 2, b):
        g = ts[p] - ts[p - 1]
        lo = min(lo, g)
        hi = max(hi, g)
    s = float(ts[b - 1] - ts[a])  # integer seconds: the sum of the gaps is exact
    mean = s / c
    q = 0.0
    for p in range(a + 1, b):
        d = (ts[p] - ts[p - 1]) - mean
        q += d * d
    out[row, j] = c
    out[row + 1, j] = s
    out[row + 2, j] = mean
    out[row + 3, j] = lo
    out[row + 4, j] = hi
    out[row + 5, j] = math.sqrt(q / c)


@njit(cache=True, nogil=True)
def _distinct(nbr, a, b, stamp, token):
    """Distinct values of ``nbr[a:b]``; ``stamp`` marks seen vertices with ``token``."""
    n = 0
    for p in range(a, b):
        y = nbr[p]
        if stamp[y] != token:
            stamp[y] = token
            n += 1
    return n


@njit(cache=True, nogil=True)
def local_kernel(src, dst, ts, n_context, window, out_adj, in_adj, n_nodes, n_blocks, block, fan,
                 degree, stats, worker, workers):
    """Fan, degree and vertex statistics of this worker's blocks of edges ``n_context..``.

    Args:
        src, dst, ts: shape (n_edges,), compact ids and non-decreasing timestamps.
        n_context: leading edges that are context only.
        window: seconds; the sets hold the edges with ``t - window < ts <= t`` and rank ``<= i``.
        out_adj, in_adj: (ptr, edge, nbr, ts, amount) tuples of the out- and in-lists.
        n_nodes: number of vertices.
        n_blocks, block: blocks of edges; this worker takes ``worker, worker + workers, ...``.
        fan, degree: int64 outputs of shape (4, m) or (4, 0) when not wanted, m = n_edges -
            n_context; rows follow SETS.
        stats: float64 output of shape (4 * STAT_ROWS, m) or (.., 0); per set, the amount
            statistics then the gap statistics, in STATS order.
        worker, workers: this worker and how many there are.
    """
    m = len(src) - n_context
    do_fan = fan.shape[1] > 0
    do_degree = degree.shape[1] > 0
    do_stats = stats.shape[1] > 0
    stamp = np.zeros(n_nodes if do_fan else 0, dtype=np.int64)
    token = 0
    for blk in range(worker, n_blocks, workers):
        for j in range(blk * block, min(m, (blk + 1) * block)):
            i = n_context + j
            start = ts[i] - window + 1  # integer seconds: (t - w, t] == [t - w + 1, t]
            for k in range(4):
                x = src[i] if k < 2 else dst[i]
                adj = out_adj if k % 2 == 0 else in_adj
                a, b = window_slice(adj[0], adj[1], adj[3], x, start, i)
                if do_degree:
                    degree[k, j] = b - a
                if do_fan:
                    token += 1
                    fan[k, j] = _distinct(adj[2], a, b, stamp, token)
                if do_stats:
                    _amount_stats(adj[4], a, b, stats, k * STAT_ROWS, j)
                    _gap_stats(adj[3], a, b, stats, k * STAT_ROWS + 6, j)
