"""Step ``normalized``: a chunkable standard scaler fitted on the training rows only.

Numerical choice: the scaler keeps, per column, a shift ``c`` (the first row it ever saw) and the
sums ``S1 = sum(x - c)`` and ``S2 = sum((x - c)**2)``, accumulated strictly sequentially in the
order rows are given (``np.cumsum`` with the carried sum as its first element; never ``np.sum``,
whose pairwise summation depends on where chunks start). Fed in global ``row`` order, any
chunking therefore gives bit-identical ``mean_``/``scale_``. Shifting by a data value avoids the
cancellation of the textbook ``E[x^2] - E[x]^2`` (Chan, Golub and LeVeque's shifted data).
"""
from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import polars as pl

from amlgraph._prefetch import ahead
from amlgraph.errors import ConfigError
from amlgraph.steps._contract import Inputs, Output, Step, StepContext
from amlgraph.steps._finite import check_node_features
from amlgraph.steps._layout import INDEX, chunk_names, coded_chunks
from amlgraph.steps._view_codec import decode_views
from amlgraph.steps.heavy_tails import heavy_tailed, log_transform

_EPS = np.finfo(np.float64).eps


def columns_to_scale(names: Iterable[str], categorical: Iterable[str],
                     flags: Iterable[str]) -> list[str]:
    """Names to standardise: all but the categorical codes and the 0/1 flags, in order."""
    skip = set(categorical) | set(flags)
    return [n for n in names if n not in skip]


_SUM_BLOCK = 4_096


def _sequential_sum(carry: np.ndarray, x: np.ndarray) -> np.ndarray:
    """``carry + x[0] + x[1] + ...`` per column, added strictly left to right.

    Row block by row block, so the extra memory is one block, not a copy of ``x``.
    """
    out = np.asarray(carry, dtype=np.float64)
    for start in range(0, len(x), _SUM_BLOCK):
        # A running sum down each column (an accumulate cannot reorder its additions), carried
        # from block to block: row blocks read memory in order, where a column is strided.
        out = np.cumsum(np.concatenate([out[None, :], x[start:start + _SUM_BLOCK]]), axis=0)[-1]
    return out.copy()


class StandardScaler:
    """Standardise columns to zero mean and unit variance (population variance, ddof=0).

    Attributes:
        mean_: per-column mean, shape (d,).
        var_: per-column population variance, shape (d,).
        scale_: per-column standard deviation, shape (d,); 1.0 for constant columns.
        n_samples_seen_: number of rows seen.
    """

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        for name in ("mean_", "var_", "scale_", "n_samples_seen_", "shift_", "_s1", "_s2"):
            self.__dict__.pop(name, None)

    def _check(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=np.float64)
        if X.ndim != 2:
            raise ConfigError(f"the scaler expects a 2-D array of shape (n, d) (got shape {X.shape})")
        d = getattr(self, "shift_", None)
        if d is not None and X.shape[1] != len(d):
            raise ConfigError(f"the scaler was fitted on {len(d)} columns (got {X.shape[1]})")
        return X

    def fit(self, X: np.ndarray) -> "StandardScaler":
        """Reset, then :meth:`partial_fit` on ``X`` of shape (n, d)."""
        self._reset()
        return self.partial_fit(X)

    def partial_fit(self, X: np.ndarray) -> "StandardScaler":
        """Add the rows of ``X`` (float64, shape (n, d)) to the statistics.

        Feed the rows in global ``row`` order across calls to get results independent of the
        chunking.
        """
        X = self._check(X)
        if not hasattr(self, "shift_"):
            if len(X) == 0:
                return self
            self.shift_ = X[0].copy()
            self._s1 = np.zeros(X.shape[1])
            self._s2 = np.zeros(X.shape[1])
            self.n_samples_seen_ = 0
        for start in range(0, len(X), _SUM_BLOCK):
            # Block by block: the deviations stay in cache and no copy of X is made.
            dev = X[start:start + _SUM_BLOCK] - self.shift_
            self._s1 = _sequential_sum(self._s1, dev)
            self._s2 = _sequential_sum(self._s2, dev * dev)
        self.n_samples_seen_ += len(X)
        self._finish()
        return self

    def _finish(self) -> None:
        n = self.n_samples_seen_
        m1 = self._s1 / n
        self.mean_ = self.shift_ + m1
        self.var_ = np.maximum(self._s2 / n - m1 * m1, 0.0)
        # Same constant-column test as scikit-learn: variance within rounding of zero.
        constant = self.var_ <= n * _EPS * self.var_ + (n * self.mean_ * _EPS) ** 2
        self.scale_ = np.where(constant, 1.0, np.sqrt(self.var_))

    def transform(self, X: np.ndarray) -> np.ndarray:
        """Return ``(X - mean_) / scale_`` as float32, shape (n, d).

        Raises:
            ConfigError: the scaler is not fitted, or the column count differs.
        """
        if not hasattr(self, "mean_"):
            raise ConfigError("StandardScaler is not fitted; call fit or partial_fit first")
        X = self._check(X)
        out = np.empty(X.shape, dtype=np.float32)
        for start in range(0, len(X), _SUM_BLOCK):
            # Block by block: the same elementwise arithmetic, without two full-size temporaries.
            rows = slice(start, start + _SUM_BLOCK)
            out[rows] = (X[rows] - self.mean_) / self.scale_
        return out

    def fit_transform(self, X: np.ndarray) -> np.ndarray:
        """:meth:`fit` then :meth:`transform`."""
        return self.fit(X).transform(X)

    def to_dict(self) -> dict:
        """JSON-able state (floats round-trip exactly through ``json``)."""
        if not hasattr(self, "shift_"):
            return {"fitted": False}
        return {"fitted": True, "n_samples_seen": int(self.n_samples_seen_),
                "shift": self.shift_.tolist(), "s1": self._s1.tolist(), "s2": self._s2.tolist(),
                "mean": self.mean_.tolist(), "scale": self.scale_.tolist()}

    @classmethod
    def from_dict(cls, state: dict) -> "StandardScaler":
        """Rebuild a scaler from :meth:`to_dict`; it can go on with :meth:`partial_fit`."""
        scaler = cls()
        if not state.get("fitted"):
            return scaler
        try:
            scaler.shift_ = np.array(state["shift"], dtype=np.float64)
            scaler._s1 = np.array(state["s1"], dtype=np.float64)
            scaler._s2 = np.array(state["s2"], dtype=np.float64)
            scaler.n_samples_seen_ = int(state["n_samples_seen"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ConfigError(f"not a StandardScaler state: {exc!r}; expected to_dict's output") from exc
        scaler._finish()
        return scaler


# --- the step -----------------------------------------------------------------------------------
#: Rows of a feature matrix filled at a time (8192 rows of ~20 float32 columns: ~0.7 MB).
_MATRIX_BLOCK_ROWS = 8192


def edge_matrix(feats: pl.DataFrame, columns: list[str], scaled: list[str], scaler: Any,
                log_columns: list[str]) -> np.ndarray:
    """Feature table -> float32 matrix of shape (rows, len(columns)); ``scaled`` columns standardised."""
    # Row block by row block, each column of the block computed on float64 and written into the
    # block: the same elementwise operations as on whole columns (so the same values), while
    # the block of the (row-major) output being filled stays in cache. Whole-column writes
    # strided across the output cost ~3x as much.
    out = np.empty((feats.height, len(columns)), dtype=np.float32)
    position = {c: i for i, c in enumerate(scaled)}
    logged = set(log_columns)
    plan = []
    for j, name in enumerate(columns):
        i = position.get(name)
        plan.append((j, feats[name].to_numpy(), None if i is None else (scaler.mean_[i], scaler.scale_[i]),
                     name in logged))
    for start in range(0, feats.height, _MATRIX_BLOCK_ROWS):
        stop = min(feats.height, start + _MATRIX_BLOCK_ROWS)
        block = out[start:stop]
        for j, values, affine, log in plan:
            x = values[start:stop].astype(np.float64, copy=False)
            if affine is not None:
                if log:
                    x = np.log1p(np.maximum(x, 0.0))
                x = (x - affine[0]) / affine[1]
            block[:, j] = x
    return out


def edge_frame(inputs: Inputs, name: str, columns: list[str], rows: pl.Expr | None = None,
               pattern: str | None = None) -> pl.DataFrame:
    """``columns`` of edge_features chunk ``name`` (only ``rows`` when given), with the
    ``pattern_*`` columns taken from its pattern_features chunk ``pattern``: the two chunks hold
    the same rows in the same order, and a filter on ``row``, ``label`` or ``split`` reads the
    same rows of both."""
    if pattern is None:
        frame = inputs.scan([name], "features")
        return (frame if rows is None else frame.filter(rows)).select(columns).collect()
    own = [c for c in columns if not c.startswith("pattern_")]
    frames = []
    for chunk, cols in ((name, ["row", *own]), (pattern, ["row", *(c for c in columns if c.startswith("pattern_"))])):
        frame = inputs.scan([chunk], "features")
        frames.append((frame if rows is None else frame.filter(rows)).select(cols).collect())
    if not frames[0]["row"].equals(frames[1]["row"]):
        from amlgraph.errors import CheckpointError

        raise CheckpointError(f"pattern_features chunk {pattern} does not hold the rows of {name} in its "
                              "order; rerun with --resume-from edge_features to recompute both")
    return pl.concat([frames[0].drop("row"), frames[1].drop("row")], how="horizontal").select(columns)


def pattern_chunk_of(norm: Any, name: str) -> str | None:
    """The pattern_features chunk paired with edge_features chunk ``name`` by a ``normalized``
    checkpoint ``norm`` (None when the run had no pattern features)."""
    if "pattern_chunks" not in norm.values:
        return None
    return norm.value("pattern_chunks")[name]


def scaled_edge_matrix(inputs: Inputs, norm: Any, name: str, rows: pl.Expr | None = None) -> np.ndarray:
    """The normalised edge matrix of edge_features chunk ``name`` (only ``rows`` when given),
    from the ``normalized`` checkpoint ``norm``: the map the step fitted, applied where consumed.
    Its pattern_features columns, when the run has them, come from the paired pattern chunk."""
    cols, scaled = norm.value("edge_columns"), norm.value("edge_scaled")
    frame = edge_frame(inputs, name, cols, rows, pattern_chunk_of(norm, name))
    return edge_matrix(frame, cols, scaled, StandardScaler.from_dict(norm.value("edge_scaler")),
                       norm.value("edge_log"))


def _float64_block(frame: pl.DataFrame) -> np.ndarray:
    """``frame`` as a writable float64 array (``log_transform`` works in place); copied only when
    Polars' array is of another type or read-only."""
    block = frame.to_numpy()
    if block.dtype != np.float64 or not block.flags.writeable:
        block = block.astype(np.float64)
    return block


def _node_scaling(inputs: Inputs, node_chunks: list[str], node_views: list[str],
                  data_chunks: list[str]) -> dict:
    """The node scaler and what ``normalized`` records of the node features.

    The scaler is fitted on the first view (training rows, or all rows in the transductive
    mode), on the accounts that take part in training transactions; every view is checked here
    (finite, in range) and scaled where it is consumed (:func:`scaled_node_matrices`).
    """
    feats = inputs.scan(node_chunks, f"features_{node_views[0]}").collect()
    node_cols = [c for c in feats.columns if c != "node_id"]

    def nodes() -> pl.DataFrame:
        return inputs.load(INDEX).table("nodes")

    check_node_features(feats, node_cols, nodes, node_views[0])
    node_flags = [c for c in node_cols if feats.schema[c] == pl.Int8]
    node_scaled = columns_to_scale(node_cols, [], node_flags)
    node_log = heavy_tailed(node_scaled)
    # One data chunk at a time (a concat of all training src and dst would grow with the input).
    is_train = np.zeros(feats.height, dtype=bool)
    for ends in ahead([lambda name=name: inputs.scan([name], "transactions").filter(pl.col("split") == 0)
                        .select("src", "dst").collect() for name in data_chunks]):
        is_train[ends["src"].to_numpy()] = True
        is_train[ends["dst"].to_numpy()] = True
    # Fitted on the training accounts' rows only (in node order, as a mask of the whole would
    # give them).
    train = feats.filter(pl.Series(is_train)) if is_train.any() else feats
    block = log_transform(_float64_block(train.select(node_scaled)), node_scaled, node_log)
    node_scaler = StandardScaler().fit(block)
    num_accounts = feats.height
    del block, train, feats
    for view, frame in decode_views(lambda table: inputs.scan(node_chunks, table).collect(), node_views):
        if view != node_views[0]:
            check_node_features(frame, node_cols, nodes, view)
    return {"node_columns": node_cols, "node_scaled": node_scaled, "node_log": node_log,
            "node_scaler": node_scaler.to_dict(), "node_views": list(node_views),
            "num_accounts": num_accounts}


def scaled_node_matrices(inputs: Inputs, norm: Any, node_chunks: list[str]) -> dict[str, np.ndarray]:
    """The normalised node matrix of every view, by array name (:func:`node_array_names`), from
    the ``node_features`` chunks and the ``normalized`` checkpoint ``norm``: the map the step
    fitted (log1p, standardise, float32), filled row block by row block in C order, the same
    values as transforming a float64 copy of all. Applied where consumed, like the edge map, so
    that the matrices are stored once, in the graph."""
    cols, scaled = norm.value("node_columns"), norm.value("node_scaled")
    scaler, log = StandardScaler.from_dict(norm.value("node_scaler")), norm.value("node_log")
    views = list(norm.value("node_views"))
    names = node_array_names(views)
    return {names[v]: edge_matrix(frame, cols, scaled, scaler, log)
            for v, frame in decode_views(lambda table: inputs.scan(node_chunks, table).collect(), views, cols)}


#: The array of each node view in the ``normalized`` checkpoint and the graph: the last view
#: (all rows) is ``x``; the earlier ones ``x_<view>``.
def node_array_names(node_views: list[str]) -> dict[str, str]:
    """``{view: array name}``: the last view is ``x``, the others ``x_<view>``."""
    return {v: ("x" if i == len(node_views) - 1 else f"x_{v}") for i, v in enumerate(node_views)}


def compute(ctx: StepContext) -> Output:
    """Fit both scalers on the training rows; store the node and the edge map."""
    from amlgraph.errors import StepError
    from amlgraph.steps.edge_features import (
        CATEGORICAL_EDGE_FEATURES,
        FLAG_EDGE_FEATURES,
    )

    inputs = ctx.inputs
    edges = ctx.step("edge_features")
    nodes_ckpt = ctx.step("node_features")
    node_views = list(nodes_ckpt.value("views")) if "views" in nodes_ckpt.values else ["all"]
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="amlgraph-nodes") as pool:
        # The node scaler is fitted and applied in a second thread while this one passes over
        # the edge chunks: the two are independent, and each alone leaves a core mostly idle
        # (NumPy passes on one core, Parquet reads in between). Its errors surface in result().
        nodes = pool.submit(_node_scaling, inputs, chunk_names(nodes_ckpt), node_views,
                            coded_chunks(ctx.step("data_loaded")))
        # Edges: one sequential pass over the training rows of every chunk, in row order. The
        # optional pattern features are more edge columns, read from the paired pattern chunk.
        patterns = ctx.optional("pattern_features")
        edge_chunks = chunk_names(edges)
        pairs: dict[str, str] = {}
        edge_cols = list(edges.value("columns"))
        if patterns is not None:
            pattern_chunks = chunk_names(patterns)
            if len(pattern_chunks) != len(edge_chunks):
                raise StepError(f"pattern_features has {len(pattern_chunks)} chunks and edge_features "
                                f"{len(edge_chunks)}; rerun with --resume-from data_loaded", step="normalized")
            pairs = dict(zip(edge_chunks, pattern_chunks))
            edge_cols += list(patterns.value("columns"))
        edge_scaled = columns_to_scale(edge_cols, list(CATEGORICAL_EDGE_FEATURES), list(FLAG_EDGE_FEATURES))
        edge_log = heavy_tailed(edge_scaled)
        edge_scaler = StandardScaler()
        fitted = False
        # Only the training rows of the scaled columns are decoded (projection and predicate pushed
        # into the Parquet reader), the next part while this one is added up.
        for f in ahead([lambda name=name: edge_frame(inputs, name, edge_scaled, pl.col("split") == 0,
                                                     pairs.get(name)) for name in edge_chunks]):
            if f.height:
                edge_scaler.partial_fit(log_transform(_float64_block(f), edge_scaled, edge_log))
                fitted = True
        node_values = nodes.result()
    if not fitted:
        raise StepError("the training split has no transactions; use more data or other "
                        "split_fractions", step="normalized")
    overflow = [c for c, m, s in zip(edge_scaled, edge_scaler.mean_, edge_scaler.scale_)
                if not (np.isfinite(m) and np.isfinite(s))]
    if overflow:  # every value of such a column would be NaN
        raise StepError(f"edge feature(s) {', '.join(map(repr, overflow))}: the mean or standard deviation "
                        "of the training rows overflows float64; check the amounts of the transactions "
                        "(amlgraph check) for absurd values", step="normalized")
    # The scaled matrices are not stored here: each is one affine map of the edge_features or
    # node_features chunks, applied where the rows are consumed (imbalanced, graph_created), so
    # hi-large's ~13 GB of float32 edge matrix (and the node matrices) are written once, in the
    # graph, and not twice.
    num_accounts = node_values.pop("num_accounts")
    with_patterns = {} if patterns is None else {
        "pattern_chunks": pairs, "pattern_parts": list(patterns.value("parts"))}
    return Output(values={**node_values, "edge_columns": edge_cols, "edge_scaled": edge_scaled,
                          "edge_log": edge_log, "edge_scaler": edge_scaler.to_dict(), **with_patterns},
                  metadata={"num_accounts": num_accounts, "num_features": len(node_values["node_columns"])})


STEP = Step("normalized", "Normalizing Features", reads=("data_loaded", "node_features", "edge_features"),
            params=(), code=(), compute=compute, uses=("pattern_features",))
