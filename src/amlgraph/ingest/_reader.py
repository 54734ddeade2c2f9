"""Readers of the IBM AML input files: locating them, reading transactions in batches, bad rows.

Formats, rules and the quarantine file are described in docs/INPUT.md.
"""
from __future__ import annotations

import re
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from amlgraph._atomic import AtomicFile
from amlgraph.errors import ConfigError, InputError
from amlgraph.ingest._fast import split_plain_block
from amlgraph.ingest._lines import BLANK_LINES, LineSource, split_lines
from amlgraph.ingest._validate import (
    TRANS_LABELS,
    Check,
    classify,
    describe_bad,
    raise_bad_row,
    split_fields,
    trans_checks,
    trans_parse,
    typed_trans,
)
from amlgraph.schema import (
    ACCOUNTS_COLUMNS,
    ACCOUNTS_HEADER,
    TRANS_COLUMNS,
    TRANS_HEADER,
)

__all__ = [
    "InputFiles", "TransactionReader", "find_inputs", "read_transactions", "read_accounts",
    "QUARANTINE_COLUMNS",
]

ON_BAD_ROWS = ("raise", "quarantine")
QUARANTINE_COLUMNS = ("line", "row", "column", "reason", "value", "text")
_COMPRESSED = ("", ".gz", ".zst")
# <NAME>_Trans.csv, and later files of the same data set as <NAME>_Trans_<part>.csv (e.g. the
# next day's transactions: HI-Small_Trans_2022-09-11.csv), each optionally .gz or .zst.
_TRANS_RE = re.compile(r"^(?P<name>.+?)_Trans(?P<part>_[^./]+)?\.csv(\.gz|\.zst)?$")
_TS_LIKE = re.compile(r"^\d{4}/\d{1,2}/\d{1,2}")
# Blocks that qualify are split by Polars' CSV parser (ingest_fast); False forces the line splitter
# everywhere (the tests compare both).
FAST_PATH = True
# Read and split the next block in a second thread while one is validated.
READ_AHEAD = True


@dataclass(frozen=True)
class InputFiles:
    """The files of one data set.

    Attributes:
        name: the data set name, e.g. "HI-Small".
        trans: the first Trans file (`<name>_Trans.csv`, or `.csv.gz`, `.csv.zst`).
        trans_files: every Trans file of the data set in reading order: `<name>_Trans.csv`
            first, then the `<name>_Trans_<part>.csv` files sorted by name (later data appended
            to a data directory). Row ids run on across files in this order.
        accounts: `<name>_accounts.csv` beside it, None when absent.
        patterns: `<name>_Patterns.txt` beside it, None when absent.
    """

    name: str
    trans: Path
    accounts: Path | None
    patterns: Path | None
    trans_files: tuple[Path, ...] = ()

    def __post_init__(self) -> None:
        if not self.trans_files:
            object.__setattr__(self, "trans_files", (self.trans,))


def find_inputs(data_path: Path) -> InputFiles:
    """Locate a data set's files from a directory or from its Trans file.

    Args:
        data_path: a directory holding exactly one `*_Trans.csv[.gz|.zst]`, or the Trans file itself.

    Returns:
        The Trans file and, found beside it by name, the accounts and patterns files (plain or
        compressed).

    Raises:
        InputError: the path does not exist, holds no Trans file, or holds several.
    """
    data_path = Path(data_path)
    if not data_path.exists():
        raise InputError("no such file or directory", path=str(data_path), hint="check the path")
    if data_path.is_dir():
        found = [p for p in data_path.iterdir() if p.is_file() and _TRANS_RE.match(p.name)]
        if not found:
            raise InputError(f"no *_Trans.csv in {data_path}", path=str(data_path),
                             hint="pass the directory of a data set or the Trans file itself")
        names = sorted({_TRANS_RE.match(p.name)["name"] for p in found})
        if len(names) > 1:
            raise InputError(f"Trans files of several data sets in {data_path}: "
                             f"{', '.join(sorted(p.name for p in found))}",
                             path=str(data_path), hint="pass the Trans file you mean, or keep one data set per directory")
        # the base file first, then the later parts by name
        files = sorted(found, key=lambda p: (_TRANS_RE.match(p.name)["part"] is not None, p.name))
    else:
        files = [data_path]
    trans = files[0]
    match = _TRANS_RE.match(trans.name)
    name = match["name"] if match else trans.name.split(".")[0]
    return InputFiles(name=name, trans=trans,
                      accounts=_beside(trans.parent, f"{name}_accounts.csv"),
                      patterns=_beside(trans.parent, f"{name}_Patterns.txt"),
                      trans_files=tuple(files))


def _beside(directory: Path, filename: str) -> Path | None:
    for suffix in _COMPRESSED:
        candidate = directory / (filename + suffix)
        if candidate.is_file():
            return candidate
    return None


def check_header(header: str | None, expected: tuple[str, ...], path: Path, hint_kind: str) -> None:
    """Fail unless `header` is exactly `expected` (comma-separated, by position).

    Raises:
        InputError: an empty file, a missing header (line 1 is data) or a wrong name or count.
    """
    if header is None:
        raise InputError("empty file (0 bytes)", path=str(path), line=1,
                         hint=f"expected a {hint_kind} CSV file with a header line")
    found = header.split(",")
    if list(found) == list(expected):
        return
    wanted = ",".join(expected)
    if _TS_LIKE.match(header) or (found and found[0].strip().isdigit()):
        raise InputError("missing header: line 1 is a data row", path=str(path), line=1,
                         column=expected[0], value=found[0],
                         hint=f"add the header line {wanted}")
    for i, (got, want) in enumerate(zip(found, expected)):
        if got != want:
            raise InputError(f"wrong header: column {i + 1} should be named {want!r}", path=str(path),
                             line=1, column=want, value=got, hint=f"the header must be {wanted}")
    missing = expected[len(found)] if len(found) < len(expected) else None
    raise InputError(f"wrong header: {len(found)} columns, expected {len(expected)}", path=str(path),
                     line=1, column=missing, value=header, hint=f"the header must be {wanted}")


def _block_bytes(batch_rows: int) -> int:
    # About 100 bytes per transaction line; bounded so that a block stays a few tens of MB.
    return min(max(batch_rows * 128, 1 << 16), 64 << 20)


class _Quarantine:
    """The quarantine CSV, written atomically (``amlgraph._atomic``): it appears complete or not at all."""

    def __init__(self, target: Path):
        self.target = Path(target)
        try:
            self._out = AtomicFile(self.target)
        except OSError as exc:
            raise InputError(f"cannot write the quarantine file: {exc.strerror or exc}",
                             path=str(self.target), hint="pass --quarantine FILE in a writable place") from exc
        self.fh = self._out.file
        self.fh.write((",".join(QUARANTINE_COLUMNS) + "\n").encode())

    def write(self, bad: pl.DataFrame) -> None:
        bad.select(QUARANTINE_COLUMNS).write_csv(self.fh, include_header=False)

    def commit(self) -> None:
        self._out.commit()

    def abort(self) -> None:
        self._out.abort()


class TransactionReader:
    """Iterate it for typed batches of a Trans file (reader output of docs/ARCHITECTURE.md).

    Attributes (filled as iteration proceeds, reset when an iteration starts):
        rows_read: good rows returned so far.
        bad_rows: bad rows skipped (quarantine mode) so far.
        quarantine_path: the quarantine file once written (quarantine mode, after the last batch).
        fast_blocks, slow_blocks: blocks of the file split by Polars' CSV parser (ingest_fast) and
            by the line splitter (a `"`, a blank line or a wrong number of fields in the block).
    """

    def __init__(self, path: Path, *, on_bad_rows: str, quarantine_path: Path | None,
                 batch_rows: int, limit_rows: int | None):
        self.path = Path(path)
        self.on_bad_rows, self.batch_rows, self.limit_rows = on_bad_rows, batch_rows, limit_rows
        self._target = Path(quarantine_path) if quarantine_path else self.path.with_name(
            self.path.name + ".quarantine.csv")
        self.rows_read = 0
        self.bad_rows = 0
        self.fast_blocks = self.slow_blocks = 0
        self.quarantine_path: Path | None = None

    def __iter__(self) -> Iterator[pl.DataFrame]:
        self.rows_read = self.bad_rows = self.fast_blocks = self.slow_blocks = 0
        source = LineSource(self.path, block_bytes=_block_bytes(self.batch_rows), columns=TRANS_LABELS)
        try:
            check_header(source.header, TRANS_HEADER, self.path, "transactions")
        except InputError:
            source.close()
            raise
        quarantine = _Quarantine(self._target) if self.on_bad_rows == "quarantine" else None
        committed = False
        try:
            yield from self._batches(source, quarantine)
            if quarantine is not None:
                quarantine.commit()
                committed = True
                self.quarantine_path = self._target
            if self.rows_read == 0 and self.limit_rows != 0:
                where = f" ({self.bad_rows} bad rows quarantined in {self._target})" if self.bad_rows else ""
                raise InputError(f"no valid data rows after the header{where}", path=str(self.path),
                                 line=2, hint="a graph needs at least one transaction")
        finally:
            source.close()
            if quarantine is not None and not committed:
                quarantine.abort()

    def _batches(self, source: LineSource, quarantine: _Quarantine | None) -> Iterator[pl.DataFrame]:
        checks, parse = trans_checks(), trans_parse()
        next_row, limit = 0, self.limit_rows
        blocks = source.blocks()
        # The next block is read and split in a second thread while this one is validated (Polars
        # and file reads release the GIL); its errors surface in file order, through result().
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="amlgraph-read") as pool:
            ahead = None
            while True:
                item = (ahead or pool.submit(_split_block, blocks)).result()
                if item is None:
                    return
                buf, first_line, n_lines, fields = item
                # Reading ahead only when the limit may need more rows than this block has.
                more = limit is None or next_row + n_lines < limit
                ahead = pool.submit(_split_block, blocks) if READ_AHEAD and more else None
                if fields is not None:
                    self.fast_blocks += 1
                else:
                    self.slow_blocks += 1
                frame = lines_frame(buf, fields, first_line, next_row)
                del item, buf, fields
                if limit is not None:
                    frame = frame.head(max(limit - next_row, 0))
                next_row += frame.height
                for start in range(0, frame.height, self.batch_rows):
                    batch = self._validate(frame.slice(start, self.batch_rows), checks, parse, quarantine)
                    if batch.height:
                        yield batch
                if limit is not None and next_row >= limit:
                    return

    def _validate(self, lines: pl.DataFrame, checks: list[tuple[int, Check]], parse: list[pl.Expr],
                  quarantine: _Quarantine | None) -> pl.DataFrame:
        """Classify a slice of a block (`raw` lines, or fields already split) and type its good rows."""
        typed, described = check_rows(lines, checks, parse)
        if described is not None:
            if quarantine is None:
                raise_bad_row(described, self.path)
            quarantine.write(described)
            self.bad_rows += described.height
        self.rows_read += typed.height
        return typed


def lines_frame(buf: bytes | None, fields: pl.DataFrame | None, first_line: int, first_row: int) -> pl.DataFrame:
    """The lines of a block numbered: ``line`` (1-based line of the file) and ``row`` (0-based data
    row, blank lines skipped), from its fields (fast path) or its bytes (line splitter)."""
    if fields is not None:
        # No blank line in the block: line i is row first_row + i.
        return fields.with_columns(line=pl.int_range(pl.len(), dtype=pl.Int64) + first_line,
                                   row=pl.int_range(pl.len(), dtype=pl.Int64) + first_row,
                                   _nfields=pl.lit(None, pl.Int64))
    frame = (pl.DataFrame([split_lines(buf)])
             .with_columns(line=pl.int_range(pl.len(), dtype=pl.Int64) + first_line)
             .filter(~pl.col("raw").is_in(BLANK_LINES)))
    return frame.with_columns(row=pl.int_range(pl.len(), dtype=pl.Int64) + first_row)


def check_rows(lines: pl.DataFrame, checks: list[tuple[int, Check]],
               parse: list[pl.Expr]) -> tuple[pl.DataFrame, pl.DataFrame | None]:
    """Validate numbered lines (:func:`lines_frame`): the good rows typed (reader output), and
    the bad ones described (``QUARANTINE_COLUMNS``), None when there is none."""
    if "raw" in lines.columns:
        lines = split_fields(lines, TRANS_COLUMNS)
    fields = classify(lines, checks, parse)
    bad = fields.filter(pl.col("_bad") >= 0)
    described = None
    if bad.height:
        if "raw" not in bad.columns:
            # Fast path: the line is exactly its 11 fields joined by commas (ingest_fast).
            bad = bad.with_columns(raw=pl.concat_str(TRANS_COLUMNS, separator=","))
        described = describe_bad(bad, checks, TRANS_LABELS)
        fields = fields.filter(pl.col("_bad") < 0)
    return typed_trans(fields), described


def _split_block(blocks: Iterator[tuple[bytes, int, int]]) -> tuple | None:
    """The next block as (bytes, first line, lines, fields or None for the line splitter); None at the end."""
    item = next(blocks, None)
    if item is None:
        return None
    buf, first_line, n_lines = item
    fields = split_plain_block(buf, n_lines, TRANS_COLUMNS) if FAST_PATH else None
    return (buf if fields is None else None), first_line, n_lines, fields


def read_transactions(path: Path, *, on_bad_rows: str = "raise", quarantine_path: Path | None = None,
                      batch_rows: int = 1_000_000, limit_rows: int | None = None) -> TransactionReader:
    """Read a Trans file lazily, in batches of at most `batch_rows` rows, in file order.

    Args:
        path: a `*_Trans.csv`, `.csv.gz` or `.csv.zst` file (compression is recognised by content).
        on_bad_rows: "raise" (the first bad row raises) or "quarantine" (bad rows are written to the
            quarantine file and skipped).
        quarantine_path: the quarantine file; default `<path>.quarantine.csv`.
        batch_rows: rows per batch at most; memory is bounded by it, not by the file size.
        limit_rows: read only the first N data rows of the file (good or bad), in file order.

    Returns:
        A TransactionReader; nothing is read until it is iterated.

    Raises:
        ConfigError: an invalid option.
        InputError: (during iteration) unreadable file, bad header, bad row in raise mode, no data.
    """
    if on_bad_rows not in ON_BAD_ROWS:
        raise ConfigError(f"on_bad_rows must be one of {ON_BAD_ROWS} (got {on_bad_rows!r})")
    if not isinstance(batch_rows, int) or batch_rows < 1:
        raise ConfigError(f"batch_rows must be a positive integer (got {batch_rows!r})")
    if limit_rows is not None and (not isinstance(limit_rows, int) or limit_rows < 1):
        raise ConfigError(f"limit_rows must be a positive integer or None (got {limit_rows!r})")
    return TransactionReader(path, on_bad_rows=on_bad_rows, quarantine_path=quarantine_path,
                             batch_rows=batch_rows, limit_rows=limit_rows)


_ACCOUNT_LABELS = ACCOUNTS_HEADER


def _account_checks() -> list[tuple[int, Check]]:
    bank = pl.col("_bank")
    return [(1, Check("bank", "bank id is not an integer from 0 to 9223372036854775807",
                      bank.is_not_null() & (bank >= 0))),
            (2, Check("account", "account is empty", pl.col("account").str.strip_chars().str.len_bytes() > 0))]


def read_accounts(path: Path) -> pl.DataFrame:
    """Read an accounts file whole (it is small: one row per account).

    Returns:
        Columns bank_name, bank (Int64), account, entity_id, entity_name, in file order.

    Raises:
        InputError: unreadable file, bad header, or a bad row (file, line, column, value).
    """
    path = Path(path)
    source = LineSource(path, block_bytes=16 << 20, columns=_ACCOUNT_LABELS)
    try:
        check_header(source.header, ACCOUNTS_HEADER, path, "accounts")
    except InputError:
        source.close()
        raise
    checks, parts = _account_checks(), []
    for buf, first_line, n_lines in source.blocks():
        # The same two paths as the transactions: Polars' CSV parser for plain blocks, the line
        # splitter for the rest; the same checks either way.
        fields = split_plain_block(buf, n_lines, ACCOUNTS_COLUMNS) if FAST_PATH else None
        if fields is not None:
            frame = fields.with_columns(line=pl.int_range(pl.len(), dtype=pl.Int64) + first_line,
                                        row=pl.lit(None, pl.Int64), _nfields=pl.lit(None, pl.Int64))
        else:
            frame = split_fields(
                pl.DataFrame([split_lines(buf)]).with_columns(line=pl.int_range(pl.len(), dtype=pl.Int64) + first_line)
                .filter(~pl.col("raw").is_in(BLANK_LINES)).with_columns(row=pl.lit(None, pl.Int64)),
                ACCOUNTS_COLUMNS)
        fields = classify(frame, checks, [pl.col("bank").cast(pl.Int64, strict=False).alias("_bank")])
        bad = fields.filter(pl.col("_bad") >= 0)
        if bad.height:
            if "raw" not in bad.columns:
                bad = bad.with_columns(raw=pl.concat_str(ACCOUNTS_COLUMNS, separator=","))
            raise_bad_row(describe_bad(bad, checks, _ACCOUNT_LABELS), path, hint="fix or remove the row")
        parts.append(fields.select(pl.col("bank_name"), pl.col("_bank").alias("bank"), pl.col("account"),
                                   pl.col("entity_id"), pl.col("entity_name")))
    if not parts:
        return pl.DataFrame(schema={"bank_name": pl.String, "bank": pl.Int64, "account": pl.String,
                                    "entity_id": pl.String, "entity_name": pl.String})
    return pl.concat(parts)
