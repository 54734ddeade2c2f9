"""Damage a finished run's checkpoint files on disk: verify names them, a rerun repairs exactly
what the final graph relies on, and the graph equals the uninterrupted run's."""
from __future__ import annotations

import os
import random
from pathlib import Path

import pytest

from amlgraph import cli
from amlgraph.runner import run_preprocessing
from harness import final_digest

# One file of every kind of checkpoint: raw and encoded row chunks, the node index, account
# chunks, edge chunks, step checkpoints (tables, arrays, values), and manifests.
TARGETS = [
    ("data_loaded_read_chunk_3", "table-raw.parquet"),
    ("data_loaded_index", "table-nodes.parquet"),
    ("data_loaded_chunk_5", "table-transactions.parquet"),
    ("data_loaded", "values.json"),
    ("data_loaded", "table-patterns.parquet"),
    ("node_features_chunk_2", "table-features_train.parquet"),
    ("node_features", "values.json"),
    ("edge_features_chunk_7", "table-features.parquet"),
    ("edge_features_chunk_1", "manifest.json"),
    ("graph_created", "array-synthetic_edge_attr.npy"),
    ("normalized", "values.json"),
    ("imbalanced", "array-X_synthetic.npy"),
    ("weights", "values.json"),
    ("graph_created", "array-node_y.npy"),
    ("graph_created", "manifest.json"),
]
FAULTS = ("truncate", "flip", "garbage", "delete", "delete_manifest")


def _file(root: Path, name: str, file: str) -> Path:
    if file == "manifest.json":
        return root / name / file
    (gen,) = [p for p in (root / name).iterdir() if p.name.startswith("gen-")]
    if file.startswith("array-") and not (gen / file).exists():
        return gen / f"{file}.zst"  # a compressed array (docs/CHECKPOINTS.md)
    return gen / file


def damage(root: Path, name: str, file: str, fault: str, seed: int = 0) -> None:
    """Apply ``fault`` to one file of checkpoint ``name`` (or, for delete_manifest, to its manifest)."""
    rng = random.Random(f"{name}/{file}/{fault}/{seed}")
    path = _file(root, name, "manifest.json" if fault == "delete_manifest" else file)
    data = path.read_bytes()
    if fault == "truncate":
        path.write_bytes(data[: len(data) // 2])
    elif fault == "flip":
        b = bytearray(data)
        b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        path.write_bytes(bytes(b))
    elif fault == "garbage":  # same size: only a content hash can tell
        path.write_bytes(rng.randbytes(len(data)))
    elif fault in ("delete", "delete_manifest"):
        os.unlink(path)
    else:
        raise ValueError(fault)


def _parts_of(root: Path) -> dict[str, set[str]]:
    """Which checkpoints list which parts (the ``parts`` value of step checkpoints)."""
    from amlgraph.store import CheckpointStore

    store = CheckpointStore(root)
    out: dict[str, set[str]] = {}
    for n in store.names():
        ck = store.load(n)
        if "parts" in ck.values:
            for p in ck.value("parts"):
                out.setdefault(p["name"], set()).add(n)
    return out


def _verify(root: Path, capsys) -> tuple[int, set[str], set[str]]:
    rc = cli.main(["checkpoints", "verify", str(root)])
    out = capsys.readouterr().out.splitlines()
    ok = {line.split()[1] for line in out if line.startswith("ok ")}
    damaged = {line.split()[1].rstrip(":") for line in out if line.startswith("DAMAGED ")}
    return rc, ok, damaged


@pytest.fixture(scope="module")
def parts_of(reference):
    return _parts_of(reference.ckpt)


@pytest.mark.parametrize("fault", FAULTS)
def test_verify_names_every_damaged_checkpoint(reference, parts_of, tmp_path, capsys, fault):
    for i, (name, file) in enumerate(TARGETS):
        if fault == "delete_manifest" and file == "manifest.json":
            continue
        root = reference.copy_to(tmp_path / f"c{i}")
        damage(root, name, file, fault)
        rc, ok, damaged = _verify(root, capsys)
        no_manifest = fault == "delete_manifest" or (fault == "delete" and file == "manifest.json")
        assert rc == 1 or (no_manifest and name not in parts_of), (name, file, rc)
        assert name not in ok, (name, file)
        relying = parts_of.get(name, set())
        if no_manifest:
            # no manifest = an uncommitted save: the checkpoint is gone, and whatever relied on it
            # is reported
            assert damaged == relying, (name, damaged)
        else:
            assert name in damaged, (name, file, damaged)
            assert damaged <= {name} | relying, (name, damaged)


# (damaged checkpoints and files, fault) -> steps recomputed, chunks recomputed per executor label.
SCENARIOS = [
    pytest.param([("graph_created", "array-node_y.npy")], fault, ["graph_created"], {}, id=f"graph-{fault}")
    for fault in FAULTS
] + [
    # The graph holds a copy of the synthetic rows: imbalanced is not needed while it is valid.
    pytest.param([("imbalanced", "array-X_synthetic.npy")], "garbage", [], {}, id="unused-needs-nothing"),
    # The graph's node matrices are read from the node chunks (it links to them, by key).
    pytest.param([("node_features_chunk_2", "table-features_train.parquet")], "garbage",
                 ["node_features", "graph_created"], {"node_features": 1}, id="linked-chunk"),
    pytest.param([("edge_features_chunk_7", "table-features.parquet"), ("normalized", "values.json"),
                  ("graph_created", "manifest.json")], "flip",
                 ["edge_features", "normalized", "graph_created"], {"edge_features": 1},
                 id="edge-chunk"),
    pytest.param([("node_features_chunk_2", "table-features_train.parquet"), ("normalized", "values.json"),
                  ("graph_created", "values.json")], "truncate",
                 ["node_features", "normalized", "graph_created"], {"node_features": 1},
                 id="node-chunk"),
    pytest.param([("data_loaded_chunk_5", "table-transactions.parquet"), ("graph_created", "array-synthetic_y.npy")],
                 "garbage", ["data_loaded", "graph_created"], {"data_loaded (encode)": 1},
                 id="encoded-chunk"),
    pytest.param([("data_loaded_read_chunk_3", "table-raw.parquet"), ("weights", "values.json"),
                  ("graph_created", "values.json")], "delete",
                 ["data_loaded", "weights", "graph_created"], {"data_loaded (parse)": 1}, id="raw-chunk"),
    pytest.param([("data_loaded_index", "table-nodes.parquet"), ("imbalanced", "array-X_synthetic.npy"),
                  ("graph_created", "array-synthetic_edge_attr.npy")], "flip",
                 ["data_loaded", "imbalanced", "graph_created"], {}, id="index"),
    pytest.param([("edge_features_chunk_1", "manifest.json"), ("normalized", "values.json"),
                  ("graph_created", "array-node_y.npy")], "delete_manifest",
                 ["edge_features", "normalized", "graph_created"], {"edge_features": 1},
                 id="chunk-manifest"),
]


@pytest.mark.parametrize("targets,fault,computed,chunks", SCENARIOS)
def test_rerun_recomputes_exactly_what_is_affected(reference, tmp_path, targets, fault, computed, chunks):
    root = reference.copy_to(tmp_path / "ckpt")
    for name, file in targets:
        damage(root, name, file, fault)
    result = run_preprocessing(data_path=reference.data, checkpoint_dir=root, quiet=False,
                               chunk_size=200, chunk_rows=1000, keep_parsed=True)
    assert result.computed == computed
    assert {k: v for k, v in result.chunks_computed.items() if v} == chunks
    assert final_digest(root) == reference.digest
