"""Helpers of the report tests: a finished run of a generated data set."""
from __future__ import annotations

from pathlib import Path


def finished_run(root: Path, *, patterns: bool = True, patterns_step: dict | None = None,
                 **options) -> tuple[Path, Path]:
    """Generate the tiny preset (seed 7) under ``root/data`` and run the pipeline into ``root/ckpt``.

    Args:
        patterns: keep the generated Patterns file (False: the run gets none).
        patterns_step: the ``[patterns]`` table of the optional pattern_features step (None: off).
        **options: further PipelineConfig fields.
    """
    from amlgraph import run_preprocessing
    from amlgraph.synth import generate

    data, ckpt = root / "data", root / "ckpt"
    generate("tiny", data, seed=7)
    if not patterns:
        for p in data.glob("*_Patterns.txt"):
            p.unlink()
    if patterns_step is not None:
        options["patterns"] = patterns_step
    run_preprocessing({"data_path": str(data), "checkpoint_dir": str(ckpt), "quiet": True, **options})
    return data, ckpt
