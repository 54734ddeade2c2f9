"""What the report shows, read from a checkpoint directory: never recomputed, never the inputs.

Every number comes from the checkpoints of a finished run: the ``data_loaded`` values (summary,
day buckets, split boundaries) and its ``patterns`` table, the ``graph_created`` arrays
(memory-mapped: labels, split, timestamps, edge_index, the feature matrices), the ``imbalanced``
and ``weights`` checkpoints, and every checkpoint's manifest (creation time, writer, size).
Whole-array passes are single vectorised NumPy calls (``bincount``); feature histograms read a
deterministic sample of rows when there are more than ``sample`` of a class.
"""
from __future__ import annotations

import datetime as _dt
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from amlgraph.errors import CheckpointError
from amlgraph.schema import ALL_STEPS, SPLIT_NAMES, STEPS, parse_chunk_name

GRAPH = "graph_created"
#: Manifest metadata fields that would record a step's compute time, if a run wrote one.
RECORDED_DURATION = ("compute_s", "duration_s", "elapsed_s", "seconds")
#: ``gen-<time>-<pid>-<host>-<rand>`` (docs/CHECKPOINTS.md): the writer of a checkpoint.
_WRITER_RE = re.compile(r"^gen-[0-9a-f]+-(\d+)-([0-9a-f]{8})-")
_BINS = 40


@dataclass
class Histograms:
    """Per-feature histograms of two classes on shared bins."""

    names: list[str]
    edges: list[np.ndarray]          # bin edges per feature (len bins + 1)
    fractions: list[tuple[np.ndarray, np.ndarray]]  # (not laundering, laundering) per feature
    rows: tuple[int, int]            # rows of each class the histograms are made of
    totals: tuple[int, int]          # rows of each class in the checkpoint
    clipped: list[bool]              # whether the outer bins collect values beyond the 0.5/99.5 % range


@dataclass
class ReportData:
    """Everything the page and its figures show."""

    checkpoint_dir: str
    summary: list[tuple[str, str]]
    typologies: list[tuple[str, int, int]] | None  # (typology, attempts, rows) or None
    temporal: dict[str, Any]
    balance: dict[str, Any]
    timings: dict[str, Any]
    degrees: dict[str, Any]
    node_features: Histograms
    edge_features: Histograms
    sizes: list[dict[str, Any]]
    notes: list[str] = field(default_factory=list)


def collect(checkpoint_dir: str | Path, *, sample: int = 200_000, seed: int = 0) -> ReportData:
    """Read what the report needs from a finished run's checkpoint directory.

    Args:
        checkpoint_dir: the run's checkpoint directory.
        sample: at most this many rows of each class enter a feature histogram (all laundering
            rows of a normal data set); the sample is the same for the same data and ``seed``.
        seed: seed of the row sample.

    Raises:
        CheckpointError: no store there, or no valid ``data_loaded`` / ``graph_created``.
    """
    from amlgraph.store import is_url, open_store

    root = checkpoint_dir if is_url(checkpoint_dir) else Path(checkpoint_dir)
    if isinstance(root, Path) and not root.is_dir():
        raise CheckpointError(f"{root}: no such checkpoint directory; run `amlgraph run DATA "
                              f"--checkpoint-dir {root}` first")
    store = open_store(root, create=False)
    manifests = store.manifests()
    for need in ("data_loaded", GRAPH):
        if need not in manifests:
            present = [n for n in manifests if n in STEPS]
            raise CheckpointError(f"{root}: no valid {need!r} checkpoint (found: "
                                  f"{', '.join(present) or 'none'}); the report reads a finished run: "
                                  f"`amlgraph run DATA --checkpoint-dir {root}`")
    data = store.load("data_loaded")
    graph = _GraphArrays(store, store.load(GRAPH), str(root))
    y = graph.array("y")
    split = graph.array("split")
    notes: list[str] = []

    per_split = np.bincount(split.astype(np.int64) * 2 + y, minlength=2 * len(SPLIT_NAMES))
    per_split = per_split.reshape(len(SPLIT_NAMES), 2)
    node_y = graph.array("node_y")
    summary = _summary(data, graph, per_split, node_y)
    typologies = _typologies(data)
    temporal = _temporal(data, graph, y, per_split)
    balance = _balance(store, manifests, graph, y, split, per_split, notes)
    timings = _timings(manifests)
    degrees = _degrees(graph.array("edge_index"), node_y)
    node_hist = _histograms(graph.array("x"), node_y, list(graph.value("node_feature_names")),
                            sample=sample, seed=seed)
    edge_hist = _histograms(graph.array("edge_attr"), y, list(graph.value("edge_feature_names")),
                            sample=sample, seed=seed)
    sizes = _sizes(store, manifests)
    return ReportData(checkpoint_dir=str(root), summary=summary, typologies=typologies,
                      temporal=temporal, balance=balance, timings=timings, degrees=degrees,
                      node_features=node_hist, edge_features=edge_hist, sizes=sizes, notes=notes)


class _GraphArrays:
    """The graph checkpoint as the report reads it: its values, and its arrays by name, from the
    checkpoint itself or, for a linked one, from the checkpoints it is read from."""

    def __init__(self, store, ckpt, where: str):
        from amlgraph.runner._graph import graph_of

        self.manifest, self.values, self._ckpt = ckpt.manifest, ckpt.values, ckpt
        self._graph = graph_of(store, ckpt, where=where)

    def value(self, name: str):
        return self._ckpt.value(name)

    def array(self, name: str):
        return getattr(self._graph, name)


# --- summary ----------------------------------------------------------------------------------------
def _summary(data, graph, per_split: np.ndarray, node_y: np.ndarray) -> list[tuple[str, str]]:
    s = data.value("summary")
    vocab = data.value("vocab")
    edges = int(per_split.sum())
    laundering = int(per_split[:, 1].sum())
    nodes = int(node_y.shape[0])
    ts = graph.array("timestamp")
    first, last = (int(ts.min()), int(ts.max())) if ts.size else (0, 0)
    rows = [
        ("Transactions (rows read)", f"{int(s.get('rows', edges)):,}"),
        ("Rows rejected (quarantined)", f"{int(s.get('bad_rows', 0)):,}"),
        ("Edges in the graph", f"{edges:,}"),
        ("Nodes (accounts)", f"{nodes:,}"),
        ("Laundering transactions", f"{laundering:,} ({_pct(laundering, edges)})"),
        ("Accounts touching laundering", f"{int(np.count_nonzero(node_y)):,} "
                                         f"({_pct(int(np.count_nonzero(node_y)), nodes)})"),
        ("Time span", f"{_day(first)} to {_day(last)}" if ts.size else "-"),
        ("Node features", str(len(graph.value("node_feature_names")))),
        ("Edge features", str(len(graph.value("edge_feature_names")))),
        ("Currencies", str(len(vocab.get("currencies", [])))),
        ("Payment formats", ", ".join(str(v) for v in vocab.get("payment_formats", []))),
        ("Banks", f"{len(vocab.get('banks', [])):,}"),
    ]
    return rows


def _typologies(data) -> list[tuple[str, int, int]] | None:
    if "patterns" not in data.tables:
        return None
    pat = data.table("patterns")
    if pat.height == 0:
        return None
    import polars as pl

    out = (pat.group_by("typology").agg(pl.col("attempt_id").n_unique().alias("attempts"),
                                        pl.len().alias("rows"))
           .sort(["attempts", "typology"], descending=[True, False]))
    return [(str(t), int(a), int(r)) for t, a, r in out.iter_rows()]


# --- temporal split ---------------------------------------------------------------------------------
def _temporal(data, graph, y: np.ndarray, per_split: np.ndarray) -> dict[str, Any]:
    unit = int(data.value("split_unit_s"))
    counts = {int(k): int(v) for k, v in data.value("bucket_counts").items()}
    b1, b2 = (int(b) // unit for b in data.value("boundaries"))
    ts = graph.array("timestamp")
    bad = np.flatnonzero(y)
    launder_buckets = ts[bad] // unit if bad.size else np.zeros(0, np.int64)
    keys = list(counts) + [int(launder_buckets.min()), int(launder_buckets.max())] if bad.size else list(counts)
    lo, hi = (min(keys), max(keys)) if keys else (0, -1)
    buckets = np.arange(lo, hi + 1, dtype=np.int64)
    rows = np.array([counts.get(int(b), 0) for b in buckets], dtype=np.int64)
    laundering = np.bincount(launder_buckets - lo, minlength=len(buckets)) if bad.size else \
        np.zeros(len(buckets), np.int64)
    split_of = np.where(buckets < b1, 0, np.where(buckets < b2, 1, 2))
    return {"unit": unit, "buckets": buckets, "starts": buckets * unit, "rows": rows,
            "laundering": laundering.astype(np.int64), "split": split_of,
            "boundaries": [b1 * unit, b2 * unit], "per_split": per_split}


# --- class balance ----------------------------------------------------------------------------------
def _balance(store, manifests, graph, y, split, per_split, notes: list[str]) -> dict[str, Any]:
    train = per_split[0].astype(np.int64)
    weights = {int(k): float(v) for k, v in graph.value("class_weights").items()}
    strategy, synthetic, after = "none", 0, train.copy()
    if "weights" in manifests:
        stored = store.load("weights").value("class_weights")
        weights = {int(k): float(v) for k, v in stored.items()}
    if "imbalanced" in manifests:
        imb = store.load("imbalanced")
        strategy = str(imb.value("strategy")) if "strategy" in imb.values else "?"
        if "y_synthetic" in imb.arrays:
            ys = imb.array("y_synthetic")
            add = np.bincount(ys.astype(np.int64), minlength=2)[:2]
            synthetic = int(ys.shape[0])
            after = train + add
        if "keep_index" in imb.arrays:
            keep = imb.array("keep_index")
            y_train = y[split == 0]
            if keep.size and int(keep.max()) < y_train.shape[0]:
                after = np.bincount(y_train[keep].astype(np.int64), minlength=2)[:2]
            else:
                notes.append("the undersampling indices do not fit the training rows; "
                             "the class balance after resampling is not shown")
    else:
        notes.append("no imbalanced checkpoint: the class balance after resampling is not shown")
    return {"per_split": per_split, "train_before": train, "train_after": after,
            "strategy": strategy, "synthetic": synthetic, "weights": weights}


# --- timings ----------------------------------------------------------------------------------------
def _time(manifest: dict) -> float:
    return _dt.datetime.fromisoformat(manifest["created"].replace("Z", "+00:00")).timestamp()


def _writer(manifest: dict) -> str | None:
    m = _WRITER_RE.match(str(manifest.get("generation", "")))
    return f"{m[1]}@{m[2]}" if m else None


def _recorded(manifest: dict) -> float | None:
    meta = manifest.get("metadata") or {}
    for k in RECORDED_DURATION:
        v = meta.get(k)
        if isinstance(v, (int, float)) and not isinstance(v, bool) and v >= 0:
            return float(v)
    return None


def _timings(manifests: dict[str, dict]) -> dict[str, Any]:
    """Step spans and checkpoint completion times.

    A manifest records when its checkpoint was committed (``created``) and, in its generation's
    name, the process that wrote it. Unless a step recorded its compute time, a step's duration
    is derived: from the commit of the step before it to its own commit, when one process wrote
    both (the same run); the first step's span starts at its first checkpoint's commit.
    """
    steps = [s for s in ALL_STEPS if s in manifests]  # the optional pattern_features step too
    times = {n: _time(m) for n, m in manifests.items()}
    rows: list[dict[str, Any]] = []
    derived = recorded_any = False
    prev: str | None = None
    for step in steps:
        m = manifests[step]
        own = [n for n, mm in manifests.items() if mm.get("step") == step]
        end = times[step]
        start, note = None, ""
        rec = _recorded(m)
        if rec is not None:
            start, note, recorded_any = end - rec, "recorded", True
        elif prev is None:
            start = min(times[n] for n in own)
            note = "from its first checkpoint's commit"
            derived = True
        elif _writer(m) is not None and _writer(m) == _writer(manifests[prev]) and times[prev] <= end:
            start, note = times[prev], "derived"
            derived = True
        else:
            note = "not derivable: written by another run than the step before it"
        rows.append({"step": step, "start": start, "end": end,
                     "seconds": None if start is None else end - start, "note": note,
                     "chunks": sum(1 for n in own if n != step)})
        prev = step
    # The window of the last run: the chain of steps ending with the last one, one writer.
    window = [r for r in rows if r["start"] is not None]
    t0 = min((r["start"] for r in window), default=min(times.values(), default=0.0))
    t_end = max((r["end"] for r in rows), default=t0)
    events = []
    for name, m in manifests.items():
        if times[name] < t0 - 1e-6 or times[name] > t_end + 1e-6:
            continue
        parsed = parse_chunk_name(name)
        phase = parsed[0] if parsed else name
        events.append({"name": name, "phase": phase, "step": m.get("step"), "t": times[name] - t0,
                       "chunk": parsed[1] if parsed else None})
    phases: dict[str, list[float]] = {}
    for e in events:
        if e["chunk"] is not None:
            phases.setdefault(e["phase"], []).append(e["t"])
    phase_rows = []
    for phase, ts in phases.items():
        ts.sort()
        gaps = np.diff(ts)
        phase_rows.append({"phase": phase, "chunks": len(ts), "first": ts[0], "last": ts[-1],
                           "median_gap": float(np.median(gaps)) if gaps.size else None})
    phase_rows.sort(key=lambda r: r["first"])
    outside = len(times) - len(events)
    for r in rows:
        for k in ("start", "end"):
            if r[k] is not None:
                r[k] -= t0
    method = ("recorded by the steps" if recorded_any and not derived else
              "derived from the checkpoint manifests' creation times (no compute duration is "
              "recorded); a step's span runs from the commit of the step before it to its own")
    return {"steps": rows, "events": sorted(events, key=lambda e: e["t"]), "phases": phase_rows,
            "method": method, "outside": outside}


# --- degrees ----------------------------------------------------------------------------------------
def _degrees(edge_index: np.ndarray, node_y: np.ndarray) -> dict[str, Any]:
    n = int(node_y.shape[0])
    out: dict[str, Any] = {}
    cls = node_y.astype(bool)
    for label, row in (("out", 0), ("in", 1)):
        deg = np.bincount(edge_index[row], minlength=n) if edge_index.shape[1] else np.zeros(n, np.int64)
        per_class = {}
        for c, mask in ((0, ~cls), (1, cls)):
            d = deg[mask]
            freq = np.bincount(d) if d.size else np.zeros(1, np.int64)
            ks = np.flatnonzero(freq)
            per_class[c] = {"degree": ks, "count": freq[ks], "nodes": int(d.size),
                            "mean": float(d.mean()) if d.size else 0.0,
                            "median": float(np.median(d)) if d.size else 0.0,
                            "max": int(d.max()) if d.size else 0}
        out[label] = per_class
    return out


# --- feature histograms -----------------------------------------------------------------------------
def sample_rows(labels: np.ndarray, cap: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Sorted row indices of each class (0, 1): all of them, or ``cap`` drawn without
    replacement by a generator seeded with ``seed`` (so the same data gives the same sample)."""
    rng = np.random.default_rng(seed)
    out = []
    for c in (0, 1):
        idx = np.flatnonzero(labels == c)
        if idx.size > cap:
            idx = np.sort(rng.choice(idx, size=cap, replace=False))
        out.append(idx)
    return out[0], out[1]


def _histograms(matrix: np.ndarray, labels: np.ndarray, names: list[str], *, sample: int,
                seed: int) -> Histograms:
    i0, i1 = sample_rows(labels, sample, seed)
    totals = (int(np.count_nonzero(labels == 0)), int(np.count_nonzero(labels == 1)))
    f = len(names)
    # One fancy-indexed read per class (rows sorted: the memory map is read front to back).
    parts = [np.asarray(matrix[i], dtype=np.float32) if i.size else np.zeros((0, f), np.float32)
             for i in (i0, i1)]
    finite = [np.isfinite(a) for a in parts]
    clean = all(ok.all() for ok in finite)  # normalised features are finite: skip the masking
    # Bin ranges from at most 50,000 evenly spaced rows of the sample (percentiles need a sort).
    both = np.concatenate(parts)
    probe = both[:: max(1, both.shape[0] // 50_000)].astype(np.float64)
    lo, hi = np.zeros(f), np.ones(f)
    for j in range(f):
        v = probe[:, j] if clean else probe[:, j][np.isfinite(probe[:, j])]
        if v.size:
            lo[j], hi[j] = np.percentile(v, [0.5, 99.5])
    if clean and both.shape[0]:
        vmin, vmax = both.min(axis=0).astype(np.float64), both.max(axis=0).astype(np.float64)
    else:
        vmin = np.where(np.concatenate(finite), both, np.inf).min(axis=0, initial=np.inf).astype(np.float64)
        vmax = np.where(np.concatenate(finite), both, -np.inf).max(axis=0, initial=-np.inf).astype(np.float64)
        empty = ~np.isfinite(vmin)
        vmin[empty], vmax[empty] = 0.0, 1.0
    del both
    narrow = ~(hi > lo)
    lo[narrow], hi[narrow] = vmin[narrow], vmax[narrow]
    narrow = ~(hi > lo)
    lo[narrow], hi[narrow] = lo[narrow] - 0.5, hi[narrow] + 0.5
    clipped = (vmin < lo) | (vmax > hi)
    # Equal-width bins: a value's bin is arithmetic, and one bincount counts every feature.
    scale = _BINS / (hi - lo)
    counts = []
    for a, ok in zip(parts, finite):
        b = (a if clean else np.where(ok, a, lo.astype(np.float32))) - lo.astype(np.float32)
        b *= scale.astype(np.float32)
        np.clip(b, 0, _BINS - 1, out=b)
        cell = b.astype(np.int64) + np.arange(f) * _BINS  # truncation = floor for values >= 0
        h = np.bincount(cell.ravel() if clean else cell[ok], minlength=f * _BINS)
        n = ok.sum(axis=0)
        counts.append(h.reshape(f, _BINS).astype(np.float64) / np.maximum(n, 1)[:, None])
    edges = [np.linspace(lo[j], hi[j], _BINS + 1) for j in range(f)]
    fractions = [(counts[0][j], counts[1][j]) for j in range(f)]
    return Histograms(names=names, edges=edges, fractions=fractions,
                      rows=(int(i0.size), int(i1.size)), totals=totals,
                      clipped=[bool(c) for c in clipped])


# --- sizes ------------------------------------------------------------------------------------------
def _sizes(store, manifests: dict[str, dict]) -> list[dict[str, Any]]:
    out = []
    for step in ALL_STEPS:
        own = [n for n, m in manifests.items() if m.get("step") == step]
        if not own:
            continue
        main = store.size_bytes(step) if step in manifests else 0
        rest = sum(store.size_bytes(n) for n in own if n != step)
        out.append({"step": step, "checkpoint": main, "chunks": rest, "count": len(own) - (step in own),
                    "total": main + rest})
    other = [n for n, m in manifests.items() if m.get("step") not in ALL_STEPS]
    if other:
        total = sum(store.size_bytes(n) for n in other)
        out.append({"step": "(other)", "checkpoint": 0, "chunks": total, "count": len(other), "total": total})
    return out


# --- formatting helpers -----------------------------------------------------------------------------
def _pct(part: int, whole: int) -> str:
    return f"{100.0 * part / whole:.3f} %" if whole else "-"


def _day(epoch_s: int) -> str:
    return _dt.datetime.fromtimestamp(epoch_s, _dt.timezone.utc).strftime("%Y-%m-%d %H:%M")
