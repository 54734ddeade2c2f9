"""The account index: (bank, account) -> node id, and the integer account keys of the batches.

Node ids are the sorted order of (bank, account) over the transactions and the accounts file:
deterministic and independent of chunking. A canonical account (9 hex characters at a bank
below 2**27) also has an integer key, ``bank * 2**36 + int(account, 16)``, ordered as the pair:
the batches carry keys instead of strings wherever they can.
"""
from __future__ import annotations

import numpy as np
import polars as pl

from amlgraph.errors import InputError


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


_HEX9 = r"^[0-9A-F]{9}$"
_MAX_BANK = 1 << 27  # bank * 2**36 + 36-bit account stays below 2**63


def _integer_keys_are_exact(index: pl.DataFrame) -> bool:
    """Whether (bank, account) -> bank * 2**36 + int(account, 16) is one-to-one on this index."""
    return bool(index.select(pl.col("account").str.contains(_HEX9).all()
                             & (pl.col("bank") >= 0).all() & (pl.col("bank") < _MAX_BANK).all()).item())


def _int_key(bank: str, account: str) -> pl.Expr:
    # strict=False: a non-canonical account in raw gets null, i.e. "missing from the index".
    in_range = pl.col(bank).is_between(0, _MAX_BANK - 1)
    hexval = pl.when(pl.col(account).str.contains(_HEX9) & in_range).then(
        pl.col(account).str.to_integer(base=16, strict=False))
    # The bank is clipped before the multiplication so that a bank id beyond _MAX_BANK (up to
    # 2**63 - 1) cannot wrap around int64; its key is null either way (hexval is null).
    bank_part = pl.when(in_range).then(pl.col(bank).cast(pl.Int64)).otherwise(0) * (1 << 36)
    return (bank_part + hexval).alias("key")


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
