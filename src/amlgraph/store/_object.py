"""ObjectStore: the checkpoint store on an object store (S3, GCS, Azure Blob) or any fsspec URL.

Same layout and manifests as the file store (docs/CHECKPOINTS.md), as objects::

    <url>/amlgraph-store.json                       format marker
    <url>/.lease.json                               the run lock: a lease (store/_lease.py)
    <url>/<name>/manifest.json                      the commit point: names the live generation
    <url>/<name>/gen-<t>-<pid>-<host>-<r>/<file>    table-<t>.parquet, array-<a>.npy, values.json

An object store has no rename, so the commit protocol rests on the one thing it makes atomic, a
single PUT: a save uploads its data objects into a new generation prefix first, then PUTs the
manifest, which is the commit; only then is the previous generation deleted. A reader trusts only
what a manifest names, checks sizes against one listing of the generation and hashes every object
as it downloads it; an object the manifest names with other bytes is damaged, never used. A crash
leaves the old checkpoint or the new one; a generation no manifest names belongs to a dead or
failed writer and is removed when a run next takes the lease (``_clean_orphans``). Uploads that
never completed are invisible; a bucket lifecycle rule (AbortIncompleteMultipartUpload) frees
their parts (docs/DEPLOY.md).
"""
from __future__ import annotations

import os
import secrets
import time
from pathlib import Path
from typing import Any, ContextManager

import numpy as np
import polars as pl

from amlgraph._atomic import HOST_TAG, writer_is_gone
from amlgraph.errors import CheckpointError
from amlgraph.store._base import (FORMAT_VERSION, BaseStore, Checkpoint, Problem, build_manifest, now_iso,
                                 prepare_save, validate_manifest)
from amlgraph.store._cache import DamagedObject, TeeWriter, fetch
from amlgraph.store._checkpoints import MANIFEST, MARKER, CheckpointStore
from amlgraph.store._files import NAME_RE, check_name, json_bytes, parse_json
from amlgraph.store._fs import Bucket
from amlgraph.store._lease import Lease
from amlgraph.store._npy import load_npy
from amlgraph.store._verify import check_contents, missing_values, verified_hash

_MANIFEST_MAX_BYTES = 16 << 20
LEASE = ".lease.json"


class ObjectCheckpoint(Checkpoint):
    """A checkpoint of an :class:`ObjectStore`: data files are read from local verified copies."""

    def __init__(self, name: str, manifest: dict, store: "ObjectStore"):
        super().__init__(name, manifest)
        self._store = store
        self._values: dict | None = None

    def _local(self, kind: str, name: str) -> Path:
        self._need(kind, name)
        return self._store._fetch(self.name, self.manifest, self.manifest[kind][name]["file"])

    def table(self, name: str) -> pl.DataFrame:
        path = self._local("tables", name)
        try:
            return pl.read_parquet(path)
        except Exception as exc:  # polars raises several types for bad Parquet
            raise self._store._damaged(self.name, f"table {name}", f"unreadable ({exc})") from exc

    def table_path(self, name: str) -> Path | None:
        return self._local("tables", name)

    def array(self, name: str, *, mmap: bool = True) -> np.ndarray:
        path = self._local("arrays", name)
        try:
            return load_npy(path, self.manifest["arrays"][name], mmap=mmap)
        except (OSError, ValueError) as exc:
            raise self._store._damaged(self.name, f"array {name}", exc) from exc

    def value(self, name: str) -> Any:
        self._need("values", name)
        if self._values is None:
            path = self._store._fetch(self.name, self.manifest, "values.json")
            try:
                values = parse_json(path.read_bytes())
            except (OSError, ValueError) as exc:
                raise self._store._damaged(self.name, "values", exc) from exc
            missing = missing_values(values, self.manifest["values"])
            if missing:
                raise self._store._damaged(self.name, "values", missing)
            self._values = values
        import copy

        return copy.deepcopy(self._values[name])


class ObjectStore(BaseStore):
    """Checkpoints under an fsspec URL, crash-safe without rename, verified on load.

    Args:
        url: e.g. ``s3://bucket/checkpoints`` (credentials and endpoint from the environment:
            ``AWS_*`` variables, profiles, instance roles), ``gs://``, ``abfs://``, ``file://``.
        create: create the store's marker when absent (else CheckpointError).
        verify: as for :class:`CheckpointStore`; every download is hashed whatever the level.

    Raises:
        CheckpointError: no store there (``create=False``), an unreachable bucket, a newer format.
    """

    parquet_compression = CheckpointStore.parquet_compression
    parquet_compression_level = CheckpointStore.parquet_compression_level
    # The data files are written by the file store's code; only the writer differs (_writer).
    _write_table = CheckpointStore._write_table
    _write_arrays = CheckpointStore._write_arrays
    _write_array = CheckpointStore._write_array

    def __init__(self, url: str, *, create: bool = True, verify: str = "quick"):
        self.bucket = Bucket(url)
        self.root = self.location = self.bucket.url
        self.verify_level = self._level(verify)
        self._open_marker(create)
        self._lock = Lease(self.bucket, self.bucket.path(LEASE), self.root, on_acquire=self._clean_orphans)

    def __repr__(self) -> str:
        return f"ObjectStore({self.root!r})"

    def _damaged(self, name: str, what: str, why: Any) -> CheckpointError:
        why = getattr(why, "strerror", None) or why
        return CheckpointError(f"checkpoint {name} is damaged: {what} in {self.root}/{name}: {why}; a rerun "
                               f"recomputes it (or remove it: amlgraph checkpoints clean {self.root} --damaged)")

    # --- opening ---------------------------------------------------------------------------------
    def _open_marker(self, create: bool) -> None:
        path = self.bucket.path(MARKER)
        try:
            data = self.bucket.cat(path)
        except FileNotFoundError:
            data = None
        except (OSError, ValueError) as exc:
            raise CheckpointError(f"cannot reach checkpoint store {self.root}: {_why(exc)}; check the URL, the "
                                  "bucket and the credentials in the environment") from exc
        if data is None:
            if not create:
                raise CheckpointError(f"no checkpoint store at {self.root} (no {MARKER}); give the URL of a run's "
                                      "--checkpoint-dir")
            try:
                self.bucket.pipe(path, json_bytes({"format": "amlgraph-checkpoints", "version": FORMAT_VERSION,
                                                   "created": now_iso()}))
            except (OSError, ValueError) as exc:
                raise CheckpointError(f"cannot create checkpoint store {self.root}: {_why(exc)}; the bucket must "
                                      "exist and be writable with the credentials in the environment") from exc
            return
        try:
            info = parse_json(data)
        except ValueError:
            info = None
        version = info.get("version") if isinstance(info, dict) else None
        if type(version) is not int:
            raise CheckpointError(f"{self.root}/{MARKER} is not a store marker; it is not an amlgraph checkpoint "
                                  "store, or remove that object to reuse the prefix")
        if version > FORMAT_VERSION:
            raise CheckpointError(f"checkpoint store {self.root} has format {version}; this amlgraph reads format "
                                  f"{FORMAT_VERSION} and older: upgrade amlgraph or use another --checkpoint-dir")

    def _clean_orphans(self) -> None:
        """Delete generations no manifest names whose writer is gone (one listing of the store)."""
        live: dict[str, str | None] = {}
        gens: dict[tuple[str, str], list[str]] = {}
        root = self.bucket.root + "/"
        for path in self.bucket.find(self.bucket.root):
            parts = path[len(root):].split("/") if path.startswith(root) else []
            if len(parts) < 2 or not NAME_RE.match(parts[0]):
                continue
            if len(parts) == 2 and parts[1] == MANIFEST:
                live.setdefault(parts[0], None)
            elif parts[1].startswith("gen-"):
                gens.setdefault((parts[0], parts[1]), []).append(path)
        for name in live:
            live[name] = self._live_generation(name)
        for (name, gen), paths in gens.items():
            if gen != live.get(name) and _writer_gone(gen):
                self.bucket.rm(self.bucket.path(name, gen), recursive=True)

    # --- reading ---------------------------------------------------------------------------------
    def _candidates(self) -> list[str]:
        names = set()
        for e in self.bucket.ls(self.bucket.root):
            base = e["name"].rstrip("/").rsplit("/", 1)[-1]
            if e.get("type") == "directory" and NAME_RE.match(base):
                names.add(base)
        return sorted(names)

    def _read_manifest(self, name: str) -> tuple[dict | None, str | None]:
        try:
            data = self.bucket.cat(self.bucket.path(name, MANIFEST))
        except FileNotFoundError:
            return None, "missing"
        except OSError as exc:
            return None, f"corrupt: {MANIFEST} unreadable ({_why(exc)})"
        if len(data) > _MANIFEST_MAX_BYTES:
            return None, f"corrupt: {MANIFEST} larger than {_MANIFEST_MAX_BYTES} bytes, refused"
        try:
            return parse_json(data), None
        except ValueError as exc:
            return None, f"corrupt: {MANIFEST} is not valid JSON ({exc})"

    def _manifest_or_reason(self, name: str, verify: str) -> tuple[dict | None, str | None]:
        m, reason = self._read_manifest(name)
        if m is None:
            return None, reason
        bad = validate_manifest(name, m, checksum=verify != "none")
        if bad:
            return None, f"corrupt: {MANIFEST} {bad}"
        if verify == "none":
            return m, None
        listing = {e["name"].rsplit("/", 1)[-1]: e for e in self.bucket.ls(self.bucket.path(name, m["generation"]))}
        if not listing:
            return None, f"corrupt: {m['generation']} missing"
        for f, info in m["files"].items():
            entry = listing.get(f)
            if entry is None:
                return None, f"corrupt: {f} missing"
            if entry.get("size") != info["size"]:
                return None, (f"corrupt: {f} has {entry.get('size')} bytes, expected {info['size']} "
                              "(truncated or damaged)")
            if verify == "full":
                try:
                    local = fetch(self.bucket, self.bucket.path(name, m["generation"], f), info)
                    st = local.lstat()
                    if verified_hash(local, st) != info["hash"]:
                        return None, f"corrupt: {f} content hash mismatch (damaged)"
                except DamagedObject as exc:
                    return None, f"corrupt: {f} {exc}"
                except OSError as exc:
                    return None, f"corrupt: {f} unreadable ({_why(exc)})"
                bad = check_contents(local, st, f, m)
                if bad:
                    return None, f"corrupt: {f} {bad}"
        return m, None

    def _fetch(self, name: str, manifest: dict, file: str) -> Path:
        info = manifest["files"][file]
        try:
            return fetch(self.bucket, self.bucket.path(name, manifest["generation"], file), info)
        except FileNotFoundError as exc:
            raise self._damaged(name, file, "missing") from exc
        except DamagedObject as exc:
            raise self._damaged(name, file, exc) from exc
        except OSError as exc:
            raise self._damaged(name, file, f"unreadable ({_why(exc)})") from exc

    def _checkpoint(self, name: str, manifest: dict) -> Checkpoint:
        return ObjectCheckpoint(name, manifest, self)

    def size_bytes(self, name: str) -> int:
        """Bytes of ``name``'s live generation as its manifest records them; 0 without one."""
        m = self.manifest(name, verify="none")
        return 0 if m is None else sum(f["size"] for f in m["files"].values())

    def _live_generation(self, name: str) -> str | None:
        m, _ = self._read_manifest(name)
        gen = m.get("generation") if isinstance(m, dict) else None
        return gen if isinstance(gen, str) and gen.startswith("gen-") and "/" not in gen else None

    # --- writing ---------------------------------------------------------------------------------
    def _writer(self, gdir: str, fname: str) -> TeeWriter:
        return TeeWriter(self.bucket, f"{gdir}/{fname}")

    def _commit(self, writer: TeeWriter) -> dict:
        return writer.commit()

    def save(self, name: str, *, step: str, key: str, chunk: int | None = None,
             tables: dict | None = None, arrays: dict | None = None, values: dict | None = None,
             metadata: dict | None = None, key_components: dict | None = None,
             row_group_rows: int | None = None, compress: bool = True) -> dict:
        """Upload a checkpoint: data objects first, the manifest last (the commit), then delete
        the previous generation. Arguments as :meth:`CheckpointStore.save`.

        Raises:
            CheckpointError: bad names or data, a failed upload (the previous checkpoint is then
                intact), or a lease this process held and lost.
        """
        tables, arrays, vbytes = prepare_save(name, step, chunk, tables, arrays, values)
        if not isinstance(key, str) or not key:
            raise CheckpointError(f"checkpoint {name}: key must be a non-empty string (got {key!r})")
        self._lock.check()
        gen = f"gen-{time.time_ns():x}-{os.getpid()}-{HOST_TAG}-{secrets.token_hex(4)}"
        gdir = self.bucket.path(name, gen)
        try:
            files: dict[str, dict] = {}
            table_files = {t: self._write_table(gdir, t, df, files, row_group_rows, compress)
                           for t, df in tables.items()}
            array_files = self._write_arrays(gdir, arrays, files, compress)
            w = self._writer(gdir, "values.json")
            try:
                w.write(vbytes)
                files["values.json"] = w.commit()
            except BaseException:
                w.abort()
                raise
            manifest = build_manifest(
                name=name, step=step, chunk=chunk, key=key, key_components=key_components, metadata=metadata,
                generation=gen, files=files, tables=tables, table_files=table_files, arrays=arrays,
                array_files=array_files, values=list(values or {}))
            old_gen = self._live_generation(name)
            self._lock.check()
            self.bucket.pipe(self.bucket.path(name, MANIFEST), json_bytes(manifest))  # the commit point
        except (OSError, ValueError) as exc:
            self.bucket.rm(gdir, recursive=True)
            error = CheckpointError(f"could not upload checkpoint {name} to {self.root}: {_why(exc)}; the previous "
                                    "checkpoint is intact")
            error.resumable = True
            raise error from exc
        except BaseException:
            self.bucket.rm(gdir, recursive=True)
            raise
        if old_gen and old_gen != gen:
            self.bucket.rm(self.bucket.path(name, old_gen), recursive=True)
        return manifest

    def delete(self, name: str) -> None:
        """Delete checkpoint ``name``: its manifest first, so that a crash midway leaves it absent."""
        check_name(name)
        self.bucket.rm(self.bucket.path(name, MANIFEST))
        self.bucket.rm(self.bucket.path(name), recursive=True)

    def lock(self, *, wait: bool = False, timeout: float | None = None) -> ContextManager:
        """Hold the store's lease (``with store.lock(): ...``); re-entrant in the holding thread.

        Raises:
            LockedError: "... locked by pid N on host H since T (lease expires ...)".
        """
        return self._lock.hold(wait=wait, timeout=timeout)

    def verify(self, names: list[str] | None = None, *, full: bool = True) -> list[Problem]:
        return super().verify(names, full=full)

    verify.__doc__ = BaseStore.verify.__doc__


def _writer_gone(gen: str) -> bool:
    """Whether the writer of generation ``gen`` (``gen-<t>-<pid>-<host>-<r>``) is gone: on this host
    its process has ended; from another host, it is older than a day (the lease excludes a live
    run's writers from this store while it cleans, so the age only guards a straggler)."""
    from pathlib import PurePath

    try:
        started = int(gen.split("-")[1], 16) / 1e9
    except (IndexError, ValueError):
        return True
    if gen.split("-")[3:4] != [HOST_TAG]:
        return time.time() - started > 86400.0
    return writer_is_gone(gen, Path(PurePath(gen)))


def _why(exc: BaseException) -> str:
    """An error's text without anything that could carry a credential (URLs with query strings)."""
    text = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
    return text.split("?", 1)[0][:300]
