"""Time-sorted adjacency for the pattern kernels, and the window searches on it.

Edges arrive sorted by (timestamp, row), so an edge's position in the input is its rank in that
order. Each vertex's out-list and in-list keep edges in that rank order, hence also in timestamp
order: a time window is a contiguous slice found by two binary searches, one on time (the
window's start) and one on rank (nothing after the edge being featurised).
"""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from typing import Callable, NamedTuple

import numpy as np
from numba import njit


class Adjacency(NamedTuple):
    """One direction of the graph in CSR form, self-loops left out.

    Attributes:
        ptr: shape (n_nodes + 1,); vertex ``x``'s slice is ``[ptr[x], ptr[x + 1])``.
        edge: shape (n_kept,), int64; edge ranks, ascending within a slice.
        nbr: shape (n_kept,), int64; the other endpoint of each edge.
        ts: shape (n_kept,), int64; the edge's timestamp (ascending within a slice).
        amount: shape (n_kept,), float64; the edge's amount.
    """

    ptr: np.ndarray
    edge: np.ndarray
    nbr: np.ndarray
    ts: np.ndarray
    amount: np.ndarray


def compact_ids(src: np.ndarray, dst: np.ndarray) -> tuple[np.ndarray, np.ndarray, int]:
    """Vertex ids 0..n_nodes-1 for the scratch arrays, which are indexed by vertex.

    Ids that already are small non-negative integers (amlgraph's node ids, a chunk's look-back
    window holding most accounts) are kept: renumbering would cost a sort per chunk.

    Args:
        src, dst: shape (n_edges,), any integer ids.

    Returns:
        (src, dst, n_nodes): int64 arrays of shape (n_edges,) and the id bound.
    """
    if len(src) == 0:
        return src.astype(np.int64), dst.astype(np.int64), 0
    low = min(int(src.min()), int(dst.min()))
    high = max(int(src.max()), int(dst.max()))
    if low >= 0 and high < 4 * len(src) + 1024:
        return src.astype(np.int64, copy=False), dst.astype(np.int64, copy=False), high + 1
    ids, inverse = np.unique(np.concatenate([src, dst]), return_inverse=True)
    inverse = inverse.astype(np.int64, copy=False)
    return inverse[: len(src)], inverse[len(src):], len(ids)


def build_adjacency(key: np.ndarray, other: np.ndarray, ts: np.ndarray, amount: np.ndarray,
                    n_nodes: int, with_amount: bool = True) -> Adjacency:
    """CSR of the edges grouped by ``key`` (``src`` for out-lists, ``dst`` for in-lists).

    Self-loops are left out: a self-transfer is no edge between two accounts (docs/PATTERNS.md).

    Args:
        key, other: shape (n_edges,), vertex ids below ``n_nodes``; ``key`` groups.
        ts: shape (n_edges,), int64, non-decreasing.
        amount: shape (n_edges,), float64.
        n_nodes: the id bound.
        with_amount: False leaves ``amount`` empty (only the statistics read it).
    """
    return Adjacency(*_csr(key, other, ts, amount, n_nodes, with_amount))


@njit(cache=True, nogil=True)
def _csr(key, other, ts, amount, n_nodes, with_amount):
    """Counting sort by ``key``: one pass to count, one to place, in rank order per vertex."""
    ptr = np.zeros(n_nodes + 1, dtype=np.int64)
    for e in range(len(key)):
        if key[e] != other[e]:
            ptr[key[e] + 1] += 1
    for x in range(n_nodes):
        ptr[x + 1] += ptr[x]
    cursor = ptr[:-1].copy()
    n = ptr[n_nodes]
    edge = np.empty(n, dtype=np.int64)
    nbr = np.empty(n, dtype=np.int64)
    ets = np.empty(n, dtype=np.int64)
    eamount = np.empty(n if with_amount else 0, dtype=np.float64)
    for e in range(len(key)):
        k = key[e]
        if k != other[e]:
            p = cursor[k]
            cursor[k] = p + 1
            edge[p] = e
            nbr[p] = other[e]
            ets[p] = ts[e]
            if with_amount:
                eamount[p] = amount[e]
    return ptr, edge, nbr, ets, eamount


def max_window_edges(ts: np.ndarray, width: int) -> int:
    """The most edges any closed window ``[t - width, t]`` holds (sizes the search buffers).

    Args:
        ts: shape (n_edges,), non-decreasing.
        width: window length in seconds.
    """
    if len(ts) == 0:
        return 0
    first = np.searchsorted(ts, ts - width, side="left")
    return int((np.arange(len(ts)) - first).max()) + 1


def bin_table(bins: tuple[int, ...], longest: int) -> np.ndarray:
    """Histogram column of each pattern size ``0..longest`` (-1: smaller than ``bins[0]``).

    Bin ``k`` holds sizes ``bins[k] <= s < bins[k + 1]``; the last bin holds ``s >= bins[-1]``.
    Sizes above ``longest`` fall in the last bin (callers make ``longest >= bins[-1]``).
    """
    edges = np.asarray(bins, dtype=np.int64)
    sizes = np.arange(max(longest, int(edges[-1])) + 1, dtype=np.int64)
    return (np.searchsorted(edges, sizes, side="right") - 1).astype(np.int64)


@njit(cache=True, nogil=True)
def first_ts_at_least(ts, lo, hi, value):
    """First position ``p`` in ``[lo, hi)`` with ``ts[p] >= value`` (``hi`` if none)."""
    while lo < hi:
        mid = (lo + hi) >> 1
        if ts[mid] < value:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True, nogil=True)
def first_edge_above(edge, lo, hi, rank):
    """First position ``p`` in ``[lo, hi)`` with ``edge[p] > rank`` (``hi`` if none)."""
    while lo < hi:
        mid = (lo + hi) >> 1
        if edge[mid] <= rank:
            lo = mid + 1
        else:
            hi = mid
    return lo


@njit(cache=True, nogil=True)
def window_slice(ptr, edge, ts, x, start_time, last_rank):
    """Vertex ``x``'s slice of edges with ``ts >= start_time`` and rank ``<= last_rank``.

    Returns:
        (a, b): the positions ``[a, b)`` in the CSR arrays.
    """
    lo = ptr[x]
    hi = ptr[x + 1]
    b = first_edge_above(edge, lo, hi, last_rank)
    a = first_ts_at_least(ts, lo, b, start_time)
    return a, b


def worker_blocks(n_items: int, threads: int, block: int) -> tuple[int, int]:
    """(workers, blocks): workers take blocks ``k, k + workers, ...`` of ``block`` items each.

    Cyclic blocks keep the threads balanced when the cost per edge drifts along the day.
    """
    n_blocks = max(1, -(-n_items // block))
    return max(1, min(threads, n_blocks)), n_blocks


def run_workers(kernel: Callable, workers: int, *args) -> None:
    """Call ``kernel(*args, worker, workers)`` for each worker, on that many threads.

    The kernels are compiled ``nogil``, so plain Python threads run them in parallel. (Numba's
    own parallel loops were tried first: their OpenMP workers spin at barriers, which on a
    shared, oversubscribed machine cost more than the work of a 10K-row batch.)
    """
    if workers == 1:
        kernel(*args, 0, 1)
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for future in [pool.submit(kernel, *args, w, workers) for w in range(workers)]:
            future.result()
