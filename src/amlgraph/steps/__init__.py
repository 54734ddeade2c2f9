"""The steps: one module each, a plain function per piece of arithmetic and a declaration.

:func:`declarations` lists every step's :class:`Step` in run order; the runner learns the steps,
their inputs, parameters and code from it alone. Adding a step is a module here with its
``STEP`` and one line below. The seven of ``schema.STEPS`` always run; an optional step
(``pattern_features``) runs when the configuration asks for it.
"""
from __future__ import annotations

from collections.abc import Iterable

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

_MODULES = ("data_loaded", "node_features", "edge_features", "pattern_features", "normalized", "imbalanced",
            "weights", "graph_created")


def declarations(optional: Iterable[str] | None = None) -> dict[str, Step]:
    """The steps' declarations, in run order (imports the step modules).

    Args:
        optional: the optional steps to include (the run's ``PipelineConfig.optional_steps``);
            None: every step, optional ones included.
    """
    import importlib

    keep = None if optional is None else set(optional)
    out = {}
    for name in _MODULES:
        step = importlib.import_module(f"amlgraph.steps.{name}").STEP
        if step.optional and keep is not None and step.name not in keep:
            continue
        out[step.name] = step
    return out
