"""How the runner computes each step: plan chunks, run them, assemble, save.

One function per step, named after it, taking the ``Run``. The arithmetic lives in
``amlgraph.steps``; these functions only move data between the store and those functions.
Every step checkpoint lists the chunk checkpoints it was assembled from under the value
``parts`` so that the runner can tell when one of them has gone missing or bad.
"""
from __future__ import annotations

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import polars as pl

from amlgraph.runner._chunks import ChunkTask, default_chunk_rows, default_chunk_size, plan_ranges
from amlgraph.store._keys import make_key
from amlgraph._prefetch import ahead
from amlgraph.runner._tasks import edge_matrix, load_input, scan_tables

INDEX = "data_loaded_index"
READ = "data_loaded_read"
#: What a reader batch checkpoint holds (the rows; since 2 their summary; since 3 no account
#: column whose rows all have keys, and no compression). Part of its key: bump it when that
#: changes, so that batches parsed by an older version are parsed again. (The key's code version
#: covers the reader and steps.data_loaded, not this module.)
READ_FORMAT = 3


def _parts(names_keys: list[tuple[str, str]]) -> list[dict]:
    return [{"name": n, "key": k} for n, k in names_keys]


def _value(run: Any, step: str, name: str) -> Any:
    return run.loaded[step].value(name)


def _data_chunks(run: Any) -> list[str]:
    return [p["name"] for p in _value(run, "data_loaded", "parts") if "_chunk_" in p["name"]
            and not p["name"].startswith(READ)]


# --- 1. data_loaded ------------------------------------------------------------------------------
def _read(run: Any, chunk_rows: int) -> dict:
    """Parse every Trans file into raw typed batches, one checkpoint each.

    A file whose batches are all checkpointed under the same key is not parsed again, so a file
    added to the data directory (the next day's transactions) costs only its own parsing here.
    Row ids run on across files: a file's first row id is the number of rows before it.
    """
    store, cfg = run.store, run.cfg
    forced = "data_loaded" in run.forced
    parts: list[tuple[str, str]] = []
    rows = bad = offset = 0
    quarantine = []
    remaining = cfg.sample_size
    for j, path in enumerate(run.inputs.trans_files):
        if remaining is not None and remaining <= 0:
            break
        plan = {"file": run.files["trans" if j == 0 else f"trans_{j}"], "offset": offset,
                "first_chunk": len(parts), "limit": remaining, "on_bad_rows": cfg.on_bad_rows,
                "chunk_rows": chunk_rows, "code": run.reader_code, "format": READ_FORMAT}
        got = None if forced else _parsed(store, f"{READ}_{j}", make_key({"read": plan}))
        if got is None:
            got = _parse_file(run, j, path, plan, forced)
        else:
            run.log.ok(f"{path.name}: already parsed ({got['rows']:,} rows)")
        parts += [(p["name"], p["key"]) for p in got["parts"]]
        rows += got["rows"]
        bad += got["bad_rows"]
        offset += got["file_rows"]
        quarantine += [got["quarantine"]] if got["quarantine"] else []
        if remaining is not None:
            remaining -= got["file_rows"]
    if rows == 0:
        from amlgraph.errors import InputError

        raise InputError("no valid transaction rows to build a graph from", path=str(run.inputs.trans),
                         hint="check the file, or the --sample-size and --on-bad-rows options")
    if bad:
        run.log.line(f"⚠  {bad:,} bad rows quarantined to {', '.join(quarantine)}")
    return {"rows": rows, "bad_rows": bad, "quarantine": quarantine or None, "parts": _parts(parts)}


def _parsed(store: Any, marker: str, key: str) -> dict | None:
    """The summary of a file parsed earlier under ``key`` whose batches are all still valid."""
    done = store.load(marker, key=key)
    if done is None:
        return None
    summary = done.value("summary")
    if not all(store.check(p["name"], p["key"])[0] for p in summary["parts"]):
        return None
    return summary


def _parse_file(run: Any, j: int, path: Any, plan: dict, forced: bool) -> dict:
    from amlgraph.ingest import read_transactions
    from amlgraph.steps.data_loaded import batch_summary, drop_keyed_accounts, with_account_keys

    store, first = run.store, plan["first_chunk"]
    reader = read_transactions(path, on_bad_rows=run.cfg.on_bad_rows, batch_rows=plan["chunk_rows"],
                               limit_rows=plan["limit"])
    parts, rows = [], 0

    def save(name: str, ckey: str, i: int, batch: pl.DataFrame) -> None:
        if plan["offset"]:
            batch = batch.with_columns(pl.col("row") + plan["offset"])
        batch = with_account_keys(batch)
        # What data_loaded needs of every batch before it can encode any, taken while the batch
        # is in memory: the index, vocabularies, split and rates then cost no second scan.
        summary, keys, pairs = batch_summary(batch)
        store.save(name, step="data_loaded", key=ckey, chunk=i,
                   tables={"raw": drop_keyed_accounts(batch), "pairs": pairs},
                   arrays={} if keys is None else {"keys": keys}, values={"summary": summary},
                   metadata={"rows": batch.height}, compress=False)  # see tasks.encode_chunk

    # Batch i is keyed and written in a second thread while batch i + 1 is validated (both
    # release the GIL); at most one save is in flight, so memory holds two batches, not more.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="amlgraph-save") as pool:
        pending = None
        for i, batch in enumerate(reader, start=first):
            name = f"{READ}_chunk_{i}"
            ckey = make_key({"read": plan, "chunk": i})
            if forced or not store.check(name, ckey)[0]:
                if pending is not None:
                    pending.result()
                pending = pool.submit(save, name, ckey, i, batch)
            parts.append({"name": name, "key": ckey})
            rows += batch.height
            del batch
        if pending is not None:
            pending.result()
    summary = {"rows": rows, "bad_rows": reader.bad_rows, "file_rows": reader.rows_read + reader.bad_rows,
               "quarantine": str(reader.quarantine_path) if reader.quarantine_path else None,
               "parts": parts}
    store.save(f"{READ}_{j}", step="data_loaded", key=make_key({"read": plan}),
               values={"summary": summary})
    run.log.ok(f"{path.name}: parsed {rows:,} transactions in {len(parts)} chunks")
    return summary


def data_loaded(run: Any) -> None:
    from amlgraph.ingest import match_patterns, read_accounts, read_patterns
    from amlgraph.steps.currency import usd_rates
    from amlgraph.steps.data_loaded import RAW_SCHEMA, build_vocab, restore_accounts

    store, cfg = run.store, run.cfg
    chunk_rows = cfg.chunk_rows or default_chunk_rows()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="amlgraph-accounts") as pool:
        # The accounts and patterns files (small) are read while the transactions are parsed.
        accounts = pool.submit(read_accounts, run.inputs.accounts) if run.inputs.accounts else None
        pat = pool.submit(read_patterns, run.inputs.patterns) if run.inputs.patterns is not None else None
        read = _read(run, chunk_rows)
        accounts = accounts.result() if accounts is not None else None
        pat = pat.result() if pat is not None else None
    raw_names = [p["name"] for p in read["parts"]]
    raw = scan_tables(store, raw_names, "raw", schema=RAW_SCHEMA)
    # The batches' summaries (steps.data_loaded.batch_summary), combined: no scan of the rows.
    batches = [load_input(store, n) for n in raw_names]
    summaries = [b.value("summary") for b in batches]
    keys = None if any("keys" not in b.arrays for b in batches) else (b.array("keys") for b in batches)
    nodes, keys = _node_index(raw, accounts, keys)
    vocab = build_vocab([c for s in summaries for c in s["currencies"]],
                        [f for s in summaries for f in s["payment_formats"]], nodes["bank"].unique().to_list())

    days: dict[int, int] = {}
    for s in summaries:
        for d, n in s["days"].items():
            days[int(d)] = days.get(int(d), 0) + n
    counts, boundaries, unit = _split_boundaries(raw, cfg.split_fractions, days)
    if unit != 86_400:
        run.log.line(f"⚠  fewer than 3 days of transactions: the temporal split uses "
                     f"{'hours' if unit == 3_600 else 'minutes'} instead of days")
    t0 = int(min(s["t_min"] for s in summaries) // 86400 * 86400)

    cur = {name: i for i, name in enumerate(vocab["currencies"])}
    pairs = pl.concat([b.table("pairs").select(  # coded batch by batch: 10 bytes a row, not names
        pl.col("payment_currency").replace_strict(cur, return_dtype=pl.Int16),
        pl.col("receiving_currency").replace_strict(cur, return_dtype=pl.Int16), "ratio") for b in batches])
    del batches
    rates, rate_warnings = usd_rates(pairs, vocab=vocab)
    for w in rate_warnings:
        run.log.line(f"⚠  {w}")

    index_key = run.chunk_key("data_loaded", -1, phase="index", chunk_rows=chunk_rows)
    store.save(INDEX, step="data_loaded", key=index_key, tables={"nodes": nodes},
               arrays={} if keys is None else {"keys": keys},
               values={"vocab": vocab}, metadata={"num_accounts": nodes.height})

    tasks = []
    for i, name in enumerate(raw_names):
        tasks.append(ChunkTask(f"data_loaded_chunk_{i}",
                               run.chunk_key("data_loaded", i, phase="encode", chunk_rows=chunk_rows),
                               "amlgraph.runner._tasks:encode_chunk",
                               {"read_chunk": name, "boundaries": boundaries, "vocab": vocab, "chunk": i},
                               chunk=i))

    def matched() -> pl.DataFrame:
        # A pattern line equals its transaction in all 11 fields, the label 1 included: only the
        # few laundering rows can match, and one filtered scan of the raw batches reads just those.
        laundering = restore_accounts(raw.filter(pl.col("is_laundering") == 1).collect(engine="streaming"))
        return match_patterns(laundering, pat)

    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="amlgraph-patterns") as pool:
        # The patterns are matched while the batches are encoded (both only read the raw batches).
        found = pool.submit(matched) if pat is not None and pat.height else None
        run.run_chunks("data_loaded", "data_loaded (encode)", tasks)
        patterns = found.result() if found is not None else pl.DataFrame(
            schema={"row": pl.Int64, "attempt_id": pl.Int32, "typology": pl.String})

    split_counts = np.sum([load_input(store, t.name).value("split_counts") for t in tasks], axis=0)
    summary = {
        "rows": read["rows"], "bad_rows": read["bad_rows"], "quarantine": read["quarantine"],
        "num_accounts": nodes.height,
        "split_counts": {s: int(n) for s, n in enumerate(split_counts) if n},
    }
    parts = read["parts"] + _parts([(INDEX, index_key)] + [(t.name, t.key) for t in tasks])
    store.save("data_loaded", step="data_loaded", key=run.keys["data_loaded"],
               key_components=run.components["data_loaded"],
               tables={"patterns": patterns},
               values={"vocab": vocab, "boundaries": boundaries, "split_unit_s": unit,
                       "bucket_counts": {str(k): v for k, v in counts.items()},
                       "t0": t0, "usd_per_unit": {str(k): v for k, v in rates.items()},
                       "summary": summary, "parts": parts, "config": _config_record(run)},
               metadata={"num_accounts": nodes.height, "num_transactions": read["rows"]})
    run.log.ok(f"Loaded {read['rows']:,} transactions, {nodes.height:,} accounts, "
               f"{int(patterns['attempt_id'].n_unique()) if patterns.height else 0} laundering attempts; "
               f"split train/val/test = {summary['split_counts']}")


def _unique_keys(batches: Iterable[np.ndarray]) -> np.ndarray:
    """The distinct keys of all batches (each batch's distinct keys, one array per batch).

    The batches are merged into the running set whenever they add up to twice its size: memory
    follows the number of accounts, not of rows or batches.
    """
    seen, pending, waiting = pl.Series("key", [], dtype=pl.Int64), [], 0
    for keys in batches:
        pending.append(pl.Series("key", np.asarray(keys), dtype=pl.Int64))
        waiting += len(pending[-1])
        if waiting > max(4_000_000, 2 * len(seen)):
            seen, pending, waiting = pl.concat([seen, *pending]).unique(), [], 0
    return pl.concat([seen, *pending]).unique().to_numpy()


def _node_index(raw: pl.LazyFrame, accounts: pl.DataFrame | None,
                keys: Iterable[np.ndarray] | None) -> tuple[pl.DataFrame, np.ndarray | None]:
    """The account index and its integer keys (``steps.data_loaded.node_keys``): from the batches'
    distinct keys when every account has one (``keys`` is None when some has none), else from the
    account strings."""
    from amlgraph.steps.data_loaded import build_node_index, build_node_index_keyed, node_keys, restore_accounts

    if keys is not None:
        built = build_node_index_keyed(_unique_keys(keys), accounts)
        if built is not None:
            return built
    sides = [(f"{side}_bank", f"{side}_account", f"{side}_key") for side in ("from", "to")]
    tx_accounts = pl.concat([
        raw.select(pl.col(bank).alias("bank"), pl.col(acc).alias("account"), pl.col(key).alias("key"))
        for bank, acc, key in sides
    ]).unique().collect(engine="streaming")
    tx_accounts = restore_accounts(tx_accounts, (("account", "key"),))  # the batches drop keyed strings
    nodes = build_node_index(tx_accounts.select("bank", "account"), accounts)
    return nodes, node_keys(nodes)


def _split_boundaries(raw: pl.LazyFrame, fractions,
                      days: dict[int, int]) -> tuple[dict[int, int], list[int], int]:
    """Multi-GNN's day-bucket split; hours, then minutes, when the data spans under 3 days.

    ``days`` are the rows per day (from the batch summaries); hours and minutes, rarely needed,
    are counted from ``raw``. Returns the bucket counts, the two boundaries in epoch seconds and
    the bucket width.
    """
    from amlgraph.errors import InputError
    from amlgraph.steps.data_loaded import temporal_split_boundaries

    for unit in (86_400, 3_600, 60):
        if unit == 86_400:
            counts = dict(days)
        else:
            buckets = (raw.group_by((pl.col("timestamp") // unit).alias("b")).agg(pl.len().alias("n"))
                       .collect(engine="streaming"))
            counts = {int(b): int(n) for b, n in zip(buckets["b"], buckets["n"])}
        if len(counts) >= 3:
            b1, b2 = temporal_split_boundaries(counts, fractions)
            return counts, [int(b1) * unit, int(b2) * unit], unit
    raise InputError("the transactions span fewer than 3 distinct minutes; a temporal "
                     "train/validation/test split is impossible", hint="use more rows (--sample-size)")


def _config_record(run: Any) -> dict:
    cfg = run.cfg
    return {"data_path": str(cfg.data_path.resolve()),
            "params": {s: cfg.step_params(s) for s in run.keys}}


# --- 2. node_features ----------------------------------------------------------------------------
#: From this many node_features chunks on, the transactions are first filed by account partition
#: (one pass) so that each chunk reads only its own rows; below it, each chunk scans every data
#: chunk with its node-id range as a filter, which costs less than the extra pass.
PARTITION_MIN_CHUNKS = 8


def node_features(run: Any) -> None:
    store, cfg = run.store, run.cfg
    vocab = _value(run, "data_loaded", "vocab")
    n_nodes = run.loaded["data_loaded"].value("summary")["num_accounts"]
    size = cfg.chunk_size or default_chunk_size(n_nodes, run.loaded["data_loaded"].value("summary")["rows"],
                                                run.concurrency)
    rates = None if cfg.currency == "raw" else _value(run, "data_loaded", "usd_per_unit")
    data = _data_chunks(run)
    ranges = plan_ranges(n_nodes, size)
    tasks = [ChunkTask(f"node_features_chunk_{k}", run.chunk_key("node_features", k, lo=lo, hi=hi),
                       "amlgraph.runner._tasks:node_chunk",
                       {"lo": lo, "hi": hi, "usd_per_unit": rates, "vocab": vocab,
                        "train_only": cfg.node_features_from == "train", "chunk": k}, chunk=k)
             for k, (lo, hi) in enumerate(ranges)]
    todo = tasks if "node_features" in run.forced else run.executor.pending(tasks)
    partitions: list[ChunkTask] = []
    if len(ranges) >= PARTITION_MIN_CHUNKS and todo:
        # Groups of consecutive data chunks, about one row chunk (--chunk-rows, or what the memory
        # budget allows) per group.
        rows = run.loaded["data_loaded"].value("summary")["rows"]
        group_rows = cfg.chunk_rows or default_chunk_rows(run.concurrency)
        per_group = max(1, group_rows * len(data) // max(1, rows))
        groups = [data[i:i + per_group] for i in range(0, len(data), per_group)]
        partitions = [ChunkTask(f"node_features_part_chunk_{g}",
                                run.chunk_key("node_features", g, phase="partition", size=size, data=names),
                                "amlgraph.runner._tasks:partition_chunk",
                                {"data_chunks": names, "size": size, "parts": len(ranges), "chunk": g}, chunk=g)
                       for g, names in enumerate(groups)]
        run.log.line(f"Filing {len(data)} data chunks by account partition ({len(ranges)} partitions, "
                     f"{len(groups)} files)")
        run.run_chunks("node_features", "node_features (partition)", partitions)
        source = {"partitions": [t.name for t in partitions]}
    else:
        source = {"data_chunks": data}
    tasks = [ChunkTask(t.name, t.key, t.func, {**t.kwargs, **source}, chunk=t.chunk) for t in tasks]
    run.log.line(f"Processing {n_nodes:,} accounts in {len(tasks)} chunks of {size:,}")
    run.run_chunks("node_features", "node_features", tasks)
    # The chunks are node-id ranges in order: together they are the feature table, which is read
    # from them (``_node_table``) rather than written a second time here.
    columns = scan_tables(store, [tasks[0].name], "features").collect_schema().names()
    store.save("node_features", step="node_features", key=run.keys["node_features"],
               key_components=run.components["node_features"],
               values={"parts": _parts([(t.name, t.key) for t in tasks]), "columns": columns},
               metadata={"num_accounts": n_nodes, "num_features": len(columns) - 1})
    # The partitions are a means to the chunks, which are all saved now: free their disk space.
    for t in partitions:
        store.delete(t.name)


def _node_table(run: Any) -> pl.DataFrame:
    """All node features, sorted by node_id: the node_features chunks in order."""
    return scan_tables(run.store, [p["name"] for p in _value(run, "node_features", "parts")], "features").collect()


# --- 3. edge_features ----------------------------------------------------------------------------
def edge_features(run: Any) -> None:
    vocab = _value(run, "data_loaded", "vocab")
    t0 = _value(run, "data_loaded", "t0")
    tasks = [ChunkTask(f"edge_features_chunk_{i}", run.chunk_key("edge_features", i, data=name),
                       "amlgraph.runner._tasks:edge_chunk",
                       {"data_chunk": name, "t0": t0, "vocab": vocab, "chunk": i}, chunk=i)
             for i, name in enumerate(_data_chunks(run))]
    run.run_chunks("edge_features", "edge_features", tasks)
    first = scan_tables(run.store, [tasks[0].name], "features").collect_schema().names()
    run.store.save("edge_features", step="edge_features", key=run.keys["edge_features"],
                   key_components=run.components["edge_features"],
                   values={"columns": [c for c in first if c not in ("row", "label", "split")],
                           "parts": _parts([(t.name, t.key) for t in tasks])},
                   metadata={"num_chunks": len(tasks)})


# --- 4. normalized -------------------------------------------------------------------------------
def _edge_parts(run: Any) -> list[str]:
    return [p["name"] for p in _value(run, "edge_features", "parts")]


def _float64_block(frame: pl.DataFrame) -> np.ndarray:
    """``frame`` as a writable float64 array (``log_transform`` works in place); copied only when
    Polars' array is of another type or read-only."""
    block = frame.to_numpy()
    if block.dtype != np.float64 or not block.flags.writeable:
        block = block.astype(np.float64)
    return block


def _node_scaling(run: Any) -> tuple[np.ndarray, dict]:
    """The normalised node matrix and what ``normalized`` records of it.

    The scaler is fitted on the accounts that take part in training transactions.
    """
    from amlgraph.steps.heavy_tails import heavy_tailed, log_transform
    from amlgraph.steps.normalized import StandardScaler, columns_to_scale

    feats = _node_table(run)
    node_cols = [c for c in feats.columns if c != "node_id"]
    node_flags = [c for c in node_cols if feats.schema[c] == pl.Int8]
    node_scaled = columns_to_scale(node_cols, [], node_flags)
    node_log = heavy_tailed(node_scaled)
    # One data chunk at a time (a concat of all training src and dst would grow with the input).
    is_train = np.zeros(feats.height, dtype=bool)
    for ends in ahead([lambda name=name: scan_tables(run.store, [name], "transactions").filter(pl.col("split") == 0)
                        .select("src", "dst").collect() for name in _data_chunks(run)]):
        is_train[ends["src"].to_numpy()] = True
        is_train[ends["dst"].to_numpy()] = True
    # Fitted on the training accounts' rows only (in node order, as a mask of the whole would
    # give them); the matrix is then the edge matrix's map (log1p, standardise, float32), filled
    # row block by row block in C order: the same values as transforming a float64 copy of all.
    train = feats.filter(pl.Series(is_train)) if is_train.any() else feats
    block = log_transform(_float64_block(train.select(node_scaled)), node_scaled, node_log)
    node_scaler = StandardScaler().fit(block)
    del block, train
    x = edge_matrix(feats, node_cols, node_scaled, node_scaler, node_log)
    return x, {"node_columns": node_cols, "node_scaled": node_scaled, "node_log": node_log,
               "node_scaler": node_scaler.to_dict()}


def normalized(run: Any) -> None:
    from amlgraph.steps.edge_features import CATEGORICAL_EDGE_FEATURES, FLAG_EDGE_FEATURES
    from amlgraph.steps.heavy_tails import heavy_tailed, log_transform
    from amlgraph.steps.normalized import StandardScaler, columns_to_scale

    store = run.store
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="amlgraph-nodes") as pool:
        # The node scaler is fitted and applied in a second thread while this one passes over
        # the edge chunks: the two are independent, and each alone leaves a core mostly idle
        # (NumPy passes on one core, Parquet reads in between). Its errors surface in result().
        nodes = pool.submit(_node_scaling, run)
        # Edges: one sequential pass over the training rows of every chunk, in row order.
        edge_cols = _value(run, "edge_features", "columns")
        edge_scaled = columns_to_scale(edge_cols, list(CATEGORICAL_EDGE_FEATURES), list(FLAG_EDGE_FEATURES))
        edge_log = heavy_tailed(edge_scaled)
        edge_scaler = StandardScaler()
        fitted = False
        # Only the training rows of the scaled columns are decoded (projection and predicate pushed
        # into the Parquet reader), the next part while this one is added up.
        for f in ahead([lambda name=name: scan_tables(store, [name], "features").filter(pl.col("split") == 0)
                         .select(edge_scaled).collect() for name in _edge_parts(run)]):
            if f.height:
                edge_scaler.partial_fit(log_transform(_float64_block(f), edge_scaled, edge_log))
                fitted = True
        x, node_values = nodes.result()
    if not fitted:
        from amlgraph.errors import StepError

        raise StepError("the training split has no transactions; use more data or other "
                        "split_fractions", step="normalized")
    # The scaled edge matrix is not stored here: it is one affine map of the edge_features
    # chunks, applied where the rows are consumed (imbalanced, graph_created), so hi-large's
    # ~13 GB of float32 is written once, in the graph, and not twice.
    store.save("normalized", step="normalized", key=run.keys["normalized"],
               key_components=run.components["normalized"], arrays={"x": x},
               values={**node_values, "edge_columns": edge_cols,
                       "edge_scaled": edge_scaled, "edge_log": edge_log,
                       "edge_scaler": edge_scaler.to_dict()},
               metadata={"num_accounts": int(x.shape[0]), "num_features": int(x.shape[1])})


def _edge_matrix(run: Any, name: str, rows: pl.Expr | None = None) -> np.ndarray:
    """The normalised edge matrix of edge_features chunk ``name`` (only ``rows`` when given)."""
    from amlgraph.steps.normalized import StandardScaler

    norm = run.loaded["normalized"]
    cols, scaled = norm.value("edge_columns"), norm.value("edge_scaled")
    frame = scan_tables(run.store, [name], "features")
    if rows is not None:
        frame = frame.filter(rows)
    return edge_matrix(frame.select(cols).collect(), cols, scaled,
                       StandardScaler.from_dict(norm.value("edge_scaler")), norm.value("edge_log"))


# --- 5. imbalanced -------------------------------------------------------------------------------
def _train_rows(run: Any) -> tuple[np.ndarray, np.ndarray]:
    """Training rows' normalised edge features (minority only) and all training labels."""
    minority, labels = [], []
    for edge in _edge_parts(run):
        y = (scan_tables(run.store, [edge], "features").filter(pl.col("split") == 0).select("label")
             .collect()["label"].to_numpy())
        labels.append(y)
        if (y == 1).any():
            minority.append(_edge_matrix(run, edge, (pl.col("split") == 0) & (pl.col("label") == 1)))
    d = len(_value(run, "normalized", "edge_columns"))
    x_min = np.concatenate(minority) if minority else np.zeros((0, d), np.float32)
    return x_min, np.concatenate(labels) if labels else np.zeros(0, np.int8)


def imbalanced(run: Any) -> None:
    from amlgraph.steps.edge_features import CATEGORICAL_EDGE_FEATURES
    from amlgraph.steps.imbalanced import resample_training

    cfg = run.cfg
    x_min, y_train = _train_rows(run)
    cols = _value(run, "normalized", "edge_columns")
    categorical = [i for i, c in enumerate(cols) if c in CATEGORICAL_EDGE_FEATURES]
    res = resample_training(x_min, y_train, strategy=cfg.strategy, k_neighbors=cfg.k_neighbors,
                            target_ratio=cfg.target_ratio, categorical=categorical, seed=cfg.seed)
    for w in res.warnings:
        run.log.line(f"⚠  {w}")
    arrays = {"X_synthetic": res.X_synthetic, "y_synthetic": res.y_synthetic}
    if res.keep_index is not None:
        arrays["keep_index"] = res.keep_index
    run.store.save("imbalanced", step="imbalanced", key=run.keys["imbalanced"],
                   key_components=run.components["imbalanced"], arrays=arrays,
                   values={"strategy": cfg.strategy, "warnings": list(res.warnings)},
                   metadata={"num_synthetic": int(res.X_synthetic.shape[0]),
                             "num_train": int(y_train.shape[0])})
    run.log.ok(f"{cfg.strategy}: {int(res.X_synthetic.shape[0]):,} synthetic training rows "
               f"(training minority {int((y_train == 1).sum()):,} of {y_train.shape[0]:,})")


# --- 6. weights ----------------------------------------------------------------------------------
def weights(run: Any) -> None:
    from amlgraph.steps.weights import class_weights

    y = (scan_tables(run.store, _data_chunks(run), "transactions").filter(pl.col("split") == 0)
         .select("is_laundering").collect(engine="streaming")["is_laundering"].to_numpy())
    w = class_weights(y, minority_cost=run.cfg.minority_cost)
    run.store.save("weights", step="weights", key=run.keys["weights"],
                   key_components=run.components["weights"],
                   values={"class_weights": {str(k): float(v) for k, v in w.items()}})
    run.log.ok(f"Class weights: {w}")


# --- 7. graph_created ----------------------------------------------------------------------------
def graph_created(run: Any) -> None:
    """Write the graph checkpoint chunk by chunk: memory follows one chunk, not the graph.

    The checkpoint has exactly the layout of ``TransactionGraph.to_payload`` and loads with
    ``TransactionGraph.from_checkpoint`` (arrays memory-mapped), which also validates it.
    """
    from amlgraph.graph import RAW_COLUMNS, payload_values
    from amlgraph.store._base import ArrayParts

    store = run.store
    data = _data_chunks(run)
    normalized_ckpt = run.loaded["normalized"]
    x = np.asarray(normalized_ckpt.array("x"))
    n_edges = run.loaded["data_loaded"].value("summary")["rows"]

    def column(name: str, col: str):
        def read() -> np.ndarray:
            ckpt = store.load(name)
            path = ckpt.table_path("transactions")
            frame = pl.read_parquet(path, columns=[col]) if path is not None else \
                ckpt.table("transactions").select(col)
            return frame[col].to_numpy()
        return read

    def edge_attr(name: str):
        return lambda: _edge_matrix(run, name)

    # Laundering rows are few: one filtered scan finds every account that touches one.
    launder = (scan_tables(store, data, "transactions").filter(pl.col("is_laundering") == 1)
               .select("src", "dst").collect(engine="streaming"))
    node_y = np.zeros(x.shape[0], dtype=np.int8)
    node_y[launder["src"].to_numpy()] = 1
    node_y[launder["dst"].to_numpy()] = 1
    schema = scan_tables(store, data[:1], "transactions").collect_schema()
    edge_cols = list(normalized_ckpt.value("edge_columns"))
    arrays = {
        # The edge matrix first: the costliest array, computed while the others are copied.
        "edge_attr": ArrayParts((n_edges, len(edge_cols)), np.float32, [edge_attr(n) for n in _edge_parts(run)]),
        "edge_index": ArrayParts((2, n_edges), np.int64,
                                 [column(n, "src") for n in data] + [column(n, "dst") for n in data]),
        "edge_row": ArrayParts((n_edges,), np.int64, [column(n, "row") for n in data]),
        "timestamp": ArrayParts((n_edges,), np.int64, [column(n, "timestamp") for n in data]),
        "x": x,
        "y": ArrayParts((n_edges,), np.int8, [column(n, "is_laundering") for n in data]),
        "node_y": node_y,
        "split": ArrayParts((n_edges,), np.int8, [column(n, "split") for n in data]),
    }
    for col in RAW_COLUMNS:
        arrays[f"raw_{col}"] = ArrayParts((n_edges,), _numpy_dtype(schema[col]), [column(n, col) for n in data])
    imb = run.loaded["imbalanced"]
    arrays["synthetic_edge_attr"] = np.asarray(imb.array("X_synthetic"))
    arrays["synthetic_y"] = np.asarray(imb.array("y_synthetic"))
    weights_ = {int(k): float(v) for k, v in run.loaded["weights"].value("class_weights").items()}
    values = payload_values(normalized_ckpt.value("node_columns"), edge_cols, weights_,
                            run.loaded["data_loaded"].value("vocab"), True,
                            {c: schema[c] for c in RAW_COLUMNS})
    store.save("graph_created", step="graph_created", key=run.keys["graph_created"],
               key_components=run.components["graph_created"],
               tables={"nodes": store.load(INDEX).table("nodes")}, arrays=arrays, values=values,
               metadata={"num_accounts": int(x.shape[0]), "num_edges": n_edges,
                         "num_features": int(x.shape[1])})


def _numpy_dtype(dtype: pl.DataType) -> np.dtype:
    return pl.Series([], dtype=dtype).to_numpy().dtype
