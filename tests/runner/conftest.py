"""Fixtures shared by the runner tests."""
from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def cluster():
    """A real Dask LocalCluster of two worker processes on loopback, one per test module."""
    distributed = pytest.importorskip("distributed")
    with distributed.LocalCluster(n_workers=2, threads_per_worker=1, processes=True,
                                  dashboard_address=None, host="127.0.0.1") as c:
        yield c
