"""Compaction (`checkpoints clean --compact`, `run --compact`): after it the graph loads and
exports as before, a rerun is a no-op, and a changed parameter recomputes from the input and says
so. Real runs on generated data, real files."""
from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from cli_inprocess import run_main
from pipeline_helpers import graph_digest


def _files_digest(directory: Path) -> dict[str, str]:
    return {p.relative_to(directory).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(directory.rglob("*")) if p.is_file()}


def _exports(ckpt: Path, out: Path) -> dict[str, dict[str, str]]:
    got = {}
    for fmt in ("parquet", "multignn"):
        done = run_main("export", ckpt, "--format", fmt, "--out", out / fmt)
        assert done.returncode == 0, done.stderr
        got[fmt] = _files_digest(out / fmt)
    return got


@pytest.fixture(scope="module")
def finished(tiny_data, tmp_path_factory):
    """A finished run, its graph digest and its exports, before any compaction."""
    from amlgraph import run_preprocessing

    base = tmp_path_factory.mktemp("compact")
    ckpt = base / "ckpt"
    result = run_preprocessing({"data_path": str(tiny_data), "checkpoint_dir": str(ckpt), "quiet": True})
    return ckpt, graph_digest(result.graph), _exports(ckpt, base / "exports")


def test_compact_keeps_the_graph_its_exports_and_a_no_op_rerun(finished, tiny_data, tmp_path):
    from amlgraph import run_preprocessing
    from amlgraph.runner import load_graph
    from amlgraph.store import CheckpointStore

    reference, digest, exports = finished
    ckpt = tmp_path / "ckpt"
    shutil.copytree(reference, ckpt)
    before = sum(CheckpointStore(ckpt).size_bytes(n) for n in CheckpointStore(ckpt).names())

    done = run_main("checkpoints", "clean", ckpt, "--compact")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"compacted {ckpt}: removed ")
    store = CheckpointStore(ckpt, verify="full")
    assert store.names() == ["data_loaded", "imbalanced", "weights", "graph_created"]
    after = sum(store.size_bytes(n) for n in store.names())
    assert after < before
    # The graph is now whole: every array in it, none linked to a removed checkpoint.
    graph = store.load("graph_created")
    assert "links" not in graph.values and {"x", "edge_attr", "edge_index", "raw_amount_paid"} <= set(graph.arrays)
    assert store.verify() == []
    verify = run_main("checkpoints", "verify", ckpt)
    assert verify.returncode == 0, verify.stdout

    assert graph_digest(load_graph(ckpt)) == digest
    assert _exports(ckpt, tmp_path / "exports") == exports

    rerun = run_preprocessing({"data_path": str(tiny_data), "checkpoint_dir": str(ckpt), "quiet": True})
    assert rerun.computed == [] and rerun.loaded == ["graph_created"]
    assert graph_digest(rerun.graph) == digest
    assert store.names() == ["data_loaded", "imbalanced", "weights", "graph_created"]

    import json

    status = json.loads(run_main("status", ckpt, "--json").stdout)
    assert status["next_run"]["compute"] == [] and status["next_run"]["load"] == ["graph_created"]
    assert status["steps"]["graph_created"]["state"] == "valid"
    assert status["steps"]["data_loaded"]["reason"].startswith("compacted")
    assert status["footprint"]["bytes"] == after and 0 < status["footprint"]["ratio"] < 1


def test_a_parameter_change_after_compaction_recomputes_from_the_input_and_says_so(finished, tiny_data, tmp_path):
    from amlgraph import run_preprocessing
    from amlgraph.runner._log import RunLog

    reference, _, _ = finished
    ckpt = tmp_path / "ckpt"
    shutil.copytree(reference, ckpt)
    assert run_main("checkpoints", "clean", ckpt, "--compact").returncode == 0

    lines: list[str] = []

    class Capture(RunLog):
        def line(self, text: str = "") -> None:
            lines.append(text)

    changed = run_preprocessing({"data_path": str(tiny_data), "checkpoint_dir": str(ckpt), "quiet": True,
                                 "minority_cost": 3.0}, log=Capture(quiet=True))
    said = [t for t in lines if "compacted" in t]
    assert len(said) == 1 and said[0].startswith("Computing data_loaded: compacted") \
        and "recomputing from the input files" in said[0], lines
    assert "data_loaded" in changed.computed and "node_features" in changed.computed
    fresh = run_preprocessing({"data_path": str(tiny_data), "checkpoint_dir": str(tmp_path / "fresh"),
                               "quiet": True, "minority_cost": 3.0})
    assert graph_digest(changed.graph) == graph_digest(fresh.graph)


def test_run_compact_compacts_after_a_finished_run(tiny_data, tmp_path):
    from amlgraph.store import CheckpointStore

    ckpt = tmp_path / "ckpt"
    done = run_main("run", tiny_data, "--checkpoint-dir", ckpt, "--compact")
    assert done.returncode == 0, done.stderr
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith(f"compacted {ckpt}: removed ") and "x the input's" in last
    assert CheckpointStore(ckpt).names() == ["data_loaded", "imbalanced", "weights", "graph_created"]
    again = run_main("run", tiny_data, "--checkpoint-dir", ckpt, "--compact", "--quiet")
    assert again.returncode == 0 and again.stdout == ""
    report = run_main("report", ckpt, "--out", tmp_path / "report.html")  # the report needs no removed checkpoint
    assert report.returncode == 0, report.stderr
    assert (tmp_path / "report.html").stat().st_size > 10_000


def test_compact_refuses_a_directory_without_a_finished_run(tiny_data, tmp_path):
    from amlgraph.store import CheckpointStore

    ckpt = tmp_path / "ckpt"
    CheckpointStore(ckpt)
    done = run_main("checkpoints", "clean", ckpt, "--compact")
    assert done.returncode == 3
    assert len(done.stderr.strip().splitlines()) == 1
    assert "nothing to compact: graph_created is missing or damaged" in done.stderr
    mixed = run_main("checkpoints", "clean", ckpt, "--compact", "--damaged")
    assert mixed.returncode == 2 and "--compact" in mixed.stderr


def test_unscaled_export_after_compaction_says_what_is_missing(finished, tmp_path):
    reference, _, _ = finished
    ckpt = tmp_path / "ckpt"
    shutil.copytree(reference, ckpt)
    assert run_main("checkpoints", "clean", ckpt, "--compact").returncode == 0
    done = run_main("export", ckpt, "--format", "parquet", "--unscaled", "--out", tmp_path / "out")
    assert done.returncode == 3
    assert len(done.stderr.strip().splitlines()) == 1
    assert "compacted" in done.stderr and "--fresh" in done.stderr
