"""The run log: step banners, checkpoint lines and timings, reported through ``logging``.

Every line goes to the logger ``amlgraph`` (INFO; warnings at WARNING), so a notebook or an
application decides where it goes (``logging.getLogger("amlgraph").setLevel(logging.WARNING)``
silences a run). When logging is not configured at all, the first run adds one plain handler
that prints the lines to standard output, as the seed printed them. Progress bars (tqdm) are
drawn only on a terminal and never logged. Quiet runs log nothing (errors are raised).
"""
from __future__ import annotations

import logging
import sys
import time
from contextlib import contextmanager
from typing import Any, Iterator, TextIO

RULE = "=" * 60
LOGGER = logging.getLogger("amlgraph")


class _Plain(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return record.getMessage()


def _default_handler() -> None:
    """One stdout handler on the ``amlgraph`` logger when nobody configured logging."""
    if LOGGER.handlers or logging.getLogger().handlers:
        return
    handler = logging.StreamHandler(sys.stdout)
    handler.setFormatter(_Plain())
    handler.set_name("amlgraph-default")
    LOGGER.addHandler(handler)
    if LOGGER.level == logging.NOTSET:
        LOGGER.setLevel(logging.INFO)


class _Bar:
    """A tqdm bar on a terminal (stderr), nothing otherwise."""

    def __init__(self, label: str, total: int, unit: str, quiet: bool):
        self._bar = None
        if not quiet and sys.stderr.isatty():
            from tqdm import tqdm

            self._bar = tqdm(total=total or None, desc=label, unit=unit, unit_scale=True, leave=False)

    def update(self, n: int = 1) -> None:
        if self._bar is not None:
            self._bar.update(n)

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()


class RunLog:
    """The lines of one run.

    Args:
        quiet: log nothing.
        stream: write the lines to this stream instead of the ``amlgraph`` logger (tests).
    """

    def __init__(self, *, quiet: bool = False, stream: TextIO | None = None):
        self.quiet = quiet
        self.stream = stream
        self.timings: dict[str, float] = {}
        if stream is None and not quiet:
            _default_handler()

    def _emit(self, level: int, text: str) -> None:
        if self.quiet:  # quiet: nothing but the errors the caller reports
            return
        if self.stream is not None:
            print(text, file=self.stream, flush=True)
        else:
            LOGGER.log(level, text)

    def line(self, text: str = "") -> None:
        self._emit(logging.INFO, text)

    def header(self, title: str) -> None:
        self.line(RULE)
        self.line(title)
        self.line(RULE)

    def ok(self, text: str) -> None:
        self.line(f"✓ {text}")

    def skip(self, text: str) -> None:
        self.line(f"⏭  {text}")

    def warn(self, text: str) -> None:
        self._emit(logging.WARNING, f"⚠  {text}")

    def progress(self, label: str, total: int, unit: str = "it") -> Any:
        return _Bar(label, total, unit, self.quiet)

    @contextmanager
    def step(self, index: int, total: int, name: str, title: str, action: str = "compute") -> Iterator[None]:
        """A step's banner and timing; a step loaded or skipped gets one line, not a banner."""
        start = time.perf_counter()
        if action == "compute":
            self.line()
            self.line(f"STEP {index}/{total}: {title} ({name})")
            self.line("-" * 30)
        yield
        elapsed = time.perf_counter() - start
        self.timings[name] = elapsed
        if action == "compute":
            self.ok(f"{name} completed in {elapsed:.2f} seconds")
