"""Fields and typing of transaction lines: vectorised checks, one reason per bad row.

Every line is split into its 11 fields (by position), each field is cast with a non-strict Polars
cast, and a row is bad when a field fails its check. The first failing check in column order is
the row's reason. Only lines that contain a double quote go through Python's csv module (the IBM
files contain none), so the common path has no per-row Python code.
"""
from __future__ import annotations

import csv
import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import polars as pl

from amlgraph.errors import InputError
from amlgraph.schema import PAYMENT_FORMATS, TIMESTAMP_FORMAT, TRANS_HEADER

# Header names are ambiguous (two "Account"): errors name the column with its role.
TRANS_LABELS = tuple(
    {2: "Account (sender)", 4: "Account (receiver)"}.get(i, name) for i, name in enumerate(TRANS_HEADER)
)
TS_MIN, TS_MAX = dt.datetime(1970, 1, 1), dt.datetime(2100, 1, 1)
_TS_PATTERN = r"^\d{4}/\d{2}/\d{2} \d{2}:\d{2}$"
BAD_ROW_HINT = "fix or remove the row, or rerun with --on-bad-rows quarantine to skip and record bad rows"
_NUMBER_HINT = "a plain decimal number such as 1234.56 (no thousands separators)"
#: The largest amount accepted. Features square amounts (std, scaling) and add them over rows:
#: from ~1.3e154 on a square overflows float64 (NaN features). At 1e100 a square is 1e200, which
#: leaves room for sums over any number of rows and for exchange-rate conversion.
AMOUNT_MAX = 1e100


@dataclass(frozen=True)
class Check:
    """One validation rule: the field it reads, the reason printed when `ok` is false."""

    field: str | None
    reason: str
    ok: pl.Expr


def split_fields(lines: pl.DataFrame, names: tuple[str, ...]) -> pl.DataFrame:
    """Split each `raw` line into len(names) String columns.

    Args:
        lines: frame with `raw` (the line, terminator kept) and any other columns, kept as they are.
        names: the output names of the fields, by position.

    Returns:
        `lines` plus one String column per name (null when the line has too few fields) and
        `_nfields` (Int64): the number of fields, null when it is right.
    """
    quoted = lines["raw"].str.contains('"', literal=True)
    if quoted.any():
        plain = _split_plain(lines.filter(~quoted), names)
        parsed = _split_quoted(lines.filter(quoted), names)
        order = pl.concat([lines.with_row_index("_i").filter(~quoted)["_i"],
                           lines.with_row_index("_i").filter(quoted)["_i"]])
        return pl.concat([plain, parsed], how="vertical").with_columns(_i=order).sort("_i").drop("_i")
    return _split_plain(lines, names)


def _split_plain(lines: pl.DataFrame, names: tuple[str, ...]) -> pl.DataFrame:
    n = len(names)
    fields = lines["raw"].str.splitn(",", n).struct.rename_fields(list(names)).struct.unnest()
    last = names[-1]
    fields = fields.with_columns(pl.col(last).str.strip_chars_end("\r\n"))
    wrong = pl.col(last).is_null() | pl.col(last).str.contains(",", literal=True)
    out = pl.concat([lines, fields], how="horizontal")
    # The count itself is computed for bad rows only (describe_bad): -2 marks "wrong, not counted".
    return out.with_columns(_nfields=pl.when(wrong).then(pl.lit(-2, pl.Int64)))


def _split_quoted(lines: pl.DataFrame, names: tuple[str, ...]) -> pl.DataFrame:
    """Lines with quotes: standard CSV quoting within one line (the rare path, a loop over these only)."""
    n = len(names)
    rows, counts = [], []
    for text in lines["raw"].str.strip_chars_end("\r\n").to_list():
        try:
            fields = next(csv.reader([text], strict=True), [])
        except csv.Error:
            fields = []  # an unterminated quote: the value runs past the end of the line
        counts.append(None if len(fields) == n else (len(fields) or -1))
        rows.append(fields if len(fields) == n else [None] * n)
    fields = pl.DataFrame(rows, schema={name: pl.String for name in names}, orient="row")
    return pl.concat([lines, fields], how="horizontal").with_columns(_nfields=pl.Series(counts, dtype=pl.Int64))


def _nonempty(col: str) -> pl.Expr:
    # Not only whitespace: stripping the start alone decides it, and costs less than both ends.
    return pl.col(col).str.strip_chars_start().str.len_bytes() > 0


def trans_parse() -> list[pl.Expr]:
    """Non-strict casts of the transaction fields, once per batch (null where a cast fails)."""
    exprs = [pl.col("timestamp").str.strptime(pl.Datetime("us"), TIMESTAMP_FORMAT, strict=False).alias("_timestamp")]
    exprs += [pl.col(c).cast(pl.Int64, strict=False).alias(f"_{c}") for c in ("from_bank", "to_bank")]
    exprs += [pl.col(c).cast(pl.Float64, strict=False).alias(f"_{c}") for c in ("amount_received", "amount_paid")]
    return exprs


def trans_checks() -> list[tuple[int, Check]]:
    """The transaction rules, in column order, each with the column position it reports.

    They read the parsed columns of `trans_parse` (`_timestamp`, `_from_bank`, ...).
    """
    ts = pl.col("_timestamp")
    checks: list[tuple[int, Check]] = [
        (0, Check("timestamp", "timestamp is not a valid date and time as YYYY/MM/DD HH:MM",
                  pl.col("timestamp").str.contains(_TS_PATTERN) & ts.is_not_null())),
        (0, Check("timestamp", "timestamp out of range (expected years 1970 to 2099)",
                  (ts >= TS_MIN) & (ts < TS_MAX))),
    ]
    for pos, col in ((1, "from_bank"), (2, "from_account"), (3, "to_bank"), (4, "to_account"),
                     (5, "amount_received"), (6, "receiving_currency"), (7, "amount_paid"),
                     (8, "payment_currency")):
        if col.endswith("bank"):
            value = pl.col(f"_{col}")
            checks.append((pos, Check(col, "bank id is not an integer from 0 to 9223372036854775807",
                                      value.is_not_null() & (value >= 0))))
        elif col.endswith("account"):
            checks.append((pos, Check(col, "account is empty", _nonempty(col))))
        elif col.startswith("amount"):
            value = pl.col(f"_{col}")
            checks += [(pos, Check(col, f"amount is not a number, expected {_NUMBER_HINT}", value.is_not_null())),
                       (pos, Check(col, "amount is not finite (NaN or infinite)", value.is_finite())),
                       (pos, Check(col, "amount is negative", value >= 0)),
                       (pos, Check(col, f"amount is above the limit of {AMOUNT_MAX:g} (larger amounts overflow "
                                   "the float64 arithmetic of the features)", value <= AMOUNT_MAX))]
        else:
            checks.append((pos, Check(col, "currency is empty", _nonempty(col))))
    checks += [
        # Equality tests rather than is_in: the same result, without hashing every value.
        (9, Check("payment_format", "unknown payment format, expected one of " + ", ".join(PAYMENT_FORMATS),
                  pl.any_horizontal(pl.col("payment_format") == name for name in PAYMENT_FORMATS))),
        (10, Check("is_laundering", "label is not 0 or 1",
                   (pl.col("is_laundering") == "0") | (pl.col("is_laundering") == "1"))),
    ]
    return checks


def classify(fields: pl.DataFrame, checks: list[tuple[int, Check]], parse: list[pl.Expr]) -> pl.DataFrame:
    """Add the parsed columns and `_bad` (Int32): -1 for a good row, else the index of its reason.

    Index 0 is a wrong number of fields; index i >= 1 is checks[i - 1] (see `describe_bad`).
    """
    fields = fields.with_columns(parse)
    oks = [check.ok.fill_null(True).alias(f"_ok{i}") for i, (_, check) in enumerate(checks)]
    code = pl.when(pl.col("_nfields").is_not_null()).then(pl.lit(0, pl.Int32))
    for i in range(len(checks)):
        code = code.when(~pl.col(f"_ok{i}")).then(pl.lit(i + 1, pl.Int32))
    return (fields.with_columns(oks).with_columns(_bad=code.otherwise(pl.lit(-1, pl.Int32)))
            .drop([f"_ok{i}" for i in range(len(checks))]))


def describe_bad(bad: pl.DataFrame, checks: list[tuple[int, Check]], labels: tuple[str, ...]) -> pl.DataFrame:
    """The bad rows of a classified frame as (line, row, column, reason, value, text)."""
    n = len(labels)
    counted = pl.col("raw").str.strip_chars_end("\r\n").str.count_matches(",", literal=True) + 1
    bad = bad.with_columns(_nfields=pl.when(pl.col("_nfields") == -2).then(counted).otherwise(pl.col("_nfields")))
    nf = pl.col("_nfields")
    count_reason = (pl.when(nf == -1).then(pl.lit("unterminated quoted field"))
                    .otherwise(pl.format(f"expected {n} comma-separated fields, found {{}}", nf)
                               + pl.when(nf > n).then(pl.lit(" (an unquoted comma inside a value?)"))
                               .otherwise(pl.lit(" (a truncated line?)"))))
    # The first missing column of a short line, for the error to point at.
    missing = pl.lit(None, pl.String)
    for i in range(n - 1, 0, -1):
        missing = pl.when(nf == i).then(pl.lit(labels[i])).otherwise(missing)
    reason, column, value = count_reason, missing, pl.lit(None, pl.String)
    for i, (pos, check) in enumerate(checks, start=1):
        hit = pl.col("_bad") == i
        reason = pl.when(hit).then(pl.lit(check.reason)).otherwise(reason)
        column = pl.when(hit).then(pl.lit(labels[pos])).otherwise(column)
        value = pl.when(hit).then(pl.col(check.field)).otherwise(value)
    return bad.select(
        pl.col("line").cast(pl.Int64), pl.col("row").cast(pl.Int64), column.alias("column"),
        reason.alias("reason"), value.alias("value"),
        pl.col("raw").str.strip_chars_end("\r\n").alias("text"))


def typed_trans(good: pl.DataFrame) -> pl.DataFrame:
    """The reader output columns of docs/ARCHITECTURE.md from a classified frame's good rows."""
    return good.select(
        pl.col("row").cast(pl.Int64),
        pl.col("_timestamp").dt.epoch("s").cast(pl.Int64).alias("timestamp"),
        pl.col("_from_bank").alias("from_bank"), pl.col("from_account"),
        pl.col("_to_bank").alias("to_bank"), pl.col("to_account"),
        pl.col("_amount_received").abs().alias("amount_received"),  # good rows are >= 0: only -0.0 changes
        pl.col("receiving_currency"),
        pl.col("_amount_paid").abs().alias("amount_paid"),
        pl.col("payment_currency"), pl.col("payment_format"),
        pl.col("is_laundering").cast(pl.Int8),
    )


def raise_bad_row(described: pl.DataFrame, path: Path, hint: str = BAD_ROW_HINT) -> None:
    """Raise the InputError of the first row of a `describe_bad` frame."""
    first = described.row(0, named=True)
    value = first["value"] if first["value"] is not None else (
        first["text"] if first["reason"].startswith("expected") else None)
    raise InputError(first["reason"], path=str(path), line=first["line"], column=first["column"],
                     value=value, hint=hint)
