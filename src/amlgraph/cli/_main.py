"""The `amlgraph` command: parses arguments, calls the library, turns errors into one line.

One module per command group (``_run``: run and demo, ``_status``, ``_check``, ``_checkpoints``,
``_export``, ``_report``, ``_config``, ``_synth``), each adding its parser with help and examples.
Nothing in the library imports this package.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from amlgraph.errors import AmlGraphError, ConfigError

DESCRIPTION = """\
amlgraph turns anti-money-laundering transaction files in the IBM AML format into a GNN-ready
transaction graph in seven checkpointed steps (data_loaded, node_features, edge_features,
normalized, imbalanced, weights, graph_created). A rerun resumes where a run stopped; a changed
input, parameter or code version recomputes what it affects, and says why."""

EPILOG = """\
typical session:
  amlgraph synth --preset small --out data/          # or bring HI-Small_Trans.csv & co.
  amlgraph check data/                               # validate the input only
  amlgraph run data/ --report                        # all seven steps, then an HTML report
  amlgraph status data/checkpoints_Small_all         # what is done, what is stale and why
  amlgraph export data/checkpoints_Small_all --format pyg --out graph/
`amlgraph COMMAND --help` shows each command's options and examples; docs/ has the details."""


def _add_export(sub: argparse._SubParsersAction) -> None:
    from amlgraph.cli._text import add_command, location

    p = add_command(sub, "export", "write a finished run's graph as PyG, Multi-GNN CSV, GraphML or Parquet",
                    details="The files of a format are switched into --out as one set (docs/EXPORTS.md).",
                    examples=("amlgraph export ckpt/ --format pyg --out graph/",
                              "amlgraph export ckpt/ --format parquet --out tables/",
                              "amlgraph export ckpt/ --format parquet --unscaled --out raw-tables/",
                              "amlgraph export ckpt/ --format multignn --out multignn/"))
    p.add_argument("checkpoint_dir", type=location, help="a finished run's checkpoint directory")
    p.add_argument("--format", required=True, choices=("pyg", "multignn", "networkx", "parquet"),
                   help="pyg: torch_geometric Data, the full graph and one per split; multignn: "
                        "formatted_transactions.csv; networkx: GraphML; parquet: a node table per split's "
                        "view and the edge table")
    p.add_argument("--out", required=True, type=location, help="the output directory or URL (its files of this format "
                                                           "are replaced as a set)")
    p.add_argument("--reverse-edges", action="store_true", help="pyg only: HeteroData with reverse edges")
    p.add_argument("--force", action="store_true", help="networkx only: export even above the size limit")
    p.add_argument("--unscaled", action="store_true",
                   help="parquet only: the features as defined, before any log or scaling (from the run's "
                        "node_features and edge_features checkpoints), and each edge's raw amounts, "
                        "currencies and payment format")
    p.set_defaults(func=_cmd_export)


def _cmd_export(args: argparse.Namespace) -> int:
    from amlgraph.cli._export import export_command

    if args.force and args.format != "networkx":
        raise ConfigError(f"--force applies to --format networkx only (its size limit), not {args.format}")
    if args.reverse_edges and args.format != "pyg":
        raise ConfigError(f"--reverse-edges applies to --format pyg only, not {args.format}")
    return export_command(args)


def build_parser() -> argparse.ArgumentParser:
    from amlgraph.cli import (
        _check,
        _checkpoints,
        _config,
        _report,
        _run,
        _status,
        _synth,
    )

    parser = argparse.ArgumentParser(prog="amlgraph", description=DESCRIPTION, epilog=EPILOG,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=_version())
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    for add in (_synth.add, _check.add, _run.add, _status.add, _checkpoints.add, _add_export, _report.add,
                _config.add):
        add(sub)
    return parser


def _version() -> str:
    from amlgraph import __version__

    return f"amlgraph {__version__}"


def _out_of_memory(exc: Exception) -> bool:
    """Whether ``exc`` is the memory running out in disguise: a library that could not be
    mapped, or a thread whose stack could not be allocated."""
    text = str(exc)
    if isinstance(exc, ImportError):
        return "failed to map segment" in text or "Cannot allocate memory" in text
    return isinstance(exc, RuntimeError) and "can't start new thread" in text


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised in the main thread so that a run unwinds as on Ctrl-C (its worker pool
    shut down, its lock released) before the command exits with 143."""


def _raise_terminated(signum, frame) -> None:
    raise _Terminated()


class _terminate_as_interrupt:
    """While the command runs, SIGTERM raises _Terminated, unless this is not the main thread
    or the embedding program has its own SIGTERM handler."""

    def __enter__(self):
        import signal
        import threading

        self._old = None
        if threading.current_thread() is threading.main_thread() and hasattr(signal, "SIGTERM") \
                and signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:
            self._old = signal.signal(signal.SIGTERM, _raise_terminated)
        return self

    def __exit__(self, *exc) -> bool:
        import signal

        if self._old is not None:
            signal.signal(signal.SIGTERM, self._old)
        return False


def _stop_listening() -> None:
    """Once the command is ending on a signal, a second Ctrl-C or SIGTERM cannot interrupt the
    one-line message or the exit (and print a traceback)."""
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, getattr(signal, "SIGTERM", None)):
            if sig is not None:
                signal.signal(sig, signal.SIG_IGN)


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    debug = args.debug or bool(os.environ.get("AMLGRAPH_DEBUG"))
    try:
        with _terminate_as_interrupt():
            return int(args.func(args) or 0)
    except AmlGraphError as exc:
        if debug:
            raise
        print(f"amlgraph: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as exc:  # Ctrl-C: 130 (128 + SIGINT); SIGTERM: 143 (128 + SIGTERM)
        terminated = isinstance(exc, _Terminated)
        if argv is None:  # the command itself, not a call from a program or a test
            _stop_listening()
        print(f"amlgraph: {'terminated' if terminated else 'interrupted'}", file=sys.stderr)
        return 143 if terminated else 130
    except BrokenPipeError:
        return 0
    except MemoryError:
        if debug:
            raise
        print("amlgraph: error: out of memory; rerun with a smaller --chunk-size "
              "(completed checkpoints are kept)", file=sys.stderr)
        return 1
    except Exception as exc:  # a bug, not bad input: still one line, the traceback on request
        if debug:
            raise
        if _out_of_memory(exc):
            print("amlgraph: error: out of memory; rerun with a smaller --chunk-size or --threads 1 "
                  "(completed checkpoints are kept)", file=sys.stderr)
            return 1
        print(f"amlgraph: internal error: {type(exc).__name__}: {exc} (rerun with --debug for "
              "the traceback; completed checkpoints are kept)", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
