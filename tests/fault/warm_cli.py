"""`amlgraph` commands in real processes forked from a warm parent that has already imported torch.

A PyG export spends most of a fresh process on ``import torch`` (seconds on a loaded machine),
and the export fault tests start dozens of them (the hostile-store tests dozens of other
commands). ``WarmLauncher`` starts one server process that imports torch and the `amlgraph`
command once (and nothing that starts threads: Polars, whose allocator and pools start threads,
is imported by each child itself), then forks one child per command. Each child is a real process running the same ``amlgraph.cli.main`` as
``python -m amlgraph``, with its own stdout and stderr files; the caller stops and kills it with
real signals. ``WarmProcess`` offers the part of ``subprocess.Popen`` the fault harness uses.

The server keeps a finished child as a zombie (``waitid(..., WNOWAIT)``) until the caller has
seen it end, so a signal sent by the caller can never reach another process that reused the pid.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

# The server: reads one JSON command per line on stdin, answers on stdout.
_SERVER = r"""
import atexit, importlib, json, os, sys, traceback
for name in sys.argv[1:]:  # e.g. torch: imported once, before any fork
    importlib.import_module(name)
import amlgraph.cli
proto_in = os.fdopen(os.dup(0), "r")
proto_out = os.fdopen(os.dup(1), "w")
null = os.open(os.devnull, os.O_RDWR)
os.dup2(null, 0)
os.dup2(null, 1)
def say(line):
    proto_out.write(line + "\n")
    proto_out.flush()
say("ready")
for line in proto_in:
    job = json.loads(line)
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            proto_in.close(); proto_out.close()
            out = os.open(job["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            err = os.open(job["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(out, 1); os.dup2(err, 2); os.close(out); os.close(err)
            sys.stdout = os.fdopen(1, "w", buffering=1, encoding=sys.stdout.encoding,
                                   errors=sys.stdout.errors)
            sys.stderr = os.fdopen(2, "w", buffering=1, encoding=sys.stderr.encoding,
                                   errors=sys.stderr.errors)
            if job["fsize"] is not None:  # a file-size limit (EFBIG; Python ignores SIGXFSZ)
                import resource
                resource.setrlimit(resource.RLIMIT_FSIZE, (job["fsize"], job["fsize"]))
            os.environ.update(job["env"])
            for key in job["unset"]:
                os.environ.pop(key, None)
            sys.argv = ["amlgraph", *job["argv"]]
            code = amlgraph.cli.main()  # as `python -m amlgraph` calls it: argv from sys.argv
        except SystemExit as exc:  # argparse: as `python -m amlgraph` exits
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
            if isinstance(exc.code, str):
                print(exc.code, file=sys.stderr)
        except BaseException:
            traceback.print_exc()
        finally:
            try:  # what the interpreter does at a normal exit, then no return into the loop
                atexit._run_exitfuncs()
                sys.stdout.flush(); sys.stderr.flush()
            finally:
                os._exit(code or 0)
    say(f"pid {pid}")
    os.waitid(os.P_PID, pid, os.WEXITED | os.WNOWAIT)  # ended; still a zombie: the pid stays ours
    say("ended")
    assert proto_in.readline().strip() == "reap"
    _, status = os.waitpid(pid, 0)
    say(f"status {os.waitstatus_to_exitcode(status)}")
"""


class WarmLauncher:
    """One warm server per test module (see the module docstring); ``start`` forks a child."""

    def __init__(self, env: dict[str, str], preload: tuple[str, ...] = ("torch",)):
        """``env``: the server's environment; ``preload``: modules it imports besides the
        `amlgraph` command (never one that starts threads, such as polars)."""
        self._env = env
        self._server = subprocess.Popen([sys.executable, "-c", _SERVER, *preload],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                        env=env)
        self._dir = Path(tempfile.mkdtemp(prefix="warm-cli-"))
        self._count = 0
        self._busy = False
        ready = self._server.stdout.readline().strip()
        if ready != "ready":
            self.close()
            raise RuntimeError(f"the warm launcher did not start (said {ready!r})")

    def start(self, argv: list[str], env: dict[str, str], *,
              fsize: int | None = None) -> "WarmProcess":
        """Fork a child running ``amlgraph argv`` under ``env`` (its whole environment) and, when
        given, a file-size limit of ``fsize`` bytes (``RLIMIT_FSIZE``)."""
        assert not self._busy, "one child at a time"
        self._count += 1
        stdout, stderr = self._dir / f"{self._count}.out", self._dir / f"{self._count}.err"
        job = {"argv": argv, "stdout": str(stdout), "stderr": str(stderr),
               "env": {k: v for k, v in env.items() if self._env.get(k) != v},
               "unset": [k for k in self._env if k not in env], "fsize": fsize}
        self._send(json.dumps(job))
        said = self._server.stdout.readline().split()
        assert said[:1] == ["pid"], f"the warm launcher said {said!r}"
        self._busy = True
        return WarmProcess(self, int(said[1]), stdout, stderr)

    def _send(self, line: str) -> None:
        self._server.stdin.write(line + "\n")
        self._server.stdin.flush()

    def _readline(self) -> str:
        return self._server.stdout.readline().strip()

    def close(self) -> None:
        if self._server.poll() is None:
            self._server.stdin.close()
            try:
                self._server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._server.kill()
                self._server.wait()
        for p in self._dir.iterdir():
            p.unlink()
        self._dir.rmdir()


def run(launcher: WarmLauncher, argv: list[str], env: dict[str, str], *,
        timeout: float) -> subprocess.CompletedProcess:
    """``subprocess.run(..., capture_output=True, text=True, timeout=timeout)`` of ``amlgraph
    argv`` through ``launcher``: on a timeout the child is killed and TimeoutExpired raised."""
    proc = launcher.start(argv, env)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise
    return subprocess.CompletedProcess(["amlgraph", *argv], proc.returncode, out, err)


class WarmProcess:
    """A forked child: ``pid``, ``poll``, ``wait``, ``send_signal``, ``kill``, ``communicate``."""

    def __init__(self, launcher: WarmLauncher, pid: int, stdout: Path, stderr: Path):
        self._launcher, self.pid = launcher, pid
        self._stdout, self._stderr = stdout, stderr
        self.returncode: int | None = None
        self._ended = threading.Event()
        self._watch = threading.Thread(target=self._await_end, daemon=True)
        self._watch.start()

    def _await_end(self) -> None:
        if self._launcher._readline() == "ended":
            self._ended.set()

    def poll(self) -> int | None:
        if self.returncode is None and self._ended.is_set():
            self._launcher._send("reap")
            said = self._launcher._readline().split()
            assert said[:1] == ["status"], f"the warm launcher said {said!r}"
            self.returncode = int(said[1])
            self._launcher._busy = False
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        if not self._ended.wait(timeout):
            raise subprocess.TimeoutExpired(f"amlgraph (pid {self.pid})", timeout)
        return self.poll()

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:  # not reaped: the pid is still this child's (at worst a zombie)
            os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def communicate(self, timeout: float | None = None) -> tuple[str, str]:
        self.wait(timeout)
        return self._stdout.read_text(), self._stderr.read_text()

