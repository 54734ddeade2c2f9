"""How a whole graph checkpoint stores its two largest kinds of array when they are compressed.

* Node-feature views: ``x_train`` as it is, ``x_val`` as the XOR of its float32 bit patterns
  with ``x_train``'s, ``x`` (the test view) as the XOR with ``x_val``'s (uint32). An account
  without transactions in a later period keeps its row, so most cells XOR to zero, which zstd
  stores in almost nothing (on 1M hi-small rows: 65 -> 42 MB).
* ``edge_attr``: column by column (its transpose, C order): a column's values are alike, a row's
  are not (20.6 -> 17.6 MB there).

Both are exact to the bit. A graph written plain (too large to decode in memory) is stored as
it is, so that it memory-maps; the ``coding`` value of the checkpoint says which it is.
"""
from __future__ import annotations

from typing import Any

import numpy as np

#: The ``coding`` value of a coded whole graph checkpoint.
CODING = {"node_views": "xor", "edge_attr": "columns"}
#: The order of the XOR chain of the node views: each is coded against the one before.
VIEW_CHAIN = ("x_train", "x_val", "x")


def encode(arrays: dict[str, Any]) -> dict[str, Any]:
    """``arrays`` (a whole graph's) with the node views XOR-coded and ``edge_attr`` transposed."""
    out = dict(arrays)
    if all(name in arrays for name in VIEW_CHAIN):
        for before, name in zip(VIEW_CHAIN, VIEW_CHAIN[1:]):
            out[name] = _bits(arrays[name]) ^ _bits(arrays[before])
    out["edge_attr"] = np.ascontiguousarray(np.asarray(arrays["edge_attr"]).T)
    return out


def decode(got: dict[str, Any], coding: dict | None) -> dict[str, Any]:
    """The arrays as the graph holds them, from those a checkpoint with ``coding`` stored."""
    if not coding:
        return got
    out = dict(got)
    if coding.get("node_views") == "xor" and all(name in got for name in VIEW_CHAIN):
        previous = np.asarray(got[VIEW_CHAIN[0]])
        for name in VIEW_CHAIN[1:]:
            previous = (np.asarray(got[name]) ^ _bits(previous)).view(np.float32)
            out[name] = previous
    if coding.get("edge_attr") == "columns":
        out["edge_attr"] = np.ascontiguousarray(np.asarray(got["edge_attr"]).T)
    for a in out.values():
        if isinstance(a, np.ndarray):
            a.flags.writeable = False  # read-only, as every array of a loaded graph
    return out


def _bits(a: Any) -> np.ndarray:
    return np.ascontiguousarray(a, dtype=np.float32).view(np.uint32)
