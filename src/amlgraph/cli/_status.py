"""`amlgraph status`: what is done, how long it took, what is stale and why, what the next run does."""
from __future__ import annotations

import argparse
from pathlib import Path

from amlgraph.cli._text import add_command, location, size_text
from amlgraph.config import PipelineConfig
from amlgraph.errors import AmlGraphError
from amlgraph.schema import ALL_STEPS, OPTIONAL_STEPS


def add(sub: argparse._SubParsersAction) -> None:
    p = add_command(
        sub, "status", "steps done, sizes, compute times, staleness and the next run's plan",
        details="Staleness is judged against the parameters the last run recorded (or those of\n"
                "--config). Checkpoints are verified by content hash, as a run verifies them.",
        examples=("amlgraph status data/checkpoints_HI-Small_all",
                  "amlgraph status ckpt/ --json | jq '.steps.node_features.seconds'",
                  "amlgraph status ckpt/ --config new.toml    # what would a run with new.toml recompute?"))
    p.add_argument("dir", type=location, nargs="?", default=Path("."),
                   help="a checkpoint directory, or a data directory holding checkpoints_* (default: .)")
    p.add_argument("--json", action="store_true",
                   help="print one JSON object: steps -> {state, seconds, size_bytes, chunks, reason}, "
                        "next_run, damaged, footprint")
    p.add_argument("--config", type=Path, default=None,
                   help="compare with the parameters of this TOML file instead of the last run's")
    p.set_defaults(func=lambda args: print_status(args.dir, as_json=args.json, config=args.config))


def _status_roots(directory: Path) -> list[Path]:
    from amlgraph.errors import CheckpointError
    from amlgraph.store import is_url

    if is_url(directory):
        return [directory]
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
    from amlgraph.store import open_store

    store = open_store(root, create=False, verify="full")
    problems = {p.name: p for p in ck.damaged_checkpoints(store)}
    names = store.names()
    run = _status_run(store, root, config)
    steps: dict = {}
    for step in ALL_STEPS:
        manifest = store.manifest(step)
        if step in OPTIONAL_STEPS and manifest is None and (isinstance(run, str) or step not in run.order):
            continue  # an optional step neither run nor asked for
        chunks = [n for n in names if (parse_chunk_name(n) or ("",))[0] == step]
        size = sum(store.size_bytes(n) for n in names if n == step or n.startswith(step + "_"))
        entry = {"state": "missing", "seconds": None, "created": None, "size_bytes": size,
                 "chunks": len(chunks), "reason": None}
        if manifest is not None:
            entry["created"] = manifest.get("created")
            entry["seconds"] = (manifest.get("metadata") or {}).get("seconds")
        if step in problems:
            entry["state"], entry["reason"] = "damaged", ck.problem_text(problems[step])
        elif manifest is not None and not isinstance(run, str) and step not in run.order:
            entry["state"], entry["reason"] = "stale", "the configuration leaves this optional step out"
        elif manifest is not None and not isinstance(run, str):
            ok, reason = run.check(step)
            entry["state"], entry["reason"] = ("valid", None) if ok else ("stale", reason)
        elif manifest is not None:
            entry["state"] = "done"  # present; staleness unknown (see note)
        steps[step] = entry
    plan = None
    if not isinstance(run, str):
        actions = run.plan()
        plan = {a: [s for s in actions if actions[s] == a] for a in ("compute", "load", "skip")}
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
            print(f"  {step:<16} {s['state']:<8} {size_text(s['size_bytes']):>10}  {seconds:>9}  "
                  f"chunks {s['chunks']}{why}")
        if r["note"]:
            print(f"  cannot check staleness: {r['note']}")
        if r["next_run"]:
            todo = r["next_run"]
            print(f"  next run: compute {', '.join(todo['compute']) or 'nothing'}; "
                  f"load {', '.join(todo['load']) or 'nothing'}; skip {', '.join(todo['skip']) or 'nothing'}")
        fp = r["footprint"]
        ratio = f" ({fp['ratio']:.2f}x the input's {size_text(fp['input_bytes'])})" if fp["ratio"] else ""
        print(f"  footprint: {size_text(fp['bytes'])}{ratio}")
        if r["damaged"]:
            print(f"  damaged: {', '.join(r['damaged'])} (a run recomputes those it needs; remove them: "
                  f"{r['clean_damaged']})")
    return 0


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
    if "pattern_features" in params:  # the optional step was part of the recorded run
        flat["patterns"] = {**flat.get("patterns", {}), "enabled": True}
    if "split_fractions" in flat:
        flat["split_fractions"] = tuple(flat["split_fractions"])
    return flat
