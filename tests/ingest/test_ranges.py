"""Byte ranges of a Trans file: together they are the streaming reader's parse, line for line."""
from __future__ import annotations

import dataclasses
import gzip
import shutil

import polars as pl
import pytest

from amlgraph.errors import InputError
from amlgraph.ingest import parse_range, plan_ranges, read_transactions, write_quarantine
from amlgraph.schema import TRANS_HEADER

HEADER = ",".join(TRANS_HEADER)
GOOD = "2022/09/01 00:{m:02d},{bank:03d},8000{i:05X},0{to},8000{j:05X},{amt}.25,US Dollar,{amt}.25,US Dollar,ACH,0"


def _line(i: int) -> str:
    return GOOD.format(m=i % 60, bank=10 + i % 7, i=i, to=i % 5, j=i * 7 % 99991, amt=100 + i)


def _awkward_file(tmp_path, n: int = 400) -> "Path":  # noqa: F821
    """Every shape the line splitter knows: a BOM, CRLF, blank lines, quoted fields, bad rows
    (several kinds, spread over the file), long and short lines, no final newline."""
    lines = []
    for i in range(n):
        text = _line(i)
        if i % 97 == 13:
            text = text.replace("US Dollar,ACH", "\"US Dollar\",ACH")  # quoted, one line
        if i % 61 == 5:
            text = text.replace(",ACH,", ",Telex,")  # bad: payment format
        if i % 83 == 40:
            text = text[:30]  # bad: truncated
        lines.append(text + ("\r\n" if i % 11 == 3 else "\n"))
        if i % 53 == 7:
            lines.append("\n")  # blank: not a row
        if i % 71 == 9:
            lines.append("\r\n")
    path = tmp_path / "X_Trans.csv"
    path.write_bytes(("\ufeff" + HEADER + "\n").encode() + "".join(lines).rstrip("\n").encode())
    return path


def _by_ranges(path, n: int, on_bad_rows: str = "quarantine") -> tuple[pl.DataFrame, pl.DataFrame, list]:
    """The rows and bad rows of every range with the file's row ids and lines (prefix sums)."""
    plan = dataclasses.replace(plan_ranges(path, 1000), n=n)
    rows, bad, spans = [], [], []
    lines_before, rows_before = 1, 0
    for k in range(n):
        got = parse_range(plan, k, on_bad_rows=on_bad_rows)
        rows.append(got.rows.with_columns(pl.col("row") + rows_before))
        if got.bad is not None:
            bad.append(got.bad.with_columns(pl.col("line") + lines_before, pl.col("row") + rows_before))
        spans.append((got.start, got.end))
        lines_before += got.lines
        rows_before += got.file_rows
    return pl.concat(rows), (pl.concat(bad) if bad else None), spans


def _streamed(path, tmp_path) -> tuple[pl.DataFrame, pl.DataFrame]:
    q = tmp_path / "streamed.quarantine.csv"
    rows = pl.concat(list(read_transactions(path, on_bad_rows="quarantine", quarantine_path=q)))
    return rows, pl.read_csv(q, infer_schema=False)


@pytest.mark.parametrize("n", [1, 2, 3, 7, 50, 600])
def test_ranges_together_are_the_stream_line_for_line(tmp_path, n):
    path = _awkward_file(tmp_path)
    rows, bad, spans = _by_ranges(path, n)
    want_rows, want_bad = _streamed(path, tmp_path)
    assert rows.equals(want_rows)
    # the quarantine file written from the ranges is the stream's, byte for byte
    written = write_quarantine(path, [bad], target=tmp_path / "ranged.quarantine.csv")
    assert written.read_bytes() == (tmp_path / "streamed.quarantine.csv").read_bytes()
    assert want_bad.height >= 10
    # the ranges tile the data: each starts where the previous ended, at a line start
    data = path.read_bytes()
    assert spans[0][0] == data.index(b"\n") + 1 and spans[-1][1] == len(data)
    assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))
    assert all(data[s - 1:s] == b"\n" for s, e in spans if e > s)


def test_more_ranges_than_lines_leaves_empty_ranges(tmp_path):
    path = tmp_path / "Y_Trans.csv"
    path.write_text(HEADER + "\n" + _line(1) + "\n" + _line(2) + "\n")
    rows, bad, spans = _by_ranges(path, 40)
    assert rows["row"].to_list() == [0, 1] and bad is None
    assert sum(1 for s, e in spans if e > s) == 2


def test_a_header_only_file_has_one_empty_range(tmp_path):
    path = tmp_path / "Z_Trans.csv"
    path.write_text(HEADER + "\n")
    plan = plan_ranges(path, 1000)
    assert plan.n == 1
    got = parse_range(plan, 0, on_bad_rows="raise")
    assert got.rows.height == 0 and got.file_rows == 0 and got.lines == 0


def _same_error_streamed_and_ranged(path, n: int) -> str:
    """The one-line error of reading ``path`` as one stream, which ``n`` ranges read in order must
    raise word for word; returns it."""
    with pytest.raises(InputError) as streamed:
        list(read_transactions(path))
    plan = dataclasses.replace(plan_ranges(path, 1000), n=n)
    with pytest.raises(InputError) as ranged:
        for k in range(n):
            parse_range(plan, k, on_bad_rows="raise")
    assert str(ranged.value) == str(streamed.value)
    return str(ranged.value)


@pytest.mark.parametrize("n", [1, 3, 7])
def test_a_bad_row_in_a_later_range_names_the_files_line(tmp_path, n):
    path = tmp_path / "B_Trans.csv"
    lines = [_line(i) for i in range(300)]
    lines[250] = lines[250].replace(",ACH,", ",Telex,")
    lines.insert(100, "")  # a blank line before it: lines and rows differ
    path.write_text(HEADER + "\n" + "\n".join(lines) + "\n")
    message = _same_error_streamed_and_ranged(path, n)
    assert f"{path}:253:" in message and "Payment Format" in message


def test_bytes_that_are_not_text_are_located_in_the_file(tmp_path):
    path = tmp_path / "U_Trans.csv"
    lines = [_line(i).encode() for i in range(200)]
    lines[170] = lines[170].replace(b"US Dollar", b"US D\xffollar", 1)
    path.write_bytes(HEADER.encode() + b"\n" + b"\n".join(lines) + b"\n")
    with pytest.raises(InputError) as streamed:
        list(read_transactions(path))
    plan = dataclasses.replace(plan_ranges(path, 1000), n=5)
    with pytest.raises(InputError) as ranged:
        for k in range(plan.n):
            parse_range(plan, k, on_bad_rows="quarantine")
    assert str(ranged.value) == str(streamed.value)
    assert f"{path}:172:" in str(ranged.value)


def test_compressed_files_have_no_ranges_and_headers_are_checked(tmp_path):
    path = _awkward_file(tmp_path)
    gz = tmp_path / "G_Trans.csv.gz"
    with open(path, "rb") as src, gzip.open(gz, "wb") as dst:
        shutil.copyfileobj(src, dst)
    assert plan_ranges(gz, 1000) is None
    empty = tmp_path / "E_Trans.csv"
    empty.write_bytes(b"")
    with pytest.raises(InputError, match="empty file"):
        plan_ranges(empty, 1000)
    headless = tmp_path / "H_Trans.csv"
    headless.write_text(_line(1) + "\n")
    with pytest.raises(InputError, match="missing header"):
        plan_ranges(headless, 1000)


def test_ranges_hold_about_batch_rows_lines_within_bounds(tmp_path):
    path = _awkward_file(tmp_path, n=3000)
    size = path.stat().st_size
    assert plan_ranges(path, 10**7).n == 1
    assert plan_ranges(path, 1000).n in (3, 4)  # about 1,000 lines a range (3,000 lines, ~100 blank)
    assert plan_ranges(path, 300).n in range(9, 13)  # as the stream's 300-row batches
    small = plan_ranges(path, 1)  # the smallest block: 1 KiB
    assert small.n == -(-(size - small.data_start) // (1 << 10))
    bounds = [small.bounds(k) for k in range(small.n)]
    assert bounds[0][0] == small.data_start and bounds[-1][1] == size
    assert all(a[1] == b[0] for a, b in zip(bounds, bounds[1:]))


@pytest.mark.parametrize("n", [1, 4])
def test_a_quoted_field_spanning_lines_is_refused_alike(tmp_path, n):
    """A quote cannot carry a record over a line end (the IBM files have no quotes): the line that
    opens it is a bad row, named by the same line whether the file is cut there or not."""
    path = tmp_path / "Q_Trans.csv"
    lines = [_line(i) for i in range(120)]
    lines[90] = lines[90].replace("US Dollar,ACH", "\"US\nDollar\",ACH")
    path.write_text(HEADER + "\n" + "\n".join(lines) + "\n")
    message = _same_error_streamed_and_ranged(path, n)
    assert f"{path}:92:" in message and "unterminated quoted field" in message
