"""Helpers of the hostile-store tests: a small finished run to copy, and ways to tamper with it.

The run is the tiny preset cut to 600 rows with small chunks, so that every step has several
chunk checkpoints and a whole run takes about a second.
"""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

from harness import amlgraph, env

ROWS = 600
CHUNKS = ("--chunk-size", "20", "--chunk-rows", "200")


def make_run(base: Path) -> tuple[Path, Path]:
    """Generate the data under ``base`` and run the pipeline on it; return (data, checkpoints)."""
    from amlgraph import cli
    from amlgraph.synth import generate

    data, ckpt = base / "data", base / "ckpt"
    generate("tiny", data, seed=7, rows=ROWS)
    assert cli.main(["run", str(data), "--checkpoint-dir", str(ckpt), *CHUNKS, "--quiet"]) == 0
    return data, ckpt


def copy_run(ckpt: Path, target: Path) -> Path:
    shutil.copytree(ckpt, target, symlinks=True)
    return target


def gen_dir(root: Path, name: str) -> Path:
    (gen,) = [p for p in (root / name).iterdir() if p.name.startswith("gen-")]
    return gen


def read_manifest(root: Path, name: str) -> dict:
    return json.loads((root / name / "manifest.json").read_text())


def write_sealed(root: Path, name: str, manifest: dict) -> None:
    """Write ``manifest`` with a correct checksum: only what it says can betray it."""
    from amlgraph.store._base import manifest_checksum

    manifest = dict(manifest)
    manifest["manifest_checksum"] = manifest_checksum(manifest)
    (root / name / "manifest.json").write_text(json.dumps(manifest))


def replace_data_file(root: Path, name: str, file: str, data: bytes) -> None:
    """Replace a data file and re-seal its manifest (size and hash updated to match)."""
    from amlgraph.store._files import hash_bytes

    (gen_dir(root, name) / file).write_bytes(data)
    m = read_manifest(root, name)
    m["files"][file] = {"size": len(data), "hash": hash_bytes(data)}
    write_sealed(root, name, m)


def deep_json(depth: int = 100_000) -> str:
    return "[" * depth + "]" * depth


def run_cli(*args: str, timeout: float = 60.0, launcher=None) -> subprocess.CompletedProcess:
    """``amlgraph ARGS`` in a subprocess; raises subprocess.TimeoutExpired when it hangs. With a
    ``launcher`` (``warm_cli.WarmLauncher``) the process is forked from a warm parent."""
    if launcher is not None:
        from warm_cli import run

        return run(launcher, list(args), env(), timeout=timeout)
    return subprocess.run(amlgraph(*args), capture_output=True, text=True, timeout=timeout, env=env(),
                          stdin=subprocess.DEVNULL)


def one_line_error(proc: subprocess.CompletedProcess) -> str:
    """The single stderr line of a failed command (asserting that there is exactly one)."""
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1, proc.stderr
    assert "internal error" not in lines[0] and "Traceback" not in proc.stderr, proc.stderr
    return lines[0]
