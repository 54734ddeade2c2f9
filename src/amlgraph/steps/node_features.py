"""Step ``node_features``: per-account features from the transactions that touch each account.

Vectorised over incidences (one per row and side). Floating-point sums use ``np.bincount`` over
a node's sent and received incidences, each in ``row`` order, so a node's features are
bit-identical whatever else the chunk holds.

By default (``node_features_from="split"``) every node gets three feature rows, one per view of
the data that a model of that split may see: ``train`` (training rows), ``val`` (training and
validation rows), ``test`` (all rows), computed in one pass (``steps._views``): no training
feature depends on a later row. Amounts are in US Dollars where their currency has a rate (one
that the view may use, see ``steps.currency.split_rates``); the others are left out of every
amount feature and counted by ``unpriced_share``. Definitions: docs/FEATURES.md.
"""
from __future__ import annotations

import numpy as np
import polars as pl

from amlgraph.schema import CRYPTO
from amlgraph.steps import _views as views
from amlgraph.steps._view_codec import encode_views
from amlgraph.steps._contract import (
    Chunk,
    Inputs,
    Output,
    Part,
    Step,
    StepContext,
    chunk_name,
    parts_value,
)
from amlgraph.steps._layout import coded_chunks
from amlgraph.steps.currency import NEVER, priced_from_array, rate_array
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
#: Share of a node's rows whose amount could not be priced in US Dollars.
HONESTY_NODE_FEATURES = ("unpriced_share",)
#: Ordered names without the per-format shares (see :func:`node_feature_names`).
NODE_FEATURES = SEED_NODE_FEATURES + ROLE_NODE_FEATURES + HONESTY_NODE_FEATURES
#: The views of ``node_features_from="split"``, in order; other modes have the one view "all".
SPLIT_VIEWS = ("train", "val", "test")

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


def node_features(tx: pl.DataFrame, node_ids: np.ndarray, *, usd_per_unit: dict | None, vocab: dict,
                  priced_from: dict | None = None, split_views: bool = False) -> dict[str, pl.DataFrame]:
    """Compute the node features of the given nodes, for each view of the rows.

    Args:
        tx: coded transactions (``row``, ``timestamp``, ``src``, ``dst``, ``from_bank``,
            ``to_bank``, ``amount_received``, ``amount_paid``, ``receiving_currency``,
            ``payment_currency``, ``payment_format``, and ``split`` with ``split_views``)
            holding at least every row that touches a node of ``node_ids``; sides touching other
            nodes are ignored.
        node_ids: node ids of shape (n_nodes,), any order, duplicates ignored.
        usd_per_unit: USD per unit of each currency code, None where a currency has no rate
            (``split_rates``); or None for raw amounts (currency="raw").
        vocab: the vocabularies (currency and payment format names).
        priced_from: first view that may use each currency's rate (``split_rates``); None: every
            rate from the first view.
        split_views: three views (train, val, test) by the rows' ``split``; else one view
            ("all") of every row given.

    Returns:
        ``{view: frame}``; each frame of shape (n_unique_nodes, 1 + len(node_feature_names(vocab))):
        ``node_id`` (ascending) then the features. Floats Float64, counts Int64, flags Int8;
        nodes without rows in a view are all zeros there.

    Raises:
        ConfigError: ``usd_per_unit`` lacks a currency code.
    """
    ids = np.sort(np.asarray(node_ids, dtype=np.int64).ravel())
    ids = ids[np.r_[True, ids[1:] != ids[:-1]]] if len(ids) else ids
    n = len(ids)
    n_views = len(SPLIT_VIEWS) if split_views else 1
    currencies, formats = list(vocab["currencies"]), list(vocab["payment_formats"])
    rates = rate_array(usd_per_unit, len(currencies))
    since = priced_from_array(priced_from, len(currencies))
    since[~np.isfinite(rates)] = NEVER
    if not split_views:
        since = np.where(since < NEVER, 0, NEVER).astype(np.int8)  # one view: priced or not
    t = tx.select(list(INPUT_COLUMNS) + (["split"] if split_views else []))
    if not t["row"].is_sorted():
        t = t.sort("row")  # sums below run in row order: the exactness discipline
    src, dst = t["src"].to_numpy(), t["dst"].to_numpy()
    ts = t["timestamp"].to_numpy()
    row_view = t["split"].to_numpy().astype(np.int64) if split_views else np.zeros(t.height, dtype=np.int64)
    pay_cur = t["payment_currency"].to_numpy().astype(np.int64)
    rec_cur = t["receiving_currency"].to_numpy().astype(np.int64)
    fmt = t["payment_format"].to_numpy().astype(np.int64)
    # An amount times an absurd exchange rate can overflow: the result is inf/NaN, which the
    # normalized step reports (naming the account) instead of a RuntimeWarning on stderr here.
    with np.errstate(invalid="ignore", over="ignore"):
        paid = t["amount_paid"].to_numpy() * rates[pay_cur]
        received = t["amount_received"].to_numpy() * rates[rec_cur]
    # The first view in which each side's amount counts: its row's, or later when its currency
    # is priced only from a later split on (NEVER: in no view).
    paid_view = np.maximum(row_view, since[pay_cur])
    received_view = np.maximum(row_view, since[rec_cur])
    from_bank, to_bank = t["from_bank"].to_numpy(), t["to_bank"].to_numpy()
    is_self = src == dst

    s_all, r_all = positions(ids, src), positions(ids, dst)
    s_rows, r_rows = np.flatnonzero(s_all >= 0), np.flatnonzero(r_all >= 0)
    s_pos, r_pos = s_all[s_rows], r_all[r_rows]
    s_view, r_view = row_view[s_rows], row_view[r_rows]
    sent_paid, recv_received = paid[s_rows], received[r_rows]
    sent_amt_view, recv_amt_view = paid_view[s_rows], received_view[r_rows]

    # A node's "sides" of rows: one incidence per (row, node), its sent rows then its received
    # rows, each in row order; a self-transfer keeps only its paid side.
    r_other = ~is_self[r_rows]
    r_side_rows = r_rows[r_other]
    side_rows = np.concatenate([s_rows, r_side_rows])
    side_pos = np.concatenate([s_pos, r_pos[r_other]])
    side_view = row_view[side_rows]

    def side(sent_value: np.ndarray, received_value: np.ndarray) -> np.ndarray:
        return np.concatenate([sent_value[s_rows], received_value[r_side_rows]])

    side_amt = np.concatenate([sent_paid, recv_received[r_other]])
    side_amt_view = np.concatenate([sent_amt_view, recv_amt_view[r_other]])
    side_cur = side(pay_cur, rec_cur)
    side_cp_bank = side(to_bank, from_bank)
    side_ts, side_fmt = ts[side_rows], fmt[side_rows]
    V = n_views

    f: dict[str, np.ndarray] = {}
    count = views.counts(side_pos, side_view, n, V)
    priced = views.counts(side_pos, side_amt_view, n, V)
    f["transaction_count"] = count
    f["total_sent"] = views.sums(s_pos, sent_amt_view, sent_paid, n, V)
    f["total_received"] = views.sums(r_pos, recv_amt_view, recv_received, n, V)
    # The sum of a node's priced sides: its sent sum plus its received sum without self-transfers.
    received_other = views.sums(r_pos[r_other], recv_amt_view[r_other], recv_received[r_other], n, V)
    f["avg_amount"] = views.ratio(f["total_sent"] + received_other, priced)
    f["max_amount"] = views.extremes(side_pos, side_amt_view, side_amt, n, V, np.maximum)
    f["min_amount"] = views.extremes(side_pos, side_amt_view, side_amt, n, V, np.minimum)
    first = views.int_extremes(side_pos, side_view, side_ts, n, V, np.minimum)
    last = views.int_extremes(side_pos, side_view, side_ts, n, V, np.maximum)
    span = np.where(count > 0, (last - first) / SECONDS_PER_DAY, 0.0)
    f["temporal_span"] = span
    f["transaction_frequency"] = count / np.maximum(1.0, span)
    f["currency_diversity"] = views.distinct(side_pos, side_view, side_cur, n, V)
    f["bank_diversity"] = views.distinct(side_pos, side_view, side_cp_bank, n, V)
    hour = (side_ts // 3600) % 24
    weekday = (side_ts // SECONDS_PER_DAY + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    night = (hour >= 22) | (hour <= 6)
    f["night_ratio"] = views.ratio(views.counts(side_pos[night], side_view[night], n, V), count)
    weekend = weekday >= 5
    f["weekend_ratio"] = views.ratio(views.counts(side_pos[weekend], side_view[weekend], n, V), count)
    crypto = np.zeros(len(side_rows), dtype=bool)
    if CRYPTO in currencies:
        crypto |= side_cur == currencies.index(CRYPTO)
    if CRYPTO in formats:
        crypto |= side_fmt == formats.index(CRYPTO)
    f["is_crypto_bank"] = views.counts(side_pos[crypto], side_view[crypto], n, V) > 0
    f["is_international"] = f["currency_diversity"] > 1
    f["is_high_frequency"] = f["transaction_frequency"] > 1

    f["in_degree"] = views.counts(r_pos, r_view, n, V)
    f["out_degree"] = views.counts(s_pos, s_view, n, V)
    f["distinct_in_counterparties"] = views.distinct(r_pos, r_view, src[r_rows], n, V)
    f["distinct_out_counterparties"] = views.distinct(s_pos, s_view, dst[s_rows], n, V)
    f["sent_mean"], f["sent_std"] = views.mean_std(s_pos, sent_amt_view, sent_paid, n, V)
    f["sent_max"] = views.extremes(s_pos, sent_amt_view, sent_paid, n, V, np.maximum)
    f["received_mean"], f["received_std"] = views.mean_std(r_pos, recv_amt_view, recv_received, n, V)
    f["received_max"] = views.extremes(r_pos, recv_amt_view, recv_received, n, V, np.maximum)
    selfs = is_self[s_rows]
    f["self_transfer_count"] = views.counts(s_pos[selfs], s_view[selfs], n, V)
    f["unpriced_share"] = views.ratio(count - priced, count)
    # Rows per (node, format) in one pass: a table of n x formats x views counts.
    if formats:
        per_format = views.counts(side_pos * len(formats) + side_fmt, side_view, n * len(formats), V)
        per_format = per_format.reshape(n, len(formats), V)
        for code, name in enumerate(formats):
            f[format_share_name(name)] = views.ratio(per_format[:, code, :], count)

    names = SPLIT_VIEWS if split_views else ("all",)
    out = {}
    for v, view in enumerate(names):
        columns = [pl.Series("node_id", ids, dtype=pl.Int64)]
        for name in node_feature_names(vocab):
            dtype = pl.Int64 if name in _COUNTS else pl.Int8 if name in _FLAGS else pl.Float64
            columns.append(pl.Series(name, np.ascontiguousarray(f[name][:, v])).cast(dtype))
        out[view] = pl.DataFrame(columns)
    return out


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
               mode: str, priced_from: dict | None = None, data_chunks: list[str] | None = None,
               partitions: list[str] | None = None) -> Output:
    """Node features for node ids [lo, hi), from only the rows that touch them.

    With ``partitions`` (node chunk ``part`` = partition ``part``) the rows are read from the
    partition's own row groups; otherwise from ``data_chunks`` with the node-id range as a
    filter. Either way the Parquet reader materialises only matching rows, so memory follows
    the chunk, not the input. ``mode`` is ``node_features_from``; each view is one table,
    ``features_<view>`` for the first view, ``xor_<view>`` for the others (``steps._view_codec``).
    """
    needed = list(INPUT_COLUMNS) + (["split"] if mode == "split" else [])
    if partitions:
        mine = pl.col("part") == part
        if mode == "train":
            mine = mine & (pl.col("split") == 0)
        tx = pl.concat([inputs.scan(partitions, table).filter(mine).select(needed)
                        for table in ("by_src", "by_dst")]).collect(engine="streaming")
        tx = tx.sort("row")  # node_features sums in row order
    else:
        touches = pl.col("src").is_between(lo, hi - 1) | pl.col("dst").is_between(lo, hi - 1)
        if mode == "train":
            touches = touches & (pl.col("split") == 0)
        tx = (inputs.scan(data_chunks or [], "transactions").filter(touches).select(needed)
              .collect(engine="streaming"))
    rates = None if usd_per_unit is None else {int(k): v for k, v in usd_per_unit.items()}
    since = None if priced_from is None else {int(k): v for k, v in priced_from.items()}
    if mode == "train" and since is not None:
        # Training rows only: a rate usable only from a later split on is no rate here.
        since = {c: (s if s == 0 else None) for c, s in since.items()}
    feats = node_features(tx, np.arange(lo, hi, dtype=np.int64), usd_per_unit=rates, vocab=vocab,
                          priced_from=since, split_views=mode == "split")
    first = next(iter(feats.values()))
    return Output(tables=encode_views(feats),
                  metadata={"num_accounts": first.height, "num_features": first.width - 1})


def _ranges(n: int, size: int) -> list[tuple[int, int]]:
    return [(start, min(start + size, n)) for start in range(0, n, size)] or [(0, 0)]


def compute(ctx: StepContext) -> Output:
    """Node chunks of consecutive ids; the step checkpoint lists them (they are the table)."""
    data = ctx.step("data_loaded")
    summary = data.value("summary")
    n_nodes, n_rows = summary["num_accounts"], summary["rows"]
    size = ctx.sizing("chunk_size", num_accounts=n_nodes, num_rows=n_rows)
    raw = ctx.params["currency"] == "raw"
    mode = ctx.params["node_features_from"]
    if mode == "all":
        ctx.warn("node_features_from='all': every node feature is computed from all rows, validation "
                 "and test periods included; training features see the future (transductive)")
    coded = coded_chunks(data)
    ranges = _ranges(n_nodes, size)
    base = {"usd_per_unit": None if raw else data.value("usd_per_unit"), "vocab": data.value("vocab"),
            "priced_from": None if raw else data.value("priced_from"), "mode": mode}
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
    node_views = list(SPLIT_VIEWS) if mode == "split" else ["all"]
    columns = ctx.inputs.scan([parts[0].name], f"features_{node_views[0]}").collect_schema().names()
    return Output(values={"parts": parts_value(parts), "columns": columns, "views": node_views},
                  metadata={"num_accounts": n_nodes, "num_features": len(columns) - 1})


STEP = Step("node_features", "Creating Node Features", reads=("data_loaded",),
            params=("currency", "node_features_from"),
            code=(), compute=compute)
