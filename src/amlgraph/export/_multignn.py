"""IBM Multi-GNN's ``formatted_transactions.csv``, computed column-wise.

Multi-GNN's ``format_kaggle_files.py`` walks the Trans file row by row and numbers things by
first appearance. The same numbering comes from first-appearance uniques over interleaved
columns in file order:

- node ids: sender then receiver of each row, in file order;
- currencies: one dictionary for both columns, each row's Receiving Currency before its Payment
  Currency;
- payment formats: by first appearance;
- Timestamp: seconds since (midnight of the first row's day minus 10 s), the first row in file
  order, which need not be the earliest;
- rows sorted by Timestamp, stably (ties keep file order);
- amounts written as the script's last step writes them: it reads its ``%f`` output back with
  datatable's ``fread`` and writes it again with ``to_csv`` (``10779.65``, ``1.0e+15``; see
  ``_dtfloat``), so the file is byte for byte the script's.

A graph with pattern features (``amlgraph run --patterns``) adds its ``pattern_*`` columns after
``Is Laundering``, as the graph holds them (log1p, standardised on the training rows, float32):
Multi-GNN reads its columns by name, so the script's columns keep their meaning and a loader
that lists the extra names gets them as edge features. Without them the file is the script's.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import polars as pl

from amlgraph.errors import ConfigError
from amlgraph.export._dtfloat import multignn_amount_text
from amlgraph.export._io import output_file

if TYPE_CHECKING:
    from amlgraph.graph import TransactionGraph

COLUMNS = (
    "EdgeID", "from_id", "to_id", "Timestamp", "Amount Sent", "Sent Currency", "Amount Received",
    "Received Currency", "Payment Format", "Is Laundering",
)
FILENAME = "formatted_transactions.csv"
DAY = 86_400


def first_appearance_codes(values: np.ndarray) -> np.ndarray:
    """Number the distinct values of ``values`` by their first appearance.

    Args:
        values: integer array of shape (n,).

    Returns:
        int64 array of shape (n,): 0 for the first distinct value met, 1 for the next, ...
    """
    values = np.asarray(values, dtype=np.int64)
    if values.size == 0:
        return np.zeros(0, dtype=np.int64)
    order = pl.Series(values).unique(maintain_order=True).to_numpy()
    lo = int(order.min())
    table = np.full(int(order.max()) - lo + 1, -1, dtype=np.int64)
    table[order - lo] = np.arange(len(order), dtype=np.int64)
    return table[values - lo]


def _interleave(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    out = np.empty(2 * len(a), dtype=np.int64)
    out[0::2], out[1::2] = a, b
    return out


def format_multignn(graph: "TransactionGraph") -> pl.DataFrame:
    """The graph's transactions as Multi-GNN's formatted table.

    Args:
        graph: the graph; its edges may be in any order.

    Returns:
        A frame with ``COLUMNS`` (then the graph's ``pattern_*`` edge features, Float32, when it
        has them), one row per edge, sorted by Timestamp (stable): EdgeID, ids and codes Int64,
        amounts Float64.

    Raises:
        ConfigError: when two edges share an ``edge_row``.
    """
    order = np.argsort(graph.edge_row, kind="stable")  # file order
    edge_row = graph.edge_row[order]
    if len(edge_row) > 1 and not np.all(edge_row[1:] != edge_row[:-1]):
        dup = edge_row[1:][edge_row[1:] == edge_row[:-1]][0]
        raise ConfigError(f"edge_row must be unique for the Multi-GNN export (row {dup} repeats)")
    e = len(order)
    raw = graph.raw[order] if e else graph.raw
    src, dst = graph.edge_index[0][order], graph.edge_index[1][order]
    ids = first_appearance_codes(_interleave(src, dst))
    cur = first_appearance_codes(_interleave(raw["receiving_currency"].to_numpy(),
                                             raw["payment_currency"].to_numpy()))
    fmt = first_appearance_codes(raw["payment_format"].to_numpy())
    ts = graph.timestamp[order]
    base = (ts[0] // DAY) * DAY - 10 if e else 0
    frame = pl.DataFrame({
        "EdgeID": edge_row,
        "from_id": ids[0::2],
        "to_id": ids[1::2],
        "Timestamp": ts - base,
        "Amount Sent": raw["amount_paid"].cast(pl.Float64),
        "Sent Currency": cur[1::2],
        "Amount Received": raw["amount_received"].cast(pl.Float64),
        "Received Currency": cur[0::2],
        "Payment Format": fmt,
        "Is Laundering": graph.y[order].astype(np.int64),
    })
    patterns = [j for j, name in enumerate(graph.edge_feature_names) if name.startswith("pattern_")]
    if patterns:
        attr = graph.edge_attr
        frame = frame.with_columns(pl.Series(graph.edge_feature_names[j], np.asarray(attr[:, j])[order],
                                             dtype=pl.Float32) for j in patterns)
    by_time = np.argsort(frame["Timestamp"].to_numpy(), kind="stable")
    return frame[by_time]


def amount_texts(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with its two amount columns as the text the script writes for them.

    Each distinct value (by its bits) is formatted once: most rows pay and receive the same amount.
    """
    e = frame.height
    both = np.concatenate([frame["Amount Sent"].to_numpy(), frame["Amount Received"].to_numpy()])
    bits = pl.Series(both.view(np.int64))
    distinct = bits.unique()
    text = bits.replace_strict(distinct, multignn_amount_text(distinct.to_numpy().view(np.float64)),
                               return_dtype=pl.String)
    return frame.with_columns(text[:e].alias("Amount Sent"), text[e:].alias("Amount Received"))


def write_multignn(graph: "TransactionGraph", out_dir: Path) -> list[Path]:
    """Write ``formatted_transactions.csv``, byte for byte as ``format_kaggle_files.py`` writes it.

    Args:
        graph: the graph.
        out_dir: an existing directory without this file (``export_graph`` gives a staging
            directory and commits it).

    Returns:
        The written path.
    """
    path = Path(out_dir) / FILENAME
    frame = amount_texts(format_multignn(graph))
    with output_file(path) as fh:
        frame.write_csv(fh, quote_style="never")
    return [path]
