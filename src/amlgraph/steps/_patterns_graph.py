"""Time-sorted adjacency for the pattern kernels, and the window searches on it.

Edges arrive sorted by (timestamp, row), so an edge's position in the input is its rank in that
order. Each vertex's out-list and in-list keep edges in that rank order, hence also in timestamp
order: a time window is a contiguous slice found by two binary searches, one on time (the
window's start) and one on rank (nothing after the edge being featurised).
"""
from __future__ import annotations

from typing import NamedTuple

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
    """Renumber the vertices 0..n_nodes-1 (scratch arrays are indexed by vertex).

    Args:
        src, dst: shape (n_edges,), any integer ids.

    Returns:
        (src, dst, n_nodes): int64 arrays of shape (n_edges,) and the number of vertices.
    """
    ids, inverse = np.unique(np.concatenate([src, dst]), return_inverse=True)
    inverse = inverse.astype(np.int64, copy=False)
    return inverse[: len(src)], inverse[len(src):], len(ids)


def build_adjacency(key: np.ndarray, other: np.ndarray, ts: np.ndarray, amount: np.ndarray,
                    n_nodes: int) -> Adjacency:
    """CSR of the edges grouped by ``key`` (``src`` for out-lists, ``dst`` for in-lists).

    Self-loops are left out: a self-transfer is no edge between two accounts (docs/PATTERNS.md).

    Args:
        key, other: shape (n_edges,), compact vertex ids; ``key`` groups, ``other`` is stored.
        ts: shape (n_edges,), int64, non-decreasing.
        amount: shape (n_edges,), float64.
        n_nodes: number of vertices.
    """
    kept = np.flatnonzero(key != other)
    # A stable sort keeps each vertex's edges in rank order, i.e. in time order.
    edge = kept[np.argsort(key[kept], kind="stable")]
    ptr = np.zeros(n_nodes + 1, dtype=np.int64)
    np.cumsum(np.bincount(key[kept], minlength=n_nodes), out=ptr[1:])
    return Adjacency(ptr, edge, other[edge], ts[edge], amount[edge])


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
