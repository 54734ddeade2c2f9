"""`amlgraph run` and `amlgraph demo`: the pipeline from the command line."""
from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path

from amlgraph.cli._text import add_command, location
from amlgraph.config import (
    BAD_ROW_MODES,
    CURRENCY_MODES,
    NODE_FEATURE_SOURCES,
    STRATEGIES,
    PipelineConfig,
)
from amlgraph.errors import AmlGraphError, ConfigError
from amlgraph.schema import ALL_STEPS

#: Flags that set a PipelineConfig field of the same name (``--minority-cost`` -> minority_cost).
_FIELDS = ("sample_size", "chunk_size", "chunk_rows", "resume_from", "checkpoint_dir", "workers", "threads",
           "scheduler", "on_bad_rows", "currency", "rates_file", "node_features_from", "strategy",
           "target_ratio", "minority_cost", "seed", "patterns", "keep_parsed")


def add(sub: argparse._SubParsersAction) -> None:
    p = add_command(
        sub, "run", "run the seven steps on a data directory or Trans file (a rerun resumes)",
        details="Every step and chunk is a checkpoint: a rerun loads what is valid and computes the\n"
                "rest, saying why. Parameters: flags below, a --config TOML (flags win), or the\n"
                "defaults; `amlgraph config show` prints the effective values (docs/CONFIG.md).",
        examples=("amlgraph run data/                                   # checkpoints in data/checkpoints_<NAME>_all",
                  "amlgraph run data/ --checkpoint-dir ckpt/ --report   # and write ckpt/../report.html",
                  "amlgraph run data/ --minority-cost 3 --rates rates.csv",
                  "amlgraph run data/ --resume-from normalized          # reuse through normalized",
                  "amlgraph run data/ --workers 2 --chunk-rows 500000",
                  "amlgraph run data/ --patterns                        # add the pattern_* edge features",
                  "amlgraph run data/ --compact                         # keep the graph, drop the rest"))
    p.add_argument("data_path", type=location,
                   help="a directory holding <NAME>_Trans.csv, or that file; or its URL (s3://bucket/data/)")
    _add_run_options(p)
    p.add_argument("--compact", action="store_true",
                   help="after a finished run, keep only what the graph, exports and a no-op rerun need "
                        "(as `checkpoints clean --compact`); a later parameter change recomputes from the input")
    p.set_defaults(func=lambda args: run_from_cli(args, argv=sys.argv[1:]))

    d = add_command(
        sub, "demo", "generate a preset (when absent), run the pipeline on it and write its report",
        examples=("amlgraph demo", "amlgraph demo --preset tiny --dir /tmp/amlgraph-demo"))
    d.add_argument("--dir", type=Path, default=Path(".demo"), help="where the data, checkpoints and report go")
    d.add_argument("--preset", default="small", help="a generator preset (tiny, small, hi-small, ...)")
    d.add_argument("--quiet", action="store_true", help="print nothing but errors")
    d.set_defaults(func=lambda args: run_demo(args.dir, preset=args.preset, quiet=args.quiet))


def _add_run_options(p: argparse.ArgumentParser) -> None:
    where = p.add_argument_group("where and how")
    where.add_argument("--checkpoint-dir", type=location, default=None,
                       help="a directory or an object-store URL (s3://bucket/ck, gs://, abfs://; docs/DEPLOY.md); "
                            "default: <data dir>/checkpoints_<NAME>_<sample size or all>")
    where.add_argument("--config", type=Path, default=None, help="a TOML file of parameters (docs/CONFIG.md)")
    where.add_argument("--resume-from", choices=ALL_STEPS, default=None, metavar="STEP",
                       help="reuse the checkpoints through STEP, recompute the steps after it")
    where.add_argument("--fresh", action="store_true", help="ignore every checkpoint and recompute all")
    where.add_argument("--sample-size", type=int, default=None, help="first N rows in file order (default: all)")
    where.add_argument("--chunk-size", type=int, default=None,
                       help="accounts per node_features chunk (default: from the machine's memory)")
    where.add_argument("--chunk-rows", type=int, default=None,
                       help="transactions per row chunk (default: from the machine's memory)")
    where.add_argument("--workers", type=int, default=None, help="worker processes for chunked steps")
    where.add_argument("--threads", type=int, default=None,
                       help="chunk tasks at once in this process (default: one per core, at most 4)")
    where.add_argument("--scheduler", default=None, help="tcp://host:port of a dask.distributed scheduler")
    where.add_argument("--wait", action="store_true", help="wait for a checkpoint directory another run holds")
    where.add_argument("--keep-parsed", action="store_true", default=None,
                       help="keep the parsed reader batches, so that a Trans file added later is parsed alone")
    where.add_argument("--quiet", action="store_true", help="print nothing but errors")
    what = p.add_argument_group("what is computed (each changes the steps docs/CONFIG.md names)")
    what.add_argument("--on-bad-rows", choices=BAD_ROW_MODES, default=None,
                      help="raise: stop at the first bad row (default); quarantine: set them aside")
    what.add_argument("--currency", choices=CURRENCY_MODES, default=None,
                      help="usd: amounts in US Dollars, unpriced ones left out (default); raw: as written")
    what.add_argument("--rates", dest="rates_file", type=location, default=None, metavar="CSV",
                      help="exchange rates currency,usd_per_unit that win over the inferred ones")
    what.add_argument("--node-features-from", choices=NODE_FEATURE_SOURCES, default=None,
                      help="split: a view per split, no future rows (default); all: every row (leaks)")
    what.add_argument("--strategy", choices=STRATEGIES, default=None, help="rebalancing (default smote)")
    what.add_argument("--target-ratio", type=float, default=None, help="minority/majority after rebalancing")
    what.add_argument("--minority-cost", type=float, default=None, help="extra weight of the laundering class")
    what.add_argument("--seed", type=int, default=None, help="random seed of the rebalancing")
    what.add_argument("--patterns", action="store_true", default=None,
                      help="add the pattern_features step: causal fan, degree, scatter-gather, cycle and "
                           "account-statistics features of each transaction (windows: [patterns] in --config)")


def config_from_args(args: argparse.Namespace) -> PipelineConfig:
    """The run's configuration: the flags given, over a --config file, over the defaults.

    Raises:
        ConfigError: flags that contradict each other, in one line.
    """
    if args.fresh and args.resume_from:
        raise ConfigError("--fresh recomputes every step and --resume-from reuses the steps through "
                          f"{args.resume_from}: give one of them")
    if args.scheduler and (args.workers or 0) > 1:
        raise ConfigError("--scheduler runs the chunks on a Dask cluster and --workers in local processes: "
                          "give one of them")
    options = {name: getattr(args, name, None) for name in _FIELDS}
    options["data_path"] = args.data_path
    flags = {"fresh": args.fresh, "wait": args.wait, "quiet": args.quiet}
    if args.scheduler:
        options["backend"] = "dask"
    if args.config is not None:
        return PipelineConfig.from_toml(args.config, **options, **{k: v for k, v in flags.items() if v})
    return PipelineConfig(**{k: v for k, v in options.items() if v is not None}, **flags)


def resume_command(argv: list[str]) -> str:
    """The exact command that resumes a failed run: the same one, minus --fresh."""
    kept = [a for a in argv if a != "--fresh"]
    return "amlgraph " + shlex.join(kept)


def run_from_cli(args: argparse.Namespace, *, argv: list[str]) -> int:
    from amlgraph.runner import run_preprocessing

    cfg = config_from_args(args)
    try:
        result = run_preprocessing(cfg, lazy_graph=True)  # the command needs only the checkpoints
    except AmlGraphError as exc:
        # Only a run that failed part-way (a step, a save) leaves finished work that a rerun
        # resumes from; bad input, a bad parameter or a locked directory fail before that, and
        # the same command would fail the same way.
        if exc.resumable:
            exc.args = (f"{exc}; finished checkpoints are kept; after fixing the cause, resume with: "
                        f"{resume_command(argv)}",)
        raise
    if not cfg.quiet:
        print(f"Graph: {result.num_nodes:,} nodes, {result.num_edges:,} edges; "
              f"checkpoints in {result.checkpoint_dir}")
    report = getattr(args, "report", None)  # `--report [HTML]`: True when given without a path
    if report is not None:
        from amlgraph.cli._report import write_report

        write_report(result.checkpoint_dir, None if report is True else report, quiet=cfg.quiet)
    if getattr(args, "compact", False):
        from amlgraph.cli._checkpoints import compact_and_say

        compact_and_say(result.checkpoint_dir, quiet=cfg.quiet, data_path=cfg.data_path)
    return 0


def run_demo(directory: Path, *, preset: str = "small", quiet: bool = False) -> int:
    """Generate ``preset`` under ``directory`` when absent, then run the pipeline on it."""
    from amlgraph.runner import run_preprocessing
    from amlgraph.synth import generate, resolve_preset

    resolve_preset(preset)  # an unknown preset fails before anything is printed or written
    data_dir = Path(directory) / preset
    if not any(data_dir.glob("*_Trans.csv")):
        if not quiet:
            print(f"Generating the {preset} preset in {data_dir} ...", flush=True)
        summary = generate(preset, data_dir, seed=0).summary()
        if not quiet:
            print(summary, flush=True)
    cfg = PipelineConfig(data_path=data_dir, checkpoint_dir=Path(directory) / "checkpoints", quiet=quiet)
    result = run_preprocessing(cfg)
    if not quiet:
        g = result.graph
        weights = ", ".join(f"{k}: {v:.4g}" for k, v in g.class_weights.items())
        print(f"\nGraph ready: {g.num_nodes:,} nodes x {len(g.node_feature_names)} features, "
              f"{g.num_edges:,} edges x {len(g.edge_feature_names)} features, "
              f"{int(g.y.sum()):,} laundering edges; class weights {{{weights}}}")
        print(f"Export it with: amlgraph export {result.checkpoint_dir} --format pyg --out graph_out")
    from amlgraph.cli._report import write_report

    write_report(result.checkpoint_dir, Path(directory) / "report.html", quiet=quiet)
    return 0
