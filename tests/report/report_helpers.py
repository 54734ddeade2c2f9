"""Helpers of the report tests: a finished run of a generated data set."""
from __future__ import annotations

from pathlib import Path


def finished_run(root: Path, *, patterns: bool = True, **options) -> tuple[Path, Path]:
    """Generate the tiny preset (seed 7) under ``root/data`` and run the pipeline into ``root/ckpt``.

    Args:
        patterns: keep the generated Patterns file (False: the run gets none).
        **options: further PipelineConfig fields.
    """
    from amlgraph import run_preprocessing
    from amlgraph.synth import generate

    data, ckpt = root / "data", root / "ckpt"
    generate("tiny", data, seed=7)
    if not patterns:
        for p in data.glob("*_Patterns.txt"):
            p.unlink()
    run_preprocessing({"data_path": str(data), "checkpoint_dir": str(ckpt), "quiet": True, **options})
    return data, ckpt
