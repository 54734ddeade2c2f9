"""Step ``data_loaded``: vocabularies, the account index, coded transactions, the temporal split.

Every function here is chunk-independent: the vocabularies and the node index are sorted, the
per-day counts add up over chunks, and the split of a row depends only on its timestamp.
"""
from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import polars as pl

from amlgraph.errors import ConfigError, InputError
from amlgraph.schema import TEST, TRAIN, VAL

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


def build_node_index(tx_accounts: pl.DataFrame, accounts: pl.DataFrame | None) -> pl.DataFrame:
    """Number every account (bank, account) in sorted order.

    Args:
        tx_accounts: columns ``bank`` (Int64), ``account`` (String): the accounts that transact,
            duplicates allowed (e.g. the senders and receivers of all chunks stacked).
        accounts: the same two columns from the accounts file, or None. Accounts listed there
            that never transact still get a node id.

    Returns:
        Frame of shape (n_nodes, 3): ``node_id`` (Int64, 0..n_nodes-1), ``bank``, ``account``,
        sorted by (bank, account). The numbering depends only on the set of accounts.
    """
    frames = [tx_accounts] + ([accounts] if accounts is not None else [])
    both = pl.concat(
        [f.select(pl.col("bank").cast(pl.Int64), pl.col("account").cast(pl.String)) for f in frames]
    )
    if both["bank"].null_count() or both["account"].null_count():
        raise InputError("account index: bank and account must not be missing",
                         hint="check the reader's validation of the transaction and accounts files")
    nodes = both.unique().sort(["bank", "account"])
    return nodes.select(pl.int_range(pl.len(), dtype=pl.Int64).alias("node_id"), "bank", "account")


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


_HEX9 = r"^[0-9A-F]{9}$"
_MAX_BANK = 1 << 27  # bank * 2**36 + 36-bit account stays below 2**63


def _integer_keys_are_exact(index: pl.DataFrame) -> bool:
    """Whether (bank, account) -> bank * 2**36 + int(account, 16) is one-to-one on this index."""
    return bool(index.select(pl.col("account").str.contains(_HEX9).all()
                             & (pl.col("bank") >= 0).all() & (pl.col("bank") < _MAX_BANK).all()).item())


def _int_key(bank: str, account: str) -> pl.Expr:
    # strict=False: a non-canonical account in raw gets null, i.e. "missing from the index".
    hexval = pl.when(pl.col(account).str.contains(_HEX9) & pl.col(bank).is_between(0, _MAX_BANK - 1)).then(
        pl.col(account).str.to_integer(base=16, strict=False))
    return (pl.col(bank).cast(pl.Int64) * (1 << 36) + hexval).alias("key")


#: Integer account keys the reader's batches carry (see :func:`with_account_keys`).
KEY_COLUMNS = ("from_key", "to_key")


def with_account_keys(raw: pl.DataFrame) -> pl.DataFrame:
    """``raw`` plus ``from_key`` / ``to_key``: ``bank * 2**36 + int(account, 16)``, null unless canonical.

    For canonical IBM accounts (9 upper-case hex digits, bank below 2**27) the key is one-to-one
    with (bank, account) and sorts like it (fixed-width upper-case hex sorts like its value), so
    the account index and the encoding can work on integers instead of strings.
    """
    return raw.with_columns(_int_key("from_bank", "from_account").alias("from_key"),
                            _int_key("to_bank", "to_account").alias("to_key"))


_ACCOUNT_KEY = (("from_account", "from_key"), ("to_account", "to_key"))

#: Columns of a stored reader batch, as a scan of several batches reads them: the reader's
#: columns (``ingest_validate.typed_trans``) and :data:`KEY_COLUMNS`. An account column a batch
#: does not store (:func:`drop_keyed_accounts`) is read as nulls, which :func:`restore_accounts`
#: fills from the keys.
RAW_SCHEMA = {
    "row": pl.Int64, "timestamp": pl.Int64, "from_bank": pl.Int64, "from_account": pl.String,
    "to_bank": pl.Int64, "to_account": pl.String, "amount_received": pl.Float64,
    "receiving_currency": pl.String, "amount_paid": pl.Float64, "payment_currency": pl.String,
    "payment_format": pl.String, "is_laundering": pl.Int8, "from_key": pl.Int64, "to_key": pl.Int64,
}


def drop_keyed_accounts(raw: pl.DataFrame) -> pl.DataFrame:
    """Drop each account string that its key already holds (exactly; see :func:`with_account_keys`).

    The stored reader batches keep the strings only of non-canonical accounts: an account column
    whose rows all have keys is not stored at all, and in the others the keyed strings are null.
    Either costs nothing to write and is not parsed back. :func:`restore_accounts` undoes it.
    """
    keyed = [acc for acc, key in _ACCOUNT_KEY if not raw[key].null_count()]
    return raw.drop(keyed).with_columns(pl.when(pl.col(key).is_null()).then(pl.col(acc)).alias(acc)
                                        for acc, key in _ACCOUNT_KEY if acc not in keyed)


def restore_accounts(frame: pl.DataFrame, pairs: tuple[tuple[str, str], ...] = _ACCOUNT_KEY) -> pl.DataFrame:
    """Put back the account strings :func:`drop_keyed_accounts` dropped or nulled, from their keys.

    Args:
        frame: a frame with each key column of ``pairs``; an account column may be missing
            (then every row has its key) or null where the key holds the account.
        pairs: the (account string, Int64 key) column pairs to restore.

    Returns:
        ``frame`` with every account column of ``pairs`` (a restored one where ``RAW_SCHEMA``
        places it).
    """
    dropped = [pl.lit(None, pl.String).alias(acc) for acc, _ in pairs if acc not in frame.columns]
    if dropped:  # a dropped column is a column of nulls, put back where RAW_SCHEMA places it
        frame = frame.with_columns(dropped)
        frame = frame.select([c for c in RAW_SCHEMA if c in frame.columns]
                             + [c for c in frame.columns if c not in RAW_SCHEMA])
    fills = []
    for acc, key in pairs:
        need = frame[acc].is_null() & frame[key].is_not_null()
        if need.any():
            text = _hex9(frame[key].fill_null(0).to_numpy() & ((1 << 36) - 1))
            fills.append(pl.when(need).then(text).otherwise(pl.col(acc)).alias(acc))
    return frame.with_columns(fills) if fills else frame


def build_node_index_keyed(keys: np.ndarray, accounts: pl.DataFrame | None) -> tuple[pl.DataFrame, np.ndarray] | None:
    """:func:`build_node_index` from the integer keys of the accounts that transact, with its keys.

    Only the keys are deduplicated (hashing integers, not strings); bank and account are then
    decoded from each unique key, which is exact because the key is one-to-one for canonical
    accounts.

    Args:
        keys: ``from_key`` / ``to_key`` values (Int64, non-null), duplicates allowed.
        accounts: ``bank`` and ``account`` of the accounts file, or None.

    Returns:
        ``(nodes, keys)``: the same frame as :func:`build_node_index` and its keys in node-id
        order (as :func:`node_keys` would give them); None when an account of ``accounts`` has
        no key (then use :func:`build_node_index`).
    """
    parts = [np.asarray(keys, dtype=np.int64)]
    if accounts is not None:
        acc = accounts.select(_int_key("bank", "account"))["key"]
        if acc.null_count():
            return None
        parts.append(acc.to_numpy())
    # sorted: the (bank, account) order (Polars: np.unique is ~20x slower on a few million keys)
    unique = pl.Series(np.concatenate(parts)).unique().sort().to_numpy()
    return pl.DataFrame({"node_id": np.arange(len(unique), dtype=np.int64),
                         "bank": unique >> 36, "account": _hex9(unique & ((1 << 36) - 1))}), unique


def _hex9(values: np.ndarray) -> pl.Series:
    """36-bit integers as 9 upper-case hex digits (the canonical IBM account string)."""
    shifts = np.arange(32, -1, -4, dtype=np.int64)
    digits = np.frombuffer(b"0123456789ABCDEF", dtype=np.uint8)[(values[:, None] >> shifts) & 15]
    return pl.Series(np.ascontiguousarray(digits).view("S9").ravel()).cast(pl.String)


def _positions_of(sorted_keys: np.ndarray, query: pl.Series) -> pl.Series:
    """Position of each query key in ``sorted_keys`` (ascending, unique); null where absent."""
    query = query.fill_null(-1)  # keys are >= 0: a missing key is simply not found
    order = query.arg_sort().to_numpy()
    q = query.to_numpy()[order]
    pos = np.minimum(np.searchsorted(sorted_keys, q), max(len(sorted_keys) - 1, 0))
    found = (sorted_keys[pos] == q) if len(sorted_keys) else np.zeros(len(q), dtype=bool)
    out = np.empty(len(q), dtype=np.int64)
    out[order] = np.where(found, pos, -1)
    series = pl.Series(out)
    return series.set(series == -1, None) if not found.all() else series


def node_keys(nodes: pl.DataFrame) -> np.ndarray | None:
    """The integer keys of a node index in node-id order (ascending), or None if not all canonical."""
    index = nodes.select(pl.col("bank").cast(pl.Int64), pl.col("account").cast(pl.String))
    if not _integer_keys_are_exact(index):
        return None
    return index.select(_int_key("bank", "account"))["key"].to_numpy()


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
        (``payment_currency``, ``receiving_currency`` names and ``ratio``, as
        :func:`amlgraph.steps.currency.currency_pairs` with names instead of codes).
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
        (pl.col("amount_received") / pl.col("amount_paid")).alias("ratio"))
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


def temporal_split_boundaries(day_counts: dict[int, int],
                              fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)) -> tuple[int, int]:
    """Choose the two day boundaries of the temporal split as IBM Multi-GNN does.

    The days from the first to the last day present (empty days included, as zeros) are
    numbered 0..D-1. For every pair i < j, the splits are days [0, i), [i, j), [j, D); the score is
    the largest relative error ``|share - fraction| / fraction`` of the three shares; the pair with
    the lowest score wins, the first in (i, j) order on ties.

    Args:
        day_counts: ``{day: count}`` as :func:`day_counts` returns, summed over all chunks.
        fractions: target shares of train, validation and test; each > 0, summing to 1.

    Returns:
        ``(b1, b2)`` absolute day indices: train = day < b1, val = b1 <= day < b2, test = day >= b2.

    Raises:
        ConfigError: bad fractions, or fewer than two days to split.
    """
    fr = tuple(float(f) for f in fractions)
    if len(fr) != 3 or any(not f > 0 for f in fr) or abs(sum(fr) - 1.0) > 1e-9:
        raise ConfigError(f"split fractions must be three numbers > 0 summing to 1 (got {fractions!r})")
    days = [d for d, c in day_counts.items() if c > 0]
    if len(days) < 2:
        raise ConfigError(f"a temporal split needs transactions on at least 2 days (got {len(days)})")
    first, last = min(days), max(days)
    totals = np.zeros(last - first + 1, dtype=np.int64)
    for d, c in day_counts.items():
        totals[d - first] += c
    cum = np.concatenate([[0], np.cumsum(totals)])
    total = cum[-1]
    i, j = np.triu_indices(len(totals), k=1)  # lexicographic (i, j) order, i < j
    shares = (cum[i], cum[j] - cum[i], total - cum[j])
    errors = [np.abs(s / total - f) / f for s, f in zip(shares, fr)]
    score = np.maximum(np.maximum(errors[0], errors[1]), errors[2])
    best = int(np.argmin(score))
    return first + int(i[best]), first + int(j[best])


def assign_split(timestamps: np.ndarray, boundaries: tuple[int, int], *,
                 unit: int = SECONDS_PER_DAY) -> np.ndarray:
    """Split code of each transaction from its time bucket.

    Args:
        timestamps: epoch seconds of shape (n_rows,).
        boundaries: ``(b1, b2)`` from :func:`temporal_split_boundaries`, in buckets of ``unit``
            seconds (days by default; 1 for boundaries already given in epoch seconds).
        unit: bucket width in seconds.

    Returns:
        Int8 array of shape (n_rows,): TRAIN (0) for bucket < b1, VAL (1) for b1 <= bucket < b2,
        TEST (2) for bucket >= b2.
    """
    b1, b2 = boundaries
    bucket = np.asarray(timestamps, dtype=np.int64) // unit
    out = np.full(bucket.shape, TRAIN, dtype=np.int8)
    out[bucket >= b1] = VAL
    out[bucket >= b2] = TEST
    return out
