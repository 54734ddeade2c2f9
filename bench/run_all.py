"""Run every benchmark once, in order, on generated data (long: tens of minutes).

    python bench/run_all.py [--preset hi-small]

Each script prints its own figures; docs/BENCHMARKS.md records the ones measured.
"""
from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).parent


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="hi-small")
    args = ap.parse_args()
    runs = [
        ["bench_synth.py", "--preset", args.preset],
        ["bench_read.py", "--preset", args.preset],
        ["bench_store.py"],
        ["bench_pipeline.py", "--preset", args.preset],
        ["bench_scale.py", "memory", "--preset", args.preset, "--runs", "1"],
        ["bench_scale.py", "workers", "--preset", args.preset, "--runs", "1"],
        ["bench_scale.py", "kill", "--preset", args.preset],
    ]
    for script, *rest in runs:
        print(f"\n=== {script} {' '.join(rest)}", flush=True)
        subprocess.run([sys.executable, str(HERE / script), *rest], check=True)


if __name__ == "__main__":
    main()
