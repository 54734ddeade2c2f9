"""Loading the graph of a finished run from its checkpoint directory."""
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
    return TransactionGraph.from_checkpoint(ckpt)
