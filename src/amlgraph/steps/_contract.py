"""What a step is: a declaration, plain functions, and the narrow services the runner lends them.

A step module declares itself with :class:`Step`: its name, the steps whose checkpoints it reads,
the configuration fields that change its result, the modules whose code it depends on, and the
function that computes it. That function receives a :class:`StepContext` (read-only inputs, the
step's parameters, a way to have chunks computed) and returns an :class:`Output`; the runner
alone saves it, under a key built from the declaration. Chunk functions receive
:class:`Inputs` (read-only) and their keyword arguments, and return an :class:`Output` that the
runner saves as the chunk's checkpoint, in this process, a worker process or a Dask worker.

Nothing here knows the store or the runner: the runner implements these protocols.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import polars as pl

from amlgraph.schema import chunk_name, is_chunk_name  # noqa: F401  (the naming rule, re-exported)


@dataclass
class Output:
    """What a step or chunk function returns: the content of one checkpoint.

    Attributes:
        tables: Polars frames, saved as Parquet.
        arrays: NumPy arrays (or the store's lazily assembled ``ArrayParts``), saved as ``.npy``.
        values: JSON-able values.
        metadata: small JSON-able facts shown by ``amlgraph checkpoints list``.
        compress: zstd-compress the arrays (cold data, loaded as copies) or not (memory-mapped);
            tables are always zstd Parquet.
        row_group_rows: Parquet row-group size, when the reader filters by row-group statistics.
    """

    tables: dict[str, pl.DataFrame] = field(default_factory=dict)
    arrays: dict[str, Any] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    compress: bool = True
    row_group_rows: int | None = None


@dataclass(frozen=True)
class Pieces:
    """An array of ``shape`` and ``dtype`` made of pieces, each produced by a loader when the
    store writes it: memory holds one piece, never the whole array. The pieces fill the array
    in C order (for a (2, n) array: the first row's pieces, then the second's).
    """

    shape: tuple[int, ...]
    dtype: Any
    loaders: list[Callable[[], np.ndarray]]


@dataclass(frozen=True)
class Part:
    """A checkpoint a step's result was assembled from: its name and the key it must carry."""

    name: str
    key: str

    def as_value(self) -> dict:
        return {"name": self.name, "key": self.key}


@dataclass(frozen=True)
class Chunk:
    """One chunk of a chunked phase.

    Attributes:
        name: the chunk's checkpoint name (``<step>_chunk_<i>``, see :func:`chunk_name`).
        index: its place in the plan.
        plan: what, besides the step's key, identifies the chunk (part of the chunk's key).
        kwargs: JSON-able keyword arguments of the chunk function.
    """

    name: str
    index: int
    plan: dict[str, Any]
    kwargs: dict[str, Any]


class Checkpoint(Protocol):
    """A loaded checkpoint, read-only."""

    @property
    def arrays(self) -> list[str]: ...
    @property
    def tables(self) -> list[str]: ...
    @property
    def values(self) -> list[str]: ...
    def value(self, name: str) -> Any: ...
    def array(self, name: str, *, mmap: bool = True) -> np.ndarray: ...
    def table(self, name: str) -> pl.DataFrame: ...


class Inputs(Protocol):
    """Read-only access to checkpoints, lent by the runner to step and chunk functions."""

    def load(self, name: str) -> Checkpoint:
        """Checkpoint ``name``; a clear error (rerun to recompute it) when it is not usable."""
        ...

    def scan(self, names: list[str], table: str, schema: dict | None = None) -> pl.LazyFrame:
        """One lazy scan over table ``table`` of checkpoints ``names`` (columns of ``schema``
        that a checkpoint lacks read as nulls)."""
        ...


class StepContext(Protocol):
    """What a step function may use: its inputs, parameters, chunk execution and the log."""

    inputs: Inputs
    params: dict[str, Any]
    forced: bool
    files: Any          # the run's input files (``ingest.InputFiles``); data_loaded reads them
    fingerprints: dict  # their fingerprints, by role ("trans", "trans_1", "accounts", ...)

    def step(self, name: str) -> Checkpoint:
        """The checkpoint of a step this one declared in ``reads``."""
        ...

    def optional(self, name: str) -> Checkpoint | None:
        """The checkpoint of an optional step declared in ``uses``; None when the run leaves
        that step out."""
        ...

    def sizing(self, name: str, **facts: Any) -> int:
        """A chunking size: ``"chunk_rows"`` (transactions per row chunk), ``"chunk_size"``
        (accounts per node chunk; ``facts``: num_accounts, num_rows): the configured one, else
        the runner's one default for this machine and the chunks in flight; or
        ``"kernel_threads"``: threads one chunk's compiled kernels may use (the cores shared
        among the chunks in flight; ``facts``: num_chunks, fewer chunks than the executor
        runs at once leave their cores to those)."""
        ...

    def decodable(self, nbytes: int) -> bool:
        """Whether arrays of ``nbytes`` in all may be decoded into memory on every load (the
        runner's budget: a share of the machine's memory); if not, they are written plain, to be
        memory-mapped."""
        ...

    def option(self, name: str) -> Any:
        """A configuration field that is not one of the step's keyed params: an input file
        keyed by its content (``rates_file``), or a field that shapes only the chunk plan."""
        ...

    def code_version(self, *modules: str) -> str:
        """Hash of the source of ``modules`` (a key component for checkpoints keyed on their own)."""
        ...

    def config_record(self) -> dict:
        """The run's data path and every step's parameters, recorded for ``amlgraph status``."""
        ...

    def run_chunks(self, label: str, func: str, chunks: list[Chunk]) -> list[Part]:
        """Have ``func`` (``"module:function"``) computed for every chunk whose checkpoint is
        not valid yet, and saved by the runner; returns every chunk's part, in plan order."""
        ...

    def pending(self, func: str, chunks: list[Chunk]) -> list[Chunk]:
        """The chunks whose checkpoints are not valid (all of them when the step is forced)."""
        ...

    def save_parts(self, label: str, parts: Iterable[tuple[Chunk, Any]]) -> list[Part]:
        """Save outputs produced one at a time by the step itself (a streaming reader), each
        as its chunk's checkpoint, the next one produced while the previous one is written. A
        part is an ``Output``, a function returning one (run in the writing thread), or None
        (its checkpoint is valid already)."""
        ...

    def save(self, chunk: Chunk, out: Output) -> Part:
        """Save one helper checkpoint of this step (an index, a marker) under the chunk's key."""
        ...

    def valid(self, part: Part) -> bool:
        """Whether the checkpoint of ``part`` validates under its key."""
        ...

    def reusable(self, chunk: Chunk) -> Part | None:
        """The part of ``chunk`` when its checkpoint is valid (and the step is not forced)."""
        ...

    def discard(self, parts: list[Part]) -> None:
        """Delete helper checkpoints the step no longer needs once its own is saved."""
        ...

    def info(self, text: str) -> None: ...
    def ok(self, text: str) -> None: ...
    def warn(self, text: str) -> None: ...
    def progress(self, label: str, total: int, unit: str = "it") -> Any:
        """A progress handle with ``update(n)`` and ``close()`` (silent when the run is quiet)."""
        ...


@dataclass(frozen=True)
class Step:
    """A step's declaration: everything the runner needs to key, plan, call and persist it.

    Attributes:
        name: the step's public name (``resume_from=name``).
        title: the banner shown while it runs.
        reads: steps whose checkpoints it reads; their keys are part of its key.
        params: configuration fields that change its result (part of its key).
        code: modules (dotted; a package covers all its files) whose source is part of its key
            although the step does not import them; the runner adds the step's own module and
            every library module it imports, transitively (``runner/_code.py``).
        compute: ``compute(ctx: StepContext) -> Output``, the step checkpoint's content.
        uses: optional steps it reads when the run includes them (``ctx.optional(name)``); their
            keys are part of its key then, and only then, so a run without them keys it as before.
        optional: the step runs only when the configuration asks for it.
        module: the step's own module (set from ``compute``).
    """

    name: str
    title: str
    reads: tuple[str, ...]
    params: tuple[str, ...]
    code: tuple[str, ...]
    compute: Callable[[StepContext], Output]
    uses: tuple[str, ...] = ()
    optional: bool = False

    def inputs(self, present: Iterable[str]) -> tuple[str, ...]:
        """The steps whose checkpoints it reads in a run of the steps ``present``."""
        have = set(present)
        return self.reads + tuple(u for u in self.uses if u in have)

    @property
    def module(self) -> str:
        return self.compute.__module__


def parts_value(parts: Iterable[Part]) -> list[dict]:
    return [p.as_value() for p in parts]


def part_names(ckpt: Checkpoint) -> Iterator[str]:
    """Names of the parts a step checkpoint lists under its value ``parts``."""
    if "parts" in ckpt.values:
        for p in ckpt.value("parts"):
            yield p["name"]
