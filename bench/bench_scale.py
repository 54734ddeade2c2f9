"""Chunked processing at scale: memory vs chunk size, workers, kill-and-resume, growth with size.

    python bench/bench_scale.py memory  [--preset hi-small]   # peak RSS: small chunks vs one chunk
    python bench/bench_scale.py workers [--preset hi-small]   # wall time with 1 and 2 workers
    python bench/bench_scale.py kill    [--preset hi-small]   # SIGKILL half-way through node_features
    python bench/bench_scale.py size --presets hi-small hi-medium hi-large   # time and peak RSS

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


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("what", choices=("memory", "workers", "kill", "size"))
    ap.add_argument("--preset", default="hi-small")
    ap.add_argument("--presets", nargs="+", default=["hi-small", "hi-medium"])
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--chunk-size", type=int, default=50_000)
    ap.add_argument("--compress", action="store_true", help="size: store the Trans file as .csv.zst")
    args = ap.parse_args()
    result = {"memory": memory, "workers": workers, "kill": kill, "size": size}[args.what](args)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
