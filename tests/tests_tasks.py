"""A trivial chunk task for executor tests (importable by worker processes)."""
from __future__ import annotations


def echo(store, name, key, *, value, chunk=None):
    store.save(name, step="weights", key=key, chunk=value, values={"value": value})
    return {"value": value}
