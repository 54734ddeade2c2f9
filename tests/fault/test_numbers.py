"""Numbers at the edges of what the reader accepts (reliability issue #16).

Each case is a real IBM-format file (the tiny preset, 600 rows, plus a few appended rows) run
through the real pipeline: a date decades away from the rest, amounts near the float64 limit,
bank ids up to 2**63 - 1. Runs that must stay within bounded memory run as a child process under
an address-space limit, so that a regression fails the test instead of exhausting the machine.
"""
from __future__ import annotations

import io
import json
import math
import resource
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

import amlgraph
import amlgraph.runner
from amlgraph.steps import graph_created as graph_step
from amlgraph.steps._view_codec import decode_views
from amlgraph.compat import create_checkpoint_dir, save_checkpoint
from amlgraph.config import PipelineConfig
from amlgraph.errors import CheckpointError, ConfigError, StepError
from amlgraph.runner._context import StoreInputs
from amlgraph.runner._log import RunLog
from amlgraph.steps.data_loaded import temporal_split_boundaries
from amlgraph.store import CheckpointStore
from amlgraph.synth import generate
from bad_corpus import assert_one_line_error
from harness import amlgraph as amlgraph_cmd, env

INT64_MAX = 9_223_372_036_854_775_807
#: Address space a run may add to what its imports need: the 600-row runs need a fraction of it,
#: the all-pairs split search needed gigabytes for a single date decades away.
RUN_HEADROOM = 1 << 30


def row(ts: str = "2022/09/02 10:00", from_bank: int | str = 1, from_account: str = "AAAA00001",
        to_bank: int | str = 1, to_account: str = "AAAA00002", received: str = "10.00",
        received_currency: str = "US Dollar", paid: str | None = None,
        paid_currency: str | None = None, fmt: str = "ACH", label: int = 0) -> str:
    """One line of a Trans file, in its column order."""
    paid = received if paid is None else paid
    paid_currency = received_currency if paid_currency is None else paid_currency
    return (f"{ts},{from_bank},{from_account},{to_bank},{to_account},{received},{received_currency},"
            f"{paid},{paid_currency},{fmt},{label}")


@pytest.fixture(scope="module")
def base_data(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("numbers_base")
    generate("tiny", out, seed=7, rows=600)
    return out


def stage(base: Path, target: Path, rows: list[str]) -> Path:
    """A copy of the base data set with ``rows`` appended to its Trans file."""
    shutil.copytree(base, target)
    trans = next(target.glob("*_Trans.csv"))
    with open(trans, "a", encoding="utf-8") as f:
        f.write("".join(r + "\n" for r in rows))
    return target


def trans_file(data: Path) -> Path:
    return next(data.glob("*_Trans.csv"))


def _import_peak_bytes() -> int:
    """Address space a run needs just to import what it uses (VmPeak of a probe process)."""
    code = ("import amlgraph.runner, amlgraph.runner._tasks, amlgraph.steps.data_loaded, amlgraph.steps.imbalanced, "
            "amlgraph.steps.normalized, amlgraph.graph, polars, numpy, sklearn.neighbors;"
            "print([l.split()[1] for l in open('/proc/self/status') if l.startswith('VmPeak')][0])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env(), check=True)
    return int(out.stdout.strip()) * 1024


def run_cli(data: Path, *extra: str, limit: int | None = None) -> subprocess.CompletedProcess:
    """`amlgraph run DATA` in a child process, optionally under an address-space limit."""
    def limit_memory() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))

    return subprocess.run(amlgraph_cmd("run", str(data), "--checkpoint-dir", str(data / "ckpt"), *extra),
                          capture_output=True, text=True, timeout=300, env=env(),
                          preexec_fn=limit_memory if limit else None)


def run_library(data: Path, **options) -> tuple[amlgraph.runner.PipelineResult, str]:
    """``run_preprocessing`` in this process; returns the result and the run log's text."""
    log = io.StringIO()
    result = amlgraph.run_preprocessing({"data_path": data, "checkpoint_dir": data / "ckpt", **options},
                                        log=RunLog(stream=log))
    return result, log.getvalue()


def warnings_of(log: str) -> list[str]:
    return [line for line in log.splitlines() if line.startswith("⚠")]


def node_table(ckpt: Path) -> pl.DataFrame:
    """The node_features step's table (raw features, before scaling), sorted by node id."""
    store = CheckpointStore(ckpt)
    parts = [p["name"] for p in store.load("node_features").value("parts")]
    views = store.load("node_features").value("views")
    decoded = dict(decode_views(lambda table: StoreInputs(store).scan(parts, table).collect(), views))
    return decoded[views[-1]]  # all rows


# --- 1. the temporal split search ----------------------------------------------------------------
def all_pairs_boundaries(day_counts: dict[int, int], fractions=(0.6, 0.2, 0.2)) -> tuple[int, int]:
    """The split search as it was before #16: every pair (i, j) at once (memory ~ days**2)."""
    fr = tuple(float(f) for f in fractions)
    days = [d for d, c in day_counts.items() if c > 0]
    first, last = min(days), max(days)
    totals = np.zeros(last - first + 1, dtype=np.int64)
    for d, c in day_counts.items():
        totals[d - first] += c
    cum = np.concatenate([[0], np.cumsum(totals)])
    total = cum[-1]
    i, j = np.triu_indices(len(totals), k=1)
    shares = (cum[i], cum[j] - cum[i], total - cum[j])
    errors = [np.abs(s / total - f) / f for s, f in zip(shares, fr)]
    score = np.maximum(np.maximum(errors[0], errors[1]), errors[2])
    best = int(np.argmin(score))
    return first + int(i[best]), first + int(j[best])


@st.composite
def day_count_dicts(draw) -> dict[int, int]:
    """Rows per day: a few to a few dozen days over a span with gaps, small or huge counts."""
    start = draw(st.integers(-30_000, 60_000))
    offsets = draw(st.lists(st.integers(0, 120), min_size=2, max_size=40, unique=True))
    big = draw(st.booleans())
    counts = st.integers(1, 10**12) if big else st.integers(1, 6)  # small counts: many exact ties
    days = {start + o: draw(counts) for o in offsets}
    if draw(st.booleans()):  # zero entries inside the span (a summed dict may hold them)
        lo, hi = min(days), max(days)
        for d in draw(st.lists(st.integers(lo, hi), max_size=5)):
            days.setdefault(d, 0)
    return days


@st.composite
def fraction_triples(draw) -> tuple[float, float, float]:
    if draw(st.booleans()):
        return (0.6, 0.2, 0.2)
    w = [draw(st.integers(1, 20)) for _ in range(3)]
    return tuple(x / sum(w) for x in w)


@settings(max_examples=600, deadline=None)
@given(day_count_dicts(), fraction_triples())
def test_split_boundaries_equal_the_all_pairs_formula(days, fractions):
    assume(abs(sum(fractions) - 1) <= 1e-9)  # what the function accepts
    assert temporal_split_boundaries(days, fractions) == all_pairs_boundaries(days, fractions)


def test_split_boundaries_on_ties_take_the_first_pair():
    # Ten equal days: many pairs tie at the lowest score; the first in (i, j) order wins.
    days = {100 + d: 1 for d in range(10)}
    assert temporal_split_boundaries(days) == all_pairs_boundaries(days) == (106, 108)


def test_one_date_decades_away_runs_in_bounded_memory_and_is_named(base_data, tmp_path):
    data = stage(base_data, tmp_path / "data", [row(ts="2000/01/01 00:00")])
    result = run_cli(data, limit=_import_peak_bytes() + RUN_HEADROOM)
    assert result.returncode == 0, result.stderr
    assert "graph_created" in CheckpointStore(data / "ckpt").names()
    far = [w for w in warnings_of(result.stdout) if "far outside" in w]
    assert len(far) == 1, result.stdout
    assert "2000-01-01" in far[0] and "1 row" in far[0], far[0]


def test_dates_from_1970_to_2099_run_in_bounded_memory_and_are_named(base_data, tmp_path):
    years = np.linspace(1970, 2099, 100).astype(int)
    rows = [row(ts=f"{y}/06/{1 + k % 28:02d} 12:00") for k, y in enumerate(years)]
    data = stage(base_data, tmp_path / "data", rows)
    result = run_cli(data, limit=_import_peak_bytes() + RUN_HEADROOM)
    assert result.returncode == 0, result.stderr
    assert "graph_created" in CheckpointStore(data / "ckpt").names()
    far = [w for w in warnings_of(result.stdout) if "far outside" in w]
    assert len(far) == 1, result.stdout
    assert "1970-06-01" in far[0] and "2099-06-" in far[0] and "100 rows" in far[0], far[0]


def test_dates_of_regular_data_raise_no_warning(base_data, tmp_path):
    data = stage(base_data, tmp_path / "data", [])
    _, log = run_library(data)
    assert not [w for w in warnings_of(log) if "far outside" in w], log


# --- 2. amounts near the float64 limit -----------------------------------------------------------
@pytest.mark.parametrize("column,value", [("Amount Paid", "1e155"), ("Amount Received", "3.5e200"),
                                          ("Amount Paid", "1.7976931348623157e308")])
def test_amount_above_the_limit_is_refused_on_one_line(base_data, tmp_path, column, value):
    fields = {"paid": value} if column == "Amount Paid" else {"received": value, "paid": "10.00"}
    data = stage(base_data, tmp_path / "data", [row(**fields)])
    result = run_cli(data, "--quiet")
    message = assert_one_line_error(result, trans_file(data), 602, column, value)
    assert "1e+100" in message, message
    assert not set(CheckpointStore(data / "ckpt").names()) & {"data_loaded", "graph_created"}


def test_largest_accepted_amounts_give_finite_exact_features(base_data, tmp_path):
    rows = [row(from_account="BIG000001", to_account="BIG000002", received="1e100"),
            row(ts="2022/09/02 11:00", from_account="BIG000001", to_account="BIG000002", received="6e99")]
    data = stage(base_data, tmp_path / "data", rows)
    result, _ = run_library(data)
    g = result.graph
    for name in ("x", "edge_attr", "synthetic_edge_attr"):
        assert np.isfinite(getattr(g, name)).all(), name
    feats = node_table(data / "ckpt").join(g.nodes, on="node_id")
    big = feats.filter(pl.col("account") == "BIG000001").row(0, named=True)
    assert big["sent_mean"] == pytest.approx(8e99, rel=1e-12)
    assert big["sent_std"] == pytest.approx(2e99, rel=1e-12)
    assert big["total_sent"] == pytest.approx(1.6e100, rel=1e-12)


def test_features_that_overflow_never_reach_the_graph(base_data, tmp_path):
    # Accepted amounts whose exchange rate makes them overflow: 1e-200 Zorkmid bought 1e100 US
    # Dollar (a rate of 1e300 USD per Zorkmid), then an account sends 1e10 Zorkmid (1e310 USD).
    rows = [row(from_account="ZZZ000001", to_account="ZZZ000002", received="1e100", paid="1e-200",
                paid_currency="Zorkmid"),
            row(ts="2022/09/02 11:00", from_account="ZZZ000003", to_account="ZZZ000004",
                received="1e10", received_currency="Zorkmid")]
    data = stage(base_data, tmp_path / "data", rows)
    result = run_cli(data, "--quiet")
    assert result.returncode == 1, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("amlgraph: error: step normalized: "), lines[0]
    # The first account (in node order) whose features overflow is the sender, ZZZ000003.
    assert "'total_sent'" in lines[0] and "'total_received'" in lines[0], lines[0]
    assert "ZZZ000003" in lines[0], lines[0]
    assert "graph_created" not in CheckpointStore(data / "ckpt").names()


def _poison_x(monkeypatch):
    real = graph_step.scaled_node_matrices

    def poisoned(*args):
        matrices = real(*args)
        matrices["x"][3, 1] = np.inf  # the graph's x
        return matrices
    monkeypatch.setattr(graph_step, "scaled_node_matrices", poisoned)
    return "'total_sent'"  # column 1 of x


def _poison_edges(monkeypatch):
    real = graph_step.scaled_edge_matrix

    def poisoned(inputs, norm, name, rows=None):
        block = real(inputs, norm, name, rows)
        block[5, 0] = np.nan  # the graph's edge_attr (SMOTE's rows are read elsewhere)
        return block
    monkeypatch.setattr(graph_step, "scaled_edge_matrix", poisoned)
    return "'hour_sin'"


def _poison_synthetic(monkeypatch):
    import amlgraph.steps.imbalanced as imbalanced
    real = imbalanced.resample_training

    def poisoned(*args, **kwargs):
        res = real(*args, **kwargs)
        assert len(res.X_synthetic), "the base data must give synthetic rows"
        res.X_synthetic[0, 6] = -np.inf
        return res
    monkeypatch.setattr(imbalanced, "resample_training", poisoned)
    return "'log_amount_paid'"


@pytest.mark.parametrize("poison", [_poison_x, _poison_edges, _poison_synthetic],
                         ids=["x", "edge_attr", "synthetic_edge_attr"])
def test_graph_created_refuses_arrays_that_are_not_finite(base_data, tmp_path, monkeypatch, poison):
    # Whatever the cause (a bug, an older checkpoint), a NaN or infinity in an array of the graph
    # stops the graph step with a StepError naming the column; no graph checkpoint is committed.
    column = poison(monkeypatch)
    data = stage(base_data, tmp_path / "data", [])
    with pytest.raises(StepError, match="step graph_created: ") as info:
        run_library(data)
    assert column in str(info.value) and "\n" not in str(info.value)
    assert "graph_created" not in CheckpointStore(data / "ckpt").names()


# --- 3. bank ids up to 2**63 - 1 -----------------------------------------------------------------
def test_bank_ids_up_to_int64_max_run_to_a_graph(base_data, tmp_path):
    rows = [row(from_bank=0, from_account="B00000001", to_bank=0, to_account="B00000002"),
            row(ts="2022/09/02 11:00", from_bank=0, from_account="B00000001", to_bank=INT64_MAX,
                to_account="B00000003"),
            row(ts="2022/09/02 12:00", from_bank=INT64_MAX, from_account="B00000003", to_bank=INT64_MAX,
                to_account="B00000004")]
    data = stage(base_data, tmp_path / "data", rows)
    result, _ = run_library(data)
    g = result.graph
    assert g.vocab["banks"][0] == 0 and g.vocab["banks"][-1] == INT64_MAX
    feats = node_table(data / "ckpt").join(g.nodes, on="node_id")
    by_account = {r["account"]: r for r in feats.filter(pl.col("account").str.starts_with("B0000000"))
                  .iter_rows(named=True)}
    assert by_account["B00000001"]["bank"] == 0
    assert by_account["B00000003"]["bank"] == INT64_MAX
    # Distinct counterparty banks: B1 paid accounts at banks 0 and 2**63-1; B3 was paid from
    # bank 0 and paid an account at 2**63-1; B4 was paid from 2**63-1 only.
    assert by_account["B00000001"]["bank_diversity"] == 2
    assert by_account["B00000003"]["bank_diversity"] == 2
    assert by_account["B00000004"]["bank_diversity"] == 1
    # The sending bank's code (its index in the sorted bank vocabulary) of the appended rows
    # (row ids 600..602): 0, 0, then the last code.
    code = g.edge_feature_names.index("from_bank_code")
    order = np.argsort(g.edge_row)
    codes = g.edge_attr[order[600:603], code]
    assert g.edge_row[order[600:603]].tolist() == [600, 601, 602]
    assert codes.tolist() == [0, 0, len(g.vocab["banks"]) - 1]


def test_distinct_counts_and_positions_of_ids_spread_over_all_int64():
    from amlgraph.steps.lookup import positions
    from amlgraph.steps._views import distinct

    lo, hi = -(1 << 63), INT64_MAX
    pos = np.array([0, 0, 0, 1, 1, 2], dtype=np.int64)
    values = np.array([0, hi, hi, lo, hi, 7], dtype=np.int64)
    assert distinct(pos, np.zeros(len(pos), dtype=np.int64), values, 4, 1)[:, 0].tolist() == [2, 2, 1, 0]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no silent int64 overflow on the way
        ids = np.array([lo, 0, hi], dtype=np.int64)
        assert positions(ids, np.array([hi, lo, 5, 0])).tolist() == [2, 0, -1, 1]


def test_bank_id_beyond_int64_is_refused_on_one_line(base_data, tmp_path):
    data = stage(base_data, tmp_path / "data", [row(to_bank=INT64_MAX + 1)])
    result = run_cli(data, "--quiet")
    message = assert_one_line_error(result, trans_file(data), 602, "To Bank", str(INT64_MAX + 1))
    assert str(INT64_MAX) in message, message  # says what range is accepted


# --- 4. small items ------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["sample_size", "chunk_size", "chunk_rows", "threads"])
def test_a_bool_is_not_a_count(tmp_path, name):
    with pytest.raises(ConfigError, match=name) as info:
        PipelineConfig(data_path=tmp_path, **{name: True})
    assert "\n" not in str(info.value) and "True" in str(info.value)


def test_a_bool_sample_size_is_refused_by_every_entry_point(tmp_path):
    with pytest.raises(ConfigError, match="sample_size"):
        amlgraph.run_preprocessing({"data_path": tmp_path, "sample_size": True})
    with pytest.raises(ConfigError, match="sample_size"):
        create_checkpoint_dir(tmp_path, True)


def _raise(constant: str):
    raise ValueError(f"not valid JSON: {constant}")


@pytest.mark.parametrize("data", [{"loss": float("nan")}, [1.0, float("inf")],
                                  {"nested": {"scores": [0.5, -math.inf]}}, float("nan"),
                                  {"weights": np.ones(2), "loss": np.float64("nan")}])
def test_save_checkpoint_refuses_non_finite_floats(tmp_path, data):
    with pytest.raises(CheckpointError, match="not finite") as info:
        save_checkpoint(tmp_path, "node_features", data)
    assert "\n" not in str(info.value)
    assert "node_features" not in CheckpointStore(tmp_path, create=True).names()


def test_save_checkpoint_writes_strict_json(tmp_path):
    data = {"loss": 0.25, "history": [1.0, 2.5e-300, 1.7976931348623157e308], "n": 3,
            "weights": np.arange(3.0)}
    save_checkpoint(tmp_path, "weights", data)
    texts = [p.read_text() for p in (tmp_path / "weights").glob("gen-*/values.json")]
    assert len(texts) == 1
    values = json.loads(texts[0], parse_constant=_raise)
    assert values  # parsed without any NaN/Infinity constant
