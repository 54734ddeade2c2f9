"""Every malformed input through `amlgraph run` (`cli.main` in-process; a few real processes too):
exit code 2, one line on stderr naming file, line, column and value, no traceback, and no step
checkpoint marked complete."""
from __future__ import annotations

import gzip
import shutil
import subprocess
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from amlgraph.schema import STEPS
from amlgraph.store import CheckpointStore
from harness import amlgraph, env

from bad_corpus import BAD, CASES, GOOD, HEADER, assert_one_line_error  # noqa: E402,F401
from cli_inprocess import run_main


def _trans_name(name: str) -> str:
    """The reader finds `*_Trans.csv` (optionally .gz/.zst) in a data directory."""
    for ext in (".csv.gz", ".csv.zst", ".csv"):
        if name.endswith(ext):
            return "X_Trans" + ext
    raise ValueError(name)


def _run(data_dir: Path) -> subprocess.CompletedProcess:
    return subprocess.run(amlgraph("run", str(data_dir), "--checkpoint-dir", str(data_dir / "ckpt"),
                                   "--quiet"), capture_output=True, text=True, timeout=120, env=env())


def _stage(tmp: Path, name: str, content: bytes | None = None) -> Path:
    data = tmp / name.replace(".", "_")
    data.mkdir()
    target = data / _trans_name(name)
    if content is None:
        shutil.copyfile(BAD / name, target)
    else:
        target.write_bytes(content)
    return target


@pytest.fixture(scope="module")
def corpus_runs(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("badrun")
    staged = {name: _stage(tmp, name) for name, *_ in CASES}
    return {name: (p, run_main("run", p.parent, "--checkpoint-dir", p.parent / "ckpt", "--quiet"))
            for name, p in staged.items()}


@pytest.mark.parametrize("name", ("nul_byte.csv", "timestamp_month_13.csv"))
def test_run_refuses_bad_file_in_a_real_process(tmp_path, name):
    line, column, value = next((c[1], c[2], c[3]) for c in CASES if c[0] == name)
    path = _stage(tmp_path, name)
    with ThreadPoolExecutor(max_workers=1) as pool:
        result = pool.submit(_run, path.parent).result()
    assert_refused(result, path, line, column, value)


def assert_refused(result: subprocess.CompletedProcess, path: Path, line: int | None,
                   column: str = "", value: str = "") -> str:
    message = assert_one_line_error(result, path, line, column, value)
    ckpt = path.parent / "ckpt"
    if ckpt.exists():
        done = CheckpointStore(ckpt).names()
        assert not set(done) & set(STEPS), done
    return message


def test_corpus_covers_the_issue_cases():
    names = {c[0] for c in CASES}
    assert len(CASES) >= 30
    for needed in ("header_only.csv", "amount_1e309.csv", "amount_nan.csv", "amount_thousands_quoted.csv",
                   "timestamp_year_2100.csv", "invalid_utf8_latin1.csv", "gzip_truncated.csv.gz",
                   "mixed_encodings.csv", "quoted_embedded_comma.csv"):
        assert needed in names


@pytest.mark.parametrize("name,line,column,value", CASES, ids=[c[0] for c in CASES])
def test_run_refuses_bad_file(corpus_runs, name, line, column, value):
    path, result = corpus_runs[name]
    assert_refused(result, path, line, column, value)


def test_run_refuses_a_line_of_several_megabytes(tmp_path):
    huge = "9" * (4 << 20) + "x"
    content = f"{HEADER}\n{GOOD}\n{GOOD.replace('3697.34', huge, 1)}\n{GOOD}\n".encode()
    path = _stage(tmp_path, "huge.csv", content)
    message = assert_refused(_run(path.parent), path, 3, "Amount Received")
    assert len(message) < 2000


def test_run_refuses_gzip_cut_short_after_good_rows(tmp_path):
    rows = "\n".join([HEADER] + [GOOD.replace("00:20", f"{m // 60:02d}:{m % 60:02d}") for m in range(600)])
    blob = gzip.compress(rows.encode())
    path = _stage(tmp_path, "cut.csv.gz", blob[: len(blob) * 2 // 3])
    assert_refused(_run(path.parent), path, None)
