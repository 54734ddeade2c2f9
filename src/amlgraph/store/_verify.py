"""Full verification of the file store: content hashes and the checks of loading, each done once
per process while a file is unchanged.

Generation files are never rewritten in place, and a run checks the same checkpoints several
times (the plan, then each chunk before use, then the next steps' inputs), so a file's hash and
its structural verdict are remembered by its stat key. The ctime is part of the key: any write to
the file changes it, and it cannot be set back from user space. A file this process wrote is not
hashed at all: the writer hashed its bytes as they went out.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from amlgraph.store._files import VALUES_MAX_BYTES, hash_file, open_regular, read_json_file
from amlgraph.store._npy import check_npy

_VERIFIED: dict[tuple, str] = {}


def _stat_key(path: Path, st: os.stat_result) -> tuple:
    return (str(path), st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def verified_hash(path: Path, st: os.stat_result) -> str:
    key = _stat_key(path, st)
    digest = _VERIFIED.get(key)
    if digest is None:
        digest = _VERIFIED[key] = hash_file(path)
    return digest


#: Structural checks passed (a .npy header, a Parquet footer, values.json), by the file's stat key
#: and what the manifest expects of it: like a hash, valid while the file is unchanged.
_CHECKED: set[tuple] = set()


def written(path: Path, info: dict) -> dict:
    """Remember the hash of a file just written (``info`` as the writer returns it)."""
    _VERIFIED[_stat_key(path, path.lstat())] = info["hash"]
    return info


def _expectations(file: str, m: dict) -> list[tuple]:
    """What the manifest ``m`` says the data file ``file`` holds (hashable, for :data:`_CHECKED`)."""
    out: list[tuple] = []
    for item, info in m["arrays"].items():
        if info["file"] == file:
            out.append(("array", item, info["dtype"], tuple(info["shape"])))
    for item, info in m["tables"].items():
        if info["file"] == file:
            out.append(("table", item, info["rows"], tuple(sorted(info["schema"]))))
    if file == "values.json":
        out.append(("values", tuple(m["values"])))
    return out


def check_contents(path: Path, st: os.stat_result, file: str, m: dict) -> str | None:
    """What loading ``file`` would refuse, checked without reading all of it; None when it loads.

    An array: the checks of loading it (:func:`check_npy`: a plain dtype, never unpickled; C order;
    the recorded dtype and shape; the length the header implies). A table: its Parquet footer
    (row count and columns). ``values.json``: bounded JSON, an object holding every listed value.
    """
    for expect in _expectations(file, m):
        key = (_stat_key(path, st), expect)
        if key in _CHECKED:
            continue
        try:
            if expect[0] == "array":
                check_npy(path, {"dtype": expect[2], "shape": list(expect[3])})
            elif expect[0] == "table":
                _check_parquet(path, expect[2], list(expect[3]))
            else:
                missing = missing_values(read_json_file(path, max_bytes=VALUES_MAX_BYTES), m["values"])
                if missing:
                    raise ValueError(missing)
        except (OSError, ValueError) as exc:
            what = f"(array {expect[1]}) " if expect[0] == "array" else ""
            return f"{what}cannot be loaded: {getattr(exc, 'strerror', None) or exc}"
        _CHECKED.add(key)
    return None


def _check_parquet(path: Path, rows: int, columns: list[str]) -> None:
    import pyarrow.parquet as pq

    with open_regular(path) as f:
        try:
            meta = pq.ParquetFile(f).metadata
            names = sorted(meta.schema.to_arrow_schema().names)
        except Exception as exc:  # noqa: BLE001 (pyarrow raises several types for a bad footer)
            raise ValueError(f"not a readable Parquet file ({exc})") from None
    if meta.num_rows != rows or names != columns:
        raise ValueError(f"holds {meta.num_rows} rows of {names}, the manifest says {rows} rows of {columns}")


def missing_values(values: Any, names: list[str]) -> str | None:
    if not isinstance(values, dict):
        return "not a JSON object"
    missing = [n for n in names if n not in values]
    return f"lacks {', '.join(missing)}" if missing else None
