"""TransactionGraph: the final graph object of the pipeline and its conversions.

One node per account (bank, account), one directed edge per transaction: parallel transactions
between the same two accounts are all kept. Every per-edge array is aligned with ``edge_index``.
Conversions to PyTorch Geometric and NetworkX live in ``amlgraph.export._pyg`` and
``amlgraph.export._networkx`` and import their heavy libraries on first use.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import polars as pl

from amlgraph.errors import CheckpointError, ConfigError
from amlgraph.graph._coding import CODING, decode, encode
from amlgraph.schema import TEST, TRAIN, VAL

GRAPH_STEP = "graph_created"
NODE_COLUMNS = ("node_id", "bank", "account")
RAW_COLUMNS = (
    "amount_paid", "payment_currency", "amount_received", "receiving_currency", "payment_format",
    "from_bank", "to_bank",
)
# The arrays saved in a checkpoint; the raw columns travel as arrays too ("raw_<column>") so that
# loading memory-maps them instead of decoding a table.
_ARRAYS = ("edge_index", "edge_row", "timestamp", "x", "edge_attr", "y", "node_y", "split")


@dataclass
class TransactionGraph:
    """A directed multigraph of accounts and transactions with features, labels and a split.

    Attributes:
        nodes: one row per node, columns ``node_id`` (Int64, 0..N-1 in order), ``bank`` (Int64),
            ``account`` (String).
        edge_index: int64 array of shape (2, E): sender and receiver node ids.
        edge_row: int64 array of shape (E,): the 0-based index of the transaction's row in the
            input Trans file (Multi-GNN's EdgeID).
        timestamp: int64 array of shape (E,): seconds since 1970-01-01 of the naive file time.
        x: float32 array of shape (N, F): normalised node features from all rows (the test
            view; the only view when the features were computed transductively). Alias: ``x_test``.
        x_train: the same from the training rows only (what a model may see while training),
            or ``x`` itself when the features have one view.
        x_val: the same from the training and validation rows, or ``x``.
        node_feature_names: the F names of the columns of ``x``.
        edge_attr: float32 array of shape (E, D): normalised edge features.
        edge_feature_names: the D names of the columns of ``edge_attr``.
        y: int8 array of shape (E,): 1 for a laundering transaction.
        node_y: int8 array of shape (N,): 1 when the account sends or receives a laundering edge.
        split: int8 array of shape (E,): 0 train, 1 validation, 2 test.
        class_weights: loss weight per class, ``{0: w0, 1: w1}``.
        raw: one row per edge, aligned with ``edge_index``: ``amount_paid``, ``payment_currency``,
            ``amount_received``, ``receiving_currency``, ``payment_format`` (Int16 codes into
            ``vocab``), ``from_bank``, ``to_bank``.
        vocab: ``{"currencies": [...], "payment_formats": [...], "banks": [...]}``.
        synthetic_edge_attr: float32 array of shape (m, D) of oversampled training rows, or None.
            They are not edges of the graph and have no endpoints.
        synthetic_y: int8 array of shape (m,) of their labels, or None.

    Raises:
        ConfigError: from construction when shapes, dtypes or ids are inconsistent.
    """

    nodes: pl.DataFrame
    edge_index: np.ndarray
    edge_row: np.ndarray
    timestamp: np.ndarray
    x: np.ndarray
    node_feature_names: list[str]
    edge_attr: np.ndarray
    edge_feature_names: list[str]
    y: np.ndarray
    node_y: np.ndarray
    split: np.ndarray
    class_weights: dict[int, float]
    raw: pl.DataFrame
    vocab: dict
    synthetic_edge_attr: np.ndarray | None = None
    synthetic_y: np.ndarray | None = None
    x_train: np.ndarray | None = None
    x_val: np.ndarray | None = None

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def x_test(self) -> np.ndarray:
        """The node features of the test view (all rows): ``x``."""
        return self.x

    @property
    def has_split_views(self) -> bool:
        """Whether the node features have a view per split (``x_train`` is not ``x``)."""
        return self.x_train is not self.x

    def node_features_of(self, split: str) -> np.ndarray:
        """``x_train``, ``x_val`` or ``x_test`` by name ("train", "val", "test")."""
        views = {"train": self.x_train, "val": self.x_val, "test": self.x}
        if split not in views:
            raise ConfigError(f"split must be one of {{train, val, test}} (got {split!r})")
        return views[split]

    def for_split(self, split: str) -> "TransactionGraph":
        """The graph a model of ``split`` may see, as IBM Multi-GNN builds it.

        ``train``: the training edges only; ``val``: training and validation edges; ``test``:
        every edge. Node features are that split's view (``x_train``, ``x_val``, ``x``); the
        edges to score are the new ones, ``split == <split>`` (``train_mask``, ``val_mask`` or
        ``test_mask`` of the result). Synthetic (SMOTE) rows stay with every view: they are
        training rows. Arrays are copies when edges are dropped.

        Raises:
            ConfigError: ``split`` is not one of train, val, test.
        """
        code = {"train": TRAIN, "val": VAL, "test": TEST}
        if split not in code:
            raise ConfigError(f"split must be one of {{train, val, test}} (got {split!r})")
        keep = None if split == "test" else np.flatnonzero(self.split <= code[split])
        x = self.node_features_of(split)

        def edges(a):
            return a if keep is None else np.asarray(a)[..., keep]

        return TransactionGraph(
            nodes=self.nodes, edge_index=edges(self.edge_index), edge_row=edges(self.edge_row),
            timestamp=edges(self.timestamp), x=x, node_feature_names=list(self.node_feature_names),
            edge_attr=self.edge_attr if keep is None else np.asarray(self.edge_attr)[keep],
            edge_feature_names=list(self.edge_feature_names), y=edges(self.y), node_y=self.node_y,
            split=edges(self.split), class_weights=dict(self.class_weights),
            raw=self.raw if keep is None else self.raw[keep], vocab=self.vocab,
            synthetic_edge_attr=self.synthetic_edge_attr, synthetic_y=self.synthetic_y)

    # --- sizes and masks ---------------------------------------------------------------------
    @property
    def num_nodes(self) -> int:
        """N, the number of accounts."""
        return int(self.nodes.height)

    @property
    def num_edges(self) -> int:
        """E, the number of transactions."""
        return int(self.edge_index.shape[1])

    @property
    def train_mask(self) -> np.ndarray:
        """Bool array of shape (E,): training edges."""
        return self.split == TRAIN

    @property
    def val_mask(self) -> np.ndarray:
        """Bool array of shape (E,): validation edges."""
        return self.split == VAL

    @property
    def test_mask(self) -> np.ndarray:
        """Bool array of shape (E,): test edges."""
        return self.split == TEST

    def __repr__(self) -> str:
        synth = 0 if self.synthetic_y is None else len(self.synthetic_y)
        return (f"TransactionGraph(num_nodes={self.num_nodes}, num_edges={self.num_edges}, "
                f"node_features={len(self.node_feature_names)}, "
                f"edge_features={len(self.edge_feature_names)}, "
                f"laundering={int(np.count_nonzero(self.y))}, synthetic={synth})")

    # --- conversions -------------------------------------------------------------------------
    def to_pyg(self, *, reverse_edges: bool = False):
        """The graph as a PyTorch Geometric object.

        Args:
            reverse_edges: when True, a ``HeteroData`` with edge types ``('node', 'to', 'node')``
                and ``('node', 'rev_to', 'node')`` (the flipped edges with the same attributes),
                as Multi-GNN's reverse message passing uses.

        Returns:
            ``Data`` with ``x`` (N, F), ``edge_index`` (2, E), ``edge_attr`` (E, D), ``y`` (E,),
            ``timestamp`` (E,), ``edge_row`` (E,), ``train_mask``/``val_mask``/``test_mask``
            (E,), ``node_y`` (N,), feature names and class weights; or the ``HeteroData``.
        """
        from amlgraph.graph._pyg import to_pyg

        return to_pyg(self, reverse_edges=reverse_edges)

    def to_networkx(self, *, force: bool = False, limit: int = 2_000_000):
        """The graph as a ``networkx.MultiDiGraph`` keeping every parallel transaction.

        Args:
            force: build it even above ``limit`` edges.
            limit: the largest number of edges built without ``force``.

        Returns:
            A MultiDiGraph whose edge keys are ``edge_row``.

        Raises:
            ConfigError: above ``limit`` edges without ``force``.
        """
        from amlgraph.graph._networkx import to_networkx

        return to_networkx(self, force=force, limit=limit)

    # --- persistence -------------------------------------------------------------------------
    def to_payload(self, *, coded: bool = True) -> tuple[dict[str, pl.DataFrame], dict[str, np.ndarray],
                                                        dict[str, Any]]:
        """The graph as (tables, arrays, values) for ``CheckpointStore.save``.

        Args:
            coded: store the node views XOR-coded and ``edge_attr`` by column (``graph._coding``;
                smaller once compressed); False for a checkpoint written plain, to memory-map.

        Returns:
            ``tables`` (``nodes``), ``arrays`` (every numeric array, the raw columns as
            ``raw_<column>``) and JSON ``values`` (names, class weights, vocabularies).
        """
        pieces = {name: getattr(self, name) for name in _ARRAYS if name not in ("x", "node_y")}
        for column in RAW_COLUMNS:
            pieces[f"raw_{column}"] = self.raw[column].to_numpy()
        synthetic = None
        if self.synthetic_edge_attr is not None:
            synthetic = (self.synthetic_edge_attr, self.synthetic_y)
        return graph_payload(nodes=self.nodes, x=self.x, node_y=self.node_y, pieces=pieces,
                             synthetic=synthetic, node_feature_names=self.node_feature_names,
                             edge_feature_names=self.edge_feature_names,
                             class_weights=self.class_weights, vocab=self.vocab,
                             raw_dtypes={c: self.raw.schema[c] for c in RAW_COLUMNS},
                             x_views={"x_train": self.x_train, "x_val": self.x_val}
                             if self.has_split_views else None, coded=coded)

    @classmethod
    def from_checkpoint(cls, ckpt, *, nodes: pl.DataFrame | None = None,
                        arrays: dict[str, Any] | None = None) -> "TransactionGraph":
        """Rebuild the graph from a loaded checkpoint: its arrays read-only, decoded from the
        compressed files of the pipeline's checkpoint (or memory-mapped where a file is plain).

        Args:
            ckpt: a checkpoint with ``table(name)``, ``array(name, mmap=True)`` and ``value(name)``
                holding what ``to_payload`` returned.
            nodes, arrays: the node table and the arrays a linked checkpoint does not hold
                (rebuilt from its sources by ``load_graph``; see ``steps.graph_created``).

        Returns:
            The graph; its arrays are read-only (decoded copies, or memory maps of plain files).

        Raises:
            CheckpointError: when an expected part of the checkpoint is missing.
        """
        try:
            names = list(_ARRAYS) + [f"raw_{c}" for c in RAW_COLUMNS] + list(ckpt.value("node_views"))
            if ckpt.value("has_synthetic"):
                names += ["synthetic_edge_attr", "synthetic_y"]
            given = arrays or {}
            got = {**_load_arrays(ckpt, [n for n in names if n not in given]), **given}
            got = decode(got, _optional_value(ckpt, "coding"))
            edge_arrays = {name: got[name] for name in _ARRAYS}
            raw_dtypes = ckpt.value("raw_dtypes")
            raw = pl.DataFrame({
                c: pl.Series(c, got[f"raw_{c}"], dtype=_polars_dtype(raw_dtypes[c])) for c in RAW_COLUMNS
            })
            views = {name: got[name] for name in ckpt.value("node_views")}
            synthetic = {name: got[name] for name in ("synthetic_edge_attr", "synthetic_y") if name in got}
            return cls(
                nodes=ckpt.table("nodes") if nodes is None else nodes,
                node_feature_names=list(ckpt.value("node_feature_names")),
                edge_feature_names=list(ckpt.value("edge_feature_names")),
                class_weights={int(k): float(v) for k, v in ckpt.value("class_weights").items()},
                vocab=ckpt.value("vocab"),
                raw=raw,
                **edge_arrays,
                **synthetic,
                **views,
            )
        except (KeyError, FileNotFoundError) as exc:
            raise CheckpointError(
                f"checkpoint {GRAPH_STEP!r} lacks {exc}; it was not written by this version of "
                "amlgraph: rerun with `amlgraph run ... --resume-from graph_created`") from exc


def _optional_value(ckpt, name: str) -> Any:
    names = getattr(ckpt, "values", None)
    if names is not None:
        return ckpt.value(name) if name in names else None
    try:
        return ckpt.value(name)
    except KeyError:
        return None


def _load_arrays(ckpt, names: list[str]) -> dict[str, Any]:
    """The named arrays of ``ckpt``, two at a time: a compressed array is decoded as it is read
    (zstd releases the GIL), a plain one memory-mapped."""
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="amlgraph-load") as pool:
        futures = {name: pool.submit(ckpt.array, name, mmap=True) for name in names}
        return {name: f.result() for name, f in futures.items()}


def graph_payload(*, nodes: pl.DataFrame, x: Any, node_y: Any, pieces: dict[str, Any],
                  synthetic: tuple[Any, Any] | None, node_feature_names, edge_feature_names,
                  class_weights, vocab, raw_dtypes: dict,
                  x_views: dict[str, Any] | None = None, coded: bool = False) -> tuple[dict, dict, dict[str, Any]]:
    """The layout of a graph checkpoint, the one place that knows it: (tables, arrays, values).

    Args:
        nodes: the node table (node_id, bank, account).
        x: node features of shape (num_nodes, F); node_y: node labels of shape (num_nodes,).
        pieces: the edge arrays by name (``edge_attr``, ``edge_index``, ``edge_row``,
            ``timestamp``, ``y``, ``split`` and ``raw_<column>`` for every raw column), each an
            array or anything the store writes as one (the pipeline passes arrays made of
            chunk pieces, so that a large graph is never held whole in memory).
        synthetic: ``(synthetic_edge_attr, synthetic_y)`` or None.
        raw_dtypes: Polars dtype of every raw column.
        x_views: ``{"x_train": ..., "x_val": ...}`` when the node features have a view per
            split (stored beside ``x``, the test view), else None.

    Returns:
        ``({"nodes": nodes}, arrays in file order, JSON values)``.
    """
    missing = [n for n in _ARRAYS if n not in ("x", "node_y") and n not in pieces]
    missing += [f"raw_{c}" for c in RAW_COLUMNS if f"raw_{c}" not in pieces]
    if missing:
        raise ConfigError(f"a graph payload needs the arrays {missing}")
    arrays: dict[str, Any] = {"edge_attr": pieces["edge_attr"]}  # the costliest first
    for name in _ARRAYS:
        arrays.setdefault(name, x if name == "x" else node_y if name == "node_y" else pieces[name])
    for column in RAW_COLUMNS:
        arrays[f"raw_{column}"] = pieces[f"raw_{column}"]
    if synthetic is not None:
        arrays["synthetic_edge_attr"], arrays["synthetic_y"] = synthetic
    for name, view in (x_views or {}).items():
        arrays[name] = view
    values = graph_values(node_feature_names=node_feature_names, edge_feature_names=edge_feature_names,
                          class_weights=class_weights, vocab=vocab, raw_dtypes=raw_dtypes,
                          has_synthetic=synthetic is not None, node_views=sorted(x_views or {}))
    if coded:
        arrays, values["coding"] = encode(arrays), dict(CODING)
    return {"nodes": nodes}, arrays, values


def graph_values(*, node_feature_names, edge_feature_names, class_weights, vocab, raw_dtypes: dict,
                 has_synthetic: bool, node_views: list[str]) -> dict[str, Any]:
    """The JSON values of a graph checkpoint (whole or linked; ``graph_payload``)."""
    return {
        "node_feature_names": list(node_feature_names),
        "edge_feature_names": list(edge_feature_names),
        "class_weights": {str(k): float(v) for k, v in class_weights.items()},
        "vocab": vocab,
        "has_synthetic": has_synthetic,
        "node_views": list(node_views),
        "raw_dtypes": {c: str(raw_dtypes[c]) for c in RAW_COLUMNS},
    }


def _validate(g: TransactionGraph) -> None:
    """Coerce dtypes without copying where they already match; fail clearly on inconsistency."""
    missing = [c for c in NODE_COLUMNS if c not in g.nodes.columns]
    if missing:
        raise ConfigError(f"nodes must have columns {list(NODE_COLUMNS)} (missing {missing})")
    n = g.nodes.height
    g.edge_index = _ints(g.edge_index, "edge_index")
    if g.edge_index.ndim != 2 or g.edge_index.shape[0] != 2:
        raise ConfigError(f"edge_index must have shape (2, E) (got {g.edge_index.shape})")
    e = g.edge_index.shape[1]
    if e and (g.edge_index.min() < 0 or g.edge_index.max() >= n):
        raise ConfigError(f"edge_index holds node ids outside [0, {n}) (got min "
                          f"{g.edge_index.min()}, max {g.edge_index.max()})")
    node_id = g.nodes["node_id"].to_numpy()
    if len(node_id) and (node_id[0] != 0 or node_id[-1] != n - 1
                         or not np.array_equal(node_id, np.arange(n))):
        raise ConfigError(f"nodes.node_id must be 0..{n - 1} in order")
    g.edge_row = _ints(g.edge_row, "edge_row")
    g.timestamp = _ints(g.timestamp, "timestamp")
    g.y = _ints(g.y, "y", np.int8)
    g.split = _ints(g.split, "split", np.int8)
    g.node_y = _ints(g.node_y, "node_y", np.int8)
    for name in ("edge_row", "timestamp", "y", "split"):
        _shape(getattr(g, name), name, (e,))
    _shape(g.node_y, "node_y", (n,))
    g.x = _floats(g.x, "x")
    g.edge_attr = _floats(g.edge_attr, "edge_attr")
    _shape(g.x, "x", (n, len(g.node_feature_names)), "(N, len(node_feature_names))")
    for name in ("x_train", "x_val"):
        view = getattr(g, name)
        if view is None:
            setattr(g, name, g.x)
        else:
            setattr(g, name, _floats(view, name))
            _shape(getattr(g, name), name, (n, len(g.node_feature_names)), "(N, len(node_feature_names))")
    _shape(g.edge_attr, "edge_attr", (e, len(g.edge_feature_names)),
           "(E, len(edge_feature_names))")
    if e and (g.y.min() < 0 or g.y.max() > 1):
        raise ConfigError(f"y must hold 0 or 1 (got values in [{g.y.min()}, {g.y.max()}])")
    if e and (g.split.min() < TRAIN or g.split.max() > TEST):
        raise ConfigError(f"split must hold 0 (train), 1 (val) or 2 (test) "
                          f"(got values in [{g.split.min()}, {g.split.max()}])")
    missing = [c for c in RAW_COLUMNS if c not in g.raw.columns]
    if missing or g.raw.height != e:
        raise ConfigError(f"raw must have {e} rows and columns {list(RAW_COLUMNS)} "
                          f"(got {g.raw.height} rows, missing {missing})")
    try:
        g.class_weights = {int(k): float(v) for k, v in g.class_weights.items()}
    except (TypeError, ValueError, AttributeError) as exc:
        raise ConfigError(f"class_weights must map class ints to floats "
                          f"(got {g.class_weights!r})") from exc
    if (g.synthetic_edge_attr is None) != (g.synthetic_y is None):
        raise ConfigError("synthetic_edge_attr and synthetic_y must be given together")
    if g.synthetic_edge_attr is not None:
        g.synthetic_edge_attr = _floats(g.synthetic_edge_attr, "synthetic_edge_attr")
        g.synthetic_y = _ints(g.synthetic_y, "synthetic_y", np.int8)
        m = len(g.synthetic_y)
        _shape(g.synthetic_y, "synthetic_y", (m,))
        _shape(g.synthetic_edge_attr, "synthetic_edge_attr", (m, len(g.edge_feature_names)),
               "(len(synthetic_y), len(edge_feature_names))")


def _ints(a, name: str, dtype=np.int64) -> np.ndarray:
    a = np.asanyarray(a)  # keeps a memory map a memory map
    if a.dtype.kind not in "iub" and not (a.size == 0 and a.dtype.kind == "f"):
        raise ConfigError(f"{name} must hold integers (got dtype {a.dtype})")
    return a if a.dtype == dtype else a.astype(dtype)


def _floats(a, name: str) -> np.ndarray:
    a = np.asanyarray(a)
    if a.dtype.kind not in "fiub":
        raise ConfigError(f"{name} must hold numbers (got dtype {a.dtype})")
    return a if a.dtype == np.float32 else a.astype(np.float32)


def _shape(a: np.ndarray, name: str, expected: tuple, text: str | None = None) -> None:
    if a.shape != expected:
        want = f"{text} = {expected}" if text else str(expected)
        raise ConfigError(f"{name} must have shape {want} (got {a.shape})")


def _polars_dtype(name: str) -> pl.DataType:
    dtype = getattr(pl, name, None)
    if dtype is None:
        raise CheckpointError(f"unknown column dtype {name!r} in checkpoint {GRAPH_STEP!r}")
    return dtype
