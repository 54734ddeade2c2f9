"""MemoryStore: the checkpoint store interface kept in process memory (tests, notebooks).

Saved tables and arrays are copied, values go through JSON, so nothing the caller mutates later
changes a checkpoint; the manifest has the same fields as the file store's (without files).
"""
from __future__ import annotations

import copy
import json
import os
import secrets
import threading
import time
from pathlib import Path
from typing import Any, ContextManager

import numpy as np
import polars as pl

from amlgraph.store._base import ArrayParts, BaseStore, Checkpoint, build_manifest, prepare_save
from amlgraph.store._files import HOST_TAG, check_name
from amlgraph.store._lock import ThreadLock

from amlgraph.errors import CheckpointError


class MemoryCheckpoint(Checkpoint):
    """A checkpoint held by a :class:`MemoryStore`."""

    def __init__(self, name: str, manifest: dict, data: tuple[dict, dict, dict]):
        super().__init__(name, manifest)
        self._tables, self._arrays, self._values = data

    def table(self, name: str) -> pl.DataFrame:
        self._need("tables", name)
        return self._tables[name].clone()

    def table_path(self, name: str) -> Path | None:
        self._need("tables", name)
        return None

    def array(self, name: str, *, mmap: bool = True) -> np.ndarray:
        self._need("arrays", name)
        arr = self._arrays[name]
        if mmap:
            view = arr.view()
            view.flags.writeable = False
            return view
        return arr.copy()

    def value(self, name: str) -> Any:
        self._need("values", name)
        return copy.deepcopy(self._values[name])


class MemoryStore(BaseStore):
    """In-memory checkpoint store with the :class:`~amlgraph.store.CheckpointStore` interface.

    Args:
        verify: accepted for interface parity; memory cannot be damaged, so every level passes.
    """

    def __init__(self, *, verify: str = "quick"):
        self.root = None
        self.verify_level = self._level(verify)
        self._data: dict[str, tuple[dict, tuple[dict, dict, dict]]] = {}
        self._mutex = threading.Lock()
        self._lock = ThreadLock(f"memory store {id(self):#x}")

    def __repr__(self) -> str:
        return f"MemoryStore({len(self._data)} checkpoints)"

    def _candidates(self) -> list[str]:
        with self._mutex:
            return sorted(self._data)

    def _manifest_or_reason(self, name: str, verify: str) -> tuple[dict | None, str | None]:
        with self._mutex:
            entry = self._data.get(name)
        return (None, "missing") if entry is None else (entry[0], None)

    def _checkpoint(self, name: str, manifest: dict) -> Checkpoint:
        with self._mutex:
            return MemoryCheckpoint(name, manifest, self._data[name][1])

    def save(self, name: str, *, step: str, key: str, chunk: int | None = None,
             tables: dict | None = None, arrays: dict | None = None, values: dict | None = None,
             metadata: dict | None = None, key_components: dict | None = None,
             row_group_rows: int | None = None, compress: bool = True) -> dict:
        """Store a checkpoint (copies of the data) and return its manifest.

        ``row_group_rows`` and ``compress`` shape files on disk; nothing to do here.
        """
        tables, arrays, vbytes = prepare_save(name, step, chunk, tables, arrays, values)
        if not isinstance(key, str) or not key:
            raise CheckpointError(f"checkpoint {name}: key must be a non-empty string (got {key!r})")
        gen = f"gen-{time.time_ns():x}-{os.getpid()}-{HOST_TAG}-{secrets.token_hex(4)}"
        frozen_t = {t: df.clone() for t, df in tables.items()}
        frozen_a = {a: arr.materialize() if isinstance(arr, ArrayParts) else arr.copy()
                    for a, arr in arrays.items()}
        manifest = build_manifest(
            name=name, step=step, chunk=chunk, key=key, key_components=key_components, metadata=metadata,
            generation=gen, files={}, tables=frozen_t, table_files=dict.fromkeys(frozen_t),
            arrays=frozen_a, array_files=dict.fromkeys(frozen_a), values=list(values or {}))
        with self._mutex:
            self._data[name] = (manifest, (frozen_t, frozen_a, json.loads(vbytes)))
        return copy.deepcopy(manifest)

    def delete(self, name: str) -> None:
        check_name(name)
        with self._mutex:
            self._data.pop(name, None)

    def size_bytes(self, name: str) -> int:
        """Estimated bytes held by ``name`` (0 when missing)."""
        with self._mutex:
            entry = self._data.get(name)
        if entry is None:
            return 0
        tables, arrays, values = entry[1]
        return (sum(int(df.estimated_size()) for df in tables.values())
                + sum(int(a.nbytes) for a in arrays.values()) + len(json.dumps(values)))

    def lock(self, *, wait: bool = False, timeout: float | None = None) -> ContextManager:
        """Hold the store's lock; LockedError (naming pid and thread) when another thread holds it."""
        return self._lock.hold(wait=wait, timeout=timeout)
