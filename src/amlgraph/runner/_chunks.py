"""Chunk plans and the executors that run chunk tasks: in-process, a process pool, or Dask.

A chunk task is a plain, importable function ``func(store, name, key, **kwargs) -> dict`` that
loads its inputs from the store, calls a step function and saves the result as the checkpoint
``name`` under ``key``. The executor skips every task whose checkpoint already validates, so a
rerun after a crash computes only the missing chunks, whatever the backend.
"""
from __future__ import annotations

import contextlib
import importlib
import math
import time
from collections.abc import Callable, Sequence
from concurrent.futures import BrokenExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from amlgraph.errors import AmlGraphError, ConfigError, StepError
from amlgraph.schema import parse_chunk_name

# Sizing: bytes of working memory one transaction row / one incidence (a row seen from one of
# its accounts) costs in the chunked steps.
_BYTES_PER_ROW = 500
_BYTES_PER_INCIDENCE = 400
MIN_CHUNK_ROWS, MAX_CHUNK_ROWS = 50_000, 4_000_000
MIN_CHUNK_ACCOUNTS, MAX_CHUNK_ACCOUNTS = 1_000, 1_000_000
#: Share of the machine's memory one chunk may use.
MEMORY_FRACTION = 0.15


def plan_ranges(n: int, size: int) -> list[tuple[int, int]]:
    """Split ``range(n)`` into consecutive half-open ranges of ``size`` items (the last shorter)."""
    if size < 1:
        raise ConfigError(f"chunk size must be >= 1 (got {size})")
    return [(start, min(start + size, n)) for start in range(0, n, size)] or [(0, 0)]


def _budget_bytes(fraction: float = MEMORY_FRACTION) -> int:
    """A share of the machine's total memory: stable from run to run (free memory is not), so
    that default chunk plans, which are part of the checkpoint keys, do not change on resume."""
    import psutil

    return int(psutil.virtual_memory().total * fraction)


def default_chunk_rows(concurrency: int = 1) -> int:
    """Rows per row chunk, from the memory budget shared by ``concurrency`` chunks, within bounds."""
    rows = _budget_bytes() // max(1, concurrency) // _BYTES_PER_ROW
    return int(min(MAX_CHUNK_ROWS, max(MIN_CHUNK_ROWS, rows)))


def default_threads() -> int:
    """Chunk tasks run at once in this process by default: one per core, at most 4.

    The chunk tasks mix Polars (multi-threaded) with NumPy passes that use one core each
    (bincount, sort, fancy indexing, all releasing the GIL), so two tasks in flight keep two
    cores busy where one task alone leaves one idle for most of its NumPy work.
    """
    import os

    return max(1, min(4, os.cpu_count() or 1))


def default_chunk_size(num_accounts: int, num_rows: int, concurrency: int = 1) -> int:
    """Accounts per node_features chunk such that the chunks in flight fit the memory budget.

    A chunk of ``a`` accounts touches about ``a * 2 * num_rows / num_accounts`` rows, so the
    denser the data (HI-Large has ~170 incidences per account, HI-Small ~20), the fewer accounts
    per chunk: peak memory follows the budget, not the input size. ``concurrency`` chunks run at
    once (threads or worker processes on this machine) and share the budget. When the accounts
    need several chunks, their number is rounded up to a multiple of ``concurrency`` so that the
    last round of chunks keeps every thread busy (3 chunks on 2 threads leave one idle for a
    third of the step; 4 smaller ones do not).
    """
    per_account = max(1.0, 2.0 * num_rows / max(1, num_accounts))
    concurrency = max(1, concurrency)
    accounts = int(_budget_bytes() / concurrency / (_BYTES_PER_INCIDENCE * per_account))
    accounts = int(min(MAX_CHUNK_ACCOUNTS, max(MIN_CHUNK_ACCOUNTS, accounts)))
    chunks = math.ceil(num_accounts / accounts) if num_accounts > 0 else 1
    if chunks > 1 and chunks % concurrency:
        chunks = math.ceil(chunks / concurrency) * concurrency
        accounts = max(MIN_CHUNK_ACCOUNTS, math.ceil(num_accounts / chunks))
    return accounts


@dataclass(frozen=True)
class ChunkTask:
    """One unit of recoverable, parallel work."""

    name: str                      # checkpoint name, e.g. node_features_chunk_3
    key: str                       # the key its checkpoint must carry to be reused
    func: str                      # "module:function", importable on every worker
    kwargs: dict[str, Any] = field(default_factory=dict)
    chunk: int | None = None


def resolve(func: str) -> Callable[..., dict]:
    module, _, name = func.partition(":")
    return getattr(importlib.import_module(module), name)


def run_task(store: Any, task: ChunkTask) -> dict:
    """Run one task against ``store`` (in this process)."""
    return resolve(task.func)(store, task.name, task.key, **task.kwargs)


def run_task_at(location: str, task: ChunkTask) -> dict:
    """Entry point on a worker process or Dask worker: open the store itself from its location
    (a path all workers share, or a URL such as ``s3://bucket/ck``) and run the task."""
    from amlgraph.store import open_store

    return run_task(open_store(location), task)


def store_location(store: Any) -> str:
    """Where workers open ``store``: its URL, or its absolute path."""
    from amlgraph.store import is_url

    root = store.root
    return root if is_url(root) else str(Path(root).resolve())


class Progress:
    """Chunks done / total with an ETA: a tqdm bar on a terminal, plain lines otherwise."""

    def __init__(self, label: str, total: int, *, quiet: bool, done: int = 0):
        import sys

        self.quiet, self.total, self.done, self.label = quiet, total, done, label
        self._bar = None
        self._start = time.monotonic()
        self._last_line = 0.0
        if not quiet and sys.stderr.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=total, initial=done, desc=label, unit="chunk", leave=False)

    def advance(self) -> None:
        self.done += 1
        if self._bar is not None:
            self._bar.update(1)
        elif not self.quiet:
            now = time.monotonic()
            if now - self._last_line >= 5 or self.done == self.total:
                self._last_line = now
                rate = (now - self._start) / max(1, self.done)
                eta = rate * (self.total - self.done)
                print(f"  {self.label}: {self.done}/{self.total} chunks, ETA {eta:.0f}s", flush=True)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


class Executor:
    """Runs the tasks whose checkpoints are missing or stale in this process; returns how many
    it computed. With ``threads`` > 1, that many tasks run at once (each saves its own
    checkpoint; the store's writes are atomic per checkpoint)."""

    def __init__(self, store: Any, *, quiet: bool = True, threads: int = 1):
        self.store, self.quiet, self.threads = store, quiet, max(1, threads)

    def pending(self, tasks: Sequence[ChunkTask]) -> list[ChunkTask]:
        return [t for t in tasks if not self.store.check(t.name, t.key)[0]]

    def run(self, label: str, tasks: Sequence[ChunkTask], *, force: bool = False) -> int:
        """Compute the tasks whose checkpoints do not validate (all of them when ``force``)."""
        todo = list(tasks) if force else self.pending(tasks)
        progress = Progress(label, len(tasks), quiet=self.quiet, done=len(tasks) - len(todo))
        try:
            self._run(todo, progress)
        finally:
            progress.close()
        return len(todo)

    def _run(self, todo: list[ChunkTask], progress: Progress) -> None:
        if self.threads == 1 or len(todo) < 2:
            for task in todo:
                _guard(task, lambda t=task: run_task(self.store, t))
                progress.advance()
            return
        from concurrent.futures import ThreadPoolExecutor

        # Results are taken in task order, so the first failing chunk is the one reported, as
        # in a serial run; on a failure the tasks not yet started are cancelled.
        with ThreadPoolExecutor(min(self.threads, len(todo)), thread_name_prefix="amlgraph-chunk") as pool:
            futures = [pool.submit(run_task, self.store, t) for t in todo]
            try:
                for task, fut in zip(todo, futures):
                    _guard(task, lambda f=fut: _result(f))
                    progress.advance()
            except BaseException:
                for fut in futures:
                    fut.cancel()
                raise

    def close(self) -> None:
        pass


class ProcessExecutor(Executor):
    """A process pool on this machine; each worker writes its checkpoints to the shared store.

    The workers end with the run, whatever ends it (docs/RELIABILITY.md, "Worker processes"):
    a normal end shuts the pool down; a failed chunk cancels the chunks not started and waits for
    those running (their checkpoints are kept); an interrupt (Ctrl-C, SIGTERM turned into an
    exception by the CLI) kills the workers at once, which is safe since a checkpoint is written
    atomically. When the parent dies without a word (SIGKILL, a crash), Linux kills each worker
    through its parent-death signal; elsewhere a watch thread in the worker notices the parent
    gone. Workers ignore SIGINT: a Ctrl-C reaches the whole process group, and the parent alone
    tears the pool down and prints one line.
    """

    def __init__(self, store: Any, workers: int, *, quiet: bool = True):
        super().__init__(store, quiet=quiet)
        if not hasattr(store, "root"):
            raise ConfigError("workers > 1 needs a checkpoint directory (not an in-memory store)")
        self.workers = workers
        self._pool = None
        self._pool_thread = None

    def _ensure_pool(self):
        import multiprocessing as mp
        import os
        import threading
        from concurrent.futures import ProcessPoolExecutor

        # Linux sends the parent-death signal when the *thread* that started a worker ends: the
        # workers are started (on demand, by submit) only from the thread that made the pool, and
        # a call from another thread gets a pool of its own.
        if self._pool is not None and self._pool_thread is not threading.current_thread():
            self.close()
        if self._pool is None:
            # spawn: forking a process that runs Polars' thread pool can deadlock.
            self._pool = ProcessPoolExecutor(self.workers, mp_context=mp.get_context("spawn"),
                                             initializer=worker_init, initargs=(os.getpid(),))
            self._pool_thread = threading.current_thread()
        return self._pool

    def _run(self, todo: list[ChunkTask], progress: Progress) -> None:
        import queue

        if not todo:
            return
        futures: dict = {}
        finished: queue.SimpleQueue = queue.SimpleQueue()
        try:
            pool = self._ensure_pool()
            # Workers start with Ctrl-C and SIGTERM held back (see _signals_deferred).
            with _signals_deferred():
                for t in todo:
                    fut = pool.submit(run_task_at, store_location(self.store), t)
                    futures[fut] = t
                    fut.add_done_callback(finished.put)
            for _ in range(len(futures)):
                fut = _next_finished(finished)
                _guard(futures[fut], fut.result)
                progress.advance()
        except BaseException as exc:
            for fut in futures:
                fut.cancel()
            self._stop(kill=not isinstance(exc, Exception))
            raise

    def _stop(self, *, kill: bool) -> None:
        """Shut the pool down without running the chunks not started; with ``kill``, end the
        running ones too (SIGKILL: an interrupted run must stop now, not after its chunks)."""
        pool, self._pool = self._pool, None
        if pool is None:
            return
        if kill:
            for proc in list((getattr(pool, "_processes", None) or {}).values()):
                with contextlib.suppress(OSError, ValueError):  # already gone, or closed
                    proc.kill()
        pool.shutdown(wait=True, cancel_futures=True)

    def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)


def worker_init(parent_pid: int) -> None:
    """Initializer of each pool worker: ignore SIGINT, and die when the parent dies.

    On Linux: ``prctl(PR_SET_PDEATHSIG, SIGKILL)``, then a check that the parent is still the
    one that started this worker (it may have died before the call, which would then never
    fire). Elsewhere, or when prctl is not available: a daemon thread that checks the parent's
    pid every second. A worker whose parent is gone exits at once; what it was writing is a
    half-written checkpoint, which the next open of the store removes.
    """
    import os
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if hasattr(signal, "pthread_sigmask"):
        signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    if not _parent_death_signal():
        _watch_parent(parent_pid)
    if os.getppid() != parent_pid:
        os._exit(1)


def _parent_death_signal() -> bool:
    """Ask Linux to SIGKILL this process when its parent dies; False where that is not possible."""
    import signal
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(1, int(signal.SIGKILL), 0, 0, 0) == 0  # 1: PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        return False


def _watch_parent(parent_pid: int, every_s: float = 1.0) -> None:
    """A daemon thread that ends this process once its parent is no longer ``parent_pid``
    (POSIX reparents an orphan; on Windows the parent pid never changes and this never fires)."""
    import os
    import threading

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(every_s)
        os._exit(1)

    threading.Thread(target=watch, name="amlgraph-parent-watch", daemon=True).start()


class _signals_deferred:
    """Hold back Ctrl-C and SIGTERM for the block; one that comes meanwhile acts when it ends.

    Two things, both needed while workers are started. SIGINT is blocked in this thread, and a
    worker inherits the mask, so that a Ctrl-C while the worker imports cannot print a traceback
    before worker_init has it ignored. And in the main thread the Python handlers of SIGINT and
    SIGTERM only record the signal: the mask alone is not enough, since the kernel hands the
    signal to another thread of the process (Polars' pool, the pool's manager) and Python then
    raises in the main thread all the same. Raised inside ``Process.start`` it would leave a worker
    started but not yet given its work and not known to the pool, which then prints an EOFError
    traceback instead of being killed with the others. (Both are no-ops where they do not exist.)
    """

    def __enter__(self):
        import signal
        import threading

        self._old_mask = None
        self._handlers: dict = {}
        self._pending: list = []
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, getattr(signal, "SIGTERM", None)):
                handler = signal.getsignal(sig) if sig is not None else None
                if callable(handler):
                    self._handlers[sig] = handler
                    signal.signal(sig, self._record)
        if hasattr(signal, "pthread_sigmask"):
            self._old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        return self

    def _record(self, signum, frame) -> None:
        self._pending.append((signum, frame))

    def __exit__(self, *exc):
        import signal

        if self._old_mask is not None:
            signal.pthread_sigmask(signal.SIG_SETMASK, self._old_mask)
        for sig, handler in self._handlers.items():
            signal.signal(sig, handler)
        for signum, frame in self._pending[:1]:  # the first signal decides; a handler may raise
            self._handlers[signum](signum, frame)
        return False


class DaskExecutor(Executor):
    """Chunk tasks on a dask.distributed cluster: each worker opens the store itself from its
    location, a checkpoint directory all workers share or an object-store URL (no shared disk).

    A worker lost mid-task is retried (``retries``); the task's checkpoint is written atomically,
    so a half-done attempt leaves nothing behind that could be mistaken for a result.
    """

    def __init__(self, store: Any, scheduler: Any, *, quiet: bool = True, retries: int = 3):
        super().__init__(store, quiet=quiet)
        if not hasattr(store, "root"):
            raise ConfigError("the dask backend needs a checkpoint directory all workers can reach, or a "
                              "bucket URL such as s3://bucket/ck (docs/DEPLOY.md)")
        try:
            from distributed import Client
        except ImportError as exc:
            raise ConfigError("the dask backend needs dask.distributed: pip install 'amlgraph[dask]'") from exc
        self._own_client = not hasattr(scheduler, "submit")
        try:
            self.client = Client(scheduler, timeout="10s") if self._own_client else scheduler
        except OSError as exc:
            raise ConfigError(f"cannot reach the dask scheduler {scheduler}: {exc}; "
                              "start it or check --scheduler") from exc
        self.retries = retries

    def _run(self, todo: list[ChunkTask], progress: Progress) -> None:
        from distributed import as_completed

        root = store_location(self.store)
        futures = {self.client.submit(run_task_at, root, t, key=f"amlgraph-{t.name}-{t.key[:16]}",
                                      retries=self.retries, pure=False): t for t in todo}
        try:
            for fut in as_completed(list(futures)):
                _guard(futures.pop(fut), fut.result)
                # Released as soon as its result is in: a finished task whose worker dies later
                # is then not run again behind the run's back (a rerun would replace its
                # checkpoint's files while a later step reads them).
                fut.release()
                progress.advance()
        except BaseException:
            # A failed or interrupted run leaves no task of its own queued on the cluster (which
            # may be gone: the first error is the one reported).
            with contextlib.suppress(Exception):
                self.client.cancel(list(futures))
            raise

    def close(self) -> None:
        if self._own_client:
            self.client.close()


#: Longest wait of the main thread on a chunk before it looks at signals again (s).
_POLL_S = 0.2


def _next_finished(finished: Any) -> Any:
    """The next future put on the queue ``finished``, waited for in slices: a signal for the main
    thread that the kernel delivered to another thread is raised between two slices instead of
    when the next chunk ends (minutes on a large input)."""
    import queue

    while True:
        try:
            return finished.get(timeout=_POLL_S)
        except queue.Empty:
            continue


def _result(fut: Any) -> Any:
    """``fut.result()``, waited for in slices: a signal for the main thread that the kernel
    delivered to another thread is raised between two slices instead of after the chunk."""
    from concurrent.futures import wait

    while not fut.done():
        wait([fut], timeout=_POLL_S)
    return fut.result()


def make_executor(store: Any, *, backend: str, workers: int, scheduler: Any, quiet: bool,
                  threads: int = 1) -> Executor:
    if backend == "dask" or scheduler is not None:
        return DaskExecutor(store, scheduler, quiet=quiet)
    if backend == "processes" or workers > 1:
        # "processes" without a worker count takes one worker per core (as threads do).
        return ProcessExecutor(store, workers if workers > 1 else default_threads(), quiet=quiet)
    return Executor(store, quiet=quiet, threads=threads)


def _guard(task: ChunkTask, call: Callable[[], Any]) -> Any:
    parsed = parse_chunk_name(task.name)
    step = parsed[0] if parsed else task.name
    try:
        return call()
    except AmlGraphError:
        raise
    except MemoryError as exc:
        raise StepError("out of memory; rerun with a smaller --chunk-size/--chunk-rows "
                        "(finished chunks are kept)", step=step, chunk=task.chunk) from exc
    except OSError as exc:
        raise StepError(f"{exc.strerror or exc} ({getattr(exc, 'filename', '') or 'no file'}); "
                        "finished chunks are kept", step=step, chunk=task.chunk) from exc
    except BrokenExecutor as exc:
        # A worker process died (a signal, the kernel's OOM killer). Every chunk not done fails
        # with this error, whichever worker ran it: no chunk is named.
        raise StepError("a worker process died abruptly (killed, or out of memory); rerun, with fewer "
                        "--workers or a smaller --chunk-size/--chunk-rows if memory is short (finished "
                        "chunks are kept)", step=step) from exc


def n_chunks(n: int, size: int) -> int:
    return max(1, math.ceil(n / size))
