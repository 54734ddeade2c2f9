"""data_loaded parsed by byte ranges: the outputs of one stream for any number of ranges and any
backend, resume after SIGKILL mid-parse, a bad row in range k named by its line of the file.

The reference is the streaming reader, which a gzip copy of the same data takes (compressed
files have no ranges).
"""
from __future__ import annotations

import gzip
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import polars as pl
import pytest

from amlgraph.ingest import find_inputs, plan_ranges
from amlgraph.runner import run_preprocessing
from amlgraph.steps._layout import coded_chunks
from amlgraph.store import CheckpointStore, MemoryStore

from pipeline_helpers import amlgraph_cmd, digest_array, digest_table, graph_digest

PARSE = "data_loaded (parse)"


def _rows_for(trans: Path, n: int) -> int:
    """A chunk_rows whose reader block size cuts ``trans`` into exactly ``n`` ranges."""
    lo, hi = 1, 10**8  # the count falls as the rows grow: the fewest rows giving at most n
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (lo, mid) if plan_ranges(trans, mid).n <= n else (mid + 1, hi)
    assert plan_ranges(trans, lo).n == n, f"no chunk_rows gives {n} ranges"
    return lo


def _gzip_copy(src: Path, dst: Path) -> Path:
    """The data set of ``src`` with its Trans file gzip-compressed: read as one stream."""
    dst.mkdir()
    for f in src.iterdir():
        if f.name.endswith("_Trans.csv"):
            with open(f, "rb") as fin, gzip.open(dst / (f.name + ".gz"), "wb", compresslevel=1) as fout:
                shutil.copyfileobj(fin, fout)
        elif f.is_file() and not f.name.endswith(".quarantine.csv"):
            shutil.copy(f, dst / f.name)
    return dst


def data_loaded_digest(store) -> dict:
    """Every output of data_loaded but where it came from: coded rows, index, values, patterns."""
    dl = store.load("data_loaded")
    coded = pl.concat([store.load(n).table("transactions") for n in coded_chunks(dl)])
    index = store.load("data_loaded_index")
    out = {"coded": digest_table(coded), "nodes": digest_table(index.table("nodes")),
           "patterns": digest_table(dl.table("patterns"))}
    if "keys" in index.arrays:
        out["keys"] = digest_array(index.array("keys"))
    for name in dl.values:
        if name not in ("config", "parts"):
            value = dl.value(name)
            if name == "summary":
                value = {k: v for k, v in value.items() if k != "quarantine"}
            out[name] = repr(value)
    return out


@pytest.fixture(scope="module")
def streamed(tiny_data, tmp_path_factory):
    """The one-stream reference: data_loaded's outputs and the graph."""
    data = _gzip_copy(tiny_data, tmp_path_factory.mktemp("gz") / "data")
    store = MemoryStore()
    result = run_preprocessing(data_path=data, store=store, quiet=True)
    assert PARSE not in result.chunks_computed  # no ranges: one stream
    return data_loaded_digest(store), graph_digest(result.graph)


@pytest.mark.parametrize("n", [1, 2, 7])
def test_any_number_of_ranges_gives_the_outputs_of_one_stream(tiny_data, streamed, n):
    trans = find_inputs(tiny_data).trans
    store = MemoryStore()
    result = run_preprocessing(data_path=tiny_data, store=store, quiet=True, chunk_rows=_rows_for(trans, n))
    assert result.chunks_computed[PARSE] == n
    assert data_loaded_digest(store) == streamed[0]
    assert graph_digest(result.graph) == streamed[1]


@pytest.mark.parametrize("backend", ["threads", "processes", "dask"])
def test_every_backend_parses_the_ranges_alike(tiny_data, streamed, tmp_path, backend, request):
    trans = find_inputs(tiny_data).trans
    options = {"threads": {"threads": 3}, "processes": {"workers": 2, "backend": "processes"}}.get(backend)
    if backend == "dask":
        options = {"backend": "dask", "scheduler": request.getfixturevalue("cluster").scheduler_address}
    result = run_preprocessing(data_path=tiny_data, checkpoint_dir=tmp_path / "c", quiet=True,
                               chunk_rows=_rows_for(trans, 7), **options)
    assert result.chunks_computed[PARSE] == 7
    assert data_loaded_digest(CheckpointStore(tmp_path / "c", create=False)) == streamed[0]
    assert graph_digest(result.graph) == streamed[1]


def _valid(ckpt: Path, prefix: str) -> int:
    return sum(1 for n in CheckpointStore(ckpt, create=False).names() if n.startswith(prefix))


def test_sigkill_mid_parse_then_resume_reuses_the_parsed_ranges(tiny_data, streamed, tmp_path):
    ckpt = tmp_path / "ckpt"
    rows = 500  # about 20 ranges of the tiny file
    total = plan_ranges(find_inputs(tiny_data).trans, rows).n
    assert total >= 10
    args = ["run", str(tiny_data), "--checkpoint-dir", str(ckpt), "--chunk-rows", str(rows), "--threads", "1",
            "--quiet"]
    proc = subprocess.Popen(amlgraph_cmd(*args), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            env={**os.environ, "POLARS_MAX_THREADS": "1"})
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if len(list(ckpt.glob("data_loaded_read_chunk_*/manifest.json"))) >= 3:
            break
        time.sleep(0.002)
    assert proc.poll() is None, "the run ended before it could be killed: " + proc.stderr.read().decode()
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = _valid(ckpt, "data_loaded_read_chunk_")
    assert 0 < done < total
    assert _valid(ckpt, "data_loaded_read_0") == 0  # the file was not marked parsed
    result = run_preprocessing(data_path=tiny_data, checkpoint_dir=ckpt, quiet=True, chunk_rows=rows, threads=1)
    assert result.chunks_computed[PARSE] == total - done
    assert graph_digest(result.graph) == streamed[1]


def _line_in_range(trans: Path, n: int, k: int) -> int:
    """The number (1-based) of a line in the middle of range ``k`` of ``n``."""
    plan = plan_ranges(trans, _rows_for(trans, n))
    lo, hi = plan.bounds(k)
    return trans.read_bytes()[:(lo + hi) // 2].count(b"\n") + 1


def _spoil(trans: Path, lines: list[int]) -> None:
    text = trans.read_bytes().split(b"\n")
    for line in lines:
        text[line - 1] = text[line - 1].replace(b",ACH,", b",Telex,").replace(b",Wire,", b",Telex,") \
            .replace(b",Cheque,", b",Telex,").replace(b",Cash,", b",Telex,").replace(b",Credit Card,", b",Telex,") \
            .replace(b",Reinvestment,", b",Telex,").replace(b",Bitcoin,", b",Telex,")
    trans.write_bytes(b"\n".join(text))


@pytest.mark.parametrize("extra", [(), ("--workers", "2")])
def test_a_bad_row_in_range_k_fails_the_run_in_one_line_naming_its_line(tiny_data, tmp_path, extra):
    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    trans = find_inputs(data).trans
    line = _line_in_range(trans, 7, 5)
    _spoil(trans, [line])
    proc = subprocess.run(amlgraph_cmd("run", str(data), "--checkpoint-dir", str(tmp_path / "c"), "--chunk-rows",
                                       str(_rows_for(trans, 7)), *extra),
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr
    err = [s for s in proc.stderr.splitlines() if s.strip()]
    assert len(err) == 1, proc.stderr
    assert f"{trans}:{line}: unknown payment format" in err[0]
    assert "(column 'Payment Format', value 'Telex')" in err[0]
    assert "Traceback" not in proc.stderr


def test_a_bad_row_in_a_url_input_names_the_url_not_the_workers_copy(tiny_data, tmp_path, monkeypatch):
    """A worker parses its own copy of a URL input; the error names the URL and the file's line."""
    from amlgraph.errors import InputError
    from amlgraph.runner._tasks import phase_task

    monkeypatch.setenv("AMLGRAPH_CACHE_DIR", str(tmp_path / "cache"))
    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    trans = find_inputs(data).trans
    line = _line_in_range(trans, 7, 5)
    _spoil(trans, [line])
    plan = plan_ranges(trans, _rows_for(trans, 7))
    url = trans.resolve().as_uri()
    with pytest.raises(InputError) as info:
        phase_task(MemoryStore(), "data_loaded_read_chunk_5", "k", func="amlgraph.steps._parse:parse_range_chunk",
                   step="data_loaded", index=5, kwargs={"path": url, "size": plan.size, "data_start": plan.data_start,
                                                        "n": plan.n, "k": 5, "on_bad_rows": "raise"})
    assert info.value.path == url and str(info.value).startswith(f"{url}:{line}: unknown payment format")
    assert str(tmp_path / "cache") not in str(info.value)


def test_quarantined_rows_of_every_range_are_the_streams(tiny_data, tmp_path):
    data = tmp_path / "data"
    shutil.copytree(tiny_data, data)
    trans = find_inputs(data).trans
    bad = sorted({_line_in_range(trans, 7, k) for k in (0, 3, 6)})
    _spoil(trans, bad)
    gz = _gzip_copy(data, tmp_path / "gz")
    ranged = run_preprocessing(data_path=data, store=MemoryStore(), quiet=True, on_bad_rows="quarantine",
                               chunk_rows=_rows_for(trans, 7))
    stream = run_preprocessing(data_path=gz, store=MemoryStore(), quiet=True, on_bad_rows="quarantine")
    assert ranged.chunks_computed[PARSE] == 7
    assert graph_digest(ranged.graph) == graph_digest(stream.graph)
    got = pl.read_csv(data / (trans.name + ".quarantine.csv"), infer_schema=False)
    want = pl.read_csv(gz / (trans.name + ".gz.quarantine.csv"), infer_schema=False)
    assert got.equals(want)
    assert got["line"].to_list() == [str(n) for n in bad]
    assert got["row"].to_list() == [str(n - 2) for n in bad]  # no blank lines: row = line - 2


def test_a_new_file_after_ranges_without_rows_takes_new_chunk_names(tiny_data, tmp_path):
    """A line longer than a range leaves ranges without rows (no parts, but chunk names): the
    next Trans file's chunks are numbered after them, and the old file's stay as they were."""
    header, *lines = (find_inputs(tiny_data).trans.read_text()).splitlines(keepends=True)
    lines[3_000] = "X" * 300_000 + "\n"  # a bad row several ranges long (600 lines: ~64 KiB a range)
    whole, data = tmp_path / "whole", tmp_path / "data"
    for d in (whole, data):
        shutil.copytree(tiny_data, d)
    trans = find_inputs(data).trans
    (whole / trans.name).write_text(header + "".join(lines))
    trans.write_text(header + "".join(lines[:7_000]))
    ckpt = tmp_path / "ckpt"
    opts = {"quiet": True, "chunk_rows": 600, "on_bad_rows": "quarantine", "keep_parsed": True}
    first = run_preprocessing(data_path=data, checkpoint_dir=ckpt, **opts)
    n = plan_ranges(trans, 600).n
    assert first.chunks_computed[PARSE] == n
    store = CheckpointStore(ckpt)
    parts = [p for p in store.load("data_loaded").value("parts") if p["name"].startswith("data_loaded_read_chunk_")]
    assert len(parts) < n  # some ranges have no rows
    before = {k: store.manifest(k)["created"] for k in store.names() if k.startswith("data_loaded_read_chunk_")}
    (data / trans.name.replace("_Trans.csv", "_Trans_2022-09-11.csv")).write_text(header + "".join(lines[7_000:]))
    second = run_preprocessing(data_path=data, checkpoint_dir=ckpt, **opts)
    after = {k: store.manifest(k)["created"] for k in store.names() if k.startswith("data_loaded_read_chunk_")}
    assert {k: after[k] for k in before} == before
    assert second.chunks_computed[PARSE] == len(after) - len(before) > 0
    reference = run_preprocessing(data_path=whole, store=MemoryStore(), **opts)
    assert graph_digest(second.graph) == graph_digest(reference.graph)


def test_the_log_says_which_files_keep_the_stream(tiny_data, tmp_path):
    import io

    from amlgraph.runner._log import RunLog

    gz = _gzip_copy(tiny_data, tmp_path / "gz")
    texts = {}
    for label, data, extra in (("gz", gz, {}), ("sample", tiny_data, {"sample_size": 4_000}),
                               ("plain", tiny_data, {})):
        log = RunLog(stream=io.StringIO())
        run_preprocessing(data_path=data, store=MemoryStore(), log=log, **extra)
        texts[label] = log.stream.getvalue()
    name = find_inputs(tiny_data).trans.name
    assert f"{name}.gz: compressed, read as one stream (byte ranges need a plain file)" in texts["gz"]
    assert f"{name}: read as one stream (a sample reads only the first 4,000 rows)" in texts["sample"]
    assert "byte ranges" in texts["plain"] and "one stream" not in texts["plain"]
    assert PARSE in texts["plain"] and PARSE not in texts["gz"]
