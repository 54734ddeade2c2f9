"""`amlgraph checkpoints list|verify|clean`."""
from __future__ import annotations

import argparse
import json

import numpy as np
import pytest

from amlgraph.cli import main
from amlgraph.errors import CheckpointError, ConfigError, LockedError
from amlgraph.store import CheckpointStore
from amlgraph.cli._checkpoints import checkpoints_command, parse_age


def _args(action, d, **kw):
    return argparse.Namespace(action=action, dir=d, keep_last=kw.get("keep_last"),
                              older_than=kw.get("older_than"), dry_run=kw.get("dry_run", False))


@pytest.fixture
def store(tmp_path):
    s = CheckpointStore(tmp_path / "ckpt")
    for n in ["data_loaded", "node_features", "node_features_chunk_2", "node_features_chunk_10"]:
        step, _, chunk = n.partition("_chunk_")
        s.save(n, step=step, chunk=int(chunk) if chunk else None, key=f"key-{n}-0123456789",
               arrays={"x": np.arange(1000.0)})
    return s


def _age(store, name, iso):
    path = store.root / name / "manifest.json"
    from amlgraph.store._base import seal

    m = json.loads(path.read_text())
    m["created"] = iso
    path.write_text(json.dumps(seal(m)))


def test_list_shows_checkpoints_in_order_with_totals(store, capsys):
    assert main(["checkpoints", "list", str(store.root)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].split() == ["NAME", "STEP", "CHUNK", "SIZE", "CREATED", "KEY"]
    assert [line.split()[0] for line in out[1:5]] == [
        "data_loaded", "node_features", "node_features_chunk_2", "node_features_chunk_10"]
    assert "key-node_fea" in out[2] and " kB" in out[2]
    assert out[-1].startswith("4 checkpoints,")


def test_verify_exit_code_names_damage(store, capsys):
    assert checkpoints_command(_args("verify", store.root)) == 0
    gen = store.root / "node_features_chunk_2" / store.manifest("node_features_chunk_2")["generation"]
    data = bytearray((gen / "array-x.npy").read_bytes())
    data[-1] ^= 1
    (gen / "array-x.npy").write_bytes(bytes(data))
    capsys.readouterr()
    assert main(["checkpoints", "verify", str(store.root)]) == 1
    out = capsys.readouterr().out
    assert "DAMAGED  node_features_chunk_2: array-x.npy content hash mismatch" in out
    assert "ok       node_features\n" in out


def test_clean_keep_last_and_dry_run(store, capsys):
    for i, n in enumerate(store.names()):
        _age(store, n, f"2024-01-0{i + 1}T00:00:00.000000Z")
    checkpoints_command(_args("clean", store.root, keep_last=1, dry_run=True))
    assert "would remove 3 checkpoint(s)" in capsys.readouterr().out
    assert len(store.names()) == 4
    checkpoints_command(_args("clean", store.root, keep_last=1))
    assert store.names() == ["node_features_chunk_10"]


def test_clean_older_than(store):
    _age(store, "data_loaded", "2020-01-01T00:00:00.000000Z")
    checkpoints_command(_args("clean", store.root, older_than="7d"))
    assert store.names() == ["node_features", "node_features_chunk_2", "node_features_chunk_10"]


def test_clean_by_age_keeps_what_a_kept_checkpoint_is_read_from(tiny_data, tmp_path, capsys):
    """The graph links to its chunks: --keep-last 1 keeps it and them, and it still loads."""
    from amlgraph import run_preprocessing
    from amlgraph.runner import load_graph
    from pipeline_helpers import graph_digest

    ckpt = tmp_path / "ckpt"
    digest = graph_digest(run_preprocessing(data_path=tiny_data, checkpoint_dir=ckpt, quiet=True).graph)
    store = CheckpointStore(ckpt)
    linked = {p["name"] for p in store.load("graph_created").value("parts")}
    for i, n in enumerate(store.names()):  # the graph the newest
        _age(store, n, "2030-01-01T00:00:00.000000Z" if n == "graph_created" else f"2024-01-01T00:00:{i % 60:02d}.000000Z")
    checkpoints_command(_args("clean", ckpt, keep_last=1))
    out = capsys.readouterr().out
    names = set(CheckpointStore(ckpt).names())
    assert "graph_created" in names and linked <= names and "that a kept checkpoint is read from" in out
    assert "imbalanced" not in names  # not linked: removed
    assert graph_digest(load_graph(ckpt)) == digest


def test_clean_refuses_a_locked_directory(store):
    with store.lock():
        with pytest.raises(LockedError, match="locked by pid"):
            checkpoints_command(_args("clean", store.root, keep_last=0))
    assert len(store.names()) == 4


def test_errors(store, tmp_path):
    with pytest.raises(ConfigError, match="--keep-last"):
        checkpoints_command(_args("clean", store.root))
    with pytest.raises(ConfigError, match="7d"):
        parse_age("seven days")
    with pytest.raises(CheckpointError, match="no checkpoint store"):
        checkpoints_command(_args("list", tmp_path / "empty"))
    assert parse_age("12h").total_seconds() == 43200
