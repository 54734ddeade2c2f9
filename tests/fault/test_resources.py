"""Resource faults on real file systems and real limits: a full disk, a read-only checkpoint
directory, the directory removed mid-run, an address-space limit. Each ends with a clear error,
every checkpoint left behind is valid, and a rerun without the fault equals the clean run."""
from __future__ import annotations

import contextlib
import resource
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from harness import amlgraph, env, final_digest, leftovers, run_command, verify_store

pytestmark = pytest.mark.slow


@contextlib.contextmanager
def tmpfs(path: Path, size: str):
    """A small real file system (tmpfs) at ``path``; the suite runs as root in CI."""
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.fail(f"mounting a tmpfs needs root (CAP_SYS_ADMIN): {done.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def remount(path: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(path)], check=True)


def _run(data: Path, ckpt: Path, *, space_check: bool = True, **kw) -> subprocess.CompletedProcess:
    child = env() if space_check else {**env(), "AMLGRAPH_SPACE_CHECK": "0"}
    return subprocess.run(run_command(data, ckpt, "--quiet"), capture_output=True, text=True,
                          timeout=300, env=child, **kw)


def _one_line_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode not in (0, None), result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("amlgraph: error: "), lines[0]
    return lines[0]


def _rerun_equals_clean(reference, ckpt: Path) -> None:
    done = _run(reference.data, ckpt)
    assert done.returncode == 0, done.stderr
    assert final_digest(ckpt) == reference.digest
    assert verify_store(ckpt) == [] and leftovers(ckpt) == []


def test_disk_full_during_a_save(reference, tmp_path):
    # The check of free space before each step is turned off: a save that fills the disk anyway
    # (an estimate too low, another process writing) must still fail cleanly.
    with tmpfs(tmp_path / "fs", "2m") as fs:  # about two thirds of what the run writes
        ckpt = fs / "ckpt"
        result = _run(reference.data, ckpt, space_check=False)
        message = _one_line_error(result)
        assert result.returncode == 3
        assert "no space left on device while saving checkpoint" in message
        assert "previous checkpoint is intact" in message and "resume with: amlgraph run" in message
        assert leftovers(ckpt) == []  # the failed save removed its own generation
        survivors = verify_store(ckpt)
        assert survivors == []
        from amlgraph.store import CheckpointStore

        assert len(CheckpointStore(ckpt).names()) >= 5  # work done before the disk filled is kept
        remount(fs, "size=64m")
        _rerun_equals_clean(reference, ckpt)


def test_a_disk_too_small_for_the_input_stops_before_writing(tmp_path):
    """A 40 MB file system and a 94 MB Trans file (1M rows): the run stops before the first step
    writes, within seconds, in one line naming what it needs, what is free and what to do;
    nothing partial is left (no checkpoint, no temp file)."""
    import time

    from amlgraph.synth import generate

    data = tmp_path / "data"
    generate("hi-small", data, seed=0, rows=1_000_000)
    trans = sum(p.stat().st_size for p in data.glob("*_Trans*.csv"))
    assert trans > 90e6
    with tmpfs(tmp_path / "fs", "40m") as fs:
        ckpt = fs / "ckpt"
        start = time.monotonic()
        result = _run(data, ckpt)
        took = time.monotonic() - start
        message = _one_line_error(result)
        assert result.returncode == 3
        assert "not enough free space for step data_loaded" in message
        assert "it needs about" in message and "MB free" in message
        assert "--checkpoint-dir" in message and "--compact" in message
        assert took < 60, took  # not a wall-time figure: "before parsing 1M rows", with slack for a busy machine
        assert leftovers(ckpt) == []
        left = sorted(p.name for p in ckpt.iterdir())
        assert [n for n in left if not n.startswith(".")] == ["amlgraph-store.json"], left
        assert shutil.disk_usage(fs).used < 1 << 20


def test_a_later_step_that_cannot_fit_stops_before_it_writes(reference, tmp_path):
    """Room for the earlier steps only: the run stops before the step that would not fit (here
    edge_features), keeps every checkpoint it has (all valid), and resumes once there is room."""
    from amlgraph.store import CheckpointStore

    with tmpfs(tmp_path / "fs", "64m") as fs:
        ckpt = reference.copy_to(fs / "ckpt")
        store = CheckpointStore(ckpt)
        edges = [n for n in store.names() if n.startswith("edge_features")]
        size = sum(store.size_bytes(n) for n in edges)
        for name in edges + ["normalized", "imbalanced", "graph_created"]:
            store.delete(name)
        ballast = fs / "ballast"
        with open(ballast, "wb") as f:  # leave half the edge features' size free
            f.write(b"\0" * int(shutil.disk_usage(fs).free - size // 2))
        result = _run(reference.data, ckpt)
        message = _one_line_error(result)
        assert result.returncode == 3
        assert "not enough free space for step edge_features" in message
        assert store.load("edge_features") is None and store.load("node_features") is not None
        assert verify_store(ckpt) == [] and leftovers(ckpt) == []
        ballast.unlink()
        _rerun_equals_clean(reference, ckpt)


def test_a_whole_graph_that_cannot_fit_stops_before_graph_created_writes(reference, tmp_path, monkeypatch):
    """A graph too large to assemble on every load is written whole (HI-Large on a laptop), so the
    estimate before graph_created is the whole graph's arrays, not the linked graph's few bytes:
    with room for the linked graph but not the whole one, the run stops before the step writes."""
    from amlgraph import run_preprocessing
    from amlgraph.errors import CheckpointError
    from amlgraph.runner import _context
    from amlgraph.store import CheckpointStore

    # The same run as the reference, in this process, with every graph too large to assemble.
    monkeypatch.setattr(_context, "DECODE_MEMORY_FRACTION", 1e-12)
    cfg = {"data_path": str(reference.data), "chunk_size": 200, "chunk_rows": 1000, "keep_parsed": True,
           "quiet": True}
    whole_dir = reference.copy_to(tmp_path / "whole")
    CheckpointStore(whole_dir).delete("graph_created")
    run_preprocessing({**cfg, "checkpoint_dir": str(whole_dir)})
    whole = CheckpointStore(whole_dir)
    assert "links" not in whole.load("graph_created").values
    whole_bytes = whole.size_bytes("graph_created")
    with tmpfs(tmp_path / "fs", "64m") as fs:
        ckpt = reference.copy_to(fs / "ckpt")
        store = CheckpointStore(ckpt)
        linked_bytes = store.size_bytes("graph_created")
        store.delete("graph_created")
        assert whole_bytes > 4 * linked_bytes + (256 << 10)  # room for one, not the other, below
        ballast = fs / "ballast"
        with open(ballast, "wb") as f:
            f.write(b"\0" * int(shutil.disk_usage(fs).free - whole_bytes // 2))
        with pytest.raises(CheckpointError, match="not enough free space for step graph_created") as err:
            run_preprocessing({**cfg, "checkpoint_dir": str(ckpt)})
        assert "--compact" in str(err.value) and "\n" not in str(err.value)
        assert store.load("graph_created") is None and store.load("imbalanced") is not None
        assert verify_store(ckpt) == [] and leftovers(ckpt) == []
        ballast.unlink()
        _rerun_equals_clean(reference, ckpt)


def test_read_only_checkpoint_directory(reference, tmp_path):
    with tmpfs(tmp_path / "fs", "16m") as fs:
        ckpt = reference.copy_to(fs / "ckpt")
        shutil.rmtree(ckpt / "graph_created")
        remount(fs, "ro")
        result = _run(reference.data, ckpt)
        message = _one_line_error(result)
        assert result.returncode == 3
        assert "Read-only file system" in message and "writable --checkpoint-dir" in message
        # inspecting a read-only store still works, and finds every checkpoint intact
        verify = subprocess.run(amlgraph("checkpoints", "verify", str(ckpt)), capture_output=True,
                                text=True, timeout=120, env=env())
        assert verify.returncode == 0, verify.stdout + verify.stderr
        remount(fs, "rw")
        _rerun_equals_clean(reference, ckpt)


def test_checkpoint_directory_removed_mid_run(reference, tmp_path):
    ckpt = tmp_path / "ckpt"
    proc = subprocess.Popen(run_command(reference.data, ckpt), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env())
    removed = threading.Event()
    for line in proc.stdout:
        if not removed.is_set() and line.startswith("STEP 3/7"):
            while ckpt.exists():  # the run keeps writing into it while it goes
                shutil.rmtree(ckpt, ignore_errors=True)
            removed.set()
    proc.wait(300)
    stderr = proc.stderr.read()
    proc.stderr.close()
    assert removed.is_set()
    result = subprocess.CompletedProcess(proc.args, proc.returncode, "", stderr)
    message = _one_line_error(result)
    assert str(ckpt) in message
    _rerun_equals_clean(reference, ckpt)


def _import_peak_bytes() -> int:
    """Address space a run needs just to import what it uses (VmPeak of a probe process)."""
    code = ("import amlgraph.runner, amlgraph.runner._tasks, amlgraph.steps.data_loaded, amlgraph.steps.imbalanced, "
            "amlgraph.steps.normalized, amlgraph.graph, polars, numpy, sklearn.neighbors;"
            "print([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmPeak')][0])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env(), check=True)
    return int(out.stdout.strip()) * 1024


def test_memory_limit_below_what_the_data_needs(reference, tmp_path):
    limit = _import_peak_bytes() + (48 << 20)

    def limit_memory() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    ckpt = tmp_path / "ckpt"
    result = subprocess.run(run_command(reference.data, ckpt, "--quiet"), capture_output=True, text=True,
                            timeout=300, env=env(), preexec_fn=limit_memory)
    assert result.returncode != 0, "the run fit in the limit; the test needs a lower one"
    assert "Traceback" not in result.stderr
    # Python saw the failure: one line. Outside Python the C library may die first: a signal, or
    # glibc's loader failing to give a new thread its thread-local storage (exit 127, its message).
    died_in_libc = result.returncode == 127 and "cannot allocate memory for thread-local data" in result.stderr
    if result.returncode > 0 and not died_in_libc:
        _one_line_error(result)
    assert verify_store(ckpt) == [] if ckpt.exists() else True
    _rerun_equals_clean(reference, ckpt)
