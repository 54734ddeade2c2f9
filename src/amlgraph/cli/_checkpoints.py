"""``amlgraph checkpoints list|verify|clean DIR``: inspect and tidy a checkpoint directory."""
from __future__ import annotations

import argparse
import datetime as _dt
import re

from amlgraph.errors import CheckpointError, ConfigError
from amlgraph.store import CheckpointStore, Problem

_AGE_RE = re.compile(r"^(\d+(?:\.\d+)?)([smhdw])$")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_age(text: str) -> _dt.timedelta:
    """``"7d"``, ``"12h"``, ``"30m"``, ``"90s"``, ``"2w"`` -> timedelta.

    Raises:
        ConfigError: for any other form.
    """
    m = _AGE_RE.match(text.strip()) if isinstance(text, str) else None
    if m is None:
        raise ConfigError(f"--older-than must look like 7d, 12h, 30m, 90s or 2w (got {text!r})")
    return _dt.timedelta(seconds=float(m.group(1)) * _UNIT_S[m.group(2)])


def human_bytes(n: float) -> str:
    """1536 -> '1.5 KiB'."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if abs(n) < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def _created(manifest: dict) -> _dt.datetime:
    return _dt.datetime.fromisoformat(manifest["created"].replace("Z", "+00:00"))


def _list(store: CheckpointStore) -> int:
    manifests = store.manifests()
    rows = [("NAME", "STEP", "CHUNK", "SIZE", "CREATED", "KEY")]
    total = 0
    for name, m in manifests.items():
        size = store.size_bytes(name)
        total += size
        rows.append((name, m["step"], "" if m.get("chunk") is None else str(m["chunk"]), human_bytes(size),
                     m["created"][:19].replace("T", " "), m["key"][:12]))
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip())
    damaged = len(store.verify(full=False))
    line = f"{len(manifests)} checkpoints, {human_bytes(total)} in {store.root}"
    if damaged:
        line += f"; {damaged} damaged (run: amlgraph checkpoints verify {store.root})"
    print(line)
    return 0


def _verify(store: CheckpointStore) -> int:
    problems = store.verify(full=True)
    damaged = {p.name for p in problems}
    # names() checks sizes only: a checkpoint whose content hash failed above is not "ok"
    good = [n for n in store.names() if n not in damaged]
    problems += _broken_parts(store, good, damaged)
    good = [n for n in good if n not in {p.name for p in problems}]
    for name in good:
        print(f"ok       {name}")
    for p in problems:
        where = f" {p.file}" if p.file else ""
        print(f"DAMAGED  {p.name}:{where} {p.reason}")
    if problems:
        print(f"{len(problems)} damaged checkpoint(s) in {store.root}; they will be recomputed on the next run "
              f"(or remove them: amlgraph checkpoints clean {store.root} --keep-last {len(good)})")
        return 1
    print(f"{len(good)} checkpoints verified (content hashes), no problem")
    return 0


def _broken_parts(store: CheckpointStore, names: list[str], damaged: set[str]) -> list[Problem]:
    """Step checkpoints whose recorded parts (chunk checkpoints they rely on) are damaged or gone."""
    out = []
    for name in names:
        ckpt = store.load(name, verify="none")
        if ckpt is None or "parts" not in ckpt.values:
            continue
        try:
            parts = ckpt.value("parts")
        except CheckpointError:
            continue  # values.json itself is damaged: already reported by the full verification
        for part in parts:
            ok, reason = (False, "damaged") if part["name"] in damaged else store.check(part["name"], part["key"])
            if not ok:
                out.append(Problem(name, None, f"relies on {part['name']}, which is {reason}"))
                break
    return out


def _clean(store: CheckpointStore, args: argparse.Namespace) -> int:
    keep_last, older_than = getattr(args, "keep_last", None), getattr(args, "older_than", None)
    if keep_last is None and older_than is None:
        raise ConfigError("clean needs --keep-last N and/or --older-than AGE (e.g. 7d); add --dry-run to preview")
    if keep_last is not None and keep_last < 0:
        raise ConfigError(f"--keep-last must be >= 0 (got {keep_last})")
    cutoff = _dt.datetime.now(_dt.timezone.utc) - parse_age(older_than) if older_than is not None else None
    dry = bool(getattr(args, "dry_run", False))
    with store.lock():  # LockedError when a run holds the directory
        manifests = store.manifests()
        newest = sorted(manifests, key=lambda n: _created(manifests[n]), reverse=True)
        protected = set(newest[:keep_last]) if keep_last is not None else set()
        doomed = [n for n in manifests if n not in protected
                  and (cutoff is None or _created(manifests[n]) < cutoff)]
        damaged = [p.name for p in store.verify(full=False) if p.name not in manifests]
        freed = sum(store.size_bytes(n) for n in doomed)
        verb = "would remove" if dry else "removed"
        for n in doomed:
            print(f"{verb} {n} ({manifests[n]['created'][:19].replace('T', ' ')})")
            if not dry:
                store.delete(n)
        for n in damaged:
            print(f"{verb} {n} (damaged)")
            if not dry:
                store.delete(n)
    print(f"{verb} {len(doomed) + len(damaged)} checkpoint(s), {human_bytes(freed)}; "
          f"kept {len(manifests) - len(doomed)}")
    return 0


def checkpoints_command(args: argparse.Namespace) -> int:
    """Run ``amlgraph checkpoints <action> DIR``; returns the exit code (verify: 1 if damaged).

    Raises:
        CheckpointError: DIR is not a checkpoint store. LockedError: clean on a locked directory.
        ConfigError: bad ``--keep-last``/``--older-than``.
    """
    store = CheckpointStore(args.dir, create=False, verify="quick")
    if args.action == "list":
        return _list(store)
    if args.action == "verify":
        return _verify(store)
    if args.action == "clean":
        return _clean(store, args)
    raise ConfigError(f"action must be one of {{list, verify, clean}} (got {args.action!r})")
