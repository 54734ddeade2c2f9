"""A trivial chunk task for executor tests (importable by worker processes)."""
from __future__ import annotations


def echo(store, name, key, *, value, chunk=None):
    store.save(name, step="weights", key=key, chunk=value, values={"value": value})
    return {"value": value}


def fail_if(store, name, key, *, value, bad, chunk=None):
    """Save like :func:`echo` unless ``value`` is in ``bad``; then raise an OSError naming it."""
    if value in bad:
        raise OSError(f"planted failure in chunk {value}")
    return echo(store, name, key, value=value, chunk=chunk)
