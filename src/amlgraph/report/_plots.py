"""The report's figures, drawn with matplotlib's object API on the Agg canvas.

No ``pyplot``: figures are ``matplotlib.figure.Figure`` objects rendered straight to PNG and SVG
bytes, so building a report never changes the backend or the global figure state of a notebook
that calls it. matplotlib is imported inside the functions (``import amlgraph`` stays fast).
"""
from __future__ import annotations

import datetime as _dt
import io
from typing import Any

import numpy as np

from amlgraph.schema import SPLIT_NAMES

CLASS_COLORS = ("#4C72B0", "#C44E52")  # not laundering, laundering
CLASS_LABELS = ("not laundering", "laundering")
SPLIT_COLORS = ("#55A868", "#DD8452", "#8172B3")
DPI = 100


def _figure(width: float, height: float, layout: str | None = "constrained"):
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=DPI, layout=layout)


def render(fig) -> dict[str, bytes]:
    """The figure as PNG and SVG bytes (SVG text kept as text, no timestamps).

    The layout is solved while the PNG is drawn and then frozen, so that the SVG reuses it
    instead of solving it again.
    """
    import matplotlib

    out = {}
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "amlgraph-report"}):
        for fmt, meta in (("png", {"Software": None}), ("svg", {"Date": None})):
            buf = io.BytesIO()
            fig.savefig(buf, format=fmt, dpi=DPI, metadata=meta)
            out[fmt] = buf.getvalue()
            fig.set_layout_engine("none")
    return out


def _plain_log(axis) -> None:
    """Plain major tick labels on a log axis (1,000 and 1e-03, not 10^3: no mathtext to lay out)
    and no minor ticks."""
    from matplotlib.ticker import FuncFormatter, NullLocator

    axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 1 else f"{v:.0e}"))
    axis.set_minor_locator(NullLocator())  # dozens of minor ticks per decade cost more than the data


def _day_label(epoch_s: int, unit: int) -> str:
    t = _dt.datetime.fromtimestamp(int(epoch_s), _dt.timezone.utc)
    return t.strftime("%m-%d" if unit >= 86_400 else "%m-%d %H:%M")


def temporal(t: dict[str, Any]):
    """Rows and laundering rows per time bucket, coloured by split, with the two boundaries."""
    fig = _figure(10, 5.2)
    ax_rows, ax_bad = fig.subplots(2, 1, sharex=True)
    x = np.arange(len(t["buckets"]))
    colors = [SPLIT_COLORS[int(s)] for s in t["split"]]
    ax_rows.bar(x, t["rows"], color=colors, width=0.85)
    ax_bad.bar(x, t["laundering"], color=colors, width=0.85)
    unit = t["unit"]
    name = {86_400: "day", 3_600: "hour", 60: "minute"}.get(unit, f"{unit} s")
    ax_rows.set_ylabel(f"transactions per {name}")
    ax_bad.set_ylabel(f"laundering per {name}")
    for b, label in zip(t["boundaries"], ("train | val", "val | test")):
        pos = (b // unit) - int(t["buckets"][0]) - 0.5 if len(x) else 0
        for ax in (ax_rows, ax_bad):
            ax.axvline(pos, color="black", linestyle="--", linewidth=1)
        ax_rows.annotate(label, (pos, 1.0), xycoords=("data", "axes fraction"), xytext=(3, -12),
                         textcoords="offset points", fontsize=8)
    step = max(1, len(x) // 16)
    ax_bad.set_xticks(x[::step])
    ax_bad.set_xticklabels([_day_label(s, unit) for s in t["starts"][::step]], rotation=45, ha="right",
                           fontsize=8)
    from matplotlib.patches import Patch

    ax_rows.legend(handles=[Patch(color=c, label=n) for c, n in zip(SPLIT_COLORS, SPLIT_NAMES)],
                   loc="upper right", fontsize=8)
    ax_rows.set_title("Temporal split: rows and laundering per " + name)
    return fig


def class_balance(b: dict[str, Any]):
    """Edges per split and class; training rows before and after resampling (log scale)."""
    fig = _figure(10, 3.8)
    ax_split, ax_train = fig.subplots(1, 2)
    per = np.asarray(b["per_split"])
    x = np.arange(len(SPLIT_NAMES))
    for c in (0, 1):
        bars = ax_split.bar(x + (c - 0.5) * 0.38, np.maximum(per[:, c], 0), width=0.38,
                            color=CLASS_COLORS[c], label=CLASS_LABELS[c])
        ax_split.bar_label(bars, labels=[f"{int(v):,}" for v in per[:, c]], fontsize=7)
    ax_split.set_xticks(x)
    ax_split.set_xticklabels(SPLIT_NAMES)
    ax_split.set_yscale("log")
    _plain_log(ax_split.yaxis)
    ax_split.set_ylabel("edges")
    ax_split.set_title("Edges per split and class")
    ax_split.legend(fontsize=8)
    pair = np.array([b["train_before"], b["train_after"]], dtype=np.int64)
    x2 = np.arange(2)
    for c in (0, 1):
        bars = ax_train.bar(x2 + (c - 0.5) * 0.38, pair[:, c], width=0.38, color=CLASS_COLORS[c],
                            label=CLASS_LABELS[c])
        ax_train.bar_label(bars, labels=[f"{int(v):,}" for v in pair[:, c]], fontsize=7)
    ax_train.set_xticks(x2)
    ax_train.set_xticklabels(["training, before", f"training, after ({b['strategy']})"])
    ax_train.set_yscale("log")
    _plain_log(ax_train.yaxis)
    ax_train.set_title("Training rows before and after rebalancing")
    return fig


def timings(t: dict[str, Any]):
    """Each step's span (bars) and each checkpoint's commit (ticks), seconds from the first."""
    steps = list(t["steps"])
    labels = []
    for r in steps:  # each step, then its own phases (e.g. data_loaded_read) under it
        labels.append(r["step"])
        labels += [p["phase"] for p in t["phases"]
                   if p["phase"] != r["step"] and p["phase"].startswith(r["step"] + "_")]
    labels += [p["phase"] for p in t["phases"] if p["phase"] not in labels]
    fig = _figure(10, 0.9 + 0.32 * max(len(labels), 1))
    ax = fig.subplots()
    row = {name: i for i, name in enumerate(labels)}
    for r in steps:
        i = row[r["step"]]
        if r["seconds"] is not None:
            ax.barh(i, r["seconds"], left=r["start"], color="#9DB4D3", height=0.6)
            text = f"{r['seconds']:.1f} s" if r["seconds"] >= 10 else f"{r['seconds']:.2f} s"
            ax.annotate(text, (r["end"], i), xytext=(4, -3), textcoords="offset points", fontsize=7)
    for e in t["events"]:
        name = e["phase"] if e["phase"] in row else e["step"]
        if name in row:
            ax.plot([e["t"]], [row[name]], marker="|", color="#333333", markersize=9)
    end = max([r["end"] for r in steps] + [e["t"] for e in t["events"]] + [1e-3])
    ax.set_xlim(-0.02 * end, 1.08 * end)  # commits at 0 stay clear of the axis
    ax.set_yticks(range(len(labels)))
    ax.set_yticklabels(labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("seconds since the first step's start (checkpoint commits)")
    ax.set_title("Steps (bars) and checkpoint commits (ticks)")
    return fig


def degrees(d: dict[str, Any]):
    """Log-log degree distributions, laundering accounts vs the others."""
    fig = _figure(10, 3.8)
    axes = fig.subplots(1, 2)
    for ax, kind in zip(axes, ("in", "out")):
        for c in (0, 1):
            g = d[kind][c]
            keep = g["degree"] > 0
            if g["nodes"] and keep.any():
                ax.plot(g["degree"][keep], g["count"][keep] / g["nodes"], marker="o", linestyle="none",
                        markersize=3, alpha=0.75, color=CLASS_COLORS[c],
                        label=f"{CLASS_LABELS[c]} ({g['nodes']:,} accounts)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        _plain_log(ax.xaxis)
        _plain_log(ax.yaxis)
        ax.set_xlabel(f"{kind}-degree")
        ax.set_ylabel("fraction of accounts")
        ax.set_title(f"{kind}-degree distribution")
        ax.legend(fontsize=8)
    return fig


def histograms(h, title: str):
    """One small panel per feature: the fraction of each class's rows in each bin.

    Panels carry three fixed x ticks and no y ticks (the shapes are compared, not read off), and
    the grid is laid out by hand: tick location and layout solving dominate the drawing time of
    a 35-panel figure otherwise.
    """
    from matplotlib.ticker import NullLocator

    n = len(h.names)
    cols = 6 if n > 24 else 5 if n > 12 else 4
    rows = max(1, -(-n // cols))
    fig = _figure(12, 1.5 * rows + 0.9, layout=None)
    fig.subplots_adjust(left=0.02, right=0.99, bottom=0.3 / (1.5 * rows + 0.9) + 0.02,
                        top=1 - 0.7 / (1.5 * rows + 0.9), wspace=0.08, hspace=0.55)
    axes = np.atleast_1d(fig.subplots(rows, cols)).ravel()
    for j, ax in enumerate(axes):
        if j >= n:
            ax.set_axis_off()
            continue
        e = h.edges[j]
        for c in (0, 1):
            ax.stairs(h.fractions[j][c], e, color=CLASS_COLORS[c], linewidth=1.2,
                      label=CLASS_LABELS[c] if j == 0 else None)
        ticks = [e[0], (e[0] + e[-1]) / 2, e[-1]]
        ax.set_xticks(ticks)
        labels = ax.set_xticklabels([f"{v:.3g}" for v in ticks])
        labels[0].set_horizontalalignment("left")  # inside the panel, clear of its neighbours
        labels[-1].set_horizontalalignment("right")
        ax.set_xlim(e[0], e[-1])
        ax.yaxis.set_major_locator(NullLocator())
        ax.yaxis.set_minor_locator(NullLocator())
        ax.set_title(h.names[j] + (" *" if h.clipped[j] else ""), fontsize=8)
        ax.tick_params(labelsize=6, length=2, pad=1)
    if n:
        fig.legend(loc="upper right", fontsize=8, ncols=2, frameon=False)
    fig.suptitle(title, fontsize=10, x=0.02, ha="left")
    return fig


def sizes(s: list[dict[str, Any]]):
    """Bytes on disk per step: the step checkpoint and its chunk checkpoints."""
    fig = _figure(10, 0.9 + 0.35 * max(len(s), 1))
    ax = fig.subplots()
    y = np.arange(len(s))
    main = np.array([r["checkpoint"] for r in s], dtype=np.float64) / 1e6
    chunks = np.array([r["chunks"] for r in s], dtype=np.float64) / 1e6
    ax.barh(y, main, color="#4C72B0", label="step checkpoint")
    ax.barh(y, chunks, left=main, color="#9DB4D3", label="chunk checkpoints")
    for i, r in enumerate(s):
        ax.annotate(f"{r['total'] / 1e6:,.1f} MB", (main[i] + chunks[i], i), xytext=(4, -3),
                    textcoords="offset points", fontsize=7)
    ax.set_yticks(y)
    ax.set_yticklabels([r["step"] for r in s], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("MB on disk")
    ax.set_title("Checkpoint sizes per step")
    fig.legend(loc="outside lower center", fontsize=8, ncols=2, frameon=False)
    ax.margins(x=0.12)
    return fig
