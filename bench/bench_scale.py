"""Chunked processing at scale: memory vs chunk size, workers, kill-and-resume, growth with size.

    python bench/bench_scale.py memory  [--preset hi-small]   # peak RSS: small chunks vs one chunk
    python bench/bench_scale.py workers [--preset hi-small]   # wall time with 1 and 2 workers
    python bench/bench_scale.py kill    [--preset hi-small]   # SIGKILL half-way through node_features
    python bench/bench_scale.py size --presets hi-small hi-medium hi-large   # time and peak RSS
    python bench/bench_scale.py parse   [--preset hi-small]   # data_loaded, 1 vs 2 workers; N modelled
    python bench/bench_scale.py parse --trees OLD NEW         # data_loaded of two source trees, A/B

Every figure comes from a fresh process (`amlgraph run ...`) on an empty checkpoint directory,
peak RSS from the kernel's accounting of that process and its children (wait4).
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _util import (amlgraph, compress_trans, disk_usage, ensure_preset, measure, median,  # noqa: E402
                   scratch, step_times)


def _run(data: Path, ckpt: Path, *extra: str) -> tuple[float, float]:
    return measure(amlgraph("run", str(data), "--checkpoint-dir", str(ckpt), "--quiet", *extra))


def memory(args) -> dict:
    data = ensure_preset(args.preset, args.data)
    out = {}
    small = ["--chunk-rows", "250000", "--chunk-size", "50000"]
    for label, extra in (("small_chunks", small),
                         ("small_chunks_one_thread", small + ["--threads", "1"]),
                         ("one_chunk", ["--chunk-rows", "100000000", "--chunk-size", "100000000"])):
        rss, wall = [], []
        for _ in range(args.runs):
            d = scratch()
            w, r = _run(data, d / "c", *extra)
            rss.append(r); wall.append(w)
            shutil.rmtree(d)
        out[label] = {"peak_rss_mb": round(median(rss)), "wall_s": round(median(wall), 1)}
        print(label, out[label], flush=True)
    for label in ("small_chunks", "small_chunks_one_thread"):
        out[f"rss_reduction_{label}"] = round(1 - out[label]["peak_rss_mb"] / out["one_chunk"]["peak_rss_mb"], 3)
    return out


def workers(args) -> dict:
    data = ensure_preset(args.preset, args.data)
    out = {}
    for n in (1, 2):
        walls = []
        for _ in range(args.runs):
            d = scratch()
            w, _ = _run(data, d / "c", "--workers", str(n), "--chunk-size", "100000",
                        "--chunk-rows", "1000000")
            walls.append(w)
            shutil.rmtree(d)
        out[f"workers_{n}"] = round(median(walls), 1)
        print(f"workers={n}: {out[f'workers_{n}']} s", flush=True)
    out["speedup"] = round(out["workers_1"] / out["workers_2"], 2)
    return out


def kill(args) -> dict:
    """Kill when half of node_features' chunks are done; compare the rerun with what was left."""
    data = ensure_preset(args.preset, args.data)
    d = scratch()
    ckpt = d / "c"
    extra = ["--chunk-size", str(args.chunk_size)]
    # Reference: how long node_features takes uninterrupted (from the run log's step timings).
    from amlgraph.runner import run_preprocessing

    ref = run_preprocessing(data_path=data, checkpoint_dir=d / "ref", quiet=True, chunk_size=args.chunk_size)
    total_chunks = -(-ref.graph.num_nodes // args.chunk_size)
    step_s = ref.timings["node_features"]
    chunk_s = step_s / total_chunks
    rerun_ref = run_preprocessing(data_path=data, checkpoint_dir=d / "ref", quiet=True,
                                  chunk_size=args.chunk_size, resume_from="node_features")
    after_s = sum(v for k, v in rerun_ref.timings.items() if k not in ("data_loaded", "node_features"))
    shutil.rmtree(d / "ref")
    proc = subprocess.Popen(amlgraph("run", str(data), "--checkpoint-dir", str(ckpt), "--quiet", *extra),
                            stdout=subprocess.DEVNULL)
    while proc.poll() is None:
        if len(list(ckpt.glob("node_features_chunk_*/manifest.json"))) >= total_chunks // 2:
            os.kill(proc.pid, signal.SIGKILL)
            break
        time.sleep(0.01)
    proc.wait()
    done = len(list(ckpt.glob("node_features_chunk_*/manifest.json")))
    left_s = (total_chunks - done) * chunk_s + after_s
    start = time.perf_counter()
    res = run_preprocessing(data_path=data, checkpoint_dir=ckpt, quiet=True, chunk_size=args.chunk_size)
    rerun = time.perf_counter() - start
    shutil.rmtree(d)
    out = {"node_chunks": total_chunks, "chunks_done_at_kill": done,
           "chunks_recomputed": res.chunks_computed.get("node_features"),
           "node_features_uninterrupted_s": round(step_s, 2), "one_chunk_s": round(chunk_s, 2),
           "work_left_at_kill_s": round(left_s, 2), "rerun_s": round(rerun, 2),
           "rerun_minus_left_s": round(rerun - left_s, 2)}
    print(out, flush=True)
    return out


def size(args) -> dict:
    """Whole pipeline per preset, one fresh run each: wall time, peak RSS, step times, disk used.

    With ``--compress`` the generated Trans file is stored as ``.csv.zst`` (the reader takes it
    as it is), which keeps hi-large's 17 GB CSV and its checkpoints within a small disk.
    """
    out = {}
    for preset in args.presets:
        data = ensure_preset(preset, None)
        if args.compress:
            start = time.perf_counter()
            path = compress_trans(data)
            print(f"{preset}: input {path.name}, {path.stat().st_size / 1e9:.1f} GB "
                  f"(compressed in {time.perf_counter() - start:.0f} s)", flush=True)
        d = scratch()
        log = d / "run.log"
        w, r = measure(amlgraph("run", str(data), "--checkpoint-dir", str(d / "c")), log=log)
        used = disk_usage(d / "c")
        steps = step_times(log)
        shutil.rmtree(d)
        out[preset] = {"wall_s": round(w, 1), "peak_rss_mb": round(r), "checkpoint_gb": round(used / 1e9, 1),
                       "steps_s": steps}
        print(preset, out[preset], flush=True)
    names = list(out)
    for a, b in zip(names, names[1:]):
        out[f"rss_growth_{a}_to_{b}"] = round(out[b]["peak_rss_mb"] / out[a]["peak_rss_mb"] - 1, 3)
    return out


_DATA_LOADED = """
import json, resource, sys, time
from pathlib import Path
from amlgraph.config import PipelineConfig
from amlgraph.runner._log import RunLog
from amlgraph.runner._run import Run
from amlgraph.store import CheckpointStore
cfg = PipelineConfig(**json.loads(sys.argv[1]))
store = CheckpointStore(cfg.resolved_checkpoint_dir)
with store.lock():
    run = Run(cfg, store, RunLog(quiet=True))
    def cpu():
        return sum(getattr(resource.getrusage(who), f) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
                   for f in ("ru_utime", "ru_stime"))
    cpu0, t0, start = cpu(), time.time(), time.perf_counter()
    run._compute("data_loaded")
    step_s = time.perf_counter() - start
    run.close()  # worker processes end here: their CPU time is counted once they are reaped
    cpu_s = cpu() - cpu0
ranges = []
for name in sorted(store.names(), key=lambda n: int(n.rsplit("_", 1)[1]) if n[-1].isdigit() else -1):
    m = store.manifest(name)
    if name.startswith("data_loaded_read_chunk_"):
        ranges.append(m["metadata"].get("seconds"))
marker = store.manifest("data_loaded_read_0")
from datetime import datetime
parsed = datetime.fromisoformat(marker["created"].replace("Z", "+00:00")).timestamp() - t0
print(json.dumps({"step_s": step_s, "cpu_s": cpu_s, "parse_s": parsed, "range_s": ranges}))
"""


def _data_loaded(tree: Path, data: Path, **cfg) -> dict:
    """data_loaded alone, in a fresh process with ``tree``'s sources, into an empty directory:
    the step's seconds and CPU seconds (the process and its worker processes; less sensitive
    than wall time to other work on the machine), the parse phase's seconds (step start to the
    parsed-file marker) and each reader checkpoint's own seconds (its task: read, parse,
    summarise, write)."""
    d = scratch()
    try:
        env = {**os.environ, "PYTHONPATH": str(Path(tree).resolve() / "src")}
        # keep_parsed: the ranges' manifests are read after the step
        args = json.dumps({"data_path": str(data), "checkpoint_dir": str(d / "c"), "quiet": True,
                           "keep_parsed": True, **cfg})
        out = subprocess.run([sys.executable, "-c", _DATA_LOADED, args], env=env, check=True,
                             capture_output=True, text=True)
        return json.loads(out.stdout.strip().splitlines()[-1])
    finally:
        shutil.rmtree(d, ignore_errors=True)


def _makespan(costs: list[float], n: int) -> float:
    """Tasks taken in order by the first free of ``n`` workers (how every executor hands them out)."""
    free = [0.0] * n
    for c in costs:
        i = free.index(min(free))
        free[i] += c
    return max(free)


def parse(args) -> dict:
    """data_loaded with one task at a time and with two worker processes, alternating in one
    sitting (medians); then a paper model of N workers from the measured per-range costs."""
    data = ensure_preset(args.preset, args.data)
    repo = Path(__file__).resolve().parents[1]
    if args.trees:
        a, b = args.trees
        runs: dict[str, list] = {"a": [], "b": []}
        for i in range(args.runs):
            for label in (("a", "b") if i % 2 == 0 else ("b", "a")):
                got = _data_loaded(Path(a if label == "a" else b), data)
                runs[label].append(got)
                print(f"{label} data_loaded {got['step_s']:.2f} s, {got['cpu_s']:.2f} CPU s", flush=True)
        out = {"a": str(a), "b": str(b)}
        for label in ("a", "b"):
            out[f"{label}_s"] = round(median([r["step_s"] for r in runs[label]]), 2)
            out[f"{label}_cpu_s"] = round(median([r["cpu_s"] for r in runs[label]]), 2)
        out["b_over_a"] = round(out["b_s"] / out["a_s"], 3)
        out["b_over_a_cpu"] = round(out["b_cpu_s"] / out["a_cpu_s"], 3)
        return out
    configs = {"1 worker (--threads 1)": {"threads": 1},
               "2 workers (--workers 2)": {"workers": 2},
               "default (2 threads)": {}}
    if args.chunk_rows:
        configs = {k: {**v, "chunk_rows": args.chunk_rows} for k, v in configs.items()}
    got: dict[str, list] = {k: [] for k in configs}
    for i in range(args.runs):
        order = list(configs) if i % 2 == 0 else list(reversed(configs))
        for label in order:
            r = _data_loaded(repo, data, **configs[label])
            got[label].append(r)
            print(f"{label}: data_loaded {r['step_s']:.2f} s ({r['cpu_s']:.2f} CPU s), parse "
                  f"{r['parse_s']:.2f} s, {len(r['range_s'])} ranges", flush=True)
    out: dict = {}
    for label, rs in got.items():
        out[label] = {"data_loaded_s": round(median([r["step_s"] for r in rs]), 2),
                      "parse_s": round(median([r["parse_s"] for r in rs]), 2),
                      "cpu_s": round(median([r["cpu_s"] for r in rs]), 2)}
    serial = got["1 worker (--threads 1)"]
    n_ranges = len(serial[0]["range_s"])
    costs = [median([r["range_s"][k] for r in serial]) for k in range(n_ranges)]
    parse_1 = out["1 worker (--threads 1)"]["parse_s"]
    rest_1 = out["1 worker (--threads 1)"]["data_loaded_s"] - parse_1
    fixed = max(0.0, parse_1 - sum(costs))
    out["per_range_s"] = [round(c, 3) for c in costs]
    out["parse_fixed_s"] = round(fixed, 2)
    model = {}
    print(f"\nmodel: parse(N) = {fixed:.2f} s (plan, header, marker) + the makespan of the "
          f"{n_ranges} measured range costs on N workers; the rest of data_loaded ({rest_1:.2f} s "
          f"measured with one worker) is kept as it is", flush=True)
    # Range 0 shares its time with the accounts and patterns files, read beside it in the driver;
    # the "even" column gives every range the median cost (those reads on a core of their own).
    even = [median(costs)] * len(costs)
    for n in (1, 2, 4, 8, 16, 32):
        parse_n, even_n = fixed + _makespan(costs, n), fixed + _makespan(even, n)
        model[n] = {"parse_s": round(parse_n, 2), "data_loaded_s": round(parse_n + rest_1, 2),
                    "parse_speedup": round(parse_1 / parse_n, 2), "parse_even_ranges_s": round(even_n, 2)}
        print(f"  N={n:>2}: parse {parse_n:6.2f} s (x{parse_1 / parse_n:.2f}), data_loaded "
              f"{parse_n + rest_1:6.2f} s; even ranges: parse {even_n:6.2f} s", flush=True)
    out["model"] = model
    out["note"] = (f"{n_ranges} ranges: beyond {n_ranges} workers the parse cannot shorten; "
                   "a smaller --chunk-rows makes more, smaller ranges")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=("memory", "workers", "kill", "size", "parse"))
    ap.add_argument("--preset", default="hi-small")
    ap.add_argument("--presets", nargs="+", default=["hi-small", "hi-medium"])
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--chunk-size", type=int, default=50_000)
    ap.add_argument("--compress", action="store_true", help="size: store the Trans file as .csv.zst")
    ap.add_argument("--trees", nargs=2, type=Path, default=None,
                    help="parse: A/B data_loaded of two source trees (default settings)")
    ap.add_argument("--chunk-rows", type=int, default=None, help="parse: rows per chunk (sets the ranges)")
    args = ap.parse_args()
    result = {"memory": memory, "workers": workers, "kill": kill, "size": size,
              "parse": parse}[args.what](args)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
