"""The synthetic IBM-format generator: formats, labels, Patterns blocks, typologies, determinism."""
from __future__ import annotations

import io
import re
import subprocess
import sys
from collections import Counter
from datetime import datetime

import numpy as np
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from amlgraph.errors import ConfigError
from amlgraph.schema import (ACCOUNTS_HEADER, CURRENCIES, PAYMENT_FORMATS, TIMESTAMP_FORMAT,
                             TRANS_COLUMNS, TRANS_HEADER, TYPOLOGIES)
from amlgraph.synth import PRESETS, generate
from amlgraph.synth._money import RATES

BEGIN, END = "BEGIN LAUNDERING ATTEMPT - ", "END LAUNDERING ATTEMPT - "


def read_trans(path) -> pl.DataFrame:
    """The Trans file by position, every column as text (exactly as written)."""
    return pl.read_csv(path, has_header=False, skip_rows=1, new_columns=list(TRANS_COLUMNS),
                       infer_schema=False)


def read_patterns(path) -> list[tuple[str, str, list[str]]]:
    """Blocks of Patterns.txt as (typology, qualifier, lines); fails on malformed nesting."""
    blocks, current = [], None
    for line in path.read_text().splitlines():
        if line.startswith(BEGIN):
            assert current is None, "nested BEGIN"
            typology, _, qualifier = line.removeprefix(BEGIN).partition(":  ")
            current = (typology, qualifier, [])
        elif line.startswith(END):
            assert current is not None and line == END + current[0]
            blocks.append(current)
            current = None
        elif line:
            assert current is not None, f"row outside a block: {line}"
            current[2].append(line)
    assert current is None, "unterminated block"
    return blocks


def edges(lines: list[str]) -> list[tuple[tuple[str, str], tuple[str, str]]]:
    """(sender, receiver) of block lines, accounts as (bank as int, account)."""
    out = []
    for line in lines:
        f = line.split(",")
        out.append(((int(f[1]), f[2]), (int(f[3]), f[4])))
    return out


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    out = tmp_path_factory.mktemp("synth_tiny")
    result = generate("tiny", out, seed=3)
    return result, read_trans(result.trans_path), read_patterns(result.patterns_path)


def test_files_and_exact_headers(tiny):
    result, trans, _ = tiny
    assert result.trans_path.name == "Tiny_Trans.csv"
    assert result.accounts_path.name == "Tiny_accounts.csv"
    assert result.patterns_path.name == "Tiny_Patterns.txt"
    with open(result.trans_path) as f:
        assert f.readline() == ",".join(TRANS_HEADER) + "\n"
    with open(result.accounts_path) as f:
        assert f.readline() == ",".join(ACCOUNTS_HEADER) + "\n"
    assert trans.height == result.rows == PRESETS["tiny"].rows
    assert not list(result.trans_path.parent.glob(".*tmp")), "temporary files left behind"
    assert "10,000 transactions" in result.summary()


def test_every_line_has_eleven_fields_and_two_decimals(tiny):
    result, _, blocks = tiny
    lines = result.trans_path.read_text().splitlines()[1:] + [l for b in blocks for l in b[2]]
    amount = re.compile(r"^\d+\.\d\d$")
    for line in lines:
        f = line.split(",")
        assert len(f) == 11, line
        assert amount.match(f[5]) and amount.match(f[7]), line
        assert re.fullmatch(r"[0-9A-F]{9}", f[2]) and re.fullmatch(r"[0-9A-F]{9}", f[4]), line
        assert f[10] in ("0", "1")


def test_bank_padding_is_consistent_between_files(tiny):
    result, trans, _ = tiny
    banks = pl.concat([trans.select(text="from_bank"), trans.select(text="to_bank")]).unique()
    banks = banks.with_columns(bank=pl.col("text").cast(pl.Int64))
    assert banks["bank"].n_unique() == banks.height, "a bank is written with two paddings"
    assert banks["text"].str.starts_with("0").all()
    assert banks["text"].str.len_chars().n_unique() >= 2, "paddings should vary in width"
    accounts = pl.read_csv(result.accounts_path, infer_schema=False)
    assert not accounts["Bank ID"].str.starts_with("0").any(), "accounts file ids are unpadded"
    known = set(zip(accounts["Bank ID"].cast(pl.Int64).to_list(), accounts["Account Number"].to_list()))
    used = set(zip(trans["from_bank"].cast(pl.Int64).to_list(), trans["from_account"].to_list()))
    used |= set(zip(trans["to_bank"].cast(pl.Int64).to_list(), trans["to_account"].to_list()))
    assert used <= known
    assert len(known - used) >= 1, "some listed accounts never transact"
    assert accounts["Entity ID"].str.contains(r"^[0-9A-F]{11}$").all()
    assert accounts["Bank Name"].str.contains(r"^.+ Bank #\d+$").all()


def test_account_string_reused_at_two_banks(tiny):
    result, _, _ = tiny
    accounts = pl.read_csv(result.accounts_path, infer_schema=False)
    per_string = accounts.group_by("Account Number").agg(pl.col("Bank ID").n_unique())
    assert (per_string["Bank ID"] >= 2).any()
    assert accounts.select("Bank ID", "Account Number").is_unique().all()


def test_timestamps_parse_roughly_ordered_not_sorted(tiny):
    _, trans, _ = tiny
    t = trans["timestamp"].str.strptime(pl.Datetime, TIMESTAMP_FORMAT).dt.epoch("s").to_numpy()
    assert t.min() >= datetime(2022, 9, 1).timestamp() - 1
    assert t.max() < datetime(2022, 9, 14).timestamp()
    step = np.diff(t)
    assert (step < 0).mean() > 0.05, "rows must not be sorted by time"
    assert np.abs(step).max() < 3 * 86400, "rows stay roughly in time order"
    assert np.corrcoef(np.arange(t.size), t)[0, 1] > 0.95


def test_exchange_rates_consistent(tiny):
    _, trans, _ = tiny
    paid = trans["amount_paid"].cast(pl.Float64).to_numpy()
    received = trans["amount_received"].cast(pl.Float64).to_numpy()
    pay = trans["payment_currency"].to_numpy()
    recv = trans["receiving_currency"].to_numpy()
    same = pay == recv
    assert (paid[same] == received[same]).all()
    assert (~same).sum() > 20, "cross-currency rows exist"
    rate = np.array([RATES[r] / RATES[p] for p, r in zip(pay[~same], recv[~same])])
    assert np.all(np.abs(received[~same] - paid[~same] * rate) <= 0.0051)


def test_vocabularies_and_bitcoin(tiny):
    _, trans, _ = tiny
    normal = trans.filter(pl.col("is_laundering") == "0")
    assert set(normal["payment_format"]) == set(PAYMENT_FORMATS)
    assert set(normal["payment_currency"]) | set(normal["receiving_currency"]) == set(CURRENCIES)
    btc_fmt = trans["payment_format"] == "Bitcoin"
    assert (btc_fmt == (trans["payment_currency"] == "Bitcoin")).all()
    assert (btc_fmt == (trans["receiving_currency"] == "Bitcoin")).all()
    shares = normal["payment_format"].value_counts(normalize=True).sort("proportion")
    assert shares["proportion"][-1] < 0.5, "no format dominates"


def test_self_transfers_mostly_reinvestment(tiny):
    _, trans, _ = tiny
    is_self = (trans["from_bank"] == trans["to_bank"]) & (trans["from_account"] == trans["to_account"])
    selfs = trans.filter(is_self)
    assert selfs.height > 100
    assert (selfs["payment_format"] == "Reinvestment").mean() > 0.8
    reinvest = trans.filter(pl.col("payment_format") == "Reinvestment")
    assert reinvest.height == reinvest.filter((pl.col("from_account") == pl.col("to_account"))).height


def test_patterns_blocks_are_labelled_rows_and_a_third_outside(tiny):
    result, trans, blocks = tiny
    lines = result.trans_path.read_text().splitlines()[1:]
    laundering = Counter(l for l in lines if l.endswith(",1"))
    in_blocks = Counter(l for b in blocks for l in b[2])
    assert in_blocks <= laundering, "every block line is a labelled Trans line, verbatim"
    assert sum(laundering.values()) == result.laundering_rows == (trans["is_laundering"] == "1").sum()
    assert sum(in_blocks.values()) == result.pattern_rows
    assert len(blocks) == result.attempts
    outside = result.laundering_rows - result.pattern_rows
    assert 0.2 <= outside / result.laundering_rows <= 0.5
    assert result.laundering_rows >= 30


def test_all_typologies_present_with_qualifiers(tiny):
    _, _, blocks = tiny
    count = Counter(b[0] for b in blocks)
    assert set(count) == set(TYPOLOGIES)
    assert min(count.values()) >= 2
    for typology, qualifier, lines in blocks:
        if typology in ("FAN-OUT", "FAN-IN"):
            kind = "Fan-Out" if typology == "FAN-OUT" else "Fan-In"
            m = re.fullmatch(rf"Max (\d+)-degree {kind}", qualifier)
            assert m and len(lines) <= int(m.group(1))
        elif typology in ("CYCLE", "RANDOM"):
            m = re.fullmatch(r"Max (\d+) hops", qualifier)
            assert m and len(lines) <= int(m.group(1))
        else:
            assert qualifier == ""


def test_typology_structures(tiny):
    _, _, blocks = tiny
    for typology, _, lines in blocks:
        e = edges(lines)
        senders, receivers = {s for s, _ in e}, {r for _, r in e}
        outdeg = Counter(s for s, _ in e)
        indeg = Counter(r for _, r in e)
        if typology == "FAN-OUT":
            assert len(senders) == 1 and len(receivers) >= 2 and not senders & receivers
        elif typology == "FAN-IN":
            assert len(receivers) == 1 and len(senders) >= 2 and not senders & receivers
        elif typology == "CYCLE":
            assert e[0][0] == e[-1][1], "a cycle returns to its start"
            assert all(e[i][1] == e[i + 1][0] for i in range(len(e) - 1))
            assert set(outdeg.values()) == {1} and set(indeg.values()) == {1}
        elif typology == "RANDOM":
            assert all(e[i][1] == e[i + 1][0] for i in range(len(e) - 1)), "a random walk"
        elif typology == "BIPARTITE":
            assert not senders & receivers and len(senders) >= 2 and len(receivers) >= 2
        elif typology == "STACK":
            middle = senders & receivers
            assert len(middle) >= 2 and len(senders - middle) >= 2 and len(receivers - middle) >= 2
        elif typology == "SCATTER-GATHER":
            source, sink = senders - receivers, receivers - senders
            assert len(source) == 1 and len(sink) == 1 and len(senders & receivers) >= 2
        elif typology == "GATHER-SCATTER":
            hub = senders & receivers
            assert len(hub) == 1
            (h,) = hub
            assert indeg[h] >= 2 and outdeg[h] >= 2


def test_laundering_differs_by_structure_not_one_column(tiny):
    _, trans, _ = tiny
    cross_bank = (trans["from_bank"] != trans["to_bank"]).to_numpy()
    label = (trans["is_laundering"] == "1").to_numpy()
    assert cross_bank[label].mean() > cross_bank[~label].mean()
    laundering = trans.filter(pl.col("is_laundering") == "1")
    for column in ("payment_format", "payment_currency", "receiving_currency"):
        assert set(laundering[column]) <= set(trans.filter(pl.col("is_laundering") == "0")[column])
    # laundering accounts also pay normally
    launderers = set(laundering["from_account"])
    assert launderers & set(trans.filter(pl.col("is_laundering") == "0")["from_account"])


def test_deterministic_for_a_seed(tmp_path):
    a = generate("tiny", tmp_path / "a", seed=5, rows=1500)
    b = generate("tiny", tmp_path / "b", seed=5, rows=1500)
    c = generate("tiny", tmp_path / "c", seed=6, rows=1500)
    for attr in ("trans_path", "accounts_path", "patterns_path"):
        assert getattr(a, attr).read_bytes() == getattr(b, attr).read_bytes()
    assert a.trans_path.read_bytes() != c.trans_path.read_bytes()
    assert a.rows == c.rows == 1500


def test_rows_override_scales_accounts(tmp_path):
    small = generate("small", tmp_path, rows=2000)
    assert small.trans_path.name == "Small_Trans.csv" and small.rows == 2000
    assert small.accounts < PRESETS["small"].accounts


def test_presets_table():
    assert PRESETS["hi-small"].rows == 5_078_345 and PRESETS["hi-small"].name == "HI-Small"
    assert PRESETS["hi-large"].rows == 179_702_229
    for size in ("small", "medium", "large"):
        assert PRESETS[f"hi-{size}"].laundering_rate > PRESETS[f"li-{size}"].laundering_rate


@pytest.mark.parametrize("kwargs, match", [
    ({"preset": "huge"}, "must be one of .*tiny.*hi-small"),
    ({"preset": "tiny", "rows": 5}, "rows must be an integer"),
    ({"preset": "tiny", "seed": -1}, "seed must be a non-negative integer"),
])
def test_bad_arguments_raise_config_error(tmp_path, kwargs, match):
    preset = kwargs.pop("preset")
    with pytest.raises(ConfigError, match=match):
        generate(preset, tmp_path, **kwargs)
    assert not list(tmp_path.iterdir())


def test_crash_leaves_no_file_under_final_name(tmp_path, monkeypatch):
    import amlgraph.synth._generate as synth

    def boom(*args, **kwargs):
        raise RuntimeError("disk gone")

    monkeypatch.setattr(synth, "_write_patterns", boom)
    with pytest.raises(RuntimeError):
        generate("tiny", tmp_path, rows=500)
    assert list(tmp_path.iterdir()) == []


def test_cli_synth(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "amlgraph", "synth", "--preset", "tiny",
                           "--out", str(tmp_path), "--rows", "800", "--seed", "2"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert "800 transactions" in proc.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "Tiny_Patterns.txt", "Tiny_Trans.csv", "Tiny_accounts.csv"]
    bad = subprocess.run([sys.executable, "-m", "amlgraph", "synth", "--preset", "nope",
                          "--out", str(tmp_path)], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "must be one of" in bad.stderr


@settings(max_examples=6, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10_000), rows=st.integers(100, 3000))
def test_patterns_hold_exactly_the_attempt_rows(tmp_path_factory, seed, rows):
    result = generate("tiny", tmp_path_factory.mktemp("prop"), seed=seed, rows=rows)
    lines = result.trans_path.read_text().splitlines()[1:]
    assert len(lines) == rows
    laundering = Counter(l for l in lines if l.endswith(",1"))
    blocks = read_patterns(result.patterns_path)
    in_blocks = Counter(l for b in blocks for l in b[2])
    assert in_blocks <= laundering
    assert sum(in_blocks.values()) == result.pattern_rows >= 1
    assert sum(laundering.values()) == result.laundering_rows
    assert len(blocks) == result.attempts


# --- streaming, formatting and the vectorised shortcuts behind them ---------------------------

def test_accounts_file_sorted_by_bank_then_account(tiny):
    result, _, _ = tiny
    accounts = pl.read_csv(result.accounts_path, infer_schema=False)
    key = accounts.select(pl.col("Bank ID").cast(pl.Int64), "Account Number")
    assert key.equals(key.sort("Bank ID", "Account Number"))
    assert accounts.height == result.accounts
    assert accounts["Entity Name"].str.contains(r"^(Corporation|Sole Proprietorship|Partnership) #\d+$").all()


def test_many_chunks_stream_in_the_background(tmp_path, monkeypatch):
    """Small chunks exercise the overlap of drawing and writing: same rows, labels and blocks."""
    import amlgraph.synth._generate as synth

    monkeypatch.setattr(synth, "CHUNK_ROWS", 700)
    a = generate("tiny", tmp_path / "a", seed=4, rows=6000)
    b = generate("tiny", tmp_path / "b", seed=4, rows=6000)
    assert a.trans_path.read_bytes() == b.trans_path.read_bytes()
    lines = a.trans_path.read_text().splitlines()[1:]
    assert len(lines) == 6000
    laundering = Counter(l for l in lines if l.endswith(",1"))
    assert sum(laundering.values()) == a.laundering_rows
    blocks = read_patterns(a.patterns_path)
    assert Counter(l for blk in blocks for l in blk[2]) <= laundering
    t = np.array([datetime.strptime(l[:16], TIMESTAMP_FORMAT).timestamp() for l in lines])
    assert np.corrcoef(np.arange(t.size), t)[0, 1] > 0.95 and (np.diff(t) < 0).any()


def test_writer_failure_mid_stream_leaves_no_file(tmp_path, monkeypatch):
    import amlgraph.synth._generate as synth
    from amlgraph.synth._format import TransText

    calls = []
    real = TransText.write_fields

    def flaky(self, handle, fields):
        calls.append(1)
        if len(calls) == 3:
            raise OSError("disk full")
        real(self, handle, fields)

    monkeypatch.setattr(synth, "CHUNK_ROWS", 500)
    monkeypatch.setattr(TransText, "write_fields", flaky)
    with pytest.raises(OSError, match="disk full"):
        generate("tiny", tmp_path, rows=4000)
    assert list(tmp_path.iterdir()) == []


def test_background_consumes_in_order_and_reraises():
    from amlgraph.synth._format import Background

    seen = []
    with Background(seen.append) as worker:
        for i in range(50):
            worker.put(i)
    assert seen == list(range(50))

    def fail_on_3(item):
        if item == 3:
            raise ValueError("bad item")
        seen.append(item)

    seen.clear()
    with pytest.raises(ValueError, match="bad item"):
        with Background(fail_on_3) as worker:
            for i in range(10):
                worker.put(i)
    assert seen == [0, 1, 2]

    with pytest.raises(KeyError):                  # the caller's own failure wins, thread stops
        with Background(seen.append) as worker:
            worker.put(99)
            raise KeyError("caller")
    assert worker._thread.is_alive() is False


def test_text_does_not_depend_on_slices():
    from amlgraph.synth._generate import _rng
    from amlgraph.synth._format import TransText
    from amlgraph.synth._normal import Timeline, normal_rows
    from amlgraph.synth._presets import resolve_preset
    from amlgraph.synth._world import build_world

    preset = resolve_preset("tiny")
    world = build_world(preset, _rng(1, 0))
    rows = normal_rows(world, Timeline(preset), 0, 3000, preset.rows, _rng(1, 3, 0))
    order = np.random.default_rng(0).permutation(len(rows))
    whole = TransText(world.bank_field, world.account_text, slice_rows=10**6).lines(rows.take(order))
    for size in (1, 7, 1024):
        text = TransText(world.bank_field, world.account_text, slice_rows=size)
        assert text.lines(rows.take(order)) == whole
        buffer = io.BytesIO()
        text.write(buffer, rows, order)                # the permutation applied while formatting
        assert buffer.getvalue().decode().splitlines() == whole
    assert all(len(line.split(",")) == 11 for line in whole)


@settings(max_examples=30, deadline=None)
@given(st.lists(st.floats(0, 1, exclude_max=True), min_size=1, max_size=200),
       st.lists(st.floats(0, 1), min_size=1, max_size=7))
def test_draw_counts_edges_like_a_binary_search(u, weights):
    from amlgraph.synth._money import below

    cum = np.cumsum(weights) / sum(weights) if sum(weights) > 0 else np.linspace(0.1, 1, len(weights))
    u = np.array(u)
    expected = np.minimum(np.searchsorted(cum, u, side="right"), len(cum) - 1)
    assert np.array_equal(below(cum[:-1], u), expected)
    at_edges = np.minimum(np.searchsorted(cum, cum, side="right"), len(cum) - 1)
    assert np.array_equal(below(cum[:-1], cum), at_edges)


def test_slot_edges_reproduce_the_power_law():
    from amlgraph.synth._money import below
    from amlgraph.synth._normal import SLOT_EDGES, _slot

    for edge in SLOT_EDGES:                         # every double near each step, exhaustively
        u = (np.float64(edge).view(np.int64) + np.arange(-5000, 5000)).view(np.float64)
        assert np.array_equal(below(SLOT_EDGES, u), _slot(u))
    u = np.random.default_rng(0).random(200_000)
    assert np.array_equal(below(SLOT_EDGES, u), _slot(u))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.integers(0, 30), max_size=100))
def test_first_occurrences_keeps_first_of_each_value(values):
    from amlgraph.synth._world import _first_occurrences

    values = np.array(values, dtype=np.int64)
    _, first = np.unique(values, return_index=True)
    assert np.array_equal(_first_occurrences(values), values[np.sort(first)])


def test_hex_strings_match_python_formatting():
    from amlgraph.synth._world import hex_strings

    values = np.array([0, 1, 0xABC, 0x8FFFFFFFF, 0x800000000, 123456789])
    assert hex_strings(values, 9).to_list() == [f"{v:09X}" for v in values]
    assert hex_strings(values, 11).to_list() == [f"{v:011X}" for v in values]
    assert hex_strings(values[:3], 4).to_list() == [f"{v:04X}" for v in values[:3]]


def test_recovered_rates_link_every_fiat_currency_to_us_dollar(tmp_path):
    """Rates read back from cross-currency rows convert every fiat currency to US Dollar.

    Bitcoin is only ever paid and received as Bitcoin (see docs/SYNTH.md), so the data holds no
    rate for it: a reader must not expect one.
    """
    result = generate("small", tmp_path, seed=2, rows=40_000)
    trans = read_trans(result.trans_path)
    cross = trans.filter(pl.col("payment_currency") != pl.col("receiving_currency"))
    rate = (cross.with_columns(r=pl.col("amount_received").cast(pl.Float64)
                               / pl.col("amount_paid").cast(pl.Float64))
            .group_by("payment_currency", "receiving_currency").agg(pl.col("r").median()))
    links: dict[str, dict[str, float]] = {}
    for pay, recv, r in rate.iter_rows():
        links.setdefault(pay, {})[recv] = r
        links.setdefault(recv, {})[pay] = 1 / r
    to_usd, todo = {"US Dollar": 1.0}, ["US Dollar"]  # units of each currency per US dollar
    while todo:
        here = todo.pop()
        for there, r in links.get(here, {}).items():
            if there not in to_usd:
                to_usd[there] = to_usd[here] * r
                todo.append(there)
    assert set(to_usd) == set(CURRENCIES) - {"Bitcoin"}
    for currency, units in to_usd.items():
        assert units == pytest.approx(RATES[currency], rel=0.01), currency
    assert "Bitcoin" not in set(cross["payment_currency"]) | set(cross["receiving_currency"])
