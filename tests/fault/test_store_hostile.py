"""Hostile files in a checkpoint directory: damaged JSON, FIFOs, devices, unsafe arrays.

Every file the store reads is a regular file read with a size bound, parsed with a depth bound and
checked against its schema; anything else is a damaged checkpoint (recomputed by a run, reported
by verify), a damaged hash cache is an empty cache, and a damaged store marker is a one-line error
naming the file (exit 3). No command hangs, none ends in an internal error.
"""
from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import numpy as np
import pytest

from amlgraph import cli
from amlgraph.errors import CheckpointError
from amlgraph.runner import run_preprocessing
from amlgraph.store import CheckpointStore
from harness import env
from pipeline_helpers import graph_digest
from store_fixtures import (CHUNKS, copy_run, deep_json, gen_dir, make_run, one_line_error, read_manifest,
                            replace_data_file, run_cli, write_sealed)
from warm_cli import WarmLauncher

HANG_S = 60  # a command still running after this long is hung on a file


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    data, ckpt = make_run(tmp_path_factory.mktemp("hostile"))
    digest = graph_digest(run_preprocessing(data_path=data, checkpoint_dir=ckpt, quiet=True,
                                            chunk_size=20, chunk_rows=200).graph)
    return data, ckpt, digest


@pytest.fixture(scope="module")
def warm():
    """Commands forked from a parent that imported the `amlgraph` command once (``warm_cli``)."""
    launcher = WarmLauncher(env(), preload=())
    yield launcher
    launcher.close()


def _run(data, root, **kw):
    return run_preprocessing(data_path=data, checkpoint_dir=root, quiet=True, chunk_size=20, chunk_rows=200, **kw)


def _main(capsys, *args) -> tuple[int, str, str]:
    rc = cli.main([str(a) for a in args])
    out = capsys.readouterr()
    assert "internal error" not in out.err, out.err
    return rc, out.out, out.err


# --- damaged JSON (item 3) -----------------------------------------------------------------------
def _cache_cases(trans: str) -> dict[str, str]:
    algo = {"algorithm": "xxh3_128"}
    return {
        "entries-number": json.dumps({**algo, "entries": 5}),
        "entries-list": json.dumps({**algo, "entries": [1, 2]}),
        "entry-number": json.dumps({**algo, "entries": {trans: 5}}),
        "entry-wrong-types": json.dumps({**algo, "entries": {trans: {"inode": "1", "size": [], "mtime_ns": {},
                                                                     "ctime_ns": None, "hash": 7}}}),
        "top-level-list": "[1, 2]",
        "deeply-nested": '{"algorithm": "xxh3_128", "entries": ' + deep_json() + "}",
        "huge-number": '{"algorithm": "xxh3_128", "entries": {}, "x": ' + "9" * 100_000 + "}",
    }


@pytest.mark.parametrize("case", list(_cache_cases("t")))
def test_a_damaged_hash_cache_is_an_empty_cache(finished, tmp_path, capsys, case):
    data, ckpt, digest = finished
    root = copy_run(ckpt, tmp_path / "ckpt")
    trans = str(next(data.glob("*_Trans.csv")).resolve())
    (root / ".hashcache.json").write_text(_cache_cases(trans)[case])
    rc, out, _ = _main(capsys, "status", root)
    assert rc == 0 and "stale" not in out
    result = _run(data, root)
    assert result.computed == [] and graph_digest(result.graph) == digest
    rewritten = json.loads((root / ".hashcache.json").read_text())
    assert isinstance(rewritten["entries"][trans], dict)


def _resealed(field, value):
    def damage(root):
        m = read_manifest(root, "graph_created")
        if field == "shape":
            m["arrays"]["node_y"]["shape"] = value
        elif field == "file-size":
            m["files"]["values.json"]["size"] = value
        else:
            m[field] = value
        if field == "key_components":
            m["key"] = "0" * 64  # a key mismatch is explained from the key components
        write_sealed(root, "graph_created", m)
    return damage


def _raw_manifest(text):
    def damage(root):
        (root / "graph_created" / "manifest.json").write_text(text)
    return damage


def _values(text):
    def damage(root):
        replace_data_file(root, "graph_created", "values.json", text.encode())
    return damage


MANIFEST_DAMAGE = {
    "deeply-nested": _raw_manifest(deep_json()),
    "nested-object": _raw_manifest('{"a": ' * 50_000 + "1" + "}" * 50_000),
    "top-level-list": _raw_manifest("[1, 2, 3]"),
    "created-number": _resealed("created", 5),
    "chunk-string": _resealed("chunk", "x"),
    "shape-string": _resealed("shape", "abc"),
    "shape-of-strings": _resealed("shape", ["600"]),
    "file-size-bool": _resealed("file-size", True),
    "key-components-list": _resealed("key_components", [1]),
    "metadata-list": _resealed("metadata", [1]),
    "values-deeply-nested": _values(deep_json()),
    "values-list": _values("[1]"),
}


@pytest.mark.parametrize("case", list(MANIFEST_DAMAGE))
def test_damaged_json_in_a_checkpoint_is_a_damaged_checkpoint(finished, tmp_path, capsys, case):
    data, ckpt, digest = finished
    root = copy_run(ckpt, tmp_path / "ckpt")
    MANIFEST_DAMAGE[case](root)
    rc, out, _ = _main(capsys, "checkpoints", "verify", root)
    assert rc == 1
    (line,) = [x for x in out.splitlines() if x.startswith("DAMAGED")]
    assert line.startswith("DAMAGED  graph_created:"), out
    assert ("values.json" if case.startswith("values") else "manifest.json") in line
    rc, out, _ = _main(capsys, "checkpoints", "list", root)
    assert rc == 0
    (row,) = [x for x in out.splitlines() if x.split()[:1] == ["graph_created"]]
    assert "DAMAGED" in row
    rc, out, _ = _main(capsys, "status", root)
    assert rc == 0 and "next run: compute graph_created;" in out, out
    result = _run(data, root)
    assert result.computed == ["graph_created"] and graph_digest(result.graph) == digest


def test_malformed_key_components_explain_a_mismatch(finished, tmp_path, capsys):
    """A re-sealed manifest whose key differs and whose recorded key components are malformed
    inside: the mismatch is explained (status) and the step recomputed (run), no internal error."""
    data, ckpt, digest = finished
    root = copy_run(ckpt, tmp_path / "ckpt")
    m = read_manifest(root, "graph_created")
    m["key"] = "0" * 64
    m["key_components"] = {"params": [1], "files": 5, "inputs": "x", "version": {"a": [1] * 1000}}
    write_sealed(root, "graph_created", m)
    rc, out, _ = _main(capsys, "status", root)
    (line,) = [x for x in out.splitlines() if x.split()[:1] == ["graph_created"]]
    assert rc == 0 and "stale" in line and ": files changed; params changed; inputs changed;" in line, out
    result = _run(data, root)
    assert result.computed == ["graph_created"] and graph_digest(result.graph) == digest


def test_a_damaged_store_marker_is_a_one_line_error(finished, tmp_path, capsys):
    data, ckpt, _ = finished
    root = copy_run(ckpt, tmp_path / "ckpt")
    (root / "amlgraph-store.json").write_text(deep_json())
    for args in (("checkpoints", "list", root), ("checkpoints", "verify", root), ("status", root),
                 ("run", data, "--checkpoint-dir", root, "--quiet")):
        rc, _, err = _main(capsys, *args)
        assert rc == 3 and err.count("\n") == 1, (args, err)
        assert "amlgraph-store.json" in err, err


# --- FIFOs and devices (item 4) ------------------------------------------------------------------
def _fifo(rel):
    def plant(root):
        os.unlink(root / rel)
        os.mkfifo(root / rel)
    return plant


def _devzero(rel):
    def plant(root):
        os.unlink(root / rel)
        os.symlink("/dev/zero", root / rel)
    return plant


def _fifo_values(root):
    path = gen_dir(root, "graph_created") / "values.json"
    os.unlink(path)
    os.mkfifo(path)


#: plant, expected exit codes of list, verify, status, clean, export, run (3: the one-line error)
HANGS = {
    "manifest-fifo": (_fifo("graph_created/manifest.json"), (0, 1, 0, 0, 3, 0)),
    # The graph reads its node matrices from that chunk: the export stops with the one-line error.
    "chunk-manifest-fifo": (_fifo("node_features_chunk_1/manifest.json"), (0, 1, 0, 0, 3, 0)),
    "values-fifo": (_fifo_values, (0, 1, 0, 0, 3, 0)),
    "marker-fifo": (_fifo("amlgraph-store.json"), (3, 3, 3, 3, 3, 3)),
    "hashcache-fifo": (_fifo(".hashcache.json"), (0, 0, 0, 0, 0, 0)),
    "hashcache-dev-zero": (_devzero(".hashcache.json"), (0, 0, 0, 0, 0, 0)),
}


@pytest.mark.parametrize("case", list(HANGS))
def test_no_command_hangs_on_a_fifo_or_device(finished, warm, tmp_path, case):
    data, ckpt, digest = finished
    root = copy_run(ckpt, tmp_path / "ckpt")
    plant, expected = HANGS[case]
    plant(root)
    commands = [("checkpoints", "list", root), ("checkpoints", "verify", root), ("status", root),
                ("checkpoints", "clean", root, "--keep-last", "1000", "--dry-run"),
                ("export", root, "--format", "parquet", "--out", tmp_path / "out"),
                ("run", data, "--checkpoint-dir", root, *CHUNKS, "--quiet")]
    for args, rc in zip(commands, expected):
        args = [str(a) for a in args]
        try:
            proc = run_cli(*args, timeout=HANG_S, launcher=warm)
        except subprocess.TimeoutExpired:
            pytest.fail(f"amlgraph {' '.join(args[:2])} hung on {case} (killed after {HANG_S} s)")
        assert proc.returncode == rc, (args, proc.stdout[-2000:], proc.stderr)
        if rc == 3:
            line = one_line_error(proc)
            if case == "marker-fifo":
                assert "amlgraph-store.json" in line and "not a regular file" in line, line
        else:
            assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    if case != "marker-fifo":
        assert graph_digest(_run(data, root).graph) == digest


def test_lock_holder_file_that_is_a_fifo_does_not_hang_the_locked_message(finished, tmp_path):
    _, ckpt, _ = finished
    root = copy_run(ckpt, tmp_path / "ckpt")
    os.mkfifo(root / ".lock.json")
    code = ("import sys, fcntl, os; from amlgraph.store._lock import FileLock; from pathlib import Path;"
            "fd = os.open(sys.argv[1] + '/.lock', os.O_RDWR); fcntl.flock(fd, fcntl.LOCK_EX);"
            "print(FileLock(Path(sys.argv[1])).message())")
    try:
        proc = subprocess.run([sys.executable, "-c", code, str(root)], capture_output=True, text=True,
                              timeout=HANG_S, env=env(), stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        pytest.fail(f"reading the lock holder from a FIFO hung (killed after {HANG_S} s)")
    assert proc.returncode == 0 and "locked by another process" in proc.stdout, proc.stderr


# --- unsafe arrays (item 11) ---------------------------------------------------------------------
class _Marker:
    """Unpickling this runs ``open(path, 'w')``: the marker file proves code was executed."""

    def __init__(self, path: str):
        self.path = path

    def __reduce__(self):
        return (open, (self.path, "w"))


def _npy(descr, shape, body: bytes) -> bytes:
    out = io.BytesIO()
    np.lib.format.write_array_header_1_0(out, {"descr": descr, "fortran_order": False, "shape": shape})
    return out.getvalue() + body


def _object_array(tmp_path, info):
    arr = np.empty(info["shape"][0], dtype=object)
    arr[:] = [_Marker(str(tmp_path / "PWNED"))] * len(arr)
    out = io.BytesIO()
    np.save(out, arr, allow_pickle=True)
    return out.getvalue(), None


def _structured(*, declared):
    """A structured array in place of a plain one; ``declared``: the re-sealed manifest records its
    dtype too (then the manifest itself is refused), else it keeps the plain dtype."""
    def make(tmp_path, info):
        dt = np.dtype([("a", info["dtype"])])
        blob = _npy(np.lib.format.dtype_to_descr(dt), tuple(info["shape"]), np.zeros(info["shape"], dt).tobytes())
        return blob, (dt.str if declared else None)
    return make


def _subarray(tmp_path, info):
    # the same (rows, columns) values, written as `rows` elements of a (columns,)-subarray dtype
    rows, cols = info["shape"]
    return _npy((info["dtype"], (cols,)), (rows,), np.zeros((rows, cols), info["dtype"]).tobytes()), None


UNSAFE = {  # array of graph_created -> maker(tmp_path, its manifest entry) -> (bytes, dtype to record)
    # (the graph's own arrays; its large ones are read from the checkpoints it links to)
    "object-dtype": ("node_y", _object_array),
    "structured-declared": ("synthetic_y", _structured(declared=True)),
    "structured": ("node_y", _structured(declared=False)),
    "subarray": ("synthetic_edge_attr", _subarray),
}


@pytest.mark.parametrize("case", list(UNSAFE))
def test_verify_refuses_what_load_refuses(finished, tmp_path, capsys, case):
    """A re-sealed unsafe array (manifest hashes and sizes updated to match) is damaged for verify
    as for load, is never unpickled, and a run recomputes it."""
    data, ckpt, digest = finished
    root = copy_run(ckpt, tmp_path / "ckpt")
    array, make = UNSAFE[case]
    info = read_manifest(root, "graph_created")["arrays"][array]
    file = info["file"]
    blob, dtype = make(tmp_path, info)
    replace_data_file(root, "graph_created", file, blob)
    if dtype is not None:
        m = read_manifest(root, "graph_created")
        m["arrays"][array]["dtype"] = dtype
        write_sealed(root, "graph_created", m)
    rc, out, _ = _main(capsys, "checkpoints", "verify", root)
    assert rc == 1, out
    (line,) = [x for x in out.splitlines() if x.startswith("DAMAGED")]
    assert line.startswith(f"DAMAGED  graph_created: {'manifest.json' if dtype else file} "), line
    ck = CheckpointStore(root, verify="none").load("graph_created")
    if dtype is None:  # loading refuses it as verify does, naming the checkpoint and the file
        with pytest.raises(CheckpointError, match=f"graph_created is damaged: array {array} .*{file}"):
            ck.array(array)
    else:
        assert ck is None
    proc = run_cli("run", str(data), "--checkpoint-dir", str(root), *CHUNKS, "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert not (tmp_path / "PWNED").exists()
    assert graph_digest(_run(data, root).graph) == digest
