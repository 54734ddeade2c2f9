"""``AMLDataset``: an IBM AML data set as a PyTorch Geometric dataset, processed by amlgraph.

Layout of ``root`` (PyG's convention)::

    root/raw/<name>_Trans.csv          the IBM transactions (also .csv.gz / .csv.zst)
    root/raw/<name>_accounts.csv       optional
    root/raw/<name>_Patterns.txt       optional
    root/processed/<name>/             amlgraph's checkpoint directory (nothing pickled)

``process()`` runs the amlgraph pipeline, which is resumable: a second construction (or one
after an interrupted first) loads every valid checkpoint and recomputes only what is missing
or stale (an edited raw file, other options). The processed data are the checkpoints, read by
memory-mapping ``.npy`` arrays and Parquet tables: PyG's ``data.pt``, ``pre_transform.pt`` and
``pre_filter.pt`` (pickles read back with ``weights_only=False``) are never written or read.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Callable

import numpy as np
from torch_geometric.data import InMemoryDataset

from amlgraph.errors import ConfigError, InputError
from amlgraph.schema import TEST, TRAIN, VAL

SPLITS = {"train": TRAIN, "val": VAL, "test": TEST}
_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
_TRANS_SUFFIXES = ("", ".gz", ".zst")
#: Pipeline options a dataset may not set: the dataset decides where the data and checkpoints are.
_OWN = ("data_path", "checkpoint_dir")


class AMLDataset(InMemoryDataset):
    r"""An IBM AML transactions data set (e.g. HI-Small) as one transaction graph.

    One node per account, one directed edge per transaction, edge labels ``y`` (1: laundering),
    normalised node features ``x`` and edge features ``edge_attr``, a temporal split of the
    edges (Multi-GNN's day buckets, 60/20/20 by default) and the class weights of the training
    labels. The IBM files cannot be downloaded automatically: place them in ``root/raw/``.

    With ``split`` given, the graph is the one a model of that split may see, built as IBM's
    Multi-GNN builds it: ``"train"``: the training edges only; ``"val"``: training and
    validation edges, ``val_mask`` marking the validation edges to evaluate; ``"test"``: all
    edges, ``test_mask`` marking the test edges. Every mask marks the graph's edges of its split
    (so the ``"val"`` graph's ``train_mask`` marks its training edges). Edges keep their order in
    the full graph, and ``edge_row`` maps each to its row of the Trans file. When the run computed
    node features per split (amlgraph's default), ``x`` is the split's view: the training graph's
    node features come from training rows only.

    Args:
        root: the data set's directory (``raw/`` and ``processed/`` below it).
        name: the data set's file prefix: ``<name>_Trans.csv`` in ``root/raw``.
        split: ``None`` (the full graph with ``train_mask``/``val_mask``/``test_mask``),
            ``"train"``, ``"val"`` or ``"test"``.
        transform: applied to the ``Data`` object on every access.
        pre_transform: applied once to the ``Data`` object when the dataset is constructed. Its
            result is not stored (processed data are amlgraph checkpoints, never pickles), so it
            runs on every construction.
        pre_filter: accepted for the PyG signature; a one-graph dataset filters nothing, so it
            must be None.
        force_reload: recompute every step (amlgraph's ``fresh``).
        log: print the pipeline's progress.
        options: further ``amlgraph.PipelineConfig`` fields, e.g. ``{"sample_size": 100_000,
            "threads": 2}``; part of every checkpoint key, so other options recompute what they
            change.

    Raises:
        ConfigError: an unknown ``split``, a bad ``name``, a ``pre_filter``, or options that name
            the data or checkpoint directory.
        InputError: the Trans file is not in ``root/raw`` (from ``download``), or a bad input file.

    Example::

        ds = AMLDataset("data/ibm", name="HI-Small", split="train")
        data = ds[0]   # Data(x, edge_index, edge_attr, y, timestamp, edge_row, masks, ...)
    """

    def __init__(self, root: str | Path, name: str = "HI-Small", split: str | None = None,
                 transform: Callable | None = None, pre_transform: Callable | None = None,
                 pre_filter: Callable | None = None, force_reload: bool = False, log: bool = True,
                 options: dict[str, Any] | None = None) -> None:
        if not isinstance(name, str) or not _NAME_RE.match(name):
            raise ConfigError(f"name must be a file prefix such as 'HI-Small' (got {name!r})")
        if split is not None and split not in SPLITS:
            raise ConfigError(f"split must be one of None, 'train', 'val', 'test' (got {split!r})")
        if pre_filter is not None:
            raise ConfigError("pre_filter does not apply: an AMLDataset holds one graph")
        options = dict(options or {})
        bad = [k for k in _OWN if k in options]
        if bad:
            raise ConfigError(f"options may not set {bad}: the dataset keeps its data in root/raw "
                              "and its checkpoints in root/processed/<name>")
        self.name = name
        self.split = split
        self.options = options
        self.run_result = None  # the amlgraph PipelineResult of this construction
        super().__init__(str(root), transform, pre_transform, None, log=log, force_reload=force_reload)
        data = self._graph_data()
        if self.pre_transform is not None:
            data = self.pre_transform(data)
        self.data, self.slices = data, None

    # --- PyG's contract ---------------------------------------------------------------------------
    @property
    def raw_file_names(self) -> list[str]:
        """``<name>_Trans.csv`` (or its .gz / .zst form when that is the one present)."""
        base = f"{self.name}_Trans.csv"
        for suffix in _TRANS_SUFFIXES:
            if (Path(self.raw_dir) / (base + suffix)).is_file():
                return [base + suffix]
        return [base]

    @property
    def processed_dir(self) -> str:
        """``root/processed/<name>``: the amlgraph checkpoint directory."""
        return str(Path(self.root) / "processed" / self.name)

    @property
    def processed_file_names(self) -> list[str]:
        return ["amlgraph-store.json", "graph_created"]

    @property
    def num_classes(self) -> int:
        return 2

    def download(self) -> None:
        """Nothing can be downloaded: the IBM files are distributed under their own terms."""
        raw = Path(self.raw_dir)
        raise InputError(
            f"the IBM AML data set {self.name!r} is not in {raw} and cannot be downloaded "
            "automatically",
            path=str(raw / f"{self.name}_Trans.csv"),
            hint=(f"place {self.name}_Trans.csv (optionally {self.name}_accounts.csv and "
                  f"{self.name}_Patterns.txt) from the IBM 'Transactions for Anti Money Laundering' "
                  f"data set in {raw}, or generate a synthetic one there with "
                  f"`amlgraph synth --preset hi-small --out {raw}` and name='HI-Small'"))

    def _process(self) -> None:
        # PyG's version skips process() when the processed files exist and pickles the
        # pre_transform's repr beside them. Here process() always runs: the pipeline itself loads
        # what is valid and recomputes what is stale (e.g. a replaced raw file), and nothing is
        # pickled.
        Path(self.processed_dir).mkdir(parents=True, exist_ok=True)
        self.process()

    def process(self) -> None:
        """Run (or resume) the amlgraph pipeline on ``raw/`` into ``processed/<name>``."""
        from amlgraph.runner import run_preprocessing

        trans = Path(self.raw_dir) / self.raw_file_names[0]
        cfg = {**self.options, "data_path": trans, "checkpoint_dir": Path(self.processed_dir),
               "quiet": not self.log, "fresh": bool(self.force_reload), "wait": True}
        self.run_result = run_preprocessing(cfg)

    # --- the graph ----------------------------------------------------------------------------------
    def _graph_data(self):
        graph = self.run_result.graph
        return graph.to_pyg() if self.split is None else split_graph(graph, self.split).to_pyg()

    def __repr__(self) -> str:
        return f"{self.__class__.__name__}({self.name!r}, split={self.split!r})"


def split_graph(graph, split: str):
    """The graph a model of ``split`` may see, as Multi-GNN builds it per split.

    Args:
        graph: the full ``TransactionGraph``.
        split: ``"train"`` (training edges), ``"val"`` (training and validation edges) or
            ``"test"`` (all edges).

    Returns:
        A ``TransactionGraph`` with those edges in their order in ``graph`` (with their
        ``split`` codes, so its masks mark each split's edges) and the split's node features
        (``x_train``, ``x_val`` or ``x`` when the run computed a view per split, else ``x``).
    """
    import dataclasses

    import polars as pl

    if split not in SPLITS:
        raise ConfigError(f"split must be 'train', 'val' or 'test' (got {split!r})")
    code = SPLITS[split]
    node_view = getattr(graph, "node_features_of", None)
    x = node_view(split) if node_view is not None else graph.x
    changes: dict[str, Any] = {"x": x}
    if hasattr(graph, "x_train"):  # one view left: the split's own
        changes.update(x_train=None, x_val=None)
    if code == TEST:
        return dataclasses.replace(graph, **changes)
    keep = np.asarray(graph.split) <= code
    return dataclasses.replace(
        graph, edge_index=graph.edge_index[:, keep], edge_row=graph.edge_row[keep],
        timestamp=graph.timestamp[keep], edge_attr=graph.edge_attr[keep], y=graph.y[keep],
        split=graph.split[keep], raw=graph.raw.filter(pl.Series(keep)), **changes)
