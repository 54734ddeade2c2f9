"""The run log: step banners, checkpoint lines and timings, in the seed's style. Silent when quiet."""
from __future__ import annotations

import sys
import time
from contextlib import contextmanager
from typing import Iterator, TextIO

RULE = "=" * 60


class RunLog:
    def __init__(self, *, quiet: bool = False, stream: TextIO | None = None):
        self.quiet = quiet
        self.stream = stream or sys.stdout
        self.timings: dict[str, float] = {}

    def line(self, text: str = "") -> None:
        if not self.quiet:
            print(text, file=self.stream, flush=True)

    def header(self, title: str) -> None:
        self.line(RULE)
        self.line(title)
        self.line(RULE)

    def ok(self, text: str) -> None:
        self.line(f"✓ {text}")

    def skip(self, text: str) -> None:
        self.line(f"⏭  {text}")

    @contextmanager
    def step(self, index: int, total: int, name: str, title: str) -> Iterator[None]:
        self.line()
        self.line(f"STEP {index}/{total}: {title} ({name})")
        self.line("-" * 30)
        start = time.perf_counter()
        yield
        elapsed = time.perf_counter() - start
        self.timings[name] = elapsed
        self.ok(f"{name} completed in {elapsed:.2f} seconds")
