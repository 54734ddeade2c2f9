"""Byte ranges of a plain Trans file, each parsed on its own: the parse as independent tasks.

The data lines of a plain (uncompressed) file are split into ``n`` ranges of about equal size by
nominal byte offsets ``b_0 < b_1 < ... < b_n`` (``b_0`` = the first byte after the header,
``b_n`` = the file's size). Range k covers ``[s_k, s_k+1)`` where ``s_0 = b_0`` and, for k >= 1,
``s_k`` is just past the first ``\\n`` at or after ``b_k`` (the end of the file when there is
none): a range starts after the first line end at or after its nominal start and ends just after
the first line end at or after its nominal end. The ranges therefore tile the data lines, each
physical line in exactly one range, whatever ``n``; a range may be empty (a line longer than a
range). The readers work on physical lines (a quoted field cannot span lines, docs/INPUT.md), so
cutting at any ``\\n`` never splits a record: the parse of every range together is the parse of
the file as one stream, line for line.

Each range is parsed like a block of the streaming reader (``TransactionReader``): the same fast
path, the same checks and casts. Its line numbers and row ids are counted from the range's start
(line 1, row 0); the caller turns them into the file's by adding the lines and rows of the ranges
before it, known once every range is parsed (prefix sums of :class:`RangeResult` ``lines`` and
``file_rows``). An error raised inside a range (a bad row in raise mode, bytes that are not UTF-8
text) is located in the file at once: the lines before the range are counted first, one
vectorised pass over the bytes before it, on the error path only.
"""
from __future__ import annotations

import io
import math
import os
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from amlgraph.errors import InputError
from amlgraph.ingest._fast import split_plain_block
from amlgraph.ingest._lines import _check_text, count_byte, count_lines, open_binary
from amlgraph.ingest._reader import (
    FAST_PATH, QUARANTINE_COLUMNS, _block_bytes, _Quarantine, check_header, check_rows, lines_frame,
)
from amlgraph.ingest._validate import TRANS_LABELS, raise_bad_row, trans_checks, trans_parse
from amlgraph.schema import TRANS_COLUMNS, TRANS_HEADER

__all__ = ["RangePlan", "RangeResult", "parse_range", "plan_ranges", "write_quarantine"]

_PROBE = 1 << 16
#: The smallest range: a few lines. ``--chunk-rows`` sets the chunks as the stream's row batches did.
_MIN_RANGE = 1 << 10
_COUNT_READ = 64 << 20


@dataclass(frozen=True)
class RangePlan:
    """The byte ranges of a plain Trans file.

    Attributes:
        path: the file (absolute).
        size: its size in bytes when planned; bytes appended later are not read.
        data_start: the offset of the first data line (after the header line).
        n: the number of ranges.
    """

    path: str
    size: int
    data_start: int
    n: int

    def bounds(self, k: int) -> tuple[int, int]:
        """The nominal ``(start, end)`` offsets of range ``k``: ``n`` even parts of the data."""
        data = self.size - self.data_start
        return self.data_start + data * k // self.n, self.data_start + data * (k + 1) // self.n


def plan_ranges(path: Path, batch_rows: int) -> RangePlan | None:
    """Check the header of a Trans file and cut its data into ranges of about ``batch_rows``
    lines each: ``batch_rows`` times the mean length of the first 64 KiB of lines, bounded to
    1 KiB and to the reader's largest block (64 MiB). The count depends on the file's content
    and ``batch_rows`` alone, so the plan (part of the ranges' keys) is the same on every run.

    Returns:
        The plan; None for a gzip or zstd file (no random access: it is read as one stream).

    Raises:
        InputError: a missing or unreadable file, an empty file, a wrong header.
    """
    path = Path(path).resolve()
    stream = open_binary(path)
    try:
        if not isinstance(stream, io.BufferedReader):  # gzip or zstd: no random access
            return None
        fd = stream.fileno()
        size = os.fstat(fd).st_size
        header_end = _line_end_after(fd, 0, size)
        head = os.pread(fd, header_end, 0)
        sample = os.pread(fd, min(_PROBE, size - header_end), header_end)
    finally:
        stream.close()
    if head:
        _check_text(head, path, 1, TRANS_LABELS)
    text = head.decode("utf-8").removeprefix("\ufeff").rstrip("\r\n") if head else None
    check_header(text, TRANS_HEADER, path, "transactions")
    data = size - header_end
    line = len(sample) / max(1, sample.count(b"\n"))
    block = min(max(int(batch_rows * line), _MIN_RANGE), _block_bytes(10**9))
    return RangePlan(str(path), size, header_end, max(1, math.ceil(data / block)))


def _line_end_after(fd: int, pos: int, size: int) -> int:
    """Offset just past the first ``\\n`` at or after ``pos``; ``size`` when there is none before it."""
    while pos < size:
        window = os.pread(fd, min(_PROBE, size - pos), pos)
        if not window:
            break
        cut = window.find(b"\n")
        if cut >= 0:
            return pos + cut + 1
        pos += len(window)
    return size


def _read(fd: int, n: int, pos: int) -> bytes:
    """Exactly ``n`` bytes at ``pos`` (fewer only if the file shrank)."""
    data = os.pread(fd, n, pos)
    if len(data) < n:
        parts = [data]
        got = len(data)
        while got < n and (more := os.pread(fd, n - got, pos + got)):
            parts.append(more)
            got += len(more)
        data = b"".join(parts)
    return data


def lines_before(path: str | Path, pos: int) -> int:
    """The number of ``\\n`` bytes in the first ``pos`` bytes of a file (the lines before ``pos``
    when ``pos`` starts a line), counted 64 MiB at a time."""
    fd = os.open(path, os.O_RDONLY)
    try:
        total = 0
        for at in range(0, pos, _COUNT_READ):
            total += count_byte(os.pread(fd, min(_COUNT_READ, pos - at), at), 0x0A)
        return total
    finally:
        os.close(fd)


@dataclass
class RangeResult:
    """One range parsed.

    Attributes:
        rows: reader output (docs/ARCHITECTURE.md) of its good rows, ``row`` counted from the
            range's first data row (0).
        bad: its bad rows (``QUARANTINE_COLUMNS``), ``line`` counted from the range's first
            line (1) and ``row`` as in ``rows``; None when there is none.
        lines: its physical lines.
        file_rows: its data rows, good and bad (its lines but the blank ones).
        start, end: its actual byte offsets ``[start, end)``.
    """

    rows: pl.DataFrame
    bad: pl.DataFrame | None
    lines: int
    file_rows: int
    start: int
    end: int


def parse_range(plan: RangePlan, k: int, *, on_bad_rows: str) -> RangeResult:
    """Parse range ``k`` of ``plan`` (reads only its own bytes, plus a probe for each of its ends).

    Raises:
        InputError: in raise mode, the range's first bad row, at its line of the file; in either
            mode, bytes that are not UTF-8 text.
    """
    lo, hi = plan.bounds(k)
    fd = os.open(plan.path, os.O_RDONLY)
    try:
        start = plan.data_start if k == 0 else _line_end_after(fd, lo, plan.size)
        end = plan.size if k == plan.n - 1 else _line_end_after(fd, hi, plan.size)
        buf = _read(fd, end - start, start) if end > start else b""
    finally:
        os.close(fd)
    if not buf:
        return RangeResult(_empty_rows(), None, 0, 0, start, end)
    path = Path(plan.path)
    try:
        _check_text(buf, path, 1, TRANS_LABELS)
    except InputError:
        _check_text(buf, path, 1 + lines_before(plan.path, start), TRANS_LABELS)  # the file's line
        raise
    n_lines = count_lines(buf)
    fields = split_plain_block(buf, n_lines, TRANS_COLUMNS) if FAST_PATH else None
    frame = lines_frame(None if fields is not None else buf, fields, 1, 0)
    del buf, fields
    file_rows = frame.height
    rows, bad = check_rows(frame, trans_checks(), trans_parse())
    if bad is not None and on_bad_rows == "raise":
        before = lines_before(plan.path, start)
        raise_bad_row(bad.head(1).with_columns(pl.col("line") + before), path)
    return RangeResult(rows, bad, n_lines, file_rows, start, end)


def _empty_rows() -> pl.DataFrame:
    from amlgraph.ingest._validate import typed_trans

    return typed_trans(pl.DataFrame(schema={"row": pl.Int64, "_timestamp": pl.Datetime("us"),
                                            "_from_bank": pl.Int64, "from_account": pl.String,
                                            "_to_bank": pl.Int64, "to_account": pl.String,
                                            "_amount_received": pl.Float64, "receiving_currency": pl.String,
                                            "_amount_paid": pl.Float64, "payment_currency": pl.String,
                                            "payment_format": pl.String, "is_laundering": pl.String}))


def write_quarantine(path: Path, bad: list[pl.DataFrame], target: Path | None = None) -> Path:
    """Write the quarantine file of Trans file ``path`` (atomically): the header, then ``bad``
    (frames of ``QUARANTINE_COLUMNS`` with the file's lines and rows) in order.

    Returns:
        The file written: ``target``, default ``<path>.quarantine.csv`` as the streaming reader's.
    """
    path = Path(path)
    target = Path(target) if target else path.with_name(path.name + ".quarantine.csv")
    out = _Quarantine(target)
    try:
        for frame in bad:
            out.write(frame.select(QUARANTINE_COLUMNS))
        out.commit()
    except BaseException:
        out.abort()
        raise
    return target
