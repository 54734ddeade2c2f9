"""The seven steps: one module each, a plain function per piece of arithmetic and a declaration.

``DECLARATIONS`` lists every step's :class:`Step` in run order; the runner learns the steps,
their inputs, parameters and code from it alone. Adding a step is a module here with its
``STEP`` and one line below.
"""
from __future__ import annotations

from amlgraph.steps._contract import (
    Chunk,
    Inputs,
    Output,
    Part,
    Pieces,
    Step,
    StepContext,
    chunk_name,
    is_chunk_name,
    parts_value,
)

__all__ = ["Chunk", "Inputs", "Output", "Part", "Pieces", "Step", "StepContext", "chunk_name",
           "declarations", "is_chunk_name", "parts_value"]

_MODULES = ("data_loaded", "node_features", "edge_features", "normalized", "imbalanced", "weights",
            "graph_created")


def declarations() -> dict[str, Step]:
    """Every step's declaration, in run order (imports the step modules)."""
    import importlib

    out = {}
    for name in _MODULES:
        step = importlib.import_module(f"amlgraph.steps.{name}").STEP
        out[step.name] = step
    return out
