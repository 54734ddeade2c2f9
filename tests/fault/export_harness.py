"""Fault harness for `amlgraph export`: run the real command in a subprocess, SIGKILL it on purpose,
and tell what the output directory then holds.

A kill lands by a trigger:

- ``after(seconds)``: at a moment measured from the start of the process;
- ``while_writing(name)``: as soon as a new file whose name contains ``name`` (an export file such
  as ``edges.parquet``) appears anywhere beside or inside the target, other than at its final
  place: the writer is frozen with SIGSTOP, the state is confirmed on disk, then SIGKILLed;
- ``on_commit(name)``: as soon as the target's ``name`` is a new file (the new export has
  become visible), frozen and killed the same way: this lands between the switch and the removal
  of the old export.

The state of a target is read by content: ``state(out, refs)`` compares every entry of the target
with fresh exports of the candidate graphs (``graph.pt`` by its zip members, less the random
``serialization_id`` and the top folder that torch names after the file it writes). Nothing is mocked: real processes, real
signals, real files.
"""
from __future__ import annotations

import hashlib
import os
import resource
import signal
import subprocess
import time
import zipfile
from dataclasses import dataclass
from pathlib import Path

from harness import amlgraph, env

from amlgraph.export._command import FILES  # noqa: E402  (the files of each format, one list)


def export_command(ckpt: Path, fmt: str, out: Path) -> list[str]:
    return amlgraph("export", str(ckpt), "--format", fmt, "--out", str(out))


def save_graph(graph, ckpt: Path) -> Path:
    """Save ``graph`` as the ``graph_created`` checkpoint of a new directory ``ckpt``."""
    from amlgraph.store import CheckpointStore

    tables, arrays, values = graph.to_payload()
    CheckpointStore(ckpt).save("graph_created", step="graph_created", key="k", tables=tables,
                               arrays=arrays, values=values)
    return ckpt


# --- what a directory holds -----------------------------------------------------------------------
def file_digest(path: Path) -> str:
    """Content digest; for a torch zip, of its members less the random serialization id (and less
    the top folder, which torch names after the file it writes)."""
    h = hashlib.sha256()
    if path.name.endswith(".pt") and zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as z:
            for info in sorted(z.infolist(), key=lambda i: i.filename):
                member = info.filename.partition("/")[2]  # less the archive's own name
                if member == ".data/serialization_id":
                    continue
                h.update(member.encode() + b"\0" + z.read(info) + b"\0")
        return "zip:" + h.hexdigest()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


def contents(directory: Path) -> dict[str, str]:
    """Every entry of ``directory`` (hidden ones included) -> its digest ("<dir>" for a directory)."""
    out = {}
    for entry in sorted(os.listdir(directory)):
        p = directory / entry
        out[entry] = "<dir>" if p.is_dir() else file_digest(p)
    return out


def state(out: Path, refs: dict[str, dict[str, str]]) -> str:
    """``"absent"``, ``"empty"``, the name of the reference ``out`` equals entry for entry, or a
    description of what it holds instead (a mix, a half set, stray files)."""
    if not out.exists():
        return "absent"
    got = contents(out)
    if not got:
        return "empty"
    for name, ref in refs.items():
        if got == ref:
            return name
    which = {}
    for entry, digest in got.items():
        owners = [n for n, ref in refs.items() if ref.get(entry) == digest]
        which[entry] = "+".join(owners) or "?"
    return "MIXED " + ", ".join(f"{e}: {w}" for e, w in which.items())


def beside(out: Path) -> list[str]:
    """Entries of ``out``'s parent other than ``out``: what an export left beside its target."""
    if not out.parent.is_dir():
        return []
    return sorted(e for e in os.listdir(out.parent) if e != out.name)


# --- one attempt ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Trigger:
    kind: str              # "after", "writing", "commit" or "none"
    seconds: float = 0.0
    name: str = ""

    def __str__(self) -> str:
        if self.kind == "after":
            return f"after {self.seconds:.2f}s"
        if self.kind == "writing":
            return f"while writing {self.name}"
        if self.kind == "commit":
            return f"once {self.name} is switched in"
        return "no kill"


def after(seconds: float) -> Trigger:
    return Trigger("after", seconds=seconds)


def while_writing(name: str) -> Trigger:
    return Trigger("writing", name=name)


def on_commit(name: str) -> Trigger:
    return Trigger("commit", name=name)


NO_KILL = Trigger("none")


@dataclass
class ExportAttempt:
    trigger: Trigger
    killed: bool
    returncode: int
    confirmed: bool        # the file of the trigger was confirmed on disk while the writer was frozen
    elapsed: float
    stdout: str
    stderr: str


def _files_under(root: Path, depth: int = 2):
    """(path, inode) of the files under ``root`` down to ``depth`` levels (racing writers: best effort)."""
    try:
        entries = list(os.scandir(root))
    except OSError:
        return
    for e in entries:
        try:
            if e.is_dir(follow_symlinks=False):
                if depth > 1:
                    yield from _files_under(Path(e.path), depth - 1)
            else:
                yield e.path, e.inode()
        except OSError:
            continue


def _new_file(out: Path, name: str, before: set, *, final: bool) -> str | None:
    target = str(out / name)
    for path, ino in _files_under(out.parent):
        if name not in os.path.basename(path) or (path, ino) in before:
            continue
        if final == (path == target):
            return path
    return None


def export_attempt(ckpt: Path, fmt: str, out: Path, trigger: Trigger = NO_KILL, *,
                   timeout: float = 300.0, preexec_fn=None, launcher=None,
                   fsize: int | None = None) -> ExportAttempt:
    """Run `amlgraph export` once; kill it when ``trigger`` fires (unless it ends first).

    With a ``launcher`` (``warm_cli.WarmLauncher``) the process is forked from a parent that has
    imported torch already, instead of starting ``python -m amlgraph`` afresh. ``fsize``: a
    file-size limit (bytes) of the process."""
    before = set(_files_under(out.parent)) if trigger.kind in ("writing", "commit") else set()
    start = time.perf_counter()
    command = export_command(ckpt, fmt, out)
    if launcher is not None and preexec_fn is None:
        assert command[1:3] == ["-m", "amlgraph"], command
        proc = launcher.start(command[3:], env(), fsize=fsize)
    else:
        proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=env(), preexec_fn=_with_fsize(preexec_fn, fsize))
    killed = confirmed = False
    deadline = time.monotonic() + timeout
    try:
        if trigger.kind == "after":
            try:
                proc.wait(timeout=trigger.seconds)
            except subprocess.TimeoutExpired:
                killed = _kill(proc)
        elif trigger.kind in ("writing", "commit"):
            final = trigger.kind == "commit"
            while proc.poll() is None and time.monotonic() < deadline:
                if _new_file(out, trigger.name, before, final=final):
                    proc.send_signal(signal.SIGSTOP)
                    confirmed = _new_file(out, trigger.name, before, final=final) is not None
                    killed = _kill(proc)
                    break
                time.sleep(0.0005)
        stdout, stderr = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    return ExportAttempt(trigger, killed, proc.returncode, confirmed and killed,
                         time.perf_counter() - start, stdout, stderr)


def _with_fsize(preexec_fn, fsize: int | None):
    """``preexec_fn``, then a file-size limit of ``fsize`` bytes when given."""
    if fsize is None:
        return preexec_fn

    def apply() -> None:
        if preexec_fn is not None:
            preexec_fn()
        resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    return apply


def _kill(proc: subprocess.Popen) -> bool:
    if proc.poll() is not None:
        return False
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    return True


def export_ok(ckpt: Path, fmt: str, out: Path, *, launcher=None) -> ExportAttempt:
    """An export that must succeed."""
    a = export_attempt(ckpt, fmt, out, launcher=launcher)
    assert a.returncode == 0, f"export {fmt} of {ckpt} into {out} failed ({a.returncode}): {a.stderr}"
    return a


def reference_contents(ckpt: Path, fmt: str, out: Path) -> dict[str, str]:
    """A fresh export of ``ckpt`` into the new directory ``out`` (in this process), read back."""
    from amlgraph.export import export_graph

    try:
        from amlgraph.runner import load_graph
    except ImportError:  # before load_graph moved to the runner
        from amlgraph.runner import load_graph

    export_graph(load_graph(ckpt), fmt, out)
    return contents(out)
