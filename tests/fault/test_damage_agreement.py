"""verify, clean --damaged, list and status agree on what is damaged after a same-size flip of one
byte in a checkpoint data file, and status says what the next run then recomputes."""
from __future__ import annotations

import re
import shlex

import pytest

from amlgraph import cli
from amlgraph.runner import run_preprocessing
from amlgraph.store import CheckpointStore
from store_fixtures import copy_run, gen_dir, make_run


_REMOVED = re.compile(r"^would remove ([a-z][a-z0-9_]*) \(")


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    return make_run(tmp_path_factory.mktemp("agreement"))


def _flip(root, name, pattern):
    path = sorted(gen_dir(root, name).glob(pattern))[0]  # e.g. the first table file of a chunk
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x10  # one bit in the middle of the file: the size stays the same
    path.write_bytes(bytes(data))


def _main(capsys, *args) -> tuple[int, list[str]]:
    rc = cli.main([str(a) for a in args])
    out = capsys.readouterr()
    assert "internal error" not in out.err, out.err
    return rc, out.out.splitlines()


SCENARIOS = [  # flipped (checkpoint, file pattern) -> damaged checkpoints, steps the next run computes
    # The graph links to the feature chunks and normalized (its parts): damage to one of them is
    # damage to the graph too, and the next run recomputes that chunk and the graph.
    pytest.param([("node_features_chunk_1", "table-*.parquet")],
                 {"node_features_chunk_1", "node_features", "graph_created"}, ["node_features", "graph_created"],
                 id="linked-chunk"),
    pytest.param([("graph_created", "array-node_y.npy*")], {"graph_created"}, ["graph_created"], id="graph"),
    pytest.param([("edge_features_chunk_1", "table-*.parquet"), ("normalized", "values.json")],
                 {"edge_features_chunk_1", "edge_features", "normalized", "graph_created"},
                 ["edge_features", "normalized", "graph_created"], id="chunk-and-step"),
    pytest.param([("edge_features_chunk_2", "table-*.parquet"), ("graph_created", "array-synthetic_y.npy*")],
                 {"edge_features_chunk_2", "edge_features", "graph_created"}, ["edge_features", "graph_created"],
                 id="chunk-and-graph"),
    # Nothing the graph links to: the imbalanced checkpoint (the graph holds its rows).
    pytest.param([("imbalanced", "array-X_synthetic.npy*")], {"imbalanced"}, [], id="unused"),
]


@pytest.mark.parametrize("flips,damaged,computed", SCENARIOS)
def test_verify_clean_list_and_status_agree(finished, tmp_path, capsys, flips, damaged, computed):
    data, ckpt = finished
    root = copy_run(ckpt, tmp_path / "ckpt")
    for name, file in flips:
        _flip(root, name, file)
    everything = set(CheckpointStore(root, verify="none").names())

    # verify names each damaged checkpoint and the command that removes exactly those
    rc, out = _main(capsys, "checkpoints", "verify", root)
    assert rc == 1
    named = {line.split()[1].rstrip(":") for line in out if line.startswith("DAMAGED ")}
    assert named == damaged, out
    assert not any("--keep-last" in line for line in out), f"verify advises a clean by age: {out[-1]}"
    (advice,) = [line for line in out if "amlgraph checkpoints clean" in line]
    command = shlex.split(advice[advice.index("amlgraph checkpoints clean"):])
    assert command[:3] == ["amlgraph", "checkpoints", "clean"] and "--damaged" in command, advice

    # list marks them (and only them)
    rc, listed = _main(capsys, "checkpoints", "list", root)
    assert rc == 0
    marked = {line.split()[0] for line in listed[1:-1] if "DAMAGED" in line}
    assert marked == damaged, listed
    assert f"{len(damaged)} damaged" in listed[-1]

    # status says which are damaged and what the next run will compute
    rc, status = _main(capsys, "status", root)
    assert rc == 0
    (plan,) = [line.strip() for line in status if line.strip().startswith("next run:")]
    told = plan.split("compute ", 1)[1].split(";", 1)[0]
    assert told == (", ".join(computed) or "nothing"), status
    for step in damaged & {"node_features", "edge_features", "normalized", "graph_created"}:
        assert any(line.split()[:2] == [step, "damaged"] for line in status), (step, status)

    # the advised command, dry run first: exactly the damaged ones, nothing else
    rc, dry = _main(capsys, *command[1:], "--dry-run")
    assert rc == 0
    assert {m.group(1) for m in map(_REMOVED.match, dry) if m} == damaged, dry
    assert set(CheckpointStore(root, verify="none").names()) == everything
    rc, _ = _main(capsys, *command[1:])
    assert rc == 0
    assert set(CheckpointStore(root, verify="none").names()) == everything - damaged
    assert _main(capsys, "checkpoints", "verify", root)[0] == 0

    # status told the truth about the next run (before the clean; here after it, nothing extra)
    again = copy_run(ckpt, tmp_path / "again")
    for name, file in flips:
        _flip(again, name, file)
    result = run_preprocessing(data_path=data, checkpoint_dir=again, quiet=True, chunk_size=20, chunk_rows=200)
    assert result.computed == computed
