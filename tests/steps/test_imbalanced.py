from __future__ import annotations

import numpy as np
import pytest
from imblearn.over_sampling import SMOTE

from amlgraph.errors import ConfigError
from amlgraph.steps.imbalanced import STRATEGIES, resample


def _data(n=400, seed=0, rate=0.08):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    X[:, 3] = rng.integers(0, 5, n)  # a category code
    y = (rng.random(n) < rate).astype(np.int8)
    return X, y


def _on_segments(S: np.ndarray, M: np.ndarray) -> np.ndarray:
    """For each synthetic row, whether it lies on a segment between two minority rows."""
    a, b = M[:, None, :], M[None, :, :]
    d = (b - a).reshape(-1, M.shape[1])
    a = np.broadcast_to(a, (len(M), len(M), M.shape[1])).reshape(-1, M.shape[1])
    ok = np.zeros(len(S), dtype=bool)
    for i, s in enumerate(S.astype(np.float64)):
        dd = np.einsum("pd,pd->p", d, d)
        u = np.divide(np.einsum("pd,pd->p", s - a, d), dd, out=np.zeros(len(d)), where=dd > 0)
        resid = np.linalg.norm(s - (a + u[:, None] * d), axis=1)
        ok[i] = np.any((resid < 1e-5) & (u >= -1e-6) & (u <= 1 + 1e-6))
    return ok


@pytest.mark.parametrize("ratio", [0.1, 0.5, 1.0])
def test_smote_equals_imblearn_on_full_x(ratio):
    X, y = _data(rate=0.04)
    got = resample(X, y, target_ratio=ratio, seed=3)
    X_full, _ = SMOTE(sampling_strategy=ratio, k_neighbors=5, random_state=3).fit_resample(X, y)
    np.testing.assert_array_equal(got.X_synthetic, X_full[len(X):].astype(np.float32))
    n_min, n_maj = int(y.sum()), int((y == 0).sum())
    assert len(got.X_synthetic) == int(n_maj * ratio - n_min)
    assert got.X_synthetic.dtype == np.float32 and set(got.y_synthetic.tolist()) <= {1}
    assert got.keep_index is None and got.warnings == []


def test_categorical_codes_come_from_the_nearer_endpoint_and_the_rest_is_imblearn_smote():
    X, y = _data(seed=1)
    got = resample(X, y, target_ratio=0.5, categorical=[3], seed=2)
    cont = [0, 1, 2] + list(range(4, X.shape[1]))
    X_full, _ = SMOTE(sampling_strategy=0.5, random_state=2).fit_resample(X[:, cont], y)
    np.testing.assert_array_equal(got.X_synthetic[:, cont], X_full[len(X):].astype(np.float32))
    codes = set(X[y == 1, 3].tolist())
    assert set(got.X_synthetic[:, 3].tolist()) <= codes
    # each row's code is that of the minority row its continuous part lies nearest to
    mins = X[y == 1]
    nearest = np.argmin(((got.X_synthetic[:, None, cont] - mins[None, :, cont]) ** 2).sum(-1), axis=1)
    agree = got.X_synthetic[:, 3] == mins[nearest, 3]
    assert agree.mean() > 0.9


def test_synthetic_rows_lie_on_segments_between_minority_rows():
    X, y = _data(seed=4)
    got = resample(X, y, target_ratio=0.3, seed=0)
    assert len(got.X_synthetic) > 0
    assert _on_segments(got.X_synthetic, X[y == 1]).all()


def test_majority_and_other_rows_do_not_matter():
    X, y = _data(seed=5)
    before = resample(X, y, target_ratio=0.4, seed=1)
    X2 = X.copy()
    X2[y == 0] += np.random.default_rng(9).normal(size=X2[y == 0].shape)
    after = resample(X2, y, target_ratio=0.4, seed=1)
    np.testing.assert_array_equal(before.X_synthetic, after.X_synthetic)


def test_k_fallback_and_too_few_minority_rows():
    X, y = _data()
    y[:] = 0
    y[[3, 10, 50]] = 1
    got = resample(X, y, k_neighbors=5, target_ratio=0.1, seed=0)
    assert any("reduced from 5 to 2" in w for w in got.warnings) and len(got.X_synthetic) > 0
    y[[10, 50]] = 0
    got = resample(X, y, seed=0)
    assert len(got.X_synthetic) == 0 and "at least 2" in got.warnings[0]


def test_already_balanced_enough_and_single_class():
    X, y = _data(rate=0.3)
    got = resample(X, y, target_ratio=0.1)
    assert len(got.X_synthetic) == 0 and "already" in got.warnings[0]
    got = resample(X, np.zeros(len(X), dtype=np.int8))
    assert len(got.X_synthetic) == 0 and "two classes" in got.warnings[0]


def test_none_strategy():
    X, y = _data()
    got = resample(X, y, strategy="none")
    assert got.X_synthetic.shape == (0, 4) and got.keep_index is None


def test_random_under_keeps_all_minority_and_reaches_ratio():
    X, y = _data(n=1000, seed=7)
    got = resample(X, y, strategy="random_under", target_ratio=0.25, seed=0)
    kept = y[got.keep_index]
    assert np.all(np.diff(got.keep_index) > 0)
    assert kept.sum() == y.sum()
    assert (kept == 0).sum() == int(y.sum() / 0.25)
    again = resample(X * 0, y, strategy="random_under", target_ratio=0.25, seed=0)
    np.testing.assert_array_equal(again.keep_index, got.keep_index)
    got = resample(X, y, strategy="random_under", target_ratio=0.01)
    assert len(got.keep_index) == len(y) and "all rows kept" in got.warnings[0]


@pytest.mark.parametrize("kwargs,match", [
    ({"strategy": "adasyn"}, "must be one of"),
    ({"target_ratio": 0.0}, "target_ratio"),
    ({"target_ratio": 1.5}, "target_ratio"),
    ({"k_neighbors": 0}, "k_neighbors"),
    ({"categorical": [9]}, "categorical"),
    ({"categorical": [0, 1, 2, 3]}, "non-categorical"),
])
def test_config_errors(kwargs, match):
    X, y = _data()
    with pytest.raises(ConfigError, match=match):
        resample(X, y, **kwargs)
    assert "smote" in STRATEGIES


def test_majority_given_as_a_broadcast_block():
    """Majority rows may be one broadcast row repeated (no copy); the result is unchanged."""
    X, y = _data(seed=8, rate=0.05)
    full = resample(X, y, target_ratio=0.5, seed=4)
    n_maj = int((y == 0).sum())
    X_b = np.concatenate([X[y == 1], np.broadcast_to(np.zeros((1, 4)), (n_maj, 4))])
    y_b = np.concatenate([np.ones(int(y.sum()), np.int8), np.zeros(n_maj, np.int8)])
    np.testing.assert_array_equal(resample(X_b, y_b, target_ratio=0.5, seed=4).X_synthetic,
                                  full.X_synthetic)


def test_resample_training_equals_resample_on_the_full_training_set():
    from amlgraph.steps.imbalanced import resample, resample_training

    rng = np.random.default_rng(3)
    X = rng.normal(size=(400, 4)).astype(np.float32)
    X[:, 3] = rng.integers(0, 5, 400)
    y = (rng.random(400) < 0.06).astype(np.int8)
    full = resample(X, y, strategy="smote", target_ratio=0.5, categorical=[3], seed=1)
    light = resample_training(X[y == 1], y, strategy="smote", target_ratio=0.5, categorical=[3], seed=1)
    assert light.X_synthetic.shape[0] > 0
    np.testing.assert_array_equal(light.X_synthetic, full.X_synthetic)
    under = resample_training(X[y == 1], y, strategy="random_under", target_ratio=0.5, seed=1)
    ref = resample(X, y, strategy="random_under", target_ratio=0.5, seed=1)
    np.testing.assert_array_equal(under.keep_index, ref.keep_index)
    assert y[under.keep_index].sum() == y.sum()  # every minority row kept
    assert resample_training(X[y == 1], y, strategy="none").X_synthetic.shape == (0, 4)


@pytest.mark.parametrize("n, d, k", [(50, 3, 6), (700, 14, 6), (7, 2, 7)])
def test_numpy_neighbours_equal_sklearn(n, d, k):
    """The exact NumPy search used for small minorities finds sklearn's neighbours, in its order."""
    from sklearn.neighbors import NearestNeighbors

    from amlgraph.steps.imbalanced import nearest_neighbours

    space = np.random.default_rng(n).normal(size=(n, d))
    want = NearestNeighbors(n_neighbors=k).fit(space).kneighbors(space, return_distance=False)
    got = nearest_neighbours(space, k, brute_max=10**9)
    np.testing.assert_array_equal(got, want)
    np.testing.assert_array_equal(nearest_neighbours(space, k, brute_max=0), want)  # the sklearn path


def test_numpy_neighbours_put_each_row_first_even_among_duplicates():
    from amlgraph.steps.imbalanced import nearest_neighbours

    space = np.repeat(np.arange(4.0)[:, None], 3, axis=0)  # every row three times
    got = nearest_neighbours(space, 3, brute_max=10**9)
    np.testing.assert_array_equal(got[:, 0], np.arange(12))
    np.testing.assert_array_equal(np.sort(got, axis=1), np.repeat(np.arange(12).reshape(4, 3), 3, axis=0))


def test_smote_blocks_do_not_change_the_samples(monkeypatch):
    """Samples computed in blocks (bounded memory) equal the samples computed at once."""
    import amlgraph.steps.imbalanced as imb

    X = np.random.default_rng(5).normal(size=(40, 6))
    want = imb.smote_samples(X, 1000, k_neighbors=5, categorical=[2], seed=3)
    monkeypatch.setattr(imb, "SMOTE_BLOCK_ROWS", 7)
    np.testing.assert_array_equal(imb.smote_samples(X, 1000, k_neighbors=5, categorical=[2], seed=3), want)
