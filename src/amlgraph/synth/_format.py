"""Rows of the generator as arrays, and their IBM text form (formatted in bulk by Polars)."""
from __future__ import annotations

import io
import queue
import threading
from dataclasses import dataclass, fields
from typing import Any, BinaryIO, Callable, Iterator

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


@dataclass
class TextFields:
    """What the Trans text of some rows needs, in output order, at the narrowest types.

    ``minutes`` counts from ``low`` (minutes since 1970); ``tail`` indexes the joined
    "<Payment Currency>,<Payment Format>,<Is Laundering>" text.
    """

    low: int
    minutes: np.ndarray
    src: np.ndarray
    dst: np.ndarray
    received: np.ndarray
    recv: np.ndarray
    paid: np.ndarray
    tail: np.ndarray

    @staticmethod
    def of(rows: Rows, order: np.ndarray | None = None) -> "TextFields":
        """The fields of ``rows.take(order)`` (all rows, in order, if ``order`` is None)."""
        def take(values: np.ndarray) -> np.ndarray:
            return values if order is None else values[order]

        low = int(rows.t.min()) if len(rows) else 0
        tail = (rows.pay.astype(np.uint32) * 14 + rows.fmt.astype(np.uint32) * 2
                + rows.label.astype(np.uint32))
        return TextFields(low, take((rows.t - low).astype(np.uint32)), take(rows.src.astype(np.uint32)),
                          take(rows.dst.astype(np.uint32)), take(rows.received),
                          take(rows.recv.astype(np.uint32)), take(rows.paid), take(tail))


class TransText:
    """Writes rows as IBM Trans lines, formatted in bulk by Polars.

    Each field becomes a column gathered from a small table (a Polars gather copies 16-byte
    views, and text of up to 12 bytes lives inside the view), amounts are formatted once as
    text (the received amount only where it differs from the paid one), and the last three
    fields are one pre-joined column; the CSV writer then only copies.
    Rows are formatted ``slice_rows`` at a time, so the text tables stay small.

    Args:
        banks: per account, its zero-padded bank id as written in Trans.csv.
        accounts: per account, its 9 hex characters.
        slice_rows: rows per formatted table (the text does not depend on it).
    """

    def __init__(self, banks: pl.Series, accounts: pl.Series, slice_rows: int = 1 << 16):
        self.banks, self.accounts, self.slice_rows = banks, accounts, slice_rows

    def frames(self, fields: TextFields) -> Iterator[pl.DataFrame]:
        """The Trans columns of ``fields``, ``slice_rows`` rows at a time."""
        f = fields
        n = f.minutes.size
        times = _minute_text(f.low, int(f.minutes.max()) + 1 if n else 0)
        for lo in range(0, max(n, 1), self.slice_rows):
            part = slice(lo, lo + self.slice_rows)
            paid_text = _amount_text(f.paid[part])
            received_text = paid_text                # equal amounts unless the currencies differ
            differs = np.flatnonzero(f.received[part] != f.paid[part])
            if differs.size:
                received_text = paid_text.clone()
                received_text.scatter(differs, _amount_text(f.received[part][differs]))
            yield pl.DataFrame([
                pick_text(times, f.minutes[part]).alias("c0"),
                pick_text(self.banks, f.src[part]).alias("c1"),
                pick_text(self.accounts, f.src[part]).alias("c2"),
                pick_text(self.banks, f.dst[part]).alias("c3"),
                pick_text(self.accounts, f.dst[part]).alias("c4"),
                received_text.alias("c5"),
                pick_text(_CURRENCY, f.recv[part]).alias("c6"),
                paid_text.alias("c7"),
                pick_text(_TAIL, f.tail[part]).alias("c8"),
            ])

    def write_fields(self, handle: BinaryIO, fields: TextFields) -> None:
        """Append the rows of ``fields`` to an open binary file as Trans lines (no header)."""
        for table in self.frames(fields):
            table.write_csv(handle, include_header=False, line_terminator="\n", quote_style="never")

    def write(self, handle: BinaryIO, rows: Rows, order: np.ndarray | None = None) -> None:
        """Append ``rows.take(order)`` to an open binary file as Trans lines (no header)."""
        self.write_fields(handle, TextFields.of(rows, order))

    def lines(self, rows: Rows) -> list[str]:
        """``rows`` as Trans lines, byte-identical to what :meth:`write` writes."""
        buffer = io.BytesIO()
        self.write(buffer, rows)
        return buffer.getvalue().decode("utf-8").splitlines()


def pick_text(table: pl.Series, index: np.ndarray) -> pl.Series:
    """``table`` at ``index`` (non-negative, below 2**32): indexing with a UInt32 Series is a
    direct gather, several times cheaper than ``Series.gather`` (which runs an expression)."""
    return table[pl.Series(index, dtype=pl.UInt32)]


def _minute_text(low: int, span: int) -> pl.Series:
    """Minutes ``low .. low + span - 1`` as ``%Y/%m/%d %H:%M`` text (a few thousand per chunk)."""
    return (pl.Series((low + np.arange(span, dtype=np.int64)) * _MINUTE_US)
            .cast(pl.Datetime("us")).dt.strftime(TIMESTAMP_FORMAT))


def _amount_text(amount: np.ndarray) -> pl.Series:
    """Amounts (already rounded to cents) as 2-decimal text, ``12.30``, via Polars' Decimal.

    Text of up to 12 characters (below a billion) lives inside the string view, so the CSV
    writer copies it far more cheaply than it formats a Decimal column.
    """
    return pl.Series(amount, dtype=pl.Float64).cast(pl.Decimal(20, 2)).cast(pl.String)


class Background:
    """Run ``consume(item)`` for each :meth:`put` item, in order, in one background thread.

    The caller prepares item k+1 while item k is consumed (NumPy and Polars release the GIL in
    their bulk work, and so does file output). :meth:`put` returns once the thread has taken the
    item, so at most two items are alive: one being consumed, one being prepared. An exception
    in ``consume`` is raised again by the next :meth:`put` or by :meth:`close`; leaving the
    ``with`` block always stops and joins the thread.

    Args:
        consume: called once per item, in the background thread.
    """

    _STOP = object()

    def __init__(self, consume: Callable[[Any], None]):
        self._consume = consume
        self._slot: queue.Queue = queue.Queue(maxsize=1)
        self._taken = threading.Semaphore(0)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="amlgraph-synth-writer", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while True:
            item = self._slot.get()
            self._taken.release()
            if item is self._STOP:
                return
            if self._error is None:          # after a failure, take items without consuming
                try:
                    self._consume(item)
                except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread
                    self._error = exc
            del item                         # free it before waiting for the next one

    def _check(self) -> None:
        if self._error is not None:
            raise self._error

    def put(self, item: Any) -> None:
        """Hand ``item`` over (waits until the previous one is consumed); raise a failure."""
        self._check()
        self._slot.put(item)
        self._taken.acquire()

    def _stop(self) -> None:
        if self._thread.is_alive():
            self._slot.put(self._STOP)
            self._taken.acquire()
            self._thread.join()

    def close(self) -> None:
        """Wait until every item is consumed and stop the thread; raise a background failure."""
        self._stop()
        self._check()

    def __enter__(self) -> "Background":
        return self

    def __exit__(self, kind, value, traceback) -> None:
        if kind is None:
            self.close()
        else:                                # the caller failed: stop, keep its exception
            self._stop()
