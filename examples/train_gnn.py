"""Train on an amlgraph graph: an edge-classification GNN, a gradient-boosted baseline, and both
again on shuffled training labels as a control.

    python examples/train_gnn.py CHECKPOINT_DIR [--epochs N] [--device auto|cpu|cuda] [--seed S]
                                 [--out-json FILE]

Protocol (as IBM Multi-GNN's): the temporal split of the graph; the model trains on the graph of
the training edges, is validated on the graph of training + validation edges (scored on the
validation edges) and tested on the graph of all edges (scored on the test edges). The decision
threshold is the one that maximises F1 on validation; the figure reported is the F1 of the
laundering class on the test edges. The shuffled control permutes the training labels: a model
that learns something real must beat it clearly.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint_dir", type=Path, nargs="?", help="a finished run's checkpoint directory")
    p.add_argument("--pyg", type=Path, default=None,
                   help="read a PyG export (`amlgraph export --format pyg`) instead: needs only torch")
    p.add_argument("--epochs", type=int, default=40)
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--lr", type=float, default=3e-3)
    p.add_argument("--gbt-iter", type=int, default=200, help="boosting iterations of the baseline")
    p.add_argument("--out-json", type=Path, default=None, help="write the figures here")
    return p.parse_args(argv)


# --- metrics --------------------------------------------------------------------------------------
def best_threshold(y: np.ndarray, p: np.ndarray) -> float:
    """The probability threshold maximising F1 of class 1 on (y, p), both of shape (n,)."""
    from sklearn.metrics import precision_recall_curve

    if len(y) == 0 or y.sum() == 0:
        return 0.5
    precision, recall, thresholds = precision_recall_curve(y, p)
    f1 = 2 * precision * recall / np.maximum(precision + recall, 1e-12)
    return float(thresholds[int(np.argmax(f1[:-1]))])


def f1_at(y: np.ndarray, p: np.ndarray, threshold: float) -> float:
    from sklearn.metrics import f1_score

    return float(f1_score(y, p >= threshold, zero_division=0))


# --- the GNN ----------------------------------------------------------------------------------------
def build_model(num_node_features: int, num_edge_features: int, hidden: int):
    """Two GINEConv layers over edge embeddings, then an MLP on [h_src, h_dst, e] per edge."""
    import torch
    from torch import nn
    from torch_geometric.nn import GINEConv

    class EdgeGNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.node_in = nn.Linear(max(num_node_features, 1), hidden)
            self.edge_in = nn.Linear(max(num_edge_features, 1), hidden)
            self.convs = nn.ModuleList(
                GINEConv(nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(), nn.Linear(hidden, hidden)),
                         edge_dim=hidden) for _ in range(2))
            self.norms = nn.ModuleList(nn.BatchNorm1d(hidden) for _ in range(2))
            self.head = nn.Sequential(nn.Linear(3 * hidden, hidden), nn.ReLU(), nn.Dropout(0.1),
                                      nn.Linear(hidden, 2))

        def forward(self, x, edge_index, edge_attr):
            """Logits of shape (E, 2) for every edge of the given graph."""
            h = self.node_in(x)
            e = self.edge_in(edge_attr)
            for conv, norm in zip(self.convs, self.norms):
                h = h + torch.relu(norm(conv(h, edge_index, e)))
            return self.head(torch.cat([h[edge_index[0]], h[edge_index[1]], e], dim=1))

    return EdgeGNN()


def train_gnn(graph, y_train: np.ndarray, args, device) -> dict:
    """Train the GNN on the train graph with labels ``y_train`` (shape (E_train,)); keep the epoch
    with the best validation F1; return its threshold and test F1."""
    import torch

    torch.manual_seed(args.seed)
    # np.array copies: checkpoint arrays are read-only memory maps
    x = torch.as_tensor(np.array(graph.x) if graph.x.shape[1] else np.ones((graph.num_nodes, 1)),
                        dtype=torch.float32, device=device)
    edge_attr_np = np.asarray(graph.edge_attr) if graph.edge_attr.shape[1] else np.ones((graph.num_edges, 1))
    split = np.asarray(graph.split)
    y = np.asarray(graph.y).astype(np.int64)

    def subgraph(max_split: int):
        keep = np.flatnonzero(split <= max_split)
        return (torch.as_tensor(np.asarray(graph.edge_index)[:, keep], device=device),
                torch.as_tensor(edge_attr_np[keep], dtype=torch.float32, device=device),
                split[keep])

    train_g, val_g, test_g = subgraph(0), subgraph(1), subgraph(2)
    target = torch.as_tensor(y_train, dtype=torch.long, device=device)
    weight = torch.tensor([graph.class_weights.get(0, 1.0), graph.class_weights.get(1, 1.0)],
                          dtype=torch.float32, device=device)
    model = build_model(graph.x.shape[1], graph.edge_attr.shape[1], args.hidden).to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=args.lr)
    loss_fn = torch.nn.CrossEntropyLoss(weight=weight)

    def scores(g, code: int) -> np.ndarray:
        model.eval()
        with torch.no_grad():
            logits = model(x, g[0], g[1])
        return torch.softmax(logits, dim=1)[:, 1].cpu().numpy()[g[2] == code]

    y_val, y_test = y[split == 1], y[split == 2]
    best = {"val_f1": -1.0, "threshold": 0.5, "state": None, "epoch": 0}
    for epoch in range(1, args.epochs + 1):
        model.train()
        optimiser.zero_grad()
        loss = loss_fn(model(x, train_g[0], train_g[1]), target)
        loss.backward()
        optimiser.step()
        p_val = scores(val_g, 1)
        threshold = best_threshold(y_val, p_val)
        val_f1 = f1_at(y_val, p_val, threshold)
        if val_f1 > best["val_f1"]:
            best = {"val_f1": val_f1, "threshold": threshold, "epoch": epoch,
                    "state": {k: v.detach().clone() for k, v in model.state_dict().items()}}
    model.load_state_dict(best["state"])
    p_test = scores(test_g, 2)
    return {"f1": f1_at(y_test, p_test, best["threshold"]), "val_f1": best["val_f1"],
            "threshold": best["threshold"], "best_epoch": best["epoch"]}


# --- the gradient-boosted baseline ---------------------------------------------------------------
def train_gbt(graph, y_train: np.ndarray, args) -> dict:
    """HistGradientBoostingClassifier on [edge_attr, x[src], x[dst]] of shape (E, D + 2F)."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    ei = np.asarray(graph.edge_index)
    features = np.hstack([np.asarray(graph.edge_attr), np.asarray(graph.x)[ei[0]],
                          np.asarray(graph.x)[ei[1]]]).astype(np.float32)
    split, y = np.asarray(graph.split), np.asarray(graph.y).astype(np.int64)
    weights = np.where(y_train == 1, graph.class_weights.get(1, 1.0), graph.class_weights.get(0, 1.0))
    model = HistGradientBoostingClassifier(max_iter=args.gbt_iter, learning_rate=0.1,
                                           early_stopping=False, random_state=args.seed)
    if len(np.unique(y_train)) < 2:  # nothing to learn: constant scores
        proba = lambda m: np.full(int(m.sum()), float(y_train.mean() if len(y_train) else 0.0))  # noqa: E731
    else:
        model.fit(features[split == 0], y_train, sample_weight=weights)
        proba = lambda m: model.predict_proba(features[m])[:, 1]  # noqa: E731
    p_val = proba(split == 1)
    threshold = best_threshold(y[split == 1], p_val)
    return {"f1": f1_at(y[split == 2], proba(split == 2), threshold),
            "val_f1": f1_at(y[split == 1], p_val, threshold), "threshold": threshold}


# --- input -----------------------------------------------------------------------------------------
class PygGraph:
    """The fields of a TransactionGraph this script uses, read from a PyG export."""

    def __init__(self, data):
        self.x = data.x.numpy()
        self.edge_index = data.edge_index.numpy()
        self.edge_attr = data.edge_attr.numpy()
        self.y = data.y.numpy().astype(np.int8)
        self.split = (data.val_mask.numpy() * 1 + data.test_mask.numpy() * 2).astype(np.int8)
        self.class_weights = dict(data.class_weights)
        self.num_nodes, self.num_edges = int(data.num_nodes), int(data.edge_index.shape[1])

    def __repr__(self) -> str:
        return f"PyG export (num_nodes={self.num_nodes}, num_edges={self.num_edges})"


# --- driver ----------------------------------------------------------------------------------------
def pick_device(name: str):
    import torch

    if name == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device is available")
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    return torch.device(name)


def main(argv: list[str] | None = None, *, graph=None) -> dict:
    """Run the four models and print their test F1; return the figures.

    Args:
        argv: command-line arguments (the checkpoint directory may be omitted when ``graph`` is
            given).
        graph: a ``TransactionGraph`` to use instead of loading one.

    Returns:
        ``{"f1": {...}, "seconds": {...}, ...}`` with keys gnn, gbt, gnn_shuffled, gbt_shuffled.
    """
    args = parse_args(argv)
    if graph is None and args.pyg is not None:
        from amlgraph.export._pyg import load_pyg

        graph = PygGraph(load_pyg(args.pyg, reverse_edges=False))
    if graph is None:
        if args.checkpoint_dir is None:
            raise SystemExit("give a CHECKPOINT_DIR (the --checkpoint-dir of a finished run)")
        from amlgraph.runner import load_graph

        t0 = time.perf_counter()
        graph = load_graph(args.checkpoint_dir)
        print(f"loaded {graph} in {time.perf_counter() - t0:.2f} s")
    device = pick_device(args.device)
    split, y = np.asarray(graph.split), np.asarray(graph.y)
    y_train = y[split == 0].astype(np.int64)
    shuffled = np.random.default_rng(args.seed).permutation(y_train)
    runs = {
        "gnn": lambda: train_gnn(graph, y_train, args, device),
        "gbt": lambda: train_gbt(graph, y_train, args),
        "gnn_shuffled": lambda: train_gnn(graph, shuffled, args, device),
        "gbt_shuffled": lambda: train_gbt(graph, shuffled, args),
    }
    results = {"f1": {}, "seconds": {}, "val_f1": {}, "threshold": {}}
    for name, run in runs.items():
        t0 = time.perf_counter()
        out = run()
        results["seconds"][name] = round(time.perf_counter() - t0, 3)
        results["f1"][name] = out["f1"]
        results["val_f1"][name] = out["val_f1"]
        results["threshold"][name] = out["threshold"]
        print(f"{name:>13}: test F1 (laundering) {out['f1']:.4f}   val F1 {out['val_f1']:.4f}   "
              f"{results['seconds'][name]:.1f} s")
    results.update({
        "device": str(device), "epochs": args.epochs, "seed": args.seed,
        "graph": {"num_nodes": graph.num_nodes, "num_edges": graph.num_edges,
                  "laundering": int(y.sum()),
                  "edges_per_split": [int((split == s).sum()) for s in range(3)]},
    })
    if args.out_json is not None:
        args.out_json.parent.mkdir(parents=True, exist_ok=True)
        args.out_json.write_text(json.dumps(results, indent=1) + "\n")
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
