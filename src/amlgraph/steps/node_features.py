"""Step ``node_features``: per-account features from the transactions that touch each account.

Vectorised over incidences (one per row and side). Floating-point sums use ``np.bincount`` over
a node's sent and received incidences, each in ``row`` order, so a node's features are
bit-identical whatever else the chunk holds.
Definitions: docs/FEATURES.md.
"""
from __future__ import annotations

import numpy as np
import polars as pl

from amlgraph.schema import CRYPTO
from amlgraph.steps._contract import Chunk, Inputs, Output, Part, Step, StepContext, chunk_name, parts_value
from amlgraph.steps._layout import coded_chunks
from amlgraph.steps.currency import rate_array
from amlgraph.steps.lookup import positions

SECONDS_PER_DAY = 86_400

#: The seed's 15 features, in order.
SEED_NODE_FEATURES = (
    "transaction_count", "total_sent", "total_received", "avg_amount", "max_amount", "min_amount",
    "temporal_span", "transaction_frequency", "currency_diversity", "bank_diversity",
    "night_ratio", "weekend_ratio", "is_crypto_bank", "is_international", "is_high_frequency",
)
#: Role-separated features (the ``format_share_<name>`` columns follow them, one per format).
ROLE_NODE_FEATURES = (
    "in_degree", "out_degree", "distinct_in_counterparties", "distinct_out_counterparties",
    "sent_mean", "sent_std", "sent_max", "received_mean", "received_std", "received_max",
    "self_transfer_count",
)
#: Ordered names without the per-format shares (see :func:`node_feature_names`).
NODE_FEATURES = SEED_NODE_FEATURES + ROLE_NODE_FEATURES

#: Columns of the coded transactions that :func:`node_features` reads.
INPUT_COLUMNS = ("row", "timestamp", "src", "dst", "from_bank", "to_bank", "amount_paid",
                 "amount_received", "payment_currency", "receiving_currency", "payment_format")

_COUNTS = {"transaction_count", "currency_diversity", "bank_diversity", "in_degree", "out_degree",
           "distinct_in_counterparties", "distinct_out_counterparties", "self_transfer_count"}
_FLAGS = {"is_crypto_bank", "is_international", "is_high_frequency"}


def format_share_name(name: str) -> str:
    """Column name of the share of a payment format: lower case, spaces to underscores."""
    return "format_share_" + name.lower().replace(" ", "_")


def node_feature_names(vocab: dict) -> list[str]:
    """All feature columns :func:`node_features` returns (without ``node_id``), in order."""
    return list(NODE_FEATURES) + [format_share_name(f) for f in vocab["payment_formats"]]


def _distinct(pos: np.ndarray, values: np.ndarray, n: int) -> np.ndarray:
    """Number of distinct values per position, shape (n,)."""
    if len(pos) == 0:
        return np.zeros(n, dtype=np.int64)
    vmin = int(values.min())
    width = int(values.max()) - vmin + 1
    key = pos * width  # pos * width + values - vmin, in place
    key += values
    key -= vmin
    if n * width <= 4 * len(key) + 1_000_000:
        # Few distinct values (currencies): a (position, value) table of counts, no hashing.
        seen = np.bincount(key, minlength=n * width).reshape(n, width) > 0
        return seen.sum(axis=1, dtype=np.int64)
    # Distinct (position, value) pairs by hashing (Polars, all cores) rather than sorting.
    return np.bincount(pl.Series(key).unique().to_numpy() // width, minlength=n)


def _extreme(pos: np.ndarray, values: np.ndarray, n: int, ufunc: np.ufunc) -> np.ndarray:
    """Per-position max (ufunc=np.maximum) or min of values; 0 where a position has none."""
    init = -np.inf if ufunc is np.maximum else np.inf
    out = np.full(n, init, dtype=np.float64)
    ufunc.at(out, pos, values.astype(np.float64))
    out[out == init] = 0.0
    return out


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    return np.divide(num, den, out=np.zeros(len(num), dtype=np.float64), where=den > 0)


def _mean_std(pos: np.ndarray, x: np.ndarray, n: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-position mean and population std (two passes, both in the order of ``pos``)."""
    count = np.bincount(pos, minlength=n)
    mean = _ratio(np.bincount(pos, weights=x, minlength=n), count)
    dev = x - mean[pos]
    var = _ratio(np.bincount(pos, weights=dev * dev, minlength=n), count)
    std = np.sqrt(var)
    std[count < 2] = 0.0
    return mean, std


def partition_rows(tx: pl.DataFrame, size: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Copies of transaction rows filed by account partition (``part = node_id // size``).

    Partition ``k`` holds the nodes ``[k * size, (k + 1) * size)``, i.e. node_features chunk ``k``.
    Its rows are exactly ``by_src[part == k]`` and ``by_dst[part == k]``, each row once: ``by_src``
    files every row under its sender's partition, ``by_dst`` only the rows whose receiver is in
    another partition, under the receiver's.

    Args:
        tx: coded transactions with at least :data:`INPUT_COLUMNS` (``split`` is kept too).
        size: accounts per partition, >= 1.

    Returns:
        ``(by_src, by_dst)``: those columns plus ``part`` (Int32), sorted by ``part`` with the
        input order kept within a partition (a stable sort).
    """
    cols = [c for c in INPUT_COLUMNS + ("split",) if c in tx.columns]
    t = tx.select(cols)
    src_part, dst_part = (pl.col("src") // size).cast(pl.Int32), (pl.col("dst") // size).cast(pl.Int32)
    by_src = t.with_columns(part=src_part).sort("part", maintain_order=True)
    by_dst = t.filter(dst_part != src_part).with_columns(part=dst_part).sort("part", maintain_order=True)
    return by_src, by_dst


def node_features(tx: pl.DataFrame, node_ids: np.ndarray, *,
                  usd_per_unit: dict[int, float] | None, vocab: dict) -> pl.DataFrame:
    """Compute the node features of the given nodes.

    Args:
        tx: coded transactions (``row``, ``timestamp``, ``src``, ``dst``, ``from_bank``,
            ``to_bank``, ``amount_received``, ``amount_paid``, ``receiving_currency``,
            ``payment_currency``, ``payment_format``) holding at least every row that touches a
            node of ``node_ids``; sides touching other nodes are ignored.
        node_ids: node ids of shape (n_nodes,), any order, duplicates ignored.
        usd_per_unit: USD per unit of each currency code (from ``usd_rates``), or None to keep
            amounts raw (currency="raw").
        vocab: the vocabularies (currency and payment format names).

    Returns:
        Frame of shape (n_unique_nodes, 1 + len(node_feature_names(vocab))): ``node_id``
        (ascending) then the features. Floats Float64, counts Int64, flags Int8; nodes without
        rows are all zeros.

    Raises:
        ConfigError: ``usd_per_unit`` lacks a currency code.
    """
    ids = np.sort(np.asarray(node_ids, dtype=np.int64).ravel())
    ids = ids[np.r_[True, ids[1:] != ids[:-1]]] if len(ids) else ids
    n = len(ids)
    currencies, formats = list(vocab["currencies"]), list(vocab["payment_formats"])
    rates = rate_array(usd_per_unit, len(currencies))
    t = tx.select(INPUT_COLUMNS)
    if not t["row"].is_sorted():
        t = t.sort("row")  # sums below run in row order: the exactness discipline
    src, dst = t["src"].to_numpy(), t["dst"].to_numpy()
    ts = t["timestamp"].to_numpy()
    pay_cur = t["payment_currency"].to_numpy().astype(np.int64)
    rec_cur = t["receiving_currency"].to_numpy().astype(np.int64)
    fmt = t["payment_format"].to_numpy().astype(np.int64)
    paid = t["amount_paid"].to_numpy() * rates[pay_cur]
    received = t["amount_received"].to_numpy() * rates[rec_cur]
    from_bank, to_bank = t["from_bank"].to_numpy(), t["to_bank"].to_numpy()
    is_self = src == dst

    s_all, r_all = positions(ids, src), positions(ids, dst)
    s_rows, r_rows = np.flatnonzero(s_all >= 0), np.flatnonzero(r_all >= 0)
    s_pos, r_pos = s_all[s_rows], r_all[r_rows]
    sent_paid, recv_received = paid[s_rows], received[r_rows]

    # A node's "sides" of rows: one incidence per (row, node), its sent rows then its received
    # rows, each in row order; a self-transfer keeps only its paid side.
    r_other = ~is_self[r_rows]
    r_side_rows = r_rows[r_other]
    side_rows = np.concatenate([s_rows, r_side_rows])
    side_pos = np.concatenate([s_pos, r_pos[r_other]])

    def side(sent_value: np.ndarray, received_value: np.ndarray) -> np.ndarray:
        return np.concatenate([sent_value[s_rows], received_value[r_side_rows]])

    side_amt = np.concatenate([sent_paid, recv_received[r_other]])
    side_cur = side(pay_cur, rec_cur)
    side_cp_bank = side(to_bank, from_bank)
    side_ts, side_fmt = ts[side_rows], fmt[side_rows]

    f: dict[str, np.ndarray] = {}
    count = np.bincount(side_pos, minlength=n)
    f["transaction_count"] = count
    f["total_sent"] = np.bincount(s_pos, weights=sent_paid, minlength=n)
    f["total_received"] = np.bincount(r_pos, weights=recv_received, minlength=n)
    # The sum of a node's sides: its sent sum plus its received sum without self-transfers.
    received_other = np.bincount(r_pos[r_other], weights=recv_received[r_other], minlength=n)
    f["avg_amount"] = _ratio(f["total_sent"] + received_other, count)
    f["max_amount"] = _extreme(side_pos, side_amt, n, np.maximum)
    f["min_amount"] = _extreme(side_pos, side_amt, n, np.minimum)
    first = np.full(n, np.iinfo(np.int64).max, dtype=np.int64)
    last = np.full(n, np.iinfo(np.int64).min, dtype=np.int64)
    np.minimum.at(first, side_pos, side_ts)
    np.maximum.at(last, side_pos, side_ts)
    span = np.where(count > 0, (last - first) / SECONDS_PER_DAY, 0.0)
    f["temporal_span"] = span
    f["transaction_frequency"] = count / np.maximum(1.0, span)
    f["currency_diversity"] = _distinct(side_pos, side_cur, n)
    f["bank_diversity"] = _distinct(side_pos, side_cp_bank, n)
    hour = (side_ts // 3600) % 24
    weekday = (side_ts // SECONDS_PER_DAY + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    f["night_ratio"] = _ratio(np.bincount(side_pos[(hour >= 22) | (hour <= 6)], minlength=n), count)
    f["weekend_ratio"] = _ratio(np.bincount(side_pos[weekday >= 5], minlength=n), count)
    crypto = np.zeros(len(side_rows), dtype=bool)
    if CRYPTO in currencies:
        crypto |= side_cur == currencies.index(CRYPTO)
    if CRYPTO in formats:
        crypto |= side_fmt == formats.index(CRYPTO)
    f["is_crypto_bank"] = np.bincount(side_pos[crypto], minlength=n) > 0
    f["is_international"] = f["currency_diversity"] > 1
    f["is_high_frequency"] = f["transaction_frequency"] > 1

    f["in_degree"] = np.bincount(r_pos, minlength=n)
    f["out_degree"] = np.bincount(s_pos, minlength=n)
    f["distinct_in_counterparties"] = _distinct(r_pos, src[r_rows], n)
    f["distinct_out_counterparties"] = _distinct(s_pos, dst[s_rows], n)
    f["sent_mean"], f["sent_std"] = _mean_std(s_pos, sent_paid, n)
    f["sent_max"] = _extreme(s_pos, sent_paid, n, np.maximum)
    f["received_mean"], f["received_std"] = _mean_std(r_pos, recv_received, n)
    f["received_max"] = _extreme(r_pos, recv_received, n, np.maximum)
    f["self_transfer_count"] = np.bincount(s_pos[is_self[s_rows]], minlength=n)
    # Rows per (node, format) in one pass: a table of n x formats counts.
    per_format = np.bincount(side_pos * len(formats) + side_fmt,
                             minlength=n * len(formats)).reshape(n, len(formats)) if formats else None
    for code, name in enumerate(formats):
        f[format_share_name(name)] = _ratio(np.ascontiguousarray(per_format[:, code]), count)

    columns = [pl.Series("node_id", ids, dtype=pl.Int64)]
    for name in node_feature_names(vocab):
        dtype = pl.Int64 if name in _COUNTS else pl.Int8 if name in _FLAGS else pl.Float64
        columns.append(pl.Series(name, f[name]).cast(dtype))
    return pl.DataFrame(columns)


# --- the step -----------------------------------------------------------------------------------
#: From this many node_features chunks on, the transactions are first filed by account partition
#: (one pass) so that each chunk reads only its own rows; below it, each chunk scans every data
#: chunk with its node-id range as a filter, which costs less than the extra pass.
PARTITION_MIN_CHUNKS = 8


def partition_chunk(inputs: Inputs, *, data_chunks: list[str], size: int, parts: int) -> Output:
    """Consecutive data chunks' rows filed by account partition (see :func:`partition_rows`).

    Several data chunks go into one partition checkpoint so that a node chunk, which reads its
    partition from every partition checkpoint, opens a few files rather than one per data chunk.
    """
    tx = inputs.scan(data_chunks, "transactions").select(list(INPUT_COLUMNS) + ["split"]).collect()
    by_src, by_dst = partition_rows(tx, size)
    # About two row groups per partition: a scan for one partition reads only its own groups.
    rows = max(1_024, min(262_144, by_src.height // max(1, 2 * parts)))
    return Output(tables={"by_src": by_src, "by_dst": by_dst}, row_group_rows=rows,
                  metadata={"rows": tx.height, "by_dst_rows": by_dst.height})


def node_chunk(inputs: Inputs, *, lo: int, hi: int, part: int, usd_per_unit: dict | None, vocab: dict,
               train_only: bool, data_chunks: list[str] | None = None,
               partitions: list[str] | None = None) -> Output:
    """Node features for node ids [lo, hi), from only the rows that touch them.

    With ``partitions`` (node chunk ``part`` = partition ``part``) the rows are read from the
    partition's own row groups; otherwise from ``data_chunks`` with the node-id range as a
    filter. Either way the Parquet reader materialises only matching rows, so memory follows
    the chunk, not the input.
    """
    needed = list(INPUT_COLUMNS)  # the filter's own columns are read for the filter either way
    if partitions:
        mine = pl.col("part") == part
        if train_only:
            mine = mine & (pl.col("split") == 0)
        tx = pl.concat([inputs.scan(partitions, table).filter(mine).select(needed)
                        for table in ("by_src", "by_dst")]).collect(engine="streaming")
        tx = tx.sort("row")  # node_features sums in row order
    else:
        touches = pl.col("src").is_between(lo, hi - 1) | pl.col("dst").is_between(lo, hi - 1)
        if train_only:
            touches = touches & (pl.col("split") == 0)
        tx = (inputs.scan(data_chunks or [], "transactions").filter(touches).select(needed)
              .collect(engine="streaming"))
    rates = {int(k): float(v) for k, v in usd_per_unit.items()} if usd_per_unit is not None else None
    feats = node_features(tx, np.arange(lo, hi, dtype=np.int64), usd_per_unit=rates, vocab=vocab)
    return Output(tables={"features": feats},
                  metadata={"num_accounts": feats.height, "num_features": feats.width - 1})


def _ranges(n: int, size: int) -> list[tuple[int, int]]:
    return [(start, min(start + size, n)) for start in range(0, n, size)] or [(0, 0)]


def compute(ctx: StepContext) -> Output:
    """Node chunks of consecutive ids; the step checkpoint lists them (they are the table)."""
    data = ctx.step("data_loaded")
    summary = data.value("summary")
    n_nodes, n_rows = summary["num_accounts"], summary["rows"]
    size = ctx.sizing("chunk_size", num_accounts=n_nodes, num_rows=n_rows)
    rates = None if ctx.params["currency"] == "raw" else data.value("usd_per_unit")
    coded = coded_chunks(data)
    ranges = _ranges(n_nodes, size)
    base = {"usd_per_unit": rates, "vocab": data.value("vocab"),
            "train_only": ctx.params["node_features_from"] == "train"}
    chunks = [Chunk(chunk_name("node_features", k), k, {"lo": lo, "hi": hi},
                    {"lo": lo, "hi": hi, "part": k, **base}) for k, (lo, hi) in enumerate(ranges)]
    func = f"{__name__}:node_chunk"
    partitions: list[Part] = []
    if len(ranges) >= PARTITION_MIN_CHUNKS and ctx.pending(func, chunks):
        # Groups of consecutive data chunks, about one row chunk (--chunk-rows, or what the memory
        # budget allows) per group.
        per_group = max(1, ctx.sizing("chunk_rows") * len(coded) // max(1, n_rows))
        groups = [coded[i:i + per_group] for i in range(0, len(coded), per_group)]
        filing = [Chunk(chunk_name("node_features", g, "part"), g,
                        {"phase": "partition", "size": size, "data": names},
                        {"data_chunks": names, "size": size, "parts": len(ranges)})
                  for g, names in enumerate(groups)]
        ctx.info(f"Filing {len(coded)} data chunks by account partition ({len(ranges)} partitions, "
                 f"{len(groups)} files)")
        partitions = ctx.run_chunks("node_features (partition)", f"{__name__}:partition_chunk", filing)
        source: dict = {"partitions": [p.name for p in partitions]}
    else:
        source = {"data_chunks": coded}
    chunks = [Chunk(c.name, c.index, c.plan, {**c.kwargs, **source}) for c in chunks]
    ctx.info(f"Processing {n_nodes:,} accounts in {len(chunks)} chunk{'s' if len(chunks) != 1 else ''} "
             f"of up to {min(size, n_nodes):,}")
    parts = ctx.run_chunks("node_features", func, chunks)
    # The partitions are a means to the chunks, which are all saved now: their disk space is
    # freed once the step checkpoint is saved.
    ctx.discard(partitions)
    # The chunks are node-id ranges in order: together they are the feature table, which is read
    # from them rather than written a second time here.
    columns = ctx.inputs.scan([parts[0].name], "features").collect_schema().names()
    return Output(values={"parts": parts_value(parts), "columns": columns},
                  metadata={"num_accounts": n_nodes, "num_features": len(columns) - 1})


STEP = Step("node_features", "Creating Node Features", reads=("data_loaded",),
            params=("currency", "node_features_from"),
            code=("amlgraph.steps.lookup", "amlgraph.steps.currency", "amlgraph.schema"), compute=compute)
