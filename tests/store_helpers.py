"""Helpers shared by the checkpoint-store tests: child-process scripts and small builders."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import polars as pl

# A child that saves version 1, 2, 3, ... of a ~52 MB checkpoint over and over until killed.
SAVE_LOOP = r"""
import sys, numpy as np, polars as pl
from amlgraph.store import CheckpointStore
store = CheckpointStore(sys.argv[1])
print("ready", flush=True)
v = 1
while True:
    store.save("node_features", step="node_features", key=f"k{v}",
               tables={"t": pl.DataFrame({"v": np.full(1000, v)})},
               arrays={"x": np.full(6_500_000, float(v))}, values={"version": v})
    v += 1
"""

# A child that takes the store's lock, says so, and sleeps (argv: root, seconds).
HOLD_LOCK = r"""
import sys, time
from amlgraph.store import CheckpointStore
store = CheckpointStore(sys.argv[1])
with store.lock():
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
"""

# A writer that saves under the lock (argv: root, writer id, repeats).
LOCKED_WRITER = r"""
import sys, numpy as np
from amlgraph.store import CheckpointStore
store = CheckpointStore(sys.argv[1])
w = int(sys.argv[2])
for i in range(int(sys.argv[3])):
    with store.lock(wait=True, timeout=60):
        store.save("edge_features", step="edge_features", key=f"w{w}-{i}",
                   arrays={"x": np.full(1_000_000, float(w * 100 + i))}, values={"writer": w, "i": i})
"""


def spawn(code: str, *args: str) -> subprocess.Popen:
    """Start ``python -c code args...`` with a line-buffered stdout pipe."""
    return subprocess.Popen([sys.executable, "-c", code, *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def dead_pid() -> int:
    """The pid of a process that has exited (for orphan names)."""
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait()
    return p.pid


def sample_data(seed: int = 0, rows: int = 50) -> tuple[dict, dict, dict]:
    """Tables, arrays and values for a round trip."""
    rng = np.random.default_rng(seed)
    tables = {"transactions": pl.DataFrame({
        "row": np.arange(rows, dtype=np.int64),
        "amount": rng.random(rows),
        "currency": rng.choice(["Euro", "US Dollar", "Yen"], rows),
        "is_laundering": rng.integers(0, 2, rows).astype(np.int8),
    })}
    arrays = {"features": rng.random((rows, 7)).astype(np.float32),
              "edge_index": rng.integers(0, 10, (2, rows)), "empty": np.zeros((0, 3))}
    values = {"class_weights": {"0": 0.5, "1": 12.25}, "num_accounts": 10, "note": None}
    return tables, arrays, values


def gen_dirs(root: Path, name: str) -> list[str]:
    return sorted(p.name for p in (root / name).iterdir() if p.name.startswith("gen-"))


def tmp_files(root: Path) -> list[Path]:
    return [p for p in root.rglob(".tmp-*")]
