"""The object store against real servers on loopback (moto's S3; for the tests marked
``every_backend`` also fake-gcs-server and Azurite) and on file://: the commit protocol without
rename, damaged objects, the conditional writes and the lease, orphans, and URLs never taken for
paths."""
from __future__ import annotations

import json
import os
import signal
import time

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from amlgraph.errors import CheckpointError, LockedError
from amlgraph.store import CheckpointStore, is_store, open_store
from amlgraph.store._fs import Bucket
from object_stores import cache_files, every_backend, objects
from store_helpers import sample_data, spawn

SAVE_LOOP = r"""
import sys, numpy as np, polars as pl
from amlgraph.store import open_store
store = open_store(sys.argv[1])
print("ready", flush=True)
v = 1
while True:
    store.save("node_features", step="node_features", key=f"k{v}",
               tables={"t": pl.DataFrame({"v": np.full(1000, v)})},
               arrays={"x": np.full(1_500_000, float(v))}, values={"version": v})
    print(v, flush=True)
    v += 1
"""

HOLD = r"""
import sys, time
from amlgraph.store import open_store
store = open_store(sys.argv[1])
with store.lock():
    print("locked", flush=True)
    time.sleep(float(sys.argv[2]))
"""

LOCKED_WRITER = r"""
import sys, numpy as np
from amlgraph.store import open_store
store = open_store(sys.argv[1])
w = int(sys.argv[2])
for i in range(int(sys.argv[3])):
    with store.lock(wait=True, timeout=120):
        store.save("edge_features", step="edge_features", key=f"w{w}-{i}",
                   arrays={"x": np.full(100_000, float(w * 100 + i))}, values={"writer": w, "i": i})
"""


def _save(store, name="weights", key="k", seed=0):
    tables, arrays, values = sample_data(seed)
    return store.save(name, step=name, key=key, tables=tables, arrays=arrays, values=values)


def test_a_url_opens_an_object_store_and_never_a_local_directory(store_url, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    store = open_store(store_url)
    assert type(store).__name__ == "ObjectStore" and store.root == store_url
    assert not (tmp_path / "s3:").exists() and not (tmp_path / "file:").exists()
    assert is_store(store_url) and "amlgraph-store.json" in objects(store_url)
    with pytest.raises(CheckpointError, match="no checkpoint store"):
        open_store(store_url + "-other", create=False)


def test_round_trip_and_replace(store_url, tmp_path):
    store = open_store(store_url)
    tables, arrays, values = sample_data(3)
    store.save("data_loaded", step="data_loaded", key="k1", tables=tables, arrays=arrays, values=values)
    first = store.manifest("data_loaded")["generation"]
    store.save("data_loaded", step="data_loaded", key="k2", tables=tables, arrays=arrays, values=values)
    assert store.check("data_loaded", "k2") == (True, None)
    assert store.check("data_loaded", "k1")[0] is False
    # A second process (here: a second store object with an empty cache) reads what was uploaded.
    os.environ["AMLGRAPH_CACHE_DIR"] = str(tmp_path / "other-cache")
    cp = open_store(store_url).load("data_loaded", verify="full")
    assert_frame_equal(cp.table("transactions"), tables["transactions"])
    assert_frame_equal(pl.scan_parquet(cp.table_path("transactions")).collect(), tables["transactions"])
    for name, arr in arrays.items():
        got = cp.array(name)
        assert not got.flags.writeable
        np.testing.assert_array_equal(got, arr)
    assert {v: cp.value(v) for v in values} == values
    gens = {p.split("/")[1] for p in objects(store_url) if p.startswith("data_loaded/gen-")}
    assert first not in gens and len(gens) == 1  # the replaced generation is gone
    assert cache_files(tmp_path / "other-cache")
    store.delete("data_loaded")
    assert store.names() == [] and not [p for p in objects(store_url) if p.startswith("data_loaded/")]


@every_backend
def test_the_backend_honours_both_conditional_writes(store_url):
    """Create-if-absent and replace-if-unchanged are conditions the server checks: a server or an
    emulator that ignored them (last writer wins) fails here, and the lease would not exclude."""
    bucket = Bucket(store_url)
    path = bucket.path("probe.json")
    assert bucket.create(path, b"first") is True
    assert bucket.create(path, b"second") is False
    data, tag = bucket.read_tagged(path)
    assert data == b"first"
    assert bucket.replace_if(path, b"third", tag) is True
    assert bucket.replace_if(path, b"fourth", tag) is False  # the tag read before "third" is stale
    data, now = bucket.read_tagged(path)
    assert data == b"third" and now != tag
    bucket.rm(path)
    assert bucket.replace_if(path, b"fifth", now) is False  # gone: nothing to replace
    assert bucket.read_tagged(path) is None


@every_backend
def test_a_damaged_object_is_detected_and_never_used(store_url):
    store = open_store(store_url)
    _save(store)
    m = store.manifest("weights")
    bucket = Bucket(store_url)
    path = bucket.path("weights", m["generation"], "array-features.npy")
    data = bytearray(bucket.cat(path))
    data[-1] ^= 0xFF  # same size: only the content hash can tell
    bucket.pipe(path, bytes(data))
    os.environ["AMLGRAPH_CACHE_DIR"] += "-fresh"  # no local copy of the good bytes
    fresh = open_store(store_url)
    assert fresh.check("weights", "k")[0] is True  # quick: manifest and sizes
    problems = fresh.verify()
    assert [(p.name, p.file) for p in problems] == [("weights", "array-features.npy")]
    assert "hash" in problems[0].reason
    assert fresh.load("weights", verify="full") is None
    with pytest.raises(CheckpointError, match="damaged.*hash mismatch"):
        fresh.load("weights", verify="quick").array("features")
    bucket.pipe(path, bytes(data[:-10]))  # truncated
    assert "bytes, expected" in fresh.check("weights", "k")[1]


def test_manifest_missing_means_absent_and_orphans_are_cleaned_under_the_lease(store_url):
    store = open_store(store_url)
    _save(store)
    bucket = Bucket(store_url)
    # A writer that died after its data objects, before its manifest: a generation no manifest names.
    live = store.manifest("weights")["generation"]
    dead = "gen-1-999999-00000000-deadbeef"
    for name, info in objects(store_url).items():
        if name.startswith(f"weights/{live}/"):
            bucket.pipe(bucket.path("weights", dead, name.rsplit("/", 1)[1]), bucket.cat(bucket.path(name)))
    bucket.pipe(bucket.path("node_features", dead, "values.json"), b"{}")
    assert store.names() == ["weights"]
    assert store.check("node_features", "k") == (False, "missing")
    with store.lock():
        pass
    left = {p.split("/")[1] for p in objects(store_url) if "/gen-" in p}
    assert left == {live}
    assert store.check("weights", "k") == (True, None)


@pytest.mark.slow
def test_sigkill_during_saves_leaves_the_old_or_the_new_checkpoint(store_url):
    proc = spawn(SAVE_LOOP, store_url)
    try:
        assert proc.stdout.readline().strip() == "ready"
        assert int(proc.stdout.readline()) >= 1
        proc.stdout.readline()
        time.sleep(0.05)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    store = open_store(store_url)
    cp = store.load("node_features", verify="full")
    assert cp is not None
    v = cp.value("version")
    assert cp.manifest["key"] == f"k{v}"
    assert np.all(cp.array("x") == float(v)) and (cp.table("t")["v"] == v).all()
    with store.lock():
        pass  # taking the lease cleans what the killed writer left
    gens = {p.split("/")[1] for p in objects(store_url) if p.startswith("node_features/gen-")}
    assert gens == {cp.manifest["generation"]}


@every_backend
@pytest.mark.slow
def test_the_lease_excludes_a_second_writer_and_names_its_holder(store_url):
    holder = spawn(HOLD, store_url, "2")
    try:
        assert holder.stdout.readline().strip() == "locked"
        store = open_store(store_url)
        with pytest.raises(LockedError, match=r"locked by pid \d+ on host .*\(lease expires"):
            with store.lock():
                pass
        with store.lock(wait=True, timeout=60):  # the holder releases it when done
            body = json.loads(Bucket(store_url).cat(Bucket(store_url).path(".lease.json")))
            assert body["pid"] == os.getpid() and body["expires"] > time.time()
    finally:
        holder.kill()
        holder.wait()


@pytest.mark.slow
def test_a_killed_holders_lease_expires_and_is_taken_over(store_url, monkeypatch):
    monkeypatch.setenv("AMLGRAPH_LEASE_SECONDS", "2")
    holder = spawn(HOLD, store_url, "600")
    try:
        assert holder.stdout.readline().strip() == "locked"
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    store = open_store(store_url)
    with pytest.raises(LockedError):
        with store.lock():
            pass
    start = time.monotonic()
    with store.lock(wait=True, timeout=30):
        pass
    assert time.monotonic() - start < 30


@pytest.mark.slow
def test_two_writers_under_the_lease_keep_every_checkpoint_whole(store_url):
    open_store(store_url)
    writers = [spawn(LOCKED_WRITER, store_url, str(w), "4") for w in (1, 2)]
    for p in writers:
        _, err = p.communicate(timeout=240)
        assert p.returncode == 0, err
    cp = open_store(store_url).load("edge_features", verify="full")
    w, i = cp.value("writer"), cp.value("i")
    assert cp.manifest["key"] == f"w{w}-{i}" and np.all(cp.array("x") == float(w * 100 + i))
    assert len({p.split("/")[1] for p in objects(store_url) if p.startswith("edge_features/gen-")}) == 1


@every_backend
def test_a_lease_taken_over_stops_the_next_save(store_url):
    store = open_store(store_url)
    bucket = Bucket(store_url)
    with store.lock():
        _save(store, key="before")
        other = {"owner": "another-run", "pid": 1, "host": "elsewhere", "since": "now", "expires": time.time() + 600}
        bucket.pipe(bucket.path(".lease.json"), json.dumps(other).encode())
        assert store._lock.renew() is False
        with pytest.raises(LockedError, match="taken over"):
            _save(store, key="after")
    assert store.check("weights", "before") == (True, None)
    assert json.loads(bucket.cat(bucket.path(".lease.json")))["owner"] == "another-run"  # not deleted


def test_a_plain_path_keeps_the_local_file_store(tmp_path):
    assert type(open_store(tmp_path / "ck")) is CheckpointStore
    assert type(open_store(str(tmp_path / "ck2"))) is CheckpointStore


def test_the_cache_is_bounded_and_drops_what_killed_processes_left(store_url, tmp_path, monkeypatch):
    from amlgraph.store._cache import cache_dir
    from store_helpers import dead_pid
    from amlgraph._atomic import HOST_TAG

    store = open_store(store_url)
    _save(store, key="a")
    orphan = cache_dir() / f".tmp-{dead_pid()}-{HOST_TAG}-0000abcd-upload"
    orphan.write_bytes(b"half")
    monkeypatch.setenv("AMLGRAPH_CACHE_BYTES", "1")  # every copy is over the bound
    old = time.time() - 3600
    for f in cache_files(cache_dir()):
        os.utime(f, (old, old))  # last used an hour ago
    _save(store, "edge_features", key="b")
    left = cache_files(cache_dir())
    assert not orphan.exists() and left
    assert all(f.stat().st_mtime > old for f in left)  # only the copies just written are kept
    # What was evicted is fetched again, and checked, when it is read.
    cp = open_store(store_url).load("weights", verify="full")
    assert cp is not None and cp.value("class_weights") == {"0": 0.5, "1": 12.25}
