"""Shared by the benchmarks: timing a command in a fresh process and its peak RSS, medians."""
from __future__ import annotations

import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def measure(cmd: list[str], *, env: dict | None = None) -> tuple[float, float]:
    """Run ``cmd``; return (wall seconds, peak RSS in MB of it and its reaped children)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"benchmark command failed ({proc.returncode}): {' '.join(cmd)}")
    return elapsed, usage.ru_maxrss / 1024


def amlgraph(*args: str) -> list[str]:
    return [sys.executable, "-m", "amlgraph", *args]


def ensure_preset(preset: str, data: Path | None) -> Path:
    """A directory holding ``preset``: the given one, or a cached one under bench/out/."""
    if data is not None:
        return data
    out = REPO / "bench" / "out" / "data" / preset
    if not any(out.glob("*_Trans.csv")):
        print(f"generating {preset} in {out} ...", flush=True)
        subprocess.run(amlgraph("synth", "--preset", preset, "--out", str(out)), check=True)
    return out


def median(values: list[float]) -> float:
    return statistics.median(values)


def scratch() -> Path:
    return Path(tempfile.mkdtemp(prefix="amlgraph-bench-", dir=REPO / "bench" / "out"))
