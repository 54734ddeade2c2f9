"""What makes a checkpoint valid: its key.

A key is the hash of the canonical JSON of its components::

    {"step": "node_features", "params": {...}, "code": code_version(...),
     "inputs": {"data_loaded": "<upstream key>"}, "files": {"HI-Small_Trans.csv": fingerprint},
     "version": amlgraph.__version__}

A file's fingerprint enters the key by name, size and content hash only: touching a file
(a new mtime, same bytes) does not invalidate anything. Inode, mtime and ctime only serve the
:class:`HashCache`, which spares re-hashing unchanged multi-GB inputs.
"""
from __future__ import annotations

import hashlib
import importlib.util
import os
import re
import threading
from pathlib import Path
from typing import Any

from amlgraph.errors import CheckpointError
from amlgraph.store._files import HASH_ALGORITHM, hash_file, json_bytes, read_json_file, write_atomic

_FILE_KEY_FIELDS = ("name", "size", "hash")


class HashCache:
    """Content hashes of input files, keyed by path.

    A cached hash is trusted only while the file's inode, size, mtime and ctime (``st_ino``,
    ``st_size``, ``st_mtime_ns``, ``st_ctime_ns``) all equal the recorded ones; otherwise the file
    is hashed again. The ctime is what makes this safe: a file edited in place and given its old
    mtime back (``touch -r``) keeps inode, size and mtime, but any write or ``utime`` sets its
    ctime to the current time, and user space cannot set it back.

    Stored as a small JSON file (e.g. ``<checkpoint root>/.hashcache.json``), written atomically,
    read as every store file is (a regular file only, size- and depth-bounded; a symlink to one is
    followed). A missing, unreadable or malformed cache file is an empty cache; a malformed entry
    is ignored.

    Args:
        path: the JSON file.
    """

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path)
        self._lock = threading.Lock()
        self._entries: dict[str, dict] = _read_entries(self.path)

    def get(self, path: Path, st: os.stat_result) -> str | None:
        """Cached hash of ``path`` when its inode, size, mtime and ctime are unchanged, else None."""
        e = self._entries.get(str(path))
        if e is not None and tuple(e[f] for f in _STAT_FIELDS) == _stat_values(st):
            return e["hash"]
        return None

    def put(self, path: Path, st: os.stat_result, digest: str) -> None:
        """Record ``digest`` for ``path`` and write the cache file atomically."""
        with self._lock:
            self._entries[str(path)] = {**dict(zip(_STAT_FIELDS, _stat_values(st))), "hash": digest}
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                write_atomic(self.path, json_bytes({"algorithm": HASH_ALGORITHM, "entries": self._entries}))
            except OSError:
                pass  # a cache that cannot be written only costs a re-hash next time


_STAT_FIELDS = ("inode", "size", "mtime_ns", "ctime_ns")
_HASH_RE = re.compile(r"^[0-9a-f]{32}$")
_CACHE_MAX_BYTES = 16 << 20


def _stat_values(st: os.stat_result) -> tuple[int, int, int, int]:
    return (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def _read_entries(path: Path) -> dict[str, dict]:
    """The well-formed entries of the cache file ``path``; {} for anything unusable."""
    try:
        data = read_json_file(path, max_bytes=_CACHE_MAX_BYTES, follow_symlinks=True)
    except (OSError, ValueError):
        return {}
    if not isinstance(data, dict) or data.get("algorithm") != HASH_ALGORITHM:
        return {}
    entries = data.get("entries")
    if not isinstance(entries, dict):
        return {}
    return {p: e for p, e in entries.items() if _good_entry(e)}


def _good_entry(e: Any) -> bool:
    return (isinstance(e, dict) and isinstance(e.get("hash"), str) and bool(_HASH_RE.match(e["hash"]))
            and all(type(e.get(f)) is int for f in _STAT_FIELDS))


def file_fingerprint(path: str | os.PathLike, *, cache: HashCache | None = None) -> dict:
    """Fingerprint of an input file: ``{"name", "size", "mtime_ns", "hash"}``.

    Args:
        path: the file.
        cache: optional :class:`HashCache`; the content hash is reused while the file's
            inode, size, mtime and ctime are unchanged.

    Raises:
        CheckpointError: when the file cannot be read.
    """
    p = Path(path).resolve()
    try:
        st = p.stat()
        digest = cache.get(p, st) if cache is not None else None
        if digest is None:
            digest = hash_file(p)
            if cache is not None:
                cache.put(p, st, digest)
    except OSError as exc:
        raise CheckpointError(f"cannot fingerprint input file {p}: {exc.strerror or exc}; "
                              "check that it exists and is readable") from exc
    return {"name": p.name, "size": st.st_size, "mtime_ns": st.st_mtime_ns, "hash": digest}


def code_version(*modules: str) -> str:
    """Hash of the source of the named amlgraph modules plus ``amlgraph.__version__``.

    A package name covers every ``.py`` file below it. Modules are located, not imported.

    Args:
        *modules: dotted names such as ``"amlgraph.steps.node_features"``.

    Raises:
        CheckpointError: for a module that cannot be found.
    """
    from amlgraph import __version__

    h = hashlib.sha256(f"amlgraph {__version__}\n".encode())
    for name in sorted(set(modules)):
        try:
            spec = importlib.util.find_spec(name)
        except (ImportError, ValueError) as exc:
            raise CheckpointError(f"code_version: cannot find module {name!r}: {exc}") from exc
        if spec is None or not spec.origin or not os.path.exists(spec.origin):
            raise CheckpointError(f"code_version: cannot find the source of module {name!r}; "
                                  "give a dotted name such as 'amlgraph.steps.node_features'")
        origin = Path(spec.origin)
        files = sorted(origin.parent.rglob("*.py")) if spec.submodule_search_locations else [origin]
        for f in files:
            h.update(f"\0{name}:{f.relative_to(origin.parent).as_posix()}\0".encode())
            h.update(f.read_bytes())
    return h.hexdigest()[:32]


def key_view(components: dict) -> dict:
    """The part of the components that enters the key (file fingerprints without mtime)."""
    view = dict(components)
    files = view.get("files")
    if isinstance(files, dict):
        view["files"] = {n: ({k: fp[k] for k in _FILE_KEY_FIELDS if k in fp} if isinstance(fp, dict) else fp)
                         for n, fp in files.items()}
    return view


def make_key(components: dict) -> str:
    """Stable key: sha256 of the canonical JSON of ``components`` (see module docstring).

    Raises:
        CheckpointError: when a component is not JSON-serialisable (or is NaN).
    """
    try:
        data = json_bytes(key_view(components), canonical=True)
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"checkpoint key components are not JSON-serialisable: {exc}; "
                              "use str, int, float, bool, None, lists and dicts") from exc
    return hashlib.sha256(data).hexdigest()


def explain_mismatch(old: dict, new: dict) -> list[str]:
    """Human reasons why ``new`` components differ from ``old`` ones, most specific first.

    Returns:
        e.g. ``["input file changed: HI-Small_Trans.csv", "parameter chunk_size changed (1000 -> 500)"]``;
        empty when the key-relevant parts are equal.
    """
    old = key_view(old) if isinstance(old, dict) else {}
    new = key_view(new) if isinstance(new, dict) else {}
    reasons: list[str] = []
    for section in ("files", "params", "inputs"):  # a malformed record (a damaged manifest) explains itself
        if not all(isinstance(d.get(section) or {}, dict) for d in (old, new)):
            reasons.append(f"{section} changed")
            old, new = {k: v for k, v in old.items() if k != section}, {k: v for k, v in new.items() if k != section}
    of, nf = old.get("files") or {}, new.get("files") or {}
    for name in sorted(set(of) | set(nf)):
        if name not in of:
            reasons.append(f"input file added: {name}")
        elif name not in nf:
            reasons.append(f"input file removed: {name}")
        elif of[name] != nf[name]:
            reasons.append(f"input file changed: {name}")
    op, np_ = old.get("params") or {}, new.get("params") or {}
    for name in sorted(set(op) | set(np_)):
        if name not in op:
            reasons.append(f"parameter {name} added (= {_short(np_[name])})")
        elif name not in np_:
            reasons.append(f"parameter {name} removed (was {_short(op[name])})")
        elif _canon(op[name]) != _canon(np_[name]):
            reasons.append(f"parameter {name} changed ({_short(op[name])} -> {_short(np_[name])})")
    step = new.get("step") or old.get("step") or "this step"
    if old.get("code") != new.get("code"):
        reasons.append(f"code of {step} changed")
    oi, ni = old.get("inputs") or {}, new.get("inputs") or {}
    for name in sorted(set(oi) | set(ni)):
        if name not in oi:
            reasons.append(f"input {name} added")
        elif name not in ni:
            reasons.append(f"input {name} removed")
        elif oi[name] != ni[name]:
            reasons.append(f"input {name} changed")
    if old.get("version") != new.get("version"):
        reasons.append(f"amlgraph version changed ({_clip(old.get('version'))} -> {_clip(new.get('version'))})")
    if old.get("step") != new.get("step"):
        reasons.append(f"step changed ({_clip(old.get('step'))} -> {_clip(new.get('step'))})")
    known = {"files", "params", "code", "inputs", "version", "step"}
    for name in sorted((set(old) | set(new)) - known):
        if _canon(old.get(name)) != _canon(new.get(name)):
            reasons.append(f"{name} changed")
    return reasons


def _canon(value: Any) -> str:
    try:
        return json_bytes(value, canonical=True).decode()
    except (TypeError, ValueError):
        return repr(value)


def _clip(value: Any, limit: int = 40) -> str:
    text = str(value)
    return text if len(text) <= limit else text[:limit] + "..."


def _short(value: Any, limit: int = 40) -> str:
    text = _canon(value)
    return text if len(text) <= limit else text[:limit] + "..."
