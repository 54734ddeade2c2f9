"""How an export is committed (export/_io.py): refusals leave nothing, failed writes leave nothing
and keep the previous export, leftovers of killed exports are removed, formats share a directory.
The same with real processes, kills, full and read-only disks: tests/fault/test_export_commit.py."""
from __future__ import annotations

import errno
import os
import subprocess
import sys

import polars as pl
import pytest

from amlgraph.errors import ConfigError
from amlgraph.export import FILES, FORMATS, ExportWriteError, _io, export_graph
from amlgraph.graph import random_graph


@pytest.fixture
def graph():
    return random_graph(30, 200, seed=11)


def _tree(path):
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


@pytest.mark.parametrize("fmt", FORMATS)
def test_an_export_is_the_formats_files_and_nothing_else(graph, tmp_path, fmt):
    paths = export_graph(graph, fmt, tmp_path / "a" / "E")
    assert paths == [tmp_path / "a" / "E" / name for name in FILES[fmt]]
    assert _tree(tmp_path / "a") == ["E"] + [f"E/{n}" for n in sorted(FILES[fmt])]


def test_refused_exports_leave_nothing_behind(graph, tmp_path):
    with pytest.raises(ConfigError, match="must be one of"):
        export_graph(graph, "csv", tmp_path / "new" / "E")
    graph.edge_feature_names = ["y"] + graph.edge_feature_names[1:]  # refused by the writer
    with pytest.raises(ConfigError, match="collide"):
        export_graph(graph, "parquet", tmp_path / "new" / "E")
    graph.node_feature_names = ["bank"] + graph.node_feature_names[1:]
    with pytest.raises(ConfigError, match="collide"):
        export_graph(graph, "networkx", tmp_path / "new" / "E")
    assert list(tmp_path.iterdir()) == []  # not even the parent directories


def test_networkx_above_the_limit_creates_nothing(tmp_path, monkeypatch):
    import amlgraph.export._networkx as mod

    monkeypatch.setattr(mod, "DEFAULT_LIMIT", 20)
    big = random_graph(10, 50, seed=1)
    with pytest.raises(ConfigError, match="limit of 20"):
        export_graph(big, "networkx", tmp_path / "E")
    assert list(tmp_path.iterdir()) == []


def test_a_refused_replacement_keeps_the_previous_export(graph, tmp_path):
    out = tmp_path / "E"
    export_graph(graph, "parquet", out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    graph.edge_feature_names = ["y"] + graph.edge_feature_names[1:]
    with pytest.raises(ConfigError, match="collide"):
        export_graph(graph, "parquet", out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert _tree(tmp_path) == ["E"] + [f"E/{n}" for n in sorted(FILES["parquet"])]


def test_a_directory_that_is_not_an_export_is_refused_untouched(graph, tmp_path):
    out = tmp_path / "E"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    with pytest.raises(ConfigError, match="not an amlgraph export directory.*'notes.txt'"):
        export_graph(graph, "pyg", out)
    assert _tree(tmp_path) == ["E", "E/notes.txt"]


def test_an_existing_file_and_a_symlinked_directory(graph, tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(ConfigError, match="must be a directory"):
        export_graph(graph, "parquet", tmp_path / "file")
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    export_graph(graph, "parquet", tmp_path / "link")
    assert (tmp_path / "link").is_symlink()  # the link is kept; the directory it names is replaced
    assert sorted(os.listdir(tmp_path / "real")) == sorted(FILES["parquet"])


def test_an_empty_directory_is_used_and_keeps_its_mode(graph, tmp_path):
    out = tmp_path / "E"
    out.mkdir()
    out.chmod(0o750)
    export_graph(graph, "multignn", out)
    export_graph(graph, "multignn", out)  # replacing an export keeps the mode too
    assert sorted(os.listdir(out)) == ["formatted_transactions.csv"]
    assert out.stat().st_mode & 0o777 == 0o750


def test_formats_share_a_directory(graph, tmp_path):
    out = tmp_path / "E"
    export_graph(graph, "pyg", out)
    pt = (out / "graph.pt").read_bytes()
    export_graph(graph, "parquet", out)
    export_graph(random_graph(30, 100, seed=2), "parquet", out)  # replaces only the parquet set
    assert sorted(os.listdir(out)) == sorted(FILES["pyg"] + FILES["parquet"])
    assert (out / "graph.pt").read_bytes() == pt
    assert pl.read_parquet(out / "edges.parquet").height == 100
    assert os.listdir(tmp_path) == ["E"]


def test_leftovers_of_killed_exports_are_removed(graph, tmp_path):
    out = tmp_path / "E"
    export_graph(graph, "parquet", out)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    pid = int(dead.stdout)  # a process that has exited
    stage = tmp_path / f".tmp-{pid}-{_host()}-0123abcd-E.export"
    aside = tmp_path / f".tmp-{pid}-{_host()}-89abcdef-E.old"
    alive = tmp_path / f".tmp-{os.getpid()}-{_host()}-00000000-E.export"  # a live writer's
    other = tmp_path / f".tmp-{pid}-{_host()}-0123abcd-F.export"  # another target's
    for d in (stage, aside, alive, other):
        d.mkdir()
        (d / "nodes.parquet").write_bytes(b"half")
    (out / ".edges.parquet.k2j4h5.tmp").write_bytes(b"half")  # an earlier version's temporary
    export_graph(graph, "parquet", out)
    assert sorted(os.listdir(tmp_path)) == sorted(["E", alive.name, other.name])
    assert sorted(os.listdir(out)) == sorted(FILES["parquet"])


def _host() -> str:
    from amlgraph.store._files import HOST_TAG

    return HOST_TAG


@pytest.mark.parametrize("code, words", [
    (errno.ENOSPC, "no space left on device"), (errno.EDQUOT, "disk quota exceeded"),
    (errno.EFBIG, "file too large"), (errno.EROFS, "read-only file system"),
    (errno.EACCES, "permission denied"), (errno.EIO, "could not write"),
])
@pytest.mark.parametrize("fmt", FORMATS)
def test_a_failed_write_is_one_clear_line_and_leaves_the_previous_export(graph, tmp_path,
                                                                         monkeypatch, fmt, code, words):
    out = tmp_path / "E"
    export_graph(graph, fmt, out)
    before = {p.name: p.stat().st_ino for p in out.iterdir()}

    def failing(self, data):  # every write fails, as on a full or read-only disk
        self.error = self.error or OSError(code, os.strerror(code))
        raise self.error

    monkeypatch.setattr(_io.OutputFile, "write", failing)
    with pytest.raises(ExportWriteError) as info:
        export_graph(random_graph(30, 300, seed=5), fmt, out)
    text = str(info.value)
    assert words in text.lower() and str(out) in text and "\n" not in text, text
    assert "previous export there is intact" in text
    assert info.value.exit_code == 3
    assert {p.name: p.stat().st_ino for p in out.iterdir()} == before
    assert os.listdir(tmp_path) == ["E"]
    # a first export that fails leaves nothing, not even the directory
    with pytest.raises(ExportWriteError, match="nothing of the export was left"):
        export_graph(graph, fmt, tmp_path / "new" / "F")
    assert os.listdir(tmp_path) == ["E"]


def test_errno_is_read_from_a_writer_librarys_message():
    from polars.exceptions import ComputeError

    wrapped = ComputeError("parquet: File out of specification: underlying IO error: "
                           "No space left on device (os error 28)")
    assert _io.storage_errno(wrapped) == errno.ENOSPC
    assert _io.storage_errno(RuntimeError("[Errno 30] Read-only file system: 'x'")) == errno.EROFS
    chained = RuntimeError("unexpected pos 61632 vs 61520")
    chained.__cause__ = OSError(errno.EFBIG, "File too large")
    assert _io.storage_errno(chained) == errno.EFBIG
    assert _io.storage_errno(RuntimeError("row 28 (os error 2)")) is None  # not a storage errno
    assert _io.storage_errno(ValueError("no errno here")) is None


def test_polars_wrapped_error_becomes_an_export_write_error(graph, tmp_path, monkeypatch):
    """A writer that reports a full disk only in its own exception's text."""
    from polars.exceptions import ComputeError

    def write_parquet(self, *a, **k):
        raise ComputeError("parquet: underlying IO error: No space left on device (os error 28)")

    monkeypatch.setattr(pl.DataFrame, "write_parquet", write_parquet)
    with pytest.raises(ExportWriteError, match="no space left on device"):
        export_graph(graph, "parquet", tmp_path / "E")
    assert list(tmp_path.iterdir()) == []


def test_other_errors_pass_through_and_clean_up(graph, tmp_path, monkeypatch):
    def boom(self, *a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr(pl.DataFrame, "write_csv", boom)
    with pytest.raises(KeyboardInterrupt):
        export_graph(graph, "multignn", tmp_path / "E")
    assert list(tmp_path.iterdir()) == []


def test_switch_without_an_atomic_exchange(graph, tmp_path, monkeypatch):
    """Where renameat2(RENAME_EXCHANGE) is missing, the old export is renamed aside first."""
    out = tmp_path / "E"
    export_graph(graph, "pyg", out)
    monkeypatch.setattr(_io, "_exchange", lambda a, b: False)
    export_graph(random_graph(30, 100, seed=2), "pyg", out)
    assert sorted(os.listdir(tmp_path)) == ["E"]
    assert sorted(os.listdir(out)) == sorted(FILES["pyg"])


def test_the_exchange_is_atomic_on_this_system(tmp_path):
    if not sys.platform.startswith("linux"):
        pytest.skip("renameat2 is Linux only")
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "x").write_text("a")
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "y").write_text("b")
    assert _io._exchange(tmp_path / "a", tmp_path / "b")
    assert os.listdir(tmp_path / "a") == ["y"] and os.listdir(tmp_path / "b") == ["x"]
