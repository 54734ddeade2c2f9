"""The `amlgraph` command. Parses arguments, calls the library, turns errors into one line.

Layering: cli -> pipeline -> steps, store. Nothing imports cli.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from amlgraph.errors import AmlGraphError
from amlgraph.schema import STEPS


def _add_synth(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("synth", help="generate an IBM-format data set")
    p.add_argument("--preset", required=True, help="tiny, small, hi-small, li-small, hi-medium, hi-large, ...")
    p.add_argument("--out", required=True, type=Path, help="output directory")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--rows", type=int, default=None, help="override the preset's row count")
    p.set_defaults(func=_cmd_synth)


def _cmd_synth(args: argparse.Namespace) -> int:
    from amlgraph.synth import generate

    result = generate(args.preset, args.out, seed=args.seed, rows=args.rows)
    print(result.summary())
    return 0


def _add_check(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("check", help="validate input files without running the pipeline")
    p.add_argument("data_path", type=Path)
    p.add_argument("--on-bad-rows", choices=("raise", "quarantine"), default="raise")
    p.add_argument("--quarantine", type=Path, default=None, help="quarantine file (default: beside the input)")
    p.set_defaults(func=_cmd_check)


def _cmd_check(args: argparse.Namespace) -> int:
    from amlgraph.cli._check import check_command

    return check_command(args)


def _add_run_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--sample-size", type=int, default=None, help="first N rows in file order (default: all)")
    p.add_argument("--chunk-size", type=int, default=None,
                   help="accounts per node_features chunk (default: from available memory)")
    p.add_argument("--chunk-rows", type=int, default=None,
                   help="transactions per row chunk (default: from available memory)")
    p.add_argument("--resume-from", choices=STEPS, default=None)
    p.add_argument("--fresh", action="store_true", help="ignore all checkpoints")
    p.add_argument("--checkpoint-dir", type=Path, default=None)
    p.add_argument("--config", type=Path, default=None, help="a TOML file of pipeline parameters")
    p.add_argument("--workers", type=int, default=None, help="process-pool workers for chunked steps")
    p.add_argument("--threads", type=int, default=None,
                   help="chunk tasks at once in this process (default: one per core, at most 4)")
    p.add_argument("--scheduler", default=None, help="tcp://host:port of a dask.distributed scheduler")
    p.add_argument("--on-bad-rows", choices=("raise", "quarantine"), default=None)
    p.add_argument("--wait", action="store_true", help="wait for a locked checkpoint directory")
    p.add_argument("--quiet", action="store_true")


def _add_run(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("run", help="run the pipeline on a data directory or Trans file")
    p.add_argument("data_path", type=Path)
    _add_run_options(p)
    p.set_defaults(func=_cmd_run)


def _cmd_run(args: argparse.Namespace) -> int:
    from amlgraph.cli._run import run_from_cli

    return run_from_cli(args, argv=sys.argv[1:])


def _add_demo(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="generate the small preset (when absent) and run the pipeline on it")
    p.add_argument("--dir", type=Path, default=Path(".demo"))
    p.add_argument("--preset", default="small")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=_cmd_demo)


def _cmd_demo(args: argparse.Namespace) -> int:
    from amlgraph.cli._run import run_demo

    return run_demo(args.dir, preset=args.preset, quiet=args.quiet)


def _add_status(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("status", help="steps done, sizes, compute times, staleness, the next run's plan")
    p.add_argument("dir", type=Path, nargs="?", default=Path("."), help="checkpoint directory or data directory")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object: steps -> {state, seconds, size_bytes, chunks, reason}, ...")
    p.add_argument("--config", type=Path, default=None,
                   help="compare with the parameters of this TOML file instead of the last run's")
    p.set_defaults(func=_cmd_status)


def _cmd_status(args: argparse.Namespace) -> int:
    from amlgraph.cli._run import print_status

    return print_status(args.dir, as_json=args.json, config=args.config)


def _add_checkpoints(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("checkpoints", help="list, verify or clean checkpoints")
    csub = p.add_subparsers(dest="action", required=True)
    pl_ = csub.add_parser("list")
    pl_.add_argument("dir", type=Path)
    pv = csub.add_parser("verify")
    pv.add_argument("dir", type=Path)
    pc = csub.add_parser("clean")
    pc.add_argument("dir", type=Path)
    pc.add_argument("--keep-last", type=int, default=None, help="keep the N newest checkpoints")
    pc.add_argument("--older-than", default=None, help="age such as 7d, 12h, 30m")
    pc.add_argument("--damaged", action="store_true",
                    help="remove exactly the checkpoints that `checkpoints verify` reports damaged")
    pc.add_argument("--dry-run", action="store_true")
    p.set_defaults(func=_cmd_checkpoints)


def _cmd_checkpoints(args: argparse.Namespace) -> int:
    from amlgraph.cli._checkpoints import checkpoints_command

    return checkpoints_command(args)


def _add_export(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("export", help="export a finished run's graph")
    p.add_argument("checkpoint_dir", type=Path)
    p.add_argument("--format", required=True, choices=("pyg", "multignn", "networkx", "parquet"))
    p.add_argument("--out", required=True, type=Path)
    p.add_argument("--reverse-edges", action="store_true", help="pyg: HeteroData with reverse edges")
    p.add_argument("--force", action="store_true", help="networkx: export even above the size limit")
    p.set_defaults(func=_cmd_export)


def _cmd_export(args: argparse.Namespace) -> int:
    from amlgraph.cli._export import export_command

    return export_command(args)


def _add_report(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("report", help="write an HTML report of a finished run, from its checkpoints")
    p.add_argument("checkpoint_dir", type=Path)
    p.add_argument("--out", type=Path, default=Path("report.html"),
                   help="the HTML file (default: report.html); figures go to <stem>_files/ beside it")
    p.add_argument("--sample", type=int, default=200_000,
                   help="rows per class in each feature histogram (a deterministic sample)")
    p.set_defaults(func=_cmd_report)
    run = sub.choices.get("run")  # the report also comes at the end of a run: `run ... --report`
    if run is not None:
        run.add_argument("--report", nargs="?", const=True, default=None, type=Path, metavar="HTML",
                         help="write the run's report when it finishes "
                              "(default: report.html beside the checkpoint directory)")


def _cmd_report(args: argparse.Namespace) -> int:
    from amlgraph.cli._report import report_command

    return report_command(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="amlgraph", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=_version())
    parser.add_argument("--debug", action="store_true", help="show tracebacks")
    sub = parser.add_subparsers(dest="command", required=True)
    for add in (_add_synth, _add_check, _add_run, _add_demo, _add_status, _add_checkpoints, _add_export,
                _add_report):
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
