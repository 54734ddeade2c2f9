"""Settings of Polars' memory allocator, applied when amlgraph is imported before Polars.

Polars allocates through jemalloc (symbols prefixed ``_rjem_``), which reads its options from the
``_RJEM_MALLOC_CONF`` environment variable once, when Polars' library loads; Polars' own
``__init__`` puts its defaults in front of the variable's value (later options win). Its defaults hand
freed memory back to the kernel quickly, so the next chunk's frames fault it in again, page by
page, and the kernel zeroes every page: on the 2-core reference machine a third of the pipeline's
CPU time was kernel time, mostly page faults (1.6 M of them on hi-small). Transparent huge pages
for jemalloc's arenas and freed pages kept for ten seconds cut the faults ~3x and the pipeline's
wall time ~10 % (docs/BENCHMARKS.md), at ~10-15 % more peak RSS.

The setting is not applied when Polars is already imported (too late to matter), when
``_RJEM_MALLOC_CONF`` is set already (the user's choice wins), or with ``AMLGRAPH_ALLOCATOR=default``.
It is inherited by the worker processes amlgraph starts.
"""
from __future__ import annotations

import os
import sys

#: jemalloc options: huge pages for its arenas; freed pages reused for 10 s before going back.
JEMALLOC_CONF = "thp:always,dirty_decay_ms:10000,muzzy_decay_ms:10000"
ENV = "_RJEM_MALLOC_CONF"


def tune() -> bool:
    """Set Polars' allocator options unless too late or unwanted; True when set here."""
    if "polars" in sys.modules or ENV in os.environ or os.environ.get("AMLGRAPH_ALLOCATOR") == "default":
        return False
    os.environ[ENV] = JEMALLOC_CONF
    return True
