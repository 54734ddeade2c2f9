"""The seed system's checkpoint functions, same names and call shapes, over CheckpointStore.

No pickle: DataFrames become Parquet tables, numpy arrays ``.npy`` files, everything else JSON.
Legacy ``*.pkl`` files in a checkpoint directory are ignored, never unpickled.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl
import xxhash

from amlgraph.errors import CheckpointError, ConfigError
from amlgraph.schema import STEPS, parse_chunk_name
from amlgraph.store import CheckpointStore
from amlgraph.store._files import check_name, json_bytes

_LAYOUT = "compat_layout"


def create_checkpoint_dir(data_path: str | os.PathLike, sample_size: int | None) -> Path:
    """Create (if needed) and return ``<data_path>/checkpoints_<sample_size>`` (``checkpoints_all``
    when ``sample_size`` is None)."""
    if sample_size is not None and (not isinstance(sample_size, (int, np.integer)) or isinstance(sample_size, bool)
                                    or sample_size <= 0):
        raise ConfigError(f"sample_size must be a positive int or None (got {sample_size!r})")
    path = Path(data_path) / (f"checkpoints_{int(sample_size)}" if sample_size is not None else "checkpoints_all")
    CheckpointStore(path, create=True)
    return path


def _kind(obj: Any) -> str:
    if isinstance(obj, pl.DataFrame):
        return "polars"
    if type(obj).__module__.startswith("pandas") and type(obj).__name__ == "DataFrame":
        return "pandas"
    if isinstance(obj, np.ndarray) and not obj.dtype.hasobject:
        return "numpy"
    return "json"


def _content_key(step: str, tables: dict, arrays: dict, values: dict) -> str:
    """Content hash of the data (row hashes for tables: stable within one polars version)."""
    h = xxhash.xxh3_128(step.encode())
    for name, df in sorted(tables.items()):
        h.update(f"\0t:{name}:{df.schema}".encode())
        if df.height:
            h.update(df.hash_rows(seed=0).to_numpy().tobytes())
    for name, arr in sorted(arrays.items()):
        h.update(f"\0a:{name}:{arr.dtype.str}:{arr.shape}".encode())
        h.update(np.ascontiguousarray(arr).reshape(-1).view(np.uint8))
    try:
        h.update(b"\0v:" + json_bytes(values))
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"checkpoint {step}: data is neither a DataFrame, a numeric array nor "
                              f"JSON-serialisable ({exc}); convert it before saving") from exc
    return h.hexdigest()


def save_checkpoint(checkpoint_dir: str | os.PathLike, step_name: str, data: Any,
                    metadata: dict | None = None) -> Path:
    """Save ``data`` as checkpoint ``step_name``; its key is the content hash of ``data``.

    Args:
        checkpoint_dir: from :func:`create_checkpoint_dir`.
        step_name: a step (``"node_features"``) or chunk (``"node_features_chunk_3"``) name.
        data: a polars or pandas DataFrame, a numpy array, a dict of those and JSON-able values,
            or JSON-able values.
        metadata: small JSON-able dict (e.g. ``{"num_accounts": 518581}``).

    Returns:
        The checkpoint's directory.

    Raises:
        CheckpointError: bad name, data that is neither tabular, numeric nor JSON, a NaN or an
            infinity in the JSON part (values.json is strict JSON; numpy arrays may hold them),
            or a failed write.
    """
    check_name(step_name, "step name")
    tables: dict[str, pl.DataFrame] = {}
    arrays: dict[str, np.ndarray] = {}
    values: dict[str, Any] = {}

    def put(obj: Any, slot: str) -> str:
        kind = _kind(obj)
        if kind in ("polars", "pandas"):
            tables[slot] = obj if kind == "polars" else pl.from_pandas(obj)
        elif kind == "numpy":
            arrays[slot] = obj
        else:
            values[slot] = obj
        return kind

    # a dict holding frames/arrays, or with non-str keys (JSON would turn {0: w} into {"0": w})
    if isinstance(data, dict) and any(_kind(v) != "json" or not isinstance(k, str) for k, v in data.items()):
        items = [[k, put(v, f"item{i}"), f"item{i}"] for i, (k, v) in enumerate(data.items())]
        layout = {"kind": "dict", "items": items}
    else:
        layout = {"kind": put(data, "data")}
    values[_LAYOUT] = layout
    names = {slot: f"data[{k!r}]" for k, _, slot in layout.get("items", [])} | {"data": "data"}
    for slot, value in values.items():
        bad = _non_finite(value, names.get(slot, slot))
        if bad is not None:
            raise CheckpointError(
                f"checkpoint {step_name}: {bad[0]} is not finite ({bad[1]!r}); JSON has no NaN or "
                "Infinity, so it cannot go into values.json: put such numbers in a numpy array "
                "(arrays keep NaN) or replace them, e.g. by None")
    m = dict(metadata or {})
    m.setdefault("step", step_name)
    store = CheckpointStore(checkpoint_dir, create=True)
    parsed = parse_chunk_name(step_name)
    step, chunk = parsed if parsed else (step_name, None)
    store.save(step_name, step=step, chunk=chunk,
               key=_content_key(step_name, tables, arrays, values),
               tables=tables, arrays=arrays, values=values, metadata=m)
    return store.root / step_name


def _non_finite(value: Any, where: str) -> tuple[str, float] | None:
    """Where a JSON-bound value holds a NaN or an infinity, and that number; None if nowhere.

    Python's ``json`` writes them as ``NaN`` / ``Infinity``, which no strict JSON parser reads.
    """
    if isinstance(value, (float, np.floating)):
        return None if np.isfinite(value) else (where, float(value))
    if isinstance(value, np.ndarray):  # nested in a list or dict: written as a JSON list
        if value.dtype.kind == "f" and not np.isfinite(value).all():
            at = tuple(int(i) for i in np.argwhere(~np.isfinite(value))[0])
            return f"{where}{list(at)}", float(value[at])
        return None
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, (list, tuple)):
        items = enumerate(value)
    else:
        return None
    for k, v in items:
        found = _non_finite(v, f"{where}[{k!r}]")
        if found is not None:
            return found
    return None


def _step_of(name: str) -> str:
    parsed = parse_chunk_name(name)
    return parsed[0] if parsed else name


def _open(checkpoint_dir: str | os.PathLike) -> CheckpointStore | None:
    try:
        return CheckpointStore(checkpoint_dir, create=False)
    except CheckpointError:
        return None


def load_checkpoint(checkpoint_dir: str | os.PathLike, step_name: str) -> tuple[Any, dict | None]:
    """Load checkpoint ``step_name``: ``(data, metadata)``, or ``(None, None)`` when it is absent
    or damaged (it is then recomputed)."""
    check_name(step_name, "step name")
    store = _open(checkpoint_dir)
    cp = store.load(step_name) if store is not None else None
    if cp is None or _LAYOUT not in cp.values:
        return None, None
    try:
        layout = cp.value(_LAYOUT)

        def get(kind: str, slot: str) -> Any:
            if kind in ("polars", "pandas"):
                df = cp.table(slot)
                return df.to_pandas() if kind == "pandas" else df
            if kind == "numpy":
                return cp.array(slot, mmap=False)
            return cp.value(slot)

        if layout["kind"] == "dict":
            data = {k: get(kind, slot) for k, kind, slot in layout["items"]}
        else:
            data = get(layout["kind"], "data")
    except (CheckpointError, KeyError, TypeError, ValueError):
        return None, None
    meta = dict(cp.manifest.get("metadata") or {})
    meta.setdefault("step", cp.manifest["step"])
    meta.setdefault("timestamp", cp.manifest["created"])
    return data, meta


def list_available_checkpoints(checkpoint_dir: str | os.PathLike) -> list[str]:
    """Names of the valid checkpoints in pipeline order, chunks numerically after their step."""
    store = _open(checkpoint_dir)
    return store.names() if store is not None else []


def resume_from_checkpoint(checkpoint_dir: str | os.PathLike, step: str) -> tuple[Any, dict | None]:
    """``(data, metadata)`` of ``step``'s checkpoint, ``(None, None)`` when it cannot be resumed.

    Raises:
        ConfigError: ``step`` is neither a pipeline step nor one of its chunks.
    """
    if _step_of(step) not in STEPS:
        raise ConfigError(f"step must be one of {{{', '.join(STEPS)}}} or '<step>_chunk_<i>' (got {step!r})")
    return load_checkpoint(checkpoint_dir, step)


def run_simple_preprocessing(data_path, sample_size=10000, resume_from=None, chunk_size=1000, *,
                             checkpoint_dir=None, **options):
    """The seed's entry point: run the pipeline, return its five results.

    Args:
        data_path: directory holding ``*_Trans.csv`` (and optionally the accounts and patterns files).
        sample_size: the first N transactions in file order (None: all), as the seed sampled.
        resume_from: a step name; checkpoints through it are reused, the steps after recomputed.
        chunk_size: accounts per node_features chunk, as the seed's ``chunk_size``.
        checkpoint_dir: default ``<data_path>/checkpoints_<sample_size>``.
        **options: any other field of :class:`amlgraph.config.PipelineConfig`.

    Returns:
        ``(G, node_features, edge_features, edge_labels, class_weights)``: the TransactionGraph,
        normalised node features of shape (N, F), edge features of shape (E, D), edge labels of
        shape (E,) and ``{0: w0, 1: w1}``. The arrays are memory-mapped from the checkpoints.
    """
    from amlgraph.runner import run_preprocessing

    if checkpoint_dir is None:  # the seed's place, kept for its users (the library names it per data set)
        base = Path(data_path) if Path(data_path).is_dir() else Path(data_path).parent
        checkpoint_dir = base / f"checkpoints_{sample_size if sample_size is not None else 'all'}"
    result = run_preprocessing(data_path=data_path, sample_size=sample_size, resume_from=resume_from,
                               chunk_size=chunk_size, checkpoint_dir=checkpoint_dir, **options)
    return result.as_seed_tuple()
