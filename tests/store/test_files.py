"""File-store-only behaviour: corruption, orphans, symlinks, planted pickles, full disk, format."""
from __future__ import annotations

import errno
import os

import numpy as np
import polars as pl
import pytest

import amlgraph.store._files as store_files
from amlgraph.errors import CheckpointError
from amlgraph.store import CheckpointStore
from amlgraph.store._files import HOST_TAG, hash_file
from store_helpers import dead_pid, gen_dirs, sample_data, tmp_files


@pytest.fixture
def store(tmp_path):
    return CheckpointStore(tmp_path / "ckpt")


def _save(store, name="node_features", seed=0, key="k1"):
    tables, arrays, values = sample_data(seed)
    return store.save(name, step=name.partition("_chunk_")[0], key=key, tables=tables, arrays=arrays,
                      values=values)


def _gen(store, name="node_features"):
    return store.root / name / store.manifest(name)["generation"]


def _truncate(p):
    p.write_bytes(p.read_bytes()[:-7])


def _flip(p):
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0xFF
    p.write_bytes(bytes(data))


DAMAGE = {
    "truncate_table": (lambda g: _truncate(g / "table-transactions.parquet"), "table-transactions.parquet", "quick"),
    "flip_array_byte": (lambda g: _flip(g / "array-features.npy"), "array-features.npy", "full"),
    "garbage_manifest": (lambda g: (g.parent / "manifest.json").write_text("{not json"), "manifest.json", "quick"),
    "edit_manifest": (lambda g: (g.parent / "manifest.json").write_text(
        (g.parent / "manifest.json").read_text().replace('"num_accounts"', '"num_accountz"')), "manifest.json",
        "quick"),
    "delete_file": (lambda g: (g / "values.json").unlink(), "values.json", "quick"),
    "delete_manifest": (lambda g: (g.parent / "manifest.json").unlink(), "manifest.json", "quick"),
}


@pytest.mark.parametrize("kind", sorted(DAMAGE))
def test_damage_is_treated_as_missing_and_named(store, kind):
    damage, file, level = DAMAGE[kind]
    _save(store)
    _save(store, "edge_features")
    damage(_gen(store))
    assert store.load("node_features", verify=level) is None
    assert store.load("node_features", verify="full") is None
    ok, why = CheckpointStore(store.root, verify="full").check("node_features", "k1")
    assert not ok and why.startswith("corrupt: ") and file in why
    problems = store.verify()
    assert [(p.name, p.file) for p in problems] == [("node_features", file)]
    assert "node_features" not in CheckpointStore(store.root, verify="full").names()
    assert store.load("edge_features", verify="full") is not None
    _save(store)  # recomputed: a new save over the damage works
    assert store.load("node_features", verify="full") is not None and store.verify() == []


def test_quick_verification_checks_sizes_full_checks_hashes(store):
    _save(store)
    _flip(_gen(store) / "array-features.npy")
    assert store.load("node_features", verify="quick") is not None  # same size: quick cannot see it
    assert store.load("node_features", verify="full") is None
    assert [p.name for p in store.verify(full=False)] == []
    assert [p.name for p in store.verify(full=True)] == ["node_features"]


def test_manifest_hashes_match_file_contents(store):
    m = _save(store)
    g = _gen(store)
    for f, info in m["files"].items():
        assert hash_file(g / f) == info["hash"] and (g / f).stat().st_size == info["size"]


def test_orphans_of_dead_writers_are_removed_on_open(store):
    _save(store)
    cdir = store.root / "node_features"
    dead, live = dead_pid(), os.getpid()
    orphans = [cdir / f"gen-18e0-{dead}-{HOST_TAG}-abcd", cdir / f".tmp-{dead}-{HOST_TAG}-ab-manifest.json",
               store.root / f".tmp-{dead}-{HOST_TAG}-ab-amlgraph-store.json"]
    orphans[0].mkdir()
    (orphans[0] / "array-features.npy").write_bytes(b"half")
    for p in orphans[1:]:
        p.write_bytes(b"half")
    inflight = cdir / f"gen-18e1-{live}-{HOST_TAG}-abcd"
    inflight.mkdir()
    # a checkpoint directory holding only an orphaned generation: never mistaken for data
    lone = store.root / "edge_features" / f"gen-18e2-{dead}-{HOST_TAG}-ab"
    lone.mkdir(parents=True)
    (lone / "values.json").write_text("{}")
    assert store.names() == ["node_features"] and store.load("edge_features") is None
    reopened = CheckpointStore(store.root)
    assert not any(p.exists() for p in orphans)
    assert inflight.exists()  # its writer is alive: maybe a save in progress
    assert not (store.root / "edge_features").exists()
    assert reopened.load("node_features", verify="full") is not None


def test_orphans_are_not_removed_while_another_holds_the_lock(store):
    cdir = store.root / "node_features"
    orphan = cdir / f"gen-18e0-{dead_pid()}-{HOST_TAG}-abcd"
    with store.lock():
        orphan.mkdir(parents=True)
        CheckpointStore(store.root)  # cannot take the lock: leaves the orphan alone
        assert orphan.exists()
    with store.lock():  # taking the lock cleans
        assert not orphan.exists()


def test_symlinked_checkpoint_outside_is_refused(store, tmp_path):
    outside = CheckpointStore(tmp_path / "outside")
    _save(outside)
    os.symlink(outside.root / "node_features", store.root / "node_features")
    assert store.load("node_features") is None
    ok, why = store.check("node_features", "k1")
    assert not ok and "symlink" in why
    assert store.names() == []
    with pytest.raises(CheckpointError, match="symlink"):
        _save(store)
    store.delete("node_features")  # removes the link only
    assert not os.path.lexists(store.root / "node_features")
    assert outside.load("node_features", verify="full") is not None


def test_symlinked_data_file_is_refused(store, tmp_path):
    _save(store)
    target = _gen(store) / "array-features.npy"
    secret = tmp_path / "secret.npy"
    os.replace(target, secret)
    os.symlink(secret, target)
    assert store.load("node_features") is None
    assert "symlink" in store.check("node_features", "k1")[1]


class _Evil:
    marker = None

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


@pytest.mark.parametrize("fail_on", ["array", "table", "manifest"])
def test_no_space_left_keeps_previous_checkpoint(store, monkeypatch, fail_on):
    _save(store, seed=1, key="old")
    before = gen_dirs(store.root, "node_features")
    real = store_files._write

    def full_disk(f, view):
        name = os.readlink(f"/proc/self/fd/{f.fileno()}")
        if {"array": ".npy", "table": ".parquet", "manifest": "manifest.json"}[fail_on] in name:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(f, view)

    monkeypatch.setattr(store_files, "_write", full_disk)
    with pytest.raises(CheckpointError) as info:
        _save(store, seed=2, key="new")
    msg = str(info.value)
    assert "no space left on device while saving checkpoint node_features" in msg
    assert "the previous checkpoint is intact" in msg and "\n" not in msg
    monkeypatch.setattr(store_files, "_write", real)
    cp = store.load("node_features", verify="full")
    assert cp.manifest["key"] == "old"
    np.testing.assert_array_equal(cp.array("features"), sample_data(1)[1]["features"])
    assert gen_dirs(store.root, "node_features") == before and tmp_files(store.root) == []


def test_open_without_create_needs_a_store(tmp_path):
    with pytest.raises(CheckpointError, match="no checkpoint store"):
        CheckpointStore(tmp_path / "nothing", create=False)
    assert not (tmp_path / "nothing").exists()


def test_table_path_scans_lazily(store):
    store.save("data_loaded", step="data_loaded", key="k",
               tables={"t": pl.DataFrame({"a": np.arange(100)})})
    path = store.load("data_loaded").table_path("t")
    assert pl.scan_parquet(path).filter(pl.col("a") > 94).collect().height == 5


@pytest.mark.parametrize("setting, synced", [("1", True), (None, False), ("0", False)])
def test_fsync_only_when_asked(store, monkeypatch, setting, synced):
    """AMLGRAPH_FSYNC=1 fsyncs every data file and directory of a save; by default none is."""
    if setting is None:
        monkeypatch.delenv(store_files.FSYNC_ENV, raising=False)
    else:
        monkeypatch.setenv(store_files.FSYNC_ENV, setting)
    calls = []
    real = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (calls.append(fd), real(fd))[1])
    manifest = _save(store)
    assert store.load("node_features", verify="full") is not None
    files = len(manifest["files"])
    # one per data file + values.json + the manifest, and the two directories
    assert (len(calls) >= files + 3) if synced else (calls == [])


def test_torn_unsynced_checkpoint_is_detected_not_trusted(store, monkeypatch):
    """Without fsync a power loss may tear a file; the full verification on load catches it."""
    monkeypatch.delenv(store_files.FSYNC_ENV, raising=False)
    _save(store)
    data = next(p for p in _gen(store).iterdir() if p.name.startswith("array-"))
    raw = bytearray(data.read_bytes())
    raw[-1] ^= 0xFF                                     # same size, other bytes: what a torn page leaves
    data.write_bytes(bytes(raw))
    assert store.load("node_features", verify="full") is None
    ok, reason = CheckpointStore(store.root, verify="full").check("node_features", "k1")
    assert not ok and "hash" in reason
