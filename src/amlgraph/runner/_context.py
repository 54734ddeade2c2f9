"""What the runner lends a step: read-only inputs over the store, chunk execution, the log.

``StoreInputs`` implements ``steps.Inputs`` over any store; ``StepContextImpl`` implements
``steps.StepContext`` for one step of one run. The step never sees the run or the store: it
asks for inputs and chunks, and returns an ``Output`` that the runner saves.
"""
from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import polars as pl

from amlgraph.errors import CheckpointError
from amlgraph.runner._chunks import ChunkTask, default_chunk_rows, default_chunk_size
from amlgraph.runner._code import code_modules
from amlgraph.steps import Chunk, Output, Part, Pieces
from amlgraph.store import ArrayParts, code_version, make_key

log = logging.getLogger("amlgraph.runner")

#: The generic chunk task every chunked phase runs through (see ``_tasks.phase_task``).
PHASE_TASK = "amlgraph.runner._tasks:phase_task"


class StoreInputs:
    """Read-only checkpoints of a store (``steps.Inputs``)."""

    def __init__(self, store: Any):
        self._store = store

    def load(self, name: str, key: str | None = None):
        ckpt = self._store.load(name, key=key)
        if ckpt is None:
            ok, reason = self._store.check(name, key) if key else (False, "missing")
            root = getattr(self._store, "root", None)
            where = f" in {root}" if root is not None else ""
            raise CheckpointError(f"input checkpoint {name}{where} is not usable ({reason}); "
                                  "rerun the same command to recompute it")
        return ckpt

    def scan(self, names: list[str], table: str, schema: dict | None = None) -> pl.LazyFrame:
        ckpts = [self.load(n) for n in names]
        paths = [c.table_path(table) for c in ckpts]
        if paths and all(p is not None for p in paths):
            if schema is None:
                return pl.scan_parquet([str(p) for p in paths])
            return pl.scan_parquet([str(p) for p in paths], schema=schema, missing_columns="insert")
        frames = [c.table(table).lazy() for c in ckpts]
        if schema is not None:
            frames = [f.with_columns(pl.lit(None, dtype).alias(name) for name, dtype in schema.items()
                                     if name not in f.collect_schema()).select(list(schema)) for f in frames]
        return pl.concat(frames, how="vertical")


#: Compressed arrays are decoded into memory on every load (a plain .npy file is memory-mapped):
#: a checkpoint whose arrays together exceed this share of the machine's memory is written plain.
DECODE_MEMORY_FRACTION = 0.25


def decodable(arrays: dict[str, Any]) -> bool:
    """Whether ``arrays`` are small enough to be stored compressed: their decoded bytes fit
    :data:`DECODE_MEMORY_FRACTION` of the machine's total memory (hi-small's graph, ~1 GB, does
    on a 24 GB machine; a hi-large graph, ~30 GB, does not and stays memory-mappable)."""
    import numpy as np

    return fits_decoded(sum(int(np.prod(a.shape, dtype=np.int64)) * np.dtype(a.dtype).itemsize
                            for a in arrays.values()))


def fits_decoded(nbytes: int) -> bool:
    """Whether ``nbytes`` of arrays may be decoded (or assembled) in memory on every load."""
    import psutil

    return nbytes <= psutil.virtual_memory().total * DECODE_MEMORY_FRACTION


def save_output(store: Any, name: str, *, step: str, key: str, out: Output, chunk: int | None = None,
                key_components: dict | None = None) -> None:
    """The one place an ``Output`` becomes a checkpoint."""
    arrays = {name: ArrayParts(a.shape, a.dtype, a.loaders) if isinstance(a, Pieces) else a
              for name, a in out.arrays.items()}
    kwargs: dict[str, Any] = {}
    if out.row_group_rows is not None:
        kwargs["row_group_rows"] = out.row_group_rows
    if not out.compress or not decodable(arrays):
        kwargs["compress"] = False
    if key_components is not None:
        kwargs["key_components"] = key_components
    store.save(name, step=step, key=key, chunk=chunk, tables=out.tables, arrays=arrays,
               values=out.values, metadata=out.metadata, **kwargs)


class StepContextImpl:
    """``steps.StepContext`` for one step of one run."""

    def __init__(self, run: Any, step: str):
        # ``run`` is the runner's Run (not imported: it imports this module).
        self._run = run
        self.name = step
        self.inputs = StoreInputs(run.store)
        self.params = dict(run.components[step]["params"])
        self.forced = step in run.forced
        self.files = run.inputs
        self.fingerprints = run.files

    # --- inputs ---------------------------------------------------------------------------------
    def step(self, name: str):
        if name not in self._run.reads(self.name):
            raise CheckpointError(f"step {self.name} reads {name} but does not declare it")
        return self._run.loaded[name]

    def optional(self, name: str):
        if name not in self._run.declarations[self.name].uses:
            raise CheckpointError(f"step {self.name} uses {name} but does not declare it")
        return self._run.loaded[name] if name in self._run.declarations else None

    def decodable(self, nbytes: int) -> bool:
        return fits_decoded(nbytes)

    def option(self, name: str) -> Any:
        """A configuration field that shapes only the chunk plan (never the result)."""
        return getattr(self._run.cfg, name)

    def sizing(self, name: str, **facts: Any) -> int:
        cfg, run = self._run.cfg, self._run
        if name == "chunk_rows":  # one default, wherever rows are chunked
            return cfg.chunk_rows or default_chunk_rows(run.concurrency)
        if name == "chunk_size":
            return cfg.chunk_size or default_chunk_size(facts["num_accounts"], facts["num_rows"],
                                                        run.concurrency)
        if name == "kernel_threads":  # the cores, shared by the chunks in flight (fewer when the chunks are)
            in_flight = max(1, min(run.concurrency, facts.get("num_chunks", run.concurrency)))
            return max(1, (os.cpu_count() or 1) // in_flight)
        raise KeyError(name)

    def code_version(self, *modules: str) -> str:
        return code_version(*code_modules(*modules))

    def config_record(self) -> dict:
        cfg = self._run.cfg
        return {"data_path": str(cfg.data_path.resolve()), "dataset": self._run.inputs.name,
                "rates_file": None if cfg.rates_file is None else str(cfg.rates_file.resolve()),
                "params": {s: c["params"] for s, c in self._run.components.items()}}

    # --- chunks ---------------------------------------------------------------------------------
    def key(self, chunk: Chunk) -> str:
        """A chunk's key: the step's key and its place in the plan; a plan marked ``own_key`` is
        keyed by itself alone (a parsed file stays valid when another file joins the data)."""
        if chunk.plan.get("own_key"):
            return make_key({"chunk": chunk.index, "plan": chunk.plan})
        return make_key({"parent": self._run.keys[self.name], "chunk": chunk.index, "plan": chunk.plan})

    def _tasks(self, func: str, chunks: list[Chunk]) -> list[ChunkTask]:
        # An input read from this machine's copy of a URL goes to the task as its URL: a worker
        # with its own disk reads the object, not the client's copy.
        urls = getattr(self._run, "input_urls", None) or {}
        return [ChunkTask(c.name, self.key(c), PHASE_TASK,
                          {"func": func, "step": self.name, "index": c.index,
                           "kwargs": {k: urls.get(v, v) if isinstance(v, str) else v for k, v in c.kwargs.items()}},
                          chunk=c.index) for c in chunks]

    def pending(self, func: str, chunks: list[Chunk]) -> list[Chunk]:
        if self.forced:
            return list(chunks)
        todo = {t.name for t in self._run.executor.pending(self._tasks(func, chunks))}
        return [c for c in chunks if c.name in todo]

    def run_chunks(self, label: str, func: str, chunks: list[Chunk]) -> list[Part]:
        tasks = self._tasks(func, chunks)
        self._run.run_chunks(self.name, label, tasks)
        return [Part(t.name, t.key) for t in tasks]

    def reusable(self, chunk: Chunk) -> Part | None:
        key = self.key(chunk)
        if not self.forced and self._run.store.check(chunk.name, key)[0]:
            return Part(chunk.name, key)
        return None

    def save_parts(self, label: str, parts: Iterable[tuple[Chunk, Any]]) -> list[Part]:
        store, out_parts = self._run.store, []

        def save(chunk: Chunk, key: str, out: Any) -> None:
            # A part may come as a function that makes its Output: it then runs here, in the
            # save thread, beside the production of the next part.
            save_output(store, chunk.name, step=self.name, key=key, out=out() if callable(out) else out,
                        chunk=chunk.index)

        # Part i is written in a second thread while part i + 1 is produced (both release the
        # GIL); at most one save is in flight, so memory holds two parts, not more.
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="amlgraph-save") as pool:
            pending = None
            for chunk, out in parts:
                key = self.key(chunk)
                if out is not None and (self.forced or not store.check(chunk.name, key)[0]):
                    if pending is not None:
                        pending.result()
                    pending = pool.submit(save, chunk, key, out)
                out_parts.append(Part(chunk.name, key))
                del out
            if pending is not None:
                pending.result()
        return out_parts

    def save(self, chunk: Chunk, out: Output) -> Part:
        """Save one helper checkpoint of this step (an index, a marker) under its chunk key."""
        key = self.key(chunk)
        save_output(self._run.store, chunk.name, step=self.name, key=key, out=out,
                    chunk=None if chunk.index < 0 else chunk.index)
        return Part(chunk.name, key)

    def discard(self, parts: list[Part]) -> None:
        self._run.after_save.setdefault(self.name, []).extend(p.name for p in parts)

    # --- log ------------------------------------------------------------------------------------
    def info(self, text: str) -> None:
        self._run.log.line(text)

    def ok(self, text: str) -> None:
        self._run.log.ok(text)

    def warn(self, text: str) -> None:
        self._run.log.warn(text)

    def progress(self, label: str, total: int, unit: str = "it") -> Any:
        return self._run.log.progress(label, total, unit)

    def valid(self, part: Part) -> bool:
        """Whether the checkpoint of ``part`` validates under its key."""
        return bool(self._run.store.check(part.name, part.key)[0])
