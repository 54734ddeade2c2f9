"""Same-sitting A/B of two source trees on one data set: alternating fresh-process runs.

    git worktree add /tmp/amlgraph-a <old-commit>
    python bench/bench_ab.py --a /tmp/amlgraph-a --b . --data DIR [--pairs 4]

Each pair runs A then B (then B then A in the next pair, so that neither always goes first),
each ``amlgraph run DATA --quiet`` into an empty checkpoint directory with ``src`` of its tree
first on ``PYTHONPATH``. Prints every run (wall and CPU seconds: user + system, which moves far
less with the other tenants' load), the medians, the ratios B/A, each step's median compute
seconds (from its checkpoints' manifests), and whether the graphs of
A and B are byte-identical (sha256 of every graph array and the node table).
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
from _util import measure_cpu, median, scratch  # noqa: E402

_DIGEST = """
import hashlib, json, sys
import numpy as np
from amlgraph.runner import load_graph
g = load_graph(sys.argv[1])
out = {}
for name in ("edge_index", "edge_row", "timestamp", "x", "edge_attr", "y", "node_y", "split"):
    a = np.ascontiguousarray(np.asarray(getattr(g, name)))
    out[name] = hashlib.sha256(str((a.dtype.str, a.shape)).encode() + a.tobytes()).hexdigest()
out["nodes"] = hashlib.sha256(g.nodes.write_ipc(None).getvalue()).hexdigest()
print(json.dumps(out))
"""


def _env(tree: Path) -> dict:
    return {"PYTHONPATH": str(tree.resolve() / "src")}


def _step_seconds(ckpt: Path) -> dict[str, float]:
    """Compute seconds each step's checkpoints record (chunks summed), from their manifests."""
    out: dict[str, float] = {}
    for manifest in ckpt.glob("*/manifest.json"):
        m = json.loads(manifest.read_text())
        seconds = (m.get("metadata") or {}).get("seconds")
        if isinstance(seconds, (int, float)):
            step = m.get("step") or manifest.parent.name
            out[step] = out.get(step, 0.0) + seconds
    return out


def _run(tree: Path, data: Path) -> tuple[float, float, dict]:
    ckpt = scratch() / "ckpt"
    wall, rss, cpu = measure_cpu([sys.executable, "-m", "amlgraph", "run", str(data), "--checkpoint-dir",
                                  str(ckpt), "--quiet"], env=_env(tree))
    try:
        # Old trees may keep load_graph in amlgraph.graph.
        code = _DIGEST if (tree / "src/amlgraph/runner/_graph.py").exists() else \
            _DIGEST.replace("from amlgraph.runner import load_graph", "from amlgraph.graph import load_graph")
        out = subprocess.run([sys.executable, "-c", code, str(ckpt)], env={**os.environ, **_env(tree)},
                             capture_output=True, text=True, check=True)
        digest = json.loads(out.stdout)
        digest["_steps"] = _step_seconds(ckpt)
        digest["_cpu"] = cpu
    finally:
        shutil.rmtree(ckpt.parent)
    return wall, rss, digest


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--a", type=Path, required=True, help="source tree A (the reference)")
    ap.add_argument("--b", type=Path, required=True, help="source tree B (the change)")
    ap.add_argument("--data", type=Path, required=True)
    ap.add_argument("--pairs", type=int, default=4)
    args = ap.parse_args()
    times: dict[str, list[float]] = {"A": [], "B": []}
    peaks: dict[str, list[float]] = {"A": [], "B": []}
    digests: dict[str, dict] = {}
    steps: dict[str, list[dict]] = {"A": [], "B": []}
    cpus: dict[str, list[float]] = {"A": [], "B": []}
    for i in range(args.pairs):
        order = ("A", "B") if i % 2 == 0 else ("B", "A")
        for side in order:
            wall, rss, digest = _run(args.a if side == "A" else args.b, args.data)
            times[side].append(wall)
            peaks[side].append(rss)
            steps[side].append(digest.pop("_steps"))
            cpus[side].append(digest.pop("_cpu"))
            digests[side] = digest
            print(f"pair {i + 1} {side}: {wall:.2f} s, CPU {cpus[side][-1]:.2f} s, peak RSS {rss:,.0f} MB",
                  flush=True)
    ma, mb = median(times["A"]), median(times["B"])
    names = sorted({n for side in steps.values() for run in side for n in run})
    if names:
        print(f"{'step (median s)':<16}{'A':>9}{'B':>9}{'B/A':>7}")
    for n in names:
        a = median([r.get(n, 0.0) for r in steps["A"]])
        b = median([r.get(n, 0.0) for r in steps["B"]])
        print(f"{n:<16}{a:>9.2f}{b:>9.2f}{(b / a if a else float('nan')):>7.2f}")
    print(json.dumps({
        "pairs": args.pairs, "a_median_s": round(ma, 2), "b_median_s": round(mb, 2),
        "ratio_b_over_a": round(mb / ma, 3),
        "a_cpu_median_s": round(median(cpus["A"]), 2), "b_cpu_median_s": round(median(cpus["B"]), 2),
        "cpu_ratio_b_over_a": round(median(cpus["B"]) / median(cpus["A"]), 3),
        "a_peak_rss_mb_median": round(median(peaks["A"])), "b_peak_rss_mb_median": round(median(peaks["B"])),
        "graphs_identical": digests["A"] == digests["B"],
    }, indent=1))


if __name__ == "__main__":
    main()
