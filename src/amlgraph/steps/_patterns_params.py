"""What the pattern features are: their parameters, column names and look-back window.

Light on purpose (no numba): the configuration validates with it and the step's declaration
imports it, so ``import amlgraph`` and a run without patterns never load the kernels.
Definitions: docs/PATTERNS.md and docs/FEATURES.md.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from amlgraph.errors import ConfigError

#: Order of the four (endpoint, direction) sets in every output.
SETS = (("src", "out"), ("src", "in"), ("dst", "out"), ("dst", "in"))
#: Statistics of the amounts and of the inter-arrival gaps of a set, in output order.
STATS = ("count", "sum", "mean", "min", "max", "std")
#: Rows per set in the vertex-statistics block: amount stats then gap stats.
STAT_ROWS = 2 * len(STATS)
#: The feature families, in output order.
FAMILIES = ("fan", "degree", "scatter_gather", "temporal_cycle", "simple_cycle", "vertex_stats")


@dataclass(frozen=True)
class PatternParams:
    """What :func:`pattern_features` computes. Windows are in seconds.

    Attributes:
        window: fan, degree and vertex statistics look at the half-open window (t - window, t].
        scatter_gather_window: scatter-gather and gather-scatter look at [t - w, t].
        temporal_cycle_window: temporal cycles use edges in [t - w, t).
        simple_cycle_window: simple cycles use edges in [t - w, t] before the closing edge.
        max_cycle_length: longest simple cycle counted, the closing edge included (>= 2).
        bins: histogram bins of pattern sizes (scatter-gather intermediates, cycle lengths):
            bin k counts sizes ``bins[k] <= s < bins[k + 1]``, the last bin ``s >= bins[-1]``,
            sizes below ``bins[0]`` are not counted. Strictly increasing, >= 1.
        families: the families to compute, a subset of :data:`FAMILIES`.
    """

    window: int = 86_400
    scatter_gather_window: int = 21_600
    temporal_cycle_window: int = 86_400
    simple_cycle_window: int = 86_400
    max_cycle_length: int = 10
    bins: tuple[int, ...] = (2, 3, 4, 5, 6, 7, 8, 9, 10)
    families: tuple[str, ...] = FAMILIES

    def __post_init__(self) -> None:
        for name in ("window", "scatter_gather_window", "temporal_cycle_window", "simple_cycle_window"):
            value = getattr(self, name)
            if not isinstance(value, (int, np.integer)) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"PatternParams.{name} must be a positive number of seconds "
                                  f"(got {value!r})")
        if not isinstance(self.max_cycle_length, (int, np.integer)) or self.max_cycle_length < 2:
            raise ConfigError(f"PatternParams.max_cycle_length must be an integer >= 2 "
                              f"(got {self.max_cycle_length!r})")
        bins = tuple(self.bins)
        if (not bins or any(not isinstance(b, (int, np.integer)) or b < 1 for b in bins)
                or any(b >= c for b, c in zip(bins, bins[1:]))):
            raise ConfigError(f"PatternParams.bins must be strictly increasing integers >= 1 "
                              f"(got {self.bins!r})")
        unknown = [f for f in self.families if f not in FAMILIES]
        if unknown or len(set(self.families)) != len(self.families):
            raise ConfigError(f"PatternParams.families must be distinct names among {FAMILIES} "
                              f"(got {self.families!r})")


def _bin_labels(bins: tuple[int, ...]) -> list[str]:
    labels = []
    for k, lo in enumerate(bins):
        if k == len(bins) - 1:
            labels.append(f"{lo}plus")
        elif bins[k + 1] - lo == 1:
            labels.append(f"{lo}")
        else:
            labels.append(f"{lo}_{bins[k + 1] - 1}")
    return labels


def pattern_feature_names(params: PatternParams) -> list[str]:
    """The ``pattern_*`` columns of :func:`pattern_features` for ``params``, in output order."""
    names: list[str] = []
    labels = _bin_labels(tuple(params.bins))
    for family in FAMILIES:
        if family not in params.families:
            continue
        if family in ("fan", "degree"):
            names += [f"pattern_{family}_{d}_{end}" for end, d in SETS]
        elif family == "vertex_stats":
            names += [f"pattern_{end}_{d}_{what}_{stat}" for end, d in SETS
                      for what in ("amount", "gap") for stat in STATS]
        elif family == "scatter_gather":
            names += [f"pattern_scatter_gather_{b}" for b in labels] + ["pattern_gather_scatter"]
        else:
            names += [f"pattern_{family}_{b}" for b in labels]
    return names


def lookback_seconds(params: PatternParams) -> int:
    """Seconds of earlier transactions a chunk needs as context (0 when no family is asked).

    Every edge with ``timestamp >= first_timestamp - lookback_seconds(params)`` that precedes
    the chunk's first edge in (timestamp, row) order must be passed as context.
    """
    windows = {"fan": params.window, "degree": params.window, "vertex_stats": params.window,
               "scatter_gather": params.scatter_gather_window,
               "temporal_cycle": params.temporal_cycle_window,
               "simple_cycle": params.simple_cycle_window}
    return max((int(windows[f]) for f in params.families), default=0)



def is_float_column(name: str) -> bool:
    """Whether column ``name`` holds float64 statistics (the others are int64 counts)."""
    return ("_amount_" in name or "_gap_" in name) and not name.endswith("_count")
