"""Rows of the generator as arrays, and their IBM text form (formatted in bulk by Polars)."""
from __future__ import annotations

import io
from dataclasses import dataclass, fields
from typing import BinaryIO

import numpy as np
import polars as pl

from amlgraph.schema import CURRENCIES, PAYMENT_FORMATS, TIMESTAMP_FORMAT, TRANS_HEADER

_CURRENCY = pl.Series(CURRENCIES, dtype=pl.String)
# "<Payment Currency>,<Payment Format>,<Is Laundering>" at index currency * 14 + format * 2 + label
_TAIL = pl.Series([f"{c},{f},{y}" for c in CURRENCIES for f in PAYMENT_FORMATS for y in (0, 1)])
_MINUTE_US = 60_000_000
HEADER_LINE = ",".join(TRANS_HEADER) + "\n"


@dataclass
class Rows:
    """Transactions as parallel arrays, each of shape (n,).

    ``t`` is minutes since 1970-01-01 00:00; ``src``/``dst`` are account indices of the world;
    ``pay``/``recv`` currency codes; ``fmt`` payment-format code; ``paid``/``received`` amounts
    already rounded to cents; ``label`` 1 for laundering.
    """

    t: np.ndarray
    src: np.ndarray
    dst: np.ndarray
    pay: np.ndarray
    recv: np.ndarray
    fmt: np.ndarray
    paid: np.ndarray
    received: np.ndarray
    label: np.ndarray

    def __len__(self) -> int:
        return int(self.t.size)

    def take(self, index: np.ndarray) -> "Rows":
        """Rows at ``index`` (an integer array or boolean mask)."""
        return Rows(*(getattr(self, f.name)[index] for f in fields(self)))

    @staticmethod
    def concat(parts: list["Rows"]) -> "Rows":
        """Concatenate rows in the given order."""
        return Rows(*(np.concatenate([getattr(p, f.name) for p in parts]) for f in fields(Rows)))


def party_text(bank_of: np.ndarray, bank_text: pl.Series, account_text: pl.Series) -> pl.Series:
    """Per account, the two Trans fields ``<padded bank>,<account>`` as one string."""
    return pl.DataFrame({"b": bank_text.gather(pl.Series(bank_of, dtype=pl.Int64)), "a": account_text}).select(
        pl.concat_str("b", "a", separator=","))["b"]


def frame(rows: Rows, party: pl.Series) -> pl.DataFrame:
    """The Trans columns of ``rows``, some fields pre-joined with commas (write unquoted).

    Fewer, wider columns make the CSV writer several times cheaper; the text is the same.

    Args:
        rows: the rows to format.
        party: per account, ``<padded bank>,<account>`` (see :func:`party_text`).
    """
    tail = (pl.Series(rows.pay.astype(np.int64) * 14 + rows.fmt.astype(np.int64) * 2
                      + rows.label.astype(np.int64)))
    return pl.DataFrame([
        _timestamps(rows.t).alias("c0"),
        party.gather(pl.Series(rows.src, dtype=pl.Int64)).alias("c1"),
        party.gather(pl.Series(rows.dst, dtype=pl.Int64)).alias("c3"),
        _cents(rows.received).alias("c5"),
        _CURRENCY.gather(rows.recv.astype(np.int64)).alias("c6"),
        _cents(rows.paid).alias("c7"),
        _TAIL.gather(tail).alias("c8"),
    ])


def _timestamps(t: np.ndarray) -> pl.Series:
    """Minutes as ``%Y/%m/%d %H:%M`` text: each distinct minute is formatted once, then gathered."""
    if t.size == 0:
        return pl.Series([], dtype=pl.String)
    low = int(t.min())
    table = (pl.Series(np.arange(low, int(t.max()) + 1, dtype=np.int64) * _MINUTE_US)
             .cast(pl.Datetime("us")).dt.strftime(TIMESTAMP_FORMAT))
    return table.gather(pl.Series(t - low, dtype=pl.Int64))


def _cents(amount: np.ndarray) -> pl.Series:
    """Amounts (already rounded to cents) as a 2-decimal Decimal column: written as ``12.30``."""
    return pl.Series(amount, dtype=pl.Float64).cast(pl.Decimal(20, 2))


def write_rows(handle: BinaryIO, table: pl.DataFrame) -> None:
    """Append ``table`` to an open binary file as IBM Trans lines (no header)."""
    table.write_csv(handle, include_header=False, line_terminator="\n", quote_style="never")


def lines(table: pl.DataFrame) -> list[str]:
    """``table`` as IBM Trans lines, byte-identical to what :func:`write_rows` writes."""
    buffer = io.BytesIO()
    write_rows(buffer, table)
    return buffer.getvalue().decode("utf-8").splitlines()
