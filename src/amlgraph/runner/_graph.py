"""Loading the graph of a finished run from its checkpoint directory.

A graph checkpoint is whole (every array in it: a compacted directory, a graph saved with
``to_payload``) or linked (the pipeline's: the large arrays are read from the checkpoints it
names, by key; ``steps.graph_created``). :func:`graph_of` reads both.
"""
from __future__ import annotations

from pathlib import Path

from amlgraph.errors import CheckpointError
from amlgraph.graph import GRAPH_STEP, TransactionGraph
from amlgraph.schema import ALL_STEPS
from amlgraph.store import is_url, open_store


def load_graph(checkpoint_dir: str | Path) -> TransactionGraph:
    """Load the graph of a finished run.

    Args:
        checkpoint_dir: the run's checkpoint directory.

    Returns:
        The ``TransactionGraph`` saved by the ``graph_created`` step, arrays memory-mapped.

    Raises:
        CheckpointError: when the directory or its ``graph_created`` checkpoint is absent; the
            message names the checkpoints that exist.
    """
    path = checkpoint_dir if is_url(checkpoint_dir) else Path(checkpoint_dir)
    if isinstance(path, Path) and not path.is_dir():
        raise CheckpointError(f"{path}: no such checkpoint directory; run `amlgraph run DATA "
                              f"--checkpoint-dir {path}` first")
    store = open_store(path, create=False)
    ckpt = store.load(GRAPH_STEP)
    if ckpt is None:
        names = store.names()
        present = [n for n in names if n in ALL_STEPS] or names
        raise CheckpointError(
            f"{path}: no valid {GRAPH_STEP!r} checkpoint (found: {', '.join(present) or 'none'}); "
            f"finish the run with `amlgraph run DATA --checkpoint-dir {path}` first")
    return graph_of(store, ckpt, where=str(path))


def graph_of(store, ckpt, *, where: str | None = None) -> TransactionGraph:
    """The graph of the checkpoint ``ckpt`` of ``store``, whole or linked.

    Raises:
        CheckpointError: a checkpoint a linked graph is read from is missing, damaged or stale;
            the message names it and says to rerun the run.
    """
    if "links" not in ckpt.values:
        return TransactionGraph.from_checkpoint(ckpt)
    from amlgraph.runner._context import StoreInputs
    from amlgraph.steps.graph_created import linked_arrays

    where = where or str(getattr(store, "root", "(in memory)"))
    for part in ckpt.value("parts"):
        ok, reason = store.check(part["name"], part["key"])
        if not ok:
            raise CheckpointError(
                f"{where}: the graph is read from checkpoint {part['name']!r}, which is not usable ({reason}); "
                f"rerun `amlgraph run DATA --checkpoint-dir {where}` to recompute it")
    nodes, arrays = linked_arrays(StoreInputs(store), ckpt.value("links"))
    for a in arrays.values():
        a.flags.writeable = False  # as a whole checkpoint's: the graph is read, never written
    return TransactionGraph.from_checkpoint(ckpt, nodes=nodes, arrays=arrays)
