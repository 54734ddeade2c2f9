"""The `*_Patterns.txt` file: laundering attempts as blocks of transaction lines, and their matching.

A block is `BEGIN LAUNDERING ATTEMPT - TYPOLOGY[: qualifier]`, transaction lines in the Trans
format (no header), `END LAUNDERING ATTEMPT - TYPOLOGY`. The structure is checked with cumulative
sums over the lines, not with a per-line state machine.
"""
from __future__ import annotations

from pathlib import Path

import polars as pl

from amlgraph.errors import InputError
from amlgraph.ingest._lines import BLANK_LINES, LineSource
from amlgraph.ingest._validate import (
    TRANS_LABELS, classify, describe_bad, raise_bad_row, split_fields, trans_checks, trans_parse,
    typed_trans,
)
from amlgraph.schema import TRANS_COLUMNS, TYPOLOGIES

BEGIN = "BEGIN LAUNDERING ATTEMPT - "
END = "END LAUNDERING ATTEMPT - "
PATTERN_COLUMNS = ("attempt_id", "typology", "qualifier", "line") + TRANS_COLUMNS
_HINT = "each block is BEGIN LAUNDERING ATTEMPT - TYPOLOGY[: qualifier], its lines, END LAUNDERING ATTEMPT - TYPOLOGY"


def _empty() -> pl.DataFrame:
    schema = {"attempt_id": pl.Int32, "typology": pl.String, "qualifier": pl.String, "line": pl.Int64}
    for col in TRANS_COLUMNS:
        schema[col] = (pl.Int64 if col in ("timestamp", "from_bank", "to_bank") else pl.Float64
                       if col.startswith("amount") else pl.Int8 if col == "is_laundering" else pl.String)
    return pl.DataFrame(schema=schema)


def read_patterns(path: Path) -> pl.DataFrame:
    """Read a patterns file whole (it is small: a few thousand lines).

    Returns:
        One row per transaction line of a block: attempt_id (Int32, 0.. in file order), typology,
        qualifier ("" when absent), line (Int64, the 1-based line in the file), and the reader
        columns of docs/ARCHITECTURE.md except `row`.

    Raises:
        InputError: unreadable file, a malformed block or an invalid transaction line.
    """
    path = Path(path)
    parts = [pl.DataFrame([lines]).with_columns(line=pl.int_range(pl.len(), dtype=pl.Int64) + first)
             for lines, first in LineSource(path, block_bytes=16 << 20, columns=TRANS_LABELS, has_header=False)]
    if not parts:
        return _empty()
    frame = pl.concat(parts).filter(~pl.col("raw").is_in(BLANK_LINES))
    text = pl.col("raw").str.strip_chars_end("\r\n")
    frame = frame.with_columns(
        begin=text.str.starts_with(BEGIN), end=text.str.starts_with(END),
        head=pl.when(text.str.starts_with(BEGIN)).then(text.str.strip_prefix(BEGIN))
        .when(text.str.starts_with(END)).then(text.str.strip_prefix(END)),
    ).with_columns(
        typology=pl.col("head").str.split_exact(":", 1).struct.field("field_0").str.strip_chars(),
        qualifier=pl.col("head").str.split_exact(":", 1).struct.field("field_1").str.strip_chars().fill_null(""),
        opened=pl.col("begin").cum_sum(), closed=pl.col("end").cum_sum(),
    ).with_columns(
        block=pl.when(pl.col("begin")).then(pl.col("typology")).forward_fill(),
        depth=pl.col("opened") - pl.col("closed"),
    )
    _check_blocks(frame, path)
    data = frame.filter(~pl.col("begin") & ~pl.col("end")).with_columns(row=pl.lit(None, pl.Int64))
    checks = trans_checks()
    fields = classify(split_fields(data, TRANS_COLUMNS), checks, trans_parse())
    bad = fields.filter(pl.col("_bad") >= 0)
    if bad.height:
        raise_bad_row(describe_bad(bad, checks, TRANS_LABELS), path, hint="fix or remove the line")
    heads = frame.filter("begin").select(
        attempt_id=(pl.col("opened") - 1).cast(pl.Int32), typology="typology", qualifier="qualifier")
    typed = typed_trans(fields).drop("row")
    out = pl.concat([fields.select((pl.col("opened") - 1).cast(pl.Int32).alias("attempt_id"), "line"), typed],
                    how="horizontal")
    return out.join(heads, on="attempt_id", how="left").select(PATTERN_COLUMNS)


def _check_blocks(frame: pl.DataFrame, path: Path) -> None:
    """Raise at the first line that breaks the BEGIN / lines / END structure."""
    known = pl.col("typology").is_in(TYPOLOGIES)
    problems = frame.with_columns(problem=(
        pl.when(pl.col("begin") & (pl.col("depth") != 1)).then(pl.lit("BEGIN inside an open block (missing END?)"))
        .when(pl.col("end") & (pl.col("depth") != 0)).then(pl.lit("END without a BEGIN"))
        .when((pl.col("begin") | pl.col("end")) & ~known)
        .then(pl.lit("unknown typology, expected one of " + ", ".join(TYPOLOGIES)))
        .when(pl.col("end") & (pl.col("typology") != pl.col("block")))
        .then(pl.format("END typology differs from its BEGIN ({})", pl.col("block")))
        .when(~pl.col("begin") & ~pl.col("end") & (pl.col("depth") != 1))
        .then(pl.lit("line outside a BEGIN/END LAUNDERING ATTEMPT block"))
    )).filter(pl.col("problem").is_not_null())
    if problems.height:
        first = problems.row(0, named=True)
        raise InputError(first["problem"], path=str(path), line=first["line"],
                         value=first["raw"].rstrip("\r\n"), hint=_HINT)
    if frame.height and frame["depth"][-1] != 0:
        last_begin = frame.filter("begin").row(-1, named=True)
        raise InputError("block has no END line before the end of the file", path=str(path),
                         line=last_begin["line"], value=last_begin["raw"].rstrip("\r\n"), hint=_HINT)


def match_pattern_lines(transactions: pl.DataFrame, patterns: pl.DataFrame) -> pl.DataFrame:
    """(row, attempt_id, typology, line) for every pair of equal transaction and pattern line."""
    return (transactions.select("row", *TRANS_COLUMNS)
            .join(patterns.select("attempt_id", "typology", "line", *TRANS_COLUMNS), on=list(TRANS_COLUMNS),
                  how="inner")
            .select("row", "attempt_id", "typology", "line"))


def match_patterns(transactions: pl.DataFrame, patterns: pl.DataFrame) -> pl.DataFrame:
    """Attach laundering attempts to transaction rows.

    Args:
        transactions: reader output (at least `row` and the 11 typed fields).
        patterns: output of `read_patterns`.

    Returns:
        (row Int64, attempt_id Int32, typology String), one row per (row, attempt) whose 11 typed
        fields are equal, sorted by row then attempt_id. Identical duplicate transactions all match.
    """
    return (match_pattern_lines(transactions, patterns).select("row", "attempt_id", "typology").unique()
            .sort("row", "attempt_id"))
