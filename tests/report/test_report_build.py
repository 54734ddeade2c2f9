"""The run report: every section, self-contained, escaped, read from the checkpoints alone."""
from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import textwrap
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from pipeline_helpers import amlgraph_cmd
from report_helpers import finished_run

from amlgraph.errors import CheckpointError, ConfigError
from amlgraph.report import build_report, files_dir_of
from amlgraph.report._html import SECTIONS

FIGURES = ("temporal", "class_balance", "timings", "degrees", "node_features", "edge_features", "sizes")


class _Images(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.srcs: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "img":
            self.srcs.append(a.get("src") or "")
        if tag == "a" and a.get("href") and not a["href"].startswith("#"):
            self.links.append(a["href"])


def _parse(html: str) -> _Images:
    p = _Images()
    p.feed(html)
    return p


def test_the_report_has_every_section(tiny_report, tiny_run):
    html = tiny_report.read_text(encoding="utf-8")
    for key, title in SECTIONS:
        assert f'id="{key}"' in html, key
        assert title in html
    from amlgraph.store import CheckpointStore

    from amlgraph.runner import load_graph

    store = CheckpointStore(tiny_run[1], create=False)
    graph = load_graph(tiny_run[1])
    summary = store.load("data_loaded").value("summary")
    assert f"{summary['rows']:,}" in html and f"{graph.num_nodes:,}" in html
    laundering = int(np.count_nonzero(graph.y))
    assert f"{laundering:,} ({100 * laundering / summary['rows']:.3f} %)" in html
    for typology in store.load("data_loaded").table("patterns")["typology"].unique():
        assert typology in html
    files = files_dir_of(tiny_report)
    for kind in ("node", "edge"):  # each feature has its panel (SVG text stays text)
        svg = (files / f"{kind}_features.svg").read_text(encoding="utf-8")
        for name in getattr(graph, f"{kind}_feature_names"):
            assert f">{name}" in svg, name
    weights = store.load("weights").value("class_weights")
    assert f"{weights['1']:.6g}" in html and "smote" in html
    assert "recorded by the steps" in html  # the runner records each step's seconds
    for step in ("data_loaded", "node_features", "edge_features", "normalized", "imbalanced", "weights",
                 "graph_created"):
        assert f"<td>{step}</td>" in html


def test_the_report_is_self_contained_and_its_figures_lie_beside_it(tiny_report):
    html = tiny_report.read_text(encoding="utf-8")
    parsed = _parse(html)
    assert len(parsed.srcs) == len(FIGURES)
    assert all(s.startswith("data:image/png;base64,") for s in parsed.srcs)
    assert not re.search(r"""(src|href)=["']?(https?:)?//""", html), "nothing is fetched from elsewhere"
    files = files_dir_of(tiny_report)
    assert files == tiny_report.with_name("report_files")
    for key in FIGURES:
        png, svg = files / f"{key}.png", files / f"{key}.svg"
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert b"<svg" in svg.read_bytes()[:2000]
        assert f"report_files/{key}.png" in parsed.links and f"report_files/{key}.svg" in parsed.links
    import base64

    embedded = base64.b64decode(parsed.srcs[0].split(",", 1)[1])
    assert embedded == (files / f"{FIGURES[0]}.png").read_bytes()


def test_every_string_from_the_data_is_escaped(tiny_run):
    from amlgraph.report import _html
    from amlgraph.report._data import collect

    data = collect(tiny_run[1])
    evil = '<script>alert("x")</script>'
    data.node_features.names[0] = evil
    data.typologies = [(evil, 1, 2)]
    data.summary.append((evil, evil))
    data.notes.append(evil)
    data.checkpoint_dir = evil
    images = {k: {"png": b"png", "svg": b"svg"} for k in FIGURES}
    html = _html.page(data, images, '"><img src=x>_files')
    assert "<script>" not in html and "<img src=x>" not in html
    assert html.count("&lt;script&gt;") >= 4


@pytest.mark.slow
def test_the_report_reads_nothing_outside_the_checkpoint_directory(tmp_path):
    # A run of its own whose inputs are then removed: a report that touched them would fail. The
    # build runs in a child process that audits every file Python opens or lists.
    data, ckpt = finished_run(tmp_path / "run")
    shutil.rmtree(data)
    out = tmp_path / "out" / "report.html"
    script = textwrap.dedent(f"""
        import json, os, sys
        seen = []
        def hook(event, args):
            if event in ("open", "os.listdir", "os.scandir") and args and isinstance(args[0], (str, bytes, os.PathLike)):
                seen.append(os.path.abspath(os.fsdecode(args[0])))
        sys.addaudithook(hook)
        from amlgraph.report import build_report
        build_report({str(ckpt)!r}, {str(out)!r})
        sys.stdout.write(json.dumps(seen))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    seen = [Path(p) for p in json.loads(proc.stdout)]
    root = tmp_path.resolve()
    mine = [p for p in seen if p.resolve() == root or root in p.resolve().parents]
    allowed = (ckpt.resolve(), out.parent.resolve())
    outside = [p for p in mine if not any(a == p.resolve() or a in p.resolve().parents for a in allowed)]
    assert not outside, f"the report opened files outside the checkpoint directory: {outside[:5]}"
    assert any(p.suffix == ".npy" for p in seen), "the audit saw the arrays being read"
    assert out.is_file()


@pytest.mark.slow
def test_a_run_without_patterns_and_with_undersampling(tmp_path):
    """No Patterns file, undersampling, and the optional pattern_features step, which the
    timings and the sizes list like the seven."""
    _, ckpt = finished_run(tmp_path / "run", patterns=False, strategy="random_under",
                           patterns_step={"enabled": True, "families": ["fan", "degree"]})
    out = build_report(ckpt, tmp_path / "r.html")
    html = out.read_text(encoding="utf-8")
    assert "No laundering patterns" in html and "Laundering typologies" not in html
    assert "training, after (random_under)" in html
    from amlgraph.report._data import collect
    from amlgraph.runner import load_graph
    from amlgraph.store import CheckpointStore

    data = collect(ckpt)
    assert "pattern_features" in [r["step"] for r in data.timings["steps"]]
    assert "pattern_features" in [r["step"] for r in data.sizes]
    store = CheckpointStore(ckpt, create=False)
    graph = load_graph(ckpt)
    y, split = graph.y, graph.split
    keep = store.load("imbalanced").array("keep_index")
    kept = np.bincount(y[split == 0][keep], minlength=2)
    assert f"<td>training, after (random_under)</td><td class=\"n\">{kept[0]:,}</td>" in html


def test_the_feature_sample_is_deterministic_and_capped():
    from amlgraph.report._data import sample_rows

    labels = (np.arange(10_000) % 7 == 0).astype(np.int8)
    a0, a1 = sample_rows(labels, 500, seed=3)
    b0, b1 = sample_rows(labels, 500, seed=3)
    assert np.array_equal(a0, b0) and np.array_equal(a1, b1)
    assert len(a0) == len(a1) == 500 and np.all(np.diff(a0) > 0)
    assert np.all(labels[a0] == 0) and np.all(labels[a1] == 1)
    c0, c1 = sample_rows(labels, 10_000)
    assert len(c0) + len(c1) == 10_000


def test_the_report_refuses_a_path_inside_the_checkpoint_directory(tiny_run):
    with pytest.raises(ConfigError, match="outside the checkpoint directory"):
        build_report(tiny_run[1], tiny_run[1] / "report.html")


def test_a_directory_without_a_finished_run_is_a_clear_error(tmp_path):
    with pytest.raises(CheckpointError, match="no such checkpoint directory"):
        build_report(tmp_path / "nowhere", tmp_path / "r.html")
    from amlgraph.store import CheckpointStore

    CheckpointStore(tmp_path / "empty")
    with pytest.raises(CheckpointError, match="no valid 'data_loaded' checkpoint"):
        build_report(tmp_path / "empty", tmp_path / "r.html")


@pytest.mark.slow
def test_the_report_command_and_run_report(tiny_run, tmp_path):
    data, ckpt = tiny_run
    out = tmp_path / "cli" / "r.html"
    proc = subprocess.run(amlgraph_cmd(*["report", str(ckpt), "--out", str(out)]), capture_output=True,
                          text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    assert f"Report: {out}" in proc.stdout and out.is_file()
    bad = subprocess.run(amlgraph_cmd(*["report", str(ckpt), "--out", str(ckpt / "r.html")]),
                         capture_output=True, text=True, timeout=300)
    assert bad.returncode == 2 and "outside the checkpoint directory" in bad.stderr
    # `run --report`: a finished run loads its graph, then writes the report beside the checkpoints.
    copy = tmp_path / "ck"
    shutil.copytree(ckpt, copy)
    run = subprocess.run(amlgraph_cmd(*["run", str(data), "--checkpoint-dir", str(copy), "--report"]),
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert (tmp_path / "report.html").is_file() and f"Report: {tmp_path / 'report.html'}" in run.stdout
