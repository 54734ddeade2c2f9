from __future__ import annotations

import itertools

import numpy as np
import pandas as pd
import polars as pl
import pytest

from amlgraph.errors import ConfigError, InputError
from amlgraph.schema import TEST, TRAIN, VAL
from amlgraph.steps.currency import currency_pairs
from amlgraph.steps.data_loaded import (
    CODED_COLUMNS, RAW_SCHEMA, assign_split, batch_summary, build_node_index, build_node_index_keyed,
    build_vocab, drop_keyed_accounts, encode_transactions, node_keys, restore_accounts,
    temporal_split_boundaries, with_account_keys,
)
from amlgraph.steps._parse import day_counts


def _raw(n=300, seed=0):
    rng = np.random.default_rng(seed)
    accounts = [f"{x:09X}" for x in rng.integers(0x80000000, 0x8FFFFFFFF, 40)]
    banks = rng.integers(1, 5, 40) * 7
    fi, ti = rng.integers(0, 40, n), rng.integers(0, 40, n)
    cur = np.array(["US Dollar", "Euro", "Yen", "Bitcoin"])
    fmts = np.array(["ACH", "Wire", "Cheque", "Credit Card"])
    return pl.DataFrame({
        "row": np.arange(n, dtype=np.int64), "timestamp": rng.integers(0, 10**6, n),
        "from_bank": banks[fi].astype(np.int64), "from_account": np.array(accounts)[fi],
        "to_bank": banks[ti].astype(np.int64), "to_account": np.array(accounts)[ti],
        "amount_received": rng.random(n) * 100, "receiving_currency": cur[rng.integers(0, 4, n)],
        "amount_paid": rng.random(n) * 100, "payment_currency": cur[rng.integers(0, 4, n)],
        "payment_format": fmts[rng.integers(0, 4, n)],
        "is_laundering": (rng.random(n) < 0.1).astype(np.int8),
    })


def _tx_accounts(raw: pl.DataFrame) -> pl.DataFrame:
    return pl.concat([
        raw.select(pl.col("from_bank").alias("bank"), pl.col("from_account").alias("account")),
        raw.select(pl.col("to_bank").alias("bank"), pl.col("to_account").alias("account")),
    ])


def test_build_vocab_sorted_and_deduplicated():
    v = build_vocab(["Yen", "Euro", "Yen"], ["Wire", "ACH"], [10, 3, 10, 200])
    assert v == {"currencies": ["Euro", "Yen"], "payment_formats": ["ACH", "Wire"], "banks": [3, 10, 200]}


def test_node_index_matches_pandas_and_ignores_order():
    raw = _raw()
    acc = pl.DataFrame({"bank": [999, 7], "account": ["ZZZ", "AAA"]})  # never transact
    got = build_node_index(_tx_accounts(raw), acc)
    ref = (pd.concat([_tx_accounts(raw).to_pandas(), acc.to_pandas()]).drop_duplicates()
           .sort_values(["bank", "account"]).reset_index(drop=True))
    assert got.columns == ["node_id", "bank", "account"]
    assert got["node_id"].to_list() == list(range(len(ref)))
    assert got["bank"].to_list() == ref["bank"].tolist()
    assert got["account"].to_list() == ref["account"].tolist()
    assert (999, "ZZZ") in set(zip(got["bank"], got["account"]))
    shuffled = _tx_accounts(raw).sample(fraction=1.0, shuffle=True, seed=1)
    halves = build_node_index(pl.concat([shuffled.tail(300), shuffled.head(300)]), acc.reverse())
    assert halves.equals(got)


def test_same_account_string_at_two_banks_is_two_nodes():
    got = build_node_index(pl.DataFrame({"bank": [1, 2], "account": ["A", "A"]}), None)
    assert got.height == 2


def test_encode_transactions_matches_pandas_merge():
    raw = _raw()
    nodes = build_node_index(_tx_accounts(raw), None)
    vocab = build_vocab(pl.concat([raw["receiving_currency"], raw["payment_currency"]]),
                        raw["payment_format"], pl.concat([raw["from_bank"], raw["to_bank"]]))
    got = encode_transactions(raw, nodes, vocab)
    assert tuple(got.columns) == CODED_COLUMNS
    r, nd = raw.to_pandas(), nodes.to_pandas()
    m = r.merge(nd.rename(columns={"bank": "from_bank", "account": "from_account", "node_id": "src"}),
                how="left").merge(
        nd.rename(columns={"bank": "to_bank", "account": "to_account", "node_id": "dst"}), how="left")
    np.testing.assert_array_equal(got["src"].to_numpy(), m["src"].to_numpy())
    np.testing.assert_array_equal(got["dst"].to_numpy(), m["dst"].to_numpy())
    cur = {c: i for i, c in enumerate(vocab["currencies"])}
    np.testing.assert_array_equal(got["payment_currency"].to_numpy(), r["payment_currency"].map(cur))
    np.testing.assert_array_equal(got["receiving_currency"].to_numpy(), r["receiving_currency"].map(cur))
    assert got["payment_format"].dtype == pl.Int16
    np.testing.assert_array_equal(got["row"].to_numpy(), r["row"].to_numpy())


def _keyed_accounts(raw: pl.DataFrame):
    k = with_account_keys(raw)
    return pl.concat([k["from_key"], k["to_key"]]).to_numpy()


def test_integer_keys_give_the_string_index_and_encoding():
    """The integer path (canonical hex accounts) numbers and encodes exactly as the string path."""
    raw = _raw(2000, seed=3)
    acc = pl.DataFrame({"bank": [0, 134_217_727, 7], "account": ["000000000", "FFFFFFFFF", "0000000A1"]})
    want = build_node_index(_tx_accounts(raw), acc)
    got, got_keys = build_node_index_keyed(_keyed_accounts(raw), acc)
    assert got.equals(want)
    assert np.array_equal(got_keys, node_keys(got))
    vocab = build_vocab(pl.concat([raw["receiving_currency"], raw["payment_currency"]]),
                        raw["payment_format"], pl.concat([raw["from_bank"], raw["to_bank"]]))
    assert encode_transactions(with_account_keys(raw), got, vocab).equals(encode_transactions(raw, want, vocab))
    keys = node_keys(got)
    assert (np.diff(keys) > 0).all()  # node-id order is key order
    assert encode_transactions(with_account_keys(raw), got, vocab, keys=keys).equals(
        encode_transactions(raw, want, vocab))


@pytest.mark.parametrize("account, bank", [("8000ebd30", 7), ("80000EBD3", 2**27), ("ABC", 7), ("08000EBD30", 7)])
def test_non_canonical_accounts_get_no_key_and_fall_back(account, bank):
    """Lower-case hex, a 10-digit string or a huge bank would collide or overflow: no key, string path."""
    raw = _raw(50).with_columns(pl.lit(account).alias("from_account"), pl.lit(bank, pl.Int64).alias("from_bank"))
    keyed = with_account_keys(raw)
    assert keyed["from_key"].null_count() == raw.height
    assert node_keys(build_node_index(_tx_accounts(raw), None)) is None
    assert build_node_index_keyed(np.ones(3, np.int64), pl.DataFrame(
        {"bank": [bank], "account": [account]})) is None
    nodes = build_node_index(_tx_accounts(raw), None)
    vocab = build_vocab(pl.concat([raw["receiving_currency"], raw["payment_currency"]]),
                        raw["payment_format"], pl.concat([raw["from_bank"], raw["to_bank"]]))
    assert encode_transactions(keyed, nodes, vocab).equals(encode_transactions(raw, nodes, vocab))


def test_encode_unknown_account_or_currency_is_input_error():
    raw = _raw()
    nodes = build_node_index(_tx_accounts(raw).head(5), None)
    vocab = build_vocab(["US Dollar", "Euro", "Yen", "Bitcoin"], ["ACH", "Wire", "Cheque", "Credit Card"], [])
    with pytest.raises(InputError, match="missing from the node index"):
        encode_transactions(raw, nodes, vocab)
    with pytest.raises(InputError, match="missing from the node index"):
        encode_transactions(with_account_keys(raw), nodes, vocab)
    with pytest.raises(InputError, match="missing from the node index"):
        encode_transactions(with_account_keys(raw), None, vocab, keys=node_keys(nodes))
    odd = with_account_keys(raw.with_columns(pl.lit("not-hex").alias("to_account")))  # null keys
    with pytest.raises(InputError, match="missing from the node index"):
        encode_transactions(odd, None, vocab, keys=node_keys(build_node_index(_tx_accounts(raw), None)))
    nodes = build_node_index(_tx_accounts(raw), None)
    vocab["currencies"] = ["Euro"]
    with pytest.raises(InputError, match="vocabulary"):
        encode_transactions(raw, nodes, vocab)


@pytest.mark.parametrize("cuts", [(), (1,), (100, 101, 250)])
def test_batch_summaries_combine_to_the_whole_and_match_direct_answers(cuts):
    raw = with_account_keys(_raw(n=400, seed=3))
    bounds = [0, *cuts, raw.height]
    parts = [batch_summary(raw.slice(a, b - a)) for a, b in zip(bounds, bounds[1:])]
    values, keys, pairs = batch_summary(raw)
    assert values["currencies"] == sorted(set(raw["receiving_currency"]) | set(raw["payment_currency"]))
    assert values["payment_formats"] == sorted(set(raw["payment_format"]))
    assert {int(d): n for d, n in values["days"].items()} == day_counts(raw["timestamp"].to_numpy())
    assert values["t_min"] == raw["timestamp"].min()
    direct = np.unique(np.concatenate([raw["from_key"].to_numpy(), raw["to_key"].to_numpy()]))
    np.testing.assert_array_equal(keys, direct)
    # combined over the batches
    assert sorted({c for v, _, _ in parts for c in v["currencies"]}) == values["currencies"]
    days: dict[int, int] = {}
    for v, _, _ in parts:
        for d, n in v["days"].items():
            days[int(d)] = days.get(int(d), 0) + n
    assert days == {int(d): n for d, n in values["days"].items()}
    assert min(v["t_min"] for v, _, _ in parts) == values["t_min"]
    np.testing.assert_array_equal(np.unique(np.concatenate([k for _, k, _ in parts])), keys)
    assert pl.concat([p for _, _, p in parts]).equals(pairs)
    # the pairs are currency_pairs with names: the same rows and ratios
    vocab = build_vocab(values["currencies"], values["payment_formats"], [])
    code = {name: i for i, name in enumerate(vocab["currencies"])}
    coded = raw.with_columns(pl.col(c).replace_strict(code, return_dtype=pl.Int16)
                             for c in ("payment_currency", "receiving_currency"))
    assert pairs.with_columns(pl.col(c).replace_strict(code, return_dtype=pl.Int16)
                              for c in ("payment_currency", "receiving_currency")).drop("timestamp").equals(currency_pairs(coded))


def test_batch_summary_has_no_keys_when_an_account_has_none():
    raw = with_account_keys(_raw().with_columns(pl.lit("odd account").alias("to_account")))
    assert batch_summary(raw)[1] is None


def test_day_counts_add_up_over_chunks():
    ts = np.random.default_rng(2).integers(1_661_990_400, 1_661_990_400 + 20 * 86_400, 500)
    whole = day_counts(ts)
    summed: dict[int, int] = {}
    for chunk in np.array_split(ts, 7):
        for d, c in day_counts(chunk).items():
            summed[d] = summed.get(d, 0) + c
    assert summed == whole
    ref = pd.Series(ts // 86_400).value_counts().to_dict()
    assert whole == ref


def _multi_gnn_reference(counts: dict, fractions):
    days = range(min(counts), max(counts) + 1)
    d_ts = np.array([counts.get(d, 0) for d in days])
    scores = {}
    for i, j in itertools.combinations(range(len(d_ts)), 2):
        totals = [d_ts[:i].sum(), d_ts[i:j].sum(), d_ts[j:].sum()]
        s = np.sum(totals)
        scores[(i, j)] = max(abs(v / s - t) / t for v, t in zip(totals, fractions))
    i, j = min(scores, key=scores.get)
    return min(counts) + i, min(counts) + j


def test_split_boundaries_crafted_example():
    # 10 days of 100 rows: 60/20/20 exactly at days 6 and 8.
    counts = {19_236 + d: 100 for d in range(10)}
    assert temporal_split_boundaries(counts) == (19_236 + 6, 19_236 + 8)
    # a gap (day 3) counts as an empty day
    counts = {0: 500, 1: 100, 2: 100, 4: 150, 5: 150}
    assert temporal_split_boundaries(counts) == _multi_gnn_reference(counts, (0.6, 0.2, 0.2))
    assert temporal_split_boundaries(counts) == (2, 5)  # train 600, val 250, test 150


@pytest.mark.parametrize("seed", range(5))
def test_split_boundaries_match_multi_gnn(seed):
    rng = np.random.default_rng(seed)
    counts = {100 + d: int(c) for d, c in enumerate(rng.integers(0, 1000, rng.integers(3, 25)))}
    counts[100] = max(counts[100], 1)
    counts[max(counts)] = max(counts[max(counts)], 1)
    fr = (0.5, 0.3, 0.2)
    assert temporal_split_boundaries(counts, fr) == _multi_gnn_reference(counts, fr)


@pytest.mark.parametrize("bad", [(0.6, 0.3, 0.2), (1.0, 0.0, 0.0), (0.5, 0.5), (0.7, -0.1, 0.4)])
def test_split_fractions_validated(bad):
    with pytest.raises(ConfigError, match="fractions"):
        temporal_split_boundaries({0: 5, 1: 5, 2: 5}, bad)


def test_split_needs_two_days():
    with pytest.raises(ConfigError, match="2 days"):
        temporal_split_boundaries({3: 10})


def test_assign_split():
    ts = np.array([0, 86_399, 86_400, 2 * 86_400 + 5, 5 * 86_400], dtype=np.int64)
    got = assign_split(ts, (1, 2))
    assert got.dtype == np.int8
    assert got.tolist() == [TRAIN, TRAIN, VAL, TEST, TEST]


@pytest.mark.parametrize("odd", [None, "from", "to", "both"])
def test_stored_batches_drop_keyed_accounts_and_restore_them(tmp_path, odd):
    """A batch whose accounts all have keys stores no account strings; one with a non-canonical
    account keeps that column with only its string; a scan of such batches restores every one."""
    from amlgraph.store import CheckpointStore, MemoryStore
    from amlgraph.runner._context import StoreInputs

    batches = [with_account_keys(_raw(200, seed=s).with_columns(pl.col("row") + 200 * s)) for s in range(3)]
    if odd is not None:  # the middle batch gets a lower-case account on one side or both
        sides = ["from", "to"] if odd == "both" else [odd]
        batches[1] = with_account_keys(batches[1].drop("from_key", "to_key").with_columns(
            pl.when(pl.col("row") % 7 == 0).then(pl.lit("8000ebd30")).otherwise(pl.col(f"{side}_account"))
            .alias(f"{side}_account") for side in sides))
    assert all(b.schema == pl.Schema(RAW_SCHEMA) for b in batches)
    stored = [drop_keyed_accounts(b) for b in batches]
    assert "from_account" not in stored[0].columns and "to_account" not in stored[0].columns
    for side in ("from", "to"):
        kept = odd in (side, "both")
        assert (f"{side}_account" in stored[1].columns) == kept
        if kept:  # only the non-canonical strings are stored
            assert stored[1][f"{side}_account"].drop_nulls().unique().to_list() == ["8000ebd30"]
    for b, s in zip(batches, stored):
        assert restore_accounts(s).equals(b)
    for store in (CheckpointStore(tmp_path / f"c-{odd}"), MemoryStore()):
        for i, s in enumerate(stored):
            store.save(f"r_chunk_{i}", step="r", key="k", chunk=i, tables={"raw": s}, compress=False)
        scanned = StoreInputs(store).scan([f"r_chunk_{i}" for i in range(3)], "raw", schema=RAW_SCHEMA).collect()
        assert restore_accounts(scanned).equals(pl.concat(batches))


def test_raw_schema_is_what_the_reader_gives(tmp_path):
    """RAW_SCHEMA (how a scan reads stored batches) is the reader's output with its keys."""
    from amlgraph.ingest import read_transactions
    from amlgraph.schema import TRANS_HEADER

    path = tmp_path / "X_Trans.csv"
    path.write_text(",".join(TRANS_HEADER) + "\n"
                    "2022/09/01 00:20,10,8000EBD30,10,8000EBD30,3697.34,US Dollar,3697.34,US Dollar,Reinvestment,0\n"
                    "2022/09/01 00:20,3208,8000F4580,1,8000F5340,0.01,US Dollar,0.01,US Dollar,Cheque,1\n")
    batch = next(iter(read_transactions(path)))
    assert with_account_keys(batch).schema == pl.Schema(RAW_SCHEMA)
