"""How an export reaches its directory: written whole beside it, then switched in at once.

An export is a set of files (``graph.pt`` + ``graph.json``, two Parquet tables, ...). Renaming
each file into place would let a kill between two renames leave files of two exports side by side,
so the set is committed as a whole (docs/EXPORTS.md, "How an export is written"):

1. ``--out DIR`` is checked first: an existing file, a mount point, or a directory holding anything
   but export files is refused before anything is created.
2. The files are written into a staging directory beside ``DIR`` (same file system):
   ``.tmp-<pid>-<host>-<random>-<DIR name>.export``; every file is fsynced. Files of the *other*
   formats already in ``DIR`` are hard-linked (or copied) into it, so that exports of several formats
   can share one directory.
3. The switch: when ``DIR`` does not exist (or is empty) the staging directory is renamed to it;
   otherwise the two are exchanged atomically (``renameat2(RENAME_EXCHANGE)``), after which the
   staging name holds the old export, which is removed. Where the exchange is not supported, ``DIR``
   is renamed aside (``...<DIR name>.old``) and the staging directory renamed in its place.
4. Leftovers of killed exports (staging or aside directories whose writer process is gone) are
   removed by the next export to the same ``DIR``.

A failed write (no space, quota, file-size limit, read-only file system, no permission) removes the
staging directory, leaves any previous export untouched and raises :class:`ExportWriteError`
(one line, exit code 3, as a failed checkpoint save).
"""
from __future__ import annotations

import contextlib
import ctypes
import errno
import os
import re
import shutil
import stat
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any, BinaryIO

from amlgraph.errors import AmlGraphError, CheckpointError, ConfigError
from amlgraph._atomic import WriteOnlyFile, tmp_name, writer_is_gone

#: Suffixes of the directories an export makes beside its target (see the module docstring).
STAGE_SUFFIX = ".export"
ASIDE_SUFFIX = ".old"
_NAME_KEEP = 100  # characters of the target's name kept in those names (NAME_MAX is 255)
_LEFTOVER_RE = re.compile(r"^\.tmp-\d+-[0-9a-f]{8}-[0-9a-f]{8}-(?P<name>.*)(?P<kind>\.export|\.old)$")
_BUFFER = 1 << 20
#: errno values that mean "this storage cannot take the export", recognised even when a writer
#: library only reports them inside its own message ("... (os error 28)").
STORAGE_ERRNOS = frozenset({errno.ENOSPC, errno.EDQUOT, errno.EFBIG, errno.EROFS, errno.EACCES,
                            errno.EPERM})
_ERRNO_TEXT_RE = re.compile(r"\(os error (\d+)\)|\[Errno (\d+)\]")


class ExportWriteError(AmlGraphError):
    """Writing an export failed on its storage (no space, a quota or file-size limit, a read-only
    file system, no permission, ...). Nothing of the failed export is left and a previous export in
    the directory is intact. Exit code 3, as a failed checkpoint save."""

    exit_code = CheckpointError.exit_code


# --- one output file ------------------------------------------------------------------------------
class OutputFile(WriteOnlyFile):
    """A binary file-like writer for the export libraries (Polars, torch, our GraphML writer) that
    remembers the ``OSError`` of a failed write: the libraries re-raise it wrapped in their own
    exceptions (``ComputeError``, a ``RuntimeError`` with no errno), :func:`output_file` restores it."""

    def __init__(self, path: Path):
        self.path = Path(path)
        fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o666)
        self._f: BinaryIO = os.fdopen(fd, "wb", buffering=_BUFFER)
        self.size = 0
        self.error: OSError | None = None

    def _call(self, fn, *args):
        try:
            return fn(*args)
        except OSError as exc:
            self.error = self.error or exc
            raise

    def write(self, data: Any) -> int:
        n = self._call(self._f.write, data)
        self.size += n
        return n

    def flush(self) -> None:
        self._call(self._f.flush)

    def close(self) -> None:
        if not self._f.closed:
            self._call(self._f.close)

    def sync_and_close(self) -> None:
        """Flush, fsync and close: a full disk or a quota may only show here."""
        self.flush()
        self._call(os.fsync, self._f.fileno())
        self.close()


@contextlib.contextmanager
def output_file(path: Path) -> Iterator[OutputFile]:
    """Create ``path`` (which must not exist) and yield a writer; fsync and close it at the end.

    When the block fails, the file is closed and the ``OSError`` of a failed write, if any, is
    raised in place of the library's wrapper of it. The file is not removed: it lies in a staging
    directory that the commit removes as a whole.
    """
    out = OutputFile(path)
    try:
        yield out
        out.sync_and_close()
    except BaseException as exc:
        with contextlib.suppress(OSError):
            out._f.close()
        if out.error is not None and out.error is not exc:
            raise out.error from exc
        raise


# --- errors ---------------------------------------------------------------------------------------
def storage_errno(exc: BaseException) -> int | None:
    """The errno behind ``exc``: an ``OSError``'s own, or one named in the text of an exception
    (or its causes) that a writer library raised instead ("... (os error 28)", "[Errno 30]");
    None when there is none of :data:`STORAGE_ERRNOS` in the text."""
    seen: set[int] = set()
    e: BaseException | None = exc
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        if isinstance(e, OSError) and e.errno:
            return e.errno
        for m in _ERRNO_TEXT_RE.finditer(str(e)):
            code = int(m.group(1) or m.group(2))
            if code in STORAGE_ERRNOS:
                return code
        e = e.__cause__ or e.__context__
    return None


def write_error(code: int | None, exc: BaseException, fmt: str, target: Path,
                had_export: bool) -> ExportWriteError:
    """One line saying what failed, where, what to do, and that nothing partial is left."""
    after = ("the previous export there is intact" if had_export
             else "nothing of the export was left there")
    where = f"the {fmt} export to {target}"
    if code in (errno.ENOSPC, errno.EDQUOT):
        what = "no space left on device" if code == errno.ENOSPC else "disk quota exceeded"
        return ExportWriteError(f"{what} while writing {where}; free space there and rerun: {after}")
    if code == errno.EFBIG:
        return ExportWriteError(f"file too large (over the file system's or the process's file-size "
                                f"limit) while writing {where}: {after}")
    if code == errno.EROFS:
        return ExportWriteError(f"read-only file system: cannot write {where}; choose a writable "
                                f"--out: {after}")
    if code in (errno.EACCES, errno.EPERM):
        name = getattr(exc, "filename", None)
        return ExportWriteError(f"permission denied writing {where}"
                                + (f" ({name})" if name else "")
                                + f"; choose a writable --out or fix its permissions: {after}")
    text = " ".join(str(exc).split()) or type(exc).__name__
    return ExportWriteError(f"could not write {where}: {text}; {after}")


# --- the target directory -------------------------------------------------------------------------
def resolve_target(out_dir: Path) -> Path:
    """The directory an export will replace: ``out_dir``, or where it points if it is a symlink.

    Raises:
        ConfigError: for an existing file or a mount point (a directory that cannot be renamed).
    """
    out = Path(out_dir)
    if out.is_symlink():
        out = Path(os.path.realpath(out))
    out = Path(os.path.abspath(out))
    if out.exists() and not out.is_dir():
        raise ConfigError(f"{out_dir}: --out must be a directory (got an existing file)")
    if out.is_dir() and os.path.ismount(out):
        raise ConfigError(f"{out_dir}: --out is a mount point; an export is switched into place by "
                          "renaming its directory, so export into a directory inside it")
    return out


def _old_tmp(entry: str, known: frozenset[str]) -> bool:
    """A per-file temporary of an earlier amlgraph (``.<file>.<random>.tmp``)."""
    return entry.startswith(".") and entry.endswith(".tmp") and any(
        entry.startswith(f".{k}.") for k in known)


def existing_files(target: Path, known: frozenset[str]) -> list[str]:
    """The export files in ``target`` (empty when it is absent or empty).

    Raises:
        ConfigError: when ``target`` holds anything else: it is not an export, and replacing it
            would delete it.
    """
    try:
        entries = sorted(os.listdir(target))
    except FileNotFoundError:
        return []
    files, other = [], []
    for entry in entries:
        if _old_tmp(entry, known):
            continue  # left by a killed export of an earlier version: not carried over
        if entry in known and stat.S_ISREG(os.lstat(target / entry).st_mode):
            files.append(entry)
        else:
            other.append(entry)
    if other:
        shown = ", ".join(repr(e) for e in other[:3]) + (", ..." if len(other) > 3 else "")
        raise ConfigError(f"{target}: not an amlgraph export directory (it holds {shown}); "
                          "refusing to replace it: choose a new or empty directory for --out")
    return files


def _short(target: Path) -> str:
    return target.name[:_NAME_KEEP]


def clean_leftovers(target: Path) -> list[Path]:
    """Remove what killed exports to ``target`` left beside it (their writer process is gone)."""
    removed = []
    try:
        entries = os.listdir(target.parent)
    except OSError:
        return removed
    for entry in entries:
        m = _LEFTOVER_RE.match(entry)
        if m is None or m.group("name") != _short(target):
            continue
        path = target.parent / entry
        if writer_is_gone(entry, path):
            _remove(path)
            removed.append(path)
    return removed


def _remove(path: Path) -> None:
    """Remove a directory tree or a file, best effort, never following a symlink."""
    try:
        mode = path.lstat().st_mode
    except FileNotFoundError:
        return
    if stat.S_ISDIR(mode):
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)


def _missing_parents(path: Path) -> list[Path]:
    """Ancestors of ``path`` (itself included) that do not exist, deepest first."""
    missing = []
    while not path.exists() and path != path.parent:
        missing.append(path)
        path = path.parent
    return missing


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# --- the switch -----------------------------------------------------------------------------------
_AT_FDCWD = -100
_RENAME_EXCHANGE = 2
_renameat2: Any = None


def _exchange(a: Path, b: Path) -> bool:
    """Swap two directories atomically (Linux ``renameat2(RENAME_EXCHANGE)``); False where the
    system or the file system does not support it."""
    global _renameat2
    if not sys.platform.startswith("linux"):
        return False
    if _renameat2 is None:
        try:
            fn = ctypes.CDLL(None, use_errno=True).renameat2
            fn.argtypes = (ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint)
            fn.restype = ctypes.c_int
            _renameat2 = fn
        except (OSError, AttributeError):
            _renameat2 = False
    if not _renameat2:
        return False
    if _renameat2(_AT_FDCWD, os.fsencode(a), _AT_FDCWD, os.fsencode(b), _RENAME_EXCHANGE) == 0:
        return True
    code = ctypes.get_errno()
    if code in (errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.ENOTTY):
        return False
    raise OSError(code, os.strerror(code), str(b))


def switch(stage: Path, target: Path) -> Path | None:
    """Put ``stage`` in the place of ``target``; return the path that now holds the old export
    (to be removed), or None when there was none."""
    try:
        os.rename(stage, target)  # target absent or an empty directory: one atomic step
        return None
    except OSError as exc:
        if exc.errno not in (errno.EEXIST, errno.ENOTEMPTY):
            raise
    if _exchange(stage, target):
        return stage
    aside = target.parent / tmp_name(_short(target) + ASIDE_SUFFIX)
    os.rename(target, aside)  # from here to the next rename, target is absent (never mixed)
    try:
        os.rename(stage, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.rename(aside, target)  # put the old export back
        raise
    return aside


def _carry_over(target: Path, stage: Path, names: list[str]) -> None:
    """Link the other formats' files of the old export into the new one (copy where links fail)."""
    for name in names:
        try:
            os.link(target / name, stage / name, follow_symlinks=False)
        except FileNotFoundError:
            continue
        except OSError:
            shutil.copy2(target / name, stage / name, follow_symlinks=False)


@contextlib.contextmanager
def committed_export(out_dir: Path, fmt: str, own: tuple[str, ...],
                     known: frozenset[str]) -> Iterator[Path]:
    """Yield an empty staging directory for the files of one export; switch it into ``out_dir`` as
    a whole when the block succeeds, remove it when it fails.

    Args:
        out_dir: the target directory (absent, empty, or an earlier export).
        fmt: the format, for messages.
        own: the files this export writes; those of an earlier export in ``out_dir`` are replaced.
        known: every export file name; any other entry in ``out_dir`` is refused.

    Raises:
        ConfigError: ``out_dir`` is a file, a mount point or a directory that is not an export.
        ExportWriteError: a write failed on the storage (the previous export is intact).
    """
    target = resolve_target(out_dir)
    had_export = bool(existing_files(target, known))
    created = _missing_parents(target.parent)
    stage: Path | None = None
    old: Path | None = None
    try:
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            clean_leftovers(target)
            stage = target.parent / tmp_name(_short(target) + STAGE_SUFFIX)
            os.mkdir(stage, 0o777)
            yield stage
            carried = [n for n in existing_files(target, known) if n not in own]
            _carry_over(target, stage, carried)
            with contextlib.suppress(OSError):
                os.chmod(stage, stat.S_IMODE(target.stat().st_mode))  # keep the directory's mode
            _fsync_dir(stage)
            old = switch(stage, target)  # the commit point
            stage = None
        except BaseException as exc:
            code = exc.errno if isinstance(exc, OSError) else storage_errno(exc)
            if isinstance(exc, OSError) or code in STORAGE_ERRNOS:
                raise write_error(code, exc, fmt, target, had_export) from exc
            raise
    except BaseException:
        if stage is not None:
            _remove(stage)
        for path in created:
            with contextlib.suppress(OSError):
                os.rmdir(path)
        raise
    with contextlib.suppress(OSError):
        _fsync_dir(target.parent)
    if old is not None:
        _remove(old)
