"""What `amlgraph report` (and `amlgraph run ... --report`, `amlgraph demo`) do about the report."""
from __future__ import annotations

import argparse
from argparse import Namespace
from pathlib import Path

from amlgraph.cli._text import add_command, location

#: Where `run --report` and `demo` write the report when no path is given: beside the
#: checkpoint directory (never inside it: the store owns its directory).
DEFAULT_NAME = "report.html"


def default_report_path(checkpoint_dir: str | Path) -> Path:
    """``report.html`` in the directory that holds the checkpoint directory (in the working
    directory for a store URL)."""
    from amlgraph.store import is_url

    if is_url(checkpoint_dir):
        return Path(DEFAULT_NAME).absolute()
    return Path(checkpoint_dir).absolute().parent / DEFAULT_NAME


def write_report(checkpoint_dir: str | Path, out: str | Path | None = None, *, quiet: bool = False,
                 sample: int = 200_000) -> Path:
    """Build the report of a finished run; print where it went unless ``quiet``."""
    from amlgraph.report import build_report, files_dir_of

    path = build_report(checkpoint_dir, out or default_report_path(checkpoint_dir), sample=sample)
    if not quiet:
        print(f"Report: {path} (figures also in {files_dir_of(path)})", flush=True)
    return path


def add(sub: argparse._SubParsersAction) -> None:
    p = add_command(
        sub, "report", "write an HTML report of a finished run, from its checkpoints alone",
        details="Data set, split over time, class balance and weights, timings, degrees, every\n"
                "feature by class, checkpoint sizes; figures embedded and also saved beside it.",
        examples=("amlgraph report ckpt/ --out report.html", "amlgraph run data/ --report"))
    p.add_argument("checkpoint_dir", type=location, help="a finished run's checkpoint directory")
    p.add_argument("--out", type=Path, default=Path("report.html"),
                   help="the HTML file (default: report.html); figures go to <stem>_files/ beside it")
    p.add_argument("--sample", type=int, default=200_000,
                   help="rows per class in each feature histogram (a deterministic sample)")
    p.set_defaults(func=report_command)
    run = sub.choices.get("run")  # the report also comes at the end of a run: `run ... --report`
    if run is not None:
        run.add_argument("--report", nargs="?", const=True, default=None, type=Path, metavar="HTML",
                         help="write the run's report when it finishes "
                              "(default: report.html beside the checkpoint directory)")


def report_command(args: Namespace) -> int:
    """`amlgraph report CHECKPOINT_DIR [--out report.html] [--sample N]`."""
    write_report(args.checkpoint_dir, args.out, sample=args.sample)
    return 0
