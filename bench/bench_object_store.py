"""A run with its checkpoints on S3 (a moto server on loopback) against the same run on a local disk:
wall time, and the requests and bytes the S3 run costs.

    python bench/bench_object_store.py [--preset hi-small] [--data DIR] [--runs 3] [--workers N]

Each run is a fresh process with an empty store and an empty local cache; runs alternate local and
S3 so that both see the same machine load; figures are medians. The S3 server runs in this
process (moto keeps the objects in memory) behind a counter of requests (by method) and of the
bytes in request and response bodies. A no-op rerun on the finished S3 store is measured too
(its requests: reading manifests and listings to find everything valid).
"""
from __future__ import annotations

import argparse
import collections
import json
import os
import shutil
import sys
import threading
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from _util import amlgraph, ensure_preset, measure, median, scratch  # noqa: E402


class Counter:
    """WSGI middleware: requests by method, bytes received (bodies) and sent (bodies)."""

    def __init__(self, app):
        self.app, self.lock = app, threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.requests: collections.Counter = collections.Counter()
        self.bytes_in = self.bytes_out = 0

    def snapshot(self) -> dict:
        with self.lock:
            return {"requests": dict(self.requests), "requests_total": sum(self.requests.values()),
                    "bytes_uploaded": self.bytes_in, "bytes_downloaded": self.bytes_out}

    def __call__(self, environ, start_response):
        length = int(environ.get("CONTENT_LENGTH") or 0)
        with self.lock:
            self.requests[environ["REQUEST_METHOD"]] += 1
            self.bytes_in += length
        body = self.app(environ, start_response)
        sent = 0
        for chunk in body:
            sent += len(chunk)
            yield chunk
        if hasattr(body, "close"):
            body.close()
        with self.lock:
            self.bytes_out += sent


def start_server() -> tuple[str, Counter]:
    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, MotoRequestHandler, create_backend_app
    from werkzeug.serving import make_server

    counter = Counter(DomainDispatcherApplication(create_backend_app))
    server = make_server("127.0.0.1", 0, counter, True, request_handler=MotoRequestHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}", counter


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--preset", default="hi-small")
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args()
    data = ensure_preset(args.preset, args.data)
    endpoint, counter = start_server()
    env = {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
           "AWS_DEFAULT_REGION": "us-east-1"}
    os.environ.update(env)
    import boto3

    s3 = boto3.client("s3")
    local_walls, s3_walls, reruns, costs, rerun_costs = [], [], [], [], []
    for i in range(args.runs):
        work = scratch()
        cache = {"AMLGRAPH_CACHE_DIR": str(work / "cache")}
        wall, _ = measure(amlgraph("run", str(data), "--checkpoint-dir", str(work / "ckpt"), "--quiet",
                                   "--workers", str(args.workers)), env=cache)
        local_walls.append(wall)
        shutil.rmtree(work / "ckpt")
        bucket = f"bench-{uuid.uuid4().hex[:10]}"
        s3.create_bucket(Bucket=bucket)
        url = f"s3://{bucket}/ckpt"
        counter.reset()
        cmd = amlgraph("run", str(data), "--checkpoint-dir", url, "--quiet", "--workers", str(args.workers))
        wall, _ = measure(cmd, env=cache)
        s3_walls.append(wall)
        costs.append(counter.snapshot())
        counter.reset()
        rerun, _ = measure(cmd, env=cache)
        reruns.append(rerun)
        rerun_costs.append(counter.snapshot())
        stored = sum(o["Size"] for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket)
                     for o in page.get("Contents", []))
        costs[-1]["bytes_stored"] = stored
        print(f"run {i + 1}: local {local_walls[-1]:.1f} s, s3 {wall:.1f} s "
              f"({costs[-1]['requests_total']:,} requests, {costs[-1]['bytes_uploaded'] / 1e6:,.0f} MB up, "
              f"{costs[-1]['bytes_downloaded'] / 1e6:,.0f} MB down, {stored / 1e6:,.0f} MB stored), "
              f"no-op rerun {rerun:.1f} s ({rerun_costs[-1]['requests_total']:,} requests)", flush=True)
        shutil.rmtree(work)
        time.sleep(1)
    mid = sorted(range(len(s3_walls)), key=lambda k: s3_walls[k])[len(s3_walls) // 2]
    print(json.dumps({"data": str(args.data) if args.data else args.preset, "runs": args.runs, "workers": args.workers,
                      "local_wall_s_median": round(median(local_walls), 2),
                      "s3_wall_s_median": round(median(s3_walls), 2),
                      "s3_noop_rerun_s_median": round(median(reruns), 2),
                      "s3_costs_of_median_run": costs[mid], "s3_noop_rerun_costs": rerun_costs[mid]}, indent=2))


if __name__ == "__main__":
    main()
