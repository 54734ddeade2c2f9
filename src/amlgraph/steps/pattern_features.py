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

import numpy as np
import polars as pl

from amlgraph.errors import ConfigError, InputError
from amlgraph.steps._contract import Chunk, Inputs, Output, Step, StepContext, chunk_name, parts_value
from amlgraph.steps._layout import coded_chunks
from amlgraph.steps._patterns_params import (FAMILIES, STAT_ROWS, STATS, PatternParams, is_float_column,
                                             lookback_seconds, pattern_feature_names)

__all__ = ["FAMILIES", "PatternParams", "lookback_seconds", "pattern_feature_names", "pattern_features"]

#: Edges per unit of work; workers take blocks cyclically, which keeps the threads balanced.
BLOCK = 256


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
    # The compiled kernels load here, not on import: a run without patterns never needs them.
    from amlgraph.steps._patterns_cycles import simple_kernel, temporal_kernel
    from amlgraph.steps._patterns_graph import (bin_table, build_adjacency, compact_ids, max_window_edges,
                                                run_workers, worker_blocks)
    from amlgraph.steps._patterns_local import local_kernel
    from amlgraph.steps._patterns_sg import sg_kernel

    src, dst, ts, amount = _check(src, dst, timestamp, amount, n_context)
    n_context = int(n_context)
    m = len(ts) - n_context
    names = pattern_feature_names(params)
    if m == 0 or not names:
        return {name: np.zeros(m, dtype=np.float64 if is_float_column(name) else np.int64) for name in names}
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




# --- the step -----------------------------------------------------------------------------------
#: Columns a pattern chunk carries besides the features: the edge's id and what consumers filter
#: on, so that a filter reads the same rows of an edge_features chunk and of its pattern chunk.
KEY_COLUMNS = ("row", "label", "split")


def params_from(value: dict) -> PatternParams:
    """``PatternParams`` from the step's JSON parameter (lists back to tuples)."""
    return PatternParams(**{k: tuple(v) if isinstance(v, list) else v for k, v in value.items()})


def _empty(names: list[str]) -> pl.DataFrame:
    schema = {"row": pl.Int64, "label": pl.Int8, "split": pl.Int8}
    schema.update({n: pl.Float64 if is_float_column(n) else pl.Int64 for n in names})
    return pl.DataFrame(schema=schema)


def pattern_chunk(inputs: Inputs, *, data_chunk: str, sources: list[str], params: dict,
                  threads: int = 1) -> Output:
    """The pattern features of the rows of coded chunk ``data_chunk``, in its row order.

    The chunk's rows span the times [t_lo, t_hi]; every edge of ``sources`` (the coded chunks
    whose times meet [t_lo - lookback, t_hi]) with a timestamp in that range is read, sorted by
    (timestamp, row), and the edges ranked before the chunk's first one are the kernels'
    context. An edge of [t_lo, t_hi] thus sees every earlier edge of its windows, so the
    values equal one pass over all rows; rows of other chunks inside the range (a file not in
    time order) are computed and dropped.
    """
    p = params_from(params)
    names = pattern_feature_names(p)
    own = (inputs.scan([data_chunk], "transactions")
           .select("row", pl.col("is_laundering").cast(pl.Int8).alias("label"), pl.col("split").cast(pl.Int8),
                   "timestamp").collect())
    if own.height == 0:
        return Output(tables={"features": _empty(names)}, metadata={"rows": 0, "context_rows": 0})
    t_lo, t_hi = int(own["timestamp"].min()), int(own["timestamp"].max())
    edges = (inputs.scan(sources, "transactions")
             .filter(pl.col("timestamp").is_between(t_lo - lookback_seconds(p), t_hi))
             .select("row", "src", "dst", "timestamp", "amount_paid")
             .collect().sort("timestamp", "row"))
    first = own.filter(pl.col("timestamp") == t_lo)["row"].min()
    ts, rows = edges["timestamp"].to_numpy(), edges["row"].to_numpy()
    n_context = int(((ts < t_lo) | ((ts == t_lo) & (rows < first))).sum())
    feats = pattern_features(edges["src"].to_numpy(), edges["dst"].to_numpy(), ts,
                             edges["amount_paid"].to_numpy(), n_context=n_context, params=p, threads=threads)
    # Back to the chunk's row order: its rows among the computed ones (row ids are unique).
    computed = rows[n_context:]
    order = np.argsort(computed, kind="stable")
    at = order[np.searchsorted(computed, own["row"].to_numpy(), sorter=order)]
    frame = own.drop("timestamp").with_columns(pl.Series(n, v[at]) for n, v in feats.items())
    return Output(tables={"features": frame},
                  metadata={"rows": frame.height, "context_rows": n_context,
                            "computed_rows": int(len(computed)), "num_features": len(names)})


def compute(ctx: StepContext) -> Output:
    """One chunk per coded data chunk (so pattern chunk i lines up with edge_features chunk i),
    each with the chunks whose times reach into its look-back window as sources."""
    data = ctx.step("data_loaded")
    p = params_from(ctx.params["patterns"])
    coded = coded_chunks(data)
    lookback = lookback_seconds(p)
    spans = []
    for name in coded:  # the Parquet statistics answer this: no column is decoded
        span = ctx.inputs.scan([name], "transactions").select(
            pl.col("timestamp").min().alias("lo"), pl.col("timestamp").max().alias("hi")).collect()
        spans.append((span["lo"][0], span["hi"][0]))
    threads = ctx.sizing("kernel_threads", num_chunks=len(coded))
    chunks = []
    for i, (name, (lo, hi)) in enumerate(zip(coded, spans)):
        sources = [] if lo is None else [
            other for other, (a, b) in zip(coded, spans)
            if a is not None and a <= hi and b >= lo - lookback]
        chunks.append(Chunk(chunk_name("pattern_features", i), i, {"data": name, "sources": sources},
                            {"data_chunk": name, "sources": sources, "params": ctx.params["patterns"],
                             "threads": threads}))
    parts = ctx.run_chunks("pattern_features", f"{__name__}:pattern_chunk", chunks)
    return Output(values={"columns": pattern_feature_names(p), "lookback_seconds": lookback,
                          "parts": parts_value(parts)},
                  metadata={"num_chunks": len(parts), "num_features": len(pattern_feature_names(p))})


STEP = Step("pattern_features", "Computing Pattern Features", reads=("data_loaded",),
            params=("patterns",), code=(), compute=compute, optional=True)
