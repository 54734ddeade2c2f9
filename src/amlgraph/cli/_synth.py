"""`amlgraph synth`: generate an IBM-format data set."""
from __future__ import annotations

import argparse
from pathlib import Path

from amlgraph.cli._text import add_command
from amlgraph.errors import ConfigError


def add(sub: argparse._SubParsersAction) -> None:
    p = add_command(
        sub, "synth", "generate an IBM-format data set (Trans, accounts and Patterns files)",
        details="The same preset, seed and rows give byte-identical files (docs/SYNTH.md).",
        examples=("amlgraph synth --preset small --out data/",
                  "amlgraph synth --preset hi-small --out data/ --seed 3",
                  "amlgraph synth --preset hi-small --rows 500000 --out data/ --force"))
    p.add_argument("--preset", required=True, help="tiny, small, hi-small, li-small, hi-medium, li-medium, "
                                                  "hi-large, li-large")
    p.add_argument("--out", required=True, type=Path, help="output directory")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--rows", type=int, default=None, help="override the preset's row count")
    p.add_argument("--force", action="store_true", help="replace files of the same data set in --out")
    p.set_defaults(func=command)


def command(args: argparse.Namespace) -> int:
    from amlgraph.synth import generate, resolve_preset

    name = resolve_preset(args.preset, args.rows).name
    existing = sorted(p.name for p in Path(args.out).glob(f"{name}_*") if p.is_file()) \
        if Path(args.out).is_dir() else []
    if existing and not args.force:
        raise ConfigError(f"{args.out} already holds {', '.join(existing)}; pass --force to replace them, "
                          "or choose another --out")
    result = generate(args.preset, args.out, seed=args.seed, rows=args.rows)
    if existing:
        print(f"Replaced {', '.join(existing)} in {args.out}")
    print(result.summary())
    return 0
