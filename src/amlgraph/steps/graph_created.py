"""Step ``graph_created``: the TransactionGraph, linked to the checkpoints it is made of.

Every large array of the graph is a function of checkpoints the run keeps anyway: the coded
transaction chunks (``edge_index``, ``edge_row``, ``timestamp``, ``y``, ``split``, the raw
columns), the ``node_features`` and ``edge_features`` chunks with the maps ``normalized`` fitted
(``x`` and its views, ``edge_attr``), the account index (the node table). Storing them again
would double the footprint (issue: checkpoints no larger than the input), so the checkpoint
holds only what is its own (``node_y``, the synthetic rows, names, weights, vocabularies) and a
``links`` record naming the checkpoints, by key, that the rest is read from; they are also its
``parts``, so a run treats the graph as invalid when one of them is missing, damaged or stale.
``load_graph`` rebuilds the arrays with the same functions (:func:`linked_arrays`), bit for bit.
``checkpoints clean --compact`` writes the graph whole (``TransactionGraph.to_payload``) before it
removes the rest. A graph too large to assemble in memory on every load (``ctx.decodable``: a
share of the machine's memory; HI-Large on a laptop) is written whole and plain by the step
itself, chunk by chunk, to be memory-mapped, as before the links existed.

The step still computes every normalised matrix once, chunk by chunk, to refuse a NaN or an
infinity before the graph is committed; memory follows one chunk, not the graph.
"""
from __future__ import annotations

import numpy as np
import polars as pl

from amlgraph.graph import RAW_COLUMNS, graph_payload, graph_values
from amlgraph.steps._contract import Inputs, Output, Part, Pieces, Step, StepContext
from amlgraph.steps._finite import require_finite
from amlgraph.steps._layout import INDEX, chunk_names, coded_chunks, parts
from amlgraph.steps.normalized import scaled_edge_matrix, scaled_node_matrices

#: The coded columns of each edge array of the graph (``edge_index`` is src then dst).
_EDGE_COLUMNS = {"edge_row": ("row", np.int64), "timestamp": ("timestamp", np.int64),
                 "y": ("is_laundering", np.int8), "split": ("split", np.int8)}


def compute(ctx: StepContext) -> Output:
    """Check the normalised features, label the accounts and link the graph to its sources."""
    inputs = ctx.inputs
    data, norm = ctx.step("data_loaded"), ctx.step("normalized")
    coded = coded_chunks(data)
    node_chunks, edge_chunks = chunk_names(ctx.step("node_features")), chunk_names(ctx.step("edge_features"))
    nodes = inputs.load(INDEX).table("nodes")
    n_edges = data.value("summary")["rows"]
    node_cols, edge_cols = list(norm.value("node_columns")), list(norm.value("edge_columns"))
    # Nothing that is not a number reaches the graph: every matrix is checked here (an error
    # aborts the step; the graph checkpoint is then not committed).
    matrices = scaled_node_matrices(inputs, norm, node_chunks)
    for matrix in matrices.values():
        require_finite(matrix, node_cols, step="graph_created", what="normalised node feature(s)",
                       where=lambda k: f"account {nodes.row(k, named=True)['account']!r} (node {k})",
                       hint="rerun with --resume-from edge_features to recompute the normalized step; if it "
                            "recurs, check the amounts of that account's transactions (amlgraph check)")

    def edge_block(name: str) -> np.ndarray:
        block = scaled_edge_matrix(inputs, norm, name)
        require_finite(block, edge_cols, step="graph_created", what="normalised edge feature(s)",
                       where=lambda k: f"row {inputs.scan([name], 'features').select('row').collect()['row'][k]}",
                       hint="check the amounts of that row (amlgraph check); if they are sane, rerun "
                            "with --resume-from edge_features to recompute the normalized step")
        return block

    schema = inputs.scan(coded[:1], "transactions").collect_schema()
    whole = not ctx.decodable(whole_graph_bytes(n_edges, len(edge_cols), nodes.height, len(node_cols) * len(matrices)))
    if not whole:
        for name in edge_chunks:
            edge_block(name)
    # Laundering rows are few: one filtered scan finds every account that touches one.
    launder = (inputs.scan(coded, "transactions").filter(pl.col("is_laundering") == 1)
               .select("src", "dst").collect(engine="streaming"))
    node_y = np.zeros(nodes.height, dtype=np.int8)
    node_y[launder["src"].to_numpy()] = 1
    node_y[launder["dst"].to_numpy()] = 1
    imb = ctx.step("imbalanced")
    synthetic = np.asarray(imb.array("X_synthetic"))
    require_finite(synthetic, edge_cols, step="graph_created", what="synthetic edge feature(s)",
                   where=lambda k: f"synthetic row {k}",
                   hint="rerun with --resume-from normalized to recompute the imbalanced step")
    weights = {int(k): float(v) for k, v in ctx.step("weights").value("class_weights").items()}
    metadata = {"num_accounts": int(nodes.height), "num_edges": n_edges, "num_features": len(node_cols)}
    if whole:
        # Too large to assemble in memory on every load: written whole and plain, chunk by chunk
        # (memory follows one chunk), to be memory-mapped; the views and edge matrix uncoded.
        x = matrices.pop("x")
        pieces = {"edge_attr": Pieces((n_edges, len(edge_cols)), np.float32,
                                      [lambda name=name: edge_block(name) for name in edge_chunks]),
                  "edge_index": Pieces((2, n_edges), np.int64, _parts(inputs, coded, "src") + _parts(inputs, coded, "dst"))}
        for key, (col, dtype) in _edge_columns(schema).items():
            pieces[key] = Pieces((n_edges,), dtype, _parts(inputs, coded, col))
        tables, arrays, values = graph_payload(
            nodes=nodes, x=x, node_y=node_y, pieces=pieces, synthetic=(synthetic, np.asarray(imb.array("y_synthetic"))),
            node_feature_names=node_cols, edge_feature_names=edge_cols, class_weights=weights,
            vocab=data.value("vocab"), raw_dtypes={c: schema[c] for c in RAW_COLUMNS}, x_views=matrices or None)
        return Output(tables=tables, arrays=arrays, values=values, metadata=metadata)
    views = sorted(name for name in matrices if name != "x")  # x_train, x_val (none with one view)
    values = graph_values(node_feature_names=node_cols, edge_feature_names=edge_cols, class_weights=weights,
                          vocab=data.value("vocab"), raw_dtypes={c: schema[c] for c in RAW_COLUMNS},
                          has_synthetic=True, node_views=views)
    sources = [p for p in parts(data) if p["name"] == INDEX or p["name"] in coded]
    sources += parts(ctx.step("node_features")) + parts(ctx.step("edge_features"))
    sources += list(norm.value("pattern_parts")) if "pattern_parts" in norm.values else []
    sources.append(Part("normalized", norm.manifest["key"]).as_value())
    values["links"] = {"index": INDEX, "coded": coded, "node_chunks": node_chunks, "edge_chunks": edge_chunks,
                       "normalized": norm.manifest["key"], "num_edges": n_edges}
    values["parts"] = sources
    return Output(arrays={"node_y": node_y, "synthetic_edge_attr": synthetic,
                          "synthetic_y": np.asarray(imb.array("y_synthetic"))},
                  values=values, metadata=metadata)


def whole_graph_bytes(n_edges: int, edge_features: int, n_nodes: int, node_cells: int) -> int:
    """Bytes of the whole graph's arrays: the edge matrix (float32), edge_index, edge_row,
    timestamp (int64), y, split (int8), the raw columns (~38 bytes a row), the node matrices
    (``node_cells``: node columns times views). It decides whether the step links the graph or
    writes it whole, and is what the runner's free-space check expects it to write then."""
    return n_edges * (4 * edge_features + 16 + 16 + 2 + 38) + n_nodes * 4 * node_cells


def _parts(inputs: Inputs, coded: list[str], col: str) -> list:
    """Loaders of one column of every coded chunk (one column decoded at a time)."""
    return [lambda name=name: inputs.scan([name], "transactions").select(col).collect()[col].to_numpy()
            for name in coded]


def _edge_columns(schema: pl.Schema) -> dict[str, tuple[str, np.dtype]]:
    """The graph's per-edge arrays read from the coded chunks, whole or linked: ``edge_row``,
    ``timestamp``, ``y``, ``split`` and ``raw_<column>``, each as (coded column, NumPy dtype)."""
    columns = dict(_EDGE_COLUMNS)
    columns.update({f"raw_{c}": (c, pl.Series([], dtype=schema[c]).to_numpy().dtype) for c in RAW_COLUMNS})
    return columns


def linked_arrays(inputs: Inputs, links: dict) -> tuple[pl.DataFrame, dict[str, np.ndarray]]:
    """The node table and every array a linked graph checkpoint leaves to its sources, rebuilt
    with the functions the step checked them with: ``x`` and its views, ``edge_attr``,
    ``edge_index``, ``edge_row``, ``timestamp``, ``y``, ``split`` and ``raw_<column>``.

    Args:
        inputs: the store's checkpoints (the caller has checked every part by its key).
        links: the ``links`` value of the graph checkpoint.
    """
    norm = inputs.load("normalized", key=links["normalized"])
    nodes = inputs.load(links["index"]).table("nodes")
    arrays: dict[str, np.ndarray] = dict(scaled_node_matrices(inputs, norm, links["node_chunks"]))
    n = int(links["num_edges"])
    edge_cols = list(norm.value("edge_columns"))
    edge_attr = np.empty((n, len(edge_cols)), dtype=np.float32)
    at = 0
    for name in links["edge_chunks"]:
        block = scaled_edge_matrix(inputs, norm, name)
        edge_attr[at: at + len(block)] = block
        at += len(block)
    arrays["edge_attr"] = edge_attr
    coded = links["coded"]
    schema = inputs.scan(coded[:1], "transactions").collect_schema()
    columns = _edge_columns(schema)
    out = {name: np.empty(n, dtype=dtype) for name, (_, dtype) in columns.items()}
    edge_index = np.empty((2, n), dtype=np.int64)
    at = 0
    wanted = sorted({"src", "dst", *(col for col, _ in columns.values())})
    for name in coded:  # one read of the needed columns per chunk
        frame = inputs.scan([name], "transactions").select(wanted).collect()
        end = at + frame.height
        edge_index[0, at:end], edge_index[1, at:end] = frame["src"].to_numpy(), frame["dst"].to_numpy()
        for key, (col, _) in columns.items():
            out[key][at:end] = frame[col].to_numpy()
        at = end
    if at != n or len(edge_attr) != n:
        from amlgraph.errors import CheckpointError

        raise CheckpointError(f"the graph's sources hold {at} coded and {len(edge_attr)} edge-feature rows, "
                              f"not its {n} edges; rerun to recompute the graph")
    arrays["edge_index"] = edge_index
    arrays.update(out)
    return nodes, arrays


STEP = Step("graph_created", "Creating Graph",
            reads=("data_loaded", "node_features", "edge_features", "normalized", "imbalanced", "weights"),
            params=(), code=(), compute=compute)
