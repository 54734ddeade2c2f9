"""Chunk tasks: load a chunk's inputs from the store, call a step function, save the result.

Every function here has the shape ``task(store, name, key, **json_kwargs) -> dict`` so that an
in-process loop, a process pool and a Dask worker can all run it (see ``amlgraph.runner._chunks``).
The step functions they call know nothing of the store.
"""
from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from amlgraph.errors import CheckpointError


def load_input(store: Any, name: str, key: str | None = None):
    """Checkpoint ``name`` (with ``key`` when given), or a CheckpointError saying to rerun."""
    ckpt = store.load(name, key=key)
    if ckpt is None:
        ok, reason = store.check(name, key) if key else (False, "missing")
        raise CheckpointError(f"input checkpoint {name} is not usable ({reason}); "
                              "rerun the same command to recompute it")
    return ckpt


def scan_tables(store: Any, names: list[str], table: str, schema: dict | None = None) -> pl.LazyFrame:
    """One LazyFrame over the same table of several checkpoints (Parquet scan when on disk).

    With ``schema``, a column of it that a checkpoint's table lacks is read as nulls.
    """
    ckpts = [load_input(store, n) for n in names]
    paths = [c.table_path(table) for c in ckpts]
    if paths and all(p is not None for p in paths):
        if schema is None:
            return pl.scan_parquet([str(p) for p in paths])
        return pl.scan_parquet([str(p) for p in paths], schema=schema, missing_columns="insert")
    frames = [c.table(table).lazy() for c in ckpts]
    if schema is not None:
        frames = [f.with_columns(pl.lit(None, dtype).alias(name) for name, dtype in schema.items()
                                 if name not in f.collect_schema()).select(list(schema)) for f in frames]
    return pl.concat(frames, how="vertical")


def encode_chunk(store: Any, name: str, key: str, *, read_chunk: str, boundaries: list[int],
                 vocab: dict, chunk: int) -> dict:
    """Raw reader batch -> coded transactions with their split, in row order."""
    from amlgraph.steps.data_loaded import assign_split, encode_transactions, restore_accounts

    raw_ckpt, index = load_input(store, read_chunk), load_input(store, "data_loaded_index")
    keys = np.asarray(index.array("keys")) if "keys" in index.arrays else None
    if keys is not None:
        # With the keys on both sides, no account string is needed: not even read.
        path = raw_ckpt.table_path("raw")
        strings = ("from_account", "to_account")
        raw = (pl.scan_parquet(path).drop(strings, strict=False).collect() if path is not None
               else raw_ckpt.table("raw").drop(strings, strict=False))
        nodes = None
    else:
        raw, nodes = restore_accounts(raw_ckpt.table("raw")), index.table("nodes")
    tx = encode_transactions(raw, nodes, vocab, keys=keys)
    split = assign_split(tx["timestamp"].to_numpy(), tuple(boundaries), unit=1)  # epoch seconds
    tx = tx.with_columns(pl.Series("split", split, dtype=pl.Int8))
    # Uncompressed, like the reader batches: account keys, node ids and amounts are nearly
    # incompressible (LZ4 saves ~20-35 % of these tables' bytes for ~40 % more write time, and
    # every later step decompresses them again; docs/BENCHMARKS.md).
    store.save(name, step="data_loaded", key=key, chunk=chunk, tables={"transactions": tx},
               values={"split_counts": np.bincount(split, minlength=3).tolist()},
               metadata={"rows": tx.height}, compress=False)
    return {"rows": tx.height}


def partition_chunk(store: Any, name: str, key: str, *, data_chunks: list[str], size: int, parts: int,
                    chunk: int) -> dict:
    """Consecutive data chunks' rows filed by account partition, for node_features.

    Several data chunks go into one partition checkpoint so that a node chunk, which reads its
    partition from every partition checkpoint, opens a few files rather than one per data chunk.
    See ``steps.node_features.partition_rows``.
    """
    from amlgraph.steps.node_features import INPUT_COLUMNS, partition_rows

    tx = (scan_tables(store, data_chunks, "transactions").select(list(INPUT_COLUMNS) + ["split"])
          .collect())
    by_src, by_dst = partition_rows(tx, size)
    # About two row groups per partition: a scan for one partition reads only its own groups.
    rows = max(1_024, min(262_144, by_src.height // max(1, 2 * parts)))
    store.save(name, step="node_features", key=key, chunk=chunk,
               tables={"by_src": by_src, "by_dst": by_dst}, row_group_rows=rows,
               metadata={"rows": tx.height, "by_dst_rows": by_dst.height})
    return {"rows": tx.height}


def node_chunk(store: Any, name: str, key: str, *, lo: int, hi: int, usd_per_unit: dict | None,
               vocab: dict, train_only: bool, chunk: int, data_chunks: list[str] | None = None,
               partitions: list[str] | None = None) -> dict:
    """Node features for node ids [lo, hi), from only the rows that touch them.

    With ``partitions`` (``partition_chunk`` outputs, node chunk ``chunk`` = partition ``chunk``)
    the rows are read from the partition's own row groups; otherwise from ``data_chunks`` with
    the node-id range as a filter. Either way the Parquet reader materialises only matching rows,
    so memory follows the chunk, not the input.
    """
    from amlgraph.steps.node_features import INPUT_COLUMNS, node_features

    # Only the columns node_features reads are decoded (the filter's own columns are read for
    # the filter either way).
    needed = list(INPUT_COLUMNS)
    if partitions:
        mine = pl.col("part") == chunk
        if train_only:
            mine = mine & (pl.col("split") == 0)
        tx = pl.concat([scan_tables(store, partitions, table).filter(mine).select(needed)
                        for table in ("by_src", "by_dst")]).collect(engine="streaming")
        tx = tx.sort("row")  # node_features sums in row order
    else:
        touches = pl.col("src").is_between(lo, hi - 1) | pl.col("dst").is_between(lo, hi - 1)
        if train_only:
            touches = touches & (pl.col("split") == 0)
        tx = (scan_tables(store, data_chunks or [], "transactions").filter(touches).select(needed)
              .collect(engine="streaming"))
    rates = {int(k): float(v) for k, v in usd_per_unit.items()} if usd_per_unit is not None else None
    feats = node_features(tx, np.arange(lo, hi, dtype=np.int64), usd_per_unit=rates, vocab=vocab)
    store.save(name, step="node_features", key=key, chunk=chunk, tables={"features": feats},
               metadata={"num_accounts": feats.height, "num_features": feats.width - 1})
    return {"accounts": feats.height}


def edge_chunk(store: Any, name: str, key: str, *, data_chunk: str, t0: int, vocab: dict,
               chunk: int) -> dict:
    """Per-transaction features and labels for one row chunk."""
    from amlgraph.steps.edge_features import edge_features

    tx = load_input(store, data_chunk).table("transactions")
    feats = edge_features(tx, t0=t0, vocab=vocab)
    store.save(name, step="edge_features", key=key, chunk=chunk, tables={"features": feats},
               metadata={"rows": feats.height, "num_features": feats.width})
    return {"rows": feats.height}


#: Rows of the edge matrix filled at a time (8192 rows of ~20 float32 columns: ~0.7 MB).
_MATRIX_BLOCK_ROWS = 8192


def edge_matrix(feats: pl.DataFrame, columns: list[str], scaled: list[str], scaler: Any,
                log_columns: list[str]) -> np.ndarray:
    """Feature table -> float32 matrix of shape (rows, len(columns)); ``scaled`` columns standardised."""
    # Row block by row block, each column of the block computed on float64 and written into the
    # block: the same elementwise operations as on whole columns (so the same values), while
    # the block of the (row-major) output being filled stays in cache. Whole-column writes
    # strided across the output cost ~3x as much.
    out = np.empty((feats.height, len(columns)), dtype=np.float32)
    position = {c: i for i, c in enumerate(scaled)}
    logged = set(log_columns)
    plan = []
    for j, name in enumerate(columns):
        i = position.get(name)
        plan.append((j, feats[name].to_numpy(), None if i is None else (scaler.mean_[i], scaler.scale_[i]),
                     name in logged))
    for start in range(0, feats.height, _MATRIX_BLOCK_ROWS):
        stop = min(feats.height, start + _MATRIX_BLOCK_ROWS)
        block = out[start:stop]
        for j, values, affine, log in plan:
            x = values[start:stop].astype(np.float64, copy=False)
            if affine is not None:
                if log:
                    x = np.log1p(np.maximum(x, 0.0))
                x = (x - affine[0]) / affine[1]
            block[:, j] = x
    return out
