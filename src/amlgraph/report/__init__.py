"""The run report: one self-contained HTML page describing a finished run, read from its checkpoints.

Public surface: :func:`build_report`. The page holds the data set summary (rows, accounts,
laundering rate, typologies), the temporal split, the class balance before and after resampling
with the class weights, step and chunk timings, degree distributions, every node and edge
feature's distribution by class, and the checkpoint sizes. Figures are embedded as base64 PNG and
also written as PNG and SVG files into a folder beside the page (``report.html`` ->
``report_files/``). Nothing is recomputed and no input file is read: only the checkpoint
directory. See docs/REPORT.md.
"""
from __future__ import annotations

import time
from pathlib import Path

from amlgraph.errors import ConfigError

__all__ = ["build_report", "files_dir_of"]


def files_dir_of(out_path: str | Path) -> Path:
    """The folder of a report's figure files: ``<stem>_files`` beside the page."""
    out_path = Path(out_path)
    return out_path.with_name(out_path.stem + "_files")


def build_report(checkpoint_dir: str | Path, out_path: str | Path, *, sample: int = 200_000,
                 seed: int = 0) -> Path:
    """Write the HTML report of the finished run in ``checkpoint_dir``.

    Args:
        checkpoint_dir: the run's checkpoint directory (a ``graph_created`` checkpoint is needed).
        out_path: the HTML file to write (replaced when present); its figures go to
            ``<stem>_files/`` beside it. Must lie outside the checkpoint directory.
        sample: at most this many rows per class enter each feature histogram (a deterministic
            sample; all rows when there are fewer).
        seed: seed of that sample.

    Returns:
        The path of the written HTML file.

    Raises:
        CheckpointError: no finished run in ``checkpoint_dir``.
        ConfigError: ``out_path`` inside the checkpoint directory, or ``sample`` < 1.
    """
    from amlgraph.report import _html, _plots
    from amlgraph.report._data import collect

    start = time.perf_counter()
    if sample < 1:
        raise ConfigError(f"sample must be >= 1 (got {sample})")
    out_path = Path(out_path)
    from amlgraph.store import is_url

    ck = None if is_url(checkpoint_dir) else Path(checkpoint_dir).resolve()
    target = out_path.resolve()
    if ck is not None and (target == ck or ck in target.parents):
        raise ConfigError(f"write the report outside the checkpoint directory {ck} (got {out_path}): "
                          "the store owns every entry of its directory")
    data = collect(checkpoint_dir, sample=sample, seed=seed)
    figures = {
        "temporal": lambda: _plots.temporal(data.temporal),
        "class_balance": lambda: _plots.class_balance(data.balance),
        "timings": lambda: _plots.timings(data.timings),
        "degrees": lambda: _plots.degrees(data.degrees),
        "node_features": lambda: _plots.histograms(data.node_features, "Node features: laundering vs not"),
        "edge_features": lambda: _plots.histograms(data.edge_features, "Edge features: laundering vs not"),
        "sizes": lambda: _plots.sizes(data.sizes),
    }
    images = {key: _plots.render(make()) for key, make in figures.items()}
    files_dir = files_dir_of(out_path)
    files_dir.mkdir(parents=True, exist_ok=True)
    for key, rendered in images.items():
        for fmt, blob in rendered.items():
            _write(files_dir / f"{key}.{fmt}", blob)
    text = _html.page(data, images, files_dir.name, seconds=time.perf_counter() - start)
    _write(out_path, text.encode("utf-8"))
    return out_path


def _write(path: Path, blob: bytes) -> None:
    """Replace ``path`` atomically (``amlgraph._atomic``): a reader sees the old file or the new one."""
    from amlgraph._atomic import atomic_file

    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_file(path) as f:
        f.write(blob)
