"""Polars' allocator options set by ``import amlgraph`` (amlgraph.allocator), in fresh interpreters."""
from __future__ import annotations

import os
import subprocess
import sys

from amlgraph.allocator import ENV, JEMALLOC_CONF


def _conf_after(code: str, **env: str) -> str:
    clean = {k: v for k, v in os.environ.items() if k not in (ENV, "AMLGRAPH_ALLOCATOR")}
    out = subprocess.run([sys.executable, "-c", code + f"; import os; print(os.environ.get({ENV!r}))"],
                         env={**clean, **env}, capture_output=True, text=True, check=True)
    return out.stdout.strip()


def test_importing_amlgraph_first_sets_the_options_polars_then_keeps():
    # Polars puts its defaults first and the variable's value after them: the later options win.
    assert _conf_after("import amlgraph, polars").endswith("," + JEMALLOC_CONF)
    # the worker processes and the pipeline's modules import Polars after amlgraph
    assert _conf_after("import amlgraph.runner, polars").endswith("," + JEMALLOC_CONF)


def test_polars_imported_first_keeps_its_own_defaults():
    conf = _conf_after("import polars, amlgraph")
    assert conf != "None" and JEMALLOC_CONF not in conf


def test_the_users_setting_wins():
    conf = _conf_after("import amlgraph, polars", **{ENV: "dirty_decay_ms:0"})
    assert conf.endswith(",dirty_decay_ms:0") and JEMALLOC_CONF not in conf


def test_it_can_be_switched_off():
    assert JEMALLOC_CONF not in _conf_after("import amlgraph, polars", AMLGRAPH_ALLOCATOR="default")
