"""Step ``edge_features``: per-transaction features and labels, one output row per input row.

Every value depends on its own row only (and on ``t0``, the vocabulary), so any row chunking gives
the same result. Definitions: docs/FEATURES.md.
"""
from __future__ import annotations

import numpy as np
import polars as pl

from amlgraph.errors import InputError
from amlgraph.steps._contract import (
    Chunk,
    Inputs,
    Output,
    Step,
    StepContext,
    chunk_name,
    parts_value,
)
from amlgraph.steps._layout import coded_chunks
from amlgraph.steps.currency import NEVER, priced_from_array, rate_array
from amlgraph.steps.lookup import positions

#: The seed's 12 features, in order (the bank is stored as its code: ``from_bank_code``).
SEED_EDGE_FEATURES = (
    "hour_sin", "hour_cos", "weekday_sin", "weekday_cos", "month_sin", "month_cos",
    "log_amount_paid", "log_amount_received", "paid_received_ratio",
    "payment_currency", "payment_format", "from_bank_code",
)
#: IBM Multi-GNN's edge features not already above (its Payment Format is ``payment_format``).
MULTI_GNN_EDGE_FEATURES = ("timestamp_rel", "amount_received", "receiving_currency")
#: Flags, 0 or 1 (``unpriced``: a side's amount has no US Dollar rate usable in the row's split,
#: so ``paid_received_ratio`` is 1.0 by convention).
FLAG_EDGE_FEATURES = ("same_bank", "cross_currency", "self_transfer", "unpriced")
#: Codes into the vocabularies: one-hot or embed them, never scale them.
CATEGORICAL_EDGE_FEATURES = ("payment_currency", "payment_format", "from_bank_code",
                             "receiving_currency")
#: All feature columns of :func:`edge_features`, in order (between ``row`` and ``label``).
EDGE_FEATURES = SEED_EDGE_FEATURES + MULTI_GNN_EDGE_FEATURES + FLAG_EDGE_FEATURES

_TWO_PI = 2.0 * np.pi


def edge_features(tx: pl.DataFrame, *, t0: int, vocab: dict, usd_per_unit: dict | None = None,
                  priced_from: dict | None = None) -> pl.DataFrame:
    """Compute the edge features of a chunk of coded transactions.

    Args:
        tx: coded transactions with ``split`` (see docs/ARCHITECTURE.md), shape (n_rows, 13).
        t0: the reference time in epoch seconds (e.g. the first transaction's day at 00:00);
            ``timestamp_rel = timestamp - t0``.
        vocab: the vocabularies; ``vocab["banks"]`` numbers the sending banks.
        usd_per_unit: USD per unit of each currency code (None: no rate), from ``split_rates``;
            None for raw amounts (currency="raw": ``paid_received_ratio = paid / max(received, 1)``).
        priced_from: first split that may use each rate (``split_rates``); a row uses a rate only
            from that split on, so a training row's features use training rows' rates only.

    Returns:
        Frame of shape (n_rows, 3 + len(EDGE_FEATURES)), rows in input order: ``row``, the
        features of :data:`EDGE_FEATURES`, ``label`` (Int8, = is_laundering), ``split`` (Int8).
        Cyclic and amount features Float64, codes Int16 (``from_bank_code`` Int32),
        ``timestamp_rel`` Int64, flags Int8.

    Raises:
        InputError: a sending bank is not in ``vocab["banks"]``.
    """
    from_bank = tx["from_bank"].to_numpy()
    code = positions(np.asarray(vocab["banks"], dtype=np.int64), from_bank)
    if len(code) and code.min() < 0:
        bad = from_bank[np.argmax(code < 0)]
        raise InputError("sending bank not in the bank vocabulary", column="from_bank",
                         value=str(bad), hint="build the vocabulary from every chunk first")
    ts = pl.col("timestamp")
    hour = ((ts // 3600) % 24).cast(pl.Float64)
    weekday = ((ts // 86_400 + 3) % 7).cast(pl.Float64)  # 1970-01-01 was a Thursday; Monday = 0
    month = pl.from_epoch(ts, time_unit="s").dt.month().cast(pl.Float64)  # 1..12
    paid, received = pl.col("amount_paid"), pl.col("amount_received")
    if usd_per_unit is None:
        ratio, unpriced = paid / pl.max_horizontal(received, pl.lit(1.0)), pl.lit(0, pl.Int8)
    else:
        n_cur = len(vocab["currencies"])
        rates = rate_array(usd_per_unit, n_cur)
        since = priced_from_array(priced_from, n_cur)
        since[~np.isfinite(rates)] = NEVER
        pay_cur = tx["payment_currency"].to_numpy().astype(np.int64)
        rec_cur = tx["receiving_currency"].to_numpy().astype(np.int64)
        split = tx["split"].to_numpy()
        usable = (since[pay_cur] <= split) & (since[rec_cur] <= split)
        with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
            paid_usd = tx["amount_paid"].to_numpy() * rates[pay_cur]
            recv_usd = tx["amount_received"].to_numpy() * rates[rec_cur]
            value = np.where(usable & (recv_usd > 0), paid_usd / np.where(recv_usd > 0, recv_usd, 1.0), 1.0)
        ratio = pl.lit(pl.Series(value, dtype=pl.Float64))
        unpriced = pl.lit(pl.Series((~usable).astype(np.int8)))
    return tx.select(
        pl.col("row").cast(pl.Int64),
        (hour * (_TWO_PI / 24)).sin().alias("hour_sin"),
        (hour * (_TWO_PI / 24)).cos().alias("hour_cos"),
        (weekday * (_TWO_PI / 7)).sin().alias("weekday_sin"),
        (weekday * (_TWO_PI / 7)).cos().alias("weekday_cos"),
        (month * (_TWO_PI / 12)).sin().alias("month_sin"),
        (month * (_TWO_PI / 12)).cos().alias("month_cos"),
        paid.log1p().alias("log_amount_paid"),
        received.log1p().alias("log_amount_received"),
        ratio.alias("paid_received_ratio"),
        pl.col("payment_currency").cast(pl.Int16),
        pl.col("payment_format").cast(pl.Int16),
        pl.Series("from_bank_code", code, dtype=pl.Int32),
        (ts - int(t0)).cast(pl.Int64).alias("timestamp_rel"),
        received.cast(pl.Float64).alias("amount_received"),
        pl.col("receiving_currency").cast(pl.Int16),
        (pl.col("from_bank") == pl.col("to_bank")).cast(pl.Int8).alias("same_bank"),
        (pl.col("payment_currency") != pl.col("receiving_currency")).cast(pl.Int8).alias("cross_currency"),
        (pl.col("src") == pl.col("dst")).cast(pl.Int8).alias("self_transfer"),
        unpriced.alias("unpriced"),
        pl.col("is_laundering").cast(pl.Int8).alias("label"),
        pl.col("split").cast(pl.Int8),
    )


# --- the step -----------------------------------------------------------------------------------
def edge_chunk(inputs: Inputs, *, data_chunk: str, t0: int, vocab: dict, usd_per_unit: dict | None = None,
               priced_from: dict | None = None) -> Output:
    """Per-transaction features and labels of one coded chunk."""
    tx = inputs.load(data_chunk).table("transactions")
    rates = None if usd_per_unit is None else {int(k): v for k, v in usd_per_unit.items()}
    since = None if priced_from is None else {int(k): v for k, v in priced_from.items()}
    feats = edge_features(tx, t0=t0, vocab=vocab, usd_per_unit=rates, priced_from=since)
    return Output(tables={"features": feats}, metadata={"rows": feats.height, "num_features": feats.width})


def compute(ctx: StepContext) -> Output:
    """One chunk per coded data chunk; the step checkpoint lists them and the feature columns."""
    data = ctx.step("data_loaded")
    vocab, t0 = data.value("vocab"), data.value("t0")
    usd = ctx.params["currency"] != "raw"
    pricing = {"usd_per_unit": data.value("usd_per_unit") if usd else None,
               "priced_from": data.value("priced_from") if usd else None}
    chunks = [Chunk(chunk_name("edge_features", i), i, {"data": name},
                    {"data_chunk": name, "t0": t0, "vocab": vocab, **pricing})
              for i, name in enumerate(coded_chunks(data))]
    parts = ctx.run_chunks("edge_features", f"{__name__}:edge_chunk", chunks)
    first = ctx.inputs.scan([parts[0].name], "features").collect_schema().names()
    return Output(values={"columns": [c for c in first if c not in ("row", "label", "split")],
                          "parts": parts_value(parts)},
                  metadata={"num_chunks": len(parts)})


STEP = Step("edge_features", "Creating Edge Features", reads=("data_loaded",), params=("currency",),
            code=(), compute=compute)
