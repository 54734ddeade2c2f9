"""``amlgraph checkpoints list|verify|clean DIR``: inspect and tidy a checkpoint directory."""
from __future__ import annotations

import argparse
import datetime as _dt
import re
import shlex
from pathlib import Path

from amlgraph.cli._text import add_command, location, size_text
from amlgraph.errors import CheckpointError, ConfigError
from amlgraph.store import CheckpointStore, Problem, open_store
from amlgraph.store._base import order_key

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
    """Sizes as every command prints them (``_text.size_text``)."""
    return size_text(n)


def _created(manifest: dict) -> _dt.datetime:
    return _dt.datetime.fromisoformat(manifest["created"].replace("Z", "+00:00"))


def clean_damaged_command(root) -> str:
    """The command that removes exactly the checkpoints ``verify`` reports damaged."""
    return f"amlgraph checkpoints clean {shlex.quote(str(root))} --damaged"


def damaged_checkpoints(store: CheckpointStore) -> list[Problem]:
    """Every damaged checkpoint, by full verification (content hashes and the checks of loading),
    plus each step checkpoint whose recorded parts (the chunks it relies on) are damaged or gone.
    ``verify`` reports exactly these, ``clean --damaged`` removes exactly these, ``list`` marks them."""
    problems = store.verify(full=True)
    damaged = {p.name for p in problems}
    good = [n for n in store.names() if n not in damaged]  # the store verifies at "full" here
    return problems + _broken_parts(store, good, damaged)


def _list(store: CheckpointStore) -> int:
    problems = {p.name: p for p in damaged_checkpoints(store)}
    names = sorted(set(store.names()) | set(problems),
                   key=lambda n: order_key(n, store.manifest(n, verify="none")))
    rows = [("NAME", "STEP", "CHUNK", "SIZE", "CREATED", "KEY")]
    total = 0
    for name in names:
        m = store.manifest(name, verify="none")
        size = store.size_bytes(name)
        total += size
        if m is None:
            row = (name, "?", "", human_bytes(size), "", "")
        else:
            row = (name, m["step"], "" if m.get("chunk") is None else str(m["chunk"]), human_bytes(size),
                   m["created"][:19].replace("T", " "), m["key"][:12])
        if name in problems:
            row += (f"DAMAGED: {problem_text(problems[name])}",)
        rows.append(row)
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        cells = [c.ljust(w) for c, w in zip(r, widths)] + list(r[len(widths):])
        print("  ".join(cells).rstrip())
    line = f"{len(names) - len(problems)} checkpoints, {human_bytes(total)} in {store.root}"
    inputs = _input_bytes(_recorded_data_path(store))
    if inputs:
        line += f" ({total / inputs:.2f}x the input's {human_bytes(inputs)})"
    if problems:
        line += (f"; {len(problems)} damaged (content hashes checked; the next run recomputes those it needs; "
                 f"remove them: {clean_damaged_command(store.root)})")
    print(line)
    return 0


def problem_text(p: Problem) -> str:
    """``"<file> <what is wrong>"`` (or what is wrong, when no one file is)."""
    return f"{p.file} {p.reason}" if p.file else p.reason


def _verify(store: CheckpointStore) -> int:
    problems = damaged_checkpoints(store)
    damaged = {p.name for p in problems}
    good = [n for n in store.names() if n not in damaged]
    for name in good:
        print(f"ok       {name}")
    for p in problems:
        print(f"DAMAGED  {p.name}: {problem_text(p)}")
    if problems:
        print(f"{len(problems)} damaged checkpoint(s) in {store.root}; the next run recomputes those it needs; "
              f"remove exactly these with: {clean_damaged_command(store.root)}")
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
        if not isinstance(parts, list) or not all(isinstance(p, dict) and isinstance(p.get("name"), str)
                                                  and isinstance(p.get("key"), str) for p in parts):
            out.append(Problem(name, "values.json", "has a malformed parts record"))
            continue
        for part in parts:
            if part["name"] in damaged:
                ok, reason = False, "damaged"
            else:
                try:
                    ok, reason = store.check(part["name"], part["key"])
                except CheckpointError as exc:  # a name that is not a checkpoint name
                    ok, reason = False, f"invalid ({exc})"
            if not ok:
                out.append(Problem(name, None, f"relies on {part['name']}, which is {reason}"))
                break
    return out


def compact_and_say(root, *, quiet: bool = False, dry_run: bool = False, data_path=None,
                    store: CheckpointStore | None = None) -> int:
    """Compact a finished run's checkpoint directory and print one line (what went, what is left
    and its ratio to the input files when they are known)."""
    from amlgraph.runner._compact import compact_checkpoints

    done = compact_checkpoints(root, store=store, dry_run=dry_run)
    if not quiet:
        ratio = ""
        inputs = _input_bytes(data_path)
        if inputs:
            ratio = f" ({done.kept_bytes / inputs:.2f}x the input's {human_bytes(inputs)})"
        verb = "would remove" if dry_run else "removed"
        print(f"compacted {root}: {verb} {len(done.removed)} checkpoint(s), {human_bytes(done.freed_bytes)}; "
              f"kept {human_bytes(done.kept_bytes)}{ratio}: the graph, weights, imbalanced and data_loaded")
    return 0


def _input_bytes(data_path) -> int | None:
    if data_path is None:
        return None
    try:
        from amlgraph.ingest import find_inputs

        found = find_inputs(Path(data_path))
    except Exception:  # noqa: BLE001 (the input may have moved since: the ratio is then not shown)
        return None
    files = list(found.trans_files) + [p for p in (found.accounts, found.patterns) if p]
    return sum(f.stat().st_size for f in files if f.exists()) or None


def _recorded_data_path(store: CheckpointStore):
    data = store.load("data_loaded", verify="none")
    try:
        return data.value("config").get("data_path") if data is not None else None
    except (CheckpointError, AttributeError):
        return None


def _clean(store: CheckpointStore, args: argparse.Namespace) -> int:
    keep_last, older_than = getattr(args, "keep_last", None), getattr(args, "older_than", None)
    only_damaged = bool(getattr(args, "damaged", False))
    if getattr(args, "compact", False):
        if keep_last is not None or older_than is not None or only_damaged:
            raise ConfigError("--compact keeps what a finished run's graph needs; give it without --damaged, "
                              "--keep-last or --older-than")
        return compact_and_say(store.root, dry_run=bool(getattr(args, "dry_run", False)), store=store,
                               data_path=_recorded_data_path(store))
    if keep_last is None and older_than is None and not only_damaged:
        raise ConfigError("clean needs --compact, --damaged, --keep-last N and/or --older-than AGE (e.g. 7d); "
                          "add --dry-run to preview")
    if keep_last is not None and keep_last < 0:
        raise ConfigError(f"--keep-last must be >= 0 (got {keep_last})")
    cutoff = _dt.datetime.now(_dt.timezone.utc) - parse_age(older_than) if older_than is not None else None
    dry = bool(getattr(args, "dry_run", False))
    by_age = keep_last is not None or older_than is not None
    with store.lock():  # LockedError when a run holds the directory
        manifests = store.manifests() if by_age else {}
        newest = sorted(manifests, key=lambda n: _created(manifests[n]), reverse=True)
        protected = set(newest[:keep_last]) if keep_last is not None else set()
        doomed = [n for n in manifests if n not in protected
                  and (cutoff is None or _created(manifests[n]) < cutoff)]
        held = _held_parts(store, manifests, doomed)
        doomed = [n for n in doomed if n not in held]
        if only_damaged:  # exactly what verify reports (full verification)
            damaged = [p for p in damaged_checkpoints(store) if p.name not in doomed]
        else:  # what fails the store's fast check
            damaged = [p for p in store.verify(full=False) if p.name not in manifests]
        freed = sum(store.size_bytes(n) for n in doomed) + sum(store.size_bytes(p.name) for p in damaged)
        verb = "would remove" if dry else "removed"
        for n in doomed:
            print(f"{verb} {n} ({manifests[n]['created'][:19].replace('T', ' ')})")
            if not dry:
                store.delete(n)
        for p in damaged:
            print(f"{verb} {p.name} (damaged: {problem_text(p)})")
            if not dry:
                store.delete(p.name)
    kept = len(store.names()) if not dry else len(set(store.names()) - set(doomed) - {p.name for p in damaged})
    also = f" (of them {len(held)} that a kept checkpoint is read from)" if held else ""
    print(f"{verb} {len(doomed) + len(damaged)} checkpoint(s), {human_bytes(freed)}; kept {kept}{also}")
    return 0


def _held_parts(store: CheckpointStore, manifests: dict, doomed: list[str]) -> set[str]:
    """The doomed checkpoints that a kept one lists as its parts (a step's chunks; the graph's
    links, docs/CHECKPOINTS.md), and theirs in turn: a clean by age never leaves a kept
    checkpoint unloadable. ``--compact`` is what frees a finished run's chunks."""
    doomed_set, held = set(doomed), set()
    todo = [n for n in manifests if n not in doomed_set] if doomed else []
    while todo:
        ckpt = store.load(todo.pop(), verify="none")
        try:
            parts = ckpt.value("parts") if ckpt is not None and "parts" in ckpt.values else []
        except CheckpointError:  # a damaged values file: it relies on nothing here
            continue
        for part in parts if isinstance(parts, list) else []:
            name = part.get("name") if isinstance(part, dict) else None
            if name in doomed_set and name not in held:
                held.add(name)
                todo.append(name)
    return held


def add(sub: argparse._SubParsersAction) -> None:
    p = add_command(
        sub, "checkpoints", "list, verify or clean the checkpoints of a directory",
        examples=("amlgraph checkpoints list ckpt/", "amlgraph checkpoints verify ckpt/",
                  "amlgraph checkpoints clean ckpt/ --damaged", "amlgraph checkpoints clean ckpt/ --older-than 7d --dry-run",
                  "amlgraph checkpoints clean ckpt/ --compact"))
    csub = p.add_subparsers(dest="action", required=True, metavar="{list,verify,clean}")
    pl_ = csub.add_parser("list", help="every checkpoint with its step, chunk, size, age; damaged ones marked")
    pl_.add_argument("dir", type=location, help="a checkpoint directory or store URL")
    pv = csub.add_parser("verify", help="check every file's content hash (exit 1 when something is damaged)")
    pv.add_argument("dir", type=location, help="a checkpoint directory or store URL")
    pc = csub.add_parser("clean", help="remove checkpoints: damaged ones, old ones, or all but the newest")
    pc.add_argument("dir", type=location, help="a checkpoint directory or store URL")
    pc.add_argument("--keep-last", type=int, default=None, help="keep the N newest checkpoints")
    pc.add_argument("--older-than", default=None, help="remove those older than an age such as 7d, 12h, 30m")
    pc.add_argument("--damaged", action="store_true",
                    help="remove exactly the checkpoints that `checkpoints verify` reports damaged")
    pc.add_argument("--compact", action="store_true",
                    help="after a finished run, keep only the graph, weights, imbalanced and data_loaded "
                         "(loadable, exportable, a rerun is a no-op); a later parameter change recomputes "
                         "from the input")
    pc.add_argument("--dry-run", action="store_true", help="say what would be removed, remove nothing")
    p.set_defaults(func=checkpoints_command)


def checkpoints_command(args: argparse.Namespace) -> int:
    """Run ``amlgraph checkpoints <action> DIR``; returns the exit code (verify: 1 if damaged).

    Raises:
        CheckpointError: DIR is not a checkpoint store. LockedError: clean on a locked directory.
        ConfigError: bad ``--keep-last``/``--older-than``.
    """
    # list, verify and clean --damaged verify content hashes (each file is read once); a clean by
    # age alone uses the fast check
    fast = args.action == "clean" and not getattr(args, "damaged", False) and not getattr(args, "compact", False)
    store = open_store(args.dir, create=False, verify="quick" if fast else "full")
    if args.action == "list":
        return _list(store)
    if args.action == "verify":
        return _verify(store)
    if args.action == "clean":
        return _clean(store, args)
    raise ConfigError(f"action must be one of {{list, verify, clean}} (got {args.action!r})")
