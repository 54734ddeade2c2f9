"""Checkpoint store throughput: save/load of a ~1 GB table, hashing overhead, mmap load time.

Usage: python bench/bench_store.py [--rows 10000000] [--dir /path/on/the/disk/to/measure]
Prints medians of 3 runs. Temporary files are removed at the end.
"""
from __future__ import annotations

import argparse
import hashlib
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import polars as pl
import xxhash

import amlgraph.store._files as store_files
from amlgraph.store import CheckpointStore


def median_time(fn, runs: int = 3) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def make_table(rows: int) -> pl.DataFrame:
    rng = np.random.default_rng(0)
    cols = {f"f{i}": rng.random(rows) for i in range(8)}
    cols.update({f"i{i}": rng.integers(0, 1 << 40, rows) for i in range(4)})
    return pl.DataFrame(cols)


class _NoHash:
    def update(self, _data) -> None:
        pass

    def hexdigest(self) -> str:
        return "0" * 32


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=10_000_000)
    ap.add_argument("--dir", type=Path, default=None)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench_store_", dir=args.dir))
    try:
        df = make_table(args.rows)
        mb = df.estimated_size() / 1e6
        print(f"table: {args.rows:,} rows x 12 columns, {mb:,.0f} MB in memory; disk under {tmp}")

        buf = np.random.default_rng(1).bytes(256 << 20)
        for name, fn in [("xxh3_128", lambda: xxhash.xxh3_128(buf).hexdigest()),
                         ("sha256", lambda: hashlib.sha256(buf).hexdigest()),
                         ("blake2b", lambda: hashlib.blake2b(buf).hexdigest())]:
            print(f"hash {name:9s}: {256 * 1.048576 / median_time(fn):8,.0f} MB/s (256 MiB buffer)")
        del buf

        store = CheckpointStore(tmp / "ckpt")

        def save():
            store.save("data_loaded", step="data_loaded", key="k", tables={"transactions": df})

        real = store_files.new_hasher
        store_files.new_hasher = _NoHash
        try:
            t_nohash = median_time(save)
        finally:
            store_files.new_hasher = real
        t_save = median_time(save)
        disk = store.size_bytes("data_loaded") / 1e6
        print(f"save  (lz4 parquet, hashed while writing, fsync): {t_save:6.2f} s  {mb / t_save:7,.0f} MB/s "
              f"({disk:,.0f} MB on disk)")
        print(f"save without hashing:                            {t_nohash:6.2f} s  {mb / t_nohash:7,.0f} MB/s "
              f"(hashing overhead {100 * (t_save - t_nohash) / t_nohash:+.1f}%)")
        for level in ("quick", "full"):
            t = median_time(lambda: store.load("data_loaded", verify=level).table("transactions"))
            print(f"load  (verify={level:5s}) + read table:            {t:6.2f} s  {mb / t:7,.0f} MB/s")
        store.delete("data_loaded")

        arrays = {f"a{i}": np.random.default_rng(i).random(16_000_000) for i in range(4)}  # 4 x 128 MB
        amb = sum(a.nbytes for a in arrays.values()) / 1e6
        t = median_time(lambda: store.save("node_features", step="node_features", key="k", arrays=arrays))
        print(f"save  {amb:,.0f} MB of arrays (.npy):                {t:6.2f} s  {amb / t:7,.0f} MB/s")

        def load_mapped():
            cp = store.load("node_features")
            return [cp.array(n) for n in cp.arrays]

        t = median_time(load_mapped)
        print(f"load  {amb:,.0f} MB of arrays memory-mapped (quick): {t * 1000:6.2f} ms")
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
