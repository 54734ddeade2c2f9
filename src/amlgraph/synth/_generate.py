"""Synthetic IBM-format AML data sets: ``<NAME>_Trans.csv``, ``<NAME>_accounts.csv``, ``<NAME>_Patterns.txt``.

The generator streams: rows are produced and written chunk by chunk, so memory stays flat
whatever the size. Output depends only on (preset, seed, rows): every part of the data draws
from its own child of ``numpy.random.SeedSequence(seed)``. Files are written under temporary
names in the output directory and renamed when complete. See docs/SYNTH.md for the model.
"""
from __future__ import annotations

import os
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from amlgraph._atomic import replace_into, tmp_name
from amlgraph.errors import ConfigError
from amlgraph.synth._format import HEADER_LINE, Background, Rows, TextFields, TransText
from amlgraph.synth._normal import Timeline, normal_rows
from amlgraph.synth._presets import PRESETS, Preset, resolve_preset
from amlgraph.synth._typologies import Laundering, make_laundering
from amlgraph.synth._world import World, build_world, write_accounts

__all__ = ["PRESETS", "Preset", "GenerateResult", "generate", "CHUNK_ROWS"]

#: Ordinary rows per written chunk (fixed: changing it changes the data, not just the speed).
CHUNK_ROWS = 1_000_000
#: Spread (minutes) of the noise that locally shuffles the nearly time-ordered rows.
SHUFFLE_MINUTES = 12.0


@dataclass(frozen=True)
class GenerateResult:
    """What :func:`generate` wrote.

    Attributes:
        name: the IBM-style prefix of the files.
        trans_path, accounts_path, patterns_path: the three files.
        rows: transactions in the Trans file.
        laundering_rows: rows labelled 1.
        pattern_rows: laundering rows written inside Patterns.txt blocks.
        accounts: rows of the accounts file (a few of them never transact).
        attempts: laundering attempts written as Patterns.txt blocks.
        seconds: wall time of the generation.
    """

    name: str
    trans_path: Path
    accounts_path: Path
    patterns_path: Path
    rows: int
    laundering_rows: int
    pattern_rows: int
    accounts: int
    attempts: int
    seconds: float

    def summary(self) -> str:
        """Two human lines: the counts and where the files are."""
        rate = f"1/{self.rows / self.laundering_rows:,.0f}" if self.laundering_rows else "none"
        speed = self.rows / self.seconds if self.seconds > 0 else float("inf")
        return (f"{self.name}: {self.rows:,} transactions ({self.laundering_rows:,} laundering, "
                f"{rate}; {self.attempts:,} attempts in Patterns), {self.accounts:,} accounts, "
                f"{self.seconds:.1f} s ({speed:,.0f} rows/s)\n"
                f"  wrote {self.trans_path}, {self.accounts_path.name}, {self.patterns_path.name}")


def _rng(seed: int, *key: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence(seed, spawn_key=key))


def generate(preset: str, out_dir: str | os.PathLike, *, seed: int = 0,
             rows: int | None = None) -> GenerateResult:
    """Generate an IBM-format data set.

    Args:
        preset: a key of :data:`PRESETS` (``tiny``, ``small``, ``hi-small``, ...).
        out_dir: directory to write into (created if missing).
        seed: non-negative integer; the same (preset, seed, rows) gives byte-identical files.
        rows: override the preset's row count (accounts scale with it).

    Returns:
        A :class:`GenerateResult` with paths and counts.

    Raises:
        ConfigError: unknown preset, bad ``rows`` or ``seed``, or an unwritable ``out_dir``.
    """
    chosen = resolve_preset(preset, rows)
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ConfigError(f"seed must be a non-negative integer (got {seed!r})")
    seed = int(seed)
    out = Path(out_dir)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create output directory {out}: {exc.strerror}; "
                          "choose a writable --out") from exc
    started = time.perf_counter()
    world = build_world(chosen, _rng(seed, 0))
    timeline = Timeline(chosen)
    paths = {kind: out / f"{chosen.name}_{kind}" for kind in ("Trans.csv", "accounts.csv", "Patterns.txt")}
    # Each file is written at a temporary name beside its final one (amlgraph._atomic) and all
    # three are renamed into place only when all are complete.
    temps = {kind: path.with_name(tmp_name(path.name)) for kind, path in paths.items()}
    try:
        # the accounts file needs only the world: write it alongside (leaving the block waits)
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="amlgraph-synth") as pool:
            accounts_job = pool.submit(write_accounts, temps["accounts.csv"], world, _rng(seed, 2))
            laundering = make_laundering(world, timeline,
                                         max(1, round(chosen.rows * chosen.laundering_rate)), _rng(seed, 1))
            _write_trans(temps["Trans.csv"], chosen, world, timeline, laundering, seed)
            accounts = accounts_job.result()
        pattern_rows = _write_patterns(temps["Patterns.txt"], world, laundering)
        for kind in paths:
            replace_into(temps[kind], paths[kind])
    finally:
        for temp in temps.values():
            temp.unlink(missing_ok=True)
    return GenerateResult(
        name=chosen.name, trans_path=paths["Trans.csv"], accounts_path=paths["accounts.csv"],
        patterns_path=paths["Patterns.txt"], rows=chosen.rows,
        laundering_rows=len(laundering.rows), pattern_rows=pattern_rows,
        accounts=accounts, attempts=int(laundering.reported.sum()),
        seconds=time.perf_counter() - started,
    )


def _write_trans(path: Path, preset: Preset, world: World, timeline: Timeline,
                 laundering: Laundering, seed: int) -> None:
    """Write the Trans file chunk by chunk; laundering rows join the chunk covering their time."""
    n_normal = preset.rows - len(laundering.rows)
    if n_normal < 1:
        raise ConfigError(f"rows={preset.rows} leaves no room for ordinary rows; use more rows")
    n_chunks = -(-n_normal // CHUNK_ROWS)
    bounds = timeline.minute_at(np.arange(1, n_chunks) * CHUNK_ROWS / n_normal)
    chunk_of = np.searchsorted(bounds, laundering.rows.t, side="right")
    with open(path, "wb") as handle:
        handle.write(HEADER_LINE.encode())

        text = TransText(world.bank_field, world.account_text)

        def write(fields: TextFields) -> None:
            text.write_fields(handle, fields)

        # chunk k is formatted and written while chunk k + 1 is drawn and put in order
        with Background(write) as writer:
            for k in range(n_chunks):
                rng = _rng(seed, 3, k)
                first = k * CHUNK_ROWS
                part = normal_rows(world, timeline, first, min(CHUNK_ROWS, n_normal - first), n_normal, rng)
                rows = Rows.concat([part, laundering.rows.take(np.flatnonzero(chunk_of == k))])
                del part
                # nearly, not strictly, time-ordered: sort on the time plus noise
                order = np.argsort(rows.t + rng.normal(0.0, SHUFFLE_MINUTES, len(rows)))
                writer.put(TextFields.of(rows, order))


def _write_patterns(path: Path, world: World, laundering: Laundering) -> int:
    """Write one BEGIN/END block per reported attempt; return the number of rows in blocks."""
    in_block = laundering.reported[np.maximum(laundering.attempt, 0)] & (laundering.attempt >= 0)
    index = np.flatnonzero(in_block)
    text = TransText(world.bank_field, world.account_text).lines(laundering.rows.take(index))
    attempt = laundering.attempt[index]
    starts = np.flatnonzero(np.diff(attempt, prepend=-1))
    ends = np.append(starts[1:], attempt.size)
    out: list[str] = []
    for lo, hi in zip(starts, ends):
        typology = laundering.typologies[attempt[lo]]
        out.append(f"BEGIN LAUNDERING ATTEMPT - {laundering.headers[attempt[lo]]}")
        out.extend(text[lo:hi])
        out.append(f"END LAUNDERING ATTEMPT - {typology}")
        out.append("")
    with open(path, "w", encoding="utf-8", newline="\n") as handle:
        handle.write("\n".join(out) + ("\n" if out else ""))
    return int(index.size)
