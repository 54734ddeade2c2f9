"""Benchmark the transaction reader: rows, seconds, rows/s and peak RSS of the reading process.

Usage: python bench/bench_read.py [--preset hi-small] [--data DIR] [--batch-rows N] [--repeat K]
Also times Polars' own pl.read_csv of the same (uncompressed) file, all String, as the floor.
Without --data the preset is generated with amlgraph.synth.generate into a temporary directory
(deleted afterwards). The read runs in a fresh child process, so its peak RSS is the reader's own.
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def _child(trans: Path, batch_rows: int) -> None:
    from amlgraph.ingest import read_transactions

    start = time.perf_counter()
    reader = read_transactions(trans, batch_rows=batch_rows)
    rows = laundering = 0
    for batch in reader:
        rows += batch.height
        laundering += int(batch["is_laundering"].sum())
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    peak_mb = peak / 2**20 if sys.platform == "darwin" else peak / 1024
    print(json.dumps({"rows": rows, "laundering": laundering, "bad_rows": reader.bad_rows,
                      "seconds": seconds, "peak_rss_mb": peak_mb,
                      "fast_blocks": getattr(reader, "fast_blocks", None),
                      "slow_blocks": getattr(reader, "slow_blocks", None)}))


def _reference(trans: Path) -> None:
    import polars as pl

    start = time.perf_counter()
    frame = pl.read_csv(trans, infer_schema=False)
    print(json.dumps({"rows": frame.height, "seconds": time.perf_counter() - start}))


def _measure(trans: Path, batch_rows: int, reference: bool = False) -> dict:
    mode = "--reference" if reference else "--child"
    out = subprocess.run([sys.executable, __file__, mode, str(trans), "--batch-rows", str(batch_rows)],
                         check=True, capture_output=True, text=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--preset", default="hi-small")
    parser.add_argument("--data", type=Path, default=None, help="an existing data directory or Trans file")
    parser.add_argument("--batch-rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--child", type=Path, default=None, help=argparse.SUPPRESS)
    parser.add_argument("--reference", type=Path, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child is not None:
        _child(args.child, args.batch_rows)
        return 0
    if args.reference is not None:
        _reference(args.reference)
        return 0
    from amlgraph.ingest import find_inputs

    with tempfile.TemporaryDirectory() as tmp:
        data = args.data
        if data is None:
            from amlgraph.synth import generate

            print(f"generating {args.preset} ...", flush=True)
            generate(args.preset, tmp, seed=0)
            data = Path(tmp)
        trans = find_inputs(data).trans
        size_mb = trans.stat().st_size / 2**20
        runs = [_measure(trans, args.batch_rows) for _ in range(args.repeat)]
        # Polars' own reader of the same file, all columns String, nothing checked: the floor.
        plain = trans.suffix == ".csv"
        refs = [_measure(trans, args.batch_rows, reference=True)["seconds"]
                for _ in range(args.repeat)] if plain else []
    seconds = statistics.median(r["seconds"] for r in runs)
    first = runs[0]
    print(f"file: {trans.name} ({size_mb:,.0f} MiB), batch_rows={args.batch_rows:,}")
    print(f"rows: {first['rows']:,} (laundering {first['laundering']:,}, bad {first['bad_rows']})")
    print(f"blocks: {first.get('fast_blocks')} split by Polars' CSV parser, {first.get('slow_blocks')} line by line")
    print(f"seconds: {seconds:.2f} (median of {len(runs)})  rows/s: {first['rows'] / seconds:,.0f}  "
          f"MiB/s: {size_mb / seconds:,.0f}")
    print(f"peak RSS of the reading process: {max(r['peak_rss_mb'] for r in runs):,.0f} MiB")
    if refs:
        print(f"pl.read_csv of the same file (all String, no checks): {statistics.median(refs):.2f} s "
              f"(median of {len(refs)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
