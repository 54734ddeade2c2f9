"""The command explains itself: help and an example for every command, every option documented,
contradictory flags refused in one line, the resume hint only where resuming helps."""
from __future__ import annotations

import argparse

import pytest

from amlgraph.cli import build_parser
from cli_inprocess import run_main


def _subcommands(parser: argparse.ArgumentParser):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield name, sub
                yield from ((f"{name} {n}", s) for n, s in _subcommands(sub))


def test_every_command_has_examples_and_every_option_a_help_text():
    parser = build_parser()
    assert "seven checkpointed steps" in parser.description and "typical session" in parser.epilog
    commands = dict(_subcommands(parser))
    assert {"synth", "check", "run", "demo", "status", "checkpoints", "export", "report", "config"} <= set(commands)
    for name, sub in commands.items():
        if " " not in name:
            assert sub.epilog and "examples:" in sub.epilog and f"amlgraph {name}" in sub.epilog, name
        for action in sub._actions:
            if action.option_strings and action.dest != "help" or action.dest in ("data_path", "dir"):
                assert action.help and action.help.strip(), f"{name} {action.option_strings or action.dest}"


def test_the_most_used_parameters_are_flags(tiny_data):
    from amlgraph.cli._run import config_from_args

    args = build_parser().parse_args(["run", str(tiny_data), "--minority-cost", "3", "--currency", "raw",
                                      "--node-features-from", "all", "--strategy", "none", "--seed", "4",
                                      "--target-ratio", "0.5"])
    cfg = config_from_args(args)
    assert (cfg.minority_cost, cfg.currency, cfg.node_features_from, cfg.strategy, cfg.seed,
            cfg.target_ratio) == (3.0, "raw", "all", "none", 4, 0.5)


@pytest.mark.parametrize("argv, message", [
    (["run", "DATA", "--fresh", "--resume-from", "weights"], "--fresh recomputes every step"),
    (["run", "DATA", "--scheduler", "tcp://127.0.0.1:1", "--workers", "2"], "give one of them"),
    (["export", "CKPT", "--format", "pyg", "--out", "OUT", "--force"], "--force applies to --format networkx"),
    (["export", "CKPT", "--format", "parquet", "--out", "OUT", "--reverse-edges"], "--reverse-edges applies"),
])
def test_contradictory_flags_are_refused_in_one_line(tiny_data, tmp_path, argv, message):
    argv = [str(tiny_data) if a == "DATA" else str(tmp_path / "ck") if a == "CKPT" else
            str(tmp_path / "out") if a == "OUT" else a for a in argv]
    result = run_main(*argv)
    assert result.returncode == 2 and message in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "out").exists()


def test_resume_hint_only_where_resuming_helps(tiny_data, tmp_path):
    # A bad parameter fails before any work: no hint to rerun the same command.
    bad = run_main("run", tiny_data, "--checkpoint-dir", tmp_path / "ck", "--target-ratio", "7", "--quiet")
    assert bad.returncode == 2 and "resume with" not in bad.stderr
    missing = run_main("run", tmp_path / "nowhere", "--quiet")
    assert missing.returncode == 2 and "resume with" not in missing.stderr


def test_demo_checks_the_preset_before_it_prints_or_writes(tmp_path):
    result = run_main("demo", "--preset", "bogus", "--dir", tmp_path / "demo")
    assert result.returncode == 2 and result.stdout == "" and "unknown synth preset 'bogus'" in result.stderr
    assert not (tmp_path / "demo").exists()


def test_synth_does_not_overwrite_without_force(tmp_path):
    assert run_main("synth", "--preset", "tiny", "--rows", "300", "--out", tmp_path).returncode == 0
    again = run_main("synth", "--preset", "tiny", "--rows", "300", "--out", tmp_path, "--seed", "2")
    assert again.returncode == 2 and "--force" in again.stderr
    forced = run_main("synth", "--preset", "tiny", "--rows", "300", "--out", tmp_path, "--seed", "2", "--force")
    assert forced.returncode == 0 and "Replaced" in forced.stdout


def test_config_show_init_and_doc(tiny_data, tmp_path):
    import tomllib

    shown = run_main("config", "show", tiny_data)
    assert shown.returncode == 0 and tomllib.loads(shown.stdout)["amlgraph"]["node_features_from"] == "split"
    assert run_main("config", "init", "--out", tmp_path / "a.toml").returncode == 0
    assert run_main("config", "init", "--out", tmp_path / "a.toml").returncode == 2  # never overwritten
    with_file = run_main("config", "show", tiny_data, "--config", tmp_path / "a.toml")
    assert tomllib.loads(with_file.stdout)["amlgraph"]["minority_cost"] == 1.0
    assert run_main("config", "doc").stdout.startswith("# Configuration")
