"""CheckpointStore: checkpoints as Parquet tables, .npy arrays and JSON values in a directory.

Layout (details in docs/CHECKPOINTS.md)::

    <root>/amlgraph-store.json            format marker
    <root>/.lock, .lock.json              run lock (flock) and its holder
    <root>/<name>/manifest.json           the commit point: names the live generation
    <root>/<name>/gen-<t>-<pid>-<host>-<r>/table-<t>.parquet, array-<a>.npy, values.json

A save writes a new generation directory, fsyncs it, then atomically replaces the manifest; only
then is the previous generation removed. A crash at any moment leaves the old or the new
checkpoint, complete. Generations and temp files not referenced by a manifest are orphans of a
dead writer and are removed on the next open (under the lock).
"""
from __future__ import annotations

import io
import os
import secrets
import shlex
import time
from pathlib import Path
from typing import Any, ContextManager

import numpy as np
import polars as pl

from amlgraph.errors import CheckpointError
from amlgraph.store._base import (FORMAT_VERSION, ArrayParts, BaseStore, Checkpoint, Problem, build_manifest,
                                 now_iso, prepare_save, validate_manifest)
from amlgraph.store._files import (HOST_TAG, NAME_RE, TMP_PREFIX, VALUES_MAX_BYTES, HashingWriter,
                                   NotRegularFileError, check_name, fsync_dir, is_plain_dir, is_plain_file,
                                   json_bytes, no_space_error, read_json_file, remove_tree, write_atomic,
                                   writer_is_gone)
from amlgraph.store._lock import FileLock
from amlgraph.store._memory import MemoryStore
from amlgraph.store._npy import ZST_SUFFIX, load_npy, write_npy_zst
from amlgraph.store._verify import check_contents, missing_values, verified_hash, written

__all__ = ["Checkpoint", "CheckpointStore", "MemoryStore", "Problem"]

MARKER = "amlgraph-store.json"
MANIFEST = "manifest.json"
_MANIFEST_MAX_BYTES = 16 << 20
_MARKER_MAX_BYTES = 1 << 20
#: Arrays below this size are never compressed (``save(compress=True)``).
_COMPRESS_MIN_BYTES = 1 << 16


class FileCheckpoint(Checkpoint):
    """A checkpoint read from a generation directory of a :class:`CheckpointStore`."""

    def __init__(self, name: str, manifest: dict, gen_dir: Path):
        super().__init__(name, manifest)
        self._dir = gen_dir
        self._values: dict | None = None

    def _damaged(self, what: str, path: Path, exc: BaseException | str) -> CheckpointError:
        why = exc if isinstance(exc, str) else (getattr(exc, "strerror", None) or exc)
        root = shlex.quote(str(self._dir.parent.parent))
        return CheckpointError(f"checkpoint {self.name} is damaged: {what} {path}: {why}; a rerun recomputes it "
                               f"(or remove it: amlgraph checkpoints clean {root} --damaged)")

    def _file(self, kind: str, name: str) -> Path:
        self._need(kind, name)
        path = self._dir / self.manifest[kind][name]["file"]
        if not is_plain_file(path):
            raise self._damaged(f"{kind[:-1]} {name}", path, "missing, a symlink or not a regular file")
        return path

    def table(self, name: str) -> pl.DataFrame:
        path = self._file("tables", name)
        try:
            return pl.read_parquet(path)
        except Exception as exc:  # polars raises several types for bad Parquet
            raise self._damaged(f"table {name}", path, f"unreadable ({exc})") from exc

    def table_path(self, name: str) -> Path | None:
        return self._file("tables", name)

    def array(self, name: str, *, mmap: bool = True) -> np.ndarray:
        path = self._file("arrays", name)
        try:
            return load_npy(path, self.manifest["arrays"][name], mmap=mmap)
        except (OSError, ValueError) as exc:
            raise self._damaged(f"array {name}", path, exc) from exc

    def value(self, name: str) -> Any:
        self._need("values", name)
        if self._values is None:
            path = self._dir / "values.json"
            try:
                values = read_json_file(path, max_bytes=VALUES_MAX_BYTES)
            except (OSError, ValueError) as exc:
                raise self._damaged("values", path, exc) from exc
            missing = missing_values(values, self.manifest["values"])
            if missing:
                raise self._damaged("values", path, missing)
            self._values = values
        import copy

        return copy.deepcopy(self._values[name])


class CheckpointStore(BaseStore):
    """Checkpoints in a directory, crash-safe, verified on load.

    Args:
        root: the checkpoint directory.
        create: create the directory and its format marker when absent (else CheckpointError).
        verify: default verification of ``load``/``check``/``names``: "none" (manifest parses),
            "quick" (manifest checksum, files present with the right sizes) or "full" (content hashes).

    Raises:
        CheckpointError: no store at ``root`` (``create=False``) or a newer, unknown store format.
    """

    #: Every table is zstd Parquet at level 1: it writes as fast as uncompressed Parquet (fewer
    #: bytes reach the disk) and shrinks the coded transactions by ~45 % (docs/CHECKPOINTS.md).
    parquet_compression = "zstd"
    parquet_compression_level = 1

    def __init__(self, root: str | os.PathLike, *, create: bool = True, verify: str = "quick"):
        self.root = Path(root).absolute()
        self.verify_level = self._level(verify)
        self._open_marker(create)
        self._lock = FileLock(self.root, on_acquire=self._clean_orphans)
        self._clean_if_unlocked()

    def __repr__(self) -> str:
        return f"CheckpointStore({str(self.root)!r})"

    # --- opening ---------------------------------------------------------------------------------
    def _open_marker(self, create: bool) -> None:
        marker = self.root / MARKER
        if not marker.exists():
            if not create:
                raise CheckpointError(f"no checkpoint store at {self.root} (no {MARKER}); give a checkpoint "
                                      "directory such as <data>/checkpoints_all")
            try:
                self.root.mkdir(parents=True, exist_ok=True)
                write_atomic(marker, json_bytes({"format": "amlgraph-checkpoints", "version": FORMAT_VERSION,
                                                 "created": now_iso()}))
            except OSError as exc:
                raise CheckpointError(f"cannot create checkpoint directory {self.root}: {exc.strerror or exc}; "
                                      "choose a writable --checkpoint-dir") from exc
            return
        try:
            info = read_json_file(marker, max_bytes=_MARKER_MAX_BYTES)
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"{marker} is unreadable ({getattr(exc, 'strerror', None) or exc}); it is not "
                                  "an amlgraph checkpoint store, or remove that file to reuse the directory") from exc
        version = info.get("version") if isinstance(info, dict) else None
        if version is None:
            raise CheckpointError(f"{marker} is not a store marker (no version); it is not an amlgraph checkpoint "
                                  "store, or remove that file to reuse the directory")
        if type(version) is not int or version > FORMAT_VERSION:
            from amlgraph import __version__

            raise CheckpointError(f"checkpoint store {self.root} has format {version}; amlgraph {__version__} "
                                  f"reads format {FORMAT_VERSION} and older: upgrade amlgraph or use another "
                                  "--checkpoint-dir")

    def _clean_if_unlocked(self) -> None:
        lock = self._lock
        if not lock._guard.acquire(blocking=False):
            return
        try:
            if lock.try_acquire():
                try:
                    self._clean_orphans()
                finally:
                    lock.release_os()
        except (OSError, CheckpointError):
            pass  # read-only directory: nothing we could clean anyway
        finally:
            lock._guard.release()

    def _clean_orphans(self) -> None:
        """Remove temp files and generations whose writer is dead and no manifest references."""
        for entry in os.scandir(self.root):
            path = Path(entry.path)
            if entry.name.startswith(TMP_PREFIX):
                if writer_is_gone(entry.name, path):
                    remove_tree(path)
            elif NAME_RE.match(entry.name) and is_plain_dir(path):
                self._clean_checkpoint_dir(path)

    def _clean_checkpoint_dir(self, cdir: Path) -> None:
        live = self._live_generation(cdir)
        for entry in os.scandir(cdir):
            path = Path(entry.path)
            if entry.name.startswith(TMP_PREFIX) or (entry.name.startswith("gen-") and entry.name != live):
                if writer_is_gone(entry.name, path):
                    remove_tree(path)
            elif entry.name == live and is_plain_dir(path):
                for inner in os.scandir(path):
                    if inner.name.startswith(TMP_PREFIX) and writer_is_gone(inner.name, Path(inner.path)):
                        remove_tree(Path(inner.path))
        try:
            cdir.rmdir()  # only succeeds when nothing is left
        except OSError:
            pass

    # --- reading ---------------------------------------------------------------------------------
    def _candidates(self) -> list[str]:
        try:
            return sorted(e.name for e in os.scandir(self.root)
                          if NAME_RE.match(e.name) and (e.is_symlink() or e.is_dir(follow_symlinks=False)))
        except FileNotFoundError:
            return []

    def _manifest_or_reason(self, name: str, verify: str) -> tuple[dict | None, str | None]:
        cdir = self.root / name
        if not os.path.lexists(cdir):
            return None, "missing"
        if not is_plain_dir(cdir):
            return None, f"corrupt: {name} is a symlink or not a directory (refused, not followed)"
        mpath = cdir / MANIFEST
        if not os.path.lexists(mpath):
            busy = any(e.name.startswith("gen-") for e in os.scandir(cdir))
            return None, f"corrupt: {MANIFEST} missing (incomplete save)" if busy else "missing"
        try:
            m = read_json_file(mpath, max_bytes=_MANIFEST_MAX_BYTES)
        except NotRegularFileError as exc:
            return None, f"corrupt: {MANIFEST} is {exc.strerror} (refused, not read)"
        except OSError as exc:
            return None, f"corrupt: {MANIFEST} unreadable or a symlink ({exc.strerror or exc})"
        except ValueError as exc:
            return None, f"corrupt: {MANIFEST} is not valid JSON ({exc})"
        bad = validate_manifest(name, m, checksum=verify != "none")
        if bad:
            return None, f"corrupt: {MANIFEST} {bad}"
        if verify == "none":
            return m, None
        gdir = cdir / m["generation"]
        if not is_plain_dir(gdir):
            return None, f"corrupt: {m['generation']} missing or a symlink"
        for f, info in m["files"].items():
            path = gdir / f
            try:
                st = path.lstat()
            except OSError:
                return None, f"corrupt: {f} missing"
            if not is_plain_file(path):
                return None, f"corrupt: {f} is a symlink or not a regular file (refused, not followed)"
            if st.st_size != info["size"]:
                return None, f"corrupt: {f} has {st.st_size} bytes, expected {info['size']} (truncated or damaged)"
            if verify == "full":
                try:
                    digest = verified_hash(path, st)
                except OSError as exc:
                    return None, f"corrupt: {f} unreadable ({exc.strerror or exc})"
                if digest != info["hash"]:
                    return None, f"corrupt: {f} content hash mismatch (damaged)"
                bad = check_contents(path, st, f, m)
                if bad:
                    return None, f"corrupt: {f} {bad}"
        return m, None

    def _checkpoint(self, name: str, manifest: dict) -> Checkpoint:
        return FileCheckpoint(name, manifest, self.root / name / manifest["generation"])

    def size_bytes(self, name: str) -> int:
        """Bytes of ``name``'s live generation (as its manifest records them) plus its manifest;
        0 when its manifest is missing or unreadable."""
        m = self.manifest(name, verify="none")
        if m is None:
            return 0
        try:
            extra = (self.root / name / MANIFEST).lstat().st_size
        except OSError:
            extra = 0
        return sum(f["size"] for f in m["files"].values()) + extra

    # --- writing ---------------------------------------------------------------------------------
    def save(self, name: str, *, step: str, key: str, chunk: int | None = None,
             tables: dict | None = None, arrays: dict | None = None, values: dict | None = None,
             metadata: dict | None = None, key_components: dict | None = None,
             row_group_rows: int | None = None, compress: bool = True) -> dict:
        """Write a checkpoint atomically (replacing one of the same name) and return its manifest.

        ``row_group_rows`` sets the rows per Parquet row group of its tables (None: Polars'
        default); small groups over a sorted column let a filtered scan skip most of a file.
        ``compress=True`` also compresses its arrays (zstd ``.npy.zst`` files, loaded as
        in-memory copies instead of memory maps): for cold arrays; tables are always zstd Parquet.

        Raises:
            CheckpointError: bad names or data, a symlinked checkpoint directory, or a failed write
                (e.g. no space left); the previous checkpoint is then intact.
        """
        tables, arrays, vbytes = prepare_save(name, step, chunk, tables, arrays, values)
        if not isinstance(key, str) or not key:
            raise CheckpointError(f"checkpoint {name}: key must be a non-empty string (got {key!r})")
        cdir = self.root / name
        if os.path.lexists(cdir) and not is_plain_dir(cdir):
            raise CheckpointError(f"{cdir} is a symlink or not a directory; refusing to write through it "
                                  "(remove it and rerun)")
        gen = f"gen-{time.time_ns():x}-{os.getpid()}-{HOST_TAG}-{secrets.token_hex(4)}"
        gdir = cdir / gen
        try:
            new_dir = not cdir.exists()
            cdir.mkdir(exist_ok=True)
            if new_dir:
                fsync_dir(self.root)
            gdir.mkdir()
            files: dict[str, dict] = {}
            table_files = {t: self._write_table(gdir, t, df, files, row_group_rows, compress)
                           for t, df in tables.items()}
            array_files = self._write_arrays(gdir, arrays, files, compress)
            files["values.json"] = write_atomic(gdir / "values.json", vbytes, sync_dir=False)
            fsync_dir(gdir)
            fsync_dir(cdir)
            manifest = build_manifest(
                name=name, step=step, chunk=chunk, key=key, key_components=key_components, metadata=metadata,
                generation=gen, files=files, tables=tables, table_files=table_files, arrays=arrays,
                array_files=array_files, values=list(values or {}))
            old_gen = self._live_generation(cdir)
            write_atomic(cdir / MANIFEST, json_bytes(manifest))  # the commit point
        except OSError as exc:
            remove_tree(gdir)
            raise no_space_error(exc, f"checkpoint {name}", self.root) from exc
        except BaseException:
            remove_tree(gdir)
            raise
        if old_gen and old_gen != gen:
            remove_tree(cdir / old_gen)
        return manifest

    def _live_generation(self, cdir: Path) -> str | None:
        try:
            m = read_json_file(cdir / MANIFEST, max_bytes=_MANIFEST_MAX_BYTES)
        except (OSError, ValueError):
            return None
        gen = m.get("generation") if isinstance(m, dict) else None
        return gen if isinstance(gen, str) and gen.startswith("gen-") and "/" not in gen else None

    def _writer(self, gdir: Path, fname: str) -> HashingWriter:
        """The writer of one data file (the object store's uploads through its own)."""
        return HashingWriter(gdir / fname)

    def _commit(self, writer: HashingWriter) -> dict:
        return written(writer.final, writer.commit())

    def _write_table(self, gdir: Path, name: str, df: pl.DataFrame, files: dict,
                     row_group_rows: int | None = None, compress: bool = True) -> str:
        fname = f"table-{name}.parquet"
        w = self._writer(gdir, fname)
        try:
            df.write_parquet(w, compression=self.parquet_compression,
                             compression_level=self.parquet_compression_level, statistics=True,
                             row_group_size=row_group_rows)
            files[fname] = self._commit(w)
        except BaseException as exc:
            w.abort()
            if w.error is not None and w.error is not exc:
                raise w.error from exc  # polars may wrap the OSError of our write
            raise
        return fname

    def _write_arrays(self, gdir: Path, arrays: dict, files: dict, compress: bool = False) -> dict[str, str]:
        """Write the arrays, two at a time when there are several: a graph's arrays are mostly
        computed from pieces (``ArrayParts``) as they are written, and one array's computing
        overlaps another's reading and writing. ``files`` gets their entries in ``arrays`` order."""
        if len(arrays) < 2:
            return {a: self._write_array(gdir, a, arr, files, compress) for a, arr in arrays.items()}
        from concurrent.futures import ThreadPoolExecutor

        own = {a: {} for a in arrays}
        with ThreadPoolExecutor(max_workers=2, thread_name_prefix="amlgraph-arrays") as pool:
            futures = {a: pool.submit(self._write_array, gdir, a, arr, own[a], compress) for a, arr in arrays.items()}
            try:
                names = {a: f.result() for a, f in futures.items()}
            except BaseException:
                for f in futures.values():
                    f.cancel()
                raise
        for a in arrays:
            files.update(own[a])
        return names

    def _write_array(self, gdir: Path, name: str, arr: np.ndarray, files: dict, compress: bool = False) -> str:
        # A small array is not worth a decoder on load; it stays memory-mappable.
        compress = compress and arr.dtype.itemsize * int(np.prod(arr.shape)) >= _COMPRESS_MIN_BYTES
        fname = f"array-{name}{ZST_SUFFIX if compress else '.npy'}"
        w = self._writer(gdir, fname)
        try:
            header = {"descr": np.lib.format.dtype_to_descr(arr.dtype), "fortran_order": False,
                      "shape": arr.shape}
            head = io.BytesIO()
            try:
                np.lib.format.write_array_header_1_0(head, header)
            except ValueError:
                np.lib.format.write_array_header_2_0(head, header)
            if isinstance(arr, ArrayParts):
                blocks = (block.view(np.uint8) for block in arr.blocks())
            else:
                blocks = iter([arr.reshape(-1).view(np.uint8)])
            if compress:
                write_npy_zst(w, head.getvalue(), blocks, arr.dtype.itemsize * int(np.prod(arr.shape)))
            else:
                w.write(head.getvalue())
                for block in blocks:
                    w.write(block)
            files[fname] = self._commit(w)
        except BaseException:
            w.abort()
            raise
        return fname

    def delete(self, name: str) -> None:
        """Delete checkpoint ``name`` (manifest first, so a crash midway leaves it absent)."""
        check_name(name)
        cdir = self.root / name
        if not os.path.lexists(cdir):
            return
        if not is_plain_dir(cdir):
            os.unlink(cdir)  # a symlink: remove the link, never what it points to
            return
        try:
            os.unlink(cdir / MANIFEST)
            fsync_dir(cdir)
        except FileNotFoundError:
            pass
        remove_tree(cdir)

    def lock(self, *, wait: bool = False, timeout: float | None = None) -> ContextManager:
        """Hold the store's run lock (``with store.lock(): ...``); re-entrant in the holding thread.

        Raises:
            LockedError: "... locked by pid N on host H since T; wait for it or rerun with --wait".
        """
        return self._lock.hold(wait=wait, timeout=timeout)

    def verify(self, names: list[str] | None = None, *, full: bool = True) -> list[Problem]:
        return super().verify(names, full=full)

    verify.__doc__ = BaseStore.verify.__doc__


def is_store(path: str | os.PathLike) -> bool:
    """Whether ``path`` holds a checkpoint store (its format marker)."""
    return is_plain_file(Path(path) / MARKER)
