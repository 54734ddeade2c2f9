"""Fixtures of the fault suite: one uninterrupted reference run of the tiny preset per session."""
from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from harness import clean_run, final_digest


@dataclass(frozen=True)
class Reference:
    data: Path
    ckpt: Path              # the finished run's checkpoint directory: copy it, never modify it
    digest: dict
    duration: float         # wall time of the uninterrupted run (s)
    offsets: dict           # step -> seconds after start at which its banner appeared; "end"

    def copy_to(self, target: Path) -> Path:
        shutil.copytree(self.ckpt, target, symlinks=True)
        return target


@pytest.fixture(scope="session")
def reference(tiny_data, tmp_path_factory) -> Reference:
    # The first run of a session pays for cold caches; kill moments are drawn over the duration
    # of a warm run (the second), so that they land before the run ends.
    base = tmp_path_factory.mktemp("reference")
    clean_run(tiny_data, base / "cold")
    ckpt = base / "ckpt"
    run, offsets = clean_run(tiny_data, ckpt)
    shutil.rmtree(base / "cold")
    return Reference(tiny_data, ckpt, final_digest(ckpt), run.elapsed, offsets)
