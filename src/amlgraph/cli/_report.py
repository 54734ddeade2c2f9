"""What `amlgraph report` (and `amlgraph run ... --report`, `amlgraph demo`) do about the report."""
from __future__ import annotations

from argparse import Namespace
from pathlib import Path

#: Where `run --report` and `demo` write the report when no path is given: beside the
#: checkpoint directory (never inside it: the store owns its directory).
DEFAULT_NAME = "report.html"


def default_report_path(checkpoint_dir: str | Path) -> Path:
    """``report.html`` in the directory that holds the checkpoint directory."""
    return Path(checkpoint_dir).absolute().parent / DEFAULT_NAME


def write_report(checkpoint_dir: str | Path, out: str | Path | None = None, *, quiet: bool = False,
                 sample: int = 200_000) -> Path:
    """Build the report of a finished run; print where it went unless ``quiet``."""
    from amlgraph.report import build_report, files_dir_of

    path = build_report(checkpoint_dir, out or default_report_path(checkpoint_dir), sample=sample)
    if not quiet:
        print(f"Report: {path} (figures also in {files_dir_of(path)})", flush=True)
    return path


def report_command(args: Namespace) -> int:
    """`amlgraph report CHECKPOINT_DIR [--out report.html] [--sample N]`."""
    write_report(args.checkpoint_dir, args.out, sample=args.sample)
    return 0
