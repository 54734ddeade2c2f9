"""Benchmark the synthetic generator: rows, seconds, rows/s and peak RSS of this process.

Usage: python bench/bench_synth.py [--preset hi-small] [--rows N] [--seed 0] [--out DIR]
Without --out the files go to a temporary directory that is deleted afterwards.
"""
from __future__ import annotations

import argparse
import resource
import sys
import tempfile
from pathlib import Path

import psutil

from amlgraph.synth import generate


def peak_rss_mb() -> float:
    """Peak resident memory of this process in MiB (ru_maxrss is KiB on Linux, bytes on macOS)."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="hi-small")
    parser.add_argument("--rows", type=int, default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        out = args.out if args.out is not None else Path(tmp)   # --out keeps the files
        proc = psutil.Process()
        before = proc.memory_info().rss / 2**20
        cpu0 = sum(proc.cpu_times()[:2])
        result = generate(args.preset, out, seed=args.seed, rows=args.rows)
        cpu = sum(proc.cpu_times()[:2]) - cpu0
        size = sum(p.stat().st_size for p in (result.trans_path, result.accounts_path, result.patterns_path))
        print(result.summary())
        print(f"rows {result.rows:,}  seconds {result.seconds:.2f}  rows/s {result.rows / result.seconds:,.0f}  "
              f"cpu s {cpu:.2f}  rows/cpu-s {result.rows / cpu:,.0f}  bytes {size:,}  rss before {before:.0f} MiB  peak rss {peak_rss_mb():.0f} MiB")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
