"""Step ``data_loaded``: vocabularies, the account index, coded transactions, the temporal split.

Every function here is chunk-independent: the vocabularies and the node index are sorted, the
per-day counts add up over chunks, and the split of a row depends only on its timestamp.
"""
from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import polars as pl

from amlgraph.errors import InputError
from amlgraph.steps._accounts import (  # noqa: F401  (the account index, part of this step)
    KEY_COLUMNS,
    RAW_SCHEMA,
    _hex9,
    _int_key,
    _positions_of,
    build_node_index,
    build_node_index_keyed,
    drop_keyed_accounts,
    node_keys,
    restore_accounts,
    with_account_keys,
)
from amlgraph.steps._contract import (
    Chunk,
    Inputs,
    Output,
    Step,
    StepContext,
    chunk_name,
    parts_value,
)
from amlgraph.steps._layout import INDEX
from amlgraph.steps._parse import batch_summary, read_files  # noqa: F401  (batch_summary: public here)
from amlgraph.steps._split import (  # noqa: F401  (the temporal split, part of this step)
    FAR_DAYS_MIN,
    FAR_IQR_FACTOR,
    assign_split,
    far_dates,
    temporal_split_boundaries,
)

SECONDS_PER_DAY = 86_400

#: Columns of the coded transaction frame, in order (``split`` is added by :func:`assign_split`).
CODED_COLUMNS = (
    "row", "timestamp", "src", "dst", "from_bank", "to_bank", "amount_received", "amount_paid",
    "receiving_currency", "payment_currency", "payment_format", "is_laundering",
)


def build_vocab(currencies: Iterable[str], formats: Iterable[str], banks: Iterable[int]) -> dict:
    """Build the sorted vocabularies that turn names into codes.

    Args:
        currencies: currency names seen (duplicates allowed), e.g. both currency columns.
        formats: payment format names seen (duplicates allowed).
        banks: bank ids seen (duplicates allowed), as integers.

    Returns:
        ``{"currencies": [...], "payment_formats": [...], "banks": [...]}``, each sorted and
        deduplicated, so the code of a value is its index and never depends on reading order.
    """
    return {
        "currencies": sorted({str(c) for c in currencies}),
        "payment_formats": sorted({str(f) for f in formats}),
        "banks": sorted({int(b) for b in banks}),
    }


def _codes(raw: pl.DataFrame, column: str, names: list, what: str) -> pl.Series:
    """Int16 code of each value: its index in ``names`` (a strict cast to an Enum of them)."""
    try:
        return raw[column].cast(pl.Enum(names)).to_physical().cast(pl.Int16)
    except pl.exceptions.PolarsError:
        unknown = set(raw[column].drop_nulls().unique().to_list()) - set(names)
        if not unknown:
            raise
        raise InputError(f"{what} not in the vocabulary", column=column,
                         value=str(sorted(unknown, key=str)[:5]),
                         hint="build the vocabulary from every chunk before encoding") from None


def encode_transactions(raw: pl.DataFrame, nodes: pl.DataFrame | None, vocab: dict, *,
                        keys: np.ndarray | None = None) -> pl.DataFrame:
    """Replace account strings by node ids and names by vocabulary codes.

    Args:
        raw: reader output of shape (n_rows, 12): ``row``, ``timestamp``, ``from_bank``,
            ``from_account``, ``to_bank``, ``to_account``, ``amount_received``,
            ``receiving_currency``, ``amount_paid``, ``payment_currency``, ``payment_format``,
            ``is_laundering`` (plus ``from_key``/``to_key`` from :func:`with_account_keys`).
        nodes: output of :func:`build_node_index`; may be None when ``keys`` is given and ``raw``
            has its keys.
        vocab: output of :func:`build_vocab`.
        keys: :func:`node_keys` of ``nodes`` when the caller has them (they cost a pass over the
            account strings; a chunked run computes them once, not once per chunk).

    Returns:
        Frame of shape (n_rows, 12) with the columns :data:`CODED_COLUMNS`, rows in input order:
        ``src``/``dst`` Int64 node ids, currency and format columns Int16 codes.

    Raises:
        InputError: an account, currency or format is missing from the index or vocabulary.
    """
    has_keys = all(c in raw.columns for c in KEY_COLUMNS)
    if keys is None or not has_keys:
        if nodes is None:
            raise ValueError("encode_transactions needs the node index without keys on both sides")
        index = nodes.select(pl.col("bank").cast(pl.Int64), pl.col("account").cast(pl.String),
                             pl.col("node_id").cast(pl.Int64))
        keys = node_keys(index) if keys is None else keys
    if keys is not None:
        # Canonical accounts (9 upper-case hex digits, the IBM format) have an Int64 key that is
        # one-to-one and sorted like (bank, account), so a node id is the position of its key in
        # the sorted index keys: a binary search, with the chunk's keys sorted first so that the
        # search walks the index in order (cache-friendly: ~3x a hash join on a 2M-node index).
        if has_keys:
            out = raw
        else:
            out = raw.with_columns(_int_key("from_bank", "from_account").alias("from_key"),
                                   _int_key("to_bank", "to_account").alias("to_key"))
        out = out.with_columns(pl.Series("src", _positions_of(keys, out["from_key"])),
                               pl.Series("dst", _positions_of(keys, out["to_key"])))
    else:
        out = raw.join(index.rename({"bank": "from_bank", "account": "from_account", "node_id": "src"}),
                       on=["from_bank", "from_account"], how="left", maintain_order="left")
        out = out.join(index.rename({"bank": "to_bank", "account": "to_account", "node_id": "dst"}),
                       on=["to_bank", "to_account"], how="left", maintain_order="left")
    if out["src"].null_count() or out["dst"].null_count():
        missing = out.filter(pl.col("src").is_null() | pl.col("dst").is_null())
        first = missing.row(0, named=True)
        raise InputError(f"{missing.height} transaction(s) with an account missing from the node index",
                         value=f"row {first['row']}",
                         hint="build the node index from every chunk before encoding")
    currencies = vocab["currencies"]
    return out.select(
        pl.col("row").cast(pl.Int64), pl.col("timestamp").cast(pl.Int64), "src", "dst",
        pl.col("from_bank").cast(pl.Int64), pl.col("to_bank").cast(pl.Int64),
        pl.col("amount_received").cast(pl.Float64), pl.col("amount_paid").cast(pl.Float64),
        _codes(raw, "receiving_currency", currencies, "currency"),
        _codes(raw, "payment_currency", currencies, "currency"),
        _codes(raw, "payment_format", vocab["payment_formats"], "payment format"),
        pl.col("is_laundering").cast(pl.Int8),
    )




# --- the step -----------------------------------------------------------------------------------
def encode_chunk(inputs: Inputs, *, read_chunk: str, boundaries: list[int], vocab: dict,
                 row_offset: int = 0) -> Output:
    """Raw reader batch -> coded transactions with their split, in row order (the batch's row ids
    plus ``row_offset``: a byte range numbers its rows from its own start)."""
    index = inputs.load(INDEX)
    keys = np.asarray(index.array("keys")) if "keys" in index.arrays else None
    if keys is not None:
        # With the keys on both sides, no account string is needed: not even read.
        raw = inputs.scan([read_chunk], "raw").drop(("from_account", "to_account"), strict=False).collect()
        nodes = None
    else:
        raw, nodes = restore_accounts(inputs.load(read_chunk).table("raw")), index.table("nodes")
    if row_offset:
        raw = raw.with_columns(pl.col("row") + row_offset)
    tx = encode_transactions(raw, nodes, vocab, keys=keys)
    split = assign_split(tx["timestamp"].to_numpy(), tuple(boundaries), unit=1)  # epoch seconds
    tx = tx.with_columns(pl.Series("split", split, dtype=pl.Int8))
    # zstd Parquet at level 1, like every table: it writes about as fast as uncompressed Parquet
    # and shrinks these tables by ~45 % (docs/CHECKPOINTS.md, "Footprint").
    return Output(tables={"transactions": tx},
                  values={"split_counts": np.bincount(split, minlength=3).tolist()},
                  metadata={"rows": tx.height})


def _unique_keys(batches: Iterable[np.ndarray]) -> np.ndarray:
    """The distinct keys of all batches (each batch's distinct keys, one array per batch).

    The batches are merged into the running set whenever they add up to twice its size: memory
    follows the number of accounts, not of rows or batches.
    """
    seen, pending, waiting = pl.Series("key", [], dtype=pl.Int64), [], 0
    for keys in batches:
        pending.append(pl.Series("key", np.asarray(keys), dtype=pl.Int64))
        waiting += len(pending[-1])
        if waiting > max(4_000_000, 2 * len(seen)):
            seen, pending, waiting = pl.concat([seen, *pending]).unique(), [], 0
    return pl.concat([seen, *pending]).unique().to_numpy()


def _node_index(raw: pl.LazyFrame, accounts: pl.DataFrame | None,
                keys: Iterable[np.ndarray] | None) -> tuple[pl.DataFrame, np.ndarray | None]:
    """The account index and its integer keys: from the batches' distinct keys when every
    account has one (``keys`` is None when some has none), else from the account strings."""
    if keys is not None:
        built = build_node_index_keyed(_unique_keys(keys), accounts)
        if built is not None:
            return built
    sides = [(f"{side}_bank", f"{side}_account", f"{side}_key") for side in ("from", "to")]
    tx_accounts = pl.concat([
        raw.select(pl.col(bank).alias("bank"), pl.col(acc).alias("account"), pl.col(key).alias("key"))
        for bank, acc, key in sides
    ]).unique().collect(engine="streaming")
    tx_accounts = restore_accounts(tx_accounts, (("account", "key"),))  # the batches drop keyed strings
    nodes = build_node_index(tx_accounts.select("bank", "account"), accounts)
    return nodes, node_keys(nodes)


def _split_boundaries(raw: pl.LazyFrame, fractions,
                      days: dict[int, int]) -> tuple[dict[int, int], list[int], int]:
    """Multi-GNN's day-bucket split; hours, then minutes, when the data spans under 3 days.

    ``days`` are the rows per day (from the batch summaries); hours and minutes, rarely needed,
    are counted from ``raw``. Returns the bucket counts, the two boundaries in epoch seconds and
    the bucket width.
    """
    for unit in (86_400, 3_600, 60):
        if unit == 86_400:
            counts = dict(days)
        else:
            buckets = (raw.group_by((pl.col("timestamp") // unit).alias("b")).agg(pl.len().alias("n"))
                       .collect(engine="streaming"))
            counts = {int(b): int(n) for b, n in zip(buckets["b"], buckets["n"])}
        if len(counts) >= 3:
            b1, b2 = temporal_split_boundaries(counts, fractions)
            return counts, [int(b1) * unit, int(b2) * unit], unit
    raise InputError("the transactions span fewer than 3 distinct minutes; a temporal "
                     "train/validation/test split is impossible", hint="use more rows (--sample-size)")


def compute(ctx: StepContext) -> Output:
    """Parse, index, encode and split the input files."""
    from amlgraph.ingest import match_patterns, read_accounts, read_patterns, read_rates
    from amlgraph.steps.currency import split_rates

    files = ctx.files
    chunk_rows = ctx.sizing("chunk_rows")
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="amlgraph-accounts") as pool:
        # The accounts and patterns files (small) are read while the transactions are parsed.
        accounts = pool.submit(read_accounts, files.accounts) if files.accounts else None
        pat = pool.submit(read_patterns, files.patterns) if files.patterns is not None else None
        read = read_files(ctx, chunk_rows)
        accounts = accounts.result() if accounts is not None else None
        pat = pat.result() if pat is not None else None
    raw_names = [p.name for p in read["parts"]]
    raw = ctx.inputs.scan(raw_names, "raw", schema=RAW_SCHEMA)
    # The batches' summaries (batch_summary), combined: no scan of the rows.
    batches = [ctx.inputs.load(n) for n in raw_names]
    summaries = [b.value("summary") for b in batches]
    keys = None if any("keys" not in b.arrays for b in batches) else (b.array("keys") for b in batches)
    nodes, keys = _node_index(raw, accounts, keys)
    vocab = build_vocab([c for s in summaries for c in s["currencies"]],
                        [f for s in summaries for f in s["payment_formats"]], nodes["bank"].unique().to_list())
    days: dict[int, int] = {}
    for s in summaries:
        for d, n in s["days"].items():
            days[int(d)] = days.get(int(d), 0) + n
    far = far_dates(days)
    if far:
        ctx.warn(far)
    counts, boundaries, unit = _split_boundaries(raw, ctx.params["split_fractions"], days)
    if unit != 86_400:
        ctx.warn(f"fewer than 3 days of transactions: the temporal split uses "
                 f"{'hours' if unit == 3_600 else 'minutes'} instead of days")
    t0 = int(min(s["t_min"] for s in summaries) // 86400 * 86400)
    cur = {name: i for i, name in enumerate(vocab["currencies"])}
    b1, b2 = boundaries
    pairs = pl.concat([b.table("pairs").select(  # coded batch by batch: 11 bytes a row, not names
        pl.col("payment_currency").replace_strict(cur, return_dtype=pl.Int16),
        pl.col("receiving_currency").replace_strict(cur, return_dtype=pl.Int16), "ratio",
        pl.when(pl.col("timestamp") >= b2).then(2).when(pl.col("timestamp") >= b1).then(1).otherwise(0)
        .cast(pl.Int8).alias("split")) for b in batches])
    del batches
    given = read_rates(ctx.option("rates_file")) if ctx.option("rates_file") is not None else None
    rates, priced_from, rate_warnings = split_rates(pairs, vocab=vocab, given=given)
    for w in rate_warnings:
        ctx.warn(w)

    index = ctx.save(Chunk(INDEX, -1, {"phase": "index", "chunk_rows": chunk_rows}, {}),
                     Output(tables={"nodes": nodes}, arrays={} if keys is None else {"keys": keys},
                            values={"vocab": vocab}, metadata={"num_accounts": nodes.height}))
    offsets = read["row_offsets"]
    chunks = [Chunk(chunk_name("data_loaded", i), i, {"phase": "encode", "chunk_rows": chunk_rows},
                    {"read_chunk": name, "boundaries": boundaries, "vocab": vocab, "row_offset": off})
              for i, (name, off) in enumerate(zip(raw_names, offsets))]

    def matched() -> pl.DataFrame:
        # A pattern line equals its transaction in all 11 fields, the label 1 included: only the
        # few laundering rows can match, and one filtered scan of the raw batches reads just those.
        laundering = restore_accounts(pl.concat([
            ctx.inputs.scan([name], "raw", schema=RAW_SCHEMA).filter(pl.col("is_laundering") == 1)
            .with_columns(pl.col("row") + off) for name, off in zip(raw_names, offsets)
        ]).collect(engine="streaming"))
        return match_patterns(laundering, pat)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="amlgraph-patterns") as pool:
        # The patterns are matched while the batches are encoded (both only read the raw batches).
        found = pool.submit(matched) if pat is not None and pat.height else None
        coded = ctx.run_chunks("data_loaded (encode)", f"{__name__}:encode_chunk", chunks)
        patterns = found.result() if found is not None else pl.DataFrame(
            schema={"row": pl.Int64, "attempt_id": pl.Int32, "typology": pl.String})

    split_counts = np.sum([ctx.inputs.load(p.name).value("split_counts") for p in coded], axis=0)
    # The reader batches served the index and the encoding; no later step reads them. Kept on
    # request only (`keep_parsed`: a file appended later is then parsed alone), else deleted once
    # this checkpoint is saved (an interrupted run still resumes from them).
    kept = read["parts"] if ctx.option("keep_parsed") else []
    if not kept:
        ctx.discard(read["parts"] + read["markers"])
    summary = {
        "rows": read["rows"], "bad_rows": read["bad_rows"], "quarantine": read["quarantine"],
        "num_accounts": nodes.height,
        "split_counts": {s: int(n) for s, n in enumerate(split_counts) if n},
    }
    ctx.ok(f"Loaded {read['rows']:,} transactions, {nodes.height:,} accounts, "
           f"{int(patterns['attempt_id'].n_unique()) if patterns.height else 0} laundering attempts; "
           f"split train/val/test = {summary['split_counts']}")
    return Output(tables={"patterns": patterns},
                  values={"vocab": vocab, "boundaries": boundaries, "split_unit_s": unit,
                          "bucket_counts": {str(k): v for k, v in counts.items()},
                          "t0": t0, "usd_per_unit": {str(k): v for k, v in rates.items()},
                          "priced_from": {str(k): v for k, v in priced_from.items()},
                          "summary": summary, "parts": parts_value(kept + [index] + coded),
                          "config": ctx.config_record()},
                  metadata={"num_accounts": nodes.height, "num_transactions": read["rows"]})


STEP = Step("data_loaded", "Loading Data", reads=(), params=("sample_size", "on_bad_rows", "split_fractions"),
            code=(), compute=compute)
