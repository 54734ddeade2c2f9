"""Multi-GNN formatted_transactions.csv: conventions checked against a row-by-row re-implementation
of IBM Multi-GNN's format_kaggle_files.py, and the file compared byte for byte with the script's
own output (its row loop, then datatable's fread, sort and to_csv) where datatable is installed."""
from __future__ import annotations

import csv
import dataclasses
import re
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from amlgraph.errors import ConfigError
from amlgraph.export import export_graph
from amlgraph.export._multignn import COLUMNS, first_appearance_codes, format_multignn
from amlgraph.graph import TransactionGraph, random_graph

HEADER = ("Timestamp,From Bank,Account,To Bank,Account,Amount Received,Receiving Currency,"
          "Amount Paid,Payment Currency,Payment Format,Is Laundering")
# Not in time order; the first row is not the earliest (row 1 is the day before, row 5 two
# minutes after midnight of Sep 1); ties on 2022/09/02 00:20; one account string at two banks;
# a self-transfer; currencies that differ within a row; a large amount.
ROWS = """\
2022/09/02 00:20,010,8000EBD30,010,8000EBD30,3697.34,US Dollar,3697.34,US Dollar,Reinvestment,0
2022/09/01 23:59,03208,8000F4580,001,8000F5340,0.01,US Dollar,0.01,US Dollar,Cheque,0
2022/09/02 00:20,001,8000F5340,03208,8000F4580,1200.00,Euro,1300.50,US Dollar,Wire,1
2022/09/03 10:05,0110,8000EBD30,010,8000EBD30,55.5,Yuan,7.77,Bitcoin,Bitcoin,0
2022/09/02 00:20,010,8000EBD30,001,8000F5340,100,US Dollar,100,US Dollar,ACH,1
2022/09/01 00:02,021174,800737690,012,80011F990,2848.96,Euro,2848.96,Euro,ACH,0
2022/09/05 12:00,012,80011F990,021174,800737690,123456789.12,Yen,1000000.00,Ruble,Credit Card,0
2022/09/02 00:20,001,8000F5340,010,8000EBD30,0.05,Euro,0.05,Euro,Cash,1
"""


def script_lines(rows: list[list[str]]) -> list[tuple[float, str]]:
    """The script's row loop: (Timestamp, line) in file order, amounts with %f (naive times read
    as UTC)."""
    currency, payment_format, account = {}, {}, {}

    def get_dict_val(name, collection):
        if name in collection:
            return collection[name]
        val = len(collection)
        collection[name] = val
        return val

    first_ts, lines = -1, []
    for i, row in enumerate(rows):
        when = datetime.strptime(row[0], "%Y/%m/%d %H:%M").replace(tzinfo=timezone.utc)
        ts = when.timestamp()
        if first_ts == -1:
            start = datetime(when.year, when.month, when.day, tzinfo=timezone.utc)
            first_ts = start.timestamp() - 10
        ts = ts - first_ts
        cur1 = get_dict_val(row[6], currency)
        cur2 = get_dict_val(row[8], currency)
        fmt = get_dict_val(row[9], payment_format)
        from_id = get_dict_val(row[1] + row[2], account)
        to_id = get_dict_val(row[3] + row[4], account)
        lines.append((ts, "%d,%d,%d,%d,%f,%d,%f,%d,%d,%d" % (
            i, from_id, to_id, ts, float(row[7]), cur2, float(row[5]), cur1, fmt, int(row[10]))))
    return lines


def reference_format(rows: list[list[str]]) -> list[str]:
    """The script's lines sorted by Timestamp (stable), before datatable rewrites them."""
    return [line for _, line in sorted(script_lines(rows), key=lambda item: item[0])]


def script_output(rows: list[list[str]], tmp_path: Path) -> bytes:
    """The script's whole output: its lines written in file order, read back with datatable's
    fread, sorted by Timestamp and written with to_csv, as format_kaggle_files.py ends."""
    dt = pytest.importorskip("datatable")
    out = tmp_path / "ibm_formatted_transactions.csv"
    with open(out, "w") as writer:
        writer.write(",".join(COLUMNS) + "\n")
        for _, line in script_lines(rows):
            writer.write(line + "\n")
    formatted = dt.fread(str(out))
    formatted = formatted[:, :, dt.sort(3)]
    formatted.to_csv(str(out))
    return out.read_bytes()


def assert_same_values(ours: Path, reference: list[str]) -> None:
    """Our file holds the reference lines' numbers (amounts as numbers, not as text)."""
    lines = ours.read_text().splitlines()
    assert lines[0] == ",".join(COLUMNS) and len(lines) == len(reference) + 1
    for got, want in zip(lines[1:], reference):
        assert [float(v) for v in got.split(",")] == [float(v) for v in want.split(",")], (got, want)


def graph_from_rows(rows: list[list[str]], seed: int = 0) -> TransactionGraph:
    """Build a graph the way the pipeline defines it: node ids in sorted (bank, account) order
    (with one account that never transacts), sorted vocabularies, edges in shuffled order."""
    rng = np.random.default_rng(seed)
    accounts = {(int(r[1]), r[2]) for r in rows} | {(int(r[3]), r[4]) for r in rows}
    accounts = sorted(accounts | {(5, "000000000")})
    node_id = {acc: i for i, acc in enumerate(accounts)}
    currencies = sorted({r[6] for r in rows} | {r[8] for r in rows})
    formats = sorted({r[9] for r in rows})
    e = len(rows)
    perm = rng.permutation(e)
    src = np.array([node_id[(int(r[1]), r[2])] for r in rows])
    dst = np.array([node_id[(int(r[3]), r[4])] for r in rows])
    ts = np.array([int(datetime.strptime(r[0], "%Y/%m/%d %H:%M")
                       .replace(tzinfo=timezone.utc).timestamp()) for r in rows])
    raw = pl.DataFrame({
        "amount_paid": [float(r[7]) for r in rows],
        "payment_currency": pl.Series([currencies.index(r[8]) for r in rows], dtype=pl.Int16),
        "amount_received": [float(r[5]) for r in rows],
        "receiving_currency": pl.Series([currencies.index(r[6]) for r in rows], dtype=pl.Int16),
        "payment_format": pl.Series([formats.index(r[9]) for r in rows], dtype=pl.Int16),
        "from_bank": [int(r[1]) for r in rows],
        "to_bank": [int(r[3]) for r in rows],
    })
    y = np.array([int(r[10]) for r in rows], dtype=np.int8)
    node_y = np.zeros(len(accounts), dtype=np.int8)
    node_y[np.concatenate([src[y == 1], dst[y == 1]])] = 1
    return TransactionGraph(
        nodes=pl.DataFrame({"node_id": np.arange(len(accounts)),
                            "bank": [a[0] for a in accounts], "account": [a[1] for a in accounts]}),
        edge_index=np.stack([src, dst])[:, perm], edge_row=perm, timestamp=ts[perm],
        x=rng.normal(size=(len(accounts), 2)), node_feature_names=["a", "b"],
        edge_attr=rng.normal(size=(e, 1)), edge_feature_names=["c"], y=y[perm], node_y=node_y,
        split=np.zeros(e, dtype=np.int8), class_weights={0: 1.0, 1: 1.0}, raw=raw[perm],
        vocab={"currencies": currencies, "payment_formats": formats,
               "banks": sorted({a[0] for a in accounts})})


@pytest.fixture
def trans_rows(tmp_path) -> list[list[str]]:
    path = tmp_path / "Hand_Trans.csv"
    path.write_text(HEADER + "\n" + ROWS)
    with open(path, newline="") as fh:
        reader = csv.reader(fh)
        next(reader)
        return list(reader)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_hand_made_file_matches_the_script_logic(tmp_path, trans_rows, seed):
    graph = graph_from_rows(trans_rows, seed)
    [path] = export_graph(graph, "multignn", tmp_path / f"out{seed}")
    assert path.name == "formatted_transactions.csv"
    assert_same_values(path, reference_format(trans_rows))


@pytest.mark.parametrize("seed", [0, 3])
def test_hand_made_file_is_byte_for_byte_the_scripts(tmp_path, trans_rows, seed):
    [path] = export_graph(graph_from_rows(trans_rows, seed), "multignn", tmp_path / "out")
    assert path.read_bytes() == script_output(trans_rows, tmp_path)


def test_hand_made_file_conventions_spelled_out(trans_rows):
    frame = format_multignn(graph_from_rows(trans_rows))
    assert frame.columns == list(COLUMNS)
    by_edge = {row["EdgeID"]: row for row in frame.iter_rows(named=True)}
    # ties at 2022/09/02 00:20 keep file order; the day-before row comes first, negative
    assert frame["EdgeID"].to_list() == [5, 1, 0, 2, 4, 7, 3, 6]
    assert by_edge[1]["Timestamp"] == -50 and by_edge[0]["Timestamp"] == 1210
    # node ids: first appearance, sender before receiver; 010/0110 + 8000EBD30 are two accounts
    assert (by_edge[0]["from_id"], by_edge[0]["to_id"]) == (0, 0)
    assert (by_edge[1]["from_id"], by_edge[1]["to_id"]) == (1, 2)
    assert (by_edge[3]["from_id"], by_edge[3]["to_id"]) == (3, 0)
    # one currency dictionary: US Dollar 0, Euro 1 (received before paid), Yuan 2, Bitcoin 3
    assert (by_edge[2]["Received Currency"], by_edge[2]["Sent Currency"]) == (1, 0)
    assert (by_edge[3]["Received Currency"], by_edge[3]["Sent Currency"]) == (2, 3)
    assert (by_edge[6]["Received Currency"], by_edge[6]["Sent Currency"]) == (4, 5)
    assert by_edge[3]["Payment Format"] == 3 and by_edge[7]["Payment Format"] == 6
    assert by_edge[2]["Amount Sent"] == 1300.5 and by_edge[2]["Amount Received"] == 1200.0


def rows_from_graph(graph: TransactionGraph) -> list[tuple]:
    """The graph's edges in file order as script inputs keyed on node ids and codes."""
    order = np.argsort(graph.edge_row)
    raw = graph.raw.to_dicts()
    return [(int(graph.edge_row[k]), int(graph.timestamp[k]), int(graph.edge_index[0, k]),
             int(graph.edge_index[1, k]), raw[k], int(graph.y[k])) for k in order]


def reference_frame(graph: TransactionGraph) -> list[tuple]:
    currency, payment_format, account = {}, {}, {}

    def get(name, collection):
        return collection.setdefault(name, len(collection))

    out, first = [], None
    for edge_row, ts, src, dst, raw, y in rows_from_graph(graph):
        if first is None:
            first = ts - ts % 86_400 - 10
        cur1 = get(raw["receiving_currency"], currency)
        cur2 = get(raw["payment_currency"], currency)
        fmt = get(raw["payment_format"], payment_format)
        out.append((edge_row, get(src, account), get(dst, account), ts - first,
                    raw["amount_paid"], cur2, raw["amount_received"], cur1, fmt, y))
    return sorted(out, key=lambda row: row[3])


@settings(max_examples=25, deadline=None)
@given(n=st.integers(1, 12), e=st.integers(1, 60), seed=st.integers(0, 10_000))
def test_random_graphs_match_the_reference(n, e, seed):
    graph = random_graph(n, e, seed=seed)
    assert format_multignn(graph).rows() == reference_frame(graph)


def test_first_appearance_codes():
    codes = first_appearance_codes(np.array([7, 3, 7, -2, 3, 9]))
    assert codes.tolist() == [0, 1, 0, 2, 1, 3]
    assert first_appearance_codes(np.array([], dtype=np.int64)).tolist() == []


def test_duplicate_edge_rows_are_refused():
    g = random_graph(5, 10, seed=1)
    g = dataclasses.replace(g, edge_row=np.zeros(10, dtype=np.int64))
    with pytest.raises(ConfigError, match="edge_row must be unique"):
        format_multignn(g)


def test_amounts_are_written_as_datatable_writes_them(tmp_path, trans_rows):
    [path] = export_graph(graph_from_rows(trans_rows), "multignn", tmp_path / "out")
    frame = pl.read_csv(path)
    assert frame.height == len(trans_rows)
    text = Path(path).read_text()
    assert ",123456789.12," in text and ",0.01," in text and ",1000000.0," in text and ",100.0," in text
    assert not re.search(r"\.\d*0,", text.replace(".0,", ",")) and "e+" not in text  # no %f zeros


def test_empty_graph(tmp_path):
    [path] = export_graph(random_graph(3, 0, seed=0), "multignn", tmp_path)
    assert path.read_text().splitlines() == [",".join(COLUMNS)]


def _pipeline(tmp_path: Path, seed: int) -> tuple[Path, list[list[str]]]:
    """Generate a Trans file, run the pipeline, export: (our file, the Trans rows)."""
    from amlgraph.runner import run_preprocessing
    from amlgraph.synth import generate

    generate("tiny", tmp_path / "data", seed=seed, rows=3000)
    [trans] = sorted((tmp_path / "data").glob("*_Trans.csv"))
    result = run_preprocessing({"data_path": tmp_path / "data",
                                "checkpoint_dir": tmp_path / "ckpt", "quiet": True})
    [path] = export_graph(result.graph, "multignn", tmp_path / "out")
    with open(trans, newline="") as fh:
        rows = list(csv.reader(fh))[1:]
    return path, rows


def test_pipeline_graph_matches_the_script_logic_on_a_generated_file(tmp_path):
    """End to end: generate a Trans file, run the pipeline, export; compare with the row loop."""
    path, rows = _pipeline(tmp_path, 5)
    assert_same_values(path, reference_format(rows))


@pytest.mark.filterwarnings("ignore:Duplicate column name")
def test_pipeline_export_is_byte_for_byte_the_scripts_output(tmp_path):
    """End to end against the script itself: its input read with datatable as strings (bank
    strings as written), its row loop, then datatable's fread, sort and to_csv."""
    dt = pytest.importorskip("datatable")
    path, _ = _pipeline(tmp_path, 7)
    [trans] = sorted((tmp_path / "data").glob("*_Trans.csv"))
    raw = dt.fread(str(trans), columns=dt.str32)
    columns = raw.to_list()
    rows = [[column[i] for column in columns] for i in range(raw.nrows)]
    expected = script_output(rows, tmp_path)
    assert expected.count(b"\n") == 3001
    assert path.read_bytes() == expected
