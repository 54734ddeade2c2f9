"""Run locks for checkpoint stores.

:class:`FileLock` is an OS advisory lock (``fcntl.flock``) on ``<root>/.lock``: the kernel releases
it when its holder dies, so a lock left by a killed run never blocks. Beside it ``.lock.json``
records pid, host and start time, only to write a useful message. :class:`ThreadLock` gives the
in-memory store the same semantics. Both are re-entrant for the thread that holds them.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import fcntl
import os
import socket
import stat
import threading
import time
from pathlib import Path
from typing import Callable, Iterator

from amlgraph.errors import CheckpointError, LockedError
from amlgraph.store._files import json_bytes, read_json_file, write_atomic

_POLL_S = 0.05
_INFO_MAX_BYTES = 64 << 10


def _now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


def _holder_text(info: dict | None) -> str:
    if not info:
        return "locked by another process"

    def field(name: str) -> str:
        value = info.get(name, "?")
        return str(value)[:80] if isinstance(value, (str, int)) else "?"

    return f"locked by pid {field('pid')} on host {field('host')} since {field('since')}"


class _Reentrant:
    """Thread ownership and nesting count shared by both lock kinds."""

    def __init__(self) -> None:
        self._guard = threading.Lock()
        self._owner: int | None = None
        self._depth = 0

    def _mine(self) -> bool:
        return self._owner == threading.get_ident()

    @contextlib.contextmanager
    def _nested(self) -> Iterator[None]:
        """A nested hold by the thread that already owns the lock: only the depth changes."""
        self._depth += 1
        try:
            yield
        finally:
            self._depth -= 1

    def _acquire(self, *, wait: bool, timeout: float | None, poll_s: float) -> None:
        """Take the thread guard and the lock (``try_acquire``), polling every ``poll_s`` while
        ``wait``; then this thread owns it at depth 1.

        Raises:
            LockedError: held elsewhere and ``wait`` is False, or ``timeout`` expired.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            if self._guard.acquire(blocking=False):
                if self.try_acquire():
                    break
                self._guard.release()
            if not wait or (deadline is not None and time.monotonic() >= deadline):
                raise LockedError(self.message(waited=wait))
            time.sleep(poll_s)
        self._owner, self._depth = threading.get_ident(), 1

    def _release(self) -> None:
        """Undo :meth:`_acquire`: no owner, the lock released, the thread guard freed."""
        self._owner, self._depth = None, 0
        self.release_os()
        self._guard.release()

    def try_acquire(self) -> bool:
        raise NotImplementedError

    def release_os(self) -> None:
        raise NotImplementedError

    def message(self, *, waited: bool = False) -> str:
        raise NotImplementedError


class FileLock(_Reentrant):
    """``fcntl.flock`` on ``<root>/.lock`` with holder details in ``<root>/.lock.json``.

    Args:
        root: the store directory.
        on_acquire: called (holding the lock) each time it is first taken, e.g. to clean orphans.
    """

    def __init__(self, root: Path, on_acquire: Callable[[], None] | None = None):
        super().__init__()
        self.root = root
        self.path = root / ".lock"
        self.info_path = root / ".lock.json"
        self._fd: int | None = None
        self._on_acquire = on_acquire

    def try_acquire(self) -> bool:
        """Take the OS lock without waiting; True on success."""
        try:  # O_NONBLOCK: a FIFO in place of the lock file cannot block the open
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_NONBLOCK, 0o644)
        except OSError as exc:
            raise CheckpointError(f"cannot lock checkpoint directory {self.root}: {exc.strerror or exc}; "
                                  "a run needs a writable --checkpoint-dir") from exc
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise CheckpointError(f"cannot lock checkpoint directory {self.root}: {self.path} is not a regular "
                                  "file; remove it and rerun")
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd
        return True

    def release_os(self) -> None:
        if self._fd is not None:
            with contextlib.suppress(OSError):
                os.unlink(self.info_path)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    @contextlib.contextmanager
    def hold(self, *, wait: bool = False, timeout: float | None = None) -> Iterator[None]:
        """Hold the lock for the ``with`` block.

        Raises:
            LockedError: held elsewhere and ``wait`` is False, or ``timeout`` expired.
        """
        if self._mine():
            with self._nested():
                yield
            return
        self._acquire(wait=wait, timeout=timeout, poll_s=_POLL_S)
        try:
            with contextlib.suppress(OSError):
                write_atomic(self.info_path, json_bytes(
                    {"pid": os.getpid(), "host": socket.gethostname(), "since": _now_iso()}))
            if self._on_acquire is not None:
                self._on_acquire()
            yield
        finally:
            self._release()

    def message(self, *, waited: bool = False) -> str:
        try:
            info = read_json_file(self.info_path, max_bytes=_INFO_MAX_BYTES)
        except (OSError, ValueError):
            info = None
        if not isinstance(info, dict):
            info = None
        tail = "timed out waiting; try again later" if waited else "wait for it or rerun with --wait"
        return f"checkpoint directory {self.root} is {_holder_text(info)}; {tail}"


class ThreadLock(_Reentrant):
    """The in-memory store's lock: same semantics as :class:`FileLock` within one process."""

    def __init__(self, label: str = "memory store"):
        super().__init__()
        self.label = label
        self._info: dict | None = None

    @contextlib.contextmanager
    def hold(self, *, wait: bool = False, timeout: float | None = None) -> Iterator[None]:
        if self._mine():
            with self._nested():
                yield
            return
        if wait:
            ok = self._guard.acquire(timeout=-1 if timeout is None else timeout)
        else:
            ok = self._guard.acquire(blocking=False)
        if not ok:
            tail = "timed out waiting; try again later" if wait else "wait for it or rerun with --wait"
            raise LockedError(f"{self.label} is {_holder_text(self._info)}; {tail}")
        self._owner, self._depth = threading.get_ident(), 1
        self._info = {"pid": os.getpid(), "host": socket.gethostname(),
                      "since": _now_iso() + f" (thread {threading.current_thread().name})"}
        try:
            yield
        finally:
            self._owner, self._depth, self._info = None, 0, None
            self._guard.release()
