"""Kernels: cycles closing on an edge, temporal (time-respecting) and length-constrained simple.

A cycle closes on edge i = u -> v when a path v = x_0 -> x_1 -> ... -> x_k = u of distinct
vertices exists among the edges before i; its length is k + 1 (the path's edges plus i).
Cycles are counted as distinct vertex sequences: parallel edges never multiply a cycle.
Self-loops are no edges here, so every cycle has length >= 2.

* Simple cycles: every hop has an edge of rank < i with ``t - w <= ts``; length <= max_length.
  Search: a backward BFS from u over the window (depth <= max_length - 1) gives each vertex its
  distance to u; the DFS from v then only enters y when depth + 1 + dist(y) <= max_length - 1.
* Temporal cycles: one edge per hop can be chosen with strictly increasing timestamps
  ``t - w <= ts_1 < ts_2 < ... < ts_k < t``; no length bound. Search: a backward
  latest-departure pass from u (a max-heap Dijkstra over timestamps) gives each vertex the
  latest time it can be left and still reach u before t; the DFS from v takes, per distinct
  successor, its earliest usable edge (for a fixed vertex sequence, greedy earliest arrival
  succeeds whenever any choice does) and enters y only while that edge's time is below y's
  latest departure.

Both searches are bidirectional in this sense: the backward pass bounds the forward DFS, and an
edge whose source cannot be reached back from its destination costs one backward pass only.
The DFS collects a vertex's distinct successors before descending, so the per-expansion dedup
survives the descent; its buffer holds at most one window's edges.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from amlgraph.steps._patterns_graph import first_ts_at_least, window_slice


@njit(cache=True, nogil=True)
def _to_hist(counts, longest, table, hist, j):
    """Move per-length ``counts[2..longest]`` into column ``j`` of ``hist`` through ``table``.

    ``counts[-1]`` holds every length from ``len(counts) - 1`` up, which share the last bin.
    """
    last = len(table) - 1
    for length in range(2, min(longest, len(counts) - 1) + 1):
        c = counts[length]
        if c:
            counts[length] = 0
            k = table[length] if length <= last else table[last]
            if k >= 0:
                hist[k, j] += c


@njit(cache=True, nogil=True)
def _simple_one(i, u, v, start, max_len, out_adj, in_adj, mark, dist, queue, on_path, succ, buf,
                beg, end, pos, path, counts, token):
    """Count the simple cycles closing on edge i into ``counts``; return (longest, token)."""
    token += 1
    bfs = token
    mark[u] = bfs
    dist[u] = 0
    queue[0] = u
    head = 0
    tail = 1
    while head < tail:
        z = queue[head]
        head += 1
        dz = dist[z]
        if dz >= max_len - 1 or z == v:  # v only starts paths; none passes through it
            continue
        a, b = window_slice(in_adj[0], in_adj[1], in_adj[3], z, start, i - 1)
        for p in range(a, b):
            y = in_adj[2][p]
            if mark[y] != bfs:
                mark[y] = bfs
                dist[y] = dz + 1
                queue[tail] = y
                tail += 1
    if mark[v] != bfs:
        return 0, token
    longest = 0
    d = 0
    path[0] = v
    on_path[v] = 1
    top = 0
    expand = True
    while d >= 0:
        if expand:
            # Collect the distinct admissible successors of path[d] after its parent's.
            x = path[d]
            token += 1
            beg[d] = top
            a, b = window_slice(out_adj[0], out_adj[1], out_adj[3], x, start, i - 1)
            for p in range(a, b):
                y = out_adj[2][p]
                if succ[y] == token:
                    continue
                succ[y] = token
                if y == u:
                    counts[d + 2] += 1
                    longest = max(longest, d + 2)
                elif mark[y] == bfs and on_path[y] == 0 and d + 1 + dist[y] <= max_len - 1:
                    buf[top] = y
                    top += 1
            end[d] = top
            pos[d] = beg[d]
            expand = False
        if pos[d] < end[d]:
            y = buf[pos[d]]
            pos[d] += 1
            d += 1
            path[d] = y
            on_path[y] = 1
            top = end[d - 1]
            expand = True
        else:
            on_path[path[d]] = 0
            top = beg[d]
            d -= 1
    return longest, token


@njit(cache=True, nogil=True)
def simple_kernel(src, dst, ts, n_context, window, max_len, out_adj, in_adj, n_nodes, cap, table,
                  n_blocks, block, hist, worker, workers):
    """Histogram by length of the simple cycles closing on this worker's blocks of edges.

    Args:
        src, dst, ts: shape (n_edges,), compact ids and non-decreasing timestamps.
        n_context: leading edges that are context only.
        window: seconds; hops use edges of rank < i with ``t - window <= ts``.
        max_len: longest cycle counted (edges, the closing one included), >= 2.
        out_adj, in_adj: (ptr, edge, nbr, ts, amount) tuples of the out- and in-lists.
        n_nodes: number of vertices; cap: most edges in one window (buffer size).
        table: bin of each length (see ``bin_table``).
        n_blocks, block: blocks of edges; this worker takes ``worker, worker + workers, ...``.
        hist: int64 output of shape (n_bins, n_edges - n_context).
        worker, workers: this worker and how many there are.
    """
    m = len(src) - n_context
    mark = np.zeros(n_nodes, dtype=np.int64)  # stamps start at 0; the rest is written first
    succ = np.zeros(n_nodes, dtype=np.int64)
    on_path = np.zeros(n_nodes, dtype=np.uint8)
    dist = np.empty(n_nodes, dtype=np.int64)
    queue = np.empty(n_nodes + 1, dtype=np.int64)
    buf = np.empty(cap + 1, dtype=np.int64)
    beg = np.zeros(max_len + 1, dtype=np.int64)
    end = np.zeros(max_len + 1, dtype=np.int64)
    pos = np.zeros(max_len + 1, dtype=np.int64)
    path = np.zeros(max_len + 1, dtype=np.int64)
    counts = np.zeros(max_len + 2, dtype=np.int64)
    token = 0
    for blk in range(worker, n_blocks, workers):
        for j in range(blk * block, min(m, (blk + 1) * block)):
            i = n_context + j
            u = src[i]
            v = dst[i]
            if u == v:
                continue
            longest, token = _simple_one(i, u, v, ts[i] - window, max_len, out_adj, in_adj, mark,
                                         dist, queue, on_path, succ, buf, beg, end, pos, path,
                                         counts, token)
            _to_hist(counts, longest, table, hist, j)


@njit(cache=True, nogil=True)
def _heap_push(keys, vals, size, key, val):
    """Push onto the max-heap ``keys``/``vals`` of ``size`` items; return the new size."""
    p = size
    keys[p] = key
    vals[p] = val
    while p > 0:
        parent = (p - 1) >> 1
        if keys[parent] >= keys[p]:
            break
        keys[parent], keys[p] = keys[p], keys[parent]
        vals[parent], vals[p] = vals[p], vals[parent]
        p = parent
    return size + 1


@njit(cache=True, nogil=True)
def _heap_pop(keys, vals, size):
    """Remove the max of the heap (read it first at index 0); return the new size."""
    size -= 1
    keys[0] = keys[size]
    vals[0] = vals[size]
    p = 0
    while True:
        c = 2 * p + 1
        if c >= size:
            break
        if c + 1 < size and keys[c + 1] > keys[c]:
            c += 1
        if keys[p] >= keys[c]:
            break
        keys[p], keys[c] = keys[c], keys[p]
        vals[p], vals[c] = vals[c], vals[p]
        p = c
    return size


@njit(cache=True, nogil=True)
def _temporal_one(i, u, v, t, start, out_adj, in_adj, mark, late, on_path, succ, hkeys, hvals,
                  buf_y, buf_t, beg, end, pos, path, arrive, counts, token):
    """Count the temporal cycles closing on edge i into ``counts``.

    Returns:
        (longest, token, done): ``done`` is False when the path outgrew ``path`` & co.; the
        caller then grows them and counts edge i again (``counts`` and ``on_path`` are clean).
    """
    # Latest departure: late[y] = the latest ts of an edge leaving y from which u is reached
    # by strictly increasing timestamps below t. Max-heap order settles each vertex once.
    token += 1
    seen = token
    mark[u] = seen
    late[u] = t
    size = _heap_push(hkeys, hvals, 0, t, u)
    while size > 0:
        key = hkeys[0]
        z = hvals[0]
        size = _heap_pop(hkeys, hvals, size)
        if key != late[z] or z == v:  # stale entry, or the start vertex (no path passes it)
            continue
        lo = in_adj[0][z]
        a = first_ts_at_least(in_adj[3], lo, in_adj[0][z + 1], start)
        b = first_ts_at_least(in_adj[3], a, in_adj[0][z + 1], key)
        for p in range(a, b):
            y = in_adj[2][p]
            if y == u:
                continue
            tau = in_adj[3][p]
            if mark[y] != seen or tau > late[y]:
                mark[y] = seen
                late[y] = tau
                size = _heap_push(hkeys, hvals, size, tau, y)
    if mark[v] != seen:
        return 0, token, True
    longest = 0
    top_len = len(counts) - 1
    d = 0
    path[0] = v
    arrive[0] = start - 1
    on_path[v] = 1
    top = 0
    expand = True
    while d >= 0:
        if expand:
            x = path[d]
            token += 1
            beg[d] = top
            lo = out_adj[0][x]
            hi = first_ts_at_least(out_adj[3], lo, out_adj[0][x + 1], t)
            a = first_ts_at_least(out_adj[3], lo, hi, arrive[d] + 1)
            for p in range(a, hi):
                y = out_adj[2][p]
                if succ[y] == token:
                    continue
                succ[y] = token  # the first edge to y is its earliest: later ones never help
                tau = out_adj[3][p]
                if y == u:
                    counts[min(d + 2, top_len)] += 1
                    longest = max(longest, d + 2)
                elif mark[y] == seen and on_path[y] == 0 and late[y] > tau:
                    buf_y[top] = y
                    buf_t[top] = tau
                    top += 1
            end[d] = top
            pos[d] = beg[d]
            expand = False
        if pos[d] < end[d]:
            if d + 1 == len(path):
                for k in range(d + 1):
                    on_path[path[k]] = 0
                counts[:] = 0
                return 0, token, False
            q = pos[d]
            pos[d] += 1
            d += 1
            path[d] = buf_y[q]
            arrive[d] = buf_t[q]
            on_path[buf_y[q]] = 1
            top = end[d - 1]
            expand = True
        else:
            on_path[path[d]] = 0
            top = beg[d]
            d -= 1
    return longest, token, True


@njit(cache=True, nogil=True)
def temporal_kernel(src, dst, ts, n_context, window, out_adj, in_adj, n_nodes, cap, table,
                    n_blocks, block, hist, worker, workers):
    """Histogram by length of the temporal cycles closing on this worker's blocks of edges.

    Args:
        src, dst, ts: shape (n_edges,), compact ids and non-decreasing timestamps.
        n_context: leading edges that are context only.
        window: seconds; hops use edges with ``t - window <= ts < t``.
        out_adj, in_adj: (ptr, edge, nbr, ts, amount) tuples of the out- and in-lists.
        n_nodes: number of vertices; cap: most edges in one window (buffer and heap size).
        table: bin of each length (see ``bin_table``).
        n_blocks, block: blocks of edges; this worker takes ``worker, worker + workers, ...``.
        hist: int64 output of shape (n_bins, n_edges - n_context).
        worker, workers: this worker and how many there are.
    """
    m = len(src) - n_context
    # Stamps start at 0 (tokens are positive); everything else is written before it is read,
    # so np.empty spares zeroing megabytes per call (a chunk's look-back holds most accounts).
    mark = np.zeros(n_nodes, dtype=np.int64)
    succ = np.zeros(n_nodes, dtype=np.int64)
    on_path = np.zeros(n_nodes, dtype=np.uint8)
    late = np.empty(n_nodes, dtype=np.int64)
    depth = min(n_nodes + 1, 64)
    levels = np.empty((5, depth), dtype=np.int64)  # beg, end, pos, path, arrive; grown on demand
    heap = np.empty((4, cap + 2), dtype=np.int64)  # keys, values; candidate vertices, times
    counts = np.zeros(len(table), dtype=np.int64)
    token = 0
    for blk in range(worker, n_blocks, workers):
        for j in range(blk * block, min(m, (blk + 1) * block)):
            i = n_context + j
            u = src[i]
            v = dst[i]
            if u == v:
                continue
            while True:
                longest, token, done = _temporal_one(
                    i, u, v, ts[i], ts[i] - window, out_adj, in_adj, mark, late, on_path, succ,
                    heap[0], heap[1], heap[2], heap[3], levels[0], levels[1], levels[2], levels[3],
                    levels[4], counts, token)
                if done:
                    break
                depth = min(2 * depth, n_nodes + 1)
                levels = np.empty((5, depth), dtype=np.int64)
            _to_hist(counts, longest, table, hist, j)
