"""Names of the checkpoints the steps hand to each other: the one place that knows them."""
from __future__ import annotations

from typing import Any

from amlgraph.steps._contract import is_chunk_name

#: The account index and vocabularies (a helper checkpoint of data_loaded).
INDEX = "data_loaded_index"
#: Prefix of data_loaded's parsing checkpoints: ``data_loaded_read_<file>`` marks a parsed file,
#: ``data_loaded_read_chunk_<i>`` holds reader batch i.
READ = "data_loaded_read"


def parts(ckpt: Any) -> list[dict]:
    """The parts (name, key) a step checkpoint lists under its value ``parts``."""
    return list(ckpt.value("parts")) if "parts" in ckpt.values else []


def coded_chunks(data_loaded: Any) -> list[str]:
    """Names of the coded transaction chunks of a ``data_loaded`` checkpoint, in row order."""
    return [p["name"] for p in parts(data_loaded)
            if is_chunk_name(p["name"]) and not p["name"].startswith(READ)]


def chunk_names(ckpt: Any) -> list[str]:
    """Names of the chunks a step checkpoint lists (node_features, edge_features), in order."""
    return [p["name"] for p in parts(ckpt)]
