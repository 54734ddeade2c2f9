"""Exports of a finished graph: ``pyg``, ``multignn``, ``networkx``, ``parquet``.

Each format lives in its own module (``_<format>.py``) and writes its files into a directory it is
given; this one dispatches and commits the set: the files are written into a staging directory
beside ``out_dir`` and switched into place as a whole (see ``_io.py`` and docs/EXPORTS.md), so
``out_dir`` always holds one complete export, never a mix of two or a half-written one.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from amlgraph.errors import ConfigError
from amlgraph.export._io import committed_export

if TYPE_CHECKING:
    from amlgraph.export._parquet import Unscaled
    from amlgraph.graph import TransactionGraph

FORMATS = ("pyg", "multignn", "networkx", "parquet")
#: The files of each format, in the order ``export_graph`` returns them.
FILES = {
    "pyg": ("graph.pt", "graph.json", "train.pt", "train.json", "val.pt", "val.json",
            "test.pt", "test.json"),
    "multignn": ("formatted_transactions.csv",),
    "networkx": ("graph.graphml",),
    "parquet": ("nodes_train.parquet", "nodes_val.parquet", "nodes_test.parquet", "edges.parquet"),
}
#: Files a format wrote in earlier versions and no longer does: still recognised as export files,
#: and removed when the format is exported again (never carried over beside the new set).
RETIRED = {
    "parquet": ("nodes.parquet",),
}
KNOWN_FILES = frozenset(name for names in (*FILES.values(), *RETIRED.values()) for name in names)


def export_graph(graph: "TransactionGraph", fmt: str, out_dir: str | Path, *,
                 reverse_edges: bool = False, force: bool = False,
                 unscaled: "Unscaled | None" = None) -> list[Path]:
    """Write ``graph`` in format ``fmt`` into ``out_dir`` (created when absent), all files at once.

    ``out_dir`` must be absent, empty, or hold earlier exports only: the files of this format are
    replaced as a set, those of other formats are kept.

    Args:
        graph: the graph.
        fmt: one of ``FORMATS``.
        out_dir: the output directory.
        reverse_edges: pyg only: load as a ``HeteroData`` with reverse edges.
        force: networkx only: export even above the size limit.
        unscaled: parquet only: write these features (before any log or scaling, read from the
            run's checkpoints by ``amlgraph.runner._unscaled.load_unscaled``) instead of the graph's
            normalised ones, and the raw amount, currency and format columns of each edge.

    Returns:
        The written paths.

    Raises:
        ConfigError: for an unknown format, an option of another format, a refused networkx
            export, unscaled tables of another graph, or an ``out_dir`` that is a file, a mount
            point or a directory holding other things than exports. Nothing is created then.
        ExportWriteError: when the storage fails (no space, read-only, no permission): nothing of
            the export is left and an earlier one in ``out_dir`` is intact.
    """
    if fmt not in FORMATS:
        raise ConfigError(f"export format must be one of {set(FORMATS)} (got {fmt!r})")
    from amlgraph.store import is_url

    if is_url(out_dir):
        return _export_to_url(graph, fmt, str(out_dir), reverse_edges=reverse_edges, force=force,
                              unscaled=unscaled)
    if unscaled is not None and fmt != "parquet":
        raise ConfigError(f"unscaled features apply to --format parquet only, not {fmt}")
    if fmt == "networkx":
        from amlgraph.export._networkx import DEFAULT_LIMIT, check_size

        check_size(graph, force=force, limit=DEFAULT_LIMIT)
    if unscaled is not None:
        from amlgraph.export._parquet import check_unscaled

        check_unscaled(graph, unscaled)
    own = FILES[fmt] + RETIRED.get(fmt, ())
    with committed_export(Path(out_dir), fmt, own, KNOWN_FILES) as stage:
        _write(graph, fmt, stage, reverse_edges=reverse_edges, force=force, unscaled=unscaled)
    return [Path(out_dir) / name for name in FILES[fmt]]


def _export_to_url(graph: "TransactionGraph", fmt: str, url: str, **options) -> list:
    """Export into a local temporary folder (all the checks and the atomic set of a local export),
    then upload its files to ``url``, each one whole (one PUT or one completed multipart upload).
    The set is not switched at once there: a reader during the upload may see new and old files."""
    import shutil
    import tempfile

    from amlgraph.export._io import ExportWriteError
    from amlgraph.store import upload_folder

    stage = Path(tempfile.mkdtemp(prefix="amlgraph-export-"))
    try:
        export_graph(graph, fmt, stage / "out", **options)
        try:
            upload_folder(stage / "out", url)
        except OSError as exc:
            raise ExportWriteError(f"could not upload the {fmt} export to {url}: {exc.strerror or exc}; "
                                   "check the URL and the credentials in the environment, then rerun") from exc
    finally:
        shutil.rmtree(stage, ignore_errors=True)
    return [f"{url.rstrip('/')}/{name}" for name in FILES[fmt]]


def _write(graph: "TransactionGraph", fmt: str, out: Path, *, reverse_edges: bool,
           force: bool, unscaled: "Unscaled | None") -> list[Path]:
    if fmt == "pyg":
        from amlgraph.export._pyg import write_pyg

        return write_pyg(graph, out, reverse_edges=reverse_edges)
    if fmt == "multignn":
        from amlgraph.export._multignn import write_multignn

        return write_multignn(graph, out)
    if fmt == "networkx":
        from amlgraph.export._networkx import write_networkx

        return write_networkx(graph, out, force=force)
    from amlgraph.export._parquet import write_parquet

    return write_parquet(graph, out, unscaled=unscaled)
