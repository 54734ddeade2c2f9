"""What `amlgraph run`, `amlgraph demo` and `amlgraph status` do, on top of the runner."""
from __future__ import annotations

import shlex
from argparse import Namespace
from pathlib import Path

from amlgraph.config import PipelineConfig
from amlgraph.errors import AmlGraphError
from amlgraph.schema import STEPS


def config_from_args(args: Namespace) -> PipelineConfig:
    options = {
        "data_path": args.data_path, "sample_size": args.sample_size, "chunk_size": args.chunk_size,
        "resume_from": args.resume_from, "checkpoint_dir": args.checkpoint_dir,
        "workers": args.workers, "scheduler": args.scheduler, "on_bad_rows": args.on_bad_rows,
        "chunk_rows": getattr(args, "chunk_rows", None), "threads": getattr(args, "threads", None),
    }
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


def run_from_cli(args: Namespace, *, argv: list[str]) -> int:
    from amlgraph.runner import run_preprocessing

    cfg = config_from_args(args)
    try:
        result = run_preprocessing(cfg)
    except AmlGraphError as exc:
        exc.args = (f"{exc}; finished checkpoints are kept; after fixing the cause, resume with: "
                    f"{resume_command(argv)}",)
        raise
    if not cfg.quiet:
        print(f"Graph: {result.graph.num_nodes:,} nodes, {result.graph.num_edges:,} edges; "
              f"checkpoints in {result.checkpoint_dir}")
    report = getattr(args, "report", None)  # `--report [HTML]`: True when given without a path
    if report is not None:
        from amlgraph.cli._report import write_report

        write_report(result.checkpoint_dir, None if report is True else report, quiet=cfg.quiet)
    return 0


def run_demo(directory: Path, *, preset: str = "small", quiet: bool = False) -> int:
    """Generate ``preset`` under ``directory`` when absent, then run the pipeline on it."""
    from amlgraph.runner import run_preprocessing
    from amlgraph.synth import generate

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
        print(f"\nGraph ready: {g.num_nodes:,} nodes x {len(g.node_feature_names)} features, "
              f"{g.num_edges:,} edges x {len(g.edge_feature_names)} features, "
              f"{int(g.y.sum()):,} laundering edges; class weights {g.class_weights}")
        print(f"Export it with: amlgraph export {result.checkpoint_dir} --format pyg --out graph_out")
    from amlgraph.cli._report import write_report

    write_report(result.checkpoint_dir, Path(directory) / "report.html", quiet=quiet)
    return 0


def print_status(directory: Path) -> int:
    """Steps and chunks done, their keys, sizes and times; which checkpoints are damaged; why a
    step is stale; what the next run will compute, load and skip.

    Checkpoints are verified as a run verifies them (content hashes and the checks of loading), so
    status, ``checkpoints verify`` and the next run agree on what is damaged.
    """
    from amlgraph.cli import _checkpoints as ck
    from amlgraph.errors import CheckpointError
    from amlgraph.store import CheckpointStore

    directory = Path(directory)
    candidates = [directory] if (directory / "data_loaded").exists() or _is_store(directory) else \
        sorted(p for p in directory.glob("checkpoints*") if p.is_dir())
    if not candidates:
        raise CheckpointError(f"no checkpoint directory at {directory}; pass the directory a run "
                              "wrote (default <data>/checkpoints_<sample_size>)")
    for root in candidates:
        store = CheckpointStore(root, create=False, verify="full")
        print(f"Checkpoint directory: {root} (content hashes verified)")
        problems = {p.name: p for p in ck.damaged_checkpoints(store)}
        names = store.names()
        for step in STEPS:
            manifest = store.manifest(step)
            chunks = [n for n in names if n.startswith(f"{step}_chunk_")]
            size = sum(store.size_bytes(n) for n in names if n == step or n.startswith(step + "_"))
            if step in problems:
                print(f"  {step:<14} DAMAGED ({ck.problem_text(problems[step])})  chunks done: {len(chunks)}")
            elif manifest is None:
                print(f"  {step:<14} missing      chunks done: {len(chunks)}")
            else:
                print(f"  {step:<14} done {manifest.get('created', '?')}  key {manifest['key'][:12]}  "
                      f"{size / 1e6:,.1f} MB  chunks: {len(chunks)}")
        run = _status_run(store, root)
        if isinstance(run, str):
            print(f"  cannot check staleness: {run}")
        else:
            for step in STEPS:
                ok, reason = run.check(step)
                if ok:
                    print(f"  {step:<14} valid")
                elif step in problems:
                    print(f"  {step:<14} damaged: {ck.problem_text(problems[step])}")
                else:
                    print(f"  {step:<14} stale: {reason}")
            plan = run.plan()
            todo = {a: [s for s in STEPS if plan[s] == a] for a in ("compute", "load", "skip")}
            print(f"  next run: compute {', '.join(todo['compute']) or 'nothing'}; "
                  f"load {', '.join(todo['load']) or 'nothing'}; skip {', '.join(todo['skip']) or 'nothing'}")
        if problems:
            print(f"  damaged: {', '.join(problems)} (a run recomputes those it needs; remove them: "
                  f"{ck.clean_damaged_command(root)})")
    return 0


def _status_run(store, root: Path):
    """A Run as the recorded configuration would make it, or why there is none."""
    from amlgraph.runner import Run
    from amlgraph.runner._log import RunLog

    dl = store.load("data_loaded", verify="none")
    if dl is None:
        return "the data_loaded checkpoint, which records the run's configuration, is missing or damaged"
    try:
        record = dl.value("config")
        cfg = PipelineConfig(data_path=Path(record["data_path"]), checkpoint_dir=root,
                             **_flat_params(record["params"]))
        return Run(cfg, store, RunLog(quiet=True))
    except AmlGraphError as exc:
        return str(exc)
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        return f"the configuration recorded in data_loaded is malformed ({type(exc).__name__}: {exc})"


def _is_store(path: Path) -> bool:
    return any(path.glob(".amlgraph*")) or (path / ".lock").exists()


def _flat_params(params: dict) -> dict:
    flat: dict = {}
    for step_params in params.values():
        flat.update(step_params)
    if "split_fractions" in flat:
        flat["split_fractions"] = tuple(flat["split_fractions"])
    return flat
