from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.preprocessing import StandardScaler as SkScaler

from amlgraph.errors import ConfigError
from amlgraph.steps.normalized import StandardScaler, columns_to_scale


def _data(n=300, seed=0):
    rng = np.random.default_rng(seed)
    X = np.column_stack([
        rng.normal(1e6, 3.0, n),          # large offset, small spread: cancellation bait
        rng.exponential(500.0, n),
        np.full(n, 7.25),                 # constant column
        rng.integers(0, 3, n).astype(float),
    ])
    return X


@pytest.mark.parametrize("chunk", [1, 2, 50, 300, 342])
def test_chunk_size_invariance_is_bit_identical(chunk):
    X = _data()
    one = StandardScaler().fit(X)
    s = StandardScaler()
    for start in range(0, len(X), chunk):
        s.partial_fit(X[start:start + chunk])
    assert s.n_samples_seen_ == len(X)
    assert np.array_equal(s.mean_, one.mean_) and np.array_equal(s.scale_, one.scale_)


@settings(max_examples=25, deadline=None)
@given(st.lists(st.integers(1, 60), min_size=1, max_size=12))
def test_any_chunking_is_bit_identical(sizes):
    X = _data(n=sum(sizes), seed=len(sizes))
    one = StandardScaler().fit(X)
    s, start = StandardScaler(), 0
    for size in sizes:
        s.partial_fit(X[start:start + size])
        start += size
    assert np.array_equal(s.mean_, one.mean_) and np.array_equal(s.scale_, one.scale_)


def test_matches_sklearn():
    X = _data(n=500, seed=2)
    ours, sk = StandardScaler().fit(X), SkScaler().fit(X)
    np.testing.assert_allclose(ours.mean_, sk.mean_, rtol=1e-12)
    np.testing.assert_allclose(ours.var_, sk.var_, rtol=1e-12)
    np.testing.assert_allclose(ours.scale_, sk.scale_, rtol=1e-12)
    assert ours.scale_[2] == 1.0
    got = ours.transform(X)
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, sk.transform(X).astype(np.float32), rtol=1e-6, atol=1e-6)


def test_fit_resets():
    X = _data()
    s = StandardScaler().fit(X[:10])
    s.fit(X)
    assert s.n_samples_seen_ == len(X)
    assert np.array_equal(s.mean_, StandardScaler().fit(X).mean_)


def test_not_fitted_and_shape_errors():
    with pytest.raises(ConfigError, match="not fitted; call fit or partial_fit first"):
        StandardScaler().transform(np.zeros((2, 3)))
    s = StandardScaler().fit(np.ones((4, 3)))
    with pytest.raises(ConfigError, match="3 columns"):
        s.transform(np.zeros((2, 2)))
    with pytest.raises(ConfigError, match="2-D"):
        s.partial_fit(np.zeros(3))


def test_empty_first_chunk_then_data():
    X = _data()
    s = StandardScaler().partial_fit(X[:0]).partial_fit(X)
    assert np.array_equal(s.mean_, StandardScaler().fit(X).mean_)


def test_dict_round_trip_through_json_and_resume():
    X = _data()
    s = StandardScaler().partial_fit(X[:120])
    back = StandardScaler.from_dict(json.loads(json.dumps(s.to_dict())))
    assert np.array_equal(back.mean_, s.mean_) and np.array_equal(back.scale_, s.scale_)
    back.partial_fit(X[120:])
    whole = StandardScaler().fit(X)
    assert np.array_equal(back.mean_, whole.mean_) and np.array_equal(back.scale_, whole.scale_)
    assert not hasattr(StandardScaler.from_dict(StandardScaler().to_dict()), "mean_")
    with pytest.raises(ConfigError, match="not a StandardScaler state"):
        StandardScaler.from_dict({"fitted": True})


def test_only_training_rows_matter():
    X = _data()
    split = np.random.default_rng(1).integers(0, 3, len(X))
    s1 = StandardScaler().fit(X[split == 0])
    Y = X.copy()
    Y[split != 0] *= 1000.0  # perturb validation and test rows
    s2 = StandardScaler().fit(Y[split == 0])
    assert np.array_equal(s1.mean_, s2.mean_) and np.array_equal(s1.scale_, s2.scale_)


def test_columns_to_scale():
    names = ["a", "code", "b", "flag"]
    assert columns_to_scale(names, ["code"], ["flag"]) == ["a", "b"]
