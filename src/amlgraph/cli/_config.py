"""`amlgraph config show|init|doc`: the parameters, their effective values and their reference."""
from __future__ import annotations

import argparse
from pathlib import Path

from amlgraph.cli._text import add_command
from amlgraph.errors import ConfigError


def add(sub: argparse._SubParsersAction) -> None:
    p = add_command(
        sub, "config", "print the effective parameters, write a commented template, or the reference",
        examples=("amlgraph config init > amlgraph.toml      # every parameter, commented, at its default",
                  "amlgraph config show data/ --config amlgraph.toml",
                  "amlgraph config doc > docs/CONFIG.md"))
    csub = p.add_subparsers(dest="action", required=True, metavar="{show,init,doc}")
    show = csub.add_parser("show", help="the effective configuration of a run, as TOML")
    show.add_argument("data_path", type=Path, help="the data directory the run would read")
    show.add_argument("--config", type=Path, default=None, help="a TOML file of parameters")
    init = csub.add_parser("init", help="a commented TOML template of every parameter at its default")
    init.add_argument("--out", type=Path, default=None, help="write it here (refused if the file exists)")
    csub.add_parser("doc", help="the parameter reference (docs/CONFIG.md), as Markdown")
    p.set_defaults(func=command)


def command(args: argparse.Namespace) -> int:
    from amlgraph import _config_docs as docs
    from amlgraph.config import PipelineConfig

    if args.action == "doc":
        print(docs.config_markdown(), end="")
    elif args.action == "init":
        text = docs.config_template()
        if args.out is None:
            print(text, end="")
        elif args.out.exists():
            raise ConfigError(f"{args.out} exists; choose another --out or remove it first")
        else:
            args.out.write_text(text)
            print(f"Wrote {args.out}")
    else:
        cfg = (PipelineConfig.from_toml(args.config, data_path=args.data_path) if args.config is not None
               else PipelineConfig(data_path=args.data_path))
        print(docs.config_toml(cfg), end="")
    return 0
