"""Worker processes of `amlgraph run --workers N` end with the run, whatever ends it.

Real processes, real signals: `amlgraph run --workers 2` is started in a session of its own,
its process tree (spawned workers, the multiprocessing resource tracker and anything below them)
is taken with psutil once the workers exist, then the run is ended on purpose: SIGKILL, Ctrl-C
(SIGINT to the whole process group, as a terminal sends it, or to the parent alone), SIGTERM, a
failure, or its normal end. Every process of the tree must be gone within a few seconds, Ctrl-C
must print exactly one line, and a resumed run must give the uninterrupted run's graph.
"""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from harness import amlgraph, env, final_digest

pytestmark = pytest.mark.slow

#: Small chunks make the pool live for seconds: 30 row chunks and 31 account chunks.
OPTIONS = ("--workers", "2", "--chunk-size", "200", "--chunk-rows", "2000")
GONE_WITHIN_S = 5.0


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> Path:
    from amlgraph.synth import generate

    out = tmp_path_factory.mktemp("small60k")
    generate("small", out, seed=3, rows=60_000)
    return out


@pytest.fixture(scope="module")
def reference(data, tmp_path_factory) -> dict:
    """Digest of the graph of an uninterrupted run (in-process chunks, no worker processes)."""
    ckpt = tmp_path_factory.mktemp("reference") / "ckpt"
    cmd = amlgraph("run", str(data), "--checkpoint-dir", str(ckpt), *OPTIONS[2:], "--quiet")
    done = subprocess.run(cmd, check=False, capture_output=True, text=True, env=env(), timeout=600)
    assert done.returncode == 0, done.stderr
    return final_digest(ckpt)


class Run:
    """One `amlgraph run --workers 2` in its own session; stdout and stderr go to files (a
    surviving worker holding a pipe would block a reader forever)."""

    def __init__(self, data: Path, ckpt: Path, tmp: Path):
        self.out, self.err = tmp / "stdout.txt", tmp / "stderr.txt"
        with open(self.out, "wb") as out, open(self.err, "wb") as err:
            self.proc = subprocess.Popen(amlgraph("run", str(data), "--checkpoint-dir", str(ckpt), *OPTIONS),
                                         stdout=out, stderr=err, env=env(), start_new_session=True)
        self.seen: dict[int, psutil.Process] = {}

    def tree(self) -> list[psutil.Process]:
        """The run's descendants now (children, grandchildren, ...); remembered for the cleanup."""
        try:
            kids = psutil.Process(self.proc.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return []
        for k in kids:
            self.seen.setdefault(k.pid, k)
            _cmdline(k)
        return kids

    def wait_for_workers(self, n: int = 2, timeout: float = 120.0) -> list[psutil.Process]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"the run ended before its workers started: {self.stderr()}"
            kids = self.tree()
            if sum(_is_worker(k) for k in kids) >= n:
                return kids
            time.sleep(0.02)
        raise AssertionError(f"no {n} workers after {timeout:.0f} s")

    def wait(self, timeout: float = 120.0) -> int:
        return self.proc.wait(timeout=timeout)

    def stderr(self) -> str:
        return self.err.read_text(errors="replace")

    def cleanup(self) -> None:
        """Kill, by pid, whatever of this run is still alive (a failing test leaves no orphans)."""
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        # The resource tracker last: once the workers are gone it exits by itself and unlinks
        # their semaphores, which a SIGKILL would leave in /dev/shm.
        procs = sorted(self.seen.values(), key=lambda p: "resource_tracker" in _cmdline(p))
        for p in procs:
            if "resource_tracker" in _cmdline(p) and _survivors([p]) == []:
                continue
            try:
                if _alive(p):
                    p.kill()
            except psutil.Error:
                pass


@pytest.fixture
def start(tmp_path):
    runs: list[Run] = []

    def _start(data: Path, ckpt: Path) -> Run:
        d = tmp_path / f"run{len(runs)}"
        d.mkdir()
        runs.append(Run(data, ckpt, d))
        return runs[-1]

    yield _start
    for r in runs:
        r.cleanup()


_CMDLINES: dict[psutil.Process, str] = {}


def _cmdline(p: psutil.Process) -> str:
    """The command line now, or the last one seen (a dead process has none; a child between its
    fork and its exec still shows the parent's)."""
    try:
        _CMDLINES[p] = " ".join(p.cmdline())
    except psutil.Error:
        pass
    return _CMDLINES.get(p, "?")


def _is_worker(p: psutil.Process) -> bool:
    return "multiprocessing.spawn" in _cmdline(p)


def _alive(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _survivors(procs: list[psutil.Process], within: float = GONE_WITHIN_S) -> list[str]:
    """The processes of ``procs`` still alive ``within`` seconds from now (empty when all died)."""
    deadline = time.monotonic() + within
    while True:
        alive = [p for p in procs if _alive(p)]
        if not alive or time.monotonic() > deadline:
            return [f"{p.pid} {_cmdline(p)[:100]}" for p in alive]
        time.sleep(0.05)


def _describe(procs: list[psutil.Process]) -> list[str]:
    return [f"{p.pid} {_cmdline(p)[:100]}" for p in procs]


def _chunks_saved(ckpt: Path) -> set[str]:
    """Chunk checkpoints with a manifest (complete) in ``ckpt``."""
    try:
        return {d.name for d in ckpt.iterdir() if "_chunk_" in d.name and (d / "manifest.json").exists()}
    except FileNotFoundError:
        return set()


#: Chunks that may still end after a signal: one running on each of the 2 workers, one queued.
IN_FLIGHT = 3


def _resume(data: Path, ckpt: Path) -> dict:
    cmd = amlgraph("run", str(data), "--checkpoint-dir", str(ckpt), *OPTIONS, "--quiet")
    done = subprocess.run(cmd, check=False, capture_output=True, text=True, env=env(), timeout=600)
    assert done.returncode == 0, done.stderr
    return final_digest(ckpt)


def test_sigkill_of_the_parent_takes_every_worker_down(data, reference, start, tmp_path):
    """SIGKILL the parent mid-run: its workers and the resource tracker go with it; a resumed run
    gives the uninterrupted run's graph."""
    ckpt = tmp_path / "ckpt"
    run = start(data, ckpt)
    run.wait_for_workers()
    time.sleep(0.5)
    tree = run.tree()
    assert sum(_is_worker(p) for p in tree) >= 2, _describe(tree)
    assert any("resource_tracker" in _cmdline(p) for p in tree), _describe(tree)
    run.proc.kill()
    assert run.wait(30) == -signal.SIGKILL
    left = _survivors(tree)
    assert left == [], f"alive {GONE_WITHIN_S:.0f} s after the parent's SIGKILL: {left}"
    assert _resume(data, ckpt) == reference


@pytest.mark.parametrize("target,delay", [("group", 0.5), ("group", 0.0), ("parent", 0.5)],
                         ids=["ctrl-c", "ctrl-c-while-workers-start", "sigint-to-parent"])
def test_ctrl_c_prints_one_line_and_leaves_no_process(data, reference, start, tmp_path, target, delay):
    """Ctrl-C (SIGINT to the process group, as a terminal sends it) or SIGINT to the parent:
    stderr is exactly `amlgraph: interrupted`, exit code 130 (128 + SIGINT), no process left,
    and a resumed run gives the uninterrupted run's graph."""
    ckpt = tmp_path / "ckpt"
    run = start(data, ckpt)
    run.wait_for_workers()
    time.sleep(delay)
    tree = run.tree()
    before = _chunks_saved(ckpt)
    if target == "group":
        os.killpg(run.proc.pid, signal.SIGINT)
    else:
        run.proc.send_signal(signal.SIGINT)
    code = run.wait(60)
    left = _survivors(tree)
    err = run.stderr()
    assert err == "amlgraph: interrupted\n", f"exit {code}, {len(err.splitlines())} lines on stderr:\n{err}"
    assert code == 130
    assert left == [], f"alive {GONE_WITHIN_S:.0f} s after the interrupted run's end: {left}"
    # The run stops at once: the chunks not started are not run after the interrupt.
    after = _chunks_saved(ckpt) - before
    assert len(after) <= IN_FLIGHT, f"{len(after)} chunks saved after the interrupt: {sorted(after)}"
    if delay:
        assert _resume(data, ckpt) == reference


def test_sigterm_ends_the_run_and_its_workers(data, start, tmp_path):
    """SIGTERM to the parent (`kill PID`, a service manager stopping it): one line
    `amlgraph: terminated`, exit code 143 (128 + SIGTERM), no process left."""
    ckpt = tmp_path / "ckpt"
    run = start(data, ckpt)
    run.wait_for_workers()
    time.sleep(0.5)
    tree = run.tree()
    before = _chunks_saved(ckpt)
    run.proc.send_signal(signal.SIGTERM)
    code = run.wait(60)
    left = _survivors(tree)
    assert (code, run.stderr()) == (143, "amlgraph: terminated\n")
    assert left == [], f"alive {GONE_WITHIN_S:.0f} s after the terminated run's end: {left}"
    after = _chunks_saved(ckpt) - before
    assert len(after) <= IN_FLIGHT, f"{len(after)} chunks saved after SIGTERM: {sorted(after)}"


def test_a_failing_run_takes_its_workers_down(data, start, tmp_path):
    """The checkpoint directory vanishes under the workers once they have written checkpoints
    the rest of the run reads (the parsed byte ranges, the first coded chunks): the run fails
    with one line, and no process of its tree is left."""
    ckpt = tmp_path / "ckpt"
    run = start(data, ckpt)
    run.wait_for_workers()
    deadline = time.monotonic() + 120
    while not list(ckpt.glob("data_loaded_chunk_*/manifest.json")) and time.monotonic() < deadline:
        assert run.proc.poll() is None, f"the run ended before it could be failed: {run.stderr()}"
        time.sleep(0.01)
    tree = run.tree()
    shutil.rmtree(ckpt, ignore_errors=True)
    code = run.wait(120)
    left = _survivors(tree)
    assert code not in (0, 130) and code > 0, (code, run.stderr())
    assert len(run.stderr().splitlines()) == 1, run.stderr()
    assert left == [], f"alive {GONE_WITHIN_S:.0f} s after the failed run's end: {left}"


def test_workers_end_with_a_finished_run(data, reference, start, tmp_path):
    """An uninterrupted run with workers: every process it started is gone when it has ended,
    and its graph equals the in-process run's."""
    ckpt = tmp_path / "ckpt"
    run = start(data, ckpt)
    run.wait_for_workers()
    while run.proc.poll() is None:
        run.tree()
        time.sleep(0.1)
    assert run.proc.returncode == 0, run.stderr()
    tree = list(run.seen.values())
    assert sum(_is_worker(p) for p in tree) >= 2, _describe(tree)
    left = _survivors(tree)
    assert left == [], f"alive {GONE_WITHIN_S:.0f} s after the run's end: {left}"
    assert final_digest(ckpt) == reference


def test_a_worker_killed_fails_the_run_in_one_line(data, reference, start, tmp_path):
    """One worker SIGKILLed (as the kernel's OOM killer would): the run fails with one line that
    says so (exit 1), its other processes go, and a resumed run gives the uninterrupted graph."""
    ckpt = tmp_path / "ckpt"
    run = start(data, ckpt)
    run.wait_for_workers()
    time.sleep(0.5)
    tree = run.tree()
    next(p for p in tree if _is_worker(p)).kill()
    code = run.wait(120)
    left = _survivors(tree)
    err = run.stderr()
    assert code == 1 and len(err.splitlines()) == 1 and "worker process died" in err, (code, err)
    assert left == [], f"alive {GONE_WITHIN_S:.0f} s after the failed run's end: {left}"
    assert _resume(data, ckpt) == reference


_PROBE = """
import ctypes, os, signal, sys
from amlgraph.runner._chunks import worker_init
worker_init(int(sys.argv[1]))
got = ctypes.c_int(0)
ctypes.CDLL(None).prctl(2, ctypes.byref(got), 0, 0, 0)  # PR_GET_PDEATHSIG
print(signal.getsignal(signal.SIGINT) is signal.SIG_IGN, got.value)
"""


@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="Linux only")
def test_worker_init_sets_the_parent_death_signal_and_checks_the_parent():
    """The initializer of a pool worker: SIGINT ignored, SIGKILL on its parent's death; a worker
    whose parent is not the one that started it (already dead, reparented) exits at once."""
    ok = subprocess.run([sys.executable, "-c", _PROBE, str(os.getpid())], check=False, capture_output=True,
                        text=True, env=env(), timeout=120)
    assert (ok.returncode, ok.stdout.split()) == (0, ["True", str(int(signal.SIGKILL))]), ok.stderr
    orphan = subprocess.run([sys.executable, "-c", _PROBE, "1"], check=False, capture_output=True, text=True,
                            env=env(), timeout=120)
    assert (orphan.returncode, orphan.stdout) == (1, ""), orphan.stderr


_DEFER = """
import os, signal, threading, time
from amlgraph.runner._chunks import _signals_deferred

def _term(signum, frame):
    raise SystemExit(143)

signal.signal(signal.SIGTERM, _term)
sig = {"int": signal.SIGINT, "term": signal.SIGTERM}[os.environ["SIG"]]
# A thread started before the block keeps SIGINT unblocked, as Polars' pool does: the kernel
# hands it the signal, and Python raises in the main thread unless the handler is held back.
threading.Thread(target=time.sleep, args=(5,), daemon=True).start()
try:
    with _signals_deferred():
        os.kill(os.getpid(), sig)
        for _ in range(200):  # bytecode runs: an undeferred handler would raise here
            time.sleep(0.001)
        print("held", flush=True)
except (KeyboardInterrupt, SystemExit) as exc:
    print("raised after the block", type(exc).__name__, flush=True)
print(signal.getsignal(signal.SIGINT) is signal.default_int_handler, signal.getsignal(signal.SIGTERM) is _term)
"""


@pytest.mark.parametrize("sig", ["int", "term"])
def test_workers_start_with_ctrl_c_and_sigterm_held_back(sig):
    """A Ctrl-C or SIGTERM while the pool starts its workers acts only once they are started:
    raised inside `Process.start` it would leave a worker that the pool does not know, which then
    prints a traceback (EOFError: its work never came) instead of being killed with the others.
    The handlers are the old ones afterwards."""
    done = subprocess.run([sys.executable, "-c", _DEFER], check=False, capture_output=True, text=True,
                          env={**env(), "SIG": sig}, timeout=120)
    expected = {"int": "KeyboardInterrupt", "term": "SystemExit"}[sig]
    assert done.stdout.splitlines() == ["held", f"raised after the block {expected}", "True True"], done.stderr
