"""A finished run of the tiny preset and its report, built once per session."""
from __future__ import annotations

from pathlib import Path

import pytest

from report_helpers import finished_run


@pytest.fixture(scope="session")
def tiny_run(tmp_path_factory) -> tuple[Path, Path]:
    """(data directory, checkpoint directory) of a finished tiny run."""
    return finished_run(tmp_path_factory.mktemp("report_run"))


@pytest.fixture(scope="session")
def tiny_report(tiny_run, tmp_path_factory) -> Path:
    """The report of ``tiny_run``, written to a directory of its own."""
    from amlgraph.report import build_report

    out = tmp_path_factory.mktemp("report_out") / "report.html"
    assert build_report(tiny_run[1], out) == out
    return out
