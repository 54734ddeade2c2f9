"""The runner: outputs, smart resume, resume_from, invalidation by parameter, code and input."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from amlgraph.config import PipelineConfig
from amlgraph.errors import CheckpointError
from amlgraph.runner import run_preprocessing
from amlgraph.schema import STEPS
from amlgraph.store import CheckpointStore, MemoryStore

from pipeline_helpers import graph_digest


@pytest.fixture(scope="module")
def baseline(tiny_data, tmp_path_factory):
    """One uninterrupted run on the tiny preset; its directory is copied by tests that mutate it."""
    ckpt = tmp_path_factory.mktemp("baseline") / "ckpt"
    result = run_preprocessing(data_path=tiny_data, checkpoint_dir=ckpt, quiet=True,
                               chunk_rows=2_500, chunk_size=700)
    return ckpt, result, graph_digest(result.graph)


def _copy(baseline, tmp_path):
    ckpt = tmp_path / "ckpt"
    shutil.copytree(baseline[0], ckpt)
    return ckpt


def test_graph_is_complete_and_consistent(baseline, tiny_data):
    _, result, _ = baseline
    g = result.graph
    assert result.computed == list(STEPS)
    assert g.num_edges == len(np.unique(g.edge_row)) > 5_000
    assert g.edge_index.shape == (2, g.num_edges)
    assert g.edge_index.min() >= 0 and g.edge_index.max() < g.num_nodes
    assert g.x.shape == (g.num_nodes, len(g.node_feature_names))
    assert g.edge_attr.shape == (g.num_edges, len(g.edge_feature_names))
    assert np.isfinite(g.x).all() and np.isfinite(g.edge_attr).all()
    masks = np.stack([g.train_mask, g.val_mask, g.test_mask])
    assert (masks.sum(axis=0) == 1).all() and masks.any(axis=1).all()
    # the temporal split: every training edge is earlier than every test edge
    assert g.timestamp[g.train_mask].max() < g.timestamp[g.test_mask].min()
    assert set(g.class_weights) == {0, 1} and g.class_weights[1] > g.class_weights[0]
    assert g.y.sum() > 0 and g.node_y.sum() > 0
    # node ids follow the sorted (bank, account) order
    nodes = g.nodes
    assert nodes["node_id"].to_list() == list(range(g.num_nodes))
    assert nodes.sort(["bank", "account"])["node_id"].to_list() == list(range(g.num_nodes))
    # seed's tuple view
    G, nf, ef, labels, weights = result.as_seed_tuple()
    assert nf.shape[0] == G.num_nodes and ef.shape[0] == labels.shape[0] and weights == g.class_weights


def test_second_run_loads_only_the_graph(baseline, tmp_path):
    ckpt = _copy(baseline, tmp_path)
    result = run_preprocessing(data_path=_data_of(baseline), checkpoint_dir=ckpt, quiet=True,
                               chunk_rows=2_500, chunk_size=700)
    assert result.computed == []
    assert result.loaded == ["graph_created"]
    assert graph_digest(result.graph) == baseline[2]


def _data_of(baseline):
    ckpt = CheckpointStore(baseline[0], create=False)
    from pathlib import Path

    return Path(ckpt.load("data_loaded").value("config")["data_path"])


@pytest.mark.parametrize("step", STEPS)
def test_resume_from_each_step_equals_uninterrupted(baseline, tmp_path, step):
    ckpt = _copy(baseline, tmp_path)
    result = run_preprocessing(data_path=_data_of(baseline), checkpoint_dir=ckpt, quiet=True,
                               chunk_rows=2_500, chunk_size=700, resume_from=step)
    assert result.computed == list(STEPS[STEPS.index(step) + 1:])
    assert graph_digest(result.graph) == baseline[2]


@pytest.mark.parametrize("change, expected", [
    ({"minority_cost": 3.0}, ["weights", "graph_created"]),
    ({"strategy": "none"}, ["imbalanced", "graph_created"]),
    ({"currency": "raw"}, ["node_features", "edge_features", "normalized", "imbalanced", "graph_created"]),
    ({"split_fractions": (0.5, 0.25, 0.25)}, list(STEPS)),
    ({"chunk_size": 300, "chunk_rows": 4_000}, []),
])
def test_changing_a_parameter_recomputes_exactly_the_affected_steps(baseline, tmp_path, change, expected):
    ckpt = _copy(baseline, tmp_path)
    params = {"chunk_rows": 2_500, "chunk_size": 700, **change}
    result = run_preprocessing(data_path=_data_of(baseline), checkpoint_dir=ckpt, quiet=True, **params)
    assert result.computed == expected
    if not expected:
        assert graph_digest(result.graph) == baseline[2]


def test_stale_reason_names_the_parameter(baseline, tmp_path):
    from amlgraph.runner import Run
    from amlgraph.runner._log import RunLog

    ckpt = _copy(baseline, tmp_path)
    cfg = PipelineConfig(data_path=_data_of(baseline), checkpoint_dir=ckpt, minority_cost=2.0)
    run = Run(cfg, CheckpointStore(ckpt), RunLog(quiet=True))
    ok, reason = run.check("weights")
    assert not ok and "minority_cost" in reason
    assert run.check("normalized") == (True, None)
    ok, reason = run.check("graph_created")
    assert not ok and "weights" in reason


def test_changed_input_file_recomputes_everything(baseline, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(_data_of(baseline), data)
    ckpt = _copy(baseline, tmp_path)
    trans = next(data.glob("*_Trans.csv"))
    lines = trans.read_text().splitlines(keepends=True)
    trans.write_text("".join(lines[:-50]))  # the last 50 rows are gone
    from amlgraph.runner import Run
    from amlgraph.runner._log import RunLog

    run = Run(PipelineConfig(data_path=data, checkpoint_dir=ckpt), CheckpointStore(ckpt), RunLog(quiet=True))
    ok, reason = run.check("data_loaded")
    assert not ok and "input file changed" in reason
    result = run_preprocessing(data_path=data, checkpoint_dir=ckpt, quiet=True, chunk_rows=2_500,
                               chunk_size=700)
    assert result.computed == list(STEPS)
    assert result.graph.num_edges == baseline[1].graph.num_edges - 50


def test_only_needed_work_is_redone_after_damage(baseline, tmp_path):
    ckpt = _copy(baseline, tmp_path)
    store = CheckpointStore(ckpt)
    opts = {"data_path": _data_of(baseline), "checkpoint_dir": ckpt, "quiet": True, "chunk_rows": 2_500,
            "chunk_size": 700}
    # A lost checkpoint that the graph holds a copy of (the resampling) is not needed while the
    # graph is valid.
    store.delete("imbalanced")
    result = run_preprocessing(**opts)
    assert result.computed == [] and result.chunks_computed == {}
    # The graph is read from the node chunks (steps.graph_created): a lost one is recomputed,
    # alone, and so is the graph that links to it (with the resampling it reads, lost above);
    # normalized, whose key is unchanged, is kept.
    store.delete("node_features_chunk_1")
    result = run_preprocessing(**opts)
    assert result.computed == ["node_features", "imbalanced", "graph_created"]
    assert result.chunks_computed == {"node_features": 1}
    assert graph_digest(result.graph) == baseline[2]
    # Once the steps after it are gone too, exactly what they need is recomputed.
    store.delete("node_features_chunk_1")
    for name in ("node_features", "normalized", "graph_created"):
        store.delete(name)
    result = run_preprocessing(**opts)
    assert result.computed == ["node_features", "normalized", "graph_created"]
    assert result.chunks_computed == {"node_features": 1}  # normalized has no chunks of its own
    assert graph_digest(result.graph) == baseline[2]


def test_resume_from_a_missing_step_says_what_exists(tiny_data, tmp_path):
    with pytest.raises(CheckpointError, match=r"cannot resume from normalized.*valid checkpoints: none"):
        run_preprocessing(data_path=tiny_data, checkpoint_dir=tmp_path / "c", quiet=True,
                          resume_from="normalized")


def test_sample_size_takes_the_first_rows(tiny_data):
    result = run_preprocessing(data_path=tiny_data, store=MemoryStore(), quiet=True, sample_size=1_000)
    assert sorted(result.graph.edge_row.tolist()) == list(range(1_000))


def test_memory_store_equals_file_store(baseline):
    result = run_preprocessing(data_path=_data_of(baseline), store=MemoryStore(), quiet=True,
                               chunk_rows=2_500, chunk_size=700)
    assert graph_digest(result.graph) == baseline[2]


@pytest.mark.parametrize("chunk_size", [1, 2, 50, "n", "n+42"])
def test_chunk_size_invariance(micro_data, chunk_size, micro_reference):
    n_nodes, n_rows, reference = micro_reference
    size = {"n": n_nodes, "n+42": n_nodes + 42}.get(chunk_size, chunk_size)
    rows = {1: 1, 2: 2, 50: 50, "n": n_rows, "n+42": n_rows + 42}[chunk_size]
    result = run_preprocessing(data_path=micro_data, store=MemoryStore(), quiet=True,
                               chunk_size=size, chunk_rows=rows, sample_size=INVARIANCE_ROWS)
    assert graph_digest(result.graph) == reference


#: Rows of the chunk-size invariance runs: one-row chunks cost a task each.
INVARIANCE_ROWS = 250


@pytest.fixture(scope="module")
def micro_reference(micro_data):
    one = run_preprocessing(data_path=micro_data, store=MemoryStore(), quiet=True,
                            chunk_size=10**9, chunk_rows=10**9, sample_size=INVARIANCE_ROWS)
    assert int(one.graph.y.sum()) > 0
    return one.graph.num_nodes, one.graph.num_edges, graph_digest(one.graph)


def test_seed_entry_point_writes_checkpoints_beside_the_data(tiny_data, tmp_path):
    from amlgraph import run_simple_preprocessing

    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    G, nf, ef, labels, weights = run_simple_preprocessing(str(data), sample_size=4_000, quiet=True)
    assert (data / "checkpoints_4000" / "graph_created").is_dir()
    assert G.num_edges == 4_000 and nf.shape == G.x.shape and ef.shape == G.edge_attr.shape
    assert not ef.flags.writeable  # read-only: decoded from the compressed checkpoint (docs/CHECKPOINTS.md)
    again = run_simple_preprocessing(str(data), sample_size=4_000, resume_from="imbalanced", quiet=True)
    assert np.array_equal(again[3], labels) and again[4] == weights


def test_a_new_trans_file_reuses_the_parsing_of_the_old_ones(tiny_data, tmp_path):
    """With ``keep_parsed``, the next day's file joins the directory: only it is parsed; the graph
    equals one file's. Without it the reader batches are gone after the run and every file is
    parsed again, to the same graph."""
    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    trans = next(data.glob("*_Trans.csv"))
    header, *lines = trans.read_text().splitlines(keepends=True)
    trans.write_text(header + "".join(lines[:7_000]))
    ckpt = tmp_path / "ckpt"
    first = run_preprocessing(data_path=data, checkpoint_dir=ckpt, quiet=True, chunk_rows=3_000,
                              keep_parsed=True)
    assert first.graph.num_edges == 7_000
    store = CheckpointStore(ckpt)
    before = {n: store.manifest(n)["created"] for n in store.names() if n.startswith("data_loaded_read_chunk_")}
    part = data / trans.name.replace("_Trans.csv", "_Trans_2022-09-11.csv")
    part.write_text(header + "".join(lines[7_000:]))
    import io

    from amlgraph.runner._log import RunLog

    log = RunLog(stream=io.StringIO())
    second = run_preprocessing(data_path=data, checkpoint_dir=ckpt, chunk_rows=3_000, log=log, keep_parsed=True)
    text = log.stream.getvalue()
    assert f"{trans.name}: already parsed (7,000 rows)" in text
    assert f"{part.name}: parsed 3,000 transactions" in text
    after = {n: store.manifest(n)["created"] for n in store.names() if n.startswith("data_loaded_read_chunk_")}
    assert {n: after[n] for n in before} == before      # the old file's batches were not rewritten
    assert len(after) > len(before)
    whole = run_preprocessing(data_path=tiny_data, store=MemoryStore(), quiet=True, chunk_rows=3_000)
    assert sorted(second.graph.edge_row.tolist()) == list(range(10_000))
    assert graph_digest(second.graph) == graph_digest(whole.graph)
    # The default: the reader batches and their markers are deleted once data_loaded is saved.
    lean = tmp_path / "lean"
    run_preprocessing(data_path=data, checkpoint_dir=lean, quiet=True, chunk_rows=3_000)
    names = CheckpointStore(lean).names()
    assert "data_loaded_chunk_0" in names and not [n for n in names if n.startswith("data_loaded_read")]
    log = RunLog(stream=io.StringIO())
    third = run_preprocessing(data_path=data, checkpoint_dir=lean, chunk_rows=3_000, log=log, fresh=True)
    assert f"{trans.name}: parsed 7,000 transactions" in log.stream.getvalue()
    assert graph_digest(third.graph) == graph_digest(whole.graph)


@pytest.mark.parametrize("odd_share", [0.0, 0.02])
def test_every_edge_points_at_its_own_accounts(tiny_data, tmp_path, odd_share):
    """Canonical accounts travel as integer keys, odd ones as strings: both encode exactly.

    With a few odd accounts (lower case, another length), some read batches carry account
    strings and others none; the node index and every edge must still match the file.
    """
    import polars as pl

    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    trans = next(data.glob("*_Trans.csv"))
    names = ["ts", "fb", "fa", "tb", "ta", "ar", "rc", "ap", "pc", "pf", "y"]
    df = pl.read_csv(trans, has_header=False, skip_rows=1, new_columns=names, infer_schema=False)
    odd = df["fa"].str.slice(0, 1).is_in(["8"]) & (pl.Series(np.arange(df.height)) % max(1, round(1 / odd_share))
                                                  == 0 if odd_share else pl.lit(False))
    df = df.with_columns(fa=pl.when(odd).then(pl.col("fa").str.to_lowercase() + "x").otherwise(pl.col("fa")))
    header = trans.read_text().splitlines()[0]
    trans.write_text(header + "\n" + df.write_csv(include_header=False))
    (data / next(data.glob("*_accounts.csv")).name).unlink()  # accounts derived from the rows
    result = run_preprocessing(data_path=data, checkpoint_dir=tmp_path / "c", quiet=True, chunk_rows=900)
    g = result.graph
    nodes = g.nodes.sort("node_id")
    bank, account = nodes["bank"].to_numpy(), nodes["account"].to_list()
    src, dst = g.edge_index
    order = np.asarray(g.edge_row)
    want = df[order.tolist()]
    assert [account[i] for i in src] == want["fa"].to_list()
    assert [account[i] for i in dst] == want["ta"].to_list()
    assert np.array_equal(bank[src], want["fb"].cast(pl.Int64).to_numpy())
    assert np.array_equal(bank[dst], want["tb"].cast(pl.Int64).to_numpy())
    assert nodes.height == len(set(zip(df["fb"].cast(pl.Int64), df["fa"])) | set(zip(df["tb"].cast(pl.Int64), df["ta"])))
    assert (sum(a != a.upper() for a in account) > 0) == (odd_share > 0)


def _typed(fields: list[str]) -> tuple:
    """A transaction line's 11 fields as the reader types them (the patterns match on those)."""
    f = fields
    return (f[0], int(f[1]), f[2], int(f[3]), f[4], float(f[5]), f[6], float(f[7]), f[8], f[9], int(f[10]))


def test_laundering_attempts_match_a_plain_reading_of_the_files(baseline, tiny_data):
    import csv

    from amlgraph.ingest._patterns import BEGIN, END

    table = CheckpointStore(baseline[0], create=False).load("data_loaded").table("patterns")
    rows: dict[tuple, list[int]] = {}
    with open(next(tiny_data.glob("*_Trans.csv")), newline="") as fh:
        reader = csv.reader(fh)
        next(reader)
        for row, fields in enumerate(reader):
            rows.setdefault(_typed(fields), []).append(row)
    expected, attempt, typology = set(), -1, None
    for line in next(tiny_data.glob("*_Patterns.txt")).read_text().splitlines():
        if line.startswith(BEGIN):
            attempt, typology = attempt + 1, line[len(BEGIN):].split(":")[0].strip()
        elif line.strip() and not line.startswith(END):
            expected |= {(row, attempt, typology) for row in rows.get(_typed(line.split(",")), [])}
    assert len(expected) > 20
    assert set(table.iter_rows()) == expected


def test_a_bad_patterns_file_fails_the_run_with_its_name(tiny_data, tmp_path):
    from amlgraph.errors import InputError

    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    patterns = next(data.glob("*_Patterns.txt"))
    patterns.write_text(patterns.read_text() + "BEGIN LAUNDERING ATTEMPT - FAN-OUT\n")  # never ended
    with pytest.raises(InputError) as err:
        run_preprocessing(data_path=data, checkpoint_dir=tmp_path / "ckpt", quiet=True, chunk_rows=2_500)
    assert patterns.name in str(err.value)


def test_two_data_sets_in_one_folder_get_their_own_checkpoints_and_never_mix(tmp_path):
    """HI-Small and LI-Small in one Kaggle folder: the default checkpoint directory is named after
    each data set; pointing both at one directory stops the second run before it writes."""
    from amlgraph.errors import CheckpointError
    from amlgraph.synth import generate

    folder = tmp_path / "kaggle"
    generate("tiny", tmp_path / "a", seed=1, rows=400)
    generate("tiny", tmp_path / "b", seed=2, rows=400)
    folder.mkdir()
    for src, name in ((tmp_path / "a", "HI-Tiny"), (tmp_path / "b", "LI-Tiny")):
        for f in src.iterdir():
            (folder / f.name.replace("Tiny", name)).write_bytes(f.read_bytes())
    hi = run_preprocessing(data_path=folder / "HI-Tiny_Trans.csv", quiet=True)
    li = run_preprocessing(data_path=folder / "LI-Tiny_Trans.csv", quiet=True)
    assert hi.checkpoint_dir.name == "checkpoints_HI-Tiny_all" and li.checkpoint_dir.name == "checkpoints_LI-Tiny_all"
    assert run_preprocessing(data_path=folder / "HI-Tiny_Trans.csv", quiet=True).computed == []
    shared = tmp_path / "shared"
    run_preprocessing(data_path=folder / "HI-Tiny_Trans.csv", checkpoint_dir=shared, quiet=True)
    before = sorted(p.name for p in shared.iterdir())
    with pytest.raises(CheckpointError, match="holds the checkpoints of data set 'HI-Tiny', not of 'LI-Tiny'"):
        run_preprocessing(data_path=folder / "LI-Tiny_Trans.csv", checkpoint_dir=shared, quiet=True)
    assert sorted(p.name for p in shared.iterdir()) == before
    fresh = run_preprocessing(data_path=folder / "LI-Tiny_Trans.csv", checkpoint_dir=shared, quiet=True, fresh=True)
    assert fresh.graph.num_edges == li.graph.num_edges
