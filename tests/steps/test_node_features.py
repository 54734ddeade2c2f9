from __future__ import annotations

import numpy as np
import pandas as pd
import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from amlgraph.errors import ConfigError
from amlgraph.steps.node_features import (
    NODE_FEATURES, SPLIT_VIEWS, node_feature_names, node_features, partition_rows,
)

RATES = {c: 0.5 + 0.25 * c for c in range(15)}


def nf(tx, ids, **kwargs) -> pl.DataFrame:
    """The one view of node_features without split views."""
    out = node_features(tx, ids, **kwargs)
    assert list(out) == ["all"]
    return out["all"]


def reference(tx: pd.DataFrame, node_ids, rates, vocab, *, view: int | None = None,
              priced_from: dict | None = None) -> pd.DataFrame:
    """Straightforward per-node implementation of docs/FEATURES.md.

    ``view`` (0 train, 1 val, 2 test): only rows with split <= view, and a currency's rate only
    where its ``priced_from`` <= view. A rate of None, or one not usable in the view, leaves the
    amount out of every amount feature (``unpriced_share`` counts it).
    """
    tx = tx.sort_values("row").reset_index(drop=True)
    if view is not None:
        tx = tx[tx["split"] <= view].reset_index(drop=True)

    def rate(c):
        if rates is None:
            return 1.0
        r = rates[int(c)]
        usable = r is not None and (priced_from is None or view is None
                                    or (priced_from[int(c)] is not None and priced_from[int(c)] <= view))
        return r if usable else np.nan

    paid = tx["amount_paid"] * tx["payment_currency"].map(rate)
    received = tx["amount_received"] * tx["receiving_currency"].map(rate)
    btc_cur = vocab["currencies"].index("Bitcoin")
    btc_fmt = vocab["payment_formats"].index("Bitcoin")
    dt = pd.to_datetime(tx["timestamp"], unit="s")
    hour, weekday = dt.dt.hour.to_numpy(), dt.dt.day_of_week.to_numpy()
    out = []
    for node in sorted(set(int(i) for i in node_ids)):
        sent = tx["src"] == node
        recv = tx["dst"] == node
        mine = sent | recv
        r = {"node_id": node}
        side_amt = np.where(sent[mine], paid[mine], received[mine])
        side_cur = np.where(sent[mine], tx["payment_currency"][mine], tx["receiving_currency"][mine])
        cp_bank = np.where(sent[mine], tx["to_bank"][mine], tx["from_bank"][mine])
        count = int(mine.sum())
        priced_amt = side_amt[~np.isnan(side_amt)]
        r["transaction_count"] = count
        r["total_sent"] = sum(paid[sent].dropna().tolist())  # sequential, in row order
        r["total_received"] = sum(received[recv].dropna().tolist())
        r["avg_amount"] = sum(priced_amt.tolist()) / len(priced_amt) if len(priced_amt) else 0.0
        r["max_amount"] = float(priced_amt.max()) if len(priced_amt) else 0.0
        r["min_amount"] = float(priced_amt.min()) if len(priced_amt) else 0.0
        span = (tx["timestamp"][mine].max() - tx["timestamp"][mine].min()) / 86400 if count else 0.0
        r["temporal_span"] = span
        r["transaction_frequency"] = count / max(1.0, span)
        r["currency_diversity"] = len(set(side_cur.tolist()))
        r["bank_diversity"] = len(set(cp_bank.tolist()))
        r["night_ratio"] = float(np.isin(hour[mine], [22, 23, 0, 1, 2, 3, 4, 5, 6]).mean()) if count else 0.0
        r["weekend_ratio"] = float((weekday[mine] >= 5).mean()) if count else 0.0
        crypto = (side_cur == btc_cur) | (tx["payment_format"][mine] == btc_fmt).to_numpy()
        r["is_crypto_bank"] = int(crypto.any())
        r["is_international"] = int(r["currency_diversity"] > 1)
        r["is_high_frequency"] = int(r["transaction_frequency"] > 1)
        r["in_degree"] = int(recv.sum())
        r["out_degree"] = int(sent.sum())
        r["distinct_in_counterparties"] = tx["src"][recv].nunique()
        r["distinct_out_counterparties"] = tx["dst"][sent].nunique()
        for role, mask, amt in (("sent", sent, paid), ("received", recv, received)):
            x = amt[mask].dropna().to_numpy()
            r[f"{role}_mean"] = x.mean() if len(x) else 0.0
            r[f"{role}_std"] = x.std(ddof=0) if len(x) > 1 else 0.0
            r[f"{role}_max"] = x.max() if len(x) else 0.0
        r["self_transfer_count"] = int((sent & recv).sum())
        r["unpriced_share"] = float(np.isnan(side_amt).sum()) / count if count else 0.0
        for code, name in enumerate(vocab["payment_formats"]):
            share = (tx["payment_format"][mine] == code).mean() if count else 0.0
            r["format_share_" + name.lower().replace(" ", "_")] = float(share)
        out.append(r)
    return pd.DataFrame(out)


def compare(got: pl.DataFrame, want: pd.DataFrame) -> None:
    assert got.columns == list(want.columns)
    for name in got.columns:
        g, w = got[name].to_numpy(), want[name].to_numpy()
        if got[name].dtype == pl.Float64:
            np.testing.assert_allclose(g, w, rtol=1e-12, atol=1e-9, err_msg=name)
        else:
            np.testing.assert_array_equal(g, w, err_msg=name)


@pytest.mark.parametrize("rates", [RATES, None])
def test_matches_reference(make_tx, vocab, rates):
    tx = make_tx(seed=1)
    ids = np.arange(60)
    got = nf(tx, ids, usd_per_unit=rates, vocab=vocab)
    compare(got, reference(tx.to_pandas(), ids, rates, vocab))


def test_columns_and_dtypes(make_tx, vocab):
    got = nf(make_tx(), np.array([3, 1, 3, 2]), usd_per_unit=None, vocab=vocab)
    assert got.columns == ["node_id"] + node_feature_names(vocab)
    assert got.columns[1:1 + len(NODE_FEATURES)] == list(NODE_FEATURES)
    assert got["node_id"].to_list() == [1, 2, 3]
    assert got["transaction_count"].dtype == pl.Int64
    assert got["is_crypto_bank"].dtype == pl.Int8
    assert got["night_ratio"].dtype == pl.Float64
    assert "format_share_credit_card" in got.columns


def test_edge_cases(vocab):
    # node 0: only a self-transfer; node 1 -> 2 cross-currency; node 3 one row; node 9 no rows.
    tx = pl.DataFrame({
        "row": [0, 1, 2, 3], "timestamp": [0, 3600 * 23, 86_400 + 43_200, 86_400 * 3 + 43_200],
        "src": [0, 1, 1, 3], "dst": [0, 2, 2, 1], "from_bank": [5, 6, 6, 8], "to_bank": [5, 7, 7, 6],
        "amount_received": [10.0, 200.0, 50.0, 7.0], "amount_paid": [10.0, 100.0, 50.0, 7.0],
        "receiving_currency": [12, 4, 1, 12], "payment_currency": [12, 12, 1, 12],
        "payment_format": [5, 6, 1, 0],
    }).with_columns(pl.col(c).cast(pl.Int16) for c in
                    ("receiving_currency", "payment_currency", "payment_format"))
    got = nf(tx, np.array([0, 1, 2, 3, 9]), usd_per_unit=None, vocab=vocab)
    row = {r["node_id"]: r for r in got.iter_rows(named=True)}
    n0 = row[0]
    assert (n0["transaction_count"], n0["in_degree"], n0["out_degree"]) == (1, 1, 1)
    assert (n0["self_transfer_count"], n0["bank_diversity"]) == (1, 1)
    assert n0["total_sent"] == 10.0 and n0["total_received"] == 10.0 and n0["avg_amount"] == 10.0
    assert n0["distinct_in_counterparties"] == 1 and n0["format_share_reinvestment"] == 1.0
    n1 = row[1]
    assert n1["transaction_count"] == 3 and n1["out_degree"] == 2 and n1["in_degree"] == 1
    assert n1["currency_diversity"] == 2 and n1["is_international"] == 1
    assert n1["is_crypto_bank"] == 1  # row 2 is paid in Bitcoin
    assert n1["bank_diversity"] == 2  # banks 7 and 8
    assert n1["temporal_span"] == pytest.approx((86_400 * 3 + 43_200 - 3600 * 23) / 86_400)
    assert n1["night_ratio"] == pytest.approx(1 / 3)  # 23:00
    assert n1["weekend_ratio"] == pytest.approx(1 / 3)  # 1970-01-04 (a Sunday) noon
    assert n1["sent_mean"] == 75.0 and n1["sent_std"] == 25.0 and n1["received_std"] == 0.0
    n2 = row[2]
    assert n2["total_received"] == 250.0 and n2["max_amount"] == 200.0 and n2["min_amount"] == 50.0
    assert n2["distinct_in_counterparties"] == 1 and n2["is_crypto_bank"] == 1
    n3 = row[3]
    assert n3["transaction_count"] == 1 and n3["transaction_frequency"] == 1.0
    assert n3["temporal_span"] == 0.0 and n3["is_high_frequency"] == 0
    n9 = row[9]
    assert all(v == 0 for k, v in n9.items() if k != "node_id")


def test_partition_invariance_exact(make_tx, vocab):
    tx = make_tx(n=600, seed=3)
    ids = np.arange(60)
    whole = nf(tx, ids, usd_per_unit=RATES, vocab=vocab)
    rng = np.random.default_rng(5)
    part = rng.integers(0, 4, len(ids))
    pieces = []
    for p in range(4):
        mine = ids[part == p]
        touching = tx.filter(pl.col("src").is_in(mine) | pl.col("dst").is_in(mine))
        # add unrelated rows and shuffle: the result must not move by a bit
        extra = tx.sample(50, seed=p)
        chunk = pl.concat([touching, extra]).unique("row").sample(fraction=1.0, shuffle=True, seed=p)
        pieces.append(nf(chunk, mine, usd_per_unit=RATES, vocab=vocab))
    together = pl.concat(pieces).sort("node_id")
    assert_frame_equal(together, whole, check_exact=True)


@pytest.mark.parametrize("size", [1, 7, 25, 1_000])
def test_partition_rows_files_each_touching_row_once(make_tx, size):
    tx = make_tx(n=500, seed=4).sort("row")
    by_src, by_dst = partition_rows(tx, size)
    for table in (by_src, by_dst):
        assert table["part"].is_sorted()
        # input (row) order kept within a partition
        assert table.group_by("part").agg(pl.col("row").is_sorted().alias("s"))["s"].all()
    for k in range(-(-60 // size)):
        lo, hi = k * size, (k + 1) * size - 1
        want = tx.filter(pl.col("src").is_between(lo, hi) | pl.col("dst").is_between(lo, hi))["row"]
        got = pl.concat([by_src.filter(pl.col("part") == k)["row"], by_dst.filter(pl.col("part") == k)["row"]])
        assert got.sort().to_list() == want.sort().to_list()  # every touching row, none twice
    assert by_src.height == tx.height
    assert "split" in by_src.columns and "is_laundering" not in by_src.columns


def test_features_from_a_partition_equal_the_direct_ones(make_tx, vocab):
    tx = make_tx(n=600, seed=8)
    whole = nf(tx, np.arange(60), usd_per_unit=RATES, vocab=vocab)
    by_src, by_dst = partition_rows(tx.sort("row"), 16)
    pieces = [nf(pl.concat([by_src.filter(pl.col("part") == k), by_dst.filter(pl.col("part") == k)]),
                            np.arange(16 * k, min(60, 16 * (k + 1))), usd_per_unit=RATES, vocab=vocab)
              for k in range(4)]
    assert_frame_equal(pl.concat(pieces), whole, check_exact=True)


def test_empty_inputs(make_tx, vocab):
    tx = make_tx()
    assert nf(tx, np.array([], dtype=np.int64), usd_per_unit=None, vocab=vocab).height == 0
    views = node_features(tx.head(0), np.array([4, 2]), usd_per_unit=None, vocab=vocab, split_views=True)
    assert list(views) == list(SPLIT_VIEWS) and all(v["transaction_count"].sum() == 0 for v in views.values())
    got = nf(tx.head(0), np.array([4, 2]), usd_per_unit=None, vocab=vocab)
    assert got["node_id"].to_list() == [2, 4] and got["transaction_count"].sum() == 0


def test_missing_rate_is_config_error(make_tx, vocab):
    with pytest.raises(ConfigError, match="no rate"):
        nf(make_tx(), np.arange(3), usd_per_unit={0: 1.0}, vocab=vocab)


@settings(max_examples=15, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 10_000), parts=st.integers(1, 6), chunk=st.integers(1, 200))
def test_partition_and_row_chunking_property(make_tx, vocab, seed, parts, chunk):
    """Any partition of the nodes, each fed only its own rows in any order, is bit-identical."""
    tx = make_tx(n=250, n_nodes=40, seed=seed)
    ids = np.arange(40)
    whole = nf(tx, ids, usd_per_unit=RATES, vocab=vocab)
    label = np.random.default_rng(seed).integers(0, parts, len(ids))
    pieces = []
    for p in range(parts):
        mine = ids[label == p]
        rows = tx.filter(pl.col("src").is_in(mine) | pl.col("dst").is_in(mine))
        rows = pl.concat(list(rows.iter_slices(chunk))[::-1]) if rows.height else rows
        pieces.append(nf(rows, mine, usd_per_unit=RATES, vocab=vocab))
    assert_frame_equal(pl.concat(pieces).sort("node_id"), whole, check_exact=True)


# --- per-split views and prices (issue: time-honest, currency-honest features) ----------------------
PRICED_FROM = {c: (0 if c % 3 == 0 else 1 if c % 3 == 1 else 2) for c in range(15)}
SOME_UNPRICED = {c: (None if c in (1, 7) else 0.5 + 0.25 * c) for c in range(15)}


@pytest.mark.parametrize("rates,since", [(RATES, None), (RATES, PRICED_FROM), (SOME_UNPRICED, PRICED_FROM),
                                         (None, None)])
def test_each_view_matches_the_reference_on_its_prefix_of_rows(make_tx, vocab, rates, since):
    tx = make_tx(n=500, seed=21)
    ids = np.arange(60)
    got = node_features(tx, ids, usd_per_unit=rates, priced_from=since, vocab=vocab, split_views=True)
    assert list(got) == list(SPLIT_VIEWS)
    for v, view in enumerate(SPLIT_VIEWS):
        compare(got[view], reference(tx.to_pandas(), ids, rates, vocab, view=v, priced_from=since))


def test_training_view_ignores_later_rows_bit_for_bit(make_tx, vocab):
    """Changing or adding validation and test rows leaves the training view unchanged, and
    test rows leave the validation view unchanged."""
    tx = make_tx(n=500, seed=22)
    ids = np.arange(60)
    before = node_features(tx, ids, usd_per_unit=SOME_UNPRICED, priced_from=PRICED_FROM, vocab=vocab,
                           split_views=True)
    later = pl.col("split") == 2
    moved = tx.with_columns(pl.when(later).then(pl.col("amount_paid") * 1.5).otherwise(pl.col("amount_paid"))
                            .alias("amount_paid"),
                            pl.when(later).then(pl.col("dst") // 2).otherwise(pl.col("dst")).alias("dst"))
    extra = make_tx(n=100, seed=23).with_columns(pl.col("row") + 10_000, pl.lit(2, pl.Int8).alias("split"))
    after = node_features(pl.concat([moved, extra]), ids, usd_per_unit=SOME_UNPRICED, priced_from=PRICED_FROM,
                          vocab=vocab, split_views=True)
    assert_frame_equal(after["train"], before["train"], check_exact=True)
    assert_frame_equal(after["val"], before["val"], check_exact=True)
    assert not after["test"].equals(before["test"])


def test_unpriced_bitcoin_is_left_out_and_counted(vocab):
    """Three US Dollar payments (10, 20, 30) and two Bitcoin payments: total_sent 60 and
    unpriced_share 0.4; with a Bitcoin rate of 20000 USD the Bitcoin payments count."""
    usd, btc = vocab["currencies"].index("US Dollar"), vocab["currencies"].index("Bitcoin")
    cur = [usd, usd, usd, btc, btc]
    tx = pl.DataFrame({
        "row": list(range(5)), "timestamp": [SEP + 60 * i for i in range(5)],
        "src": [0] * 5, "dst": [1, 2, 3, 4, 5], "from_bank": [1] * 5, "to_bank": [11] * 5,
        "amount_received": [10.0, 20.0, 30.0, 0.5, 0.25], "amount_paid": [10.0, 20.0, 30.0, 0.5, 0.25],
        "receiving_currency": cur, "payment_currency": cur, "payment_format": [0] * 5, "split": [0] * 5,
    }).with_columns(pl.col(c).cast(pl.Int16) for c in ("receiving_currency", "payment_currency", "payment_format"))
    no_btc = {c: (None if c == btc else 1.0) for c in range(15)}
    node = nf(tx, np.array([0]), usd_per_unit=no_btc, vocab=vocab).row(0, named=True)
    assert node["total_sent"] == 60.0 and node["unpriced_share"] == pytest.approx(0.4)
    assert node["sent_mean"] == 20.0 and node["max_amount"] == 30.0 and node["transaction_count"] == 5
    given = {**no_btc, btc: 20_000.0}
    node = nf(tx, np.array([0]), usd_per_unit=given, vocab=vocab).row(0, named=True)
    assert node["total_sent"] == 60.0 + 0.75 * 20_000 and node["unpriced_share"] == 0.0


def test_split_views_are_chunk_invariant(make_tx, vocab):
    tx = make_tx(n=600, seed=24)
    ids = np.arange(60)
    whole = node_features(tx, ids, usd_per_unit=SOME_UNPRICED, priced_from=PRICED_FROM, vocab=vocab,
                          split_views=True)
    by_src, by_dst = partition_rows(tx.sort("row"), 16)
    for view in SPLIT_VIEWS:
        pieces = [node_features(pl.concat([by_src.filter(pl.col("part") == k), by_dst.filter(pl.col("part") == k)]),
                                np.arange(16 * k, min(60, 16 * (k + 1))), usd_per_unit=SOME_UNPRICED,
                                priced_from=PRICED_FROM, vocab=vocab, split_views=True)[view] for k in range(4)]
        assert_frame_equal(pl.concat(pieces), whole[view], check_exact=True)


SEP = 1_661_990_400
