"""Step ``weights``: class weights from the training labels (scikit-learn's "balanced")."""
from __future__ import annotations

import numpy as np
import polars as pl

from amlgraph.errors import ConfigError
from amlgraph.steps._contract import Output, Step, StepContext
from amlgraph.steps._layout import coded_chunks


def class_weights(y: np.ndarray, *, minority_cost: float = 1.0) -> dict[int, float]:
    """Balanced class weights ``n / (k * count_c)``, the minority's times ``minority_cost``.

    Args:
        y: training labels of shape (n,), values 0 or 1.
        minority_cost: extra factor on the minority class (> 0), e.g. to weigh a missed
            laundering case more than a false alarm.

    Returns:
        ``{0: w0, 1: w1}``; k counts the classes present; an absent class gets 0.0. The
        minority is the present class with fewer rows (class 1 on a tie).

    Raises:
        ConfigError: no labels, labels other than 0/1, or minority_cost <= 0.
    """
    if not minority_cost > 0:
        raise ConfigError(f"minority_cost must be > 0 (got {minority_cost!r})")
    y = np.asarray(y).ravel()
    if len(y) == 0:
        raise ConfigError("class weights need training labels (got none); check the split")
    counts = np.bincount(y.astype(np.int64), minlength=2) if np.all((y == 0) | (y == 1)) else None
    if counts is None:
        raise ConfigError(f"labels must be 0 or 1 (got {sorted(set(np.unique(y).tolist()))[:5]})")
    present = [c for c in (0, 1) if counts[c] > 0]
    weights = {c: (len(y) / (len(present) * counts[c]) if counts[c] else 0.0) for c in (0, 1)}
    if len(present) == 2:
        minority = 0 if counts[0] < counts[1] else 1
        weights[minority] *= float(minority_cost)
    return {c: float(w) for c, w in weights.items()}


# --- the step -----------------------------------------------------------------------------------
def compute(ctx: StepContext) -> Output:
    """Class weights of the training transactions' labels."""
    data = ctx.step("data_loaded")
    y = (ctx.inputs.scan(coded_chunks(data), "transactions").filter(pl.col("split") == 0)
         .select("is_laundering").collect(engine="streaming")["is_laundering"].to_numpy())
    w = class_weights(y, minority_cost=ctx.params["minority_cost"])
    ctx.ok("Class weights: " + ", ".join(f"{k}: {v:.4g}" for k, v in w.items()))
    return Output(values={"class_weights": {str(k): float(v) for k, v in w.items()}})


STEP = Step("weights", "Computing Class Weights", reads=("data_loaded",), params=("minority_cost",),
            code=(), compute=compute)
