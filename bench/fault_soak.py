"""Fault soak: SIGKILL `amlgraph run` (or `amlgraph export`) many times at random moments.

Usage: python bench/fault_soak.py [--kills 200] [--preset small] [--seed 0] [--data DIR]
       [--chunk-size 2000] [--chunk-rows 20000]
       python bench/fault_soak.py --export [--kills 200] [--seed 0] [--formats pyg,parquet,...]
       [--export-edges 300000]

One uninterrupted run gives the reference graph and duration T. Then chains of attempts: each
attempt is killed (SIGKILL) at a moment drawn uniformly from [0.2 s, T] — or, one attempt in
four, while a checkpoint is half written — and resumed by the next, until a run completes; its
final graph must equal the reference bit for bit. Prints kills survived, mismatches (must be 0)
and the extra time the kills cost (all attempts' time minus one clean run per chain).

With ``--export``: two random graphs A and B (``--export-edges`` edges each) are saved as finished
runs; per chain, a format is drawn and A exported into a target directory, then exports
alternately of B and A into that same directory are killed — while a drawn file of the export is
being written, right after the switch, or at a moment drawn from [0.2 s, T] (T: an uninterrupted
export) — and after every kill every file of the target is compared with fresh exports of A and B:
it must hold one of them whole (a mix, a half set or a stray file counts as a mixed export). The
chain ends with an export that is not killed, which must leave its graph whole and nothing beside
the target (else a mismatch). Prints kills, mixed exports and mismatches (both must be 0).
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
    ap.add_argument("--export", action="store_true",
                    help="kill `amlgraph export` (A then B into one target) instead of `amlgraph run`")
    ap.add_argument("--formats", default="pyg,multignn,networkx,parquet", help="--export: formats to draw")
    ap.add_argument("--export-edges", type=int, default=300_000, help="--export: edges of each graph")
    args = ap.parse_args()
    if args.export:
        return export_soak(args)
    return run_soak(args)


def run_soak(args: argparse.Namespace) -> int:
    """Kill `amlgraph run` in chains of resumed attempts; the final graphs must equal the reference."""
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


# --- export kills ---------------------------------------------------------------------------------
def export_soak(args: argparse.Namespace) -> int:
    """Kill `amlgraph export` in chains on one target; count mixed exports and mismatches."""
    import export_harness as xh

    from amlgraph.graph import random_graph

    formats = [f.strip() for f in args.formats.split(",") if f.strip()]
    unknown = set(formats) - set(xh.FILES)
    if unknown:
        raise SystemExit(f"unknown formats {sorted(unknown)}; choose from {sorted(xh.FILES)}")
    rng = random.Random(args.seed)
    work = scratch()
    try:
        nodes = max(10, args.export_edges // 15)
        graphs = {name: xh.save_graph(random_graph(nodes, args.export_edges, seed=seed), work / name)
                  for name, seed in (("A", 1), ("B", 2))}
        refs: dict[str, dict] = {}
        durations: dict[str, float] = {}
        for fmt in formats:
            refs[fmt] = {g: xh.reference_contents(graphs[g], fmt, work / "refs" / fmt / g) for g in graphs}
            probe = work / "probe" / fmt / "E"
            xh.export_ok(graphs["A"], fmt, probe)
            durations[fmt] = xh.export_ok(graphs["B"], fmt, probe).elapsed
            print(f"{fmt}: an export replacing another takes {durations[fmt]:.2f} s "
                  f"({', '.join(f'{n} {p.stat().st_size / 1e6:.1f} MB' for n, p in ((p.name, p) for p in probe.iterdir()))})",
                  flush=True)
        shutil.rmtree(work / "probe", ignore_errors=True)
        kills = confirmed = mixed = mismatches = failed = chains = 0
        states: dict[str, int] = {}
        started = time.perf_counter()
        while kills < args.kills:
            chains += 1
            fmt = rng.choice(formats)
            out = work / f"chain{chains}" / "E"
            xh.export_ok(graphs["A"], fmt, out)
            chain_kills, chain_mixed, source = 0, 0, "B"  # the target holds A; B goes in
            for _ in range(rng.randint(1, 5)):
                trigger = _export_trigger(rng, xh, fmt, durations[fmt])
                a = xh.export_attempt(graphs[source], fmt, out, trigger)
                now = xh.state(out, refs[fmt])
                if not a.killed:
                    if a.returncode != 0 or now != source:
                        failed += 1
                        print(f"  export {fmt} failed ({a.returncode}, target {now}): "
                              f"{a.stderr.strip()[-300:]}", flush=True)
                else:
                    chain_kills += 1
                    confirmed += a.confirmed
                    kind = "new" if now == source else "old" if now in ("A", "B") else "mixed"
                    states[kind] = states.get(kind, 0) + 1
                    if kind == "mixed":
                        chain_mixed += 1
                        print(f"  MIXED after a kill {trigger} ({fmt}): {now}", flush=True)
                if now in ("A", "B"):
                    source = "A" if now == "B" else "B"  # export the other graph next
                if kills + chain_kills >= args.kills:
                    break
            final = xh.export_attempt(graphs[source], fmt, out)
            whole = (final.returncode == 0 and xh.state(out, refs[fmt]) == source
                     and xh.beside(out) == [])
            if not whole:
                print(f"  MISMATCH at the end of chain {chains} ({fmt}): exit {final.returncode}, "
                      f"{xh.state(out, refs[fmt])}, beside: {xh.beside(out)} {final.stderr.strip()[-300:]}",
                      flush=True)
            kills += chain_kills
            mixed += chain_mixed
            mismatches += not whole
            print(f"chain {chains} ({fmt}): {chain_kills} kills, {chain_mixed} mixed, "
                  f"{'whole' if whole else 'MISMATCH'}; total kills {kills}", flush=True)
            shutil.rmtree(out.parent, ignore_errors=True)
        print()
        print(f"export kills:              {kills} ({confirmed} confirmed mid-write) in {chains} chains")
        print(f"target after a kill:       {states.get('old', 0)} the previous export, "
              f"{states.get('new', 0)} the new one, {states.get('mixed', 0)} neither")
        print(f"mixed exports:             {mixed}")
        print(f"mismatches after a rerun:  {mismatches}")
        print(f"failed unkilled exports:   {failed}")
        print(f"wall time of the soak:     {time.perf_counter() - started:.1f} s")
        return 1 if mixed or mismatches or failed else 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _export_trigger(rng: random.Random, xh, fmt: str, duration: float):
    """Half the kills while a drawn file is written, one in seven right after the switch, the
    rest at a moment drawn over an export's duration."""
    draw = rng.random()
    if draw < 0.5:
        return xh.while_writing(rng.choice(xh.FILES[fmt]))
    if draw < 0.64:
        return xh.on_commit(rng.choice(xh.FILES[fmt]))
    return xh.after(rng.uniform(0.2, max(0.3, duration)))


# --- kills of `amlgraph checkpoints clean` --------------------------------------------------------
def clean_main(argv: list[str]) -> int:
    """``fault_soak.py --clean``: its own options, so that the run and export soaks stay as they are."""
    ap = argparse.ArgumentParser(
        prog="fault_soak.py --clean",
        description="SIGKILL `amlgraph checkpoints clean` at random moments on a finished checkpoint "
                    "directory; then `checkpoints verify` must call ok only intact checkpoints, and a "
                    "following `run` must give the reference graph bit for bit.")
    ap.add_argument("--clean", action="store_true", required=True)
    ap.add_argument("--kills", type=int, default=30)
    ap.add_argument("--preset", default="tiny")
    ap.add_argument("--data", type=Path, default=None)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--chunk-size", default="200")
    ap.add_argument("--chunk-rows", default="1000")
    return clean_soak(ap.parse_args(argv))


def clean_soak(args: argparse.Namespace) -> int:
    """Kill `checkpoints clean` (``--keep-last K``, K drawn, or ``--older-than 0s``) on copies of a
    finished checkpoint directory: two kills in three after a drawn number of checkpoints are
    deleted (the process frozen with SIGSTOP, the state looked at, then SIGKILLed), the others at
    a moment drawn over an uninterrupted clean's duration. After each kill: `checkpoints verify`
    (each checkpoint it calls ok must be byte for byte the one the run wrote: else undetected
    damage), then `amlgraph run` on the directory (its graph must be the reference, bit for bit).
    """
    import subprocess

    harness.RUN_OPTIONS = ("--chunk-size", args.chunk_size, "--chunk-rows", args.chunk_rows)
    data = ensure_preset(args.preset, args.data)
    work = scratch()
    rng = random.Random(args.seed)
    try:
        ref = work / "reference"
        harness.clean_run(data, ref)
        reference = harness.final_digest(ref)
        originals = {n: _tree_digest(ref / n) for n in _live_checkpoints(ref)}
        probe = work / "probe"
        shutil.copytree(ref, probe, symlinks=True)
        whole = _clean_attempt(probe, ("--keep-last", "0"), None, rng)
        T = whole.elapsed
        shutil.rmtree(probe)
        print(f"preset {args.preset}: {len(originals)} checkpoints; an uninterrupted clean of all of them "
              f"takes {T:.2f} s", flush=True)
        kills = attempts = mid_delete = undetected = mismatches = reported = verify_failed = 0
        deleted_total = 0
        started = time.perf_counter()
        while kills < args.kills:
            attempts += 1
            target = work / f"clean{attempts}"
            shutil.copytree(ref, target, symlinks=True)
            if rng.random() < 0.2:
                mode: tuple[str, ...] = ("--older-than", "0s")
                doomed = len(originals)
            else:
                keep = rng.randrange(0, len(originals))
                mode = ("--keep-last", str(keep))
                doomed = len(originals) - keep
            after_deletions = rng.randint(1, doomed) if doomed and rng.random() < 2 / 3 else None
            a = _clean_attempt(target, mode, after_deletions, rng, duration=T)
            kills += a.killed
            mid_delete += a.mid_delete
            left = _live_checkpoints(target)
            deleted_total += len(originals) - len(left)
            # verify: what it calls ok must be intact; what it calls damaged is detected damage
            done = subprocess.run(harness.amlgraph("checkpoints", "verify", str(target)), check=False,
                                  capture_output=True, text=True, env=harness.env())
            ok = [ln.split()[1] for ln in done.stdout.splitlines() if ln.startswith("ok ")]
            damaged = [ln.split()[1].rstrip(":") for ln in done.stdout.splitlines() if ln.startswith("DAMAGED ")]
            bad_ok = [n for n in ok if _tree_digest(target / n) != originals.get(n)]
            undetected += len(bad_ok)
            reported += len(damaged)
            verify_failed += done.returncode not in (0, 1)
            run = harness.attempt(data, target, harness.NO_KILL)
            same = run.returncode == 0 and harness.final_digest(target) == reference
            mismatches += not same
            print(f"clean {attempts} {' '.join(mode)}: "
                  f"{'killed ' + a.trigger if a.killed else 'finished before the kill'}"
                  f"{' (mid-delete)' if a.mid_delete else ''}, {len(originals) - len(left)} deleted; verify "
                  f"exit {done.returncode}, {len(ok)} ok, {len(damaged)} damaged, {len(bad_ok)} undetected; "
                  f"run {'identical' if same else 'MISMATCH'}; total kills {kills}", flush=True)
            if bad_ok:
                print(f"  UNDETECTED: verify calls ok {bad_ok}", flush=True)
            if not same:
                print(f"  run exit {run.returncode}: {run.stderr.strip()[-500:]}", flush=True)
            shutil.rmtree(target, ignore_errors=True)
        print()
        print(f"clean kills:               {kills} in {attempts} attempts ({mid_delete} confirmed mid-delete)")
        print(f"checkpoints deleted:       {deleted_total} before the kills")
        print(f"undetected damage:         {undetected} (checkpoints verify called ok but not intact)")
        print(f"reported damaged:          {reported} (steps whose chunks the clean removed, half deletes)")
        print(f"verify crashes:            {verify_failed}")
        print(f"final graph mismatches:    {mismatches}")
        print(f"wall time of the soak:     {time.perf_counter() - started:.1f} s")
        return 1 if undetected or mismatches or verify_failed else 0
    finally:
        shutil.rmtree(work, ignore_errors=True)


def _clean_attempt(root: Path, mode: tuple[str, ...], after_deletions: int | None, rng: random.Random, *,
                   duration: float | None = None):
    """`amlgraph checkpoints clean ROOT MODE`, SIGKILLed once ``after_deletions`` checkpoints are
    gone (frozen first, to see whether a deletion is half done), or at a moment drawn from
    [0.05 s, ``duration``]; neither when both are None (runs to its end). Returns its
    ``killed``, ``trigger``, ``mid_delete`` and ``elapsed``."""
    import signal
    import subprocess
    from types import SimpleNamespace

    start = time.perf_counter()
    before = set(_live_checkpoints(root))
    proc = subprocess.Popen(harness.amlgraph("checkpoints", "clean", str(root), *mode),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=harness.env())
    killed = mid = False
    trigger = "none"
    try:
        if after_deletions is not None:
            trigger = f"after {after_deletions} deletions"
            while proc.poll() is None:
                if len(before) - len(_live_checkpoints(root)) >= after_deletions:
                    proc.send_signal(signal.SIGSTOP)
                    mid = any((root / n).exists() for n in before - set(_live_checkpoints(root)))
                    proc.send_signal(signal.SIGKILL)
                    killed = True
                    break
                time.sleep(0.0005)
        elif duration is not None:
            moment = rng.uniform(0.05, duration)
            trigger = f"after {moment:.2f}s"
            try:
                proc.wait(timeout=moment)
            except subprocess.TimeoutExpired:
                proc.send_signal(signal.SIGKILL)
                killed = True
        proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stderr.close()
    if not killed and proc.returncode != 0:
        raise SystemExit(f"an unkilled clean failed ({proc.returncode}) on {root}")
    return SimpleNamespace(killed=killed, trigger=trigger, mid_delete=mid, elapsed=time.perf_counter() - start)


def _live_checkpoints(root: Path) -> list[str]:
    """Checkpoint directories that hold a manifest (what a reader can see as present)."""
    import os

    try:
        return sorted(e.name for e in os.scandir(root) if e.is_dir(follow_symlinks=False)
                      and os.path.exists(os.path.join(e.path, "manifest.json")))
    except FileNotFoundError:
        return []


def _tree_digest(path: Path) -> str | None:
    """sha256 over the relative paths and bytes of every file under ``path`` (None if absent)."""
    import hashlib

    if not path.is_dir():
        return None
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(str(f.relative_to(path)).encode() + b"\0" + f.read_bytes() + b"\0")
    return h.hexdigest()


if __name__ == "__main__":
    raise SystemExit(clean_main(sys.argv[1:]) if "--clean" in sys.argv[1:] else main())
