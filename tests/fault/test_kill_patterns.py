"""SIGKILL `amlgraph run --patterns` inside the pattern_features step: the resumed run keeps the
chunks finished before the kill and ends with the graph of an uninterrupted run, bit for bit."""
from __future__ import annotations

import re

import pytest

from harness import clean_run, final_digest, leftovers, on_line, on_save, run_until_done, verify_store

pytestmark = pytest.mark.slow

#: 10 row chunks on the tiny preset (RUN_OPTIONS: --chunk-rows 1000).
PATTERNS = ("--patterns",)


@pytest.fixture(scope="module")
def reference(tiny_data, tmp_path_factory):
    ckpt = tmp_path_factory.mktemp("patterns_reference") / "ckpt"
    run, offsets = clean_run(tiny_data, ckpt, extra=PATTERNS)
    assert "pattern_features" in offsets
    return final_digest(ckpt), offsets


def _reused(stdout: str) -> int:
    m = re.search(r"pattern_features: (\d+) chunks \((\d+) computed, (\d+) reused\)", stdout)
    assert m, stdout[-2000:]
    return int(m.group(3))


def test_kill_while_a_pattern_chunk_is_written(tiny_data, tmp_path, reference):
    digest, _ = reference
    ckpt = tmp_path / "ckpt"
    chain = run_until_done(tiny_data, ckpt, [on_save("pattern_features_chunk_6")], extra=PATTERNS)
    [kill] = chain.kills
    assert kill.step == "pattern_features"
    # chunks 0-5 were complete before the kill: the resumed run reuses them, and more when the
    # chunk tasks ran in parallel
    assert _reused(chain.attempts[-1].stdout) >= 6
    assert final_digest(ckpt) == digest
    assert verify_store(ckpt) == [] and leftovers(ckpt) == []


def test_kill_inside_the_step_and_while_its_checkpoint_commits(tiny_data, tmp_path, reference):
    digest, offsets = reference
    ckpt = tmp_path / "ckpt"
    inside = 0.5 * max(0.0, offsets["normalized"] - offsets["pattern_features"])
    chain = run_until_done(tiny_data, ckpt, [on_line(r"^STEP 4/8: ", inside), on_save("pattern_features")],
                           extra=PATTERNS)
    assert len(chain.kills) == 2
    assert final_digest(ckpt) == digest
    assert verify_store(ckpt) == [] and leftovers(ckpt) == []
