"""The malformed-input corpus in tests/data/bad/, as its CASES.md table lists it."""
from __future__ import annotations

from pathlib import Path

from amlgraph.schema import TRANS_HEADER

BAD = Path(__file__).parent / "data" / "bad"
HEADER = ",".join(TRANS_HEADER)
GOOD = "2022/09/01 00:20,010,8000EBD30,010,8000EBD30,3697.34,US Dollar,3697.34,US Dollar,Reinvestment,0"


def _cases() -> list[tuple[str, int, str, str]]:
    """(file, line, column, value) of every corpus file that CASES.md lists and that exists."""
    rows = []
    for text in (BAD / "CASES.md").read_text().splitlines():
        cells = [c.strip() for c in text.strip().strip("|").split("|")]
        if len(cells) == 5 and cells[0] not in ("file", "---") and (BAD / cells[0]).exists():
            rows.append((cells[0], int(cells[1]), cells[2], cells[3]))
    return rows


CASES = _cases()


def assert_one_line_error(result, path, line: int | None, column: str = "", value: str = "") -> str:
    """Exit code 2 and exactly one stderr line naming file, line, column and value; no traceback."""
    assert result.returncode == 2, result.stderr
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    message = lines[0]
    assert str(path) + (f":{line}:" if line is not None else "") in message, message
    if column:
        assert f"column {column!r}" in message, message
    if value:
        assert value in message, message
    return message
