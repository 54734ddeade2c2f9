"""Results computed one ahead: the next loader runs in a second thread while the caller works."""
from __future__ import annotations

from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

T = TypeVar("T")


def ahead(loaders: list[Callable[[], T]], thread_name: str = "amlgraph-ahead") -> Iterator[T]:
    """Each loader's result, in order; loader i + 1 runs while the caller holds result i.

    Parquet reads, NumPy and file writes release the GIL, so reading overlaps the caller's
    arithmetic or writing, and at most two results are in memory. A loader's exception is raised
    where its result would have been yielded. Closing the iterator early waits for the loader
    in flight.
    """
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix=thread_name) as pool:
        upcoming = pool.submit(loaders[0]) if loaders else None
        try:
            for i in range(len(loaders)):
                current = upcoming.result()
                upcoming = pool.submit(loaders[i + 1]) if i + 1 < len(loaders) else None
                yield current
        finally:
            if upcoming is not None:
                upcoming.cancel()
