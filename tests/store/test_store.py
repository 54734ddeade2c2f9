"""The store contract, run against both CheckpointStore and MemoryStore."""
from __future__ import annotations

import threading

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from amlgraph.errors import CheckpointError, LockedError
from amlgraph.store._keys import code_version, explain_mismatch, file_fingerprint, make_key
from amlgraph.store import Checkpoint, CheckpointStore, MemoryStore
from store_helpers import sample_data


@pytest.fixture(params=["file", "memory"])
def store(request, tmp_path):
    return CheckpointStore(tmp_path / "ckpt") if request.param == "file" else MemoryStore()


def _save(store, name="node_features", key="k1", step=None, chunk=None, seed=0, **kw):
    tables, arrays, values = sample_data(seed)
    return store.save(name, step=step or name, key=key, chunk=chunk, tables=tables, arrays=arrays,
                      values=values, metadata={"num_accounts": 10}, **kw)


def test_round_trip(store):
    tables, arrays, values = sample_data(3)
    store.save("data_loaded", step="data_loaded", key="k", tables=tables, arrays=arrays, values=values)
    cp = store.load("data_loaded")
    assert isinstance(cp, Checkpoint)
    assert cp.tables == ["transactions"] and cp.arrays == sorted(arrays) and cp.values == sorted(values)
    assert_frame_equal(cp.table("transactions"), tables["transactions"])
    for name, arr in arrays.items():
        got = cp.array(name)
        assert got.dtype == arr.dtype and got.shape == arr.shape
        np.testing.assert_array_equal(got, arr)
    for name, v in values.items():
        assert cp.value(name) == v


def test_array_mmap_is_read_only_and_copy_is_writable(store):
    _save(store)
    cp = store.load("node_features")
    mapped = cp.array("features")
    assert not mapped.flags.writeable
    with pytest.raises(ValueError):
        mapped[0, 0] = 1.0
    if isinstance(store, CheckpointStore):
        assert isinstance(mapped, np.memmap)
        assert cp.table_path("transactions").suffix == ".parquet"
        assert_frame_equal(pl.scan_parquet(cp.table_path("transactions")).collect(), cp.table("transactions"))
    else:
        assert cp.table_path("transactions") is None
    copy = cp.array("features", mmap=False)
    copy[0, 0] = -1.0
    assert cp.array("features")[0, 0] != -1.0


def test_saved_data_is_isolated_from_later_mutation(store):
    arr = np.arange(10.0)
    vals = {"v": [1, 2]}
    store.save("weights", step="weights", key="k", arrays={"a": arr}, values=vals)
    arr[:] = -1
    vals["v"].append(3)
    cp = store.load("weights")
    np.testing.assert_array_equal(cp.array("a"), np.arange(10.0))
    assert cp.value("v") == [1, 2]


def test_manifest_fields(store):
    comps = {"step": "node_features", "params": {"chunk_size": 1000}}
    m = _save(store, chunk=None, key_components=comps)
    assert m == store.manifest("node_features")
    assert m["step"] == "node_features" and m["chunk"] is None and m["key"] == "k1"
    assert m["key_components"] == comps
    assert m["created"].endswith("Z")
    assert m["tables"]["transactions"]["rows"] == 50
    assert m["tables"]["transactions"]["schema"]["is_laundering"] == "Int8"
    assert m["arrays"]["features"] == {**m["arrays"]["features"], "shape": [50, 7], "dtype": "<f4"}
    assert set(m["libraries"]) == {"amlgraph", "polars", "pyarrow", "numpy"}
    assert m["metadata"] == {"num_accounts": 10}
    assert m["hash_algorithm"] == "xxh3_128"
    if isinstance(store, CheckpointStore):
        assert all(f["size"] > 0 and len(f["hash"]) == 32 for f in m["files"].values())


def test_overwrite_replaces_the_whole_checkpoint(store, tmp_path):
    _save(store, key="old", seed=1)
    store.save("node_features", step="node_features", key="new", arrays={"only": np.ones(3)})
    cp = store.load("node_features")
    assert cp.manifest["key"] == "new"
    assert cp.tables == [] and cp.arrays == ["only"] and cp.values == []
    if isinstance(store, CheckpointStore):
        gens = [p for p in (store.root / "node_features").iterdir() if p.name.startswith("gen-")]
        assert [g.name for g in gens] == [cp.manifest["generation"]]


def test_delete_exists_delete_all(store):
    assert not store.exists("node_features") and store.load("node_features") is None
    _save(store)
    _save(store, "edge_features")
    assert store.exists("node_features") and store.size_bytes("node_features") > 0
    store.delete("node_features")
    assert not store.exists("node_features") and store.load("node_features") is None
    assert store.size_bytes("node_features") == 0
    store.delete("node_features")  # deleting a missing one is fine
    store.delete_all()
    assert store.names() == []


def test_names_pipeline_then_numeric_chunk_order(store):
    order = ["graph_created", "node_features_chunk_10", "node_features_chunk_2", "data_loaded",
             "edge_features_chunk_0", "node_features", "edge_features", "weights", "node_features_chunk_0"]
    for n in order:
        step, _, chunk = n.partition("_chunk_")
        store.save(n, step=step, chunk=int(chunk) if chunk else None, key="k", values={"x": 1})
    assert store.names() == [
        "data_loaded", "node_features", "node_features_chunk_0", "node_features_chunk_2",
        "node_features_chunk_10", "edge_features", "edge_features_chunk_0", "weights", "graph_created"]


def _components(tmp_path, *, content=b"a,b\n1,2\n", chunk_size=1000, code=None, upstream="u1"):
    f = tmp_path / "HI-Small_Trans.csv"
    f.write_bytes(content)
    return {"step": "node_features", "params": {"chunk_size": chunk_size},
            "code": code or code_version("amlgraph.store._files"),
            "inputs": {"data_loaded": upstream}, "files": {f.name: file_fingerprint(f)}, "version": "0.1.0"}


@pytest.mark.parametrize("change, reason", [
    ({"content": b"a,b\n1,3\n"}, "input file changed: HI-Small_Trans.csv"),
    ({"chunk_size": 500}, "parameter chunk_size changed (1000 -> 500)"),
    ({"code": "0" * 32}, "code of node_features changed"),
    ({"upstream": "u2"}, "input data_loaded changed"),
])
def test_stale_key_is_detected_and_explained(store, tmp_path, change, reason):
    old = _components(tmp_path)
    old_key = make_key(old)
    store.save("node_features", step="node_features", key=old_key, key_components=old, values={"x": 1})
    assert store.check("node_features", old_key, old) == (True, None)
    new = _components(tmp_path, **change)
    new_key = make_key(new)
    assert new_key != old_key
    ok, why = store.check("node_features", new_key, new)
    assert not ok and why == reason
    assert explain_mismatch(old, new) == [reason]
    assert store.load("node_features", key=new_key) is None
    assert store.load("node_features", key=old_key) is not None


def test_check_missing_and_unexplained_key(store):
    assert store.check("weights", "k") == (False, "missing")
    store.save("weights", step="weights", key="aaaa", values={"x": 1})
    ok, why = store.check("weights", "bbbb")
    assert not ok and "key changed" in why


@pytest.mark.parametrize("bad", ["../etc", "a/b", "..", "/abs", "Node", "", "x..y/", "1step", "a b",
                                 "/etc/passwd", "node_features/../../x", "x" * 200, "node_features\x00"])
def test_bad_names_refused(store, bad):
    """A name that is not a plain checkpoint name is refused everywhere; nothing is written,
    inside the store or beside it."""
    root = getattr(store, "root", None)
    outside = sorted(p.name for p in root.parent.iterdir()) if root is not None else None
    with pytest.raises(CheckpointError, match="invalid"):
        store.save(bad, step="node_features", key="k", values={"x": 1})
    with pytest.raises(CheckpointError, match="invalid"):
        store.load(bad)
    with pytest.raises(CheckpointError, match="invalid"):
        store.delete(bad)
    with pytest.raises(CheckpointError, match="invalid"):
        store.save("node_features", step=bad, key="k")
    if root is not None:
        assert sorted(p.name for p in root.parent.iterdir()) == outside
    assert store.names() == []


def test_unstorable_data_refused(store):
    with pytest.raises(CheckpointError, match="object"):
        store.save("weights", step="weights", key="k", arrays={"a": np.array([object()])})
    with pytest.raises(CheckpointError, match="JSON"):
        store.save("weights", step="weights", key="k", values={"v": object()})
    with pytest.raises(CheckpointError, match="DataFrame"):
        store.save("weights", step="weights", key="k", tables={"t": [1, 2]})
    assert store.names() == []


def test_lock_reentrant_in_thread_exclusive_across_threads(store):
    errors, acquired = [], threading.Event()
    with store.lock():
        with store.lock():  # re-entrant for the holder
            pass

        def other():
            try:
                with store.lock():
                    pass
            except LockedError as exc:
                errors.append(str(exc))

        t = threading.Thread(target=other)
        t.start()
        t.join()
        assert len(errors) == 1 and "locked by pid" in errors[0] and "--wait" in errors[0]

        def waiter():
            with store.lock(wait=True, timeout=10):
                acquired.set()

        t = threading.Thread(target=waiter)
        t.start()
        assert not acquired.wait(0.2)
    t.join(10)
    assert acquired.is_set()


def test_array_parts_are_written_piece_by_piece_and_load_whole(store):
    from amlgraph.store._base import ArrayParts

    src = [np.arange(i * 10, i * 10 + 10) for i in range(3)]
    dst = [a + 100 for a in src]
    produced = []

    def piece(a):
        def make():
            produced.append(len(a))
            return a
        return make

    edge_index = ArrayParts((2, 30), np.int64, [piece(a) for a in src + dst])
    attr = ArrayParts((30, 2), np.float32, [piece(np.ones((10, 2)) * i) for i in range(3)])
    store.save("graph_created", step="graph_created", key="k", arrays={"edge_index": edge_index, "attr": attr})
    ckpt = store.load("graph_created")
    np.testing.assert_array_equal(ckpt.array("edge_index"), np.stack([np.concatenate(src), np.concatenate(dst)]))
    assert ckpt.array("attr").dtype == np.float32 and ckpt.array("attr")[25, 1] == 2
    assert produced == [10] * 9  # every piece produced exactly once


def test_several_arrays_are_saved_in_order_and_one_bad_array_saves_nothing(store, tmp_path):
    from amlgraph.store._base import ArrayParts

    def parts(i):
        return ArrayParts((6,), np.int64, [lambda: np.arange(3) + i, lambda: np.arange(3, 6) + i])

    arrays = {f"a{i}": parts(i) for i in range(5)}  # written two at a time by the file store
    store.save("weights", step="weights", key="k", arrays=arrays)
    ckpt = store.load("weights")
    for i in range(5):
        np.testing.assert_array_equal(ckpt.array(f"a{i}"), np.arange(6) + i)
    assert list(ckpt.manifest["arrays"]) == list(arrays)
    files = [f for f in ckpt.manifest.get("files", {}) if f.startswith("array-")]
    assert files in ([], [f"array-a{i}.npy" for i in range(5)])
    bad = dict(arrays, a2=ArrayParts((6,), np.int64, [lambda: np.arange(4)]))
    with pytest.raises(CheckpointError, match="expected 6"):
        store.save("edge_features", step="edge_features", key="k", arrays=bad)
    assert store.load("edge_features") is None
    if isinstance(store, CheckpointStore):
        assert not list((tmp_path / "ckpt" / "edge_features").glob("gen-*"))


def test_array_parts_of_the_wrong_size_are_refused_and_nothing_is_saved(store):
    from amlgraph.store._base import ArrayParts

    bad = ArrayParts((2, 5), np.int64, [lambda: np.arange(4)])
    with pytest.raises(CheckpointError, match="expected 10"):
        store.save("weights", step="weights", key="k", arrays={"a": bad})
    assert store.load("weights") is None


@pytest.mark.parametrize("compress", [True, False])
def test_tables_are_zstd_and_arrays_compressed_only_when_asked(tmp_path, compress):
    import pyarrow.parquet as pq

    store = CheckpointStore(tmp_path / "ckpt")
    tables, _, _ = sample_data(5)
    big = np.arange(100_000, dtype=np.int64).reshape(2, -1)      # 800 kB: compressed when asked
    small = np.arange(10, dtype=np.float32)                         # below the threshold: never
    store.save("data_loaded", step="data_loaded", key="k", tables=tables,
               arrays={"big": big, "small": small}, compress=compress)
    cp = store.load("data_loaded", verify="full")
    meta = pq.ParquetFile(cp.table_path("transactions")).metadata
    codecs = {meta.row_group(g).column(c).compression for g in range(meta.num_row_groups)
              for c in range(meta.num_columns)}
    assert codecs == {"ZSTD"}
    assert_frame_equal(cp.table("transactions"), tables["transactions"])
    files = cp.manifest["arrays"]
    assert files["big"]["file"] == ("array-big.npy.zst" if compress else "array-big.npy")
    assert files["small"]["file"] == "array-small.npy"
    size = cp.manifest["files"][files["big"]["file"]]["size"]
    assert size < big.nbytes // 4 if compress else size > big.nbytes
    for mmap in (True, False):
        got = cp.array("big", mmap=mmap)
        assert got.dtype == big.dtype and got.shape == big.shape and np.array_equal(got, big)
        assert got.flags.writeable is (not mmap)
        assert isinstance(got, np.memmap) is (mmap and not compress)
    assert store.verify() == []


def _rewrite_zst(path, data: bytes) -> None:
    import zstandard

    path.write_bytes(zstandard.ZstdCompressor().compress(data))


@pytest.mark.parametrize("damage", ["flip", "short", "long", "header"])
def test_a_damaged_compressed_array_is_refused_by_full_verification_and_by_loading(tmp_path, damage):
    """A compressed array whose decoded bytes are not what the manifest says (the manifest
    re-sealed so that sizes and hashes match) fails full verification and loading."""
    import io
    import json

    import zstandard

    from amlgraph.store._base import manifest_checksum
    from amlgraph.store._files import hash_file, json_bytes

    store = CheckpointStore(tmp_path / "ckpt")
    arr = np.arange(50_000, dtype=np.float64)
    store.save("weights", step="weights", key="k", arrays={"a": arr})
    cp = store.load("weights")
    path = cp._dir / cp.manifest["arrays"]["a"]["file"]
    data = path.read_bytes()
    raw = zstandard.ZstdDecompressor().decompress(data)
    path.unlink()
    if damage == "flip":
        path.write_bytes(data[:100] + bytes(b ^ 0xFF for b in data[100:150]) + data[150:])
    elif damage == "short":
        _rewrite_zst(path, raw[:-8])
    elif damage == "long":
        _rewrite_zst(path, raw + b"\0" * 8)
    else:
        buf = io.BytesIO()
        np.save(buf, np.arange(100_000, dtype=np.float32))
        _rewrite_zst(path, buf.getvalue())
    mpath = tmp_path / "ckpt" / "weights" / "manifest.json"
    m = json.loads(mpath.read_text())
    m["files"][path.name] = {"size": path.stat().st_size, "hash": hash_file(path)}
    m.pop("manifest_checksum")
    m["manifest_checksum"] = manifest_checksum(m)
    mpath.write_bytes(json_bytes(m))
    fresh = CheckpointStore(tmp_path / "ckpt")
    assert fresh.load("weights", verify="full") is None
    assert [p.name for p in fresh.verify()] == ["weights"]
    with pytest.raises(CheckpointError, match="damaged: array a"):
        fresh.load("weights", verify="quick").array("a")
