"""The report page: one self-contained HTML file (figures embedded as base64 PNG).

Every string that comes from the data (feature names, typologies, paths, vocabularies) goes
through :func:`html.escape`; nothing on the page is fetched from anywhere.
"""
from __future__ import annotations

import base64
import datetime as _dt
from html import escape
from typing import Any
from urllib.parse import quote

import numpy as np

from amlgraph.schema import SPLIT_NAMES

SECTIONS = (
    ("summary", "Data set"),
    ("temporal-split", "Temporal split"),
    ("class-balance", "Class balance and weights"),
    ("timings", "Step and chunk timings"),
    ("degrees", "Degree distributions"),
    ("node-features", "Node features by class"),
    ("edge-features", "Edge features by class"),
    ("checkpoint-sizes", "Checkpoint sizes"),
)

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1240px;
padding:0 1rem;color:#222;line-height:1.4}
h1{margin-bottom:.2rem}h2{border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2.2rem}
table{border-collapse:collapse;margin:.6rem 0;font-size:.9rem}
th,td{border:1px solid #ddd;padding:.25rem .6rem;text-align:left}td.n{text-align:right;font-variant-numeric:tabular-nums}
th{background:#f4f4f4}figure{margin:.8rem 0}img{max-width:100%;height:auto;border:1px solid #eee}
figcaption,.note{font-size:.85rem;color:#555}nav a{margin-right:.8rem}.meta{color:#666;font-size:.9rem}
"""


def _table(header: list[str], rows: list[list[Any]], numeric: set[int] | None = None) -> str:
    numeric = numeric or set()
    head = "".join(f"<th>{escape(str(h))}</th>" for h in header)
    body = []
    for row in rows:
        cells = "".join(f'<td class="n">{escape(str(v))}</td>' if i in numeric else f"<td>{escape(str(v))}</td>"
                        for i, v in enumerate(row))
        body.append(f"<tr>{cells}</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _figure(key: str, images: dict[str, dict[str, bytes]], files_dir: str, alt: str, caption: str = "") -> str:
    png = base64.b64encode(images[key]["png"]).decode("ascii")
    links = " ".join(f'<a href="{escape(quote(files_dir))}/{key}.{fmt}">{fmt.upper()}</a>'
                     for fmt in ("png", "svg"))
    return (f'<figure><img src="data:image/png;base64,{png}" alt="{escape(alt)}">'
            f"<figcaption>{escape(caption)} {links}</figcaption></figure>")


def _n(v: Any) -> str:
    return f"{int(v):,}"


def _s(v: float | None) -> str:
    return "-" if v is None else f"{v:,.2f}"


def page(data, images: dict[str, dict[str, bytes]], files_dir: str, *, seconds: float | None = None) -> str:
    """The HTML text of the report."""
    from amlgraph import __version__

    now = _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    parts = ['<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">',
             '<meta name="viewport" content="width=device-width, initial-scale=1">',
             "<title>amlgraph report</title>", f"<style>{_CSS}</style></head><body>",
             "<h1>amlgraph report</h1>",
             f'<p class="meta">Checkpoint directory: <code>{escape(data.checkpoint_dir)}</code> · '
             f"amlgraph {escape(__version__)} · built {escape(now)}</p>",
             "<nav>" + "".join(f'<a href="#{k}">{escape(t)}</a>' for k, t in SECTIONS) + "</nav>"]
    parts += _summary(data)
    parts += _temporal(data, images, files_dir)
    parts += _balance(data, images, files_dir)
    parts += _timings(data, images, files_dir)
    parts += _degrees(data, images, files_dir)
    parts += _features(data.node_features, "node-features", "Node features by class", "accounts",
                       images, files_dir)
    parts += _features(data.edge_features, "edge-features", "Edge features by class", "transactions",
                       images, files_dir)
    parts += _sizes(data, images, files_dir)
    if data.notes:
        parts.append('<h2 id="notes">Notes</h2><ul>' + "".join(f"<li>{escape(n)}</li>" for n in data.notes)
                     + "</ul>")
    if seconds is not None:
        parts.append(f'<p class="meta">Report built in {seconds:.1f} s from the checkpoints alone.</p>')
    parts.append("</body></html>")
    return "\n".join(parts)


def _section(key: str) -> str:
    return f'<h2 id="{key}">{escape(dict(SECTIONS)[key])}</h2>'


def _summary(d) -> list[str]:
    out = [_section("summary"), _table(["", "value"], [list(r) for r in d.summary])]
    if d.typologies:
        rows = [[t, _n(a), _n(r)] for t, a, r in d.typologies]
        out += ["<h3>Laundering typologies (from the Patterns file)</h3>",
                _table(["typology", "attempts", "transactions matched"], rows, {1, 2})]
    else:
        out.append('<p class="note">No laundering patterns: the run was given no Patterns file '
                   "(or none of its lines matched a transaction).</p>")
    return out


def _temporal(d, images, files_dir) -> list[str]:
    t = d.temporal
    unit = {86_400: "day", 3_600: "hour", 60: "minute"}.get(t["unit"], f"{t['unit']} s")
    b1, b2 = (_dt.datetime.fromtimestamp(b, _dt.timezone.utc).strftime("%Y-%m-%d %H:%M") for b in t["boundaries"])
    per = t["per_split"]
    rows = [[SPLIT_NAMES[i], _n(per[i].sum()), _n(per[i, 1]),
             f"{100.0 * per[i, 1] / per[i].sum():.3f} %" if per[i].sum() else "-"] for i in range(len(SPLIT_NAMES))]
    return [_section("temporal-split"),
            f"<p>Rows are bucketed by {escape(unit)}; validation starts at {escape(b1)} and test at "
            f"{escape(b2)} (UTC, naive file time).</p>",
            _figure("temporal", images, files_dir, f"Transactions and laundering per {unit} with the split boundaries",
                    "Bars coloured by split; dashed lines: split boundaries."),
            _table(["split", "edges", "laundering", "laundering rate"], rows, {1, 2, 3})]


def _balance(d, images, files_dir) -> list[str]:
    b = d.balance
    before, after = b["train_before"], b["train_after"]
    rows = [["training, before", _n(before[0]), _n(before[1]),
             f"{before[1] / before[0]:.5f}" if before[0] else "-"],
            [f"training, after ({b['strategy']})", _n(after[0]), _n(after[1]),
             f"{after[1] / after[0]:.5f}" if after[0] else "-"]]
    w = b["weights"]
    return [_section("class-balance"),
            _figure("class_balance", images, files_dir, "Edges per split and class, training before and after rebalancing",
                    "Log scale."),
            _table(["rows", "not laundering", "laundering", "minority / majority"], rows, {1, 2, 3}),
            f"<p>Synthetic training rows added: {_n(b['synthetic'])}.</p>",
            "<h3>Class weights (loss weights from the training labels)</h3>",
            _table(["class", "weight"], [[("0 (not laundering)" if k == 0 else "1 (laundering)"
                                          if k == 1 else k), f"{v:.6g}"] for k, v in sorted(w.items())], {1})]


def _timings(d, images, files_dir) -> list[str]:
    t = d.timings
    rows = [[r["step"], _s(r["start"]), _s(r["end"]), _s(r["seconds"]), _n(r["chunks"]), r["note"]]
            for r in t["steps"]]
    phases = [[p["phase"], _n(p["chunks"]), _s(p["first"]), _s(p["last"]), _s(p["median_gap"])]
              for p in t["phases"]]
    out = [_section("timings"), f'<p class="note">Timings are {escape(t["method"])}.</p>',
           _figure("timings", images, files_dir, "Step spans and checkpoint commits over time"),
           _table(["step", "start (s)", "end (s)", "seconds", "chunk checkpoints", "how"], rows, {1, 2, 3, 4})]
    if phases:
        out += ["<h3>Chunk checkpoints</h3>",
                '<p class="note">Commit times of each phase\'s chunks (seconds from the first step\'s '
                "start); the median gap between consecutive commits is the phase's throughput per chunk "
                "when several chunks run at once, not one chunk's duration.</p>",
                _table(["phase", "chunks", "first commit (s)", "last commit (s)", "median gap (s)"], phases,
                       {1, 2, 3, 4})]
    if t["outside"]:
        out.append(f'<p class="note">{_n(t["outside"])} checkpoints were committed outside the timed '
                   "window (by earlier runs, reused).</p>")
    return out


def _degrees(d, images, files_dir) -> list[str]:
    rows = []
    for kind in ("in", "out"):
        for c, label in ((0, "not laundering"), (1, "laundering")):
            g = d.degrees[kind][c]
            rows.append([f"{kind}-degree", label, _n(g["nodes"]), f"{g['mean']:.2f}", f"{g['median']:.0f}", _n(g["max"])])
    return [_section("degrees"),
            _figure("degrees", images, files_dir, "Log-log in- and out-degree distributions by class",
                    "Accounts that send or receive a laundering transaction vs the others; degree 0 omitted."),
            _table(["degree", "accounts", "count", "mean", "median", "max"], rows, {2, 3, 4, 5})]


def _features(h, key: str, title: str, what: str, images, files_dir) -> list[str]:
    sampled = h.rows != h.totals
    how = (f"a deterministic sample of {h.rows[0]:,} of {h.totals[0]:,} non-laundering and "
           f"{h.rows[1]:,} of {h.totals[1]:,} laundering {what}" if sampled else
           f"all {h.totals[0]:,} non-laundering and {h.totals[1]:,} laundering {what}")
    return [_section(key),
            f"<p>Normalised values (as stored in the graph); each line is the fraction of a class's "
            f"rows per bin, from {escape(how)}. Bins span the 0.5-99.5 percentile range; in panels "
            f"marked * the outer bins also hold the values beyond it.</p>",
            _figure(key.replace("-", "_"), images, files_dir, title)]


def _sizes(d, images, files_dir) -> list[str]:
    rows = [[r["step"], f"{r['checkpoint'] / 1e6:,.2f}", _n(r["count"]), f"{r['chunks'] / 1e6:,.2f}",
             f"{r['total'] / 1e6:,.2f}"] for r in d.sizes]
    total = float(np.sum([r["total"] for r in d.sizes])) if d.sizes else 0.0
    rows.append(["total", "", "", "", f"{total / 1e6:,.2f}"])
    return [_section("checkpoint-sizes"),
            _figure("sizes", images, files_dir, "Checkpoint sizes per step"),
            _table(["step", "step checkpoint (MB)", "chunk checkpoints", "chunks (MB)", "total (MB)"], rows,
                   {1, 2, 3, 4})]
