"""`amlgraph check DATA_PATH`: validate the input files only."""
from __future__ import annotations

import argparse
from pathlib import Path

import polars as pl

from amlgraph.cli._text import add_command
from amlgraph.ingest import (
    find_inputs,
    match_pattern_lines,
    read_accounts,
    read_patterns,
    read_transactions,
)


def add(sub: argparse._SubParsersAction) -> None:
    p = add_command(
        sub, "check", "validate the input files without running the pipeline",
        details="Reads every file and prints counts; the first bad row stops it with one line naming\n"
                "file, line, column and value (exit 2), or all bad rows go to a quarantine file.",
        examples=("amlgraph check data/", "amlgraph check data/HI-Small_Trans.csv --on-bad-rows quarantine"))
    p.add_argument("data_path", type=Path, help="a directory holding <NAME>_Trans.csv, or that file")
    p.add_argument("--on-bad-rows", choices=("raise", "quarantine"), default="raise",
                   help="raise: stop at the first bad row (default); quarantine: list them all in a file")
    p.add_argument("--quarantine", type=Path, default=None, help="quarantine file (default: beside the input)")
    p.set_defaults(func=check_command)


def check_command(args) -> int:
    """`amlgraph check DATA_PATH`: read every input file, print counts, return the exit code 0.

    Args:
        args: namespace with data_path, on_bad_rows ("raise" or "quarantine") and quarantine (a
            path or None).

    Raises:
        InputError: the first problem found (raise mode) or a fatal one (quarantine mode).
    """
    files = find_inputs(args.data_path)
    patterns = read_patterns(files.patterns) if files.patterns else None
    reader = read_transactions(files.trans, on_bad_rows=args.on_bad_rows or "raise",
                               quarantine_path=getattr(args, "quarantine", None))
    laundering, matched = 0, []
    for batch in reader:
        laundering += int(batch["is_laundering"].sum())
        if patterns is not None and patterns.height:
            matched.append(match_pattern_lines(batch, patterns))
    accounts = read_accounts(files.accounts) if files.accounts else None
    print(f"data set: {files.name} ({files.trans})")
    print(f"rows: {reader.rows_read}")
    print(f"laundering: {laundering}")
    if reader.quarantine_path is not None:
        print(f"bad rows: {reader.bad_rows} (quarantined in {reader.quarantine_path})")
    else:
        print(f"bad rows: {reader.bad_rows}")
    print(f"accounts: {accounts.height if accounts is not None else 'no accounts file'}")
    if patterns is None:
        print("attempts: no patterns file")
    else:
        lines = patterns.height
        hit = pl.concat(matched)["line"].n_unique() if matched else 0
        print(f"attempts: {patterns['attempt_id'].n_unique()} ({lines} pattern lines, "
              f"{hit} found in the transactions)")
    return 0
