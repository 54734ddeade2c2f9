"""Step ``pattern_features``: causal graph-pattern features of each transaction.

For each edge i = u -> v (account u pays account v at time t) the features describe the graph
of the transactions *at or before* i in (timestamp, row) order, within a look-back window:

* ``fan``: distinct counterparties of u and of v, out and in, in the window (t - w, t].
* ``degree``: edges of u and of v, out and in, in (t - w, t].
* ``vertex_stats``: count, sum, mean, min, max and population std of the amounts, and of the
  inter-arrival gaps, of the same four edge sets.
* ``scatter_gather``: histogram, by number of intermediates, of the scatter-gather patterns
  s -> {m1, m2, ...} -> d that edge i belongs to, and the number of gather-scatter 2-paths
  x -> h -> y through edge i, in [t - w_sg, t].
* ``temporal_cycle``: histogram, by length, of the cycles closing on edge i whose edges have
  strictly increasing timestamps, all in [t - w_tc, t).
* ``simple_cycle``: histogram, by length (<= ``max_cycle_length``), of the simple cycles closing
  on edge i, all other edges before i and in [t - w_sc, t].

Self-transfers (u == v) are no edges of the pattern graph: they are never counted, and their own
rows get the endpoint features (fan, degree, statistics) with zero patterns. Exact definitions,
and where they differ from Snap ML's GraphFeaturePreprocessor: docs/PATTERNS.md.

Causality makes chunking exact: run a chunk with every earlier edge of the last
:func:`lookback_seconds` seconds in front of it as context, and its features are bit-identical
to one pass over everything; appending later transactions never changes earlier features.
The kernels (``_patterns_*.py``) are compiled with numba (no GIL) and run on ``threads`` threads.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

from amlgraph.errors import ConfigError, InputError
from amlgraph.steps._patterns_cycles import simple_kernel, temporal_kernel
from amlgraph.steps._patterns_graph import (bin_table, build_adjacency, compact_ids, max_window_edges,
                                            run_workers, worker_blocks)
from amlgraph.steps._patterns_local import SETS, STAT_ROWS, STATS, local_kernel
from amlgraph.steps._patterns_sg import sg_kernel

#: The feature families, in output order.
FAMILIES = ("fan", "degree", "scatter_gather", "temporal_cycle", "simple_cycle", "vertex_stats")
#: Edges per unit of work; workers take blocks cyclically, which keeps the threads balanced.
BLOCK = 256


@dataclass(frozen=True)
class PatternParams:
    """What :func:`pattern_features` computes. Windows are in seconds.

    Attributes:
        window: fan, degree and vertex statistics look at the half-open window (t - window, t].
        scatter_gather_window: scatter-gather and gather-scatter look at [t - w, t].
        temporal_cycle_window: temporal cycles use edges in [t - w, t).
        simple_cycle_window: simple cycles use edges in [t - w, t] before the closing edge.
        max_cycle_length: longest simple cycle counted, the closing edge included (>= 2).
        bins: histogram bins of pattern sizes (scatter-gather intermediates, cycle lengths):
            bin k counts sizes ``bins[k] <= s < bins[k + 1]``, the last bin ``s >= bins[-1]``,
            sizes below ``bins[0]`` are not counted. Strictly increasing, >= 1.
        families: the families to compute, a subset of :data:`FAMILIES`.
    """

    window: int = 86_400
    scatter_gather_window: int = 21_600
    temporal_cycle_window: int = 86_400
    simple_cycle_window: int = 86_400
    max_cycle_length: int = 10
    bins: tuple[int, ...] = (2, 3, 4, 5, 6, 7, 8, 9, 10)
    families: tuple[str, ...] = FAMILIES

    def __post_init__(self) -> None:
        for name in ("window", "scatter_gather_window", "temporal_cycle_window", "simple_cycle_window"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"PatternParams.{name} must be a positive number of seconds "
                                  f"(got {value!r})")
        if not isinstance(self.max_cycle_length, (int, np.integer)) or self.max_cycle_length < 2:
            raise ConfigError(f"PatternParams.max_cycle_length must be an integer >= 2 "
                              f"(got {self.max_cycle_length!r})")
        bins = tuple(self.bins)
        if (not bins or any(not isinstance(b, (int, np.integer)) or b < 1 for b in bins)
                or any(b >= c for b, c in zip(bins, bins[1:]))):
            raise ConfigError(f"PatternParams.bins must be strictly increasing integers >= 1 "
                              f"(got {self.bins!r})")
        unknown = [f for f in self.families if f not in FAMILIES]
        if unknown or len(set(self.families)) != len(self.families):
            raise ConfigError(f"PatternParams.families must be distinct names among {FAMILIES} "
                              f"(got {self.families!r})")


def _bin_labels(bins: tuple[int, ...]) -> list[str]:
    labels = []
    for k, lo in enumerate(bins):
        if k == len(bins) - 1:
            labels.append(f"{lo}plus")
        elif bins[k + 1] - lo == 1:
            labels.append(f"{lo}")
        else:
            labels.append(f"{lo}_{bins[k + 1] - 1}")
    return labels


def pattern_feature_names(params: PatternParams) -> list[str]:
    """The ``pattern_*`` columns of :func:`pattern_features` for ``params``, in output order."""
    names: list[str] = []
    labels = _bin_labels(tuple(params.bins))
    for family in FAMILIES:
        if family not in params.families:
            continue
        if family in ("fan", "degree"):
            names += [f"pattern_{family}_{d}_{end}" for end, d in SETS]
        elif family == "vertex_stats":
            names += [f"pattern_{end}_{d}_{what}_{stat}" for end, d in SETS
                      for what in ("amount", "gap") for stat in STATS]
        elif family == "scatter_gather":
            names += [f"pattern_scatter_gather_{b}" for b in labels] + ["pattern_gather_scatter"]
        else:
            names += [f"pattern_{family}_{b}" for b in labels]
    return names


def lookback_seconds(params: PatternParams) -> int:
    """Seconds of earlier transactions a chunk needs as context (0 when no family is asked).

    Every edge with ``timestamp >= first_timestamp - lookback_seconds(params)`` that precedes
    the chunk's first edge in (timestamp, row) order must be passed as context.
    """
    windows = {"fan": params.window, "degree": params.window, "vertex_stats": params.window,
               "scatter_gather": params.scatter_gather_window,
               "temporal_cycle": params.temporal_cycle_window,
               "simple_cycle": params.simple_cycle_window}
    return max((int(windows[f]) for f in params.families), default=0)


def _check(src, dst, timestamp, amount, n_context):
    arrays = [np.asarray(a) for a in (src, dst, timestamp, amount)]
    n = len(arrays[0])
    for name, a in zip(("src", "dst", "timestamp", "amount"), arrays):
        if a.ndim != 1 or len(a) != n:
            raise InputError(f"{name} must be one-dimensional with {n} values (got shape {a.shape})")
    for name, a in zip(("src", "dst", "timestamp"), arrays[:3]):
        if not np.issubdtype(a.dtype, np.integer):
            raise InputError(f"{name} must hold integers (got dtype {a.dtype})",
                             hint="timestamps are epoch seconds")
    if not isinstance(n_context, (int, np.integer)) or not 0 <= n_context <= n:
        raise ConfigError(f"n_context must be an integer in [0, {n}] (got {n_context!r})")
    ts = np.ascontiguousarray(arrays[2], dtype=np.int64)
    if n > 1 and (np.diff(ts) < 0).any():
        bad = int(np.argmax(np.diff(ts) < 0)) + 1
        raise InputError("edges must be sorted by (timestamp, row)", column="timestamp",
                         value=str(ts[bad]), hint=f"edge {bad} is earlier than edge {bad - 1}")
    amount = np.ascontiguousarray(arrays[3], dtype=np.float64)
    if not np.isfinite(amount).all():
        raise InputError("amounts must be finite", column="amount",
                         value=str(amount[~np.isfinite(amount)][0]))
    return np.ascontiguousarray(arrays[0]), np.ascontiguousarray(arrays[1]), ts, amount


def pattern_features(src: np.ndarray, dst: np.ndarray, timestamp: np.ndarray, amount: np.ndarray, *,
                     n_context: int, params: PatternParams = PatternParams(),
                     threads: int | None = None) -> dict[str, np.ndarray]:
    """Compute the pattern features of one time-ordered chunk.

    Args:
        src, dst: shape (n_edges,), integer account ids (any values; only equality matters).
        timestamp: shape (n_edges,), integer epoch seconds, non-decreasing: edges are sorted
            by (timestamp, row).
        amount: shape (n_edges,), finite amounts (for ``vertex_stats``).
        n_context: the first ``n_context`` edges are look-back context (every earlier edge
            within :func:`lookback_seconds` of the chunk's first edge); their own features are
            not returned.
        params: what to compute.
        threads: worker threads (default: the CPU count). Results do not depend on it.

    Returns:
        ``{name: array of shape (n_edges - n_context,)}`` for each name of
        :func:`pattern_feature_names`, in that order; counts and histograms int64, statistics
        float64 (statistics of an empty set are 0).

    Raises:
        InputError: arrays of different lengths, non-integer ids or timestamps, unsorted
            timestamps, non-finite amounts.
        ConfigError: ``n_context`` out of range, ``threads`` < 1.
    """
    src, dst, ts, amount = _check(src, dst, timestamp, amount, n_context)
    n_context = int(n_context)
    m = len(ts) - n_context
    names = pattern_feature_names(params)
    if m == 0 or not names:
        return {name: np.zeros(m, dtype=np.float64 if _is_float(name) else np.int64) for name in names}
    if threads is None:
        threads = os.cpu_count() or 1
    if not isinstance(threads, (int, np.integer)) or isinstance(threads, bool) or threads < 1:
        raise ConfigError(f"threads must be a positive integer (got {threads!r})")
    src, dst, n_nodes = compact_ids(src, dst)
    families = set(params.families)
    with_amount = "vertex_stats" in families
    out_adj = tuple(build_adjacency(src, dst, ts, amount, n_nodes, with_amount))
    in_adj = tuple(build_adjacency(dst, src, ts, amount, n_nodes, with_amount))
    workers, n_blocks = worker_blocks(m, int(threads), BLOCK)
    grid = (n_blocks, BLOCK)
    table = bin_table(tuple(params.bins), int(params.max_cycle_length))
    n_bins = len(params.bins)
    out: dict[str, np.ndarray] = {}
    if families & {"fan", "degree", "vertex_stats"}:
        fan = np.zeros((4, m if "fan" in families else 0), dtype=np.int64)
        degree = np.zeros((4, m if "degree" in families else 0), dtype=np.int64)
        stats = np.zeros((4 * STAT_ROWS, m if "vertex_stats" in families else 0))
        run_workers(local_kernel, workers, src, dst, ts, n_context, int(params.window), out_adj,
                    in_adj, n_nodes, *grid, fan, degree, stats)
        out["fan"], out["degree"] = list(fan), list(degree)
        out["vertex_stats"] = [row.astype(np.int64) if k % len(STATS) == 0 else row
                               for k, row in enumerate(stats)]
    if "scatter_gather" in families:
        hist, gs = np.zeros((n_bins, m), dtype=np.int64), np.zeros(m, dtype=np.int64)
        run_workers(sg_kernel, workers, src, dst, ts, n_context, int(params.scatter_gather_window),
                    out_adj, in_adj, n_nodes, table, *grid, hist, gs)
        out["scatter_gather"] = [*hist, gs]
    if "temporal_cycle" in families:
        w = int(params.temporal_cycle_window)
        hist = np.zeros((n_bins, m), dtype=np.int64)
        run_workers(temporal_kernel, workers, src, dst, ts, n_context, w, out_adj, in_adj, n_nodes,
                    max_window_edges(ts, w), table, *grid, hist)
        out["temporal_cycle"] = list(hist)
    if "simple_cycle" in families:
        w = int(params.simple_cycle_window)
        hist = np.zeros((n_bins, m), dtype=np.int64)
        run_workers(simple_kernel, workers, src, dst, ts, n_context, w, int(params.max_cycle_length),
                    out_adj, in_adj, n_nodes, max_window_edges(ts, w), table, *grid, hist)
        out["simple_cycle"] = list(hist)
    columns = [col for family in FAMILIES if family in families for col in out[family]]
    return dict(zip(names, columns, strict=True))


def _is_float(name: str) -> bool:
    return ("_amount_" in name or "_gap_" in name) and not name.endswith("_count")
