"""The `amlgraph` command as users run it: run, status, demo, config files, failures."""
from __future__ import annotations

import shutil
import subprocess

import pytest

from amlgraph.config import PipelineConfig
from amlgraph.errors import ConfigError
from amlgraph.schema import STEPS

from pipeline_helpers import amlgraph_cmd


def _run(*args: str, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(amlgraph_cmd(*args), capture_output=True, text=True, timeout=300, **kw)


@pytest.fixture(scope="module")
def finished(tiny_data, tmp_path_factory):
    ckpt = tmp_path_factory.mktemp("cli") / "ckpt"
    proc = _run("run", str(tiny_data), "--checkpoint-dir", str(ckpt), "--chunk-size", "500")
    assert proc.returncode == 0, proc.stderr
    return ckpt, proc


def test_run_prints_the_seed_style_log(finished):
    _, proc = finished
    out = proc.stdout
    for i, step in enumerate(STEPS, 1):
        assert f"STEP {i}/7" in out and f"({step})" in out
        assert f"Checkpoint saved: {step}" in out
    assert "completed in" in out and "Pipeline finished" in out
    assert "Traceback" not in proc.stderr


def test_rerun_loads_from_checkpoint_and_quiet_prints_nothing(finished, tiny_data):
    ckpt, _ = finished
    proc = _run("run", str(tiny_data), "--checkpoint-dir", str(ckpt), "--chunk-size", "500")
    assert "Checkpoint loaded: graph_created" in proc.stdout
    assert "Checkpoint saved" not in proc.stdout
    quiet = _run("run", str(tiny_data), "--checkpoint-dir", str(ckpt), "--quiet")
    assert quiet.returncode == 0 and quiet.stdout == "" and quiet.stderr == ""


def test_status_lists_steps_and_explains_staleness(finished, tmp_path, tiny_data):
    ckpt, _ = finished
    proc = _run("status", str(ckpt))
    assert proc.returncode == 0, proc.stderr
    for step in STEPS:
        assert step in proc.stdout
    assert "stale" not in proc.stdout and proc.stdout.count("valid") >= 7
    # the input changes: status says why each step is stale
    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    copy = tmp_path / "ckpt"
    assert _run("run", str(data), "--checkpoint-dir", str(copy), "--quiet").returncode == 0
    trans = next(data.glob("*_Trans.csv"))
    trans.write_text(trans.read_text().replace(",0\n", ",1\n", 1))
    proc = _run("status", str(copy))
    lines = {line.split()[0]: line for line in proc.stdout.splitlines()[1:8]}
    assert "stale" in lines["data_loaded"] and ": input file changed" in lines["data_loaded"]
    assert "stale" in lines["graph_created"] and ": input data_loaded changed" in lines["graph_created"]
    proc = _run("run", str(data), "--checkpoint-dir", str(copy), "--resume-from", "data_loaded",
                "--quiet")
    assert proc.returncode == 3 and "input file changed" in proc.stderr


def test_config_file_sets_parameters_and_rejects_unknown_ones(tiny_data, tmp_path):
    good = tmp_path / "good.toml"
    good.write_text('[amlgraph]\nminority_cost = 2.5\nstrategy = "none"\n')
    cfg = PipelineConfig.from_toml(good, data_path=tiny_data)
    assert cfg.minority_cost == 2.5 and cfg.strategy == "none"
    bad = tmp_path / "bad.toml"
    bad.write_text("minority_kost = 2.5\n")
    with pytest.raises(ConfigError, match="unknown parameter.*minority_kost"):
        PipelineConfig.from_toml(bad, data_path=tiny_data)
    proc = _run("run", str(tiny_data), "--config", str(bad), "--checkpoint-dir", str(tmp_path / "c"))
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "minority_kost" in proc.stderr


@pytest.mark.parametrize("field, value", [("strategy", "smot"), ("split_fractions", (0.5, 0.5, 0.5)),
                                          ("target_ratio", 0.0), ("currency", "eur"), ("threads", 0)])
def test_invalid_parameters_are_one_line_config_errors(tiny_data, field, value):
    with pytest.raises(ConfigError) as err:
        PipelineConfig(data_path=tiny_data, **{field: value})
    assert field in str(err.value) and "\n" not in str(err.value)


def test_threads_option_reaches_the_config(tiny_data):
    from amlgraph.cli import build_parser
    from amlgraph.cli._run import config_from_args

    args = build_parser().parse_args(["run", str(tiny_data), "--threads", "3"])
    assert config_from_args(args).threads == 3
    assert config_from_args(build_parser().parse_args(["run", str(tiny_data)])).threads is None
    proc = _run("run", str(tiny_data), "--threads", "0", "--quiet")
    assert proc.returncode == 2 and "threads must be a positive integer" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_failure_prints_one_cause_and_the_resume_command(tiny_data, tmp_path):
    proc = _run("run", str(tiny_data), "--checkpoint-dir", str(tmp_path / "c"), "--resume-from",
                "weights")
    assert proc.returncode == 3
    lines = proc.stderr.strip().splitlines()
    assert lines[0].startswith("amlgraph: error: cannot resume from weights")
    # the same command would fail the same way: no "resume with" hint (a failed save or step
    # gets one: tests/fault/test_resources.py::test_disk_full_during_a_save)
    assert "resume with" not in proc.stderr and "Traceback" not in proc.stderr


def test_missing_data_directory_is_exit_2(tmp_path):
    proc = _run("run", str(tmp_path / "nowhere"))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr


def test_demo_generates_and_runs(tmp_path):
    proc = _run("demo", "--dir", str(tmp_path / "demo"), "--preset", "tiny")
    assert proc.returncode == 0, proc.stderr
    assert "Graph ready" in proc.stdout and "Checkpoint saved: graph_created" in proc.stdout
    again = _run("demo", "--dir", str(tmp_path / "demo"), "--preset", "tiny")
    assert "Checkpoint loaded: graph_created" in again.stdout and "Generating" not in again.stdout


def test_status_json_and_the_parameters_of_the_last_run(tiny_data, tmp_path):
    """`status --json` maps every step to its state and recorded compute seconds; status compares
    with the parameters the last run used (not the defaults), or with those of --config."""
    import json

    from cli_inprocess import run_main

    config = tmp_path / "c.toml"
    config.write_text("minority_cost = 3.0\n")
    ck = tmp_path / "ck"
    assert run_main("run", tiny_data, "--checkpoint-dir", ck, "--config", config, "--quiet").returncode == 0
    out = run_main("status", ck, "--json")
    assert out.returncode == 0, out.stderr
    status = json.loads(out.stdout)
    assert set(status["steps"]) == set(STEPS)
    for step in STEPS:
        s = status["steps"][step]
        assert s["state"] == "valid", (step, s)
        assert isinstance(s["seconds"], float) and s["seconds"] >= 0
    assert status["next_run"]["compute"] == [] and status["footprint"]["ratio"] > 0
    other = tmp_path / "other.toml"
    other.write_text("minority_cost = 1.0\n")
    status = json.loads(run_main("status", ck, "--json", "--config", other).stdout)
    assert status["steps"]["weights"]["state"] == "stale"
    assert "minority_cost" in status["steps"]["weights"]["reason"]
    assert status["next_run"]["compute"] == ["weights", "graph_created"]
