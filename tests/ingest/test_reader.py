"""Readers on generated data: every row back with the right types and values, batch invariance."""
from __future__ import annotations

import gzip
import shutil
from argparse import Namespace

import pandas as pd
import polars as pl
import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from amlgraph.errors import ConfigError, InputError
from amlgraph.cli._check import check_command
from amlgraph.ingest import (
    find_inputs, match_patterns, read_accounts, read_patterns, read_transactions,
)
from amlgraph.schema import TRANS_COLUMNS, TYPOLOGIES

READER_SCHEMA = {
    "row": pl.Int64, "timestamp": pl.Int64, "from_bank": pl.Int64, "from_account": pl.String,
    "to_bank": pl.Int64, "to_account": pl.String, "amount_received": pl.Float64,
    "receiving_currency": pl.String, "amount_paid": pl.Float64, "payment_currency": pl.String,
    "payment_format": pl.String, "is_laundering": pl.Int8,
}


@pytest.fixture(scope="module")
def files(micro_data):
    return find_inputs(micro_data)


@pytest.fixture(scope="module")
def trans(files) -> pl.DataFrame:
    return pl.concat(list(read_transactions(files.trans)))


def _read_all(path, **kw) -> pl.DataFrame:
    return pl.concat(list(read_transactions(path, **kw)))


def test_find_inputs_from_directory_and_file(micro_data, files):
    assert files.trans.name.endswith("_Trans.csv")
    assert files.accounts is not None and files.accounts.name == f"{files.name}_accounts.csv"
    assert files.patterns is not None and files.patterns.name == f"{files.name}_Patterns.txt"
    assert find_inputs(files.trans) == files


def test_every_row_with_reader_types_and_pandas_values(files, trans):
    expected = pd.read_csv(files.trans, dtype=str, keep_default_na=False)
    assert dict(trans.schema) == READER_SCHEMA
    assert trans.height == len(expected)
    assert trans["row"].to_list() == list(range(len(expected)))
    stamps = pd.to_datetime(expected["Timestamp"], format="%Y/%m/%d %H:%M")
    assert trans["timestamp"].to_list() == ((stamps - pd.Timestamp("1970-01-01")) // pd.Timedelta("1s")).tolist()
    assert trans["from_bank"].to_list() == expected["From Bank"].astype(int).tolist()
    assert trans["to_account"].to_list() == expected["Account.1"].tolist()
    assert trans["amount_paid"].to_list() == expected["Amount Paid"].astype(float).tolist()
    assert trans["payment_format"].to_list() == expected["Payment Format"].tolist()
    assert trans["is_laundering"].to_list() == expected["Is Laundering"].astype(int).tolist()


@pytest.mark.parametrize("batch_rows", [1, 7, "n", "n+42"])
def test_batch_rows_invariance(files, trans, batch_rows):
    n = trans.height
    size = {"n": n, "n+42": n + 42}.get(batch_rows, batch_rows)
    batches = list(read_transactions(files.trans, batch_rows=size))
    assert all(b.height <= size for b in batches)
    assert pl.concat(batches).equals(trans)


@settings(max_examples=15, deadline=None)
@given(batch_rows=st.integers(1, 700), limit=st.one_of(st.none(), st.integers(1, 700)))
def test_batches_and_limit_are_a_prefix(files, trans, batch_rows, limit):
    got = _read_all(files.trans, batch_rows=batch_rows, limit_rows=limit)
    assert got.equals(trans.head(limit) if limit else trans)


def test_compressed_inputs_read_the_same(files, trans, tmp_path):
    raw = files.trans.read_bytes()
    gz = tmp_path / "G_Trans.csv.gz"
    gz.write_bytes(gzip.compress(raw))
    zst = tmp_path / "Z_Trans.csv.zst"
    zst.write_bytes(zstandard.ZstdCompressor().compress(raw[: len(raw) // 2]) +
                    zstandard.ZstdCompressor().compress(raw[len(raw) // 2:]))  # two frames
    for path in (gz, zst):
        assert _read_all(path, batch_rows=50).equals(trans)
    assert find_inputs(tmp_path / "G_Trans.csv.gz").name == "G"


def test_bom_crlf_and_blank_lines_are_tolerated(files, trans, tmp_path):
    lines = files.trans.read_text().splitlines()
    path = tmp_path / "W_Trans.csv"
    path.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(lines[:3] + [""] + lines[3:] + ["", ""]).encode())
    assert _read_all(path, batch_rows=64).equals(trans)


def test_duplicate_and_quoted_rows_are_kept(tmp_path):
    header = ("Timestamp,From Bank,Account,To Bank,Account,Amount Received,Receiving Currency,"
              "Amount Paid,Payment Currency,Payment Format,Is Laundering")
    row = "2022/09/01 00:20,010,8000EBD30,0,8000EBD31,-0,Swiss Franc,1e3,Zloty,Wire,1"
    quoted = '2022/09/01 00:20,010,8000EBD30,0,8000EBD31,5,"Dollar, Hong Kong",5,"US Dollar",Cash,0'
    path = tmp_path / "D_Trans.csv"
    path.write_text("\n".join([header, row, row, quoted]) + "\n")
    got = _read_all(path)
    assert got["row"].to_list() == [0, 1, 2]
    assert got.row(0)[1:] == got.row(1)[1:]  # identical transactions are both kept
    assert got["amount_received"].to_list()[0] == 0.0 and str(got["amount_received"][0]) == "0.0"
    assert got["amount_paid"].to_list()[:2] == [1000.0, 1000.0]
    assert got["payment_currency"].to_list() == ["Zloty", "Zloty", "US Dollar"]  # outside the 15, kept
    assert got["receiving_currency"][2] == "Dollar, Hong Kong"
    assert got["to_bank"].to_list() == [0, 0, 0]


def test_accounts(files, trans):
    accounts = read_accounts(files.accounts)
    expected = pd.read_csv(files.accounts, dtype=str, keep_default_na=False)
    assert list(accounts.columns) == ["bank_name", "bank", "account", "entity_id", "entity_name"]
    assert accounts.schema["bank"] == pl.Int64
    assert accounts.height == len(expected)
    assert accounts["account"].to_list() == expected["Account Number"].tolist()
    assert accounts["bank"].to_list() == expected["Bank ID"].astype(int).tolist()
    senders = set(zip(trans["from_bank"], trans["from_account"]))
    assert senders <= set(zip(accounts["bank"], accounts["account"]))


def test_patterns_and_matching_cover_every_block_line(files, trans):
    patterns = read_patterns(files.patterns)
    raw = files.patterns.read_text().splitlines()
    blocks = [line for line in raw if line.startswith("BEGIN")]
    data_lines = [i + 1 for i, line in enumerate(raw) if line and not line.startswith(("BEGIN", "END"))]
    assert patterns["line"].to_list() == data_lines
    assert patterns["attempt_id"].n_unique() == len(blocks)
    assert patterns["attempt_id"].to_list() == sorted(patterns["attempt_id"].to_list())
    assert set(patterns["typology"]) <= set(TYPOLOGIES)
    assert (patterns["is_laundering"] == 1).all()
    matches = match_patterns(trans, patterns)
    assert list(matches.columns) == ["row", "attempt_id", "typology"]
    assert set(matches["attempt_id"]) == set(patterns["attempt_id"])
    # every block line is a transaction of the file, and the matched rows are laundering
    joined = patterns.join(trans, on=list(TRANS_COLUMNS), how="anti")
    assert joined.height == 0
    assert trans.filter(pl.col("row").is_in(matches["row"].to_list()))["is_laundering"].eq(1).all()


def test_patterns_structure_errors(tmp_path):
    line = "2022/09/01 00:06,021174,800737690,012,80011F990,2848.96,Euro,2848.96,Euro,ACH,1"
    cases = {
        f"{line}\n": (1, "outside"),
        f"BEGIN LAUNDERING ATTEMPT - CYCLE:  Max 3 hops\n{line}\n": (1, "no END"),
        f"BEGIN LAUNDERING ATTEMPT - LOOP\n{line}\nEND LAUNDERING ATTEMPT - LOOP\n": (1, "unknown typology"),
        f"BEGIN LAUNDERING ATTEMPT - CYCLE\n{line}\nEND LAUNDERING ATTEMPT - STACK\n": (3, "differs"),
        f"BEGIN LAUNDERING ATTEMPT - CYCLE\n{line[:-1]}7\nEND LAUNDERING ATTEMPT - CYCLE\n": (2, "label"),
    }
    for text, (line_no, words) in cases.items():
        path = tmp_path / "P_Patterns.txt"
        path.write_text(text)
        with pytest.raises(InputError, match=words) as info:
            read_patterns(path)
        assert info.value.line == line_no


def test_patterns_qualifier(tmp_path):
    line = "2022/09/01 00:06,021174,800737690,012,80011F990,2848.96,Euro,2848.96,Euro,ACH,1"
    path = tmp_path / "P_Patterns.txt"
    path.write_text(f"BEGIN LAUNDERING ATTEMPT - FAN-OUT:  Max 16-degree Fan-Out\n{line}\n{line}\n"
                    f"END LAUNDERING ATTEMPT - FAN-OUT\n\nBEGIN LAUNDERING ATTEMPT - STACK\n{line}\n"
                    f"END LAUNDERING ATTEMPT - STACK\n")
    got = read_patterns(path)
    assert got.select("attempt_id", "typology", "qualifier", "line").rows() == [
        (0, "FAN-OUT", "Max 16-degree Fan-Out", 2), (0, "FAN-OUT", "Max 16-degree Fan-Out", 3),
        (1, "STACK", "", 7)]
    assert got.schema["attempt_id"] == pl.Int32


def test_options_are_validated(files):
    with pytest.raises(ConfigError):
        read_transactions(files.trans, on_bad_rows="ignore")
    with pytest.raises(ConfigError):
        read_transactions(files.trans, batch_rows=0)
    with pytest.raises(ConfigError):
        read_transactions(files.trans, limit_rows=0)


def test_check_command_prints_counts(files, trans, capsys):
    args = Namespace(data_path=files.trans.parent, on_bad_rows="raise", quarantine=None)
    assert check_command(args) == 0
    out = capsys.readouterr().out
    assert f"rows: {trans.height}" in out
    assert f"laundering: {int(trans['is_laundering'].sum())}" in out
    assert "bad rows: 0" in out
    assert f"accounts: {read_accounts(files.accounts).height}" in out
    assert f"attempts: {read_patterns(files.patterns)['attempt_id'].n_unique()} " in out


def test_trans_file_alone_without_companions(files, trans, tmp_path):
    shutil.copy(files.trans, tmp_path / "Only_Trans.csv")
    found = find_inputs(tmp_path)
    assert (found.name, found.accounts, found.patterns) == ("Only", None, None)
