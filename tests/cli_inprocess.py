"""The `amlgraph` command run in this process: `amlgraph.cli.main(argv)` with its output captured.

Starting a Python process per case costs ~0.7 s of imports; the bad-input corpus (~50 files, two
commands each) runs in-process through the same `main` the console script calls. A few real
subprocess runs are kept beside it (the exit code and stderr of the installed command).
"""
from __future__ import annotations

import io
from contextlib import redirect_stderr, redirect_stdout
from dataclasses import dataclass


@dataclass
class Result:
    """What a subprocess.CompletedProcess would hold."""

    returncode: int
    stdout: str
    stderr: str


def run_main(*argv: str) -> Result:
    from amlgraph.cli import main

    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        code = main([str(a) for a in argv])
    return Result(code, out.getvalue(), err.getvalue())
