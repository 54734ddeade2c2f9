"""An input file edited in place, with its mtime put back, is hashed again: the hash cache trusts a
cached hash only while the file's inode, size, mtime and ctime all match."""
from __future__ import annotations

import json
import os
import time
from pathlib import Path

from amlgraph.runner import run_preprocessing
from amlgraph.store._keys import HashCache, file_fingerprint
from pipeline_helpers import graph_digest
from store_fixtures import make_run


def _flip_label_in_place(trans: Path) -> None:
    """Flip the ``Is Laundering`` value of the first transaction: same size, same inode, then
    put the access and modification times back as ``touch -r`` would."""
    st = trans.stat()
    time.sleep(0.05)  # let the clock move on, so that the ctime of the edit differs
    with open(trans, "r+b") as f:
        header = f.readline()
        assert header.rstrip(b"\r\n").split(b",")[-1] == b"Is Laundering", header
        line = f.readline()
        end = f.tell() - len(line) + len(line.rstrip(b"\r\n"))
        f.seek(end - 1)
        old = f.read(1)
        assert old in (b"0", b"1")
        f.seek(end - 1)
        f.write(b"1" if old == b"0" else b"0")
    os.utime(trans, ns=(st.st_atime_ns, st.st_mtime_ns))
    now = trans.stat()
    assert (now.st_ino, now.st_size, now.st_mtime_ns) == (st.st_ino, st.st_size, st.st_mtime_ns)
    assert now.st_ctime_ns != st.st_ctime_ns


def test_label_flipped_in_place_with_mtime_put_back_is_recomputed(tmp_path):
    data, ckpt = make_run(tmp_path)
    opts = {"data_path": data, "checkpoint_dir": ckpt, "quiet": True, "chunk_size": 20, "chunk_rows": 200}
    before = graph_digest(run_preprocessing(**opts).graph)
    _flip_label_in_place(next(data.glob("*_Trans.csv")))
    again = run_preprocessing(**opts)
    assert again.computed[:1] == ["data_loaded"], f"stale checkpoints served: computed {again.computed}"
    after = graph_digest(again.graph)
    fresh = graph_digest(run_preprocessing(**{**opts, "checkpoint_dir": tmp_path / "fresh"}).graph)
    assert after == fresh and after != before


def test_hash_cache_entry_needs_inode_size_mtime_and_ctime(tmp_path):
    f = tmp_path / "t.csv"
    f.write_bytes(b"a,b\n1,0\n")
    cache_path = tmp_path / ".hashcache.json"
    first = file_fingerprint(f, cache=HashCache(cache_path))
    _flip_label_in_place_plain(f)
    assert file_fingerprint(f, cache=HashCache(cache_path))["hash"] != first["hash"]
    entry = json.loads(cache_path.read_text())["entries"][str(f.resolve())]
    assert entry["ctime_ns"] == f.stat().st_ctime_ns
    # an entry written before ctimes were recorded is not trusted either
    raw = json.loads(cache_path.read_text())
    for e in raw["entries"].values():
        e.pop("ctime_ns")
        e["hash"] = "0" * 32
    cache_path.write_text(json.dumps(raw))
    assert file_fingerprint(f, cache=HashCache(cache_path))["hash"] != "0" * 32


def _flip_label_in_place_plain(f: Path) -> None:
    st = f.stat()
    time.sleep(0.05)
    data = bytearray(f.read_bytes())
    data[-2] ^= 1  # "0" <-> "1"
    with open(f, "r+b") as out:
        out.write(data)
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert f.stat().st_ino == st.st_ino and f.stat().st_ctime_ns != st.st_ctime_ns
