"""docs/CONFIG.md is generated from PipelineConfig and the step declarations: it cannot drift."""
from __future__ import annotations

import dataclasses
import tomllib
from pathlib import Path

from amlgraph._config_docs import HELP, config_markdown, config_template, config_toml, invalidated_steps
from amlgraph.config import PipelineConfig

REPO = Path(__file__).resolve().parents[1]


def test_every_field_is_explained_and_the_doc_is_current():
    assert set(HELP) == {f.name for f in dataclasses.fields(PipelineConfig)}
    assert (REPO / "docs" / "CONFIG.md").read_text() == config_markdown(), \
        "docs/CONFIG.md is stale: regenerate it with `amlgraph config doc > docs/CONFIG.md`"


def test_invalidated_steps_follow_the_declarations():
    steps = invalidated_steps()
    assert steps["minority_cost"] == ["weights", "graph_created"]
    assert steps["currency"] == ["node_features", "edge_features", "normalized", "imbalanced", "graph_created"]
    assert steps["sample_size"][0] == "data_loaded" and steps["sample_size"][-1] == "graph_created"


def test_template_and_show_are_valid_toml_that_the_config_reads(tmp_path):
    template = tomllib.loads(config_template())
    assert template == {"amlgraph": {}}  # everything commented out: the defaults
    uncommented = "\n".join(line[2:] if line.startswith("# ") and " = " in line and "..." not in line else line
                            for line in config_template().splitlines())
    path = tmp_path / "c.toml"
    path.write_text(uncommented)
    assert PipelineConfig.from_toml(path, data_path=tmp_path) == PipelineConfig(data_path=tmp_path)
    shown = tomllib.loads(config_toml(PipelineConfig(data_path=tmp_path, minority_cost=3.0)))["amlgraph"]
    assert shown["minority_cost"] == 3.0 and shown["node_features_from"] == "split"
