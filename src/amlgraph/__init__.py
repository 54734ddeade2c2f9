"""amlgraph: checkpointed, chunked, resumable preprocessing of AML transactions into graphs.

Heavy modules (polars, torch, dask) load on first use, so ``import amlgraph`` stays fast.
"""
from __future__ import annotations

import importlib
from typing import Any

from amlgraph.allocator import tune as _tune_allocator

_tune_allocator()  # before anything imports Polars (see amlgraph.allocator)

__version__ = "0.1.0"

# public name -> module that defines it
_EXPORTS = {
    "AmlGraphError": "errors", "InputError": "errors", "ConfigError": "errors",
    "CheckpointError": "errors", "LockedError": "errors", "StepError": "errors",
    "STEPS": "schema",
    "CheckpointStore": "store", "MemoryStore": "store",
    "create_checkpoint_dir": "compat", "save_checkpoint": "compat", "load_checkpoint": "compat",
    "list_available_checkpoints": "compat", "resume_from_checkpoint": "compat",
    "run_simple_preprocessing": "compat", "run_preprocessing": "runner",
    "PipelineConfig": "config",
    "TransactionGraph": "graph", "load_graph": "runner", "export_graph": "export",
    "generate": "synth",
    "AMLDataset": "pyg", "build_report": "report",
    "read_transactions": "ingest", "read_accounts": "ingest", "read_patterns": "ingest",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'amlgraph' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"amlgraph.{module}"), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return __all__
