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


def measure(cmd: list[str], *, env: dict | None = None, log: Path | None = None) -> tuple[float, float]:
    """Run ``cmd``; return (wall seconds, peak RSS in MB of it and its reaped children).

    Its standard output goes to ``log`` when given, else nowhere.
    """
    wall, rss, _ = measure_cpu(cmd, env=env, log=log)
    return wall, rss


def measure_cpu(cmd: list[str], *, env: dict | None = None,
                log: Path | None = None) -> tuple[float, float, float]:
    """:func:`measure` plus the CPU seconds (user + system) of the command and its reaped children:
    on a shared machine CPU time moves far less with the other tenants' load than wall time."""
    start = time.perf_counter()
    out = open(log, "wb") if log is not None else subprocess.DEVNULL
    try:
        proc = subprocess.Popen(cmd, env={**os.environ, **(env or {})}, stdout=out)
    finally:
        if log is not None:
            out.close()
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise SystemExit(f"benchmark command failed ({proc.returncode}): {' '.join(cmd)}")
    return elapsed, usage.ru_maxrss / 1024, usage.ru_utime + usage.ru_stime


def amlgraph(*args: str) -> list[str]:
    return [sys.executable, "-m", "amlgraph", *args]


def ensure_preset(preset: str, data: Path | None) -> Path:
    """A directory holding ``preset``: the given one, or a cached one under bench/out/."""
    if data is not None:
        return data
    out = REPO / "bench" / "out" / "data" / preset
    if not any(out.glob("*_Trans.csv*")):
        print(f"generating {preset} in {out} ...", flush=True)
        subprocess.run(amlgraph("synth", "--preset", preset, "--out", str(out)), check=True)
    return out


def median(values: list[float]) -> float:
    return statistics.median(values)


def scratch() -> Path:
    return Path(tempfile.mkdtemp(prefix="amlgraph-bench-", dir=REPO / "bench" / "out"))


def step_times(log: Path) -> dict[str, float]:
    """Per-step seconds from a run log's "✓ <step> completed in N seconds" lines."""
    import re

    found = re.findall(r"✓ (\w+) completed in ([0-9.]+) seconds", log.read_text(errors="replace"))
    return {step: float(sec) for step, sec in found}


def compress_trans(directory: Path) -> Path:
    """Replace ``*_Trans.csv`` in ``directory`` by ``.csv.zst`` (level 1, all cores), streaming."""
    import zstandard

    src = next(directory.glob("*_Trans.csv"), None)
    if src is None:
        return next(directory.glob("*_Trans.csv.zst"))
    dst = src.with_name(src.name + ".zst")
    tmp = dst.with_name(dst.name + ".tmp")
    cctx = zstandard.ZstdCompressor(level=1, threads=-1)
    with open(src, "rb") as fin, open(tmp, "wb") as fout:
        cctx.copy_stream(fin, fout, read_size=1 << 24, write_size=1 << 24)
    os.replace(tmp, dst)
    src.unlink()
    return dst


def disk_usage(path: Path) -> int:
    """Bytes of the regular files under ``path``."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())
