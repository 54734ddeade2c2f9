"""Disk footprint of a run against its input, default and compacted, with the time of each.

    python bench/bench_footprint.py --data DIR [--runs 3] [--tree .] [--tree /old/checkout]

For each source tree (default: this one) and each run: ``amlgraph run DATA --checkpoint-dir
<empty dir> --quiet`` in a fresh process (wall time), the bytes of every step's checkpoints and
their total, ``load_graph`` of the run's directory (a linked graph is assembled from the
checkpoints it names), then ``amlgraph checkpoints clean --compact`` (wall time) and the bytes
kept, then ``load_graph`` of the compacted directory (each load timed inside a fresh process,
imports excluded). Ratios are to the Trans
file(s) and to all input files (Trans, accounts, Patterns; what ``amlgraph status`` divides by).
Prints every run and the medians; sizes do not vary between runs of one tree.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _util import amlgraph, measure, median, scratch  # noqa: E402

STEPS = ("data_loaded", "node_features", "edge_features", "normalized", "imbalanced", "weights",
         "graph_created")
_LOAD = "import sys, time; from amlgraph.runner import load_graph; t = time.perf_counter(); " \
        "g = load_graph(sys.argv[1]); print(time.perf_counter() - t)"


def _env(tree: Path) -> dict:
    return {"PYTHONPATH": str(tree.resolve() / "src")}


def _sizes(tree: Path, ckpt: Path) -> dict:
    out = subprocess.run(amlgraph("status", str(ckpt), "--json"), env={**os.environ, **_env(tree)},
                         capture_output=True, text=True, check=True)
    status = json.loads(out.stdout)
    return {"steps": {s: status["steps"][s]["size_bytes"] for s in STEPS}, "total": status["footprint"]["bytes"]}


def _one(tree: Path, data: Path) -> dict:
    ckpt = scratch() / "ckpt"
    try:
        run_s, rss = measure(amlgraph("run", str(data), "--checkpoint-dir", str(ckpt), "--quiet"), env=_env(tree))
        default = _sizes(tree, ckpt)
        load_default_s = _load_s(tree, ckpt)
        compact_s, compacted = None, None
        if "--compact" in (tree / "src/amlgraph/cli/_checkpoints.py").read_text():  # older trees lack it
            compact_s, _ = measure(amlgraph("checkpoints", "clean", str(ckpt), "--compact"), env=_env(tree))
            compacted = _sizes(tree, ckpt)
        load_s = _load_s(tree, ckpt)
    finally:
        shutil.rmtree(ckpt.parent)
    return {"run_s": run_s, "rss_mb": rss, "default": default, "compact_s": compact_s,
            "compacted": compacted, "load_s": load_s, "load_default_s": load_default_s}


def _load_s(tree: Path, ckpt: Path) -> float:
    out = subprocess.run([sys.executable, "-c", _LOAD, str(ckpt)], env={**os.environ, **_env(tree)},
                         capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def _mb(n: float) -> str:
    return f"{n / 1e6:,.1f} MB"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", type=Path, required=True, help="a data directory (e.g. amlgraph synth output)")
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--tree", type=Path, action="append", default=None,
                    help="a source tree to measure (repeatable; default: this one)")
    args = ap.parse_args()
    trees = args.tree or [Path(__file__).resolve().parents[1]]
    trans = sum(p.stat().st_size for p in args.data.iterdir() if "_Trans" in p.name)
    inputs = sum(p.stat().st_size for p in args.data.iterdir() if p.is_file())
    print(f"data {args.data}: Trans {_mb(trans)}, all inputs {_mb(inputs)}; {args.runs} run(s) per tree")
    for tree in trees:
        runs = []
        for i in range(args.runs):
            r = _one(tree, args.data)
            runs.append(r)
            compact = (f"compact {r['compact_s']:.2f} s -> {_mb(r['compacted']['total'])}"
                       if r["compacted"] else "no --compact in this tree")
            print(f"  {tree} run {i + 1}: run {r['run_s']:.2f} s (peak RSS {r['rss_mb']:.0f} MB), "
                  f"default {_mb(r['default']['total'])} (load_graph {r['load_default_s']:.2f} s); {compact}; "
                  f"load_graph {r['load_s']:.2f} s", flush=True)
        last = runs[-1]
        print(f"{tree}:")
        for step in STEPS:
            kept = f"  compacted {_mb(last['compacted']['steps'][step]):>10}" if last["compacted"] else ""
            print(f"  {step:<14} {_mb(last['default']['steps'][step]):>10}{kept}")
        for label in ("default", "compacted"):
            if last[label]:
                total = last[label]["total"]
                print(f"  {label:<9} {_mb(total):>10}  {total / trans:.2f}x the Trans file, "
                      f"{total / inputs:.2f}x all inputs")
        compact = (f", compact {median([r['compact_s'] for r in runs]):.2f} s" if last["compacted"] else "")
        print(f"  median run {median([r['run_s'] for r in runs]):.2f} s{compact}, load_graph of the run "
              f"{median([r['load_default_s'] for r in runs]):.2f} s, after the compaction (where there is "
              f"one) {median([r['load_s'] for r in runs]):.2f} s")


if __name__ == "__main__":
    main()
