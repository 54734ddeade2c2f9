"""Two `amlgraph run` on one checkpoint directory at once: one runs, the other is refused with
the holder's pid, or waits (--wait) and then finds everything done."""
from __future__ import annotations

import re
import subprocess

import pytest

from harness import env, final_digest, leftovers, run_command, verify_store

pytestmark = pytest.mark.slow


def _start(reference, ckpt, *extra):
    return subprocess.Popen(run_command(reference.data, ckpt, *extra), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=env())


def _wait_for_step(proc) -> None:
    for line in proc.stdout:
        if line.startswith("STEP 1/7"):
            return
    raise AssertionError("the first run ended before its first step")


def test_second_run_is_refused_with_the_holders_pid(reference, tmp_path):
    ckpt = tmp_path / "ckpt"
    first = _start(reference, ckpt)
    _wait_for_step(first)  # it holds the lock from before its first step to its end
    second = subprocess.run(run_command(reference.data, ckpt, "--quiet"), capture_output=True, text=True,
                            timeout=120, env=env())
    first.stdout.read()
    assert first.wait(300) == 0, first.stderr.read()
    first.stderr.close()
    assert second.returncode == 4, second.stderr  # LockedError.exit_code
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in second.stderr
    assert re.search(rf"is locked by pid {first.pid} on host \S+ since .*--wait", lines[0]), lines[0]
    assert final_digest(ckpt) == reference.digest
    assert verify_store(ckpt) == [] and leftovers(ckpt) == []


def test_second_run_with_wait_finds_everything_done(reference, tmp_path):
    ckpt = tmp_path / "ckpt"
    first = _start(reference, ckpt)
    _wait_for_step(first)
    second = _start(reference, ckpt, "--wait")
    first.stdout.read()
    assert first.wait(300) == 0, first.stderr.read()
    out, err = second.communicate(timeout=300)
    assert second.returncode == 0, err
    # the waiting run computed nothing: every step was valid when it got the lock
    assert not re.search(r"^Computing \w+:", out, re.M) and "Loading graph_created from checkpoint" in out
    first.stderr.close()
    assert final_digest(ckpt) == reference.digest
    assert verify_store(ckpt) == [] and leftovers(ckpt) == []
