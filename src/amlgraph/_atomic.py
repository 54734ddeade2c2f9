"""The one atomic file writer: write beside the final name, then rename into place.

Every file amlgraph writes for others to read (checkpoint files, exports, the quarantine CSV,
generated data sets) goes through here: a temporary name in the same directory
(``.tmp-<pid>-<host>-<random>-<name>``, so a crashed writer's leftovers are recognised and
removed by the next writer once its process is gone), an optional fsync (``AMLGRAPH_FSYNC=1``),
and ``os.replace``: a reader sees the old file or the new one, never a part.
"""
from __future__ import annotations

import contextlib
import os
import re
import secrets
import socket
import time
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

TMP_PREFIX = ".tmp-"
_WRITER_RE = re.compile(r"^(?:\.tmp-|gen-[0-9a-f]+-)(\d+)-([0-9a-f]{8})-")
#: This host, in temporary and generation names (a shared file system sees several).
HOST_TAG = format(zlib.crc32(socket.gethostname().encode()), "08x")


def tmp_name(final: str) -> str:
    """Temporary name for ``final``: ``.tmp-<pid>-<host>-<random>-<final>``."""
    return f"{TMP_PREFIX}{os.getpid()}-{HOST_TAG}-{secrets.token_hex(4)}-{final}"


def writer_is_gone(entry: str, path: Path, *, foreign_age_s: float = 86400.0) -> bool:
    """Whether the writer named in a temp or generation name (``...<pid>-<host>-...``) is dead.

    Entries of this host whose pid is alive are kept (a save may be in progress). Entries of
    another host (a shared file system) are considered orphaned after ``foreign_age_s``.
    """
    m = _WRITER_RE.match(entry)
    if m is None:
        return True
    pid, host = int(m.group(1)), m.group(2)
    if host != HOST_TAG:
        try:
            return time.time() - path.lstat().st_mtime > foreign_age_s
        except OSError:
            return False
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


#: Environment switch for power-loss durability: ``AMLGRAPH_FSYNC=1`` fsyncs every file before its
#: rename and every directory after it. Without it writes are still atomic (a process killed at any
#: point leaves the old checkpoint or the new one, never a mix); after a power loss a checkpoint may
#: be torn, which the content hashes verified on load detect, so the step is recomputed, never
#: trusted. It is read at each write, so worker processes follow their own environment.
FSYNC_ENV = "AMLGRAPH_FSYNC"


def fsync_enabled() -> bool:
    """Whether writes are fsynced (``AMLGRAPH_FSYNC=1``)."""
    return os.environ.get(FSYNC_ENV, "0").strip() not in ("", "0", "false", "no")


def fsync_dir(path: Path) -> None:
    """fsync a directory so that renames and creations inside it are durable (see ``FSYNC_ENV``)."""
    if not fsync_enabled():
        return
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)




class WriteOnlyFile:
    """The file-object surface of a write-only stream over ``self._f`` that counts ``self.size``
    bytes (what Polars, NumPy and torch ask of a file they write into)."""

    size = 0
    _f: BinaryIO

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False

    def seekable(self) -> bool:
        return False

    def tell(self) -> int:
        return self.size

    @property
    def closed(self) -> bool:
        return self._f.closed


class AtomicFile:
    """A binary file at a temporary name beside ``final``: :meth:`commit` renames it into place,
    :meth:`abort` removes it; ``final`` is untouched until the commit."""

    def __init__(self, final: Path):
        self.final = Path(final)
        self.tmp = self.final.with_name(tmp_name(self.final.name))
        fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        self.file: BinaryIO = os.fdopen(fd, "wb")

    def commit(self) -> None:
        commit_file(self.file, self.tmp, self.final)

    def abort(self) -> None:
        with contextlib.suppress(OSError):
            self.file.close()
        with contextlib.suppress(OSError):
            os.unlink(self.tmp)


@contextlib.contextmanager
def atomic_file(final: Path) -> Iterator[BinaryIO]:
    """Write ``final`` atomically: yield a binary file at a temporary name beside it; when the
    block ends, fsync (``AMLGRAPH_FSYNC``), close and rename it into place; when it fails, remove
    the temporary file and leave ``final`` as it was."""
    out = AtomicFile(final)
    try:
        yield out.file
        out.commit()
    except BaseException:
        out.abort()
        raise


def commit_file(f: BinaryIO, tmp: Path, final: Path) -> None:
    """Flush, fsync (``AMLGRAPH_FSYNC``), close ``f`` (open on ``tmp``) and rename it to ``final``."""
    f.flush()
    if fsync_enabled():
        os.fsync(f.fileno())
    f.close()
    os.replace(tmp, final)


def replace_into(tmp: Path, final: Path) -> None:
    """Rename a complete file written at ``tmp`` (fsynced first with ``AMLGRAPH_FSYNC``) to ``final``."""
    if fsync_enabled():
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    os.replace(tmp, final)
