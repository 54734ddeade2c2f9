"""A local, content-addressed copy of the object store's data files, per machine.

Generation files are immutable and their manifest records each one's size and content hash, so a
copy named ``<hash>-<size>-<file>`` can never be stale. A process that reads a table or an array of an
object store fetches it here once (hashing it as it streams in: a damaged object is refused
before anything reads it) and then reads the local file: Parquet scans keep their predicate
pushdown, arrays stay memory-mapped. A process that writes a data file keeps a copy as it
uploads (:class:`TeeWriter`), so the steps that read what the same process just wrote download
nothing.

The cache is private to the machine (``AMLGRAPH_CACHE_DIR``, default a folder in the system's
temporary directory); nothing else depends on it, so workers with their own disks and a client
with another disk share only the store. It is bounded (``AMLGRAPH_CACHE_BYTES``, default 20 GiB):
the least recently used files (none used in the last two minutes) are removed past the bound (a
file still memory-mapped stays readable: Linux frees it when the map goes). Temporary files of a
killed process are removed too.
"""
from __future__ import annotations

import contextlib
import os
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from amlgraph._atomic import TMP_PREFIX, AtomicFile, writer_is_gone
from amlgraph.store._files import HashedWrites, is_plain_file, new_hasher

CACHE_DIR_ENV = "AMLGRAPH_CACHE_DIR"
CACHE_BYTES_ENV = "AMLGRAPH_CACHE_BYTES"
_DEFAULT_BYTES = 20 << 30
_BLOCK = 8 << 20
_evict_lock = threading.Lock()


def cache_dir() -> Path:
    """This machine's cache folder (created on first use)."""
    where = os.environ.get(CACHE_DIR_ENV) or os.path.join(tempfile.gettempdir(), f"amlgraph-cache-{os.getuid()}")
    path = Path(where)
    path.mkdir(parents=True, exist_ok=True)
    return path


def cached_path(info: dict, name: str) -> Path:
    """The copy of a file of content ``info`` (its manifest entry); the file's name ends it, so
    that its kind (``.npy``, ``.npy.zst``, ``.parquet``) reads from the name as in the store."""
    return cache_dir() / f"{info['hash']}-{info['size']}-{name.rsplit('/', 1)[-1]}"


class DamagedObject(ValueError):
    """An object whose bytes are not those its manifest records."""


def fetch(bucket: Any, path: str, info: dict) -> Path:
    """The local copy of the object ``path`` (``info``: its manifest entry, size and hash),
    downloaded and checked against the hash when absent.

    Raises:
        FileNotFoundError: the object is missing. DamagedObject: its size or hash differ.
    """
    local = cached_path(info, path)
    if is_plain_file(local) and local.stat().st_size == info["size"]:
        with contextlib.suppress(OSError):
            os.utime(local)  # recently used
        return local
    out = AtomicFile(local)
    h, size = new_hasher(), 0
    try:
        with bucket.open_read(path) as src:
            while block := src.read(_BLOCK):
                h.update(block)
                size += len(block)
                out.file.write(block)
        if size != info["size"]:
            raise DamagedObject(f"has {size} bytes, expected {info['size']} (truncated or damaged)")
        if h.hexdigest() != info["hash"]:
            raise DamagedObject("content hash mismatch (damaged)")
        out.commit()
    except BaseException:
        out.abort()
        raise
    evict()
    return local


class TeeWriter(HashedWrites):
    """Writes an object and, beside it, its local cached copy; hashes and counts the bytes.

    The object exists only once :meth:`commit` closes the upload (one PUT, or the completion of
    a multipart upload: never a part of it); :meth:`abort` discards both.
    """

    def __init__(self, bucket: Any, path: str):
        self.bucket, self.path = bucket, path
        self.final = path
        self._f = bucket.open_write(path)
        self._copy: AtomicFile | None = AtomicFile(cache_dir() / "upload")
        self._start()

    def _put(self, view: memoryview) -> int:
        self._f.write(view)
        if self._copy is not None:
            self._copy.file.write(view)
        return len(view)

    def flush(self) -> None:
        pass  # an upload's parts are sent when they are full, not when a writer flushes

    def close(self) -> None:
        pass  # commit or abort end the file; Polars closes what it was given

    def commit(self) -> dict:
        """Complete the upload; keep the local copy under its hash; return ``{"size", "hash"}``."""
        info = self._info()
        self._f.close()
        copy, self._copy = self._copy, None
        if copy is not None:
            copy.final = cached_path(info, self.path)
            try:
                copy.commit()
            except OSError:
                copy.abort()  # the cache is an optimisation: a full local disk only costs a download
            evict()
        return info

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            discard = getattr(self._f, "discard", None)
            if callable(discard) and not self.bucket.local:
                discard()  # an unfinished multipart upload is dropped, never completed
            else:
                self._f.close()
                self.bucket.rm(self.path)
        if self._copy is not None:
            self._copy.abort()
            self._copy = None


def _limit() -> int:
    try:
        return int(os.environ.get(CACHE_BYTES_ENV, _DEFAULT_BYTES))
    except ValueError:
        return _DEFAULT_BYTES


#: Copies used this recently are never evicted: a process may be about to open what it fetched.
_IN_USE_S = 120.0


def evict() -> None:
    """Remove the least recently used copies while the cache holds more than its bound (never
    one used in the last two minutes: the cache may then exceed its bound for a while)."""
    limit = _limit()
    recent = time.time() - _IN_USE_S
    with _evict_lock:
        entries = []
        with contextlib.suppress(OSError):
            for e in os.scandir(cache_dir()):
                if e.name.startswith(TMP_PREFIX) and writer_is_gone(e.name, Path(e.path)):
                    with contextlib.suppress(OSError):
                        os.unlink(e.path)  # a download or upload cut off by a killed process
                    continue
                if e.is_file(follow_symlinks=False) and not e.name.startswith("."):
                    st = e.stat(follow_symlinks=False)
                    entries.append((st.st_mtime, st.st_size, e.path))
        total = sum(size for _, size, _ in entries)
        if total <= limit:
            return
        for used, size, path in sorted(entries):
            if used > recent:
                break
            with contextlib.suppress(OSError):
                os.unlink(path)
            total -= size
            if total <= limit * 0.8:
                break
