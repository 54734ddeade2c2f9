"""Shared fixtures: generated IBM-format data sets (never downloaded) and finished runs."""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from pipeline_helpers import amlgraph_cmd  # noqa: F401  (re-exported for the tests)

# The S3 server and store URLs of the object-store tests (one server per session).
pytest_plugins = ["object_stores"]

# Keep the suite's processes polite on a shared 2-core machine.
os.environ.setdefault("POLARS_MAX_THREADS", "2")
REPO = Path(__file__).resolve().parents[1]


def _subnormals_survive() -> bool:
    return 2.2250738585072014e-308 / 2 != 0.0


@pytest.fixture(autouse=True)
def _no_flush_to_zero():
    """A library built with -ffast-math sets the flush-to-zero flag when imported, which silently
    changes all later arithmetic in the process; a test that lets one in fails here."""
    yield
    assert _subnormals_survive(), "a test imported a library that flushes subnormals to zero"


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """The tiny preset (~10K rows), generated once per test session."""
    from amlgraph.synth import generate

    out = tmp_path_factory.mktemp("tiny")
    generate("tiny", out, seed=7)
    return out


@pytest.fixture(scope="session")
def micro_data(tmp_path_factory) -> Path:
    """A few hundred rows: small enough for one-row chunks."""
    from amlgraph.synth import generate

    out = tmp_path_factory.mktemp("micro")
    generate("tiny", out, seed=11, rows=600)
    return out
