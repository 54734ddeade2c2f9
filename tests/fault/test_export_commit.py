"""`amlgraph export` commits a whole set or nothing: SIGKILL at many moments, a full disk, a
read-only file system. After each fault the target holds exactly the previous export or exactly
the new one (every file compared with fresh exports), never a mix, never a half set, and the
next export removes whatever a killed one left beside it."""
from __future__ import annotations

import contextlib
import shutil
import subprocess
from pathlib import Path

import pytest
from export_harness import (
    FILES,
    after,
    beside,
    export_attempt,
    export_ok,
    on_commit,
    reference_contents,
    save_graph,
    state,
    while_writing,
)
from harness import env
from warm_cli import WarmLauncher

pytestmark = pytest.mark.slow

FORMATS = tuple(FILES)


@pytest.fixture(scope="module")
def graphs(tmp_path_factory) -> dict[str, Path]:
    """Checkpoint directories of three graphs: A and B of one size, C ten times larger."""
    from amlgraph.graph import random_graph

    base = tmp_path_factory.mktemp("export-graphs")
    return {
        "A": save_graph(random_graph(4000, 60_000, seed=1), base / "A"),
        "B": save_graph(random_graph(4000, 60_000, seed=2), base / "B"),
        "small": save_graph(random_graph(30, 200, seed=3), base / "small"),
        "C": save_graph(random_graph(3000, 60_000, seed=4), base / "C"),
    }


@pytest.fixture(scope="module")
def warm():
    """Export processes forked from a parent that imported torch once (``warm_cli``): the
    commit protocol under test runs as in ``python -m amlgraph``, without seconds of imports
    before every kill."""
    launcher = WarmLauncher(env())
    yield launcher
    launcher.close()


@pytest.fixture(scope="module")
def refs(graphs, tmp_path_factory):
    """fmt -> {"A": contents, "B": contents, ...} of fresh exports, computed once per format."""
    base = tmp_path_factory.mktemp("export-refs")
    cache: dict[str, dict[str, dict[str, str]]] = {}

    def get(fmt: str, *names: str) -> dict[str, dict[str, str]]:
        for n in names:
            if (fmt, n) not in cache:
                cache[(fmt, n)] = reference_contents(graphs[n], fmt, base / fmt / n)
        return {n: cache[(fmt, n)] for n in names}

    return get


def _one_line_error(result) -> str:
    assert result.returncode not in (0, None), result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("amlgraph: error: "), lines[0]
    return lines[0]


#: Kill moments as fractions of an uninterrupted export's duration (most of it is the start of
#: the process: imports and loading the graph; the writing comes last).
TIME_FRACTIONS = (0.35, 0.75, 0.95)  # the soak (bench/fault_soak.py --export) draws many more


def _mid_write(names: tuple[str, ...]) -> tuple[str, ...]:
    """The files to kill an export in the middle of: the first, one in the middle and the last.
    Every file is staged the same way, so these three catch a set with nothing staged, a half set
    and a whole uncommitted set; the soak (bench/fault_soak.py --export) draws from every file."""
    return names if len(names) <= 3 else (names[0], names[len(names) // 2], names[-1])


def _check_kills(seen: list[tuple], names: tuple[str, ...], moments: int) -> None:
    """The kills landed where aimed: the first (largest) file was caught while being written, the
    new export right after its switch, and the earliest timed kill before the export ended; and
    some kill left something beside the target, which the next export removed. (A small
    file such as graph.json may be written and switched in between two polls; an export's
    duration varies much on a loaded machine, so of the timed kills only the earliest must land.)"""
    by_trigger = {s[0]: s for s in seen}
    assert by_trigger[f"while writing {names[0]}"][2], f"no kill confirmed mid-write: {seen}"
    assert by_trigger[f"once {names[-1]} is switched in"][1], f"no kill after the switch: {seen}"
    timed = [s for s in seen if s[0].startswith("after ")]
    assert len(timed) == moments and timed[0][1], f"timed kills came too late: {seen}"
    assert any(s[4] for s in seen), f"no kill left anything to clean: {seen}"


# --- (a) replacing an export, killed at many moments ----------------------------------------------
@pytest.mark.parametrize("fmt", FORMATS)
def test_replacing_an_export_killed_anywhere_leaves_one_whole_export(graphs, refs, warm, tmp_path, fmt):
    ref = refs(fmt, "A", "B")
    out = tmp_path / "exports" / "E"
    first = export_ok(graphs["A"], fmt, out, launcher=warm).elapsed
    assert state(out, ref) == "A"
    again = export_ok(graphs["B"], fmt, out, launcher=warm).elapsed  # a whole uninterrupted replacement
    assert state(out, ref) == "B"
    export_ok(graphs["A"], fmt, out, launcher=warm)
    duration = min(first, again)  # the kill moments must land before a warm export ends
    names = FILES[fmt]
    moments = [after(f * duration) for f in TIME_FRACTIONS]
    triggers = [while_writing(n) for n in _mid_write(names)] + [on_commit(names[-1])] + moments
    seen = []
    for trigger in triggers:
        a = export_attempt(graphs["B"], fmt, out, trigger, launcher=warm)
        now = state(out, ref)
        seen.append((str(trigger), a.killed, a.confirmed, now, beside(out)))
        assert now in ("A", "B"), f"{fmt}: kill {trigger}: the target holds {now}; so far {seen}"
        # the next export to the same target finishes and removes what the killed one left
        export_ok(graphs["A"], fmt, out, launcher=warm)
        assert state(out, ref) == "A", seen
        assert beside(out) == [], f"{fmt}: after a kill {trigger} and a new export: {beside(out)}"
    _check_kills(seen, names, len(moments))


# --- (b) a first export, killed -------------------------------------------------------------------
@pytest.mark.parametrize("fmt", FORMATS)
def test_a_first_export_killed_leaves_nothing_or_a_whole_export(graphs, refs, warm, tmp_path, fmt):
    ref = refs(fmt, "A")
    out = tmp_path / "exports" / "E"
    duration = export_ok(graphs["A"], fmt, out, launcher=warm).elapsed
    shutil.rmtree(out)
    duration = min(duration, export_ok(graphs["A"], fmt, out, launcher=warm).elapsed)
    names = FILES[fmt]
    moments = [after(f * duration) for f in TIME_FRACTIONS[::2]]
    triggers = [while_writing(n) for n in _mid_write(names)] + [on_commit(names[-1])] + moments
    seen = []
    for trigger in triggers:
        shutil.rmtree(out)
        a = export_attempt(graphs["A"], fmt, out, trigger, launcher=warm)
        now = state(out, ref)
        seen.append((str(trigger), a.killed, a.confirmed, now, beside(out)))
        assert now in ("absent", "A"), f"{fmt}: kill {trigger} of a first export left {now}; {seen}"
        export_ok(graphs["A"], fmt, out, launcher=warm)
        assert state(out, ref) == "A" and beside(out) == [], (seen, beside(out))
    _check_kills(seen, names, len(moments))


# --- (c) a full disk, (d) a read-only file system -------------------------------------------------
@contextlib.contextmanager
def tmpfs(path: Path, size: str):
    """A small real file system at ``path``; skipped where mounting is not permitted."""
    path.mkdir(parents=True, exist_ok=True)
    try:
        done = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
                              capture_output=True, text=True)
    except FileNotFoundError:
        pytest.skip("no mount command")
    if done.returncode != 0:
        pytest.skip(f"mounting a tmpfs is not permitted here: {done.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def _remount(path: Path, options: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{options}", str(path)], check=True)


@pytest.mark.parametrize("fmt", FORMATS)
def test_disk_full_during_an_export(graphs, refs, warm, tmp_path, fmt):
    ref = refs(fmt, "small", "C")
    with tmpfs(tmp_path / "fs", "1m") as fs:
        out = fs / "exports" / "E"
        export_ok(graphs["small"], fmt, out, launcher=warm)
        result = export_attempt(graphs["C"], fmt, out, launcher=warm)
        message = _one_line_error(result)
        assert result.returncode == 3, message
        assert "no space left on device" in message.lower(), message
        assert str(out) in message, message
        assert state(out, ref) == "small" and beside(out) == [], (state(out, ref), beside(out))
        # a first export into a full disk leaves nothing either
        first = fs / "exports" / "F"
        result = export_attempt(graphs["C"], fmt, first, launcher=warm)
        assert result.returncode == 3, _one_line_error(result)
        assert not first.exists() and sorted(p.name for p in (fs / "exports").iterdir()) == ["E"]
        _remount(fs, "size=64m")
        export_ok(graphs["C"], fmt, out, launcher=warm)
        assert state(out, ref) == "C" and beside(out) == []


@pytest.mark.parametrize("fmt", ("parquet", "pyg"))
def test_file_size_limit_during_an_export(graphs, refs, warm, tmp_path, fmt):
    """EFBIG (a file-size limit, no mount needed): the same clean failure as a full disk."""
    ref = refs(fmt, "small", "C")
    out = tmp_path / "exports" / "E"
    export_ok(graphs["small"], fmt, out, launcher=warm)
    result = export_attempt(graphs["C"], fmt, out, fsize=256 << 10, launcher=warm)
    message = _one_line_error(result)
    assert result.returncode == 3, message
    assert "file too large" in message.lower(), message
    assert state(out, ref) == "small" and beside(out) == [], (state(out, ref), beside(out))


@pytest.mark.parametrize("fmt", ("parquet", "multignn"))
def test_read_only_file_system_during_an_export(graphs, refs, warm, tmp_path, fmt):
    ref = refs(fmt, "A", "B")
    with tmpfs(tmp_path / "fs", "64m") as fs:
        out = fs / "exports" / "E"
        export_ok(graphs["A"], fmt, out, launcher=warm)
        _remount(fs, "ro")
        result = export_attempt(graphs["B"], fmt, out, launcher=warm)
        message = _one_line_error(result)
        assert result.returncode == 3, message
        assert "read-only file system" in message.lower(), message
        assert state(out, ref) == "A" and beside(out) == []
        first = export_attempt(graphs["B"], fmt, fs / "exports" / "F", launcher=warm)
        assert first.returncode == 3, _one_line_error(first)
        _remount(fs, "rw")
        assert not (fs / "exports" / "F").exists()
        export_ok(graphs["B"], fmt, out, launcher=warm)
        assert state(out, ref) == "B" and beside(out) == []
