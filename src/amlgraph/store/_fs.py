"""Object storage behind one small interface: fsspec for the bytes, conditional writes for the lease.

A location is a plain path (the local file store, :class:`amlgraph.store.CheckpointStore`) or an
fsspec URL (``s3://``, ``gs://``, ``abfs://``, ``file://``; :class:`amlgraph.store.ObjectStore`).
:class:`Bucket` is what the object store needs of a URL: whole-object reads and writes, listing,
deletion, and the two conditional writes a lease needs (create-if-absent, replace-if-unchanged).

Conditional writes, by backend (the tag of :meth:`Bucket.read_tagged` is what the condition names):

- ``s3://`` (s3fs): ``PutObject`` with ``If-None-Match: *`` and ``If-Match: <ETag>``, which AWS S3
  (since 2024), MinIO and moto honour. A store that ignores the headers degrades to last writer
  wins (see docs/DEPLOY.md).
- ``gs://`` (gcsfs): a multipart upload with ``ifGenerationMatch=0`` (create only if absent) and
  ``ifGenerationMatch=<generation>`` (replace only that version); the tag is the object's
  generation. GCS and fake-gcs-server honour both (a refusal is HTTP 412).
- ``abfs://``, ``az://`` (adlfs): ``Put Blob`` with ``If-None-Match: *`` (``overwrite=False``) and
  ``If-Match: <ETag>`` (``match_condition=IfNotModified``); the tag is the blob's ETag. Azure
  Blob Storage and Azurite honour both.
- ``file://`` (fsspec's local file system): ``O_EXCL`` creation, and a compare-and-swap under an
  ``flock`` on a guard file beside the object; the tag is the content hash.
- others: an existence check then a write, and a read-compare-write: best effort, a race of two
  writers within one request's time is not excluded.

Credentials are never handled here: each backend finds them where its SDK looks (environment
variables such as ``AWS_ACCESS_KEY_ID``/``AWS_ENDPOINT_URL``, profiles, instance roles), and no URL,
option or error text with a secret is logged.
"""
from __future__ import annotations

import contextlib
import os
import re
from typing import Any, Iterator

_URL_RE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_url(location: Any) -> bool:
    """Whether ``location`` is an fsspec URL (``scheme://...``) rather than a plain path."""
    return isinstance(location, str) and bool(_URL_RE.match(location))


def location_text(location: Any) -> str:
    """``location`` as the user gave it: a URL unchanged, a path as a string (never ``s3:/x``)."""
    return location if is_url(location) else os.fspath(location)


class Bucket:
    """The objects under one URL prefix.

    Args:
        url: an fsspec URL, e.g. ``s3://bucket/checkpoints``.
    """

    def __init__(self, url: str):
        try:
            import fsspec
        except ImportError as exc:  # pragma: no cover - fsspec comes with dask and s3fs
            from amlgraph.errors import CheckpointError

            raise CheckpointError(f"{url} needs fsspec and its backend: pip install 'amlgraph[s3]' "
                                  "(or [gcs], [azure])") from exc
        self.url = url.rstrip("/")
        self.protocol = url.split("://", 1)[0].lower()
        try:
            # No listing cache: other processes write the store, and a cached listing makes a
            # backend answer "not found" for an object that exists (s3fs does, for cat_file).
            self.fs, self.root = fsspec.core.url_to_fs(self.url, use_listings_cache=False)
        except ImportError as exc:
            from amlgraph.errors import CheckpointError

            raise CheckpointError(f"{self.protocol}:// needs its fsspec backend ({exc}); install it, e.g. "
                                  "pip install 'amlgraph[s3]', 'amlgraph[gcs]' or 'amlgraph[azure]'") from exc
        self.root = self.root.rstrip("/")
        protocols = _protocols(self.fs)
        self.local = "file" in protocols
        self.s3 = "s3" in protocols
        self.gcs = "gs" in protocols or "gcs" in protocols
        self.azure = "abfs" in protocols or "az" in protocols

    def path(self, *parts: str) -> str:
        return "/".join([self.root, *parts])

    def display(self, *parts: str) -> str:
        return "/".join([self.url, *parts])

    # --- plain objects --------------------------------------------------------------------------
    def cat(self, path: str) -> bytes:
        """The bytes of an object. Raises FileNotFoundError when it does not exist."""
        if self.s3:
            # One GET: s3fs otherwise asks the size first (a HEAD, and a LIST when it is absent)
            # to decide whether to fetch ranges in parallel, which pays only for large objects.
            return self.fs.cat_file(path, max_concurrency=1)
        return self.fs.cat_file(path)

    def pipe(self, path: str, data: bytes) -> None:
        """Write an object in one request (an atomic replace on every object store)."""
        if self.local:
            self._local_replace(path, data)
        else:
            self.fs.pipe_file(path, data)

    def open_write(self, path: str) -> Any:
        """A binary file that becomes the object ``path`` when closed (multipart on S3)."""
        if self.local:
            self.fs.makedirs(self.fs._parent(path), exist_ok=True)
        return self.fs.open(path, "wb")

    def open_read(self, path: str) -> Any:
        return self.fs.open(path, "rb")

    def ls(self, path: str) -> list[dict]:
        """The entries right under ``path`` (fresh, never a cached listing); [] when none."""
        try:
            return self.fs.ls(path, detail=True, refresh=True)
        except FileNotFoundError:
            return []

    def find(self, path: str) -> dict[str, dict]:
        """Every object under ``path``, by path: one paginated listing on an object store."""
        with contextlib.suppress(AttributeError):
            self.fs.invalidate_cache(path)
        try:
            return self.fs.find(path, detail=True)
        except FileNotFoundError:
            return {}

    def rm(self, path: str, *, recursive: bool = False) -> None:
        try:
            self.fs.rm(path, recursive=recursive)
        except FileNotFoundError:
            pass

    def invalidate(self, path: str | None = None) -> None:
        with contextlib.suppress(AttributeError):
            self.fs.invalidate_cache(path)

    # --- conditional writes (the lease) --------------------------------------------------------
    def read_tagged(self, path: str) -> tuple[bytes, str] | None:
        """The object's bytes and a tag that changes with every write; None when absent.

        The tag is read before the bytes, so the bytes are never older than the tag: a replace
        conditioned on this tag fails if anything was written in between.
        """
        try:
            if self.local:
                with self._guard(path):
                    data = self.fs.cat_file(path)
                return data, _content_tag(data)
            self.invalidate(path)
            tag = self._tag(self.fs.info(path))
            data = self.fs.cat_file(path)
        except FileNotFoundError:
            return None
        return data, tag or _content_tag(data)

    def _tag(self, info: dict) -> str:
        """What a conditional write names: the generation on GCS, the ETag elsewhere."""
        if self.gcs:
            return str(info.get("generation") or "")
        return str(info.get("ETag") or info.get("etag") or "")

    def create(self, path: str, data: bytes) -> bool:
        """Write ``path`` only if it does not exist; True when this call created it."""
        if self.local:
            self.fs.makedirs(self.fs._parent(path), exist_ok=True)
            with self._guard(path):
                if os.path.lexists(path):
                    return False
                self._local_replace(path, data)
                return True
        if self.s3:
            return self._s3_put(path, data, IfNoneMatch="*")
        if self.gcs:
            return self._gcs_put(path, data, "0")
        if self.azure:
            return self._azure_put(path, data, None)
        if self.fs.exists(path):
            return False
        self.fs.pipe_file(path, data)
        return True

    def replace_if(self, path: str, data: bytes, tag: str) -> bool:
        """Replace ``path`` only if it still carries ``tag``; True when replaced."""
        if self.local:
            with self._guard(path):
                try:
                    current = self.fs.cat_file(path)
                except FileNotFoundError:
                    return False
                if _content_tag(current) != tag:
                    return False
                self._local_replace(path, data)
                return True
        if self.s3:
            return self._s3_put(path, data, IfMatch=tag)
        if self.gcs:
            return self._gcs_put(path, data, tag) if tag.isdigit() and tag != "0" else False
        if self.azure:
            return self._azure_put(path, data, tag)
        now = self.read_tagged(path)
        if now is None or now[1] != tag:
            return False
        self.fs.pipe_file(path, data)
        return True

    def _s3_put(self, path: str, data: bytes, **condition: str) -> bool:
        bucket, key, _ = self.fs.split_path(path)
        try:
            self.fs.call_s3("put_object", Bucket=bucket, Key=key, Body=data, **condition)
        except FileNotFoundError:
            return False  # If-Match on an object that is gone (404 NoSuchKey)
        except Exception as exc:  # s3fs translates errors into several OSError types
            if _precondition_failed(exc):
                return False
            raise
        finally:
            self.invalidate(path)
        return True

    def _gcs_put(self, path: str, data: bytes, generation: str) -> bool:
        """One multipart upload conditioned on ``ifGenerationMatch`` (0: only if absent).

        gcsfs sends the condition itself only for creation (``mode="create"``), so the request is
        gcsfs's own simple upload with the condition added; a refusal (412) comes back from gcsfs
        as FileExistsError.
        """
        import json
        from urllib.parse import quote

        bucket, key, _ = self.fs.split_path(path)
        head = (f"--==0==\nContent-Type: application/json; charset=UTF-8\n\n{json.dumps({'name': key})}\n"
                "--==0==\nContent-Type: application/octet-stream\n\n").encode()
        try:
            self.fs.call("POST", f"{self.fs._location}/upload/storage/v1/b/{quote(bucket)}/o",
                         uploadType="multipart", ifGenerationMatch=generation, json_out=True,
                         headers={"Content-Type": 'multipart/related; boundary="==0=="'},
                         data=head + data + b"\n--==0==--")
        except (FileExistsError, FileNotFoundError):
            return False
        finally:
            self.invalidate(path)
        return True

    def _azure_put(self, path: str, data: bytes, etag: str | None) -> bool:
        """One Put Blob: only if absent (``etag`` None) or only if it still has ``etag``."""
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceModifiedError, ResourceNotFoundError

        condition: dict[str, Any] = ({"mode": "create"} if etag is None else
                                     {"etag": etag, "match_condition": MatchConditions.IfNotModified})
        try:
            self.fs.pipe_file(path, data, **condition)
        except (FileExistsError, ResourceModifiedError, ResourceNotFoundError):
            return False
        finally:
            self.invalidate(path)
        return True

    @contextlib.contextmanager
    def _guard(self, path: str) -> Iterator[None]:
        import fcntl

        fd = os.open(path + ".guard", os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    @staticmethod
    def _local_replace(path: str, data: bytes) -> None:
        from pathlib import Path

        from amlgraph._atomic import atomic_file

        Path(path).parent.mkdir(parents=True, exist_ok=True)
        with atomic_file(Path(path)) as f:
            f.write(data)


def _protocols(fs: Any) -> tuple[str, ...]:
    proto = fs.protocol
    return tuple(proto) if isinstance(proto, (tuple, list)) else (proto,)


def _content_tag(data: bytes) -> str:
    import xxhash

    return xxhash.xxh3_128_hexdigest(data)


def _precondition_failed(exc: BaseException) -> bool:
    """Whether an S3 error is a failed condition (412 PreconditionFailed, 409 a concurrent
    conditional write), looking through s3fs' translation of botocore errors."""
    seen: BaseException | None = exc
    while seen is not None:
        response = getattr(seen, "response", None)
        if isinstance(response, dict):
            err = response.get("Error", {})
            status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
            if err.get("Code") in ("PreconditionFailed", "ConditionalRequestConflict") or status in (409, 412):
                return True
        if "PreconditionFailed" in str(seen) or "412" in str(seen):
            return True
        seen = seen.__cause__ or seen.__context__
    return False
