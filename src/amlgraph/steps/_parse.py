"""data_loaded's first phase: every Trans file parsed into typed batches, one checkpoint each.

A file's batches are keyed by the file's fingerprint and the reader's code, not by the step's
key: a file added to the data directory leaves the parsing of the earlier ones valid.

A plain file is parsed by byte ranges (``ingest.plan_ranges``): one chunk task per range, run by
the run's executor like every chunked phase (threads, worker processes or Dask), each saving its
own checkpoint. A range stores its rows with ids counted from its first row; the ids of the file
are that plus the range's ``row_offset`` (the data rows of the files and ranges before it), which
the file's marker records and ``data_loaded`` adds when it encodes. A compressed file, or a run
limited to the first rows (``sample_size``), is read as one stream by the streaming reader, whose
batches hold the file's row ids (offset 0).
"""
from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import numpy as np
import polars as pl

from amlgraph.errors import InputError
from amlgraph.steps._accounts import KEY_COLUMNS, drop_keyed_accounts, with_account_keys
from amlgraph.steps._contract import (
    Chunk,
    Output,
    Part,
    StepContext,
    chunk_name,
)
from amlgraph.steps._layout import READ

SECONDS_PER_DAY = 86_400


#: What a reader batch checkpoint holds (the rows; since 2 their summary; since 3 no account
#: column whose rows all have keys, and no compression; since 4 the rate pairs' timestamps; since
#: 5 byte ranges, rows counted from the range, and ``row_offset`` in the marker; since 6 zstd
#: Parquet and a compressed ``keys`` array). Part of its key: bump it when that
#: changes, so that batches parsed by an older version are parsed again. (The key's code version
#: covers the reader and the batch functions of this step, not the rest of this module.)
READ_FORMAT = 6
#: The modules whose code shapes a reader batch (the batch checkpoints' code version).
READER_CODE = ("amlgraph.ingest", "amlgraph.steps._accounts", "amlgraph.schema", "amlgraph.steps._parse")


def read_files(ctx: StepContext, chunk_rows: int) -> dict:
    """Parse every Trans file into raw typed batches, one checkpoint each.

    A file whose batches are all checkpointed under the same key is not parsed again, so a file
    added to the data directory (the next day's transactions) costs only its own parsing here.
    Row ids run on across files: a file's first row id is the number of rows before it.
    """
    parts: list[Part] = []
    markers: list[Part] = []
    offsets: list[int] = []
    rows = bad = offset = next_chunk = 0
    quarantine = []
    remaining = ctx.params["sample_size"]
    reader_code = ctx.code_version(*READER_CODE)
    for j, path in enumerate(ctx.files.trans_files):
        if remaining is not None and remaining <= 0:
            break
        plan = {"own_key": True, "file": ctx.fingerprints["trans" if j == 0 else f"trans_{j}"],
                "offset": offset, "first_chunk": next_chunk, "limit": remaining,
                "on_bad_rows": ctx.params["on_bad_rows"], "chunk_rows": chunk_rows,
                "code": reader_code, "format": READ_FORMAT}
        marker = Chunk(f"{READ}_{j}", -1, plan, {})
        got = _parsed(ctx, marker)
        if got is None:
            got = _parse(ctx, marker, path, plan)
        else:
            ctx.ok(f"{path.name}: already parsed ({got['rows']:,} rows)")
        parts += [Part(p["name"], p["key"]) for p in got["parts"]]
        markers.append(Part(marker.name, ""))
        offsets += [p["row_offset"] for p in got["parts"]]
        next_chunk += got["chunks"]  # a range without rows is no part but keeps its chunk name
        rows += got["rows"]
        bad += got["bad_rows"]
        offset += got["file_rows"]
        quarantine += [got["quarantine"]] if got["quarantine"] else []
        if remaining is not None:
            remaining -= got["file_rows"]
    if rows == 0:
        raise InputError("no valid transaction rows to build a graph from", path=str(ctx.files.trans),
                         hint="check the file, or the --sample-size and --on-bad-rows options")
    if bad:
        ctx.warn(f"{bad:,} bad rows quarantined to {', '.join(quarantine)}")
    return {"rows": rows, "bad_rows": bad, "quarantine": quarantine or None, "parts": parts,
            "markers": markers, "row_offsets": offsets}


def _parse(ctx: StepContext, marker: Chunk, path: Any, plan: dict) -> dict:
    """Parse one file: by byte ranges when it is plain and read whole, else as one stream."""
    from amlgraph.ingest import plan_ranges

    if plan["limit"] is not None:
        ctx.info(f"{path.name}: read as one stream (a sample reads only the first "
                 f"{plan['limit']:,} rows)")
        return _parse_file(ctx, marker, path, plan)
    ranges = plan_ranges(path, plan["chunk_rows"])
    if ranges is None:
        ctx.info(f"{path.name}: compressed, read as one stream (byte ranges need a plain file)")
        return _parse_file(ctx, marker, path, plan)
    return _parse_ranges(ctx, marker, path, plan, ranges)


def _parse_ranges(ctx: StepContext, marker: Chunk, path: Any, plan: dict, ranges: Any) -> dict:
    """Parse the byte ranges of a plain file as chunk tasks, then number their lines and rows."""
    from amlgraph.ingest import write_quarantine

    first = plan["first_chunk"]
    key_plan = {"own_key": True, "file": plan["file"], "first_chunk": first, "ranges": ranges.n,
                "on_bad_rows": plan["on_bad_rows"], "code": plan["code"], "format": READ_FORMAT}
    chunks = [Chunk(chunk_name("data_loaded", first + k, "read"), first + k, key_plan,
                    {"path": ranges.path, "size": ranges.size, "data_start": ranges.data_start,
                     "n": ranges.n, "k": k, "on_bad_rows": plan["on_bad_rows"]})
              for k in range(ranges.n)]
    done = ctx.run_chunks("data_loaded (parse)", f"{__name__}:parse_range_chunk", chunks)
    # Each range counted its lines and rows from its own start: the file's are prefix sums.
    lines_before, rows_before, good, used, bad = 1, 0, 0, [], []
    for part in done:
        ckpt = ctx.inputs.load(part.name)
        facts = ckpt.value("range")
        if facts["rows"]:
            used.append({**part.as_value(), "row_offset": plan["offset"] + rows_before})
        if "bad" in ckpt.tables:
            bad.append(ckpt.table("bad").with_columns(pl.col("line") + lines_before,
                                                      pl.col("row") + rows_before))
        good += facts["rows"]
        lines_before += facts["lines"]
        rows_before += facts["file_rows"]
    quarantine = write_quarantine(path, bad) if plan["on_bad_rows"] == "quarantine" else None
    if good == 0:
        where = f" ({rows_before} bad rows quarantined in {quarantine})" if rows_before else ""
        raise InputError(f"no valid data rows after the header{where}", path=str(path), line=2,
                         hint="a graph needs at least one transaction")
    summary = {"rows": good, "bad_rows": rows_before - good, "file_rows": rows_before,
               "quarantine": str(quarantine) if quarantine else None, "parts": used, "chunks": ranges.n}
    ctx.save(marker, Output(values={"summary": summary}))
    ctx.ok(f"{path.name}: parsed {good:,} transactions in {ranges.n} byte ranges")
    return summary


def parse_range_chunk(inputs: Any, *, path: str, size: int, data_start: int, n: int, k: int,
                      on_bad_rows: str) -> Output:
    """Chunk task: byte range ``k`` of ``n`` of a plain Trans file -> its reader batch checkpoint
    (rows numbered from the range's start; its bad rows, lines numbered likewise, as ``bad``)."""
    from amlgraph.ingest import RangePlan, parse_range

    got = parse_range(RangePlan(path, size, data_start, n), k, on_bad_rows=on_bad_rows)
    out = _batch_output(got.rows, 0) if got.rows.height else Output(metadata={"rows": 0}, compress=False)
    out.values["range"] = {"rows": got.rows.height, "file_rows": got.file_rows, "lines": got.lines,
                           "start": got.start, "end": got.end}
    if got.bad is not None:
        out.tables["bad"] = got.bad
    return out


def _parsed(ctx: StepContext, marker: Chunk) -> dict | None:
    """The summary of a file parsed earlier under the marker's key whose batches all validate."""
    done = ctx.reusable(marker)
    if done is None:
        return None
    summary = ctx.inputs.load(marker.name).value("summary")
    if not all(ctx.valid(Part(p["name"], p["key"])) for p in summary["parts"]):
        return None
    return summary


def _batches(ctx: StepContext, reader: Any, plan: dict) -> Iterator[tuple[Chunk, Any]]:
    """Each reader batch as a function making its checkpoint's content (None when its checkpoint
    is valid already): keying and summarising a batch then run in the save thread while the
    reader validates the next batch."""
    bar = ctx.progress(f"parsing {reader.path.name}", 0, unit=" rows")
    try:
        for i, batch in enumerate(reader, start=plan["first_chunk"]):
            chunk = Chunk(chunk_name("data_loaded", i, "read"), i, plan, {})
            bar.update(batch.height)
            yield chunk, None if ctx.reusable(chunk) else (lambda b=batch: _batch_output(b, plan["offset"]))
            del batch
    finally:
        bar.close()


def _batch_output(batch: pl.DataFrame, offset: int) -> Output:
    if offset:
        batch = batch.with_columns(pl.col("row") + offset)
    batch = with_account_keys(batch)
    # What data_loaded needs of every batch before it can encode any, taken while the batch
    # is in memory: the index, vocabularies, split and rates then cost no second scan.
    summary, keys, pairs = batch_summary(batch)
    # zstd Parquet, like every table; the keys array is read once (the index): compressed too.
    return Output(tables={"raw": drop_keyed_accounts(batch), "pairs": pairs},
                  arrays={} if keys is None else {"keys": keys}, values={"summary": summary},
                  metadata={"rows": batch.height})


def _parse_file(ctx: StepContext, marker: Chunk, path: Any, plan: dict) -> dict:
    from amlgraph.ingest import read_transactions

    reader = read_transactions(path, on_bad_rows=plan["on_bad_rows"], batch_rows=plan["chunk_rows"],
                               limit_rows=plan["limit"])
    parts = ctx.save_parts("data_loaded (parse)", _batches(ctx, reader, plan))
    rows = reader.rows_read
    summary = {"rows": rows, "bad_rows": reader.bad_rows, "file_rows": reader.rows_read + reader.bad_rows,
               "quarantine": str(reader.quarantine_path) if reader.quarantine_path else None,
               "parts": [{**p.as_value(), "row_offset": 0} for p in parts],  # rows hold the file's ids
               "chunks": len(parts)}
    ctx.save(marker, Output(values={"summary": summary}))
    ctx.ok(f"{path.name}: parsed {rows:,} transactions in {len(parts)} chunks")
    return summary


def batch_summary(raw: pl.DataFrame) -> tuple[dict, np.ndarray | None, pl.DataFrame]:
    """What the account index, the vocabularies, the split and the exchange rates need of a batch.

    Computed once per reader batch, as it is parsed, so that ``data_loaded`` combines small
    summaries instead of scanning every batch again. Summaries of several batches combine exactly
    (distinct sets unite, counts add, minima take the minimum, pairs stack).

    Args:
        raw: a reader batch with :data:`KEY_COLUMNS` (:func:`with_account_keys`).

    Returns:
        ``(values, keys, pairs)``: ``values`` holds ``currencies`` and ``payment_formats`` (sorted
        distinct names), ``days`` (``{day: rows}``, days since the epoch as strings) and
        ``t_min`` (the first timestamp, epoch seconds); ``keys`` the sorted distinct account keys
        of both sides, None when an account has no key; ``pairs`` the exchange-rate observations
        (``payment_currency``, ``receiving_currency`` names, ``ratio`` and ``timestamp``, as
        :func:`amlgraph.steps.currency.currency_pairs` with names instead of codes), whose
        split, known only once every batch is read, decides which features may use them.
    """
    keys = None
    if not sum(raw[c].null_count() for c in KEY_COLUMNS):
        keys = pl.concat([raw[c] for c in KEY_COLUMNS]).unique().sort().to_numpy()
    currencies = pl.concat([raw["receiving_currency"], raw["payment_currency"]]).unique()
    values = {
        "currencies": sorted(currencies.to_list()),
        "payment_formats": sorted(raw["payment_format"].unique().to_list()),
        "days": {str(d): n for d, n in day_counts(raw["timestamp"].to_numpy()).items()},
        "t_min": int(raw["timestamp"].min()) if raw.height else None,
    }
    pairs = raw.filter((pl.col("payment_currency") != pl.col("receiving_currency"))
                       & (pl.col("amount_paid") > 0)).select(
        "payment_currency", "receiving_currency",
        (pl.col("amount_received") / pl.col("amount_paid")).alias("ratio"), "timestamp")
    return values, keys, pairs


def day_counts(timestamps: np.ndarray) -> dict[int, int]:
    """Count transactions per day.

    Args:
        timestamps: epoch seconds of shape (n_rows,).

    Returns:
        ``{day: count}`` with ``day = timestamp // 86400`` (UTC calendar day). Dicts of several
        chunks add up key by key to the dict of the whole file.
    """
    days, counts = np.unique(np.asarray(timestamps, dtype=np.int64) // SECONDS_PER_DAY,
                             return_counts=True)
    return {int(d): int(c) for d, c in zip(days, counts)}
