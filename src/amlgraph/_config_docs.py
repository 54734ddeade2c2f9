"""Every parameter of ``PipelineConfig`` explained, and the texts made from that: docs/CONFIG.md,
the commented template of ``amlgraph config init`` and the TOML of ``amlgraph config show``.

The table below must name every field (a test checks it), and which steps a parameter
invalidates comes from the step declarations, so the reference cannot drift from the code.
"""
from __future__ import annotations

import dataclasses
from typing import Any

from amlgraph.config import PatternConfig, PipelineConfig

#: field -> (what it changes, CLI flag or "")
HELP: dict[str, tuple[str, str]] = {
    "data_path": ("directory holding `<NAME>_Trans.csv` (and `_accounts.csv`, `_Patterns.txt`), or the Trans file; "
                  "or its URL (`s3://bucket/data/`, docs/DEPLOY.md)",
                  "DATA_PATH"),
    "checkpoint_dir": ("where checkpoints go, a directory or an object-store URL (`s3://bucket/ck`, docs/DEPLOY.md); "
                       "default `<data dir>/checkpoints_<NAME>_<sample_size or all>`",
                       "--checkpoint-dir"),
    "sample_size": ("read only the first N rows in file order (all when unset)", "--sample-size"),
    "chunk_size": ("accounts per node_features chunk; default from the machine's memory and the data's density",
                   "--chunk-size"),
    "chunk_rows": ("transactions per row chunk; default from the machine's memory", "--chunk-rows"),
    "split_fractions": ("target shares of train, validation and test days (Multi-GNN's temporal split)", ""),
    "currency": ("`usd`: amounts priced in US Dollars (unpriced ones left out and counted); `raw`: as written",
                 "--currency"),
    "rates_file": ("CSV `currency,usd_per_unit` of exchange rates that win over the inferred ones (a path or a URL)",
                   "--rates"),
    "node_features_from": ("`split`: one node-feature view per split, no future rows (default); `all`: every "
                           "row (transductive, leaks); `train`: training rows for every split",
                           "--node-features-from"),
    "strategy": ("rebalancing of the training rows: `smote`, `random_under` or `none`", "--strategy"),
    "k_neighbors": ("SMOTE's neighbours", ""),
    "target_ratio": ("minority / majority after rebalancing, in (0, 1]", "--target-ratio"),
    "minority_cost": ("extra factor on the laundering class's weight", "--minority-cost"),
    "seed": ("random seed of SMOTE and undersampling", "--seed"),
    "on_bad_rows": ("`raise`: stop at the first bad row; `quarantine`: write bad rows to a file and go on",
                    "--on-bad-rows"),
    "resume_from": ("reuse the checkpoints through this step and recompute the steps after it", "--resume-from"),
    "fresh": ("ignore every checkpoint and recompute all steps", "--fresh"),
    "workers": ("worker processes for chunked steps (1: in this process)", "--workers"),
    "threads": ("chunk tasks at once in this process; default one per core, at most 4", "--threads"),
    "backend": ("`local`, `processes` (a process pool) or `dask` (needs `scheduler`)", ""),
    "scheduler": ("address of a dask.distributed scheduler (tcp://host:port)", "--scheduler"),
    "wait": ("wait for a checkpoint directory locked by another run instead of failing", "--wait"),
    "quiet": ("print nothing but errors", "--quiet"),
    "verify": ("checkpoint verification before use: `full` (content hashes), `quick` (sizes) or `none`", ""),
    "keep_parsed": ("keep `data_loaded`'s reader batches after the step (about a third of the input's size): "
                    "a Trans file added to the directory later is then parsed alone; by default they are "
                    "deleted once the coded batches are saved, and an added file re-parses every file",
                    "--keep-parsed"),
    "patterns": ("the optional `pattern_features` step and its parameters: the `[patterns]` table below",
                 "--patterns"),
    "extra": ("free-form values kept with the configuration (not used by the steps)", ""),
}

#: [patterns] field -> what it changes (docs/FEATURES.md defines the columns).
PATTERN_HELP: dict[str, str] = {
    "enabled": "run the `pattern_features` step (`--patterns`; a `[patterns]` table turns it on unless it "
               "says `enabled = false`); off: the seven steps, keys and outputs as without the step",
    "window": "seconds of the half-open window (t - w, t] of fan, degree and vertex statistics",
    "scatter_gather_window": "seconds of the closed window [t - w, t] of scatter-gather and gather-scatter",
    "temporal_cycle_window": "seconds of the window [t - w, t) of temporal cycles",
    "simple_cycle_window": "seconds of the window [t - w, t] of simple cycles",
    "max_cycle_length": "longest simple cycle counted, the closing edge included (>= 2)",
    "bins": "histogram bins of pattern sizes: bin k counts sizes in [bins[k], bins[k+1]), the last one "
            "sizes >= bins[-1]; strictly increasing integers >= 1",
    "families": "the families computed: a subset of fan, degree, scatter_gather, temporal_cycle, "
                "simple_cycle, vertex_stats",
}

#: Fields that decide where and how a run happens, never what it computes.
_RUN_CONTROLS = {"data_path", "checkpoint_dir", "resume_from", "fresh", "wait", "quiet", "verify", "extra",
                 "workers", "threads", "backend", "scheduler", "chunk_size", "chunk_rows", "keep_parsed"}


def invalidated_steps() -> dict[str, list[str]]:
    """Parameter -> the steps whose checkpoints a change of it invalidates (its own step and every
    step that reads it, directly or not), in run order. Input files key ``data_loaded`` too."""
    from amlgraph.steps import declarations

    decls = declarations()
    order = list(decls)
    keyed = {"rates_file": {"data_loaded"}}  # a file: keyed by its content, like the inputs
    for name, decl in decls.items():
        for param in decl.params:
            keyed.setdefault(param, set()).add(name)
    out: dict[str, list[str]] = {}
    for param, own in keyed.items():
        hit = set(own)
        for step in order:
            if hit & set(decls[step].inputs(decls)):
                hit.add(step)
        out[param] = [s for s in order if s in hit]
    return out


def _type(field: dataclasses.Field) -> str:
    text = str(field.type).replace("Path", "path").replace("tuple[float, float, float]", "3 floats")
    text = text.replace("tuple[int, ...]", "list of integers").replace("tuple[str, ...]", "list of names")
    return text.replace(" | None", " or unset").replace("dict[str, Any]", "table").replace("PatternConfig", "table")


def _default(field: dataclasses.Field) -> Any:
    if field.default is not dataclasses.MISSING:
        return field.default
    if field.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
        return field.default_factory()  # type: ignore[misc]
    return "(required)"


def config_markdown() -> str:
    """docs/CONFIG.md: every parameter with type, default, meaning, flag and invalidated steps."""
    invalid = invalidated_steps()
    lines = [
        "# Configuration",
        "",
        "Every parameter of `PipelineConfig` (`src/amlgraph/config.py`). Generated by",
        "`amlgraph config doc > docs/CONFIG.md` from the code; a test keeps it equal.",
        "",
        "Set them in a TOML file (top level or an `[amlgraph]` table) given with `--config`, with",
        "the flags shown, or as keyword arguments of `run_preprocessing`. `amlgraph config init`",
        "writes a commented template; `amlgraph config show [--config F]` prints the effective values.",
        "",
        "A change of a parameter recomputes the steps in its last column (their checkpoints carry it",
        "in their keys); the run says why (\"parameter minority_cost changed (1.0 -> 3.0)\").",
        "Parameters marked *run control* never change a result, only where or how it is computed.",
        "",
        "| name | type | default | what it changes | flag | recomputes |",
        "|---|---|---|---|---|---|",
    ]
    for field in dataclasses.fields(PipelineConfig):
        text, flag = HELP[field.name]
        steps = "*run control*" if field.name in _RUN_CONTROLS else ", ".join(invalid.get(field.name, [])) or "-"
        default = "see `[patterns]`" if field.name == "patterns" else f"`{_default(field)!r}`"
        lines.append(f"| `{field.name}` | {_type(field)} | {default} | {text} | "
                     f"{'`' + flag + '`' if flag else ''} | {steps} |")
    lines += [
        "",
        "## `[patterns]`: the optional pattern_features step",
        "",
        "A table of its own in the TOML file (`[patterns]`, or `[amlgraph.patterns]`), or",
        "`patterns = {...}` inline. Column definitions: docs/FEATURES.md; algorithms: docs/PATTERNS.md.",
        "`enabled` only adds or removes the step; a change of any other field recomputes",
        f"{', '.join(invalid.get('patterns', []))}.",
        "",
        "| name | type | default | what it changes |",
        "|---|---|---|---|",
    ]
    for field in dataclasses.fields(PatternConfig):
        lines.append(f"| `{field.name}` | {_type(field)} | `{_toml_value(_default(field))}` | "
                     f"{PATTERN_HELP[field.name]} |")
    return "\n".join(lines) + "\n"


def _toml_value(value: Any) -> str:
    if isinstance(value, PatternConfig):
        return "{" + ", ".join(f"{f.name} = {_toml_value(getattr(value, f.name))}"
                               for f in dataclasses.fields(value)) + "}"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def config_template() -> str:
    """A commented TOML template of every result parameter at its default (`amlgraph config init`)."""
    lines = ["# amlgraph parameters (amlgraph run DATA --config THIS_FILE). Defaults shown;",
             "# uncomment and change what you need. Reference: docs/CONFIG.md", "[amlgraph]"]
    for field in dataclasses.fields(PipelineConfig):
        if field.name in _RUN_CONTROLS:
            continue
        default = _default(field)
        lines.append(f"# {HELP[field.name][0]}")
        lines.append(f"# {field.name} = {_toml_value(default) if default is not None else '...'}")
    return "\n".join(lines) + "\n"


def config_toml(cfg: PipelineConfig) -> str:
    """The effective values of ``cfg`` as TOML (`amlgraph config show`); unset values commented."""
    lines = ["[amlgraph]"]
    for field in dataclasses.fields(PipelineConfig):
        if field.name == "extra":
            continue
        value = getattr(cfg, field.name)
        lines.append(f"# {field.name} = (unset)" if value is None else f"{field.name} = {_toml_value(value)}")
    return "\n".join(lines) + "\n"
