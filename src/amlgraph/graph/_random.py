"""A small random TransactionGraph for tests and examples."""
from __future__ import annotations

import numpy as np
import polars as pl

from amlgraph.graph._graph import TransactionGraph


def random_graph(num_nodes: int = 50, num_edges: int = 400, *, seed: int = 0,
                 num_node_features: int = 3, num_edge_features: int = 4,
                 laundering_rate: float = 0.1, synthetic: int = 0) -> TransactionGraph:
    """A small random graph for tests and examples; laundering edges are learnable.

    Laundering edges shift their first edge feature and mark their endpoints, so a model that
    uses features or structure can beat chance. Edges come in shuffled file order.

    Args:
        num_nodes: N.
        num_edges: E.
        seed: seed of the generator.
        num_node_features: F.
        num_edge_features: D (at least 1).
        laundering_rate: the fraction of edges labelled 1.
        synthetic: number of synthetic (oversampled) training rows to attach.

    Returns:
        A valid ``TransactionGraph`` spanning ten days split 60/20/20 in time.
    """
    rng = np.random.default_rng(seed)
    banks = rng.integers(1, 30, num_nodes)
    accounts = [f"{v:09X}" for v in rng.integers(0x80000000, 0x8FFFFFFFF, num_nodes)]
    nodes = pl.DataFrame({"node_id": np.arange(num_nodes, dtype=np.int64),
                          "bank": banks.astype(np.int64), "account": accounts})
    edge_index = rng.integers(0, num_nodes, (2, num_edges))
    y = (rng.random(num_edges) < laundering_rate).astype(np.int8)
    start = 1_661_990_400  # 2022-09-01 00:00
    timestamp = (start + rng.integers(0, 10 * 86_400 // 60, num_edges) * 60)  # file rows are not in time order
    cuts = np.quantile(timestamp, [0.6, 0.8]) if num_edges else np.zeros(2)
    split = np.searchsorted(cuts, timestamp, side="right")
    edge_attr = rng.normal(size=(num_edges, num_edge_features)).astype(np.float32)
    edge_attr[:, 0] += 2.0 * y
    node_y = np.zeros(num_nodes, dtype=np.int8)
    node_y[edge_index[:, y == 1].ravel()] = 1
    x = rng.normal(size=(num_nodes, num_node_features)).astype(np.float32)
    if num_node_features:
        x[:, 0] += node_y
    n_cur, n_fmt = 4, 3
    raw = pl.DataFrame({
        "amount_paid": np.round(rng.exponential(1000.0, num_edges), 2),
        "payment_currency": rng.integers(0, n_cur, num_edges).astype(np.int16),
        "amount_received": np.round(rng.exponential(1000.0, num_edges), 2),
        "receiving_currency": rng.integers(0, n_cur, num_edges).astype(np.int16),
        "payment_format": rng.integers(0, n_fmt, num_edges).astype(np.int16),
        "from_bank": banks[edge_index[0]].astype(np.int64),
        "to_bank": banks[edge_index[1]].astype(np.int64),
    })
    pos = y[split == 0].mean() if np.any(split == 0) else 0.5
    pos = min(max(float(pos), 1e-3), 1 - 1e-3)
    perm = rng.permutation(num_edges)  # file order differs from edge order
    syn = {}
    if synthetic:
        syn = {"synthetic_edge_attr": rng.normal(2.0, 1.0, (synthetic, num_edge_features)),
               "synthetic_y": np.ones(synthetic, dtype=np.int8)}
    return TransactionGraph(
        nodes=nodes, edge_index=edge_index[:, perm], edge_row=perm,
        timestamp=timestamp[perm], x=x,
        node_feature_names=[f"node_f{j}" for j in range(num_node_features)],
        edge_attr=edge_attr[perm], edge_feature_names=[f"edge_f{j}" for j in range(num_edge_features)],
        y=y[perm], node_y=node_y, split=split.astype(np.int8)[perm],
        class_weights={0: 0.5 / (1 - pos), 1: 0.5 / pos}, raw=raw[perm], vocab={
            "currencies": ["Euro", "Ruble", "US Dollar", "Yen"][:n_cur],
            "payment_formats": ["ACH", "Cheque", "Wire"][:n_fmt],
            "banks": sorted(set(banks.tolist()))},
        **syn,
    )
