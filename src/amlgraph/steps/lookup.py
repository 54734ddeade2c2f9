"""Positions of integer values in a sorted set of ids: node ids in a node chunk, bank codes."""
from __future__ import annotations

import numpy as np


def positions(ids: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Index of each value in the sorted, unique ``ids``, or -1 where absent.

    Args:
        ids: sorted, unique integers of shape (n,).
        values: integers of any shape.

    Returns:
        Int64 array shaped like ``values``.
    """
    values = np.asarray(values, dtype=np.int64)
    if len(ids) == 0 or values.size == 0:
        return np.full(values.shape, -1, dtype=np.int64)
    ids = np.asarray(ids, dtype=np.int64)
    if int(ids[-1]) - int(ids[0]) == len(ids) - 1:  # Python ints: no int64 overflow for any span
        # A range of ids (a node chunk): the position is the offset into it.
        pos = values - ids[0]
        pos[(pos < 0) | (pos >= len(ids))] = -1
        return pos
    lo, hi = min(int(ids[0]), int(values.min())), max(int(ids[-1]), int(values.max()))
    if hi - lo < 4 * (len(ids) + values.size) + 1_000_000:
        # Ids within a span not much larger than the data (node ids, bank ids): a lookup table
        # beats a binary search by ~10-100x.
        table = np.full(hi - lo + 1, -1, dtype=np.int64)
        table[ids - lo] = np.arange(len(ids), dtype=np.int64)
        return table[values - lo]
    pos = np.minimum(np.searchsorted(ids, values), len(ids) - 1)
    return np.where(ids[pos] == values, pos, -1)
