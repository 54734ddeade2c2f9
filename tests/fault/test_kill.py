"""SIGKILL `amlgraph run` anywhere: every step, mid-chunk, mid-save, random moments.

Each chain resumes the killed run until it completes; its final graph must equal the
uninterrupted run's, bit for bit, and after every kill the store must hold only complete
checkpoints.
"""
from __future__ import annotations

import random

import pytest

from harness import after, final_digest, leftovers, on_line, on_save, run_until_done, verify_store

pytestmark = pytest.mark.slow

#: Steps that took less than this in the reference run are killed at their save, not at a moment.
SHORT_STEP_S = 0.3
STEPS = ("data_loaded", "node_features", "edge_features", "normalized", "imbalanced", "weights",
         "graph_created")

# Saves in the order a run makes them: chunk, helper and step checkpoints of every step.
SAVES = ("data_loaded_read_chunk_4", "data_loaded_read_0", "data_loaded_index", "data_loaded_chunk_6",
         "data_loaded", "node_features_chunk_3", "node_features", "edge_features_chunk_5", "edge_features",
         "normalized", "imbalanced", "weights", "graph_created")


def _finish(chain, reference, ckpt) -> None:
    assert final_digest(ckpt) == reference.digest
    assert verify_store(ckpt) == []
    assert leftovers(ckpt) == []


def test_kill_inside_every_step(reference, tmp_path):
    """One kill per step, at a seeded random moment inside it (the step's measured duration)."""
    rng = random.Random(20240601)
    off = reference.offsets
    ends = list(STEPS[1:]) + ["end"]
    # A step shorter than the time to notice its banner and send the signal (weights; the graph,
    # which links to its chunks instead of writing copies) is killed while it saves instead.
    triggers = [on_line(rf"^STEP {i}/7: ", rng.uniform(0.0, 0.8) * (off[end] - off[step]))
                if off[end] - off[step] >= SHORT_STEP_S else on_save(step)
                for i, (step, end) in enumerate(zip(STEPS, ends), 1)]
    ckpt = tmp_path / "ckpt"
    chain = run_until_done(reference.data, ckpt, triggers)
    _finish(chain, reference, ckpt)
    killed_in = [a.step for a in chain.kills]
    assert len(chain.kills) == 7, [str(a.trigger) for a in chain.attempts]
    # the long steps are hit where the trigger aimed; the others take a fraction of a second
    # each on this tiny set, so on a busy machine a kill aimed at one may land in the next
    for step in ("data_loaded", "node_features"):
        assert step in killed_in, killed_in
    assert len(set(killed_in)) >= 4, killed_in


def test_kill_in_the_middle_of_checkpoint_writes(reference, tmp_path):
    """Kill while each kind of checkpoint is half written: data files there, manifest not yet."""
    ckpt = tmp_path / "ckpt"
    chain = run_until_done(reference.data, ckpt, [on_save(n) for n in SAVES])
    _finish(chain, reference, ckpt)
    assert len(chain.kills) == len(SAVES)
    confirmed = [a.trigger.name for a in chain.kills if a.mid_save]
    # each confirmed kill left the half-written generation behind, and the reopen removed it
    assert all(a.leftovers for a in chain.kills if a.mid_save)
    assert len(confirmed) >= len(SAVES) * 2 // 3, confirmed
    assert {"graph_created", "data_loaded", "node_features"} & set(confirmed)


@pytest.mark.parametrize("seed", [1, 2])
def test_kill_at_random_moments(reference, tmp_path, seed):
    """Three kills at times drawn uniformly over most of the uninterrupted run's duration, then
    the run completes. (With the two chains above: at least 25 kills per suite run.)"""
    rng = random.Random(seed)
    ckpt = tmp_path / "ckpt"
    # A resumed attempt has less left to do than the first: its kill comes proportionally sooner,
    # so that it still lands before the run completes.
    triggers = [after(rng.uniform(0.3, 0.6 * reference.duration) / (k + 1)) for k in range(3)]
    chain = run_until_done(reference.data, ckpt, triggers)
    _finish(chain, reference, ckpt)
    assert len(chain.kills) >= 2, [(str(a.trigger), a.elapsed) for a in chain.attempts]
