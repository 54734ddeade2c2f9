"""Real processes: SIGKILL during a save, concurrent writers, locks held by other processes."""
from __future__ import annotations

import random
import signal
import time

import numpy as np
import pytest

from amlgraph.errors import LockedError
from amlgraph.store import CheckpointStore
from store_helpers import HOLD_LOCK, LOCKED_WRITER, SAVE_LOOP, gen_dirs, spawn, tmp_files

pytestmark = pytest.mark.slow


def _assert_whole(cp) -> int:
    """The checkpoint is one complete version: every part carries the same version number."""
    v = cp.value("version")
    assert cp.manifest["key"] == f"k{v}"
    x = cp.array("x")
    assert x.shape == (6_500_000,) and bool((x == float(v)).all())
    assert cp.table("t")["v"].to_list() == [v] * 1000
    return v


def test_sigkill_during_overwrite_leaves_old_or_new_never_half(tmp_path):
    root = tmp_path / "ckpt"
    store = CheckpointStore(root)
    store.save("node_features", step="node_features", key="k0",
               tables={"t": __import__("polars").DataFrame({"v": np.zeros(1000, dtype=np.int64)})},
               arrays={"x": np.zeros(6_500_000)}, values={"version": 0})
    rng = random.Random(1234)
    seen, mid_save = [], 0
    for _ in range(10):
        child = spawn(SAVE_LOOP, root)
        assert child.stdout.readline().strip() == "ready"
        time.sleep(rng.uniform(0.0, 1.0))
        child.send_signal(signal.SIGKILL)
        child.wait()
        mid_save += len(gen_dirs(root, "node_features")) > 1 or bool(tmp_files(root))
        cp = CheckpointStore(root, verify="full").load("node_features")
        assert cp is not None, "no complete checkpoint after SIGKILL"
        seen.append(_assert_whole(cp))
        assert len(gen_dirs(root, "node_features")) == 1  # reopening removed the dead writer's orphans
        assert tmp_files(root) == []
    assert CheckpointStore(root).verify() == []
    assert max(seen) > 0  # some kills landed after a completed overwrite
    assert mid_save > 0  # and some in the middle of one


def test_concurrent_writers_under_the_lock_leave_one_complete_checkpoint(tmp_path):
    root = tmp_path / "ckpt"
    CheckpointStore(root)
    writers = [spawn(LOCKED_WRITER, root, w, 3) for w in (1, 2)]
    for w in writers:
        _, err = w.communicate(timeout=120)
        assert w.returncode == 0, err
    store = CheckpointStore(root, verify="full")
    cp = store.load("edge_features")
    w, i = cp.value("writer"), cp.value("i")
    assert cp.manifest["key"] == f"w{w}-{i}"
    assert bool((cp.array("x") == float(w * 100 + i)).all())
    assert store.verify() == [] and len(gen_dirs(root, "edge_features")) == 1


def test_lock_held_by_another_process_names_its_pid(tmp_path):
    store = CheckpointStore(tmp_path / "ckpt")
    child = spawn(HOLD_LOCK, store.root, 60)
    try:
        assert child.stdout.readline().strip() == "locked"
        with pytest.raises(LockedError, match=rf"locked by pid {child.pid} on host .* since .*--wait"):
            with store.lock():
                pass
        with pytest.raises(LockedError):
            with store.lock(wait=True, timeout=0.3):
                pass
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    with store.lock():  # the kernel released the killed holder's lock
        pass


def test_wait_takes_the_lock_when_the_holder_finishes(tmp_path):
    store = CheckpointStore(tmp_path / "ckpt")
    child = spawn(HOLD_LOCK, store.root, 0.5)
    assert child.stdout.readline().strip() == "locked"
    with store.lock(wait=True, timeout=30):
        assert child.poll() is not None or child.wait(5) == 0
    child.wait()
