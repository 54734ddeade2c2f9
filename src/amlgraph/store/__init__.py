"""The checkpoint store: one contract (``BaseStore``), a file store and an in-memory store.

Public surface: :class:`CheckpointStore` (a directory of checkpoints), :class:`MemoryStore`,
:class:`Checkpoint` (what ``load`` returns), :class:`Problem` (what ``verify`` reports), and the
key builders the runner uses (:func:`make_key`, :func:`file_fingerprint`, :func:`code_version`).
Everything else is private to the package. See docs/CHECKPOINTS.md for the on-disk format.
"""
from amlgraph.store._base import STARTED, ArrayParts, Checkpoint, Problem
from amlgraph.store._checkpoints import CheckpointStore, is_store
from amlgraph.store._keys import (
           HashCache,
           code_version,
           explain_mismatch,
           file_fingerprint,
           make_key,
)
from amlgraph.store._memory import MemoryStore

__all__ = ["STARTED", "ArrayParts", "Checkpoint", "CheckpointStore", "HashCache", "MemoryStore", "Problem",
           "code_version", "explain_mismatch", "file_fingerprint", "is_store", "make_key"]
