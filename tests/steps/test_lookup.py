"""positions(): a range of ids, a lookup table and a binary search give the same answer."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from amlgraph.steps.lookup import positions


def _search(ids: np.ndarray, values: np.ndarray) -> list[int]:
    """The obvious answer: a dict from id to index."""
    index = {int(v): i for i, v in enumerate(ids)}
    return [index.get(int(v), -1) for v in values]


@given(lo=st.integers(-20, 50), n=st.integers(1, 40), values=st.lists(st.integers(-30, 120), max_size=60))
@settings(max_examples=200, deadline=None)
def test_a_range_of_ids(lo, n, values):
    ids = np.arange(lo, lo + n, dtype=np.int64)
    assert positions(ids, np.asarray(values, dtype=np.int64)).tolist() == _search(ids, values)


@given(ids=st.sets(st.integers(-1_000, 1_000), min_size=1, max_size=50),
       values=st.lists(st.integers(-1_100, 1_100), max_size=60), spread=st.sampled_from([1, 10**12]))
@settings(max_examples=200, deadline=None)
def test_scattered_ids_by_table_and_by_search(ids, values, spread):
    # spread 1: a span the lookup table covers; 10**12: too wide, the binary search answers
    ids = np.asarray(sorted(ids), dtype=np.int64) * spread
    vals = np.asarray(values, dtype=np.int64) * spread
    assert positions(ids, vals).tolist() == _search(ids, vals)


def test_empty_inputs():
    assert positions(np.array([], dtype=np.int64), np.array([1, 2])).tolist() == [-1, -1]
    assert positions(np.array([1, 2]), np.array([], dtype=np.int64)).tolist() == []
