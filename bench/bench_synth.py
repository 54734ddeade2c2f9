"""Benchmark the synthetic generator: rows, seconds, rows/s, CPU seconds and peak RSS.

Usage: python bench/bench_synth.py [--preset hi-small] [--rows N] [--seed 0] [--out DIR] [--runs 1]
Without --out the files go to a temporary directory that is deleted afterwards. With --runs N
each run is a fresh process (so peak RSS is per run) and the last line gives the medians.
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import psutil

from amlgraph.synth import generate


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MiB (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def one_run(args: argparse.Namespace) -> dict:
    """Generate once in this process; print the summary and return the figures."""
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out if args.out is not None else Path(tmp)   # --out keeps the files
        proc = psutil.Process()
        before = proc.memory_info().rss / 2**20
        cpu0 = sum(proc.cpu_times()[:2])
        result = generate(args.preset, out, seed=args.seed, rows=args.rows)
        cpu = sum(proc.cpu_times()[:2]) - cpu0
        size = sum(p.stat().st_size for p in (result.trans_path, result.accounts_path, result.patterns_path))
        print(result.summary())
        figures = {"rows": result.rows, "seconds": result.seconds, "rows_per_s": result.rows / result.seconds,
                   "cpu_s": cpu, "bytes": size, "rss_before_mib": before, "peak_rss_mib": peak_rss_mb()}
        print(f"rows {result.rows:,}  seconds {result.seconds:.2f}  rows/s {figures['rows_per_s']:,.0f}  "
              f"cpu s {cpu:.2f}  rows/cpu-s {result.rows / cpu:,.0f}  bytes {size:,}  "
              f"rss before {before:.0f} MiB  peak rss {figures['peak_rss_mib']:.0f} MiB")
        return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="hi-small")
    parser.add_argument("--rows", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument("--runs", type=int, default=1, help="fresh-process runs; prints medians")
    parser.add_argument("--json", action="store_true", help=argparse.SUPPRESS)  # one run, figures as JSON
    args = parser.parse_args(argv)
    if args.runs <= 1:
        figures = one_run(args)
        if args.json:
            print(json.dumps(figures))
        return 0
    child = [sys.executable, __file__, "--preset", args.preset, "--seed", str(args.seed), "--json"]
    child += ["--rows", str(args.rows)] if args.rows is not None else []
    child += ["--out", str(args.out)] if args.out is not None else []
    runs = []
    for _ in range(args.runs):
        done = subprocess.run(child, capture_output=True, text=True, check=True)
        print(done.stdout.strip().splitlines()[-2])
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))
    med = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
    print(f"median of {args.runs} runs: seconds {med['seconds']:.2f}  rows/s {med['rows_per_s']:,.0f}  "
          f"cpu s {med['cpu_s']:.2f}  peak rss {med['peak_rss_mib']:.0f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
