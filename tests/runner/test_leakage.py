"""No leakage from validation and test rows into anything fitted on the training split."""
from __future__ import annotations


import numpy as np
import polars as pl

from amlgraph.runner import run_preprocessing
from amlgraph.store import CheckpointStore
from amlgraph.schema import TIMESTAMP_FORMAT


def _copy_rows(src_dir, dst_dir, boundary_s: int):
    """Copy the data set; return its Trans file, header, rows (lists of fields) and which rows
    are at or after ``boundary_s``."""
    dst_dir.mkdir()
    for f in src_dir.iterdir():
        if f.is_file():
            (dst_dir / f.name).write_bytes(f.read_bytes())
    trans = next(dst_dir.glob("*_Trans.csv"))
    header, *lines = trans.read_text().splitlines()
    df = pl.DataFrame({"line": lines}).with_columns(pl.col("line").str.split(",").alias("f"))
    ts = df["f"].list.get(0).str.strptime(pl.Datetime, TIMESTAMP_FORMAT).dt.epoch("s")
    return trans, header, df, (ts >= boundary_s).to_numpy()


def _perturb_after(src_dir, dst_dir, boundary_s: int) -> int:
    """Copy the data set, changing amounts and labels of every row at or after ``boundary_s``."""
    trans, header, df, late = _copy_rows(src_dir, dst_dir, boundary_s)
    same_ccy = (df["f"].list.get(6) == df["f"].list.get(8)).to_numpy()
    rows = df["f"].to_list()
    rng = np.random.default_rng(0)
    changed = 0
    for i in np.flatnonzero(late):  # a test's reference edit, not library code
        r = rows[i]
        if same_ccy[i]:
            amount = f"{float(r[7]) * 3 + 1:.2f}"
            r[5] = r[7] = amount
        r[10] = "1" if rng.random() < 0.05 else r[10]
        changed += 1
    trans.write_text("\n".join([header] + [",".join(r) for r in rows]) + "\n")
    return changed


def _fitted(ckpt):
    store = CheckpointStore(ckpt, create=False)
    norm = store.load("normalized")
    imb = store.load("imbalanced")
    return (norm.value("edge_scaler"), norm.value("node_scaler"), np.asarray(imb.array("X_synthetic")),
            store.load("weights").value("class_weights"))


def test_validation_and_test_rows_change_no_scaler_smote_or_weight(tiny_data, tmp_path):
    base = run_preprocessing(data_path=tiny_data, checkpoint_dir=tmp_path / "a", quiet=True,
                             node_features_from="train", chunk_rows=3_000, chunk_size=400)
    boundary = int(base.graph.timestamp[base.graph.val_mask].min())
    changed = _perturb_after(tiny_data, tmp_path / "perturbed", boundary)
    assert changed > 1_000
    other = run_preprocessing(data_path=tmp_path / "perturbed", checkpoint_dir=tmp_path / "b",
                              quiet=True, node_features_from="train", chunk_rows=3_000, chunk_size=400)
    assert not np.array_equal(base.graph.y, other.graph.y)  # the perturbation reached the labels
    assert np.array_equal(base.graph.split, other.graph.split)
    edge_a, node_a, smote_a, w_a = _fitted(tmp_path / "a")
    edge_b, node_b, smote_b, w_b = _fitted(tmp_path / "b")
    assert edge_a == edge_b and node_a == node_b and w_a == w_b
    assert smote_a.shape[0] > 0 and np.array_equal(smote_a, smote_b)
    train = base.graph.train_mask
    assert np.array_equal(base.graph.edge_attr[train], other.graph.edge_attr[train])


def _scale_test_period(src_dir, dst_dir, boundary_s: int) -> int:
    """Copy the data set, multiplying the amounts of every row at or after ``boundary_s`` by 1.5:
    both amounts of a same-currency row, only the received amount of a cross-currency row (so
    that the exchange-rate observations of the test period move)."""
    trans, header, df, late = _copy_rows(src_dir, dst_dir, boundary_s)
    rows = df["f"].to_list()
    for i in np.flatnonzero(late):  # a test's reference edit, not library code
        r = rows[i]
        r[5] = f"{float(r[5]) * 1.5:.2f}"
        if r[6] == r[8]:
            r[7] = r[5]
    trans.write_text("\n".join([header] + [",".join(r) for r in rows]) + "\n")
    return int(late.sum())


def test_training_outputs_never_read_the_test_period(tiny_data, tmp_path):
    """The default run: x_train, x_val, both scalers, SMOTE's rows, the class weights and every
    training edge's features are bit-identical when the test period's amounts change; x_test
    (and the exchange rates only the test rows give) may move."""
    base = run_preprocessing(data_path=tiny_data, checkpoint_dir=tmp_path / "a", quiet=True)
    assert base.graph.has_split_views
    boundary = int(base.graph.timestamp[base.graph.test_mask].min())
    assert _scale_test_period(tiny_data, tmp_path / "perturbed", boundary) > 1_000
    other = run_preprocessing(data_path=tmp_path / "perturbed", checkpoint_dir=tmp_path / "b", quiet=True)
    a, b = base.graph, other.graph
    assert np.array_equal(a.split, b.split) and np.array_equal(a.edge_row, b.edge_row)
    assert np.array_equal(a.x_train, b.x_train) and np.array_equal(a.x_val, b.x_val)
    assert not np.array_equal(a.x_test, b.x_test)
    train = a.split == 0
    assert np.array_equal(np.asarray(a.edge_attr)[train], np.asarray(b.edge_attr)[train])
    assert not np.array_equal(np.asarray(a.edge_attr)[a.split == 2], np.asarray(b.edge_attr)[b.split == 2])
    assert _fitted(tmp_path / "a")[:2] == _fitted(tmp_path / "b")[:2]
    assert np.array_equal(_fitted(tmp_path / "a")[2], _fitted(tmp_path / "b")[2])
    assert _fitted(tmp_path / "a")[3] == _fitted(tmp_path / "b")[3]
    rates = [CheckpointStore(tmp_path / d, create=False).load("data_loaded") for d in ("a", "b")]
    since = rates[0].value("priced_from")
    early = {c for c, s in since.items() if s in (0, 1)}
    assert {c: rates[0].value("usd_per_unit")[c] for c in early} == \
        {c: rates[1].value("usd_per_unit")[c] for c in early}
