"""Fault harness: run the real `amlgraph run` in a subprocess and SIGKILL it on purpose.

An attempt is one `amlgraph run`, killed by a trigger:

- ``after(seconds)``: at a moment measured from the start of the process;
- ``on_line(pattern, delay)``: ``delay`` seconds after a line of the run log matches (e.g. a step
  banner), to land inside a given step;
- ``on_save(name)``: while checkpoint ``name`` is being written: its new generation directory exists
  but its manifest does not. The process is frozen with SIGSTOP, the state is confirmed on disk,
  then it is SIGKILLed, so the kill provably lands between the data files and the commit.

``run_until_done`` chains attempts on one checkpoint directory (each resumes the previous one),
checks after every kill that the store holds only complete checkpoints, then lets the last
attempt finish. Nothing is mocked: real processes, real signals, real files.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

#: Small chunks: 13 row chunks and 6 account chunks on the tiny preset, so ~70 checkpoint writes.
# --keep-parsed: the reader batches stay after the run, so that damage to them can be tested too
# (by default they are deleted once data_loaded is saved; tests/runner/test_pipeline.py).
RUN_OPTIONS = ("--chunk-size", "200", "--chunk-rows", "1000", "--keep-parsed")
_STEP_RE = re.compile(r"^STEP (\d)/[78]: .* \((\w+)\)$")  # 8 with --patterns


def env() -> dict[str, str]:
    """The child's environment: unbuffered log lines, polite thread counts, no debug tracebacks."""
    out = {**os.environ, "PYTHONUNBUFFERED": "1", "POLARS_MAX_THREADS": "1", "OMP_NUM_THREADS": "1",
           "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    out.pop("AMLGRAPH_DEBUG", None)
    return out


def amlgraph(*args: str) -> list[str]:
    return [sys.executable, "-m", "amlgraph", *args]


def run_command(data: Path, ckpt: Path, *extra: str) -> list[str]:
    return amlgraph("run", str(data), "--checkpoint-dir", str(ckpt), *RUN_OPTIONS, *extra)


# --- triggers -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Trigger:
    kind: str                      # "after", "line", "save" or "none"
    seconds: float = 0.0
    pattern: str = ""
    name: str = ""

    def __str__(self) -> str:
        if self.kind == "after":
            return f"after {self.seconds:.2f}s"
        if self.kind == "line":
            return f"{self.seconds:.2f}s after /{self.pattern}/"
        if self.kind == "save":
            return f"while saving {self.name}"
        return "no kill"


def after(seconds: float) -> Trigger:
    return Trigger("after", seconds=seconds)


def on_line(pattern: str, delay: float = 0.0) -> Trigger:
    return Trigger("line", seconds=delay, pattern=pattern)


def on_save(name: str) -> Trigger:
    return Trigger("save", name=name)


NO_KILL = Trigger("none")


# --- one attempt ----------------------------------------------------------------------------------
@dataclass
class Attempt:
    trigger: Trigger
    killed: bool
    returncode: int
    step: str | None               # the step whose banner was the last one printed
    mid_save: bool                 # the kill was confirmed between a save's data files and its manifest
    leftovers: list[str]           # orphans on disk right after the kill (before any reopen)
    elapsed: float
    stdout: str
    stderr: str


def _saving(cdir: Path) -> bool:
    """A generation directory exists that the manifest does not (yet) name."""
    try:
        entries = os.listdir(cdir)
    except OSError:
        return False
    gens = [e for e in entries if e.startswith("gen-")]
    if not gens:
        return False
    try:
        live = json.loads((cdir / "manifest.json").read_bytes()).get("generation")
    except (OSError, ValueError):
        live = None
    return any(g != live for g in gens)


def attempt(data: Path, ckpt: Path, trigger: Trigger, *, extra: tuple[str, ...] = (),
            timeout: float = 300.0) -> Attempt:
    """Run once; kill when ``trigger`` fires (unless the run ends first)."""
    start = time.perf_counter()
    proc = subprocess.Popen(run_command(data, ckpt, *extra), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env())
    lines: list[str] = []
    state = {"step": None}
    matched = threading.Event()
    pattern = re.compile(trigger.pattern) if trigger.kind == "line" else None

    def read() -> None:
        for raw in proc.stdout:
            line = raw.rstrip("\n")
            lines.append(line)
            m = _STEP_RE.match(line)
            if m:
                state["step"] = m.group(2)
            if pattern is not None and pattern.search(line):
                matched.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    killed = mid_save = False
    deadline = time.monotonic() + timeout
    try:
        if trigger.kind == "after":
            try:
                proc.wait(timeout=trigger.seconds)
            except subprocess.TimeoutExpired:
                killed = _kill(proc)
        elif trigger.kind == "line":
            while proc.poll() is None and not matched.wait(0.01):
                if time.monotonic() > deadline:
                    break
            if matched.is_set():
                try:
                    proc.wait(timeout=trigger.seconds)
                except subprocess.TimeoutExpired:
                    killed = _kill(proc)
        elif trigger.kind == "save":
            cdir = ckpt / trigger.name
            while proc.poll() is None and time.monotonic() < deadline:
                if _saving(cdir):
                    proc.send_signal(signal.SIGSTOP)
                    mid_save = _saving(cdir)  # confirmed while the writer is frozen
                    killed = _kill(proc)
                    break
                if (cdir / "manifest.json").exists():  # the whole save slipped between two polls
                    killed = _kill(proc)
                    break
                time.sleep(0.0005)
        proc.wait(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    reader.join(5)
    stderr = proc.stderr.read()
    proc.stderr.close()
    return Attempt(trigger, killed, proc.returncode, state["step"], mid_save, leftovers(ckpt),
                   time.perf_counter() - start, "\n".join(lines), stderr)


def _kill(proc: subprocess.Popen) -> bool:
    if proc.poll() is not None:
        return False
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return True


# --- what is on disk ------------------------------------------------------------------------------
def leftovers(root: Path) -> list[str]:
    """Temp files and generations that no manifest names (what a dead writer left)."""
    out: list[str] = []
    if not root.is_dir():
        return out
    for cdir in sorted(root.iterdir()):
        if cdir.name.startswith(".tmp-"):
            out.append(cdir.name)
        if cdir.is_symlink() or not cdir.is_dir():
            continue
        try:
            live = json.loads((cdir / "manifest.json").read_bytes()).get("generation")
        except (OSError, ValueError):
            live = None
        for entry in sorted(cdir.iterdir()):
            if entry.name.startswith(".tmp-") or (entry.name.startswith("gen-") and entry.name != live):
                out.append(f"{cdir.name}/{entry.name}")
            elif entry.name == live:
                out += [f"{cdir.name}/{entry.name}/{i.name}" for i in entry.iterdir() if i.name.startswith(".tmp-")]
    return out


def verify_store(root: Path) -> list:
    """Reopen the store (which removes a dead writer's orphans) and verify every content hash."""
    from amlgraph.store import CheckpointStore

    return CheckpointStore(root).verify(full=True)


def final_digest(root: Path) -> dict[str, str]:
    """graph_digest of the finished run's graph, read back from its fully verified checkpoint."""
    from amlgraph.runner._graph import graph_of
    from amlgraph.store import CheckpointStore
    from pipeline_helpers import graph_digest

    store = CheckpointStore(root, verify="full")
    ckpt = store.load("graph_created")
    assert ckpt is not None, f"no valid graph_created in {root}"
    return graph_digest(graph_of(store, ckpt))  # every checkpoint the graph links to, verified too


# --- chains of attempts ---------------------------------------------------------------------------
@dataclass
class Chain:
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def kills(self) -> list[Attempt]:
        return [a for a in self.attempts if a.killed]

    @property
    def total_s(self) -> float:
        return sum(a.elapsed for a in self.attempts)


def run_until_done(data: Path, ckpt: Path, triggers, *, max_attempts: int = 100,
                   extra: tuple[str, ...] = ()) -> Chain:
    """Attempt with each trigger in turn (an iterable, may be lazy), then once without a kill.

    After every kill the store must hold only complete checkpoints (full verification after the
    reopen cleaned the orphans). Raises AssertionError otherwise, or when an attempt fails.
    """
    chain = Chain()
    for trigger in triggers:
        a = attempt(data, ckpt, trigger, extra=extra)
        chain.attempts.append(a)
        if not a.killed:
            assert a.returncode == 0, f"attempt {trigger} failed ({a.returncode}): {a.stderr}"
            return chain
        problems = verify_store(ckpt)
        assert problems == [], f"after a kill {trigger} in {a.step}: damaged checkpoints {problems}"
        assert leftovers(ckpt) == [], "reopening the store did not remove the dead writer's orphans"
        if len(chain.attempts) >= max_attempts:
            break
    a = attempt(data, ckpt, NO_KILL, extra=extra)
    chain.attempts.append(a)
    assert a.returncode == 0, f"the final attempt failed ({a.returncode}): {a.stderr}"
    return chain


def clean_run(data: Path, ckpt: Path, *, extra: tuple[str, ...] = ()) -> tuple[Attempt, dict[str, float]]:
    """One uninterrupted run; returns it and the offset (s) at which each step's banner appeared."""
    if ckpt.exists():
        shutil.rmtree(ckpt)
    start = time.perf_counter()
    proc = subprocess.Popen(run_command(data, ckpt, *extra), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env())
    offsets: dict[str, float] = {}
    lines = []
    for raw in proc.stdout:
        lines.append(raw.rstrip("\n"))
        m = _STEP_RE.match(lines[-1])
        if m:
            offsets[m.group(2)] = time.perf_counter() - start
    proc.wait()
    stderr = proc.stderr.read()
    proc.stderr.close()
    a = Attempt(NO_KILL, False, proc.returncode, None, False, [], time.perf_counter() - start,
                "\n".join(lines), stderr)
    assert a.returncode == 0, stderr
    offsets["end"] = a.elapsed
    return a, offsets
