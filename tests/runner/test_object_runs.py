"""Whole runs with the checkpoints on an object store (a moto S3 server on loopback, and file://):
the graph of a local run, resume after SIGKILL, and Dask workers that share no disk."""
from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

from amlgraph.runner import load_graph, run_preprocessing
from amlgraph.store import MemoryStore
from object_stores import cache_files, every_backend, manifests, objects
from pipeline_helpers import amlgraph_cmd, graph_digest


@every_backend
def test_a_run_on_an_object_store_gives_the_local_graph_and_reruns_from_it(tiny_data, store_url, tmp_path,
                                                                           monkeypatch):
    monkeypatch.chdir(tmp_path)
    local = run_preprocessing(data_path=tiny_data, store=MemoryStore(), quiet=True, chunk_rows=3_000)
    remote = run_preprocessing(data_path=tiny_data, checkpoint_dir=store_url, quiet=True, chunk_rows=3_000)
    assert graph_digest(remote.graph) == graph_digest(local.graph)
    assert remote.checkpoint_dir == store_url
    assert not any(p.name.endswith(":") for p in tmp_path.iterdir())  # no local "s3:" directory
    assert manifests(store_url, "data_loaded_chunk_") > 1
    # Another machine (an empty cache) loads the finished graph from the store alone.
    monkeypatch.setenv("AMLGRAPH_CACHE_DIR", str(tmp_path / "elsewhere"))
    assert graph_digest(load_graph(store_url)) == graph_digest(local.graph)
    again = run_preprocessing(data_path=tiny_data, checkpoint_dir=store_url, quiet=True, chunk_rows=3_000)
    assert again.computed == [] and graph_digest(again.graph) == graph_digest(local.graph)


@every_backend
@pytest.mark.slow
def test_sigkill_mid_run_then_the_rerun_resumes_from_the_store(tiny_data, store_url, tmp_path, monkeypatch):
    monkeypatch.setenv("AMLGRAPH_LEASE_SECONDS", "2")  # the killed run's lease expires quickly
    # 11 chunks of node_features: enough to kill the run between two of them, few enough that
    # each backend's run stays short (every chunk is a save and several reads on the server).
    args = ["run", str(tiny_data), "--checkpoint-dir", store_url, "--chunk-size", "100", "--threads", "1",
            "--quiet"]
    proc = subprocess.Popen(amlgraph_cmd(*args), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline and proc.poll() is None:
        if manifests(store_url, "node_features_chunk_") >= 3:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be killed: " + proc.stderr.read().decode()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = manifests(store_url, "node_features_chunk_")
    result = run_preprocessing(data_path=tiny_data, checkpoint_dir=store_url, quiet=True, chunk_size=100,
                               threads=1, wait=True)
    total = -(-result.graph.num_nodes // 100)
    assert 0 < done < total
    assert result.chunks_computed["node_features"] <= total - done + 1  # at most one was mid-upload
    assert "data_loaded" not in result.computed
    clean = run_preprocessing(data_path=tiny_data, store=MemoryStore(), quiet=True, chunk_size=100)
    assert graph_digest(result.graph) == graph_digest(clean.graph)
    # The generations the killed run left unfinished were removed when the rerun took the lease.
    live = {p.rsplit("/", 1)[0] for p in objects(store_url) if p.endswith("/manifest.json")}
    gens = {p.rsplit("/", 1)[0].rsplit("/", 1)[0] for p in objects(store_url) if "/gen-" in p}
    assert gens <= live


@pytest.fixture
def private_cluster(tmp_path):
    """A local Dask cluster of two worker processes, each with its own temporary directory and
    its own cache of store files (``TMPDIR``, ``AMLGRAPH_CACHE_DIR``): nothing shared but the store."""
    distributed = pytest.importorskip("distributed")
    from distributed import Nanny, Scheduler, SpecCluster

    dirs = [tmp_path / f"worker{i}" for i in range(2)]
    for d in dirs:
        d.mkdir()
    env = {k: os.environ[k] for k in os.environ if k.startswith("AWS_")}
    workers = {f"w{i}": {"cls": Nanny, "options": {
        "nthreads": 1, "local_directory": str(d), "host": "127.0.0.1",
        "env": {**env, "TMPDIR": str(d), "AMLGRAPH_CACHE_DIR": str(d / "cache")}}} for i, d in enumerate(dirs)}
    scheduler = {"cls": Scheduler, "options": {"dashboard_address": None, "host": "127.0.0.1"}}
    with SpecCluster(workers=workers, scheduler=scheduler, asynchronous=False) as cluster:
        with distributed.Client(cluster) as client:
            client.wait_for_workers(2, timeout=60)
        yield cluster, dirs
    assert distributed


@pytest.mark.slow
def test_dask_workers_without_a_shared_disk_give_the_local_graph(tiny_data, store_url, tmp_path,
                                                                   private_cluster):
    from amlgraph.store._fs import Bucket

    cluster, dirs = private_cluster
    data = Bucket(store_url.rsplit("/", 1)[0] + "/data")
    for f in sorted(tiny_data.iterdir()):
        if f.is_file():
            data.pipe(data.path(f.name), f.read_bytes())
    local = run_preprocessing(data_path=tiny_data, store=MemoryStore(), quiet=True, chunk_size=300,
                              chunk_rows=2_000)
    dask = run_preprocessing(data_path=data.url, checkpoint_dir=store_url, quiet=True, chunk_size=300,
                             chunk_rows=2_000, backend="dask", scheduler=cluster.scheduler_address)
    assert graph_digest(dask.graph) == graph_digest(local.graph)
    assert dask.chunks_computed["node_features"] > 1
    # Each worker read the checkpoints it needed from the store into its own folder, and the
    # parse's byte ranges from its own copy of the input, fetched by URL.
    assert all(cache_files(d / "cache") for d in dirs)
    assert any((d / "cache" / "inputs").is_dir() for d in dirs)


@pytest.mark.slow
def test_inputs_and_exports_given_as_urls(tiny_data, store_url, tmp_path):
    """The data set read from a bucket (the checkpoints beside it by default) and the export
    written to one give what local paths give."""
    from amlgraph.store._fs import Bucket

    base = store_url.rsplit("/", 1)[0]
    data = Bucket(f"{base}/data")
    for f in sorted(tiny_data.iterdir()):
        if f.is_file():
            data.pipe(data.path(f.name), f.read_bytes())
    run = subprocess.run(amlgraph_cmd("run", f"{base}/data/", "--chunk-rows", "3000", "--quiet"),
                         capture_output=True, text=True, cwd=tmp_path)
    assert run.returncode == 0, run.stderr
    ckpt = f"{base}/data/checkpoints_Tiny_all"
    local = run_preprocessing(data_path=tiny_data, store=MemoryStore(), quiet=True, chunk_rows=3_000)
    assert graph_digest(load_graph(ckpt)) == graph_digest(local.graph)
    assert not any(p.name.endswith(":") for p in tmp_path.iterdir())
    out = subprocess.run(amlgraph_cmd("export", ckpt, "--format", "parquet", "--out", f"{base}/exports"),
                         capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    mine = subprocess.run(amlgraph_cmd("export", ckpt, "--format", "parquet", "--out", str(tmp_path / "x")),
                          capture_output=True, text=True, cwd=tmp_path)
    assert mine.returncode == 0, mine.stderr
    exported = Bucket(f"{base}/exports")
    names = sorted(p.name for p in (tmp_path / "x").iterdir() if p.is_file())
    assert names and all(exported.cat(exported.path(n)) == (tmp_path / "x" / n).read_bytes() for n in names)
    assert out.stdout.split() and all(line.startswith(f"{base}/exports/") for line in out.stdout.split())
