"""`amlgraph run --patterns` and the [patterns] section of --config."""
from __future__ import annotations

from amlgraph.cli import build_parser
from amlgraph.cli._run import config_from_args
from cli_inprocess import run_main


def test_the_flag_turns_the_step_on_and_keeps_the_sections_values(tiny_data, tmp_path):
    parse = build_parser().parse_args
    assert config_from_args(parse(["run", str(tiny_data)])).optional_steps == ()
    cfg = config_from_args(parse(["run", str(tiny_data), "--patterns"]))
    assert cfg.patterns.enabled and cfg.patterns.window == 86_400 and cfg.steps[3] == "pattern_features"
    toml = tmp_path / "c.toml"
    toml.write_text("[amlgraph]\nseed = 2\n\n[patterns]\nenabled = false\nmax_cycle_length = 4\n")
    off = config_from_args(parse(["run", str(tiny_data), "--config", str(toml)]))
    assert not off.patterns.enabled and off.seed == 2
    on = config_from_args(parse(["run", str(tiny_data), "--config", str(toml), "--patterns"]))
    assert on.patterns.enabled and on.patterns.max_cycle_length == 4
    assert config_from_args(parse(["run", str(tiny_data), "--patterns", "--resume-from",
                                   "pattern_features"])).resume_from == "pattern_features"


def test_bad_pattern_parameters_are_refused_in_one_line(tiny_data, tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text("[patterns]\nbins = [4, 3]\n")
    result = run_main("run", tiny_data, "--checkpoint-dir", tmp_path / "ckpt", "--config", toml)
    assert result.returncode != 0 and len(result.stderr.strip().splitlines()) == 1
    assert "bins" in result.stderr and "strictly increasing" in result.stderr
    assert not (tmp_path / "ckpt").exists()
    result = run_main("run", tiny_data, "--checkpoint-dir", tmp_path / "ckpt", "--resume-from", "pattern_features")
    assert result.returncode != 0 and "--patterns" in result.stderr


def test_config_show_prints_the_section(tiny_data, tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text("[patterns]\nwindow = 600\n")
    shown = run_main("config", "show", tiny_data, "--config", toml)
    assert shown.returncode == 0, shown.stderr
    assert "patterns = {enabled = true, window = 600," in shown.stdout


def test_status_lists_the_pattern_step_of_a_patterns_run(micro_data, tmp_path):
    import json

    ckpt = tmp_path / "ckpt"
    assert run_main("run", micro_data, "--checkpoint-dir", ckpt, "--patterns", "--quiet").returncode == 0
    status = json.loads(run_main("status", ckpt, "--json").stdout)
    assert list(status["steps"])[3] == "pattern_features"
    assert status["steps"]["pattern_features"]["state"] == "valid"
    assert status["steps"]["pattern_features"]["seconds"] > 0
    assert status["next_run"]["load"] == ["graph_created"]
    text = run_main("status", ckpt).stdout
    assert "  pattern_features valid" in text


def test_the_sections_defaults_are_the_steps_defaults():
    # The [patterns] section and the step's parameters are two declarations of one set of
    # defaults (the config cannot import the step at class level): they must not drift apart.
    import dataclasses

    from amlgraph.config import PatternConfig
    from amlgraph.steps._patterns_params import PatternParams

    assert PatternConfig().params() == dataclasses.asdict(PatternParams())
