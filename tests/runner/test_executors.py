"""Chunk plans and executors: resume after SIGKILL, process pool, Dask LocalCluster, worker loss."""
from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from amlgraph.runner._chunks import ChunkTask, Executor, default_chunk_rows, default_chunk_size, plan_ranges
from amlgraph.errors import ConfigError, StepError
from amlgraph.runner import run_preprocessing
from amlgraph.store import CheckpointStore, MemoryStore

from pipeline_helpers import amlgraph_cmd, graph_digest


def test_plan_ranges_cover_everything_once():
    assert plan_ranges(10, 3) == [(0, 3), (3, 6), (6, 9), (9, 10)]
    assert plan_ranges(10, 10) == [(0, 10)]
    assert plan_ranges(10, 52) == [(0, 10)]
    assert plan_ranges(0, 5) == [(0, 0)]
    with pytest.raises(ConfigError):
        plan_ranges(10, 0)


def test_default_sizes_are_bounded():
    assert 50_000 <= default_chunk_rows() <= 4_000_000
    dense, sparse = default_chunk_size(2_000_000, 180_000_000), default_chunk_size(2_000_000, 60_000_000)
    assert 1_000 <= dense < sparse <= 1_000_000
    # the rows a chunk touches stay the same whatever the density (until the bounds bite)
    assert abs(dense * 180 - sparse * 60) / (sparse * 60) < 0.01


def test_executor_skips_valid_chunks_and_computes_the_rest():
    store = MemoryStore()
    tasks = [ChunkTask(f"weights_chunk_{i}", f"k{i}", "tests_tasks:echo", {"value": i}, chunk=i)
             for i in range(5)]
    store.save("weights_chunk_1", step="weights", key="k1", chunk=1, values={"value": 1})
    store.save("weights_chunk_3", step="weights", key="stale", chunk=3, values={"value": -1})
    assert Executor(store).run("t", tasks) == 4
    assert Executor(store).run("t", tasks) == 0
    assert store.load("weights_chunk_3").value("value") == 3
    assert Executor(store).run("t", tasks, force=True) == 5


def test_threaded_executor_computes_every_chunk_and_reports_the_first_failure_in_order():
    store = MemoryStore()
    tasks = [ChunkTask(f"weights_chunk_{i}", f"k{i}", "tests_tasks:echo", {"value": i}, chunk=i)
             for i in range(9)]
    assert Executor(store, threads=3).run("t", tasks) == 9
    assert [store.load(t.name).value("value") for t in tasks] == list(range(9))
    # chunks 2 and 6 fail: the error names chunk 2, as a serial run's would
    failing = [ChunkTask(f"weights_chunk_{i}", f"f{i}", "tests_tasks:fail_if", {"value": i, "bad": [2, 6]},
                         chunk=i) for i in range(9)]
    with pytest.raises(StepError, match=r"planted failure in chunk 2") as err:
        Executor(store, threads=3).run("t", failing)
    assert err.value.chunk == 2
    assert store.load("weights_chunk_0", key="f0") is not None


def test_thread_count_does_not_change_results(tiny_data):
    one = run_preprocessing(data_path=tiny_data, store=MemoryStore(), quiet=True, chunk_size=60,
                            chunk_rows=700, threads=1)
    three = run_preprocessing(data_path=tiny_data, store=MemoryStore(), quiet=True, chunk_size=60,
                              chunk_rows=700, threads=3)
    assert graph_digest(one.graph) == graph_digest(three.graph)


def test_node_features_partitioned_on_disk_equals_direct_scans_and_frees_the_partitions(tiny_data, tmp_path,
                                                                                        monkeypatch):
    import amlgraph.steps.node_features as steps

    ckpt = tmp_path / "ckpt"
    monkeypatch.setattr(steps, "PARTITION_MIN_CHUNKS", 10**9)  # direct filtered scans
    direct = run_preprocessing(data_path=tiny_data, checkpoint_dir=ckpt, quiet=True, chunk_size=40,
                               chunk_rows=1_500)
    assert "node_features (partition)" not in direct.chunks_computed
    monkeypatch.setattr(steps, "PARTITION_MIN_CHUNKS", 2)
    filed = run_preprocessing(data_path=tiny_data, checkpoint_dir=ckpt, quiet=True, chunk_size=40,
                              chunk_rows=1_500, resume_from="data_loaded")
    n_data = len(list(ckpt.glob("data_loaded_chunk_*")))
    assert filed.chunks_computed["node_features (partition)"] == n_data > 1
    assert filed.chunks_computed["node_features"] == -(-filed.graph.num_nodes // 40)
    assert graph_digest(filed.graph) == graph_digest(direct.graph)
    assert not list(ckpt.glob("node_features_part_chunk_*"))  # deleted once the chunks are saved


def test_concurrent_chunks_share_the_memory_budget():
    one, two = default_chunk_size(2_000_000, 180_000_000), default_chunk_size(2_000_000, 180_000_000, 2)
    assert abs(one / 2 - two) <= 1


@pytest.mark.parametrize("accounts, rows, concurrency", [
    (518_581, 5_078_345, 2), (518_581, 5_078_345, 3), (2_130_000, 179_700_000, 2),
    (2_130_000, 179_700_000, 3), (2_090_000, 31_900_000, 4), (5_000, 10_000, 2)])
def test_node_chunks_come_in_whole_rounds_of_the_threads(accounts, rows, concurrency):
    size = default_chunk_size(accounts, rows, concurrency)
    chunks = len(plan_ranges(accounts, size))
    assert chunks == 1 or chunks % concurrency == 0
    # rounding adds chunks, never makes one larger than the budget's
    if chunks > 1:
        assert size <= default_chunk_size(accounts, rows * concurrency, 1) + 1


def _valid_chunks(ckpt: Path, prefix: str) -> int:
    return sum(1 for n in CheckpointStore(ckpt, create=False).names() if n.startswith(prefix))


def test_sigkill_in_node_features_then_rerun_computes_only_missing_chunks(tiny_data, tmp_path):
    ckpt = tmp_path / "ckpt"
    args = ["run", str(tiny_data), "--checkpoint-dir", str(ckpt), "--chunk-size", "25", "--quiet"]
    proc = subprocess.Popen(amlgraph_cmd(*args), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        done = len(list(ckpt.glob("node_features_chunk_*/manifest.json")))
        if done >= 5:
            break
        time.sleep(0.005)
    assert proc.poll() is None, "the run ended before it could be killed: " + proc.stderr.read().decode()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = _valid_chunks(ckpt, "node_features_chunk_")
    result = run_preprocessing(data_path=tiny_data, checkpoint_dir=ckpt, quiet=True, chunk_size=25)
    total = -(-result.graph.num_nodes // 25)
    assert 0 < done < total
    assert result.chunks_computed["node_features"] == total - done
    assert "data_loaded" not in result.computed  # finished before the kill, reused
    clean = run_preprocessing(data_path=tiny_data, store=MemoryStore(), quiet=True, chunk_size=25)
    assert graph_digest(result.graph) == graph_digest(clean.graph)


def test_process_pool_equals_in_process(tiny_data, tmp_path):
    one = run_preprocessing(data_path=tiny_data, checkpoint_dir=tmp_path / "a", quiet=True,
                            chunk_size=900, chunk_rows=3_000)
    two = run_preprocessing(data_path=tiny_data, checkpoint_dir=tmp_path / "b", quiet=True,
                            chunk_size=900, chunk_rows=3_000, workers=2, backend="processes")
    assert graph_digest(two.graph) == graph_digest(one.graph)


def test_dask_local_cluster_equals_in_process(tiny_data, tmp_path, cluster):
    local = run_preprocessing(data_path=tiny_data, store=MemoryStore(), quiet=True, chunk_size=500,
                              chunk_rows=2_000)
    dask = run_preprocessing(data_path=tiny_data, checkpoint_dir=tmp_path / "d", quiet=True,
                             chunk_size=500, chunk_rows=2_000, backend="dask",
                             scheduler=cluster.scheduler_address)
    assert graph_digest(dask.graph) == graph_digest(local.graph)
    assert dask.chunks_computed["node_features"] > 1


def test_dask_worker_killed_mid_task_is_retried(tiny_data, tmp_path, cluster):
    from distributed import Client

    import threading

    ckpt = tmp_path / "k"
    killed = []

    def killer():
        with Client(cluster.scheduler_address, timeout="10s") as client:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                if len(list(ckpt.glob("node_features_chunk_*/manifest.json"))) >= 3:
                    pids = client.run(os.getpid)
                    pid = sorted(pids.values())[0]
                    os.kill(pid, signal.SIGKILL)
                    killed.append(pid)
                    return
                time.sleep(0.005)

    t = threading.Thread(target=killer)
    t.start()
    result = run_preprocessing(data_path=tiny_data, checkpoint_dir=ckpt, quiet=True, chunk_size=20,
                               chunk_rows=2_000, backend="dask", scheduler=cluster.scheduler_address)
    t.join()
    assert killed, "no worker was killed: the step finished too fast to test"
    clean = run_preprocessing(data_path=tiny_data, store=MemoryStore(), quiet=True, chunk_size=20,
                              chunk_rows=2_000)
    assert graph_digest(result.graph) == graph_digest(clean.graph)


@pytest.mark.parametrize("backend", ["processes", "dask"])
def test_pattern_features_through_every_executor(micro_data, tmp_path, backend, request):
    """The optional step's chunks run in worker processes and on Dask like every chunked step,
    with the same graph as in this process."""
    patterns = {"enabled": True, "window": 3_600, "scatter_gather_window": 1_800,
                "temporal_cycle_window": 3_600, "simple_cycle_window": 1_800, "max_cycle_length": 4}
    local = run_preprocessing(data_path=micro_data, checkpoint_dir=tmp_path / "a", quiet=True, chunk_size=250,
                              chunk_rows=150, sample_size=600, patterns=patterns)
    options = ({"workers": 2, "backend": "processes"} if backend == "processes" else
               {"backend": "dask", "scheduler": request.getfixturevalue("cluster").scheduler_address})
    other = run_preprocessing(data_path=micro_data, checkpoint_dir=tmp_path / "b", quiet=True, chunk_size=250,
                              chunk_rows=150, sample_size=600, patterns=patterns, **options)
    assert other.chunks_computed["pattern_features"] == 4
    assert any(n.startswith("pattern_") for n in other.graph.edge_feature_names)
    assert graph_digest(other.graph) == graph_digest(local.graph)
