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


def _status_roots(directory: Path) -> list[Path]:
    from amlgraph.errors import CheckpointError

    directory = Path(directory)
    candidates = [directory] if (directory / "data_loaded").exists() or _is_store(directory) else \
        sorted(p for p in directory.glob("checkpoints*") if p.is_dir())
    if not candidates:
        raise CheckpointError(f"no checkpoint directory at {directory}; pass the directory a run "
                              "wrote (default <data>/checkpoints_<NAME>_<sample_size or all>)")
    return candidates


def status_data(root: Path, *, config: Path | None = None) -> dict:
    """Everything `amlgraph status` says of one checkpoint directory, as plain data.

    Returns:
        ``{"checkpoint_dir", "steps": {step: {"state", "seconds", "created", "size_bytes",
        "chunks", "reason"}}, "next_run": {"compute", "load", "skip"} or None, "damaged",
        "footprint": {"bytes", "input_bytes", "ratio"}, "note"}``; ``state`` is one of valid,
        stale, damaged, missing; ``seconds`` the compute time recorded in the checkpoint.
    """
    from amlgraph.cli import _checkpoints as ck
    from amlgraph.schema import parse_chunk_name
    from amlgraph.store import CheckpointStore

    store = CheckpointStore(root, create=False, verify="full")
    problems = {p.name: p for p in ck.damaged_checkpoints(store)}
    names = store.names()
    run = _status_run(store, root, config)
    steps: dict = {}
    for step in STEPS:
        manifest = store.manifest(step)
        chunks = [n for n in names if (parse_chunk_name(n) or ("",))[0] == step]
        size = sum(store.size_bytes(n) for n in names if n == step or n.startswith(step + "_"))
        entry = {"state": "missing", "seconds": None, "created": None, "size_bytes": size,
                 "chunks": len(chunks), "reason": None}
        if manifest is not None:
            entry["created"] = manifest.get("created")
            entry["seconds"] = (manifest.get("metadata") or {}).get("seconds")
        if step in problems:
            entry["state"], entry["reason"] = "damaged", ck.problem_text(problems[step])
        elif manifest is not None and not isinstance(run, str):
            ok, reason = run.check(step)
            entry["state"], entry["reason"] = ("valid", None) if ok else ("stale", reason)
        elif manifest is not None:
            entry["state"] = "done"  # present; staleness unknown (see note)
        steps[step] = entry
    plan = None
    if not isinstance(run, str):
        actions = run.plan()
        plan = {a: [s for s in STEPS if actions[s] == a] for a in ("compute", "load", "skip")}
    total = sum(store.size_bytes(n) for n in names)
    inputs = sum(f.stat().st_size for f in _input_files(run)) if not isinstance(run, str) else None
    return {"checkpoint_dir": str(root), "steps": steps, "next_run": plan, "damaged": sorted(problems),
            "footprint": {"bytes": total, "input_bytes": inputs,
                          "ratio": round(total / inputs, 3) if inputs else None},
            "note": run if isinstance(run, str) else None,
            "clean_damaged": ck.clean_damaged_command(root) if problems else None}


def _input_files(run) -> list[Path]:
    files = list(run.inputs.trans_files) + [p for p in (run.inputs.accounts, run.inputs.patterns) if p]
    return [f for f in files if f.exists()]


def print_status(directory: Path, *, as_json: bool = False, config: Path | None = None) -> int:
    """Steps and chunks done, their sizes and compute times; which checkpoints are damaged; why a
    step is stale (compared with the parameters the last run recorded, or those of ``config``);
    what the next run will compute, load and skip; the footprint against the input.

    Checkpoints are verified as a run verifies them (content hashes and the checks of loading), so
    status, ``checkpoints verify`` and the next run agree on what is damaged.
    """
    import json

    reports = [status_data(root, config=config) for root in _status_roots(directory)]
    if as_json:
        print(json.dumps(reports[0] if len(reports) == 1 else {"directories": reports}, indent=1))
        return 0
    for r in reports:
        print(f"Checkpoint directory: {r['checkpoint_dir']} (content hashes verified)")
        for step, s in r["steps"].items():
            seconds = f"{s['seconds']:.1f} s" if s["seconds"] is not None else "-"
            why = f": {s['reason']}" if s["reason"] else ""
            print(f"  {step:<14} {s['state']:<8} {_size(s['size_bytes']):>10}  {seconds:>9}  "
                  f"chunks {s['chunks']}{why}")
        if r["note"]:
            print(f"  cannot check staleness: {r['note']}")
        if r["next_run"]:
            todo = r["next_run"]
            print(f"  next run: compute {', '.join(todo['compute']) or 'nothing'}; "
                  f"load {', '.join(todo['load']) or 'nothing'}; skip {', '.join(todo['skip']) or 'nothing'}")
        fp = r["footprint"]
        ratio = f" ({fp['ratio']:.2f}x the input's {_size(fp['input_bytes'])})" if fp["ratio"] else ""
        print(f"  footprint: {_size(fp['bytes'])}{ratio}")
        if r["damaged"]:
            print(f"  damaged: {', '.join(r['damaged'])} (a run recomputes those it needs; remove them: "
                  f"{r['clean_damaged']})")
    return 0


def _size(n: int | None) -> str:
    """Bytes in the one unit style of every command: decimal MB (GB from 10 GB on)."""
    if n is None:
        return "-"
    return f"{n / 1e9:,.1f} GB" if n >= 10e9 else f"{n / 1e6:,.1f} MB"


def _status_run(store, root: Path, config: Path | None = None):
    """A Run as the recorded configuration (or ``config``, a TOML file) would make it, or why
    there is none."""
    from amlgraph.runner import Run
    from amlgraph.runner._log import RunLog

    dl = store.load("data_loaded", verify="none")
    if dl is None:
        return "the data_loaded checkpoint, which records the run's configuration, is missing or damaged"
    try:
        record = dl.value("config")
        if config is not None:
            cfg = PipelineConfig.from_toml(config, data_path=Path(record["data_path"]), checkpoint_dir=root)
        else:
            cfg = PipelineConfig(data_path=Path(record["data_path"]), checkpoint_dir=root,
                                 rates_file=record.get("rates_file"), **_flat_params(record["params"]))
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
