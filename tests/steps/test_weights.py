from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.utils.class_weight import compute_class_weight

from amlgraph.errors import ConfigError
from amlgraph.steps.weights import class_weights


def reference(y, cost=1.0):
    counts = pd.Series(y).value_counts()
    k = len(counts)
    w = {c: (len(y) / (k * counts[c]) if c in counts else 0.0) for c in (0, 1)}
    if k == 2:
        w[counts.idxmin() if counts.min() < counts.max() else 1] *= cost
    return w


@pytest.mark.parametrize("cost", [1.0, 3.5])
def test_balanced_matches_pandas_and_sklearn(cost):
    y = (np.random.default_rng(0).random(997) < 0.07).astype(np.int8)
    got = class_weights(y, minority_cost=cost)
    assert got == pytest.approx(reference(y, cost), rel=1e-15)
    sk = compute_class_weight("balanced", classes=np.array([0, 1]), y=y)
    assert got[0] == pytest.approx(sk[0], rel=1e-15)
    assert got[1] == pytest.approx(sk[1] * cost, rel=1e-15)
    assert sorted(got) == [0, 1] and all(type(v) is float for v in got.values())


def test_absent_class_gets_zero():
    assert class_weights(np.zeros(10, dtype=np.int8)) == {0: 1.0, 1: 0.0}
    assert class_weights(np.ones(4, dtype=np.int8), minority_cost=9.0) == {0: 0.0, 1: 1.0}


def test_only_training_labels_matter():
    rng = np.random.default_rng(1)
    y = (rng.random(300) < 0.1).astype(np.int8)
    split = rng.integers(0, 3, 300)
    before = class_weights(y[split == 0])
    y2 = y.copy()
    y2[split != 0] = 1 - y2[split != 0]
    assert class_weights(y2[split == 0]) == before


@pytest.mark.parametrize("y,cost,match", [
    (np.array([], dtype=np.int8), 1.0, "none"),
    (np.array([0, 2]), 1.0, "0 or 1"),
    (np.array([0, 1]), 0.0, "minority_cost"),
])
def test_errors(y, cost, match):
    with pytest.raises(ConfigError, match=match):
        class_weights(y, minority_cost=cost)
