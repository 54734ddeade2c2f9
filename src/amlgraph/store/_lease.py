"""The run lock of an object store: a lease object with an owner and an expiry.

An object store has no advisory locks and no process that could notice a dead holder, so the
lock is an object, ``<store>/.lease.json``: ``{"owner", "pid", "host", "since", "expires"}``.

- **Taking it**: create the object only if it is absent (a conditional write: ``If-None-Match: *``
  on S3 and Azure Blob, ``ifGenerationMatch=0`` on GCS). When it exists and its ``expires`` has
  passed (its holder died or lost the network), replace it only if it is still the object just
  read (``If-Match: <its ETag>``, ``ifGenerationMatch=<its generation>``): of two runs that find
  the same expired lease, one wins.
- **Holding it**: a thread renews it every third of its lifetime (``AMLGRAPH_LEASE_SECONDS``,
  default 60), again conditioned on the last version written, so a lease taken over by another
  run is noticed (:attr:`Lease.lost`) and this run's next save fails instead of racing it.
- **Releasing it**: deleted when the holder leaves; a killed holder's lease expires.

The expiry is compared with the local clock: machines sharing a store need clocks within a small
fraction of the lifetime of each other (NTP gives milliseconds). See :mod:`amlgraph.store._fs`
for what each backend does for the conditional writes.
"""
from __future__ import annotations

import contextlib
import datetime as _dt
import json
import os
import secrets
import socket
import threading
import time
from typing import Any, Callable, Iterator

from amlgraph.errors import LockedError
from amlgraph.store._lock import _holder_text, _Reentrant

LEASE_ENV = "AMLGRAPH_LEASE_SECONDS"
_DEFAULT_S = 60.0
_POLL_S = 0.25


def lease_seconds() -> float:
    try:
        return max(1.0, float(os.environ.get(LEASE_ENV, _DEFAULT_S)))
    except ValueError:
        return _DEFAULT_S


def _iso(t: float) -> str:
    return _dt.datetime.fromtimestamp(t, _dt.timezone.utc).isoformat(timespec="seconds").replace("+00:00", "Z")


class Lease(_Reentrant):
    """A lease on ``bucket``'s object ``path``, re-entrant for the thread that holds it.

    Args:
        bucket: the store's :class:`amlgraph.store._fs.Bucket`.
        path: the lease object's path in it.
        label: the store's URL, for messages.
        on_acquire: called (holding the lease) each time it is first taken, e.g. to clean orphans.
    """

    def __init__(self, bucket: Any, path: str, label: str, on_acquire: Callable[[], None] | None = None):
        super().__init__()
        self.bucket, self.path, self.label = bucket, path, label
        self._on_acquire = on_acquire
        self._tag: str | None = None
        self._body: dict | None = None
        self._stop = threading.Event()
        self._renewer: threading.Thread | None = None
        self.lost = False

    # --- one attempt --------------------------------------------------------------------------
    def _new_body(self) -> dict:
        ttl, now = lease_seconds(), time.time()
        return {"owner": self._body["owner"] if self._body else secrets.token_hex(16), "pid": os.getpid(),
                "host": socket.gethostname(), "since": self._body["since"] if self._body else _iso(now),
                "expires": now + ttl, "seconds": ttl}

    def try_acquire(self) -> bool:
        """One attempt to take the lease; True on success."""
        self._body = None
        body = self._new_body()
        data = json.dumps(body).encode()
        if self.bucket.create(self.path, data):
            return self._took(body)
        current = self.bucket.read_tagged(self.path)
        if current is None:
            return False  # released meanwhile: the next attempt creates it
        held = _parse(current[0])
        if held is not None and held.get("expires", 0) > time.time():
            return False
        if self.bucket.replace_if(self.path, data, current[1]):
            return self._took(body)
        return False

    def _took(self, body: dict) -> bool:
        now = self.bucket.read_tagged(self.path)
        if now is None or _parse(now[0]) != body:
            return False  # a store without conditional writes: another writer came in between
        self._body, self._tag = body, now[1]
        return True

    def renew(self) -> bool:
        """Push the expiry on; False (and :attr:`lost`) when another run has taken the lease."""
        if self._body is None or self._tag is None:
            return False
        body = self._new_body()
        try:
            ok = self.bucket.replace_if(self.path, json.dumps(body).encode(), self._tag)
        except OSError:
            return True  # a network hiccup: the next renewal tries again before the expiry
        if ok:
            now = self.bucket.read_tagged(self.path)
            if now is not None and _parse(now[0]) == body:
                self._body, self._tag = body, now[1]
                return True
        self.lost = True
        return False

    def release_os(self) -> None:
        self._stop.set()
        if self._renewer is not None:
            self._renewer.join()
            self._renewer = None
        if self._body is not None and not self.lost:
            with contextlib.suppress(OSError):
                current = self.bucket.read_tagged(self.path)
                if current is not None and (_parse(current[0]) or {}).get("owner") == self._body["owner"]:
                    self.bucket.rm(self.path)
        self._body, self._tag = None, None

    def _renew_loop(self) -> None:
        while not self._stop.wait(lease_seconds() / 3):
            if not self.renew():
                return

    # --- the lock interface ---------------------------------------------------------------------
    @contextlib.contextmanager
    def hold(self, *, wait: bool = False, timeout: float | None = None) -> Iterator[None]:
        """Hold the lease for the ``with`` block (see :class:`amlgraph.store._lock.FileLock`).

        Raises:
            LockedError: held by a live run and ``wait`` is False, or ``timeout`` expired.
        """
        if self._mine():
            with self._nested():
                yield
            return
        self._acquire(wait=wait, timeout=timeout, poll_s=_POLL_S)
        self.lost = False
        self._stop.clear()
        self._renewer = threading.Thread(target=self._renew_loop, name="amlgraph-lease", daemon=True)
        self._renewer.start()
        try:
            if self._on_acquire is not None:
                self._on_acquire()
            yield
        finally:
            self._release()

    def check(self) -> None:
        """Raise LockedError when this process held the lease and another run has taken it."""
        if self.lost:
            raise LockedError(f"the lease on {self.label} was taken over by another run (this run could not "
                              "renew it in time); rerun when that run is done")

    def message(self, *, waited: bool = False) -> str:
        current = self.bucket.read_tagged(self.path)
        info = _parse(current[0]) if current else None
        tail = "timed out waiting; try again later" if waited else "wait for it or rerun with --wait"
        expiry = ""
        if info and isinstance(info.get("expires"), (int, float)):
            expiry = f" (lease expires {_iso(info['expires'])} unless renewed)"
        return f"checkpoint store {self.label} is {_holder_text(info)}{expiry}; {tail}"


def _parse(data: bytes) -> dict | None:
    try:
        body = json.loads(data)
    except (ValueError, UnicodeDecodeError):
        return None
    return body if isinstance(body, dict) else None
