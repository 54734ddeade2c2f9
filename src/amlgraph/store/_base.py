"""What both checkpoint stores share: the Checkpoint view, manifests, ordering, key checks.

The file store (:mod:`amlgraph.store`) and the in-memory store (:mod:`amlgraph.store._memory`)
implement ``_save``/``_read``/... and inherit the public behaviour from :class:`BaseStore`, so
one contract test suite covers both.
"""
from __future__ import annotations

import datetime as _dt
import json
import re
import time
from pathlib import Path
from typing import Any, ContextManager, NamedTuple

import numpy as np
import polars as pl

from amlgraph.errors import CheckpointError
from amlgraph.store._keys import explain_mismatch
from amlgraph.schema import STEPS, parse_chunk_name
from amlgraph.store._files import (HASH_ALGORITHM, ITEM_RE, NAME_RE, VALUES_MAX_BYTES, check_item, check_json,
                                   check_name, hash_bytes, json_default)
from amlgraph.store._npy import unsafe_dtype

FORMAT_VERSION = 1
VERIFY_LEVELS = ("none", "quick", "full")
FILE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,200}$")
GEN_RE = re.compile(r"^gen-[0-9a-f]+-\d+-[0-9a-f]{8}-[0-9a-f]+$")
_HEX_RE = re.compile(r"^[0-9a-f]{1,128}$")


class Problem(NamedTuple):
    """A damaged checkpoint found by ``verify``: which one, which file (or None), what is wrong."""

    name: str
    file: str | None
    reason: str


class Checkpoint:
    """A loaded checkpoint: its manifest and lazy access to its tables, arrays and values."""

    def __init__(self, name: str, manifest: dict):
        self.name = name
        self.manifest = manifest

    @property
    def tables(self) -> list[str]:
        return sorted(self.manifest.get("tables", {}))

    @property
    def arrays(self) -> list[str]:
        return sorted(self.manifest.get("arrays", {}))

    @property
    def values(self) -> list[str]:
        return sorted(self.manifest.get("values", []))

    def _need(self, kind: str, name: str) -> None:
        if name not in getattr(self, kind):
            raise CheckpointError(f"checkpoint {self.name} has no {kind[:-1]} {name!r} "
                                  f"(it has: {', '.join(getattr(self, kind)) or 'none'})")

    def table(self, name: str) -> pl.DataFrame:
        """The Parquet table ``name``, read fully."""
        raise NotImplementedError

    def table_path(self, name: str) -> Path | None:
        """Path of the table's Parquet file for ``pl.scan_parquet``; None in a memory store."""
        raise NotImplementedError

    def array(self, name: str, *, mmap: bool = True) -> np.ndarray:
        """The array ``name``: read-only (memory-mapped in the file store) by default,
        a writable copy with ``mmap=False``."""
        raise NotImplementedError

    def value(self, name: str) -> Any:
        """The small JSON value ``name`` (a fresh copy)."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return (f"Checkpoint({self.name!r}, step={self.manifest.get('step')!r}, "
                f"tables={self.tables}, arrays={self.arrays}, values={self.values})")


def order_key(name: str, manifest: dict | None = None) -> tuple:
    """Sort key: pipeline order of the step, the step itself, then its chunks numerically."""
    step, chunk = (manifest or {}).get("step"), (manifest or {}).get("chunk")
    if step is None:
        parsed = parse_chunk_name(name)
        step, chunk = parsed if parsed else (name, None)
    idx = STEPS.index(step) if step in STEPS else len(STEPS)
    return (idx, "" if idx < len(STEPS) else step, chunk is not None, chunk or 0, name)


def now_iso() -> str:
    """Current UTC time, ISO 8601 with microseconds and a ``Z``."""
    return _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def library_versions() -> dict:
    import pyarrow

    from amlgraph import __version__

    return {"amlgraph": __version__, "polars": pl.__version__, "pyarrow": pyarrow.__version__,
            "numpy": np.__version__}


def manifest_checksum(manifest: dict) -> str:
    body = {k: v for k, v in manifest.items() if k != "manifest_checksum"}
    data = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
    return f"{HASH_ALGORITHM}:{hash_bytes(data)}"


def seal(manifest: dict) -> dict:
    """Normalise ``manifest`` through JSON and add its checksum."""
    text = json.dumps(manifest, default=json_default)
    check_json(text.encode(), f"the manifest of checkpoint {manifest.get('name')} (its metadata or key components)")
    manifest = json.loads(text)
    manifest["manifest_checksum"] = manifest_checksum(manifest)
    return manifest


class ArrayParts:
    """An array saved from pieces produced one at a time, so that it never sits whole in memory.

    The pieces, concatenated in C order, make the array: e.g. an edge matrix of shape (E, D) from
    each chunk's (rows_i, D) block, or an edge_index of shape (2, E) from every chunk's senders
    followed by every chunk's receivers. The file store writes each piece and lets it go; the
    memory store materialises the whole.

    Args:
        shape: the final shape.
        dtype: the final dtype (each piece is converted to it).
        pieces: zero-argument callables, each returning the next block of values.
    """

    def __init__(self, shape, dtype, pieces) -> None:
        self.shape = tuple(int(n) for n in shape)
        self.dtype = np.dtype(dtype)
        self.pieces = list(pieces)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    def _block(self, i: int) -> np.ndarray:
        return np.ascontiguousarray(self.pieces[i](), dtype=self.dtype).reshape(-1)

    def blocks(self):
        """Each piece as a flat, C-contiguous array of ``dtype``; checks the total size.

        The next piece is computed in a second thread while the caller writes this one (reading
        Parquet, NumPy and file writes release the GIL), so at most two pieces are in memory.
        """
        from functools import partial

        from amlgraph._prefetch import ahead

        seen = 0
        blocks = ahead([partial(self._block, i) for i in range(len(self.pieces))], "amlgraph-pieces")
        try:
            for block in blocks:
                seen += block.size
                if seen > self.size:
                    break
                yield block
        finally:
            blocks.close()
        if seen != self.size:
            raise CheckpointError(f"array pieces hold {seen} values, expected {self.size} "
                                  f"for shape {list(self.shape)}")

    def materialize(self) -> np.ndarray:
        return np.concatenate(list(self.blocks()) or [np.zeros(0, self.dtype)]).reshape(self.shape)


def prepare_save(name: str, step: str, chunk: int | None, tables: dict | None, arrays: dict | None,
                 values: dict | None) -> tuple[dict[str, pl.DataFrame], dict[str, np.ndarray], bytes]:
    """Validate what is about to be saved; return tables, C-contiguous arrays and values JSON.

    Raises:
        CheckpointError: for a bad name, an object array or a value that is not JSON.
    """
    check_name(name)
    check_name(step, "step name")
    if chunk is not None and (not isinstance(chunk, (int, np.integer)) or isinstance(chunk, bool) or chunk < 0):
        raise CheckpointError(f"invalid chunk {chunk!r} for checkpoint {name}: expected an int >= 0 or None")
    out_t: dict[str, pl.DataFrame] = {}
    for t, df in (tables or {}).items():
        check_item(t, "table")
        if not isinstance(df, pl.DataFrame):
            if type(df).__module__.startswith("pandas"):
                df = pl.from_pandas(df)
            else:
                raise CheckpointError(f"table {t!r} of checkpoint {name} is a {type(df).__name__}; "
                                      "expected a polars (or pandas) DataFrame")
        out_t[t] = df
    out_a: dict[str, np.ndarray] = {}
    for a, arr in (arrays or {}).items():
        check_item(a, "array")
        if not isinstance(arr, ArrayParts):
            arr = np.asarray(arr)
        bad = unsafe_dtype(arr.dtype)
        if bad:
            raise CheckpointError(f"array {a!r} of checkpoint {name} {bad}; store numeric or fixed-width "
                                  "arrays (one array per field of a structured one)")
        out_a[a] = arr if isinstance(arr, ArrayParts) else np.ascontiguousarray(arr)
    for v in values or {}:
        check_item(v, "value")
    try:
        vbytes = json.dumps(values or {}, sort_keys=True, default=json_default).encode()
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"a value of checkpoint {name} is not JSON-serialisable: {exc}; "
                              "store DataFrames as tables and numpy data as arrays") from exc
    return out_t, out_a, check_json(vbytes, f"the values of checkpoint {name}", max_bytes=VALUES_MAX_BYTES)


def build_manifest(*, name: str, step: str, chunk: int | None, key: str, key_components: dict | None,
                   metadata: dict | None, generation: str, files: dict, tables: dict[str, pl.DataFrame],
                   table_files: dict[str, str | None], arrays: dict[str, np.ndarray],
                   array_files: dict[str, str | None], values: list[str]) -> dict:
    """The manifest: the single commit point of a checkpoint (see docs/CHECKPOINTS.md)."""
    return seal({
        "format": FORMAT_VERSION,
        "name": name,
        "step": step,
        "chunk": None if chunk is None else int(chunk),
        "created": now_iso(),
        "key": key,
        "key_components": key_components or {},
        "generation": generation,
        "hash_algorithm": HASH_ALGORITHM,
        "files": files,
        "tables": {t: {"file": table_files[t], "rows": df.height,
                       "schema": {c: str(d) for c, d in df.schema.items()}} for t, df in tables.items()},
        "arrays": {a: {"file": array_files[a], "shape": list(arr.shape), "dtype": arr.dtype.str}
                   for a, arr in arrays.items()},
        "values": sorted(values),
        "libraries": library_versions(),
        "metadata": _timed(metadata),
    })


#: A metadata entry the store turns into ``seconds`` when it commits: the time from that
#: ``time.perf_counter()`` value to the commit, so that a checkpoint written lazily, piece by
#: piece, records its whole cost (`amlgraph status --json`).
STARTED = "_started"


def _timed(metadata: dict | None) -> dict:
    out = dict(metadata or {})
    started = out.pop(STARTED, None)
    if isinstance(started, (int, float)):
        out["seconds"] = round(time.perf_counter() - started, 3)
    return out


def _short(v: Any, limit: int = 60) -> str:
    text = repr(v)
    return text if len(text) <= limit else text[:limit] + "..."


def _is_int(v: Any, minimum: int = 0) -> bool:
    return type(v) is int and v >= minimum


def _is_iso(v: Any) -> bool:
    try:
        _dt.datetime.fromisoformat(v.replace("Z", "+00:00"))
        return True
    except (AttributeError, TypeError, ValueError):
        return False


def validate_manifest(name: str, m: Any, *, checksum: bool) -> str | None:
    """Schema check of a parsed manifest: the type of every field the store, the runner and the
    CLI use (see docs/CHECKPOINTS.md); returns what is wrong, or None."""
    if not isinstance(m, dict):
        return "not a JSON object"
    if not _is_int(m.get("format"), 1) or m["format"] > FORMAT_VERSION:
        return f"unknown manifest format {_short(m.get('format'))}"
    if m.get("name") != name:
        return f"names {_short(m.get('name'))}, expected {name!r}"
    for field, typ in (("step", str), ("key", str), ("generation", str), ("created", str), ("files", dict),
                       ("tables", dict), ("arrays", dict), ("values", list)):
        if not isinstance(m.get(field), typ):
            return f"field {field!r} missing or not a {typ.__name__}"
    for field in ("key_components", "metadata", "libraries"):
        if not isinstance(m.get(field, {}), dict):
            return f"field {field!r} is not an object"
    if not NAME_RE.match(m["step"]):
        return f"bad step name {_short(m['step'])}"
    if m.get("chunk") is not None and not _is_int(m["chunk"]):
        return f"bad chunk {_short(m['chunk'])} (expected an int >= 0 or null)"
    if not m["key"]:
        return "empty key"
    if not _is_iso(m["created"]):
        return f"bad creation time {_short(m['created'])}"
    if not GEN_RE.match(m["generation"]):
        return f"bad generation {_short(m['generation'])}"
    for f, info in m["files"].items():
        if not FILE_RE.match(f) or not isinstance(info, dict) or not _is_int(info.get("size")) \
                or not isinstance(info.get("hash"), str) or not _HEX_RE.match(info["hash"]):
            return f"bad file entry {_short(f)}"
    for kind in ("tables", "arrays"):
        for item, info in m[kind].items():
            if not ITEM_RE.match(item) or not isinstance(info, dict):
                return f"bad {kind[:-1]} entry {_short(item)}"
            if not isinstance(info.get("file"), str) or info["file"] not in m["files"]:
                return f"{kind[:-1]} {item!r} refers to an unlisted file"
    for item, info in m["tables"].items():
        if not _is_int(info.get("rows")) or not isinstance(info.get("schema"), dict) \
                or not all(isinstance(v, str) for v in info["schema"].values()):
            return f"table {item!r} has a bad row count or schema"
    for item, info in m["arrays"].items():
        shape = info.get("shape")
        if not isinstance(shape, list) or not all(_is_int(n) for n in shape):
            return f"array {item!r} has a bad shape"
        try:
            dtype = np.dtype(info.get("dtype")) if isinstance(info.get("dtype"), str) else None
        except (TypeError, ValueError, SyntaxError):
            dtype = None
        if dtype is None or dtype.str != info["dtype"]:
            return f"array {item!r} has a bad dtype"
        bad = unsafe_dtype(dtype)
        if bad:
            return f"array {item!r} {bad}"
    if not all(isinstance(v, str) and ITEM_RE.match(v) for v in m["values"]):
        return "bad value names"
    if m["values"] and "values.json" not in m["files"]:
        return "lists values but no values.json"
    if checksum and m.get("manifest_checksum") != manifest_checksum(m):
        return "checksum mismatch (edited or damaged)"
    return None


class BaseStore:
    """The public store interface; subclasses provide the storage."""

    verify_level = "quick"

    # --- provided by subclasses ---------------------------------------------------------------
    def _manifest_or_reason(self, name: str, verify: str) -> tuple[dict | None, str | None]:
        raise NotImplementedError

    def _checkpoint(self, name: str, manifest: dict) -> Checkpoint:
        raise NotImplementedError

    def _candidates(self) -> list[str]:
        raise NotImplementedError

    def save(self, name: str, *, step: str, key: str, chunk: int | None = None,
             tables: dict | None = None, arrays: dict | None = None, values: dict | None = None,
             metadata: dict | None = None, key_components: dict | None = None,
             row_group_rows: int | None = None, compress: bool = True) -> dict:
        raise NotImplementedError

    def delete(self, name: str) -> None:
        raise NotImplementedError

    def lock(self, *, wait: bool = False, timeout: float | None = None) -> ContextManager:
        raise NotImplementedError

    def size_bytes(self, name: str) -> int:
        raise NotImplementedError

    # --- shared behaviour ------------------------------------------------------------------------
    def _level(self, verify: str | None) -> str:
        level = self.verify_level if verify is None else verify
        if level not in VERIFY_LEVELS:
            raise CheckpointError(f"verify must be one of {VERIFY_LEVELS} (got {level!r})")
        return level

    def load(self, name: str, *, key: str | None = None, verify: str | None = None) -> Checkpoint | None:
        """The checkpoint ``name``, or None when missing, corrupt or (``key`` given) stale."""
        check_name(name)
        m, _ = self._manifest_or_reason(name, self._level(verify))
        if m is None or (key is not None and m["key"] != key):
            return None
        return self._checkpoint(name, m)

    def check(self, name: str, key: str, key_components: dict | None = None) -> tuple[bool, str | None]:
        """``(True, None)`` when ``name`` is valid with this key, else ``(False, reason)``.

        Reasons: ``"missing"``, ``"corrupt: <file> <what>"`` or the explained key mismatch, e.g.
        ``"input file changed: HI-Small_Trans.csv; parameter chunk_size changed (1000 -> 500)"``.
        """
        check_name(name)
        m, reason = self._manifest_or_reason(name, self._level(None))
        if m is None:
            return False, reason
        if m["key"] == key:
            return True, None
        old = m.get("key_components") or {}
        reasons = explain_mismatch(old, key_components) if old and key_components is not None else []
        return False, "; ".join(reasons) or f"key changed ({m['key'][:12]} -> {key[:12]})"

    def manifest(self, name: str, *, verify: str | None = None) -> dict | None:
        """The valid manifest of ``name`` at ``verify`` (default: the store's level), else None.

        ``verify="none"`` returns a well-formed manifest whose files may be damaged, e.g. to
        describe a damaged checkpoint."""
        check_name(name)
        return self._manifest_or_reason(name, self._level(verify))[0]

    def exists(self, name: str) -> bool:
        """Whether a valid checkpoint ``name`` exists (a data file alone proves nothing)."""
        return self.manifest(name) is not None

    def names(self) -> list[str]:
        """Valid checkpoints in pipeline order, each step's chunks right after it, numerically."""
        found = []
        for n in self._candidates():
            m, _ = self._manifest_or_reason(n, self._level(None))
            if m is not None:
                found.append((order_key(n, m), n))
        return [n for _, n in sorted(found)]

    def manifests(self) -> dict[str, dict]:
        """Valid manifests by name, in :meth:`names` order."""
        out = {}
        for n in self.names():
            m = self.manifest(n)
            if m is not None:
                out[n] = m
        return out

    def delete_all(self) -> None:
        """Delete every checkpoint (valid or damaged) of this store."""
        for n in self._candidates():
            self.delete(n)

    def verify(self, names: list[str] | None = None, *, full: bool = True) -> list[Problem]:
        """Check checkpoints (all by default); return one :class:`Problem` per damaged one."""
        level = "full" if full else "quick"
        problems = []
        for n in (self._candidates() if names is None else names):
            check_name(n)
            m, reason = self._manifest_or_reason(n, level)
            if m is None:
                problems.append(_problem(n, reason or "missing"))
        return sorted(problems, key=lambda p: order_key(p.name))


def _problem(name: str, reason: str) -> Problem:
    if reason.startswith("corrupt: "):
        rest = reason[len("corrupt: "):]
        file, _, what = rest.partition(" ")
        return Problem(name, file, what)
    return Problem(name, None, reason)
