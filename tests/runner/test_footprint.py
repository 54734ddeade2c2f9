"""The disk footprint of a run on generated hi-small data, against the Trans file: default and
compacted, and what makes it (zstd tables, compressed cold arrays, the node matrices stored once).
Sizes, never times; the figures at 1M rows are bench/bench_footprint.py's (docs/BENCHMARKS.md)."""
from __future__ import annotations

import pyarrow.parquet as pq
import pytest

from cli_inprocess import run_main

#: The ratios this layout keeps on hi-small (docs/CHECKPOINTS.md, docs/BENCHMARKS.md).
DEFAULT_MAX, COMPACTED_MAX = 1.5, 1.0


@pytest.fixture(scope="module")
def hi_small(tmp_path_factory):
    from amlgraph import run_preprocessing
    from amlgraph.synth import generate

    base = tmp_path_factory.mktemp("footprint")
    generate("hi-small", base / "data", seed=0, rows=100_000)
    ckpt = base / "ckpt"
    run_preprocessing({"data_path": str(base / "data"), "checkpoint_dir": str(ckpt), "quiet": True})
    trans = sum(p.stat().st_size for p in (base / "data").glob("*_Trans*.csv"))
    return base, ckpt, trans


def _total(ckpt) -> int:
    from amlgraph.store import CheckpointStore

    store = CheckpointStore(ckpt)
    return sum(store.size_bytes(n) for n in store.names())


def test_default_and_compacted_footprint_against_the_input(hi_small, tmp_path):
    import shutil

    _, ckpt, trans = hi_small
    default = _total(ckpt)
    assert default <= DEFAULT_MAX * trans, default / trans
    compacted = tmp_path / "ckpt"
    shutil.copytree(ckpt, compacted)
    assert run_main("checkpoints", "clean", compacted, "--compact").returncode == 0
    assert _total(compacted) <= COMPACTED_MAX * trans, _total(compacted) / trans


def test_what_the_checkpoints_hold(hi_small, tmp_path):
    """Every table is zstd Parquet; normalized stores its scalers only; the graph links to the
    checkpoints its large arrays are read from (no second copy) until compaction writes it whole,
    its arrays zstd .npy.zst files, the views XOR-coded; data_loaded's reader batches are gone."""
    import shutil

    from amlgraph.store import CheckpointStore

    _, ckpt, _ = hi_small
    store = CheckpointStore(ckpt)
    for name in store.names():
        cp = store.load(name)
        for table in cp.tables:
            meta = pq.ParquetFile(cp.table_path(table)).metadata
            assert {meta.row_group(g).column(c).compression for g in range(meta.num_row_groups)
                    for c in range(meta.num_columns)} <= {"ZSTD"}, (name, table)
    assert store.load("normalized").arrays == []
    assert not [n for n in store.names() if n.startswith("data_loaded_read")]
    assert sorted(store.load("node_features_chunk_0").tables) == ["features_train", "xor_test", "xor_val"]
    linked = store.load("graph_created")
    assert sorted(linked.arrays) == ["node_y", "synthetic_edge_attr", "synthetic_y"] and linked.tables == []
    assert {p["name"] for p in linked.value("parts")} >= {"normalized", "node_features_chunk_0",
                                                          "edge_features_chunk_0", "data_loaded_chunk_0"}
    compacted = tmp_path / "ckpt"
    shutil.copytree(ckpt, compacted)
    assert run_main("checkpoints", "clean", compacted, "--compact").returncode == 0
    whole = CheckpointStore(compacted).load("graph_created")
    for big in ("edge_attr", "edge_index", "x", "x_train", "x_val", "raw_amount_paid"):
        assert whole.manifest["arrays"][big]["file"].endswith(".npy.zst"), big
    assert whole.value("coding") == {"node_views": "xor", "edge_attr": "columns"}


def test_status_and_list_show_the_footprint_and_its_ratio(hi_small):
    import json

    base, ckpt, _ = hi_small
    inputs = sum(p.stat().st_size for p in (base / "data").iterdir())
    status = json.loads(run_main("status", ckpt, "--json").stdout)
    assert status["footprint"]["bytes"] == _total(ckpt)
    assert status["footprint"]["input_bytes"] == inputs
    assert status["footprint"]["ratio"] == round(_total(ckpt) / inputs, 3)
    listing = run_main("checkpoints", "list", ckpt).stdout.strip().splitlines()[-1]
    from amlgraph.cli._text import size_text

    assert listing.endswith(f"{size_text(_total(ckpt))} in {ckpt} ({_total(ckpt) / inputs:.2f}x the input's "
                            f"{size_text(inputs)})")


def test_a_graph_too_large_to_decode_in_memory_stays_plain_and_memory_mapped(tiny_data, tmp_path, monkeypatch):
    """Compressed arrays are decoded on every load and a linked graph is assembled on every load;
    a graph whose arrays exceed the share of memory allowed for that is written whole, plain and
    uncoded, by the step (HI-Large on a laptop) or by compaction, and memory-mapped on load, with
    the same values."""
    import numpy as np

    from amlgraph import run_preprocessing
    from amlgraph.runner import _context, load_graph
    from amlgraph.runner._compact import compact_checkpoints
    from amlgraph.store import CheckpointStore
    from pipeline_helpers import graph_digest

    small = run_preprocessing({"data_path": str(tiny_data), "checkpoint_dir": str(tmp_path / "a"), "quiet": True})
    assert "links" in CheckpointStore(tmp_path / "a").load("graph_created").values
    monkeypatch.setattr(_context, "DECODE_MEMORY_FRACTION", 1e-12)
    big = run_preprocessing({"data_path": str(tiny_data), "checkpoint_dir": str(tmp_path / "b"), "quiet": True})
    compact_checkpoints(tmp_path / "a")
    for root in (tmp_path / "a", tmp_path / "b"):
        whole = CheckpointStore(root).load("graph_created")
        assert "links" not in whole.values and "coding" not in whole.values
        assert all(info["file"].endswith(".npy") for info in whole.manifest["arrays"].values())
        plain = load_graph(root)
        assert isinstance(plain.edge_attr, np.memmap) and isinstance(plain.x_val, np.memmap)
        assert graph_digest(plain) == graph_digest(small.graph)
    assert graph_digest(big.graph) == graph_digest(small.graph)
