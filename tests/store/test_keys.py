"""Checkpoint keys: file fingerprints, the hash cache, code versions, explained mismatches."""
from __future__ import annotations

import json
import os

import pytest

import amlgraph.store._keys as fp
from amlgraph.errors import CheckpointError
from amlgraph.store._keys import HashCache, code_version, explain_mismatch, file_fingerprint, make_key


def test_file_fingerprint_fields_and_content_hash(tmp_path):
    f = tmp_path / "HI-Small_Trans.csv"
    f.write_bytes(b"x" * 1000)
    a = file_fingerprint(f)
    assert set(a) == {"name", "size", "mtime_ns", "hash"} and a["name"] == f.name and a["size"] == 1000
    f.write_bytes(b"y" * 1000)
    assert file_fingerprint(f)["hash"] != a["hash"]


def test_touching_a_file_does_not_change_the_key(tmp_path):
    f = tmp_path / "t.csv"
    f.write_bytes(b"abc")
    k1 = make_key({"files": {"t.csv": file_fingerprint(f)}})
    os.utime(f, ns=(1, 1))
    k2 = make_key({"files": {"t.csv": file_fingerprint(f)}})
    assert k1 == k2


def test_hash_cache_skips_rehash_until_file_changes(tmp_path, monkeypatch):
    f = tmp_path / "big.csv"
    f.write_bytes(b"a" * 4096)
    calls = []
    real = fp.hash_file
    monkeypatch.setattr(fp, "hash_file", lambda p: calls.append(p) or real(p))
    cache = HashCache(tmp_path / ".hashcache.json")
    first = file_fingerprint(f, cache=cache)
    assert file_fingerprint(f, cache=HashCache(tmp_path / ".hashcache.json")) == first  # persisted
    assert len(calls) == 1
    f.write_bytes(b"b" * 4096)  # same size, new content and mtime
    os.utime(f, ns=(first["mtime_ns"] + 10**9,) * 2)
    assert file_fingerprint(f, cache=cache)["hash"] != first["hash"] and len(calls) == 2
    assert json.loads((tmp_path / ".hashcache.json").read_text())["algorithm"] == "xxh3_128"


def test_corrupt_hash_cache_is_an_empty_cache(tmp_path):
    (tmp_path / "c.json").write_text("{broken")
    f = tmp_path / "x"
    f.write_bytes(b"1")
    assert file_fingerprint(f, cache=HashCache(tmp_path / "c.json"))["size"] == 1


def test_missing_input_file_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="cannot fingerprint input file"):
        file_fingerprint(tmp_path / "nope.csv")


def test_code_version_follows_the_source(tmp_path, monkeypatch):
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "cv_probe_mod.py").write_text("X = 1\n")
    v1 = code_version("cv_probe_mod")
    assert v1 == code_version("cv_probe_mod")
    (tmp_path / "cv_probe_mod.py").write_text("X = 2\n")
    assert code_version("cv_probe_mod") != v1
    assert code_version("amlgraph.store._files") != code_version("amlgraph.store._keys")
    with pytest.raises(CheckpointError, match="cannot find"):
        code_version("amlgraph.no_such_module")


def test_make_key_is_canonical_and_strict():
    a = {"step": "s", "params": {"a": 1, "b": [1, 2]}}
    b = {"params": {"b": [1, 2], "a": 1}, "step": "s"}
    assert make_key(a) == make_key(b) and len(make_key(a)) == 64
    assert make_key(a) != make_key({**a, "params": {"a": 2, "b": [1, 2]}})
    with pytest.raises(CheckpointError, match="JSON"):
        make_key({"params": {"x": float("nan")}})
    with pytest.raises(CheckpointError, match="JSON"):
        make_key({"params": {"x": object()}})


def test_explain_mismatch_most_specific_first():
    old = {"step": "edge_features", "params": {"chunk_size": 1000, "smote": True}, "code": "c1",
           "inputs": {"node_features": "n1"}, "files": {"T.csv": {"name": "T.csv", "size": 1, "hash": "h"}},
           "version": "0.1.0"}
    new = {**old, "params": {"chunk_size": 500, "k": 3}, "code": "c2", "inputs": {"node_features": "n2"},
           "files": {"T.csv": {"name": "T.csv", "size": 1, "hash": "g"}, "A.csv": {"name": "A.csv"}},
           "version": "0.2.0"}
    assert explain_mismatch(old, new) == [
        "input file added: A.csv", "input file changed: T.csv",
        "parameter chunk_size changed (1000 -> 500)", "parameter k added (= 3)", "parameter smote removed (was true)",
        "code of edge_features changed", "input node_features changed",
        "amlgraph version changed (0.1.0 -> 0.2.0)"]
    assert explain_mismatch(old, dict(old)) == []
