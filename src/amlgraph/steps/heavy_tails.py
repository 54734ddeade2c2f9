"""Which features are heavy-tailed and how they are compressed before standard scaling.

Amounts and counts in AML data span many orders of magnitude (0.01 to 10^9); standardising them
raw leaves almost every value near zero and a few at hundreds of standard deviations. They are
mapped through log1p first (all are >= 0 by construction). The edge feature ``amount_received``
is the exception on purpose: it is Multi-GNN's raw received amount, z-scored without a log (the
log of it is ``log_amount_received``). Every ``pattern_*`` feature (counts, histograms, amount
and gap statistics, all >= 0) is heavy-tailed too.
"""
from __future__ import annotations

import re

import numpy as np

_HEAVY = re.compile(
    r"^(transaction_count|total_sent|total_received|avg_amount|max_amount|min_amount|temporal_span"
    r"|transaction_frequency|in_degree|out_degree|.*counterparties.*|sent_(mean|std|max)"
    r"|received_(mean|std|max)|self_transfer_count|bank_diversity"
    r"|currency_diversity|pattern_.*)$")


def heavy_tailed(names: list[str]) -> list[str]:
    """The subset of ``names`` that is log1p-compressed before scaling."""
    return [n for n in names if _HEAVY.match(n)]


def log_transform(block: np.ndarray, names: list[str], log_columns: list[str]) -> np.ndarray:
    """log1p of the ``log_columns`` of ``block`` (shape (rows, len(names))), in place; returns it."""
    for j, name in enumerate(names):
        if name in log_columns:
            np.log1p(np.maximum(block[:, j], 0.0), out=block[:, j])
    return block
