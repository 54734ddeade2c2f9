"""Blocks of physical lines: even blocks for plain files, exact contents and line numbers."""
from __future__ import annotations

import gzip

import pytest

from amlgraph.ingest_lines import LineSource

COLUMNS = ("a", "b")


def _write(path, lines: list[str], terminated: bool, gz: bool = False):
    text = ("a,b\n" + "\n".join(lines) + ("\n" if terminated else "")).encode()
    with (gzip.open if gz else open)(path, "wb") as fh:
        fh.write(text)
    return text


def _blocks(path, block_bytes):
    source = LineSource(path, block_bytes=block_bytes, columns=COLUMNS)
    return [(buf, first, n) for buf, first, n in source.blocks()]


@pytest.mark.parametrize("terminated", [True, False])
@pytest.mark.parametrize("n_lines, block_bytes", [(10_000, 9_000), (10_000, 40_000), (3_000, 1 << 12), (5, 1 << 20)])
def test_plain_file_blocks_are_even_and_exact(tmp_path, terminated, n_lines, block_bytes):
    lines = [f"{i},{'x' * (i % 13)}" for i in range(n_lines)]
    text = _write(tmp_path / "f.csv", lines, terminated)
    blocks = _blocks(tmp_path / "f.csv", block_bytes)
    # every byte after the header, once, in order; line numbers run on from 2
    assert b"".join(b for b, _, _ in blocks) == text[len(b"a,b\n"):]
    assert [first for _, first, _ in blocks] == [2 + sum(n for _, _, n in blocks[:i]) for i in range(len(blocks))]
    assert sum(n for _, _, n in blocks) == n_lines
    # as many blocks as the file needs at block_bytes, of about equal size: no short remainder
    body = len(text)
    assert len(blocks) == max(1, -(-body // max(block_bytes, 1 << 12)))
    sizes = [len(b) for b, _, _ in blocks]
    # each cut falls within a line (< 20 bytes) of its even share; the last block takes the drift
    assert max(sizes[:-1], default=sizes[0]) - min(sizes) <= 20 + len(b"a,b\n"), sizes
    assert sizes[-1] - min(sizes) <= 20 * len(blocks) + len(b"a,b\n"), sizes


def test_compressed_file_blocks_keep_the_block_size(tmp_path):
    lines = [f"{i},{'x' * (i % 13)}" for i in range(10_000)]
    text = _write(tmp_path / "f.csv.gz", lines, True, gz=True)
    blocks = _blocks(tmp_path / "f.csv.gz", 40_000)
    assert b"".join(b for b, _, _ in blocks) == text[len(b"a,b\n"):]
    assert all(40_000 - 20 < len(b) <= 40_000 for b, _, _ in blocks[:-1])


def test_a_file_that_grows_while_read_keeps_its_blocks_bounded(tmp_path):
    lines = [f"{i},{'x' * (i % 13)}" for i in range(2_000)]
    path = tmp_path / "f.csv"
    text = _write(path, lines, True)
    source = LineSource(path, block_bytes=8_000, columns=COLUMNS)
    more = "".join(f"{i},y\n" for i in range(2_000, 12_000)).encode()
    with open(path, "ab") as fh:  # appended after the size was taken
        fh.write(more)
    blocks = [buf for buf, _, _ in source.blocks()]
    assert b"".join(blocks) == (text + more)[len(b"a,b\n"):]
    assert max(len(b) for b in blocks) < 2 * 8_000
