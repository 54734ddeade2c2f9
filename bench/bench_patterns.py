"""Pattern features: amlgraph's pattern_features against Snap ML's GraphFeaturePreprocessor (GFP).

    python bench/bench_patterns.py [--rows 500000] [--preset hi-small] [--runs 3] [--threads 2]
    python bench/bench_patterns.py --rows 0          # the whole preset
    python bench/bench_patterns.py --tools gfp,amlgraph-step --runs 1   # GFP against the step

For each family, and for all of them together ("total"), each tool runs in a fresh process on
the same transactions, sorted by (timestamp, row), with the same windows, bins and threads:

* gfp: a GraphFeaturePreprocessor fed the transactions as a stream, ``transform`` on batches of
  ``--batch`` rows in order (each batch is inserted into its dynamic graph, then featurised);
* amlgraph: one ``pattern_features`` call over all rows;
* amlgraph-stream: ``pattern_features`` on the same batches, each with its look-back window of
  earlier rows as context (same output as one call, by the chunking contract);
* amlgraph-step: the checkpointed ``pattern_features`` step of the pipeline (``--patterns``), as a
  run computes it: its chunk plan (one chunk per coded chunk of ``--chunk-rows`` rows, each
  reading its look-back context from the coded checkpoints), ``--threads`` chunk tasks in flight
  sharing the cores, every chunk and the step checkpoint written. ``data_loaded`` is computed
  once beforehand, outside the timing; the time is the step's.

Times cover the feature computation only (not reading the data, not numba's first compile,
which the worker reports apart): wall seconds, and CPU seconds of all threads (steadier when the
machine is shared). Peak RSS is the worker's whole process (VmHWM). Figures are medians over ``--runs``
runs. Node identity is (bank, account); amounts are Amount Paid.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from _util import REPO, ensure_preset, median  # noqa: E402

FAMILIES = ("fan", "degree", "scatter_gather", "temporal_cycle", "simple_cycle", "vertex_stats")
GFP_NAMES = {"fan": "fan", "degree": "degree", "scatter_gather": "scatter-gather",
             "temporal_cycle": "temp-cycle", "simple_cycle": "lc-cycle"}
TOOLS = ("gfp", "amlgraph", "amlgraph-stream", "amlgraph-step")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="hi-small")
    ap.add_argument("--rows", type=int, default=500_000, help="0: the whole preset")
    ap.add_argument("--data", type=Path, default=None, help="a directory holding *_Trans.csv")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--batch", type=int, default=10_000)
    ap.add_argument("--chunk-rows", type=int, default=125_000,
                    help="amlgraph-step: rows per coded chunk, so per pattern chunk")
    ap.add_argument("--families", default=",".join(FAMILIES + ("total",)))
    ap.add_argument("--tools", default=",".join(TOOLS))
    ap.add_argument("--worker", nargs=3, metavar=("TOOL", "FAMILY", "ARRAYS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        tool, family, arrays = args.worker
        if tool == "amlgraph-step":
            print(json.dumps(_step_work(family, Path(arrays).parent, args.threads, args.chunk_rows)))
        else:
            print(json.dumps(_work(tool, family, Path(arrays), args.threads, args.batch)))
        return
    data = _data(args)
    arrays = _arrays(data)
    n_rows = len(np.load(arrays / "ts.npy", mmap_mode="r"))
    families = args.families.split(",")
    tools = args.tools.split(",")
    results: dict = {f: {t: [] for t in tools} for f in families}
    if "amlgraph-step" in tools:
        _prepare_step(data, args.threads, args.chunk_rows)
    for run in range(args.runs):
        for family in families:
            for tool in tools:
                cmd = [sys.executable, __file__, "--threads", str(args.threads), "--batch",
                       str(args.batch), "--chunk-rows", str(args.chunk_rows), "--worker", tool, family,
                       str(arrays)]
                out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
                res = json.loads(out.strip().splitlines()[-1])
                results[family][tool].append(res)
                print(f"run {run + 1} {family:15} {tool:16} {res['seconds']:8.2f} s "
                      f"(cpu {res['cpu_seconds']:7.2f} s) "
                      f"{n_rows / res['seconds']:>12,.0f} rows/s  peak RSS {res['peak_rss_mb']:,.0f} MB"
                      + (f"  (first compile {res['compile_s']:.1f} s)" if "compile_s" in res else ""),
                      flush=True)
    _report(results, n_rows, args)


def _data(args) -> Path:
    if args.data is not None or not args.rows:
        return ensure_preset(args.preset, args.data)
    out = REPO / "bench" / "out" / "data" / f"{args.preset}-{args.rows}"
    if not any(out.glob("*_Trans.csv*")):
        from amlgraph.synth import generate

        print(f"generating {args.preset} ({args.rows:,} rows) in {out} ...", flush=True)
        generate(args.preset, out, seed=0, rows=args.rows)
    return out


def _arrays(data: Path) -> Path:
    """src, dst, ts, amount as .npy files beside the data, sorted by (timestamp, row)."""
    target = data / "pattern_arrays"
    if (target / "amount.npy").exists():
        return target
    import polars as pl

    trans = next(p for p in data.glob("*_Trans.csv*") if not p.name.endswith(".quarantine.csv"))
    # Columns by position: the header repeats "Account".
    names = ["ts", "from_bank", "from_account", "to_bank", "to_account", "received",
             "received_currency", "paid", "paid_currency", "format", "label"]
    df = pl.read_csv(trans, has_header=True, new_columns=names,
                     schema_overrides={"from_bank": pl.Int64, "to_bank": pl.Int64,
                                       "from_account": pl.Utf8, "to_account": pl.Utf8,
                                       "paid": pl.Float64})
    ts = df["ts"].str.strptime(pl.Datetime("ms"), "%Y/%m/%d %H:%M").dt.epoch("s").to_numpy()
    key = pl.concat([df["from_bank"].cast(pl.Utf8) + "\x1f" + df["from_account"],
                     df["to_bank"].cast(pl.Utf8) + "\x1f" + df["to_account"]])
    codes = key.cast(pl.Categorical).to_physical().to_numpy().astype(np.int64)
    order = np.lexsort((np.arange(len(df)), ts))  # (timestamp, row)
    target.mkdir(exist_ok=True)
    for name, col in (("src", codes[: len(df)]), ("dst", codes[len(df):]), ("ts", ts),
                      ("amount", df["paid"].to_numpy())):
        np.save(target / f"{name}.npy", np.ascontiguousarray(col[order]))
    return target


def _work(tool: str, family: str, arrays: Path, threads: int, batch: int) -> dict:
    src, dst, ts, amount = (np.load(arrays / f"{k}.npy") for k in ("src", "dst", "ts", "amount"))
    families = FAMILIES if family == "total" else (family,)
    result: dict = {}
    if tool == "gfp":
        gfp = _gfp(families, threads)
        x = np.column_stack([np.arange(len(ts)), src, dst, ts, amount]).astype(np.float64)
        start, cpu = time.perf_counter(), time.process_time()
        outs = [gfp.transform(x[a: a + batch]) for a in range(0, len(x), batch)]
    else:
        from amlgraph.steps.pattern_features import PatternParams, lookback_seconds, pattern_features

        params = PatternParams(families=families)
        start = time.perf_counter()
        pattern_features(src[:1000], dst[:1000], ts[:1000], amount[:1000], n_context=0,
                         params=params, threads=threads)
        result["compile_s"] = round(time.perf_counter() - start, 2)
        start, cpu = time.perf_counter(), time.process_time()
        if tool == "amlgraph":
            outs = [pattern_features(src, dst, ts, amount, n_context=0, params=params, threads=threads)]
        else:
            back = lookback_seconds(params)
            outs = []
            for a in range(0, len(ts), batch):
                c = int(np.searchsorted(ts, ts[a] - back, side="left"))
                b = a + batch
                outs.append(pattern_features(src[c:b], dst[c:b], ts[c:b], amount[c:b], n_context=a - c,
                                             params=params, threads=threads))
    result["seconds"] = time.perf_counter() - start
    result["cpu_seconds"] = time.process_time() - cpu  # all threads; steadier on a busy machine
    result["peak_rss_mb"] = _peak_rss_mb()
    result["outputs"] = len(outs)
    return result


def _step_run(data: Path, threads: int, chunk_rows: int, families: tuple[str, ...] = FAMILIES):
    """The runner's ``Run`` of a ``--patterns`` pipeline on ``data`` (checkpoints beside it)."""
    from amlgraph.config import PipelineConfig
    from amlgraph.runner._log import RunLog
    from amlgraph.runner._run import Run
    from amlgraph.store import CheckpointStore

    cfg = PipelineConfig(data_path=data, checkpoint_dir=data / "pattern_step_ckpt", threads=threads,
                         chunk_rows=chunk_rows, quiet=True,
                         patterns={"enabled": True, "families": list(families)})
    store = CheckpointStore(cfg.checkpoint_dir)
    return Run(cfg, store, RunLog(quiet=True)), store


def _prepare_step(data: Path, threads: int, chunk_rows: int) -> None:
    """``data_loaded`` of ``data`` at ``chunk_rows``, computed once (the step reads it)."""
    run, store = _step_run(data, threads, chunk_rows)
    with store.lock():
        if not run.check("data_loaded")[0]:
            print(f"parsing {data} into coded chunks of {chunk_rows:,} rows ...", flush=True)
            run._compute("data_loaded")
    run.close()


def _step_work(family: str, data: Path, threads: int, chunk_rows: int) -> dict:
    """Time the checkpointed pattern_features step (every chunk recomputed and written)."""
    from amlgraph.steps.pattern_features import PatternParams, pattern_features

    families = FAMILIES if family == "total" else (family,)
    run, store = _step_run(data, threads, chunk_rows, families)
    result: dict = {}
    start = time.perf_counter()  # numba's first compile (or cache load), on the first 1000 rows
    first = [np.load(data / "pattern_arrays" / f"{k}.npy", mmap_mode="r")[:1000]
             for k in ("src", "dst", "ts", "amount")]
    pattern_features(*first, n_context=0, params=PatternParams(families=families), threads=1)
    result["compile_s"] = round(time.perf_counter() - start, 2)
    with store.lock():
        run.loaded["data_loaded"] = store.load("data_loaded", key=run.keys["data_loaded"])
        run.forced = {"pattern_features"}  # every chunk computed, none reused
        start, cpu = time.perf_counter(), time.process_time()
        run._compute("pattern_features")
        result["seconds"] = time.perf_counter() - start
        result["cpu_seconds"] = time.process_time() - cpu
    run.close()
    result["peak_rss_mb"] = _peak_rss_mb()
    result["outputs"] = len(store.load("pattern_features").value("parts"))
    return result

def _peak_rss_mb() -> float:
    """This process's peak RSS (VmHWM). Not ``getrusage``'s ``ru_maxrss``: Linux keeps that across
    ``execve``, so a worker would report its parent's size at the fork when that is larger."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _gfp(families: tuple[str, ...], threads: int):
    """A GFP with amlgraph's default windows and bins for ``families``."""
    import snapml

    from amlgraph.steps.pattern_features import PatternParams

    p = PatternParams()
    windows = {"fan": p.window, "degree": p.window, "scatter_gather": p.scatter_gather_window,
               "temporal_cycle": p.temporal_cycle_window, "simple_cycle": p.simple_cycle_window,
               "vertex_stats": p.window}
    params = {"num_threads": threads, "vertex_stats": "vertex_stats" in families,
              "time_window": max(windows[f] for f in families)}
    for family, name in GFP_NAMES.items():
        params[name] = family in families
        params[f"{name}_tw"] = windows[family]
        params[f"{name}_bins"] = list(p.bins)
    params["lc-cycle_len"] = p.max_cycle_length
    # Amount (column 4); fan, degree, mean, sum, min, max, variance: the statistics both compute.
    params.update(vertex_stats_tw=p.window, vertex_stats_cols=[4],
                  vertex_stats_feats=[0, 1, 3, 4, 5, 6, 8])
    gfp = snapml.GraphFeaturePreprocessor()
    gfp.set_params(params)
    return gfp

def _report(results: dict, n_rows: int, args) -> None:
    print(f"\n{args.preset}, {n_rows:,} rows, {args.threads} threads, batches of {args.batch:,}, "
          f"step chunks of {args.chunk_rows:,} rows, medians of {args.runs} runs (rows/s; peak RSS MB)")
    tools = [t for t in TOOLS if t in next(iter(results.values()))]
    head = f"{'family':15}" + "".join(f"{t:>18}{'RSS':>7}" for t in tools)
    if "gfp" in tools:
        head += "".join(f"{t + '/gfp':>22}" for t in tools if t != "gfp")
    print(head)
    summary = {}
    for family, by_tool in results.items():
        rate = {t: n_rows / median([r["seconds"] for r in by_tool[t]]) for t in tools}
        rss = {t: median([r["peak_rss_mb"] for r in by_tool[t]]) for t in tools}
        line = f"{family:15}" + "".join(f"{rate[t]:>18,.0f}{rss[t]:>7,.0f}" for t in tools)
        if "gfp" in tools:
            line += "".join(f"{rate[t] / rate['gfp']:>21.1f}x" for t in tools if t != "gfp")
        print(line)
        cpu = {t: median([r["cpu_seconds"] for r in by_tool[t]]) for t in tools}
        summary[family] = {t: {"rows_per_s": round(rate[t]), "seconds": round(n_rows / rate[t], 2),
                               "cpu_seconds": round(cpu[t], 2), "peak_rss_mb": round(rss[t])}
                           for t in tools}
    print(json.dumps({"preset": args.preset, "rows": n_rows, "threads": args.threads,
                      "batch": args.batch, "chunk_rows": args.chunk_rows, "runs": args.runs,
                      "results": summary}, indent=1))

if __name__ == "__main__":
    main()
