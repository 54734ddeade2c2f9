"""Step ``imbalanced``: synthetic minority rows (SMOTE) or an under-sampling mask.

Works on the training rows only; the original rows are never changed. Default ``target_ratio``
0.1 (minority / majority after resampling), not 1.0: on HI-Large's ~108M training rows a fully
balanced set would mean ~108M synthetic rows, doubling the graph for the sake of a loss weight
that ``weights`` already provides.

Memory: SMOTE only reads the minority rows (its neighbours are searched among them); the majority
rows enter only through their count and are never copied.

SMOTE here draws exactly the samples imbalanced-learn's ``SMOTE`` draws (same neighbour search,
same random stream; the tests compare them). Category-code columns are not interpolated: each
synthetic row takes the codes of the endpoint it lies nearer to, so codes stay valid codes.
imbalanced-learn's SMOTENC would instead one-hot encode every category (thousands of bank codes)
into a dense matrix: 12 GB and 90 s on HI-Small, against well under a second here.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import polars as pl

from amlgraph.errors import ConfigError
from amlgraph.steps._contract import Inputs, Output, Step, StepContext
from amlgraph.steps._layout import chunk_names
from amlgraph.steps.normalized import scaled_edge_matrix

STRATEGIES = ("smote", "none", "random_under")


@dataclass
class ResampleResult:
    """Outcome of :func:`resample`.

    Attributes:
        X_synthetic: float32 (m, d): new minority rows (empty unless strategy is smote).
        y_synthetic: int8 (m,): their labels.
        keep_index: for random_under, sorted int64 indices of the rows kept; otherwise None.
        warnings: what was skipped or reduced and why.
    """

    X_synthetic: np.ndarray
    y_synthetic: np.ndarray
    keep_index: np.ndarray | None = None
    warnings: list[str] = field(default_factory=list)


def _empty(d: int, warnings: list[str], keep: np.ndarray | None = None) -> ResampleResult:
    return ResampleResult(np.zeros((0, d), np.float32), np.zeros(0, np.int8), keep, warnings)


def resample(X: np.ndarray, y: np.ndarray, *, strategy: str = "smote", k_neighbors: int = 5,
             target_ratio: float = 0.1, categorical: list[int] | None = None,
             seed: int = 0) -> ResampleResult:
    """Resample the training rows toward ``minority / majority = target_ratio``.

    Args:
        X: training features of shape (n, d).
        y: training labels of shape (n,), two classes (0/1).
        strategy: "smote" (SMOTENC when ``categorical`` is given), "none" or "random_under".
        k_neighbors: SMOTE's neighbours; reduced to minority - 1 when there are fewer rows.
        target_ratio: minority / majority after resampling, in (0, 1].
        categorical: column indices holding category codes; SMOTENC keeps them valid codes.
        seed: random state.

    Returns:
        A :class:`ResampleResult`.

    Raises:
        ConfigError: unknown strategy, bad ratio, k or shapes.
    """
    if strategy not in STRATEGIES:
        raise ConfigError(f"imbalance strategy must be one of {set(STRATEGIES)} (got {strategy!r})")
    if not 0 < target_ratio <= 1:
        raise ConfigError(f"target_ratio must be in (0, 1] (got {target_ratio!r})")
    if k_neighbors < 1:
        raise ConfigError(f"k_neighbors must be >= 1 (got {k_neighbors!r})")
    X = np.asarray(X)
    y = np.asarray(y)
    if X.ndim != 2 or y.ndim != 1 or len(X) != len(y):
        raise ConfigError(f"expected X of shape (n, d) and y of shape (n,) (got {X.shape} and {y.shape})")
    d = X.shape[1]
    cat = sorted(set(int(c) for c in categorical)) if categorical else []
    if any(c < 0 or c >= d for c in cat):
        raise ConfigError(f"categorical column indices must be in 0..{d - 1} (got {categorical!r})")
    if strategy == "smote" and cat and len(cat) == d:
        raise ConfigError("SMOTENC needs at least one non-categorical column (all were categorical)")
    if strategy == "none":
        return _empty(d, [])
    classes, counts = np.unique(y, return_counts=True)
    if len(classes) != 2:
        return _empty(d, [f"{strategy}: needs two classes in the training labels "
                          f"(got {classes.tolist()}); no resampling"])
    minority, majority = classes[np.argmin(counts)], classes[np.argmax(counts)]
    n_min, n_maj = int(counts.min()), int(counts.max())
    if strategy == "random_under":
        return _under(y, minority, majority, n_min, n_maj, target_ratio, seed, d)
    return _smote(X, y, minority, n_min, n_maj, target_ratio, k_neighbors, cat, seed)


def _under(y, minority, majority, n_min, n_maj, ratio, seed, d) -> ResampleResult:
    from imblearn.under_sampling import RandomUnderSampler

    n_keep = int(n_min / ratio)
    if n_keep >= n_maj:
        return _empty(d, [f"random_under: ratio {n_min}/{n_maj} already >= {ratio}; all rows kept"],
                      np.arange(len(y), dtype=np.int64))
    sampler = RandomUnderSampler(sampling_strategy={majority: n_keep}, random_state=seed)
    # Only the labels matter: hand it row indices, not the features.
    sampler.fit_resample(np.arange(len(y)).reshape(-1, 1), y)
    return _empty(d, [], np.sort(sampler.sample_indices_).astype(np.int64))


def _smote(X, y, minority, n_min, n_maj, ratio, k, cat, seed) -> ResampleResult:
    d = X.shape[1]
    warnings = []
    n_new = int(n_maj * ratio - n_min)  # as imblearn computes a float sampling_strategy
    if n_new <= 0:
        return _empty(d, [f"smote: ratio {n_min}/{n_maj} already >= {ratio}; no synthetic rows"])
    if n_min < 2:
        return _empty(d, [f"smote: {n_min} minority row(s), at least 2 needed; no resampling"])
    if k > n_min - 1:
        warnings.append(f"smote: k_neighbors reduced from {k} to {n_min - 1} ({n_min} minority rows)")
        k = n_min - 1
    X_syn = smote_samples(X[y == minority], n_new, k_neighbors=k, categorical=cat, seed=seed)
    return ResampleResult(X_syn, np.full(len(X_syn), minority, dtype=np.int8), None, warnings)


def resample_training(X_minority: np.ndarray, y_train: np.ndarray, *, strategy: str = "smote",
                      k_neighbors: int = 5, target_ratio: float = 0.1,
                      categorical: list[int] | None = None, seed: int = 0) -> ResampleResult:
    """:func:`resample` for training sets too large to hold: minority rows plus all labels.

    SMOTE interpolates between minority rows only; the majority rows enter only through their
    count, and random undersampling needs only the labels. So the caller passes the label-1
    training rows' features and the training labels, never the majority features.

    Args:
        X_minority: features of the training rows labelled 1, shape (n_minority, d), in row order.
        y_train: all training labels (0/1) of shape (n_train,), in row order.
        strategy, k_neighbors, target_ratio, categorical, seed: as in :func:`resample`.

    Returns:
        A :class:`ResampleResult`; ``keep_index`` (random_under) indexes ``y_train``.
    """
    X_minority = np.asarray(X_minority)
    y_train = np.asarray(y_train)
    d = X_minority.shape[1]
    n_min, n_maj = int((y_train == 1).sum()), int((y_train == 0).sum())
    if n_min != len(X_minority):
        raise ConfigError(f"X_minority has {len(X_minority)} rows but y_train has {n_min} ones")
    if strategy != "smote":
        # "none" and "random_under" need only the labels: a zero-width matrix stands in for X.
        res = resample(np.empty((len(y_train), 0), np.float32), y_train, strategy=strategy,
                       k_neighbors=k_neighbors, target_ratio=target_ratio, seed=seed)
        return ResampleResult(np.zeros((0, d), np.float32), res.y_synthetic, res.keep_index, res.warnings)
    if n_min == 0 or n_maj == 0 or n_min >= n_maj:
        return _empty(d, [f"smote: needs label 1 as the minority class (got {n_min} ones, "
                          f"{n_maj} zeros); no resampling"])
    if not 0 < target_ratio <= 1:
        raise ConfigError(f"target_ratio must be in (0, 1] (got {target_ratio!r})")
    if k_neighbors < 1:
        raise ConfigError(f"k_neighbors must be >= 1 (got {k_neighbors!r})")
    X = np.vstack([X_minority, np.zeros((1, d), X_minority.dtype)])
    y = np.concatenate([np.ones(n_min, np.int8), np.zeros(1, np.int8)])
    cat = sorted(set(int(c) for c in categorical)) if categorical else []
    return _smote(X, y, 1, n_min, n_maj, target_ratio, k_neighbors, cat, seed)


def smote_samples(X_min: np.ndarray, n_new: int, *, k_neighbors: int, categorical: list[int],
                  seed: int) -> np.ndarray:
    """``n_new`` SMOTE samples interpolated between minority rows and their nearest neighbours.

    Reproduces imbalanced-learn's ``SMOTE._fit_resample`` / ``_make_samples`` draw for draw:
    neighbours among the minority rows (Euclidean, on the non-categorical columns), a
    ``RandomState(seed)`` drawing flat (row, neighbour) indices, then the interpolation steps.

    Args:
        X_min: minority rows of shape (n_min, d), n_min > k_neighbors.
        n_new: number of rows to make.
        k_neighbors: neighbours per row.
        categorical: column indices holding codes: copied from the nearer endpoint.
        seed: random state.

    Returns:
        float32 array of shape (n_new, d).
    """
    X_min = np.asarray(X_min, dtype=np.float64)
    cont = [j for j in range(X_min.shape[1]) if j not in set(categorical)]
    neighbours = nearest_neighbours(X_min[:, cont], k_neighbors + 1)[:, 1:]
    rng = np.random.RandomState(seed)
    flat = rng.randint(low=0, high=neighbours.size, size=n_new)
    steps = rng.uniform(size=n_new)[:, np.newaxis]
    out = np.empty((n_new, X_min.shape[1]), dtype=np.float32)
    # In blocks: the float64 temporaries follow the block, not n_new (HI-Large asks for ~10M rows).
    for lo in range(0, n_new, SMOTE_BLOCK_ROWS):
        hi = min(n_new, lo + SMOTE_BLOCK_ROWS)
        rows = np.floor_divide(flat[lo:hi], neighbours.shape[1])
        other = neighbours[rows, np.mod(flat[lo:hi], neighbours.shape[1])]
        block = X_min[rows] + steps[lo:hi] * (X_min[other] - X_min[rows])
        if categorical:
            nearer = np.where(steps[lo:hi, 0] < 0.5, rows, other)
            block[:, categorical] = X_min[nearer][:, categorical]
        out[lo:hi] = block
    return out


#: Synthetic rows computed at a time (float64 temporaries of about 4 x 16 MB per feature).
SMOTE_BLOCK_ROWS = 1 << 20


#: Up to this many minority rows the neighbours come from an exact NumPy search (a few
#: matrix products); above it from scikit-learn's trees, whose import alone costs seconds.
BRUTE_FORCE_MAX_ROWS = 20_000


def nearest_neighbours(space: np.ndarray, k: int, *, brute_max: int | None = None) -> np.ndarray:
    """Indices of the ``k`` nearest rows of ``space`` to each of its rows (itself first), Euclidean.

    As ``sklearn.neighbors.NearestNeighbors(n_neighbors=k).fit(space).kneighbors(space)``; equal
    distances are ordered by row index among the candidates, so the result is deterministic.
    """
    n = space.shape[0]
    if n > (BRUTE_FORCE_MAX_ROWS if brute_max is None else brute_max):
        from sklearn.neighbors import NearestNeighbors

        return NearestNeighbors(n_neighbors=k).fit(space).kneighbors(space, return_distance=False)
    sq = np.einsum("ij,ij->i", space, space)
    out = np.empty((n, k), dtype=np.int64)
    block = max(1, (1 << 22) // max(n, 1))  # about 32 MB of distances at a time
    for lo in range(0, n, block):
        hi = min(n, lo + block)
        d2 = sq[lo:hi, None] + sq[None, :] - 2.0 * (space[lo:hi] @ space.T)
        np.maximum(d2, 0.0, out=d2)
        d2[np.arange(hi - lo), np.arange(lo, hi)] = -1.0  # a row is its own nearest neighbour
        part = np.argpartition(d2, k - 1, axis=1)[:, :k] if k < n else np.tile(np.arange(n), (hi - lo, 1))
        dist = np.take_along_axis(d2, part, axis=1)
        order = np.lexsort((part, dist), axis=1)
        out[lo:hi] = np.take_along_axis(part, order, axis=1)
    return out


# --- the step -----------------------------------------------------------------------------------
def _train_rows(inputs: Inputs, norm: Any, edge_chunks: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Training rows' normalised edge features (minority only) and all training labels."""
    minority, labels = [], []
    for edge in edge_chunks:
        y = (inputs.scan([edge], "features").filter(pl.col("split") == 0).select("label")
             .collect()["label"].to_numpy())
        labels.append(y)
        if (y == 1).any():
            minority.append(scaled_edge_matrix(inputs, norm, edge, (pl.col("split") == 0) & (pl.col("label") == 1)))
    d = len(norm.value("edge_columns"))
    x_min = np.concatenate(minority) if minority else np.zeros((0, d), np.float32)
    return x_min, np.concatenate(labels) if labels else np.zeros(0, np.int8)


def compute(ctx: StepContext) -> Output:
    """Resample the normalised training rows: synthetic rows (or kept indices) only."""
    from amlgraph.steps.edge_features import CATEGORICAL_EDGE_FEATURES

    p = ctx.params
    norm = ctx.step("normalized")
    x_min, y_train = _train_rows(ctx.inputs, norm, chunk_names(ctx.step("edge_features")))
    cols = norm.value("edge_columns")
    categorical = [i for i, c in enumerate(cols) if c in CATEGORICAL_EDGE_FEATURES]
    res = resample_training(x_min, y_train, strategy=p["strategy"], k_neighbors=p["k_neighbors"],
                            target_ratio=p["target_ratio"], categorical=categorical, seed=p["seed"])
    for w in res.warnings:
        ctx.warn(w)
    arrays = {"X_synthetic": res.X_synthetic, "y_synthetic": res.y_synthetic}
    if res.keep_index is not None:
        arrays["keep_index"] = res.keep_index
    ctx.ok(f"{p['strategy']}: {int(res.X_synthetic.shape[0]):,} synthetic training rows "
           f"(training minority {int((y_train == 1).sum()):,} of {y_train.shape[0]:,})")
    return Output(arrays=arrays, values={"strategy": p["strategy"], "warnings": list(res.warnings)},
                  metadata={"num_synthetic": int(res.X_synthetic.shape[0]), "num_train": int(y_train.shape[0])})


STEP = Step("imbalanced", "Handling Class Imbalance", reads=("edge_features", "normalized"),
            params=("strategy", "k_neighbors", "target_ratio", "seed"), code=(),
            compute=compute)
