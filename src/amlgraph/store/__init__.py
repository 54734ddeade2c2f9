"""The checkpoint store: one contract (``BaseStore``), a file store, an object store and an in-memory store.

Public surface: :func:`open_store` (a plain path gives a :class:`CheckpointStore`, an fsspec URL
such as ``s3://bucket/ck`` an :class:`ObjectStore`), :class:`MemoryStore`, :class:`Checkpoint`
(what ``load`` returns), :class:`Problem` (what ``verify`` reports), and the key builders the
runner uses (:func:`make_key`, :func:`file_fingerprint`, :func:`code_version`).
Everything else is private to the package. See docs/CHECKPOINTS.md for the format.
"""
from __future__ import annotations

import os
from typing import Any

from amlgraph.store._base import STARTED, ArrayParts, Checkpoint, Problem
from amlgraph.store._checkpoints import CheckpointStore
from amlgraph.store._checkpoints import is_store as _is_local_store
from amlgraph.store._fs import is_url, location_text
from amlgraph.store._keys import (
           HashCache,
           code_version,
           explain_mismatch,
           file_fingerprint,
           make_key,
)
from amlgraph.store._memory import MemoryStore
from amlgraph.store._remote import local_copy, upload_folder

__all__ = ["STARTED", "ArrayParts", "Checkpoint", "CheckpointStore", "HashCache", "MemoryStore", "ObjectStore",
           "Problem", "code_version", "explain_mismatch", "file_fingerprint", "is_store", "is_url", "local_copy",
           "location_text", "make_key", "open_store", "upload_folder"]


def open_store(location: str | os.PathLike, *, create: bool = True, verify: str = "quick") -> Any:
    """The checkpoint store at ``location``: an fsspec URL (``s3://``, ``gs://``, ``abfs://``,
    ``file://``) opens an :class:`ObjectStore`, a plain path the local :class:`CheckpointStore`.

    Raises:
        CheckpointError: see the two stores.
    """
    if is_url(location):
        from amlgraph.store._object import ObjectStore

        return ObjectStore(location, create=create, verify=verify)
    return CheckpointStore(location, create=create, verify=verify)


def is_store(location: str | os.PathLike) -> bool:
    """Whether ``location`` (a path or URL) holds a checkpoint store (its format marker)."""
    if is_url(location):
        from amlgraph.errors import CheckpointError
        from amlgraph.store._object import ObjectStore

        try:
            ObjectStore(location, create=False)
        except CheckpointError:
            return False
        return True
    return _is_local_store(location)


def __getattr__(name: str) -> Any:
    if name == "ObjectStore":  # fsspec is imported only when an object store is used
        from amlgraph.store._object import ObjectStore

        return ObjectStore
    raise AttributeError(name)
