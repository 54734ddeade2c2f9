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

import numpy as np

from amlgraph.errors import ConfigError

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
