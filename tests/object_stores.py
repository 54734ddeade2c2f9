"""Fixtures for object-store tests: a real S3-compatible server (moto's server mode) on loopback,
and one store URL per backend (``s3://`` on that server, ``file://`` on a temporary folder).

The server is a separate process started once per test session; every test gets its own bucket.
Clients find it the standard way, through ``AWS_ENDPOINT_URL`` and the ``AWS_*`` credential
variables (dummy ones: the server accepts any), which subprocesses and Dask workers inherit.
Tests of the s3 backend are skipped only when moto or s3fs is not installed.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

BACKENDS = ("s3", "file")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def s3_server():
    """The endpoint URL of a moto S3 server on 127.0.0.1, with the environment pointing at it."""
    pytest.importorskip("moto.server", reason="moto[server] is not installed")
    pytest.importorskip("s3fs", reason="s3fs is not installed")
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    endpoint = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("the moto server did not start")
            time.sleep(0.1)
    env = {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "us-east-1"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield endpoint
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        proc.terminate()
        proc.wait(timeout=30)


def new_bucket() -> str:
    import boto3

    name = f"amlgraph-{uuid.uuid4().hex[:12]}"
    boto3.client("s3").create_bucket(Bucket=name)
    return name


@pytest.fixture(params=BACKENDS)
def store_url(request, tmp_path, monkeypatch) -> str:
    """A fresh store URL on each backend; this machine's cache of store files under ``tmp_path``."""
    monkeypatch.setenv("AMLGRAPH_CACHE_DIR", str(tmp_path / "cache"))
    if request.param == "s3":
        request.getfixturevalue("s3_server")
        return f"s3://{new_bucket()}/ck"
    return f"file://{tmp_path / 'bucket'}/ck"


def objects(url: str) -> dict[str, dict]:
    """Every object under ``url`` by its path relative to it (a fresh listing)."""
    from amlgraph.store._fs import Bucket

    b = Bucket(url)
    return {p[len(b.root) + 1:]: info for p, info in b.find(b.root).items()}


def manifests(url: str, prefix: str) -> int:
    """How many checkpoints named ``prefix...`` have a manifest under ``url``."""
    return sum(1 for p in objects(url) if p.startswith(prefix) and p.endswith("/manifest.json"))


def cache_files(folder: Path) -> list[Path]:
    return [p for p in folder.glob("*") if p.is_file() and not p.name.startswith(".")] if folder.exists() else []
