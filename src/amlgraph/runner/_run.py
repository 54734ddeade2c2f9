"""The runner: decides, for each step of the run, load or compute, and persists every result.

Keys are computed for all steps before anything runs (they depend only on parameters, code and
input files), so the runner knows up front which checkpoints are valid and why the others are
not. It then works backwards from ``graph_created`` to find which steps are needed at all, and
forwards to load or compute them. Chunked steps go through an executor that skips every chunk
whose checkpoint already validates.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from amlgraph.config import PipelineConfig
from amlgraph.errors import CheckpointError, InputError
from amlgraph.runner._code import code_modules
from amlgraph.runner._compact import compacted_reason
from amlgraph.runner._context import StepContextImpl, save_output
from amlgraph.runner._log import RunLog
from amlgraph.runner._space import check_space
from amlgraph.steps import declarations, is_chunk_name
from amlgraph.store import STARTED

#: The runner's modules whose code shapes every step's checkpoints (part of every key).
RUNNER_CODE = ("amlgraph.runner._context", "amlgraph.runner._tasks", "amlgraph.steps._contract",
               "amlgraph.steps._layout", "amlgraph.schema")


@dataclass
class PipelineResult:
    """What a run returns. ``graph`` is read from the checkpoints when first used (a run that
    only needs its checkpoints never assembles it); ``num_nodes`` and ``num_edges`` are known."""

    checkpoint_dir: Path | None
    computed: list[str] = field(default_factory=list)
    loaded: list[str] = field(default_factory=list)
    chunks_computed: dict[str, int] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)
    num_nodes: int = 0
    num_edges: int = 0
    _graph: Any = field(default=None, repr=False)
    _load: Any = field(default=None, repr=False)

    @property
    def graph(self):
        """The TransactionGraph (amlgraph.graph), assembled on first use."""
        if self._graph is None and self._load is not None:
            self._graph, self._load = self._load(), None
        return self._graph

    @graph.setter
    def graph(self, value) -> None:
        self._graph, self._load = value, None

    @property
    def node_features(self) -> np.ndarray:
        """Normalised node features of shape (num_nodes, F)."""
        return self.graph.x

    @property
    def edge_features(self) -> np.ndarray:
        """Normalised edge features of shape (num_edges, D)."""
        return self.graph.edge_attr

    @property
    def edge_labels(self) -> np.ndarray:
        return self.graph.y

    @property
    def class_weights(self) -> dict[int, float]:
        return self.graph.class_weights

    def as_seed_tuple(self) -> tuple:
        """``(G, node_features, edge_features, edge_labels, class_weights)`` as the seed returned."""
        return self.graph, self.node_features, self.edge_features, self.edge_labels, self.class_weights


class Run:
    """One pipeline run against one store. Owns keys, the plan and the load-or-compute decisions."""

    def __init__(self, cfg: PipelineConfig, store: Any, log: RunLog, *, executor: Any = None):
        from amlgraph.ingest import find_inputs

        self.cfg, self.store, self.log = cfg, store, log
        self.inputs = find_inputs(cfg.data_path)
        #: The URL of each input this machine read from a copy (see ``local_inputs``).
        self.input_urls: dict[str, str] = {}
        # The seven steps and the optional ones this configuration asks for, in run order.
        self.declarations = declarations(cfg.optional_steps)
        self.order = list(self.declarations)
        self.after_save: dict[str, list[str]] = {}
        self._executor = executor
        self.keys: dict[str, str] = {}
        self.components: dict[str, dict] = {}
        self.loaded: dict[str, Any] = {}
        self.result = PipelineResult(checkpoint_dir=getattr(store, "root", None))
        self._refuse_another_dataset()
        self._compute_keys()
        self.forced = self._forced_steps()

    def _refuse_another_dataset(self) -> None:
        """A checkpoint directory holds one data set: a run of another stops before it writes."""
        if self.cfg.fresh:
            return  # an explicit fresh start may reuse the directory for another data set
        done = self.store.load("data_loaded", verify="none")
        if done is None or "config" not in done.values:
            return
        theirs = done.value("config").get("dataset")
        if theirs is not None and theirs != self.inputs.name:
            root = getattr(self.store, "root", "(in memory)")
            raise CheckpointError(
                f"{root} holds the checkpoints of data set {theirs!r}, not of {self.inputs.name!r}; "
                f"use another --checkpoint-dir (the default is named after the data set), or --fresh "
                f"to replace them")

    # --- keys -------------------------------------------------------------------------------
    def _compute_keys(self) -> None:
        from amlgraph import __version__
        from amlgraph.store import HashCache, code_version, file_fingerprint, make_key

        root = getattr(self.store, "root", None)
        # An object store keeps no cache of input hashes: the inputs may be on another machine.
        cache = HashCache(Path(root) / ".hashcache.json") if isinstance(root, Path) else None
        files = {}
        for j, path in enumerate(self.inputs.trans_files):
            files["trans" if j == 0 else f"trans_{j}"] = file_fingerprint(path, cache=cache)
        for role in ("accounts", "patterns"):
            path = getattr(self.inputs, role)
            if path is not None:
                files[role] = file_fingerprint(path, cache=cache)
        if self.cfg.rates_file is not None:
            files["rates"] = file_fingerprint(self.cfg.rates_file, cache=cache)
        self.files = files
        for step, decl in self.declarations.items():
            comp = {
                "step": step,
                "params": self.cfg.step_params(step),
                "code": code_version(*code_modules(decl.module, *decl.code, *RUNNER_CODE)),
                "inputs": {dep: self.keys[dep] for dep in self.reads(step)},
                "files": files if not decl.reads else {},
                "version": __version__,
            }
            self.components[step] = comp
            self.keys[step] = make_key(comp)

    def reads(self, step: str) -> tuple[str, ...]:
        """The steps whose checkpoints ``step`` reads in this run (optional ones when present)."""
        return self.declarations[step].inputs(self.declarations)

    # --- validity -----------------------------------------------------------------------------
    def check(self, step: str) -> tuple[bool, str | None]:
        """Whether ``step``'s checkpoint and every chunk it lists are valid for the current key."""
        ok, reason = self.store.check(step, self.keys[step], self.components[step])
        if not ok:
            return ok, reason
        ckpt = self.store.load(step, key=self.keys[step], verify="none")
        if ckpt is None:
            return False, "corrupt"
        compacted = compacted_reason(ckpt)
        if compacted:
            return False, compacted
        for part in _parts(ckpt):
            ok, reason = self.store.check(part["name"], part["key"])
            if not ok:
                return False, f"{part['name']}: {reason}"
        return True, None

    def _forced_steps(self) -> set[str]:
        cfg = self.cfg
        if cfg.fresh:
            return set(self.order)
        if cfg.resume_from is None:
            return set()
        ok, reason = self.check(cfg.resume_from)
        if not ok:
            have = [n for n in self.store.names() if not is_chunk_name(n)]
            raise CheckpointError(
                f"cannot resume from {cfg.resume_from}: its checkpoint is not usable ({reason}); "
                f"valid checkpoints: {', '.join(have) or 'none'}; rerun without --resume-from "
                "to recompute what is needed")
        return set(self.order[self.order.index(cfg.resume_from) + 1:])

    # --- execution --------------------------------------------------------------------------
    @property
    def executor(self):
        if self._executor is None:
            from amlgraph.runner._chunks import make_executor

            self._executor = make_executor(self.store, backend=self.cfg.backend,
                                           workers=self.cfg.workers, scheduler=self.cfg.scheduler,
                                           quiet=self.cfg.quiet, threads=self.threads)
        return self._executor

    @property
    def threads(self) -> int:
        """Chunk tasks in flight in this process (``threads``, default one per core up to 4)."""
        from amlgraph.runner._chunks import default_threads

        return self.cfg.threads or default_threads()

    @property
    def concurrency(self) -> int:
        """Chunks of one step computed at once on this machine (they share the memory budget)."""
        if self.cfg.backend == "dask" or self.cfg.scheduler is not None:
            return 1  # each worker has its own machine's memory
        return self.cfg.workers if self.cfg.workers > 1 else self.threads

    def plan(self) -> dict[str, str]:
        """For each step: "load", "compute" or "skip" (not needed: a later checkpoint covers it).

        Walks backwards from graph_created and checks a step only when something after it needs
        it, so a finished run verifies one checkpoint, not all of them.
        """
        actions: dict[str, str] = {}
        self.reasons: dict[str, str | None] = {}
        needed = {"graph_created"}
        for step in reversed(self.order):
            if step not in needed:
                actions[step] = "skip"
                continue
            ok, reason = (False, "forced") if step in self.forced else self.check(step)
            self.reasons[step] = reason
            actions[step] = "load" if ok else "compute"
            if not ok:
                needed.update(self.reads(step))
        return {s: actions[s] for s in self.order}

    def execute(self) -> PipelineResult:
        plan = self.plan()
        for i, step in enumerate(self.order, 1):
            with self.log.step(i, len(self.order), step, self.declarations[step].title, plan[step]):
                action = plan[step]
                if action == "skip":
                    self.log.skip(f"Skipping {step} (later checkpoints are valid)")
                elif action == "load":
                    self.log.skip(f"Loading {step} from checkpoint...")
                    self.loaded[step] = self.store.load(step, key=self.keys[step])
                    self.log.ok(f"Checkpoint loaded: {step}")
                    self.result.loaded.append(step)
                else:
                    if step not in self.forced:
                        self.log.line(f"Computing {step}: {self.reasons[step]}")
                    check_space(self, step)
                    self._compute(step)
                    self.loaded[step] = self.store.load(step, key=self.keys[step])
                    if self.loaded[step] is None:
                        raise CheckpointError(f"checkpoint {step} could not be read back right after "
                                              "it was saved; check the disk and rerun")
                    self.log.ok(f"Checkpoint saved: {step}")
                    self.result.computed.append(step)
        self.result.timings = dict(self.log.timings)
        from amlgraph.runner._graph import graph_of

        ckpt = self.loaded["graph_created"]
        meta = ckpt.manifest.get("metadata") or {}
        self.result.num_nodes, self.result.num_edges = int(meta["num_accounts"]), int(meta["num_edges"])
        self.result._load = lambda store=self.store: graph_of(store, ckpt)
        return self.result

    def _compute(self, step: str) -> None:
        """Call the step's function with its context and save what it returns (the runner alone
        persists); then free the helper checkpoints the step no longer needs."""
        start = time.perf_counter()
        out = self.declarations[step].compute(StepContextImpl(self, step))
        # The step's time, chunks and the lazy writing of its arrays included, recorded with the
        # checkpoint when it commits (`status --json`).
        out.metadata[STARTED] = start
        save_output(self.store, step, step=step, key=self.keys[step], out=out,
                    key_components=self.components[step])
        for name in self.after_save.pop(step, []):
            self.store.delete(name)

    def run_chunks(self, step: str, label: str, tasks: list) -> int:
        computed = self.executor.run(label, tasks, force=step in self.forced)
        self.result.chunks_computed[label] = self.result.chunks_computed.get(label, 0) + computed
        if tasks:
            self.log.ok(f"{label}: {len(tasks)} chunks ({computed} computed, "
                        f"{len(tasks) - computed} reused)")
        return computed

    def close(self) -> None:
        if self._executor is not None:
            self._executor.close()


def _parts(ckpt: Any) -> list[dict]:
    """The chunk (and helper) checkpoints a step checkpoint depends on, as recorded in it."""
    return list(ckpt.value("parts")) if "parts" in ckpt.values else []


def run_preprocessing(config: PipelineConfig | dict | None = None, *, store: Any = None,
                      executor: Any = None, log: RunLog | None = None, lazy_graph: bool = False,
                      **overrides: Any) -> PipelineResult:
    """Run the seven steps, loading every valid checkpoint and computing the rest.

    Args:
        config: a PipelineConfig, or a dict of its fields (``data_path`` at least).
        store: a CheckpointStore or MemoryStore; default: a CheckpointStore at the config's
            checkpoint directory.
        executor: an executor from ``amlgraph.runner._chunks`` (default: from the config).
        log: where the run log goes (default: stdout, silent when ``quiet``).
        lazy_graph: assemble ``result.graph`` only when it is first used, from the checkpoint
            directory as it is then (the CLI's run, which needs only the checkpoints); by default
            it is assembled before the run releases the directory.
        **overrides: fields of PipelineConfig that replace those of ``config``.

    Returns:
        A PipelineResult; ``result.graph`` is the TransactionGraph.

    Raises:
        InputError: bad input files. CheckpointError: an unusable resume point or store.
        LockedError: another run holds the checkpoint directory.
    """
    if isinstance(config, PipelineConfig):
        cfg = config.replace(**overrides) if overrides else config
    else:
        cfg = PipelineConfig(**{**(config or {}), **overrides})
    cfg, input_urls = local_inputs(cfg)
    if store is None:
        from amlgraph.store import open_store

        store = open_store(cfg.resolved_checkpoint_dir, verify=cfg.verify)
    log = log or RunLog(quiet=cfg.quiet)
    start = time.perf_counter()
    with store.lock(wait=cfg.wait):
        log.header("amlgraph preprocessing pipeline")
        root = getattr(store, "root", None)
        log.line(f"Checkpoint directory: {root if root is not None else '(in memory)'}")
        log.line(f"Available checkpoints: {[n for n in store.names() if not is_chunk_name(n)]}")
        run = Run(cfg, store, log, executor=executor)
        run.input_urls = input_urls
        try:
            result = run.execute()
            if not lazy_graph:
                result.graph  # noqa: B018 - assembled while the directory is this run's
        finally:
            if executor is None:
                run.close()
    log.line()
    log.ok(f"Pipeline finished in {time.perf_counter() - start:.2f} seconds: "
           f"{result.num_nodes:,} nodes, {result.num_edges:,} edges")
    return result


#: The files of a data set, as ``find_inputs`` looks for them (ingest/_reader.py).
_INPUT_NAMES = r"^.+?_(Trans(_[^./]+)?\.csv|accounts\.csv|Patterns\.txt)(\.gz|\.zst)?$"


def local_inputs(cfg: PipelineConfig) -> tuple[PipelineConfig, dict[str, str]]:
    """``cfg`` with inputs given as URLs replaced by this machine's copies of them
    (``store.local_copy``: fetched once per version), and the URL of each copy: chunk tasks get
    the URL, so that a worker with its own disk reads the input, not the client's copy. A URL data
    path without a checkpoint directory keeps its checkpoints beside the data, as a local one does."""
    from amlgraph.store import is_url, local_copy

    changes: dict[str, Any] = {}
    urls: dict[str, str] = {}
    if is_url(cfg.data_path):
        url = cfg.data_path
        try:
            changes["data_path"] = local_copy(url, _INPUT_NAMES)
        except FileNotFoundError as exc:
            raise InputError("no such file or folder", path=url, hint="check the URL") from exc
        except OSError as exc:
            raise InputError(f"cannot read it ({exc.strerror or exc})", path=url,
                             hint="check the URL and the credentials in the environment") from exc
        folder = url.rstrip("/") if changes["data_path"].is_dir() else url.rsplit("/", 1)[0]
        local = changes["data_path"] if changes["data_path"].is_dir() else changes["data_path"].parent
        urls = {str(f): f"{folder}/{f.name}" for f in local.iterdir() if not f.name.startswith(".")}
        if cfg.checkpoint_dir is None:
            from amlgraph.ingest import find_inputs

            name = find_inputs(changes["data_path"]).name
            changes["checkpoint_dir"] = f"{folder}/checkpoints_{name}_{cfg.sample_size or 'all'}"
    if cfg.rates_file is not None and is_url(cfg.rates_file):
        name = re.escape(cfg.rates_file.rsplit("/", 1)[-1])
        changes["rates_file"] = local_copy(cfg.rates_file, f"^{name}$")
    return (cfg.replace(**changes) if changes else cfg), urls

