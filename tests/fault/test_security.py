"""Checkpoint directories are data, never code: planted pickles are never executed, names and
symlinks cannot escape the directory, newer formats are refused, and tampered manifests are
not trusted."""
from __future__ import annotations

import json
import os
import pickle  # only to plant hostile files; amlgraph itself never unpickles
import subprocess
from pathlib import Path

import pytest

from amlgraph.compat import list_available_checkpoints, load_checkpoint
from amlgraph.errors import CheckpointError
from amlgraph.runner import run_preprocessing
from amlgraph.store import CheckpointStore
from harness import amlgraph, env, final_digest, run_command


class _Marker:
    """Unpickling this runs ``open(path, 'w')``: the marker file proves code was executed."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def _hostile(marker: Path) -> bytes:
    return pickle.dumps(_Marker(str(marker)))


def _gen(root: Path, name: str) -> Path:
    (gen,) = [p for p in (root / name).iterdir() if p.name.startswith("gen-")]
    return gen


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(amlgraph(*args), capture_output=True, text=True, timeout=300, env=env())


def test_planted_pickles_are_never_executed(reference, tmp_path):
    root = reference.copy_to(tmp_path / "ckpt")
    marker = tmp_path / "PWNED"
    blob = _hostile(marker)
    (root / "node_features.pkl").write_bytes(blob)            # the seed's legacy checkpoint name
    (root / "graph_created.pkl").write_bytes(blob)
    (_gen(root, "normalized") / "values.json").write_bytes(blob)           # disguised as values
    for array in _gen(root, "graph_created").glob("array-edge_attr.npy*"):  # disguised as an array
        array.write_bytes(blob)
    (_gen(root, "node_features_chunk_1") / "table-features_train.parquet").write_bytes(blob)
    (_gen(root, "weights") / "values.json").write_bytes(blob)
    (root / "imbalanced" / "manifest.json").write_bytes(blob)              # disguised as a manifest
    for args in (("checkpoints", "list", str(root)), ("checkpoints", "verify", str(root)),
                 ("status", str(root))):
        result = _cli(*args)
        assert "Traceback" not in result.stderr, result.stderr
        assert not marker.exists(), f"{args} executed a pickle"
    verify = _cli("checkpoints", "verify", str(root))
    assert verify.returncode == 1
    for name in ("normalized", "graph_created", "node_features_chunk_1", "weights"):
        assert f"DAMAGED  {name}:" in verify.stdout
    run = subprocess.run(run_command(reference.data, root, "--quiet"), capture_output=True, text=True,
                         timeout=300, env=env())
    assert run.returncode == 0, run.stderr
    assert not marker.exists()
    assert final_digest(root) == reference.digest
    assert (root / "node_features.pkl").read_bytes() == blob  # ignored, never read, never removed
    # the seed's functions ignore a legacy .pkl too (an object .npy re-sealed to look valid is
    # tests/fault/test_store_hostile.py::test_verify_refuses_what_load_refuses)
    assert load_checkpoint(root, "node_features") == (None, None)
    assert "node_features.pkl" not in str(list_available_checkpoints(root))
    assert not marker.exists()


def test_symlinks_pointing_outside_are_refused_never_followed(reference, tmp_path):
    root = reference.copy_to(tmp_path / "ckpt")
    outside = tmp_path / "outside"
    outside.mkdir()
    # a symlinked checkpoint directory, pointing at a copy of the real one outside the store
    os.rename(root / "weights", outside / "weights")
    os.symlink(outside / "weights", root / "weights")
    # a data file inside the store that is a symlink to a file outside
    victim = outside / "victim.json"
    gen = _gen(root, "normalized")
    os.rename(gen / "values.json", victim)
    os.symlink(victim, gen / "values.json")
    before = {p: p.read_bytes() for p in outside.rglob("*") if p.is_file()}
    store = CheckpointStore(root)
    assert store.load("weights") is None and store.load("normalized") is None
    assert {p.name for p in store.verify()} >= {"weights", "normalized"}
    with pytest.raises(CheckpointError, match="symlink"):
        store.save("weights", step="weights", key="k", values={"v": 1})
    os.unlink(root / "graph_created" / "manifest.json")  # force the run to need both
    result = subprocess.run(run_command(reference.data, root, "--quiet"), capture_output=True, text=True,
                            timeout=300, env=env())
    assert result.returncode == 3 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert "is a symlink or not a directory; refusing to write through it" in result.stderr
    # nothing outside the store was written or followed for writing
    assert {p: p.read_bytes() for p in outside.rglob("*") if p.is_file()} == before
    os.unlink(root / "weights")  # the user removes the link, as the message says
    result = run_preprocessing(data_path=reference.data, checkpoint_dir=root, quiet=True,
                               chunk_size=200, chunk_rows=1000)
    assert result.computed == ["weights", "graph_created"]  # normalized was saved before the refusal
    assert {p: p.read_bytes() for p in outside.rglob("*") if p.is_file()} == before
    assert final_digest(root) == reference.digest


def test_a_newer_store_format_is_refused_clearly(reference, tmp_path):
    root = reference.copy_to(tmp_path / "ckpt")
    marker = root / "amlgraph-store.json"
    info = json.loads(marker.read_text())
    marker.write_text(json.dumps({**info, "version": 99}))
    for args in (run_command(reference.data, root, "--quiet")[3:], ("checkpoints", "verify", str(root))):
        result = _cli(*args)
        assert result.returncode == 3, result.stderr
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in result.stderr
        assert "has format 99" in lines[0] and "upgrade amlgraph" in lines[0]
    assert json.loads(marker.read_text())["version"] == 99  # refused, not rewritten
    with pytest.raises(CheckpointError, match="format 99.*upgrade amlgraph"):
        CheckpointStore(root)


def test_a_newer_manifest_format_is_not_misread(reference, tmp_path):
    root = reference.copy_to(tmp_path / "ckpt")
    path = root / "graph_created" / "manifest.json"
    m = json.loads(path.read_text())
    m["format"] = 2
    path.write_text(json.dumps(m))
    store = CheckpointStore(root)
    assert store.load("graph_created") is None
    assert any("unknown manifest format 2" in p.reason for p in store.verify())


@pytest.mark.parametrize("field,value", [
    ("key", "0" * 64),                                   # claims to be valid for another run
    ("files", "hash"),                                   # a data file's recorded hash
    ("files", "size"),
    ("generation", "gen-1-1-00000000-0"),
])
def test_tampered_manifests_are_not_trusted(reference, tmp_path, field, value):
    """A checkpoint directory from elsewhere (another user, another machine) is verified before
    use: a manifest edited without its checksum is corrupt; one re-sealed with a correct checksum
    still fails the key or content checks."""
    from amlgraph.store._base import manifest_checksum

    root = reference.copy_to(tmp_path / "ckpt")
    path = root / "graph_created" / "manifest.json"
    m = json.loads(path.read_text())
    if field == "files":
        first = sorted(m["files"])[0]
        m["files"][first][value] = "0" * 32 if value == "hash" else m["files"][first]["size"] + 1
    else:
        m[field] = value
    path.write_text(json.dumps(m))
    store = CheckpointStore(root, verify="full")
    assert store.load("graph_created") is None  # checksum mismatch
    m["manifest_checksum"] = manifest_checksum(m)
    path.write_text(json.dumps(m))
    # re-sealed: the key no longer matches the run's, or the files no longer match the manifest
    result = run_preprocessing(data_path=reference.data, checkpoint_dir=root, quiet=False,
                               chunk_size=200, chunk_rows=1000)
    assert result.computed == ["graph_created"]
    assert final_digest(root) == reference.digest
