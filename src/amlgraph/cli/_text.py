"""What every command prints the same way: sizes, and the help of a command with its examples."""
from __future__ import annotations

import argparse
from pathlib import Path


def location(text: str) -> "Path | str":
    """A command-line path or store URL: ``s3://bucket/ck`` stays a string (``Path`` would make it
    ``s3:/bucket/ck``, a local directory named ``s3:``), anything else becomes a Path."""
    from amlgraph.store import is_url

    return text if is_url(text) else Path(text)


def size_text(n: float | None) -> str:
    """Bytes in the one unit style of every command: decimal kB, MB, GB (1536 -> '1.5 kB')."""
    if n is None:
        return "-"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(n) >= scale:
            return f"{n / scale:,.1f} {unit}"
    return f"{int(n)} B"


def add_command(sub: argparse._SubParsersAction, name: str, summary: str, *, details: str = "",
                examples: tuple[str, ...] = ()) -> argparse.ArgumentParser:
    """A subcommand whose --help gives its summary, details and examples."""
    epilog = "examples:\n" + "\n".join(f"  {e}" for e in examples) if examples else None
    return sub.add_parser(name, help=summary, description=summary + (f"\n\n{details}" if details else ""),
                          epilog=epilog, formatter_class=argparse.RawDescriptionHelpFormatter)
