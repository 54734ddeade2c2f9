"""The pattern_features step: chunked by the coded chunks with the look-back window as context,
its columns equal one kernel call over all rows whatever the chunking, causal at step level,
keyed by its parameters, and absent (keys and outputs as before) when not asked for."""
from __future__ import annotations

import shutil

import numpy as np
import polars as pl
import pytest

from amlgraph.config import PatternConfig, PipelineConfig
from amlgraph.errors import ConfigError
from amlgraph.runner import run_preprocessing
from amlgraph.steps import declarations
from amlgraph.steps._layout import chunk_names, coded_chunks
from amlgraph.steps.pattern_features import PatternParams, pattern_feature_names, pattern_features
from amlgraph.store import CheckpointStore

from pipeline_helpers import graph_digest

#: Short windows and cycles keep the micro data's runs fast; every family is still computed.
FAST = {"window": 3_600, "scatter_gather_window": 1_800, "temporal_cycle_window": 3_600,
        "simple_cycle_window": 1_800, "max_cycle_length": 5, "bins": [2, 3, 5]}


def _run(data, ckpt, **kw):
    options = {"quiet": True, "chunk_size": 250, "patterns": {"enabled": True, **FAST}}
    options.update(kw)
    return run_preprocessing(data_path=data, checkpoint_dir=ckpt, **options)


def pattern_table(ckpt) -> pl.DataFrame:
    """Every pattern chunk of a finished run, in chunk order, as one frame."""
    store = CheckpointStore(ckpt, create=False)
    step = store.load("pattern_features")
    return pl.concat([store.load(n).table("features") for n in chunk_names(step)])


def coded_rows(ckpt) -> pl.DataFrame:
    store = CheckpointStore(ckpt, create=False)
    return pl.concat([store.load(n).table("transactions") for n in coded_chunks(store.load("data_loaded"))])


def one_kernel_call(tx: pl.DataFrame, params: PatternParams) -> pl.DataFrame:
    """The features of every row from one call over all rows sorted by (timestamp, row)."""
    s = tx.sort("timestamp", "row")
    feats = pattern_features(s["src"].to_numpy(), s["dst"].to_numpy(), s["timestamp"].to_numpy(),
                             s["amount_paid"].to_numpy(), n_context=0, params=params, threads=1)
    return pl.DataFrame({"row": s["row"], **feats}).sort("row")


@pytest.fixture(scope="module")
def by_chunking(micro_data, tmp_path_factory):
    """The pattern columns of runs with 13, 50, n and n + 42 rows per chunk (47, 12, 1, 1 chunks)."""
    base = tmp_path_factory.mktemp("patterns")
    out = {}
    for rows in (13, 50, 600, 642):
        ckpt = base / f"ckpt_{rows}"
        _run(micro_data, ckpt, chunk_rows=rows, sample_size=600)  # read as a stream: batches of `rows`
        out[rows] = ckpt
    return out


def test_chunks_give_the_columns_of_one_kernel_call(by_chunking):
    params = PatternParams(**{k: tuple(v) if isinstance(v, list) else v for k, v in FAST.items()})
    names = pattern_feature_names(params)
    reference = one_kernel_call(coded_rows(by_chunking[600]), params)
    assert reference.height == 600 and (reference.select(names).sum_horizontal() > 0).sum() > 100
    tables = {rows: pattern_table(ckpt) for rows, ckpt in by_chunking.items()}
    assert len(CheckpointStore(by_chunking[13], create=False).load("pattern_features").value("parts")) == 47
    for rows, table in tables.items():
        coded = coded_rows(by_chunking[rows])
        # chunk i holds the rows of coded chunk i, in their order, with their label and split
        assert table["row"].equals(coded["row"]), rows
        assert table["label"].equals(coded["is_laundering"].cast(pl.Int8)), rows
        assert table["split"].equals(coded["split"].cast(pl.Int8)), rows
        assert table.columns == ["row", "label", "split", *names]
        got = table.sort("row").select("row", *names)
        for name in names:  # byte for byte, floats included
            a, b = got[name].to_numpy(), reference[name].to_numpy()
            assert a.dtype == b.dtype and a.tobytes() == b.tobytes(), (rows, name)


def test_the_graph_is_the_same_whatever_the_chunking(by_chunking):
    from amlgraph.runner import load_graph

    digests = {rows: graph_digest(load_graph(ckpt)) for rows, ckpt in by_chunking.items()}
    assert all(d == digests[600] for d in digests.values())
    graph = load_graph(by_chunking[600])
    pattern_cols = [n for n in graph.edge_feature_names if n.startswith("pattern_")]
    assert len(pattern_cols) == len(pattern_feature_names(PatternParams(**{
        k: tuple(v) if isinstance(v, list) else v for k, v in FAST.items()})))
    # scaled with the training rows: the training rows' log1p'd columns have mean ~0
    j = graph.edge_feature_names.index("pattern_degree_out_src")
    assert abs(float(graph.edge_attr[graph.train_mask, j].astype(np.float64).mean())) < 1e-3
    assert np.isfinite(graph.edge_attr).all()


def test_appending_later_transactions_leaves_earlier_rows_unchanged(tiny_data, tmp_path):
    """The first 4,000 rows of the file, then all 10,000: every row ranked before the first
    appended row in (timestamp, row) order keeps its pattern columns, bit for bit."""
    _run(tiny_data, tmp_path / "short", sample_size=4_000, chunk_rows=900)
    _run(tiny_data, tmp_path / "long", chunk_rows=1_300)
    short, long = pattern_table(tmp_path / "short"), pattern_table(tmp_path / "long")
    tx = coded_rows(tmp_path / "long").select("row", "timestamp")
    first_new = tx.filter(pl.col("row") >= 4_000).sort("timestamp", "row").row(0)
    earlier = tx.filter((pl.col("row") < 4_000) & ((pl.col("timestamp") < first_new[1]) | (
        (pl.col("timestamp") == first_new[1]) & (pl.col("row") < first_new[0]))))["row"]
    assert earlier.len() > 3_000
    keep = pl.col("row").is_in(earlier.implode())
    # (split moves with the new days: the boundaries are global; the features may not)
    a, b = short.filter(keep).sort("row").drop("split"), long.filter(keep).sort("row").drop("split")
    assert a.height == earlier.len() and a.equals(b)
    features = [c for c in a.columns if c.startswith("pattern_")]
    assert (a.select(features).sum_horizontal() > 0).sum() > 1_000  # not a comparison of zeros


def test_a_run_without_patterns_keys_and_reads_as_before(micro_data, tmp_path):
    from amlgraph.runner._log import RunLog
    from amlgraph.runner._run import Run
    from amlgraph.store import MemoryStore

    off = Run(PipelineConfig(data_path=micro_data), MemoryStore(), RunLog(quiet=True))
    on = Run(PipelineConfig(data_path=micro_data, patterns=True), MemoryStore(), RunLog(quiet=True))
    assert off.order == ["data_loaded", "node_features", "edge_features", "normalized", "imbalanced",
                         "weights", "graph_created"]
    assert on.order[3] == "pattern_features" and len(on.order) == 8
    assert "pattern_features" not in off.components["normalized"]["inputs"]
    assert on.components["normalized"]["inputs"]["pattern_features"] == on.keys["pattern_features"]
    for step in ("data_loaded", "node_features", "edge_features"):
        assert off.keys[step] == on.keys[step]
    for step in ("normalized", "imbalanced", "graph_created"):
        assert off.keys[step] != on.keys[step]
    # only the pattern parameters key the step; enabled does not
    assert "enabled" not in on.components["pattern_features"]["params"]["patterns"]


def test_changing_a_pattern_parameter_recomputes_the_step_and_what_follows(micro_data, tmp_path):
    ckpt = tmp_path / "ckpt"
    # sample_size: read as a stream, in batches of chunk_rows rows (3 chunks)
    plain = run_preprocessing(data_path=micro_data, checkpoint_dir=tmp_path / "plain", quiet=True,
                              chunk_rows=200, chunk_size=250, sample_size=600)
    first = _run(micro_data, ckpt, sample_size=600, chunk_rows=200)
    assert "pattern_features" in first.computed
    again = _run(micro_data, ckpt, sample_size=600, chunk_rows=200)
    assert again.computed == [] and again.loaded == ["graph_created"]
    wider = _run(micro_data, ckpt, sample_size=600, chunk_rows=200, patterns={"enabled": True, **FAST, "window": 7_200})
    assert wider.computed == ["pattern_features", "normalized", "imbalanced", "graph_created"]
    assert set(wider.loaded) == {"data_loaded", "node_features", "edge_features", "weights"}
    assert wider.chunks_computed["pattern_features"] == 3
    # without --patterns: the graph of a run that never had them, bit for bit
    off = run_preprocessing(data_path=micro_data, checkpoint_dir=ckpt, quiet=True, chunk_rows=200,
                            chunk_size=250, sample_size=600)
    assert "pattern_features" not in off.computed + off.loaded
    assert graph_digest(off.graph) == graph_digest(plain.graph)
    assert not any(n.startswith("pattern_") for n in off.graph.edge_feature_names)
    # and back on: the step's checkpoint was kept, only its consumers run again
    back = _run(micro_data, ckpt, sample_size=600, chunk_rows=200, patterns={"enabled": True, **FAST, "window": 7_200})
    assert "pattern_features" in back.loaded
    assert back.computed == ["normalized", "imbalanced", "graph_created"]
    assert graph_digest(back.graph) == graph_digest(wider.graph)


def test_resume_from_the_pattern_step(micro_data, tmp_path):
    ckpt = tmp_path / "ckpt"
    _run(micro_data, ckpt, chunk_rows=300)
    again = _run(micro_data, ckpt, chunk_rows=300, resume_from="pattern_features")
    assert again.computed == ["normalized", "imbalanced", "weights", "graph_created"]
    assert "pattern_features" in again.loaded
    with pytest.raises(ConfigError, match="leaves out"):
        PipelineConfig(data_path=micro_data, resume_from="pattern_features")
    shutil.rmtree(ckpt)


def test_pattern_config_validates_and_reads_toml(tmp_path):
    assert PipelineConfig(data_path=tmp_path).optional_steps == ()
    assert PipelineConfig(data_path=tmp_path, patterns=True).optional_steps == ("pattern_features",)
    for bad in ({"window": 0}, {"bins": [3, 2]}, {"families": ["fans"]}, {"max_cycle_length": 1},
                {"windw": 5}, {"bins": "2,3"}):
        with pytest.raises(ConfigError):
            PipelineConfig(data_path=tmp_path, patterns=bad)
    toml = tmp_path / "c.toml"
    toml.write_text("[amlgraph]\nseed = 3\n\n[patterns]\nwindow = 600\nfamilies = [\"fan\", \"degree\"]\n")
    cfg = PipelineConfig.from_toml(toml, data_path=tmp_path)
    assert cfg.patterns == PatternConfig(enabled=True, window=600, families=("fan", "degree"))
    assert cfg.step_params("pattern_features")["patterns"]["families"] == ["fan", "degree"]
    toml.write_text("[patterns]\nenabled = false\nwindow = 600\n")
    assert not PipelineConfig.from_toml(toml, data_path=tmp_path).patterns.enabled
    # --patterns turns a disabled section on and keeps its values
    on = PipelineConfig.from_toml(toml, data_path=tmp_path, patterns=True).patterns
    assert on.enabled and on.window == 600
    assert "pattern_features" in declarations() and "pattern_features" not in declarations(())
