"""Train on an amlgraph graph: an edge-classification GNN and a gradient-boosted baseline, each
also trained on shuffled training labels as a control, and report their test F1.

    python examples/train_gnn.py CHECKPOINT_DIR [--epochs N] [--batch-size B] [--max-minutes M]
                                 [--device auto|cpu|cuda] [--seed S] [--out-json FILE]
    python examples/train_gnn.py --pyg EXPORT_DIR ...

Protocol (IBM Multi-GNN's), on the graph's temporal split, with one graph per split as
`TransactionGraph.for_split` builds it: the models train on the training edges with the node
features of the training rows (`x_train`); they are validated on the validation edges of the
graph of training + validation edges, with `x_val`; they are tested on the test edges of the
graph of all edges, with `x` (the test view). The GNN's message passing and the baseline's node
columns both use the view of the split being scored. The decision threshold is the one that
maximises F1 on validation; the figure reported is the F1 of the laundering class on the test
edges. The shuffled control permutes the training labels: a model that learns something real
must beat it clearly.

The GNN trains on mini-batches of training edges: each step samples, around the endpoints of a
batch of target edges, up to `--fanouts` incoming edges per node and hop (a random-start, evenly
strided sample of a node's incoming edges, in numpy: PyG's LinkNeighborLoader needs pyg-lib or
torch-sparse), runs the GNN on that subgraph and takes one optimiser step. Validation and test
edges are scored layer by layer over their split's whole graph, each node aggregating a sample of
its incoming edges drawn the same way, with a fixed seed.
"""
from __future__ import annotations

import argparse
import itertools
import json
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

import numpy as np

SPLITS = {"train": 0, "val": 1, "test": 2}


def _help_parts() -> tuple[str, str]:
    """The module docstring as (its first paragraph, the rest)."""
    head, _, rest = __doc__.strip().partition("\n\n")
    return head, rest


def _fanouts(text: str) -> list[int]:
    try:
        values = [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected integers separated by commas (got {text!r})")
    if not values or any(v == 0 or v < -1 for v in values):
        raise argparse.ArgumentTypeError(f"each fan-out is a positive integer or -1 (got {text!r})")
    return values


def build_parser() -> argparse.ArgumentParser:
    """The command line: its description and epilog are the module docstring, whole."""
    description, epilog = _help_parts()
    p = argparse.ArgumentParser(prog="train_gnn.py", description=description, epilog=epilog,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("checkpoint_dir", type=Path, nargs="?",
                   help="a finished run's checkpoint directory (its --checkpoint-dir).")
    p.add_argument("--pyg", type=Path, default=None,
                   help="read a PyG export (`amlgraph export --format pyg`) instead; its per-split "
                        "graphs give each split its node features, as the checkpoints do.")
    p.add_argument("--epochs", type=int, default=20,
                   help="passes over the training edges (default 20).")
    p.add_argument("--batch-size", type=int, default=8192,
                   help="target edges per optimiser step (default 8192).")
    p.add_argument("--eval-chunk", type=int, default=1_000_000,
                   help="edges per chunk when scoring validation and test edges; bounds memory "
                        "(default 1000000).")
    p.add_argument("--fanouts", type=_fanouts, default=[10, 10],
                   help="incoming edges sampled per node at each hop, comma-separated, -1 for all; "
                        "their count is the number of GNN layers (default 10,10).")
    p.add_argument("--max-minutes", type=float, default=None,
                   help="stop each GNN's training after this many minutes of wall time, "
                        "validating the partial epoch (default: no limit).")
    p.add_argument("--max-steps", type=int, default=None,
                   help="stop each GNN's training after this many optimiser steps "
                        "(default: no limit).")
    p.add_argument("--device", choices=("auto", "cpu", "cuda"), default="auto",
                   help="where the GNN runs; auto picks CUDA when available (default auto).")
    p.add_argument("--threads", type=int, default=None,
                   help="torch CPU threads (default: torch's choice; 1 is faster on a busy "
                        "machine).")
    p.add_argument("--seed", type=int, default=0, help="seed of every random choice (default 0).")
    p.add_argument("--hidden", type=int, default=64, help="GNN width (default 64).")
    p.add_argument("--lr", type=float, default=3e-3, help="Adam learning rate (default 0.003).")
    p.add_argument("--gbt-iter", type=int, default=200,
                   help="boosting iterations of the baseline (default 200).")
    p.add_argument("--verbose", action="store_true",
                   help="print each epoch's steps, training loss and validation F1.")
    p.add_argument("--out-json", type=Path, default=None,
                   help="write the figures to this JSON file.")
    return p


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = build_parser()
    args = p.parse_args(argv)
    if args.batch_size < 1 or args.eval_chunk < 1 or args.epochs < 1:
        p.error("--epochs, --batch-size and --eval-chunk must be at least 1")
    return args


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


# --- the per-split views --------------------------------------------------------------------------
@dataclass
class View:
    """What a model of one split may see, and the edges it scores.

    Attributes:
        name: "train", "val" or "test".
        x: float32 (N, F) node features of the split's view (at least one column).
        edge_index: int64 (2, E_s) the edges of the split's graph.
        edge_attr: float32 (E_s, D) their features (at least one column).
        y: int64 (E_s,) labels; split: int8 (E_s,) split codes.
        score: int64 indices into the E_s edges of the edges the split scores (split == code).
    """

    name: str
    x: np.ndarray
    edge_index: np.ndarray
    edge_attr: np.ndarray
    y: np.ndarray
    split: np.ndarray
    score: np.ndarray
    cache: dict = field(default_factory=dict, repr=False, compare=False)

    @classmethod
    def of(cls, graph, name: str) -> View:
        g = graph.for_split(name)
        x, attr = np.asarray(g.x), np.asarray(g.edge_attr)
        split = np.asarray(g.split)
        return cls(name=name,
                   x=x if x.shape[1] else np.ones((x.shape[0], 1), np.float32),
                   edge_index=np.asarray(g.edge_index, dtype=np.int64),
                   edge_attr=attr if attr.shape[1] else np.ones((attr.shape[0], 1), np.float32),
                   y=np.asarray(g.y).astype(np.int64), split=split,
                   score=np.flatnonzero(split == SPLITS[name]))

    @property
    def num_nodes(self) -> int:
        return int(self.x.shape[0])

    def prepared(self, fanouts: list[int]) -> tuple[NeighbourSampler, _Tensors]:
        """Its sampler and torch tensors, built once."""
        key = tuple(fanouts)
        if key not in self.cache:
            self.cache[key] = (NeighbourSampler(self.edge_index, self.num_nodes, fanouts),
                               _Tensors(self))
        return self.cache[key]


def split_views(graph) -> dict[str, View]:
    """The train, val and test views of ``graph`` (anything with ``for_split``)."""
    return {name: View.of(graph, name) for name in SPLITS}


# --- neighbourhood sampling -----------------------------------------------------------------------
@dataclass
class Batch:
    """A sampled subgraph around some target edges of a view, in hop order.

    Local node ids list the targets' endpoints first (hop 0), then the nodes first reached at hop
    1, 2, ...; edges are ordered by the hop of their receiver, so that a layer which only needs
    the states of hops <= h reads a prefix of the nodes and of the edges.

    Attributes:
        nodes: int64 (n,) node ids of the view; local node i is ``nodes[i]``.
        edges: int64 (m,) distinct edge indices of the view; the targets are among them.
        edge_index: int64 (2, m) local node ids of ``edges``.
        target_pos: int64 (B,) positions of the target edges in ``edges``, in target order.
        node_counts: ``node_counts[h]`` nodes have hop <= h (one entry per hop 0..L).
        edge_counts: ``edge_counts[h]`` edges have a receiver of hop <= h.
    """

    nodes: np.ndarray
    edges: np.ndarray
    edge_index: np.ndarray
    target_pos: np.ndarray
    node_counts: list[int]
    edge_counts: list[int]


class NeighbourSampler:
    """Sample the subgraph a GNN of ``len(fanouts)`` layers needs to score some target edges.

    Messages flow along the edges (sender to receiver), so a node's state depends on its incoming
    edges. Around the targets' endpoints, each hop takes up to ``fanouts[h]`` incoming edges of
    every node reached in the hop before (all of them for -1, or when it has no more): a
    random-start, evenly strided sample of its incoming edges, distinct edges only. The targets
    are always part of the subgraph. Everything is vectorised numpy.
    """

    def __init__(self, edge_index: np.ndarray, num_nodes: int, fanouts: list[int]):
        self.src, self.dst = edge_index[0], edge_index[1]
        self.fanouts = list(fanouts)
        self.order = np.argsort(self.dst, kind="stable")  # incoming edges grouped by receiver
        self.rowptr = np.zeros(num_nodes + 1, dtype=np.int64)
        np.cumsum(np.bincount(self.dst, minlength=num_nodes), out=self.rowptr[1:])
        self._local = np.full(num_nodes, -1, dtype=np.int64)  # -1: not reached yet

    def in_edges(self, nodes: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
        """Edge indices: up to ``k`` incoming edges of each node in ``nodes`` (-1: all)."""
        start = self.rowptr[nodes]
        deg = self.rowptr[nodes + 1] - start
        take = deg if k < 0 else np.minimum(deg, k)
        total = int(take.sum())
        if total == 0:
            return np.empty(0, dtype=np.int64)
        owner = np.repeat(np.arange(len(nodes)), take)
        j = np.arange(total) - np.repeat(np.cumsum(take) - take, take)
        offset = j
        sampled = deg > take
        if sampled.any():
            first = (rng.random(len(nodes)) * deg).astype(np.int64)
            stride = deg // np.maximum(take, 1)
            d = np.maximum(deg[owner], 1)
            offset = np.where(sampled[owner], (first[owner] + j * stride[owner]) % d, j)
        return self.order[start[owner] + offset]

    def sample(self, targets: np.ndarray, rng: np.random.Generator) -> Batch:
        """The subgraph around ``targets`` (edge indices of the view)."""
        levels = [np.unique(np.concatenate([self.src[targets], self.dst[targets]]))]
        self._local[levels[0]] = np.arange(len(levels[0]))
        parts, reached = [targets], len(levels[0])
        for k in self.fanouts:
            edges = self.in_edges(levels[-1], k, rng)
            parts.append(edges)
            new = np.unique(self.src[edges])
            new = new[self._local[new] < 0]
            self._local[new] = reached + np.arange(len(new))
            reached += len(new)
            levels.append(new)
        nodes = np.concatenate(levels)
        edges = np.unique(np.concatenate(parts))
        local = self._local[np.stack([self.src[edges], self.dst[edges]])]
        self._local[nodes] = -1
        node_counts = np.cumsum([len(level) for level in levels])
        hop = np.searchsorted(node_counts, local[1], side="right")  # the receiver's hop
        by_hop = np.argsort(hop, kind="stable")
        position = np.empty(len(edges), dtype=np.int64)
        position[by_hop] = np.arange(len(edges))
        return Batch(nodes=nodes, edges=edges[by_hop], edge_index=local[:, by_hop],
                     target_pos=position[np.searchsorted(edges, targets)],
                     node_counts=node_counts.tolist(),
                     edge_counts=np.searchsorted(hop[by_hop], np.arange(len(levels)),
                                                 side="right").tolist())


# --- the GNN --------------------------------------------------------------------------------------
def build_model(num_node_features: int, num_edge_features: int, hidden: int, num_layers: int = 2):
    """``num_layers`` GINEConv layers over edge embeddings, then an MLP on [h_src, h_dst, e]."""
    import torch
    from torch import nn
    from torch_geometric.nn import GINEConv

    class EdgeGNN(nn.Module):
        def __init__(self):
            super().__init__()
            self.node_in = nn.Linear(num_node_features, hidden)
            self.edge_in = nn.Linear(num_edge_features, hidden)
            self.convs = nn.ModuleList(
                GINEConv(nn.Sequential(nn.Linear(hidden, hidden), nn.ReLU(),
                                       nn.Linear(hidden, hidden)), edge_dim=hidden)
                for _ in range(num_layers))
            self.norms = nn.ModuleList(nn.BatchNorm1d(hidden) for _ in range(num_layers))
            self.head = nn.Sequential(nn.Linear(3 * hidden, hidden), nn.ReLU(), nn.Dropout(0.1),
                                      nn.Linear(hidden, 2))

        def forward(self, x, edge_index, edge_attr, target_pos, node_counts=None,
                    edge_counts=None):
            """Logits of shape (B, 2) for the edges at ``target_pos`` of the given graph.

            With ``node_counts`` and ``edge_counts`` (a ``Batch``'s), layer i computes only the
            states of the nodes within ``num_layers - 1 - i`` hops of the targets, from the
            edges into them: the same logits for less work.
            """
            h = self.node_in(x)
            e = self.edge_in(edge_attr)
            for i, (conv, norm) in enumerate(zip(self.convs, self.norms)):
                if node_counts is None:
                    h = h + torch.relu(norm(conv(h, edge_index, e)))
                    continue
                keep = num_layers - 1 - i
                n, m = node_counts[keep], edge_counts[keep]
                h = h[:n] + torch.relu(norm(conv((h, h[:n]), edge_index[:, :m], e[:m])))
            ends = edge_index[:, target_pos]
            return self.head(torch.cat([h[ends[0]], h[ends[1]], e[target_pos]], dim=1))

        def infer(self, x, layers, target_index, target_attr, *, chunk: int):
            """Logits of shape (B, 2) of the target edges, layer by layer over a whole graph.

            Args:
                x: (N, F) node features of every node.
                layers: per layer, (edge_index (2, m), edge_attr (m, D)): the edges it
                    aggregates, sorted by receiver.
                target_index: (2, B) endpoints of the edges to score; target_attr: (B, D).
                chunk: about this many edges (or targets) at a time, to bound memory.
            """
            h = self.node_in(x)
            num_nodes = h.shape[0]
            for conv, norm, (edge_index, edge_attr) in zip(self.convs, self.norms, layers):
                receivers = edge_index[1]
                ends = torch.bincount(receivers, minlength=num_nodes).cumsum(0)
                marks = torch.arange(chunk, max(chunk, len(receivers)), chunk, device=ends.device)
                cuts = torch.searchsorted(ends, marks)
                bounds = torch.unique(torch.cat([torch.tensor([0, num_nodes], device=ends.device),
                                                 (cuts + 1).clamp(max=num_nodes)])).tolist()
                out = torch.empty_like(h)
                for a, b in itertools.pairwise(bounds):
                    lo = 0 if a == 0 else int(ends[a - 1])
                    hi = int(ends[b - 1])
                    local = edge_index[:, lo:hi] - torch.tensor([[0], [a]], device=h.device)
                    agg = conv((h, h[a:b]), local, self.edge_in(edge_attr[lo:hi]))
                    out[a:b] = h[a:b] + torch.relu(norm(agg))
                h = out
            logits = [self.head(torch.cat([h[target_index[0, a:a + chunk]],
                                           h[target_index[1, a:a + chunk]],
                                           self.edge_in(target_attr[a:a + chunk])], dim=1))
                      for a in range(0, target_index.shape[1], chunk)]
            return torch.cat(logits) if logits else torch.empty((0, 2), device=h.device)

    return EdgeGNN()


class _Tensors:
    """A view's node and edge features as torch tensors (CPU), for gathering batches."""

    def __init__(self, view: View):
        import torch

        # np.array copies: checkpoint arrays are read-only memory maps
        self.x = torch.from_numpy(np.array(view.x, dtype=np.float32))
        self.edge_attr = torch.from_numpy(np.array(view.edge_attr, dtype=np.float32))

    def inputs(self, batch: Batch, device):
        import torch

        return (self.x[torch.from_numpy(batch.nodes)].to(device),
                torch.from_numpy(batch.edge_index).to(device),
                self.edge_attr[torch.from_numpy(batch.edges)].to(device),
                torch.from_numpy(batch.target_pos).to(device), batch.node_counts,
                batch.edge_counts)


def score_edges(model, view: View, args, device, *, seed: int) -> np.ndarray:
    """P(laundering) of every edge ``view.score``, shape (len(view.score),), in eval mode.

    Layer-wise over the view's whole graph rather than per batch: layer i aggregates, for every
    node, a sample of its incoming edges drawn as the training batches draw them (the fan-out of
    hop ``L - i``, ``L`` layers, i from 1), one sample per layer and seed. Each node's state is
    computed once, so scoring costs a few passes over the sampled edges, not one per batch.
    """
    import torch

    sampler, tensors = view.prepared(args.fanouts)
    rng = np.random.default_rng(seed)
    every_node = np.arange(view.num_nodes)
    layers = []
    for k in reversed(args.fanouts):
        edges = sampler.in_edges(every_node, k, rng)  # grouped by receiver, ascending
        layers.append((torch.from_numpy(view.edge_index[:, edges]).to(device),
                       tensors.edge_attr[torch.from_numpy(edges)].to(device)))
    model.eval()
    with torch.no_grad():
        logits = model.infer(tensors.x.to(device),
                             layers, torch.from_numpy(view.edge_index[:, view.score]).to(device),
                             tensors.edge_attr[torch.from_numpy(view.score)].to(device),
                             chunk=args.eval_chunk)
    return torch.softmax(logits, dim=1)[:, 1].cpu().numpy()


def train_gnn(views: dict[str, View], y_train: np.ndarray, class_weights: dict, args,
              device) -> dict:
    """Train the GNN on mini-batches of the train view's edges with labels ``y_train`` (shape
    (E_train,), aligned with ``views["train"].score``); keep the state with the best validation
    F1 (checked after every epoch); return its threshold, test F1 and the number of steps."""
    import torch

    torch.manual_seed(args.seed)
    rng = np.random.default_rng(args.seed)
    train = views["train"]
    sampler, tensors = train.prepared(args.fanouts)
    target = torch.as_tensor(y_train, dtype=torch.long)
    weight = torch.tensor([class_weights.get(0, 1.0), class_weights.get(1, 1.0)],
                          dtype=torch.float32, device=device)
    model = build_model(train.x.shape[1], train.edge_attr.shape[1], args.hidden,
                        len(args.fanouts)).to(device)
    optimiser = torch.optim.Adam(model.parameters(), lr=args.lr)
    loss_fn = torch.nn.CrossEntropyLoss(weight=weight)
    y_val = views["val"].y[views["val"].score]

    deadline = None if args.max_minutes is None else time.perf_counter() + 60 * args.max_minutes
    best = {"val_f1": -1.0, "threshold": 0.5, "state": None, "epoch": 0, "step": 0}
    steps, epochs_done, stopped, history = 0, 0.0, False, []
    n = len(train.score)
    for epoch in range(1, args.epochs + 1):
        order = rng.permutation(n)
        steps_before, loss_sum = steps, 0.0
        for b in range(0, n, args.batch_size):
            if ((args.max_steps is not None and steps >= args.max_steps)
                    or (deadline is not None and time.perf_counter() >= deadline)):
                stopped = True
                break
            idx = order[b:b + args.batch_size]
            batch = sampler.sample(train.score[idx], rng)
            model.train()
            optimiser.zero_grad()
            loss = loss_fn(model(*tensors.inputs(batch, device)), target[idx].to(device))
            loss.backward()
            optimiser.step()
            loss_sum += loss.item()
            steps += 1
            epochs_done += len(idx) / n
        if steps == steps_before:  # the budget ran out before this epoch began
            break
        p_val = score_edges(model, views["val"], args, device, seed=args.seed + 1)
        threshold = best_threshold(y_val, p_val)
        val_f1 = f1_at(y_val, p_val, threshold)
        history.append({"epoch": epoch, "steps": steps, "val_f1": round(val_f1, 4),
                        "train_loss": round(loss_sum / (steps - steps_before), 4)})
        if args.verbose:
            print(f"    epoch {epoch}: {steps} steps, train loss {history[-1]['train_loss']:.4f}, "
                  f"val F1 {val_f1:.4f}", flush=True)
        if val_f1 > best["val_f1"]:
            best = {"val_f1": val_f1, "threshold": threshold, "epoch": epoch, "step": steps,
                    "state": {k: v.detach().clone() for k, v in model.state_dict().items()}}
        if stopped:
            break
    if best["state"] is not None:
        model.load_state_dict(best["state"])
    test = views["test"]
    p_test = score_edges(model, test, args, device, seed=args.seed + 2)
    return {"f1": f1_at(test.y[test.score], p_test, best["threshold"]), "val_f1": best["val_f1"],
            "threshold": best["threshold"], "best_epoch": best["epoch"], "best_step": best["step"],
            "steps": steps, "epochs": round(epochs_done, 3), "budget_hit": stopped,
            "history": history}


# --- the gradient-boosted baseline ---------------------------------------------------------------
def gbt_features(view: View) -> np.ndarray:
    """[edge_attr, x[src], x[dst]] of the edges ``view.score``, shape (len(score), D + 2F), with
    the node features of the view's own split."""
    ei = view.edge_index[:, view.score]
    return np.hstack([np.asarray(view.edge_attr)[view.score], view.x[ei[0]],
                      view.x[ei[1]]]).astype(np.float32)


def train_gbt(views: dict[str, View], y_train: np.ndarray, class_weights: dict, args) -> dict:
    """HistGradientBoostingClassifier on ``gbt_features`` of each split's view."""
    from sklearn.ensemble import HistGradientBoostingClassifier

    weights = np.where(y_train == 1, class_weights.get(1, 1.0), class_weights.get(0, 1.0))
    model = HistGradientBoostingClassifier(max_iter=args.gbt_iter, learning_rate=0.1,
                                           early_stopping=False, random_state=args.seed)
    if len(np.unique(y_train)) < 2:  # nothing to learn: constant scores
        constant = float(y_train.mean() if len(y_train) else 0.0)
        proba = lambda v: np.full(len(v.score), constant)
    else:
        model.fit(gbt_features(views["train"]), y_train, sample_weight=weights)
        proba = lambda v: model.predict_proba(gbt_features(v))[:, 1]
    val, test = views["val"], views["test"]
    y_val, p_val = val.y[val.score], proba(val)
    threshold = best_threshold(y_val, p_val)
    return {"f1": f1_at(test.y[test.score], proba(test), threshold),
            "val_f1": f1_at(y_val, p_val, threshold), "threshold": threshold}


# --- input ----------------------------------------------------------------------------------------
class PygGraph:
    """The fields of a TransactionGraph this script uses, read from a PyG export.

    ``graph.pt`` holds the test view of the node features (``x``); the export's per-split graphs
    (``train.pt``, ``val.pt``, read with ``load_pyg(dir, split=...)``) hold the training and
    validation views, which :meth:`from_export` takes as ``x_train`` and ``x_val``. Given only a
    ``Data`` with ``x``, every split sees that view (``has_split_views`` is then False).
    """

    @classmethod
    def from_export(cls, path: Path) -> "PygGraph":
        """The full graph of a PyG export and, where it has them, its per-split node features."""
        from amlgraph.export._pyg import load_pyg

        data = load_pyg(path, reverse_edges=False)
        views = {}
        if Path(path).is_dir() and all((Path(path) / f"{s}.pt").exists() for s in ("train", "val")):
            views = {f"x_{s}": load_pyg(path, split=s, reverse_edges=False).x for s in ("train", "val")}
        return cls(data, **views)

    def __init__(self, data, *, x_train=None, x_val=None):
        self.x = data.x.numpy()
        views = {"x_train": x_train if x_train is not None else getattr(data, "x_train", None),
                 "x_val": x_val if x_val is not None else getattr(data, "x_val", None)}
        self.x_train = self.x if views["x_train"] is None else views["x_train"].numpy()
        self.x_val = self.x if views["x_val"] is None else views["x_val"].numpy()
        self.edge_index = data.edge_index.numpy()
        self.edge_attr = data.edge_attr.numpy()
        self.y = data.y.numpy().astype(np.int8)
        self.split = (data.val_mask.numpy() * 1 + data.test_mask.numpy() * 2).astype(np.int8)
        self.class_weights = dict(data.class_weights)
        self.num_nodes, self.num_edges = int(data.num_nodes), int(data.edge_index.shape[1])

    @property
    def has_split_views(self) -> bool:
        return self.x_train is not self.x

    def node_features_of(self, split: str) -> np.ndarray:
        return {"train": self.x_train, "val": self.x_val, "test": self.x}[split]

    def for_split(self, split: str) -> SimpleNamespace:
        """As ``TransactionGraph.for_split``: the edges with split <= code, that split's x."""
        keep = np.flatnonzero(self.split <= SPLITS[split])
        return SimpleNamespace(x=self.node_features_of(split), edge_index=self.edge_index[:, keep],
                               edge_attr=self.edge_attr[keep], y=self.y[keep],
                               split=self.split[keep])

    def __repr__(self) -> str:
        return f"PyG export (num_nodes={self.num_nodes}, num_edges={self.num_edges})"


# --- driver ---------------------------------------------------------------------------------------
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
        graph: a ``TransactionGraph`` (or anything with its ``for_split``, ``split``, ``y``,
            ``class_weights``) to use instead of loading one.

    Returns:
        ``{"f1": {...}, "seconds": {...}, "cpu_seconds": {...}, "steps": {...}, ...}`` keyed by
        gnn, gbt, gnn_shuffled, gbt_shuffled (``steps`` and ``epochs``: the GNNs only).
    """
    args = parse_args(argv)
    if graph is None and args.pyg is not None:
        graph = PygGraph.from_export(args.pyg)
    if graph is None:
        if args.checkpoint_dir is None:
            raise SystemExit("give a CHECKPOINT_DIR (the --checkpoint-dir of a finished run)")
        from amlgraph.runner import load_graph

        t0 = time.perf_counter()
        graph = load_graph(args.checkpoint_dir)
        print(f"loaded {graph} in {time.perf_counter() - t0:.2f} s")
    per_split = bool(getattr(graph, "has_split_views", False))
    if not per_split:
        print("note: the node features have one view (a transductive run or a PyG export): "
              "every split sees the same x")
    device = pick_device(args.device)
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    split, y = np.asarray(graph.split), np.asarray(graph.y)
    views = split_views(graph)
    y_train = views["train"].y[views["train"].score]
    shuffled = np.random.default_rng(args.seed).permutation(y_train)
    weights = dict(graph.class_weights)
    runs = {
        "gnn": lambda: train_gnn(views, y_train, weights, args, device),
        "gbt": lambda: train_gbt(views, y_train, weights, args),
        "gnn_shuffled": lambda: train_gnn(views, shuffled, weights, args, device),
        "gbt_shuffled": lambda: train_gbt(views, shuffled, weights, args),
    }
    results = {"f1": {}, "val_f1": {}, "threshold": {}, "seconds": {}, "cpu_seconds": {},
               "steps": {}, "epochs": {}, "best_epoch": {}, "history": {}}
    for name, run in runs.items():
        t0, c0 = time.perf_counter(), time.process_time()
        out = run()
        results["seconds"][name] = round(time.perf_counter() - t0, 3)
        results["cpu_seconds"][name] = round(time.process_time() - c0, 3)
        for key in ("f1", "val_f1", "threshold"):
            results[key][name] = out[key]
        extra = ""
        if "steps" in out:
            for key in ("steps", "epochs", "best_epoch", "history"):
                results[key][name] = out[key]
            extra = (f"   {out['steps']} steps ({out['epochs']:g} epochs"
                     f"{', budget hit' if out['budget_hit'] else ''})")
        print(f"{name:>13}: test F1 (laundering) {out['f1']:.4f}   val F1 {out['val_f1']:.4f}   "
              f"{results['seconds'][name]:.1f} s, {results['cpu_seconds'][name]:.1f} CPU s{extra}",
              flush=True)
    results.update({
        "device": str(device), "threads": args.threads, "seed": args.seed,
        "node_feature_views": per_split,
        "gnn_config": {"epochs": args.epochs, "batch_size": args.batch_size,
                       "eval_chunk": args.eval_chunk, "fanouts": args.fanouts,
                       "hidden": args.hidden, "lr": args.lr, "max_minutes": args.max_minutes,
                       "max_steps": args.max_steps},
        "gbt_iter": args.gbt_iter,
        "graph": {"num_nodes": int(graph.num_nodes), "num_edges": int(graph.num_edges),
                  "laundering": int(y.sum()),
                  "edges_per_split": [int((split == s).sum()) for s in range(3)],
                  "laundering_per_split": [int(y[split == s].sum()) for s in range(3)]},
    })
    if args.out_json is not None:
        args.out_json.parent.mkdir(parents=True, exist_ok=True)
        args.out_json.write_text(json.dumps(results, indent=1) + "\n")
    return results


if __name__ == "__main__":
    main(sys.argv[1:])
