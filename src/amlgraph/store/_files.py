"""Crash-safe file I/O for the checkpoint store: atomic writes, streaming hashes, name rules.

Every file is written as a temporary file in its final directory, flushed and renamed over its
final name with ``os.replace``, so a crash leaves either the old file or the new one; with
``AMLGRAPH_FSYNC=1`` the file is fsynced before the rename and its directory after it. Temporary names carry the writer's pid and host so that a
later open can tell an orphan (its writer is dead) from a save in progress.
"""
from __future__ import annotations

import errno
import json
import os
import re
import shutil
import stat
from pathlib import Path
from typing import Any, BinaryIO

import xxhash

from amlgraph._atomic import (  # noqa: F401  (the store's names for them)
    FSYNC_ENV,
    HOST_TAG,
    TMP_PREFIX,
    WriteOnlyFile,
    commit_file,
    fsync_dir,
    fsync_enabled,
    tmp_name,
    writer_is_gone,
)
from amlgraph.errors import CheckpointError

#: Content hash of data files. Measured on 300 MB: xxh3_128 ~8 GB/s, sha256 ~1.3 GB/s,
#: blake2b ~0.5 GB/s (see bench/bench_store.py). The hash guards against corruption, not attack.
HASH_ALGORITHM = "xxh3_128"
NAME_RE = re.compile(r"^[a-z][a-z0-9_]{0,127}$")
ITEM_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,127}$")
_READ_BLOCK = 1 << 20  # hashing a file: a cache-sized buffer reads ~15 % faster than 8 MB


def new_hasher() -> Any:
    """Return a fresh streaming hasher of :data:`HASH_ALGORITHM`."""
    return xxhash.xxh3_128()


def hash_bytes(data: bytes | memoryview) -> str:
    """Return the hex content hash of ``data``."""
    return xxhash.xxh3_128_hexdigest(data)


def hash_file(path: Path) -> str:
    """Stream ``path`` once and return its content hash: a regular file only (see
    :func:`open_regular`; a final symlink is refused), so that a FIFO or device cannot block it."""
    h = new_hasher()
    with open_regular(path) as f:
        buf = bytearray(_READ_BLOCK)
        view = memoryview(buf)
        while n := f.readinto(buf):
            h.update(view[:n])
    return h.hexdigest()


def check_name(name: str, what: str = "checkpoint name") -> str:
    """Validate a step or checkpoint name (``^[a-z][a-z0-9_]*$``).

    Raises:
        CheckpointError: when the name could escape the store or is not a plain identifier.
    """
    if not isinstance(name, str) or not NAME_RE.match(name):
        raise CheckpointError(
            f"invalid {what} {name!r}: expected lowercase letters, digits and '_' "
            "starting with a letter (no path separators, no '..')")
    return name


def check_item(name: str, what: str) -> str:
    """Validate the name of a table, array or value inside a checkpoint."""
    if not isinstance(name, str) or not ITEM_RE.match(name):
        raise CheckpointError(
            f"invalid {what} name {name!r}: expected letters, digits and '_' starting with a letter")
    return name


def no_space_error(exc: OSError, what: str, path: Path) -> CheckpointError:
    """Turn ENOSPC/EDQUOT into an actionable CheckpointError; other errors keep their text."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        error = CheckpointError(
            f"no space left on device while saving {what} in {path}; free space there "
            f"(e.g. amlgraph checkpoints clean {path} --keep-last 2) and rerun: "
            "the previous checkpoint is intact")
    else:
        error = CheckpointError(f"could not write {what} in {path}: {exc}; the previous checkpoint is intact")
    error.resumable = True  # the checkpoints saved before it are kept: a rerun goes on from them
    return error


class HashedWrites(WriteOnlyFile):
    """The write path of a writer that hashes and counts its bytes as they pass: ``write`` hashes,
    hands the bytes to :meth:`_put` and remembers the ``OSError`` of a failed one in ``error``
    (the libraries that write through it re-raise it wrapped in their own exceptions)."""

    def _start(self) -> None:
        self._hash = new_hasher()
        self.size = 0
        self.error: OSError | None = None

    def _put(self, view: memoryview) -> int:
        raise NotImplementedError

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        self._hash.update(view)
        try:
            n = self._put(view)
        except OSError as exc:
            self.error = exc
            raise
        self.size += n
        return n

    def _info(self) -> dict:
        return {"size": self.size, "hash": self._hash.hexdigest()}


class HashingWriter(HashedWrites):
    """A binary file-like writer that hashes and counts bytes as they are written.

    It writes to a temporary file beside ``final``; :meth:`commit` fsyncs it (see ``FSYNC_ENV``)
    and renames it into place. Used for Parquet (Polars writes through ``write``) and ``.npy`` files, so each data
    file is streamed once and never read back to be hashed.
    """

    def __init__(self, final: Path):
        self.final = final
        self.tmp = final.with_name(tmp_name(final.name))
        fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o644)
        self._f: BinaryIO = os.fdopen(fd, "wb", buffering=0)
        self._start()

    def _put(self, view: memoryview) -> int:
        n = 0
        while n < len(view):
            n += _write(self._f, view[n:])
        return n

    def flush(self) -> None:
        self._f.flush()

    def close(self) -> None:
        self._f.close()

    def commit(self) -> dict:
        """fsync (see ``FSYNC_ENV``), close and rename into place; return ``{"size", "hash"}``."""
        commit_file(self._f, self.tmp, self.final)
        return self._info()

    def abort(self) -> None:
        """Close and remove the temporary file (best effort)."""
        try:
            self._f.close()
        finally:
            _unlink_quiet(self.tmp)


def _write(f: BinaryIO, view: memoryview) -> int:
    """One raw write; a seam that tests replace to simulate a full disk."""
    return f.write(view)


def write_atomic(path: Path, data: bytes, *, sync_dir: bool = True) -> dict:
    """Atomically replace ``path`` with ``data``; return ``{"size", "hash"}``."""
    w = HashingWriter(path)
    try:
        w.write(data)
        info = w.commit()
    except BaseException:
        w.abort()
        raise
    if sync_dir:
        fsync_dir(path.parent)
    return info


def json_bytes(obj: Any, *, canonical: bool = False) -> bytes:
    """Serialise ``obj`` to JSON bytes; numpy scalars and paths are converted, NaN refused
    in canonical mode (it has no stable JSON form)."""
    if canonical:
        return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=True,
                          allow_nan=False, default=json_default).encode()
    return json.dumps(obj, indent=1, sort_keys=True, default=json_default).encode()


def json_default(obj: Any) -> Any:
    """JSON fallback for numpy scalars/arrays, paths and sets."""
    import numpy as np

    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray) and obj.dtype != object:
        return obj.tolist()
    if isinstance(obj, os.PathLike):
        return os.fspath(obj)
    if isinstance(obj, (set, frozenset)):
        return sorted(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON-serialisable")


def is_plain_file(path: Path) -> bool:
    """True for a regular file that is not a symlink."""
    try:
        return stat.S_ISREG(path.lstat().st_mode)
    except OSError:
        return False


def is_plain_dir(path: Path) -> bool:
    """True for a directory that is not a symlink."""
    try:
        return stat.S_ISDIR(path.lstat().st_mode)
    except OSError:
        return False


def remove_tree(path: Path) -> None:
    """Remove a file, symlink or directory tree without following symlinks."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if stat.S_ISDIR(mode):
        shutil.rmtree(path, ignore_errors=True)
    else:
        _unlink_quiet(path)


def _unlink_quiet(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


# --- reading what the store did not just write ---------------------------------------------------
#: Bounds of the JSON files the store reads. A manifest is a few KB, ``values.json`` holds small
#: values (a step's parts list, its config); anything larger or deeper is damaged, refused before
#: it is parsed. The depth bound keeps every recursive consumer (json, deepcopy) far from the
#: interpreter's recursion limit; saving refuses what reading would refuse (see ``check_json``).
JSON_MAX_BYTES = 64 << 20
VALUES_MAX_BYTES = 256 << 20
JSON_MAX_DEPTH = 64
_JSON_STRING = re.compile(rb'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)


class NotRegularFileError(OSError):
    """A path the store reads is a FIFO, device, socket or directory: refused before any read."""


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISFIFO, "a FIFO"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"),
                       (stat.S_ISDIR, "a directory"), (stat.S_ISLNK, "a symlink")):
        if test(mode):
            return name
    return "not a plain file"


def open_regular(path: Path, *, follow_symlinks: bool = False) -> BinaryIO:
    """Open ``path`` for reading only if it is a regular file; return the binary file object.

    The path is checked with ``stat`` (``lstat`` unless ``follow_symlinks``), then opened with
    ``O_NONBLOCK`` (opening a FIFO returns at once instead of waiting for a writer) and
    ``O_NOFOLLOW`` (a final symlink is refused unless ``follow_symlinks``), and the open descriptor
    is checked again with ``fstat``: a file swapped for a FIFO or device between the two checks is
    refused as well, so no read can block.

    Raises:
        NotRegularFileError: a FIFO, device, socket or directory. OSError: missing, a symlink
            (ELOOP), unreadable.
    """
    mode = os.stat(path, follow_symlinks=follow_symlinks).st_mode
    if not stat.S_ISREG(mode):
        raise NotRegularFileError(errno.EINVAL, f"not a regular file ({_kind(mode)})", str(path))
    flags = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags if follow_symlinks else flags | os.O_NOFOLLOW)
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise NotRegularFileError(errno.EINVAL, f"not a regular file ({_kind(mode)})", str(path))
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_bounded(path: Path, max_bytes: int, *, follow_symlinks: bool = False) -> bytes:
    """The bytes of the regular file ``path`` (see :func:`open_regular`), at most ``max_bytes``.

    Raises:
        OSError: see :func:`open_regular`. ValueError: the file is larger than ``max_bytes``.
    """
    with open_regular(path, follow_symlinks=follow_symlinks) as f:
        size = os.fstat(f.fileno()).st_size
        # Ask for the file's size (+1 to see growth), not for max_bytes: a read allocates the
        # buffer it is asked for, and 256 MB per values.json counts against an address-space limit.
        data = f.read(size + 1) if size <= max_bytes else b""
    if size > max_bytes or len(data) > max_bytes:
        raise ValueError(f"larger than {max_bytes} bytes ({max(size, len(data))}), refused")
    return data


def json_depth(data: bytes) -> int:
    """Nesting depth of the arrays and objects of JSON text ``data`` (brackets inside strings are
    not counted), measured without parsing it, so that parsing can be refused in advance."""
    import numpy as np

    body = np.frombuffer(_JSON_STRING.sub(b'""', data), dtype=np.uint8)
    opens = (body == 0x5B) | (body == 0x7B)
    where = np.flatnonzero(opens | (body == 0x5D) | (body == 0x7D))
    if where.size == 0:
        return 0
    return int(np.cumsum(np.where(opens[where], 1, -1), dtype=np.int64).max())


def _too_deep(data: bytes, max_depth: int) -> int | None:
    """The nesting depth of JSON text ``data`` when it exceeds ``max_depth``, else None. Text with
    no more brackets than ``max_depth`` (most manifests) needs no scan."""
    if data.count(b"[") + data.count(b"{") <= max_depth:
        return None
    depth = json_depth(data)
    return depth if depth > max_depth else None


def parse_json(data: bytes, *, max_depth: int = JSON_MAX_DEPTH) -> Any:
    """Parse JSON ``data`` nested at most ``max_depth`` deep. Raises ValueError for anything else."""
    depth = _too_deep(data, max_depth)
    if depth is not None:
        raise ValueError(f"nested {depth} levels deep, more than {max_depth}")
    try:
        return json.loads(data)
    except RecursionError as exc:  # not reached with the depth bound; kept as a guard
        raise ValueError("nested too deeply") from exc


def read_json_file(path: Path, *, max_bytes: int = JSON_MAX_BYTES, max_depth: int = JSON_MAX_DEPTH,
                   follow_symlinks: bool = False) -> Any:
    """The one reader of every JSON file of a store (manifests, values, the marker, the lock holder,
    the hash cache): a regular file only (:func:`open_regular`: never a FIFO or device, never a
    final symlink unless ``follow_symlinks``), at most ``max_bytes``, parsed at most ``max_depth``
    deep. The caller then checks the types of every field it uses.

    Raises:
        OSError: missing, a symlink, not a regular file, unreadable. ValueError: too large, too
            deeply nested, not UTF-8, not JSON.
    """
    return parse_json(read_bounded(path, max_bytes, follow_symlinks=follow_symlinks), max_depth=max_depth)


def check_json(data: bytes, what: str, *, max_bytes: int = JSON_MAX_BYTES) -> bytes:
    """Refuse to save JSON that :func:`read_json_file` would refuse to read back.

    Raises:
        CheckpointError: ``data`` is larger than ``max_bytes`` or nested deeper than the bound.
    """
    if len(data) > max_bytes:
        raise CheckpointError(f"{what} is {len(data)} bytes of JSON, more than {max_bytes}; "
                              "store large data as tables or arrays")
    depth = _too_deep(data, JSON_MAX_DEPTH)
    if depth is not None:
        raise CheckpointError(f"{what} is nested {depth} levels deep, more than {JSON_MAX_DEPTH}")
    return data
