"""Step ``graph_created``: the TransactionGraph, written chunk by chunk.

Memory follows one chunk, not the graph: every large array is an ``ArrayParts``-style list of
loaders (one per chunk) that the runner's store writes piece by piece. The checkpoint's layout
is ``amlgraph.graph.graph_payload``'s, the one place that knows it, and it loads with
``TransactionGraph.from_checkpoint`` (arrays memory-mapped), which also validates it.
"""
from __future__ import annotations

from collections.abc import Callable

import numpy as np
import polars as pl

from amlgraph.graph import RAW_COLUMNS, graph_payload
from amlgraph.steps._contract import Inputs, Output, Pieces, Step, StepContext
from amlgraph.steps._finite import require_finite
from amlgraph.steps._layout import INDEX, chunk_names, coded_chunks
from amlgraph.steps.normalized import scaled_edge_matrix, scaled_node_matrices


def _numpy_dtype(dtype: pl.DataType) -> np.dtype:
    return pl.Series([], dtype=dtype).to_numpy().dtype


def _column(inputs: Inputs, name: str, col: str) -> Callable[[], np.ndarray]:
    """A loader of one column of a coded chunk (one column decoded, nothing else)."""
    return lambda: inputs.scan([name], "transactions").select(col).collect()[col].to_numpy()


def compute(ctx: StepContext) -> Output:
    """Assemble the graph from the coded chunks, the normalised features and the resampling."""
    inputs = ctx.inputs
    data, norm = ctx.step("data_loaded"), ctx.step("normalized")
    coded = coded_chunks(data)
    matrices = scaled_node_matrices(inputs, norm, chunk_names(ctx.step("node_features")))
    x = matrices.pop("x")
    n_edges = data.value("summary")["rows"]
    # Laundering rows are few: one filtered scan finds every account that touches one.
    launder = (inputs.scan(coded, "transactions").filter(pl.col("is_laundering") == 1)
               .select("src", "dst").collect(engine="streaming"))
    node_y = np.zeros(x.shape[0], dtype=np.int8)
    node_y[launder["src"].to_numpy()] = 1
    node_y[launder["dst"].to_numpy()] = 1
    schema = inputs.scan(coded[:1], "transactions").collect_schema()
    edge_cols = list(norm.value("edge_columns"))

    nodes = inputs.load(INDEX).table("nodes")
    node_cols = list(norm.value("node_columns"))
    # Nothing that is not a number reaches the graph: each array is checked as it is written
    # (an exception in a piece aborts the save; the graph checkpoint is then not committed).
    views = matrices
    for matrix in (x, *views.values()):
        require_finite(matrix, node_cols, step="graph_created", what="normalised node feature(s)",
                       where=lambda k: f"account {nodes.row(k, named=True)['account']!r} (node {k})",
                       hint="rerun with --resume-from edge_features to recompute the normalized step; if it "
                            "recurs, check the amounts of that account's transactions (amlgraph check)")

    def edge_attr(name: str):
        def read() -> np.ndarray:
            block = scaled_edge_matrix(inputs, norm, name)
            require_finite(block, edge_cols, step="graph_created", what="normalised edge feature(s)",
                           where=lambda k: f"row {inputs.scan([name], 'features').select('row').collect()['row'][k]}",
                           hint="check the amounts of that row (amlgraph check); if they are sane, rerun "
                                "with --resume-from edge_features to recompute the normalized step")
            return block
        return read

    def parts(col: str) -> list:
        return [_column(inputs, n, col) for n in coded]

    # The arrays assembled from chunks; the edge matrix first, the costliest, computed while
    # the others are copied.
    pieces = {
        "edge_attr": Pieces((n_edges, len(edge_cols)), np.float32,
                            [edge_attr(n) for n in chunk_names(ctx.step("edge_features"))]),
        "edge_index": Pieces((2, n_edges), np.int64, parts("src") + parts("dst")),
        "edge_row": Pieces((n_edges,), np.int64, parts("row")),
        "timestamp": Pieces((n_edges,), np.int64, parts("timestamp")),
        "y": Pieces((n_edges,), np.int8, parts("is_laundering")),
        "split": Pieces((n_edges,), np.int8, parts("split")),
    }
    for col in RAW_COLUMNS:
        pieces[f"raw_{col}"] = Pieces((n_edges,), _numpy_dtype(schema[col]), parts(col))
    imb = ctx.step("imbalanced")
    synthetic = np.asarray(imb.array("X_synthetic"))
    require_finite(synthetic, edge_cols, step="graph_created", what="synthetic edge feature(s)",
                   where=lambda k: f"synthetic row {k}",
                   hint="rerun with --resume-from normalized to recompute the imbalanced step")
    weights = {int(k): float(v) for k, v in ctx.step("weights").value("class_weights").items()}
    tables, arrays, values = graph_payload(
        nodes=nodes, x=x, node_y=node_y, pieces=pieces,
        synthetic=(synthetic, np.asarray(imb.array("y_synthetic"))),
        node_feature_names=norm.value("node_columns"), edge_feature_names=edge_cols,
        class_weights=weights, vocab=data.value("vocab"),
        raw_dtypes={c: schema[c] for c in RAW_COLUMNS},
        x_views=views or None)
    return Output(tables=tables, arrays=arrays, values=values,
                  metadata={"num_accounts": int(x.shape[0]), "num_edges": n_edges,
                            "num_features": int(x.shape[1])})


STEP = Step("graph_created", "Creating Graph",
            reads=("data_loaded", "node_features", "edge_features", "normalized", "imbalanced", "weights"),
            params=(), code=(), compute=compute)
