"""The bad-input corpus through the command (`cli.main`, in-process; a few real processes too):
one line on stderr, exit code 2, no traceback."""
from __future__ import annotations

import os
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import polars as pl
import pytest

from amlgraph.errors import InputError
from amlgraph.ingest import QUARANTINE_COLUMNS, read_transactions
from pipeline_helpers import amlgraph_cmd

from bad_corpus import BAD, CASES, GOOD, HEADER, assert_one_line_error  # noqa: E402,F401
from cli_inprocess import run_main

#: Corpus files also checked by the real installed command in its own process.
REAL_PROCESS = ("binary_file.csv", "gzip_truncated.csv.gz", "amount_nan.csv")


def _check(path: Path, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "POLARS_MAX_THREADS": "1"}
    return subprocess.run(amlgraph_cmd("check", str(path), *extra), capture_output=True, text=True,
                          timeout=120, env=env)


@pytest.fixture(scope="module")
def corpus_results():
    """`amlgraph check` on every corpus file, in this process."""
    return {name: run_main("check", BAD / name) for name, *_ in CASES}


@pytest.mark.parametrize("name", REAL_PROCESS)
def test_bad_file_fails_with_one_line_in_a_real_process(name):
    line, column, value = next((c[1], c[2], c[3]) for c in CASES if c[0] == name)
    with ThreadPoolExecutor(max_workers=1) as pool:  # the same call as the in-process corpus
        result = pool.submit(_check, BAD / name).result()
    assert_one_line_error(result, BAD / name, line, column, value)


def test_corpus_is_complete():
    listed = {name for name, *_ in CASES}
    on_disk = {p.name for p in BAD.iterdir() if p.name != "CASES.md"}
    assert listed == on_disk
    assert len(CASES) >= 30


@pytest.mark.parametrize("name,line,column,value", CASES, ids=[c[0] for c in CASES])
def test_bad_file_fails_with_one_line(corpus_results, name, line, column, value):
    assert_one_line_error(corpus_results[name], BAD / name, line, column, value)


def test_multi_megabyte_line(tmp_path):
    path = tmp_path / "huge_Trans.csv"
    huge = "9" * (3 << 20) + "x"
    path.write_text(f"{HEADER}\n{GOOD}\n{GOOD.replace('3697.34', huge, 1)}\n{GOOD}\n")
    message = assert_one_line_error(_check(path), path, 3, "Amount Received")
    assert len(message) < 1000  # the value is shortened, not printed whole
    reader = read_transactions(path, on_bad_rows="quarantine", quarantine_path=tmp_path / "q.csv", batch_rows=1)
    assert [b["row"].to_list() for b in reader] == [[0], [2]]
    assert reader.bad_rows == 1
    assert pl.read_csv(tmp_path / "q.csv", infer_schema=False)["value"][0] == huge


def test_missing_file(tmp_path):
    assert_one_line_error(_check(tmp_path / "nope_Trans.csv"), tmp_path / "nope_Trans.csv", None)


def test_directory_without_trans_file(tmp_path):
    (tmp_path / "readme.txt").write_text("nothing here")
    message = assert_one_line_error(_check(tmp_path), tmp_path, None)
    assert "no *_Trans.csv in" in message


def test_directory_with_two_trans_files(tmp_path):
    for name in ("A_Trans.csv", "B_Trans.csv.gz"):
        (tmp_path / name).write_text("x")
    message = assert_one_line_error(_check(tmp_path), tmp_path, None)
    assert "A_Trans.csv" in message and "B_Trans.csv.gz" in message


# --- quarantine mode ---------------------------------------------------------------------------

_FATAL = ("nul", "invalid_utf8", "mixed_encodings")  # text errors: fatal even in quarantine mode
ROW_FAULTS = [name for name, line, *_ in CASES
              if line >= 3 and name.endswith(".csv") and not name.startswith(_FATAL)]


@pytest.mark.parametrize("name", ROW_FAULTS)
def test_quarantine_skips_row_faults(name, tmp_path):
    source = BAD / name
    target = tmp_path / "q.csv"
    reader = read_transactions(source, on_bad_rows="quarantine", quarantine_path=target)
    frame = pl.concat(list(reader))
    assert reader.bad_rows == 1
    assert reader.quarantine_path == target
    quarantined = pl.read_csv(target, infer_schema=False)
    assert tuple(quarantined.columns) == QUARANTINE_COLUMNS
    assert quarantined.height == 1
    raw_lines = source.read_bytes().decode("utf-8-sig").splitlines()
    bad_line = int(quarantined["line"][0])
    assert quarantined["text"][0] == raw_lines[bad_line - 1]  # verbatim, terminator stripped
    assert quarantined["reason"][0]
    # ids stay those of the file: the good rows keep their positions around the gap
    assert int(quarantined["row"][0]) not in frame["row"].to_list()
    assert frame["row"].to_list() == [r for r in range(len(raw_lines) - 1) if r != bad_line - 2]


def test_quarantine_counts_several_bad_rows_and_default_path(tmp_path):
    path = tmp_path / "S_Trans.csv"
    bad_rows = [GOOD.replace("Reinvestment", "Paypal"), GOOD[:30], GOOD.replace(",0", ",7")]
    path.write_text("\n".join([HEADER, GOOD, bad_rows[0], GOOD, bad_rows[1], "", bad_rows[2], GOOD]) + "\n")
    reader = read_transactions(path, on_bad_rows="quarantine", batch_rows=2)
    frame = pl.concat(list(reader))
    assert (reader.rows_read, reader.bad_rows) == (3, 3)
    assert frame["row"].to_list() == [0, 2, 5]  # the blank line is not a row
    target = path.with_name("S_Trans.csv.quarantine.csv")
    assert reader.quarantine_path == target
    q = pl.read_csv(target, infer_schema=False)
    assert q["line"].to_list() == ["3", "5", "7"]
    assert q["column"].to_list() == ["Payment Format", "To Bank", "Is Laundering"]
    assert q["text"].to_list() == bad_rows
    assert "payment format" in q["reason"][0] and "label" in q["reason"][2]
    assert not list(tmp_path.glob(".*.tmp"))  # the temporary file was renamed into place


def test_quarantine_cli_prints_counts(tmp_path):
    path = tmp_path / "S_Trans.csv"
    path.write_text(f"{HEADER}\n{GOOD}\n{GOOD.replace('3697.34', 'NaN', 1)}\n")
    target = tmp_path / "bad.csv"
    result = subprocess.run(amlgraph_cmd("check", str(path), "--on-bad-rows", "quarantine",
                                         "--quarantine", str(target)), capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stderr
    assert "rows: 1" in result.stdout and "bad rows: 1" in result.stdout
    assert pl.read_csv(target, infer_schema=False)["value"].to_list() == ["NaN"]


@pytest.mark.parametrize("name", ["wrong_header_name.csv", "empty_file.csv", "binary_file.csv",
                                  "invalid_utf8_latin1.csv", "gzip_truncated.csv.gz", "zstd_corrupt.csv.zst"])
def test_fatal_even_in_quarantine_mode(name, tmp_path):
    target = tmp_path / "q.csv"
    with pytest.raises(InputError):
        list(read_transactions(BAD / name, on_bad_rows="quarantine", quarantine_path=target))
    assert not target.exists()
    assert not list(tmp_path.iterdir())  # no temporary file left behind


def test_all_rows_bad_is_an_error_after_quarantining(tmp_path):
    path = tmp_path / "S_Trans.csv"
    path.write_text(f"{HEADER}\n{GOOD.replace(',0', ',x')}\n")
    target = tmp_path / "q.csv"
    with pytest.raises(InputError, match="no valid data rows"):
        list(read_transactions(path, on_bad_rows="quarantine", quarantine_path=target))
    assert pl.read_csv(target).height == 1
