"""The reader's fast path (Polars' CSV parser per block) never disagrees with the line splitter."""
from __future__ import annotations

import gzip

import polars as pl
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import amlgraph.ingest._reader as ingest
from amlgraph.errors import InputError
from amlgraph.ingest import read_transactions
from amlgraph.ingest._fast import split_plain_block
import amlgraph.ingest._lines as ingest_lines
from amlgraph.ingest._lines import count_byte, count_lines, split_lines
from amlgraph.ingest._validate import split_fields
from amlgraph.schema import TRANS_COLUMNS

HEADER = ("Timestamp,From Bank,Account,To Bank,Account,Amount Received,Receiving Currency,Amount Paid,"
          "Payment Currency,Payment Format,Is Laundering")
GOOD = "2022/09/01 00:20,010,8000EBD30,010,8000EBD30,3697.34,US Dollar,3697.34,US Dollar,Reinvestment,0"


def _read(path, *, fast: bool, monkeypatch, **kw) -> tuple[pl.DataFrame, ingest.TransactionReader]:
    monkeypatch.setattr(ingest, "FAST_PATH", fast)
    reader = read_transactions(path, **kw)
    frame = pl.concat(list(reader))
    return frame, reader


def _both(path, monkeypatch, **kw) -> tuple[pl.DataFrame, ingest.TransactionReader, ingest.TransactionReader]:
    fast, fast_reader = _read(path, fast=True, monkeypatch=monkeypatch, **kw)
    slow, slow_reader = _read(path, fast=False, monkeypatch=monkeypatch, **kw)
    assert fast.equals(slow)
    assert slow_reader.fast_blocks == 0
    return fast, fast_reader, slow_reader


def _slow_fields(buf: bytes) -> pl.DataFrame:
    return split_fields(pl.DataFrame([split_lines(buf)]), TRANS_COLUMNS)


@pytest.mark.parametrize("batch_rows, data", [(3, "micro_data"), (100, "tiny_data"),
                                              (1_000_000, "tiny_data")])
def test_generated_file_same_frames_fast_and_slow(request, monkeypatch, batch_rows, data):
    # Three-row batches over the 600-row file: as many batch edges, a tenth of the time.
    trans = ingest.find_inputs(request.getfixturevalue(data)).trans
    _, fast_reader, _ = _both(trans, monkeypatch, batch_rows=batch_rows)
    assert fast_reader.fast_blocks >= 1 and fast_reader.slow_blocks == 0


@pytest.mark.parametrize("limit", [1, 777, 5000])
def test_limit_rows_same_fast_and_slow(tiny_data, monkeypatch, limit):
    trans = ingest.find_inputs(tiny_data).trans
    frame, _, _ = _both(trans, monkeypatch, batch_rows=200, limit_rows=limit)
    assert frame["row"].to_list() == list(range(limit))


def test_crlf_and_gzip_take_the_fast_path(tiny_data, monkeypatch, tmp_path):
    lines = ingest.find_inputs(tiny_data).trans.read_text().splitlines()
    path = tmp_path / "C_Trans.csv.gz"
    path.write_bytes(gzip.compress(b"\xef\xbb\xbf" + "\r\n".join(lines).encode() + b"\r\n"))
    _, fast_reader, _ = _both(path, monkeypatch, batch_rows=500)
    assert fast_reader.fast_blocks >= 1 and fast_reader.slow_blocks == 0


def _file(tmp_path, rows: list[str], name="F_Trans.csv", end="\n") -> object:
    path = tmp_path / name
    path.write_text(HEADER + end + end.join(rows) + end, newline="")
    return path


def _good_rows(n: int) -> list[str]:
    return [GOOD.replace("3697.34", f"{i}.5") for i in range(n)]


@pytest.mark.parametrize("odd", [
    GOOD.replace("US Dollar", '"US Dollar"', 1),          # a quote: parsed as CSV, same fields
    GOOD + ",extra",                                      # 12 fields
    GOOD.rsplit(",", 1)[0],                               # 10 fields
    "",                                                   # a blank line
    GOOD.replace("Reinvestment", "Rein\rvestment"),       # a lone carriage return
])
def test_odd_block_falls_back_and_other_blocks_stay_fast(tmp_path, monkeypatch, odd):
    rows = _good_rows(3000)
    rows[1500] = odd
    path = _file(tmp_path, rows)
    target = tmp_path / "q.csv"
    fast, reader, slow_reader = _both(path, monkeypatch, batch_rows=100, on_bad_rows="quarantine",
                                      quarantine_path=target)
    assert reader.fast_blocks >= 1 and reader.slow_blocks >= 1
    assert slow_reader.bad_rows == reader.bad_rows


@pytest.mark.parametrize("bad,line,column", [
    (GOOD + ",extra", 1502, None),
    (GOOD.rsplit(",", 1)[0], 1502, "Is Laundering"),
    (GOOD.replace("US Dollar", '"US, Dollar"', 1) + ",x", 1502, None),
    (GOOD.replace("3697.34", "abc", 1), 1502, "Amount Received"),   # a fast block, bad value
    (GOOD.replace("2022/09/01", "2022/02/30"), 1502, "Timestamp"),
])
def test_bad_row_reported_at_its_exact_line_on_both_paths(tmp_path, monkeypatch, bad, line, column):
    rows = _good_rows(3000)
    rows[1500] = bad
    path = _file(tmp_path, rows)
    errors = []
    for fast in (True, False):
        monkeypatch.setattr(ingest, "FAST_PATH", fast)
        with pytest.raises(InputError) as info:
            list(read_transactions(path, batch_rows=100))
        errors.append(str(info.value))
        assert info.value.line == line
        assert info.value.column == column
    assert errors[0] == errors[1]


@pytest.mark.parametrize("end", ["\n", "\r\n"])
def test_quarantine_file_identical_fast_and_slow(tmp_path, monkeypatch, end):
    rows = _good_rows(2000)
    rows[10] = GOOD.replace("Reinvestment", "Paypal")
    rows[700] = GOOD.replace("8000EBD30", "   ", 1)
    rows[701] = GOOD.replace(",0", ",1")[:-1] + "7"
    rows[1999] = GOOD.replace("3697.34", "-1e3")
    path = _file(tmp_path, rows, end=end)
    contents = []
    for fast in (True, False):
        target = tmp_path / f"q_{fast}.csv"
        frame, reader = _read(path, fast=fast, monkeypatch=monkeypatch, batch_rows=150,
                              on_bad_rows="quarantine", quarantine_path=target)
        assert reader.bad_rows == 4 and frame.height == 1996
        assert reader.slow_blocks == (0 if fast else reader.slow_blocks)
        contents.append(target.read_bytes())
    assert contents[0] == contents[1]
    quarantined = pl.read_csv(tmp_path / "q_True.csv", infer_schema=False)
    assert quarantined["line"].to_list() == ["12", "702", "703", "2001"]
    assert quarantined["text"][0] == rows[10]


def test_unterminated_last_line(tmp_path, monkeypatch):
    path = tmp_path / "U_Trans.csv"
    path.write_text(HEADER + "\n" + "\n".join(_good_rows(50)))
    frame, reader, _ = _both(path, monkeypatch)
    assert frame.height == 50 and reader.fast_blocks == 1


# --- split_plain_block itself ----------------------------------------------------------------

def test_split_plain_block_refuses_what_it_cannot_prove():
    assert split_plain_block(b"", 0, TRANS_COLUMNS) is None
    for buf in [
        (GOOD + "\n" + GOOD.replace("US Dollar", '"US Dollar"') + "\n").encode(),   # a quote
        (GOOD + "\n\n" + GOOD + "\n").encode(),                                     # a blank line
        # one line with 9 commas, one with 11: the total is right, the lines are not
        (GOOD.replace(",0", "", 1) + "\n" + GOOD + ",\n").encode(),
        (GOOD + "\r" + GOOD + "\n").encode(),                                       # a lone CR
        (GOOD + "\r\r\n").encode(),                                                 # CR CR LF
    ]:
        assert split_plain_block(buf, count_lines(buf), TRANS_COLUMNS) is None, buf


def test_split_plain_block_keeps_empty_and_odd_fields_verbatim():
    odd = ",  ,,\ufeffx, ,,,,,,"
    buf = (odd + "\n" + GOOD + "\r\n").encode()
    fields = split_plain_block(buf, count_lines(buf), TRANS_COLUMNS)
    assert fields is not None
    assert fields.row(0) == ("", "  ", "", "\ufeffx", " ", "", "", "", "", "", "")
    assert fields.equals(_slow_fields(buf).select(TRANS_COLUMNS))


_CHARS = st.sampled_from(list("ab09 ,.\"\r\n\t/:-") + ["\ufeff", "\u00e9"])
_FIELD = st.text(st.sampled_from(list("ab09 .\t/:-") + ["\ufeff", "\u00e9"]), max_size=6)
_LINE = st.one_of(st.lists(_FIELD, min_size=11, max_size=11), st.lists(_FIELD, min_size=10, max_size=12)).map(",".join)
_ODD = st.sampled_from(["", '"', "\r", "\n", ","])


def _plain(buf: bytes) -> bool:
    """What the fast path must take: no quote, no CR but in CR LF, every line exactly 10 commas."""
    text = buf.replace(b"\r\n", b"\n")
    if b'"' in buf or b"\r" in text or buf.startswith("\ufeff".encode()):
        return False  # (Polars drops a leading BOM, so such a block goes to the line splitter)
    lines = text.split(b"\n")
    if text.endswith(b"\n"):
        lines = lines[:-1]
    return bool(lines) and all(line.count(b",") == 10 for line in lines)


def _agree(buf: bytes) -> bool:
    """The fast path takes exactly the plain blocks, and splits them as the line splitter does."""
    fields = split_plain_block(buf, count_lines(buf), TRANS_COLUMNS)
    assert (fields is not None) == _plain(buf), buf
    if fields is None:
        return False
    slow = _slow_fields(buf)
    assert slow["_nfields"].null_count() == slow.height  # every line has exactly 11 fields
    assert fields.equals(slow.select(TRANS_COLUMNS))
    return True


@settings(max_examples=300, deadline=None)
@given(text=st.lists(st.text(_CHARS, max_size=40), min_size=1, max_size=12).map("\n".join))
def test_split_plain_block_agrees_with_the_line_splitter_on_any_text(text):
    _agree(text.encode())


@settings(max_examples=300, deadline=None)
@given(lines=st.lists(_LINE, min_size=1, max_size=8), end=st.sampled_from(["\n", "\r\n"]),
       last=st.booleans(), odd=_ODD, at=st.integers(0, 10_000))
def test_split_plain_block_agrees_with_the_line_splitter_on_near_csv(lines, end, last, odd, at):
    text = end.join(lines) + (end if last else "")
    at %= len(text) + 1
    took = _agree((text[:at] + odd + text[at:]).encode())
    if not odd and all(line.count(",") == 10 for line in lines) and not text.startswith("\ufeff"):
        assert took  # plain lines reach the comparison, not just the decline


@settings(max_examples=200, deadline=None)
@given(data=st.binary(max_size=64), step=st.integers(1, 9), value=st.sampled_from([0x0A, 0x2C, 0x00, 0xFF]))
def test_count_byte_counts_across_its_steps(data, step, value):
    ingest_lines._COUNT_STEP, saved = step, ingest_lines._COUNT_STEP
    try:
        assert count_byte(data, value) == data.count(bytes([value]))
        assert count_lines(data + b"x") == data.count(b"\n") + 1
    finally:
        ingest_lines._COUNT_STEP = saved


def test_read_ahead_changes_nothing_and_stops_with_the_reader(tiny_data, monkeypatch):
    import threading

    trans = ingest.find_inputs(tiny_data).trans
    ahead, _ = _read(trans, fast=True, monkeypatch=monkeypatch, batch_rows=300)
    monkeypatch.setattr(ingest, "READ_AHEAD", False)
    sequential, _ = _read(trans, fast=True, monkeypatch=monkeypatch, batch_rows=300)
    assert ahead.equals(sequential)
    monkeypatch.setattr(ingest, "READ_AHEAD", True)
    threads = threading.active_count()
    batches = iter(read_transactions(trans, batch_rows=300))
    next(batches)
    batches.close()  # a consumer that stops early: the reading thread ends with it
    assert threading.active_count() == threads
