"""Same-sitting A/B of two source trees on one data set: alternating fresh-process runs.

    git worktree add /tmp/amlgraph-a <old-commit>
    python bench/bench_ab.py --a /tmp/amlgraph-a --b . --data DIR [--pairs 4]

Each pair runs A then B (then B then A in the next pair, so that neither always goes first),
each ``amlgraph run DATA --quiet`` into an empty checkpoint directory with ``src`` of its tree
first on ``PYTHONPATH``. Prints every run, the medians, the ratio B/A, and whether the graphs of
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
from _util import measure, median, scratch  # noqa: E402

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


def _run(tree: Path, data: Path) -> tuple[float, float, dict]:
    ckpt = scratch() / "ckpt"
    wall, rss = measure([sys.executable, "-m", "amlgraph", "run", str(data), "--checkpoint-dir", str(ckpt),
                         "--quiet"], env=_env(tree))
    try:
        # Old trees may keep load_graph in amlgraph.graph.
        code = _DIGEST if (tree / "src/amlgraph/runner/_graph.py").exists() else \
            _DIGEST.replace("from amlgraph.runner import load_graph", "from amlgraph.graph import load_graph")
        out = subprocess.run([sys.executable, "-c", code, str(ckpt)], env={**os.environ, **_env(tree)},
                             capture_output=True, text=True, check=True)
        digest = json.loads(out.stdout)
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
    for i in range(args.pairs):
        order = ("A", "B") if i % 2 == 0 else ("B", "A")
        for side in order:
            wall, rss, digest = _run(args.a if side == "A" else args.b, args.data)
            times[side].append(wall)
            peaks[side].append(rss)
            digests[side] = digest
            print(f"pair {i + 1} {side}: {wall:.2f} s, peak RSS {rss:,.0f} MB", flush=True)
    ma, mb = median(times["A"]), median(times["B"])
    print(json.dumps({
        "pairs": args.pairs, "a_median_s": round(ma, 2), "b_median_s": round(mb, 2),
        "ratio_b_over_a": round(mb / ma, 3),
        "a_peak_rss_mb_median": round(median(peaks["A"])), "b_peak_rss_mb_median": round(median(peaks["B"])),
        "graphs_identical": digests["A"] == digests["B"],
    }, indent=1))


if __name__ == "__main__":
    main()
