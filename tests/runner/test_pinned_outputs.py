"""The graph of two generated inputs is pinned by digest: a refactoring must not move a bit.

The digests in ``tests/data/pinned_digests.json`` were computed by this test's code on the
release before the change it guards. A change that is *meant* to alter outputs (a new feature
definition) regenerates them with ``AMLGRAPH_UPDATE_PINS=1 pytest tests/test_pinned_outputs.py``
and says so in its commit.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from pipeline_helpers import graph_digest

PINS = Path(__file__).parents[1] / "data" / "pinned_digests.json"
CASES = {"tiny-7": ("tiny", 7, None), "small-3": ("small", 3, None)}


@pytest.mark.slow
@pytest.mark.parametrize("case", sorted(CASES))
def test_graph_digests_are_pinned(case, tmp_path):
    from amlgraph import run_preprocessing
    from amlgraph.synth import generate

    preset, seed, rows = CASES[case]
    generate(preset, tmp_path / "data", seed=seed, rows=rows)
    result = run_preprocessing({"data_path": str(tmp_path / "data"),
                                "checkpoint_dir": str(tmp_path / "ckpt"), "quiet": True})
    got = graph_digest(result.graph)
    pins = json.loads(PINS.read_text()) if PINS.exists() else {}
    if os.environ.get("AMLGRAPH_UPDATE_PINS") == "1":
        pins[case] = got
        PINS.write_text(json.dumps(pins, indent=1, sort_keys=True) + "\n")
        pytest.skip("pins updated")
    assert case in pins, f"no pinned digests for {case}; run with AMLGRAPH_UPDATE_PINS=1"
    diff = {k: (pins[case].get(k), v) for k, v in got.items() if pins[case].get(k) != v}
    missing = sorted(set(pins[case]) - set(got))
    assert not diff and not missing, f"outputs moved: {sorted(diff)} changed, {missing} missing"
