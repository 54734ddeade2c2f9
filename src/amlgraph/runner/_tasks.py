"""The chunk task: load nothing itself, call a step's chunk function, save what it returns.

``phase_task`` has the shape every executor runs, ``task(store, name, key, **json_kwargs)``, so
that an in-process loop, a process pool and a Dask worker can all run it. The chunk function is
a plain function of a step module, ``func(inputs, **kwargs) -> Output``, given read-only inputs.
"""
from __future__ import annotations

import importlib
import time
from typing import Any

from amlgraph.errors import InputError
from amlgraph.runner._context import StoreInputs, save_output
from amlgraph.store import STARTED


def phase_task(store: Any, name: str, key: str, *, func: str, step: str, index: int,
               kwargs: dict) -> dict:
    """Compute chunk ``name`` with ``func`` (``"module:function"``) and save it under ``key``."""
    module, _, attr = func.partition(":")
    start = time.perf_counter()
    urls = {}
    for k, v in kwargs.items():
        local = _local_input(v)
        if local is not v:
            urls[local] = v
        kwargs[k] = local
    try:
        out = getattr(importlib.import_module(module), attr)(StoreInputs(store), **kwargs)
    except InputError as exc:
        # An error in this machine's copy of a URL input names the URL, as the client's would.
        if exc.path in urls:
            exc.args = (str(exc).replace(exc.path, urls[exc.path], 1),)
            exc.path = urls[exc.path]
        raise
    out.metadata[STARTED] = start
    save_output(store, name, step=step, key=key, out=out, chunk=index)
    return {k: v for k, v in out.metadata.items() if k != STARTED}


def _local_input(value: Any) -> Any:
    """An input file a task was given as a URL (``runner._run.local_inputs``: every other input
    of a task is a checkpoint name) becomes this machine's copy of it, fetched once per version:
    a worker with its own disk reads the object, never the client's copy."""
    from amlgraph.store import is_url, local_copy

    if isinstance(value, str) and is_url(value):
        return str(local_copy(value, r"^$"))
    return value  # the same object: not a URL
