"""Pipeline parameters: one frozen dataclass, validated once, readable from TOML."""
from __future__ import annotations

import dataclasses
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from amlgraph.errors import ConfigError
from amlgraph.schema import ALL_STEPS

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

STRATEGIES = ("smote", "none", "random_under")
CURRENCY_MODES = ("usd", "raw")
#: "split": each split's node features from its rows and earlier ones (no future); "all": from
#: every row (transductive: leaks later periods into training features); "train": from the
#: training rows only, for every split.
NODE_FEATURE_SOURCES = ("split", "all", "train")
BAD_ROW_MODES = ("raise", "quarantine")
BACKENDS = ("local", "processes", "dask")


@dataclass(frozen=True)
class PatternConfig:
    """The ``[patterns]`` section: whether the optional ``pattern_features`` step runs and what it
    computes (``steps.pattern_features.PatternParams``; windows in seconds; docs/FEATURES.md).

    A ``[patterns]`` section in a config file turns the step on unless it says
    ``enabled = false``; ``amlgraph run --patterns`` turns it on with these values.
    """

    enabled: bool = False
    window: int = 86_400
    scatter_gather_window: int = 21_600
    temporal_cycle_window: int = 86_400
    simple_cycle_window: int = 86_400
    max_cycle_length: int = 10
    bins: tuple[int, ...] = (2, 3, 4, 5, 6, 7, 8, 9, 10)
    families: tuple[str, ...] = ("fan", "degree", "scatter_gather", "temporal_cycle", "simple_cycle",
                                 "vertex_stats")

    def __post_init__(self) -> None:
        from amlgraph.steps._patterns_params import PatternParams

        if not isinstance(self.enabled, bool):
            raise ConfigError(f"patterns.enabled must be true or false (got {self.enabled!r})")
        for name in ("bins", "families"):
            value = getattr(self, name)
            if isinstance(value, str) or not isinstance(value, (tuple, list)):
                raise ConfigError(f"patterns.{name} must be a list (got {value!r})")
            object.__setattr__(self, name, tuple(value))
        PatternParams(**self.params())  # validates, one line per problem

    def params(self) -> dict[str, Any]:
        """The fields that change the step's result (all but ``enabled``)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name != "enabled"}


def _pattern_config(value: Any) -> PatternConfig:
    if isinstance(value, PatternConfig):
        return value
    if isinstance(value, bool):
        return PatternConfig(enabled=value)
    if isinstance(value, dict):
        known = {f.name for f in dataclasses.fields(PatternConfig)}
        unknown = sorted(set(value) - known)
        if unknown:
            raise ConfigError(f"[patterns]: unknown parameter(s) {', '.join(unknown)}; "
                              f"known: {', '.join(sorted(known))}")
        return PatternConfig(**value)
    raise ConfigError(f"patterns must be a [patterns] table or true/false (got {value!r})")


@dataclass(frozen=True)
class PipelineConfig:
    """Everything a run depends on.

    Parameters that change results are part of the checkpoint keys of the steps that use them
    (see ``step_params``); ``chunk_size``/``chunk_rows``, ``workers``, ``threads`` and ``backend`` change how
    the work is cut and scheduled, never the result, so they only key chunk checkpoints.
    """

    data_path: Path | str                  # a path, or an fsspec URL (s3://bucket/data/) kept as a str
    checkpoint_dir: Path | str | None = None   # a path, or an fsspec URL (s3://bucket/ck) kept as a str
    sample_size: int | None = None
    chunk_size: int | None = None          # accounts per node_features chunk
    chunk_rows: int | None = None          # transactions per row chunk (loading, edge features)
    split_fractions: tuple[float, float, float] = (0.6, 0.2, 0.2)
    currency: str = "usd"
    rates_file: Path | str | None = None         # CSV currency,usd_per_unit: given rates win over inferred
    node_features_from: str = "split"
    strategy: str = "smote"
    k_neighbors: int = 5
    target_ratio: float = 0.1
    minority_cost: float = 1.0
    seed: int = 0
    on_bad_rows: str = "raise"
    resume_from: str | None = None
    fresh: bool = False
    workers: int = 1
    threads: int | None = None             # chunk tasks run at once in this process (None: auto)
    backend: str = "local"
    scheduler: str | None = None
    wait: bool = False
    quiet: bool = False
    verify: str = "full"                   # checkpoint verification before use (content hashes)
    keep_parsed: bool = False              # keep data_loaded's reader batches (a file appended later parses alone)
    patterns: PatternConfig = field(default_factory=PatternConfig)  # the optional pattern_features step
    extra: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not _is_url(self.data_path):
            object.__setattr__(self, "data_path", Path(self.data_path))
        if self.checkpoint_dir is not None and not _is_url(self.checkpoint_dir):
            object.__setattr__(self, "checkpoint_dir", Path(self.checkpoint_dir))
        if self.rates_file is not None and not _is_url(self.rates_file):
            object.__setattr__(self, "rates_file", Path(self.rates_file))
        object.__setattr__(self, "split_fractions", tuple(float(f) for f in self.split_fractions))
        object.__setattr__(self, "patterns", _pattern_config(self.patterns))
        _one_of("currency", self.currency, CURRENCY_MODES)
        _one_of("node_features_from", self.node_features_from, NODE_FEATURE_SOURCES)
        _one_of("strategy", self.strategy, STRATEGIES)
        _one_of("on_bad_rows", self.on_bad_rows, BAD_ROW_MODES)
        _one_of("backend", self.backend, BACKENDS)
        _one_of("verify", self.verify, ("none", "quick", "full"))
        if self.resume_from is not None:
            _one_of("resume_from", self.resume_from, ALL_STEPS)
            if self.resume_from not in self.steps:
                raise ConfigError(f"resume_from {self.resume_from!r} names a step this run leaves out; "
                                  "add --patterns or resume from another step")
        for name in ("sample_size", "chunk_size", "chunk_rows"):
            value = getattr(self, name)
            # bool is a subclass of int: True must not pass as 1
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise ConfigError(f"{name} must be a positive integer (got {value!r})")
        if self.workers < 1:
            raise ConfigError(f"workers must be >= 1 (got {self.workers})")
        if self.threads is not None and (not isinstance(self.threads, int) or isinstance(self.threads, bool)
                                         or self.threads < 1):
            raise ConfigError(f"threads must be a positive integer or None (got {self.threads!r})")
        if self.backend == "dask" and not self.scheduler:
            raise ConfigError("backend 'dask' needs a scheduler address such as tcp://127.0.0.1:8786")
        fr = self.split_fractions
        if len(fr) != 3 or min(fr) <= 0 or abs(sum(fr) - 1.0) > 1e-9:
            raise ConfigError(f"split_fractions must be three positive numbers summing to 1 (got {fr!r})")
        if not 0 < self.target_ratio <= 1:
            raise ConfigError(f"target_ratio must be in (0, 1] (got {self.target_ratio})")
        if self.k_neighbors < 1:
            raise ConfigError(f"k_neighbors must be >= 1 (got {self.k_neighbors})")
        if self.minority_cost <= 0:
            raise ConfigError(f"minority_cost must be > 0 (got {self.minority_cost})")

    # --- derived ----------------------------------------------------------------------------
    @property
    def resolved_checkpoint_dir(self) -> Path | str:
        """``<data dir>/checkpoints_<data set>_<sample_size or all>`` unless set (a URL stays a str).

        Named after the data set (``HI-Small``, ``LI-Small``, ...), so that two data sets in one
        folder (as Kaggle ships them) never share a checkpoint directory.
        """
        if self.checkpoint_dir is not None:
            return self.checkpoint_dir
        from amlgraph.ingest import find_inputs

        base = self.data_path if self.data_path.is_dir() else self.data_path.parent
        name = find_inputs(self.data_path).name
        return base / f"checkpoints_{name}_{self.sample_size if self.sample_size else 'all'}"

    @property
    def optional_steps(self) -> tuple[str, ...]:
        """The optional steps this run includes."""
        return ("pattern_features",) if self.patterns.enabled else ()

    @property
    def steps(self) -> tuple[str, ...]:
        """The steps this run computes or loads, in run order."""
        return tuple(s for s in ALL_STEPS if s != "pattern_features" or self.patterns.enabled)

    def step_params(self, step: str) -> dict[str, Any]:
        """The parameters that change the result of ``step`` (and so are part of its key), as
        its declaration names them (``amlgraph.steps``), JSON-ready."""
        from amlgraph.steps import declarations

        return {name: _jsonable(getattr(self, name)) for name in declarations()[step].params}

    def replace(self, **changes: Any) -> "PipelineConfig":
        return dataclasses.replace(self, **changes)

    @classmethod
    def from_toml(cls, path: Path, **overrides: Any) -> "PipelineConfig":
        """Read parameters from a TOML file (top level or a ``[amlgraph]`` table); overrides win."""
        try:
            with open(path, "rb") as fh:
                data = tomllib.load(fh)
        except FileNotFoundError as exc:
            raise ConfigError(f"config file {path} not found") from exc
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path}: not valid TOML: {exc}") from exc
        section = data.get("patterns")
        data = dict(data.get("amlgraph", data))
        if section is not None and "patterns" not in data:  # a top-level [patterns] beside [amlgraph]
            data["patterns"] = section
        if isinstance(data.get("patterns"), dict):  # a section turns the step on unless it says not
            data["patterns"] = {"enabled": True, **data["patterns"]}
        known = {f.name for f in dataclasses.fields(cls)} - {"extra"}
        unknown = sorted(set(data) - known)
        if unknown:
            raise ConfigError(f"{path}: unknown parameter(s) {', '.join(unknown)}; "
                              f"known: {', '.join(sorted(known))}")
        if overrides.get("patterns") is True and isinstance(data.get("patterns"), dict):
            overrides = {**overrides, "patterns": {**data["patterns"], "enabled": True}}
        merged = {**data, **{k: v for k, v in overrides.items() if v is not None}}
        if "split_fractions" in merged:
            merged["split_fractions"] = tuple(merged["split_fractions"])
        return cls(**merged)


def _is_url(value: Any) -> bool:
    """``scheme://...``: an fsspec URL, which ``Path`` would mangle (``s3://b/ck`` -> ``s3:/b/ck``)."""
    return isinstance(value, str) and re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", value) is not None


def _one_of(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ConfigError(f"{name} must be one of {{{', '.join(allowed)}}} (got {value!r})")


def _jsonable(value: Any) -> Any:
    if isinstance(value, PatternConfig):
        return {k: _jsonable(v) for k, v in value.params().items()}
    return list(value) if isinstance(value, tuple) else value
