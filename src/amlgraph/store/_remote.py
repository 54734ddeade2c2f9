"""Local copies of remote files: the inputs of a run given as URLs, and folders uploaded as exports.

An input given as a URL (``s3://bucket/data/`` or ``s3://bucket/data/HI-Small_Trans.csv``) is
fetched once into this machine's cache (:mod:`amlgraph.store._cache`), each file under the name
it has in the bucket and beside a note of the version it came from (ETag or modification time,
and size); a later run downloads only the files whose version changed. The reader then reads the
copy exactly as a local file (the block reader's ``pread`` path), so a run on a URL hashes,
parses and keys the same bytes as a run on a local copy, and gives the same checkpoints.

An output folder given as a URL is written locally first (atomically, as every export is), then
uploaded file by file, each file one PUT or one completed multipart upload, so a reader of the
bucket sees each file whole or not at all.
"""
from __future__ import annotations

import re
from pathlib import Path

from amlgraph.store._cache import cache_dir
from amlgraph.store._files import hash_bytes


def _version(info: dict) -> str:
    tag = info.get("ETag") or info.get("etag") or info.get("mtime") or info.get("LastModified") or ""
    return f"{tag}:{info.get('size')}"


def local_copy(url: str, pattern: str) -> Path:
    """A local folder holding the files of ``url`` whose names match ``pattern`` (a regex).

    ``url`` is a folder (every matching file directly in it) or a file (it and the matching files
    beside it). Returns the folder, or the copied file when ``url`` names a file.

    Raises:
        FileNotFoundError: nothing at ``url``. OSError: a failed download (nothing partial is kept).
    """
    from amlgraph._atomic import atomic_file
    from amlgraph.store._fs import Bucket

    name_re = re.compile(pattern)
    target = Bucket(url)
    fs, path = target.fs, target.root
    if not fs.exists(path):
        raise FileNotFoundError(url)
    is_file = fs.isfile(path)
    folder = path.rsplit("/", 1)[0] if is_file else path
    local = cache_dir() / "inputs" / hash_bytes(f"{target.protocol}://{folder}".encode())[:16]
    local.mkdir(parents=True, exist_ok=True)
    for info in fs.ls(folder, detail=True, refresh=True):
        name = info["name"].rstrip("/").rsplit("/", 1)[-1]
        if info.get("type") != "file" or not (name_re.match(name) or (is_file and info["name"] == path)):
            continue
        dest, note = local / name, local / f".{name}.version"
        version = _version(info)
        if dest.is_file() and note.is_file() and note.read_text() == version:
            continue
        with fs.open(info["name"], "rb") as src, atomic_file(dest) as out:
            while block := src.read(8 << 20):
                out.write(block)
        note.write_text(version)
    return local / path.rsplit("/", 1)[-1] if is_file else local


def upload_folder(local: Path, url: str) -> int:
    """Upload every file under ``local`` to the folder ``url`` (same relative names); returns bytes sent."""
    from amlgraph.store._fs import Bucket

    import shutil

    from amlgraph._atomic import atomic_file

    target = Bucket(url)
    sent = 0
    for file in sorted(p for p in Path(local).rglob("*") if p.is_file()):
        dest = target.path(file.relative_to(local).as_posix())
        if target.local:  # file://: a copy renamed into place, as every local write
            Path(dest).parent.mkdir(parents=True, exist_ok=True)
            with open(file, "rb") as src, atomic_file(Path(dest)) as out:
                shutil.copyfileobj(src, out, 8 << 20)
        else:
            target.fs.put_file(str(file), dest)
        sent += file.stat().st_size
    return sent

