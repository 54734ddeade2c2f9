"""Kernel: scatter-gather histograms and gather-scatter path counts in the closed window [t - w, t].

Window graph of edge i = u -> v: the edges of rank <= i (i itself included) with
``t - w <= ts <= t``, self-loops left out, parallel edges merged. With S(x) / P(x) the distinct
successors / predecessors of x in it:

* a scatter-gather pattern (s, d), s != d, has intermediates M(s, d) = S(s) ∩ P(d) and exists
  when |M| >= 2. Edge i belongs to (s, v) for every s in P(u), s != v (i is a gather edge), and
  to (u, d) for every d in S(v), d != u (i is a scatter edge). Each pattern adds one to the
  histogram bin of its size |M|.
* gather-scatter: a hub h with |P(h)| >= 2 and |S(h)| >= 2. The count is the number of 2-paths
  x -> h -> y, x != y, through edge i at such hubs: |P(u) minus {v}| if u is a hub, plus
  |S(v) minus {u}| if v is a hub.

Cost per edge: sum over s in P(u) of |S(s)| plus sum over d in S(v) of |P(d)|, all in window.
"""
from __future__ import annotations

import numpy as np
from numba import njit

from amlgraph.steps._patterns_graph import window_slice


@njit(cache=True, nogil=True)
def _mark(nbr, a, b, stamp, token):
    """Mark the distinct values of ``nbr[a:b]`` with ``token``; return how many."""
    n = 0
    for p in range(a, b):
        y = nbr[p]
        if stamp[y] != token:
            stamp[y] = token
            n += 1
    return n


@njit(cache=True, nogil=True)
def _pair_sizes(nbr, a, b, skip, step_adj, start, i, marked, mark_token, seen_end, seen_mid, token,
                hist, j, table):
    """Add to ``hist`` the patterns through each distinct endpoint of ``nbr[a:b]`` but ``skip``.

    An endpoint e's pattern size is the number of distinct neighbours of e in ``step_adj``,
    in window, that carry ``mark_token`` in ``marked``.

    Returns:
        (distinct endpoints other than ``skip``, the last token used).
    """
    n = 0
    for p in range(a, b):
        e = nbr[p]
        if e == skip or seen_end[e] == token:
            continue
        seen_end[e] = token
        n += 1
        c, d = window_slice(step_adj[0], step_adj[1], step_adj[3], e, start, i)
        mid = token + n  # one fresh token per endpoint dedupes its parallel edges
        size = 0
        for q in range(c, d):
            y = step_adj[2][q]
            if marked[y] == mark_token and seen_mid[y] != mid:
                seen_mid[y] = mid
                size += 1
        if size >= 2:
            k = table[size] if size < len(table) else table[len(table) - 1]
            if k >= 0:
                hist[k, j] += 1
    return n, token + n


@njit(cache=True, nogil=True)
def sg_kernel(src, dst, ts, n_context, window, out_adj, in_adj, n_nodes, table, n_blocks, block,
              hist, gs, worker, workers):
    """Scatter-gather histograms and gather-scatter counts of this worker's blocks of edges.

    Args:
        src, dst, ts: shape (n_edges,), compact ids and non-decreasing timestamps.
        n_context: leading edges that are context only.
        window: seconds; the window graph holds edges with ``t - window <= ts`` and rank ``<= i``.
        out_adj, in_adj: (ptr, edge, nbr, ts, amount) tuples of the out- and in-lists.
        n_nodes: number of vertices; table: bin of each size (see ``bin_table``).
        n_blocks, block: blocks of edges; this worker takes ``worker, worker + workers, ...``.
        hist, gs: int64 outputs of shape (n_bins, m) and (m,), m = n_edges - n_context.
        worker, workers: this worker and how many there are.
    """
    m = len(src) - n_context
    marked = np.zeros(n_nodes, dtype=np.int64)
    seen_end = np.zeros(n_nodes, dtype=np.int64)
    seen_mid = np.zeros(n_nodes, dtype=np.int64)
    token = 0
    for blk in range(worker, n_blocks, workers):
        for j in range(blk * block, min(m, (blk + 1) * block)):
            i = n_context + j
            u = src[i]
            v = dst[i]
            if u == v:
                continue
            start = ts[i] - window
            pu_a, pu_b = window_slice(in_adj[0], in_adj[1], in_adj[3], u, start, i)
            su_a, su_b = window_slice(out_adj[0], out_adj[1], out_adj[3], u, start, i)
            pv_a, pv_b = window_slice(in_adj[0], in_adj[1], in_adj[3], v, start, i)
            sv_a, sv_b = window_slice(out_adj[0], out_adj[1], out_adj[3], v, start, i)
            # Edge i as a gather edge: patterns (s, v), s in P(u); M = S(s) ∩ P(v).
            token += 1
            n_pv = _mark(in_adj[2], pv_a, pv_b, marked, token)
            n_pu, token = _pair_sizes(in_adj[2], pu_a, pu_b, v, out_adj, start, i, marked, token,
                                      seen_end, seen_mid, token + 1, hist, j, table)
            # Edge i as a scatter edge: patterns (u, d), d in S(v); M = S(u) ∩ P(d).
            token += 1
            n_su = _mark(out_adj[2], su_a, su_b, marked, token)
            n_sv, token = _pair_sizes(out_adj[2], sv_a, sv_b, u, in_adj, start, i, marked, token,
                                      seen_end, seen_mid, token + 1, hist, j, table)
            # Gather-scatter: hubs need 2+ distinct predecessors and successors, endpoints included.
            all_pu = n_pu + _contains(in_adj[2], pu_a, pu_b, v)
            all_sv = n_sv + _contains(out_adj[2], sv_a, sv_b, u)
            total = 0
            if all_pu >= 2 and n_su >= 2:
                total += n_pu
            if n_pv >= 2 and all_sv >= 2:
                total += n_sv
            gs[j] = total


@njit(cache=True, nogil=True)
def _contains(nbr, a, b, x):
    """1 if ``x`` is in ``nbr[a:b]``, else 0."""
    for p in range(a, b):
        if nbr[p] == x:
            return 1
    return 0
