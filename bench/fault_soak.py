"""Fault soak: SIGKILL `amlgraph run` many times at random moments on a larger preset.

Usage: python bench/fault_soak.py [--kills 200] [--preset small] [--seed 0] [--data DIR]
       [--chunk-size 2000] [--chunk-rows 20000]

One uninterrupted run gives the reference graph and duration T. Then chains of attempts: each
attempt is killed (SIGKILL) at a moment drawn uniformly from [0.2 s, T] — or, one attempt in
four, while a checkpoint is half written — and resumed by the next, until a run completes; its
final graph must equal the reference bit for bit. Prints kills survived, mismatches (must be 0)
and the extra time the kills cost (all attempts' time minus one clean run per chain).
"""
from __future__ import annotations

import argparse
import random
import shutil
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests" / "fault"), str(REPO / "tests"), str(REPO / "bench")]

import harness  # noqa: E402
from _util import ensure_preset, scratch  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=200)
    ap.add_argument("--preset", default="small")
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--chunk-size", default="2000")
    ap.add_argument("--chunk-rows", default="20000")
    args = ap.parse_args()
    harness.RUN_OPTIONS = ("--chunk-size", args.chunk_size, "--chunk-rows", args.chunk_rows)
    data = ensure_preset(args.preset, args.data)
    work = scratch()
    rng = random.Random(args.seed)
    try:
        clean, offsets = harness.clean_run(data, work / "reference")
        reference = harness.final_digest(work / "reference")
        T = clean.elapsed
        print(f"preset {args.preset}: clean run {T:.1f} s; steps start at "
              + ", ".join(f"{k} {v:.1f}s" for k, v in offsets.items()), flush=True)
        saves = [p.name for p in (work / "reference").iterdir() if p.is_dir()]
        kills = mismatches = chains = damaged_after_kill = mid_save = 0
        attempts_s = 0.0
        started = time.perf_counter()
        while kills < args.kills:
            chains += 1
            ckpt = work / f"chain{chains}"

            def triggers():
                while kills + len(chain_kills) < args.kills:
                    if rng.random() < 0.25:
                        yield harness.on_save(rng.choice(saves))
                    else:
                        yield harness.after(rng.uniform(0.2, T))

            chain_kills: list = []
            chain = harness.Chain()
            for trig in triggers():
                a = harness.attempt(data, ckpt, trig)
                chain.attempts.append(a)
                if not a.killed:
                    break
                chain_kills.append(a)
                mid_save += a.mid_save
                if harness.verify_store(ckpt):
                    damaged_after_kill += 1
            else:
                chain.attempts.append(harness.attempt(data, ckpt, harness.NO_KILL))
            final = chain.attempts[-1]
            if final.returncode != 0 or final.killed:
                # an on_save trigger whose checkpoint was already done never fires: finish the chain
                final = harness.attempt(data, ckpt, harness.NO_KILL)
                chain.attempts.append(final)
            kills += len(chain_kills)
            attempts_s += chain.total_s
            same = final.returncode == 0 and harness.final_digest(ckpt) == reference
            mismatches += not same
            print(f"chain {chains}: {len(chain_kills)} kills ({sum(a.mid_save for a in chain_kills)} mid-save), "
                  f"{chain.total_s:.1f} s, {'identical' if same else 'MISMATCH'}; total kills {kills}", flush=True)
            if not same:
                print(f"  final attempt exit {final.returncode}: {final.stderr.strip()[-500:]}", flush=True)
            shutil.rmtree(ckpt, ignore_errors=True)
        extra = attempts_s - chains * T
        print()
        print(f"kills survived:            {kills} ({mid_save} confirmed mid-save) in {chains} chains")
        print(f"final graph mismatches:    {mismatches}")
        print(f"damaged stores after kill: {damaged_after_kill}")
        print(f"time of all attempts:      {attempts_s:.1f} s (clean run {T:.1f} s x {chains} chains)")
        print(f"extra time of the kills:   {extra:.1f} s ({extra / max(kills, 1):.2f} s per kill)")
        print(f"wall time of the soak:     {time.perf_counter() - started:.1f} s")
        return 1 if mismatches or damaged_after_kill else 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
