"""Blocks of physical lines: even blocks for plain files, exact contents and line numbers."""
from __future__ import annotations

import gzip

import pytest

from amlgraph.ingest._lines import LineSource

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


@pytest.mark.parametrize("terminated", [True, False])
@pytest.mark.parametrize("gz", [False, True])
def test_lines_longer_than_a_block_stay_whole(tmp_path, terminated, gz):
    # Lines of up to 200 KB against 4 KB blocks: a block's end is searched past the probe window
    # (backwards finds no line end, forwards runs over several windows).
    lines = [f"{i},{'x' * (i * 37_000 % 200_000)}" for i in range(12)] + [f"{i},y" for i in range(12, 400)]
    path = tmp_path / ("f.csv.gz" if gz else "f.csv")
    text = _write(path, lines, terminated, gz=gz)
    blocks = _blocks(path, 1 << 12)
    assert b"".join(b for b, _, _ in blocks) == text[len(b"a,b\n"):]
    assert all(b.endswith(b"\n") for b, _, _ in blocks[:-1])
    assert [first for _, first, _ in blocks] == [2 + sum(n for _, _, n in blocks[:i]) for i in range(len(blocks))]
    assert sum(n for _, _, n in blocks) == len(lines)


@pytest.mark.parametrize("content, header", [(b"", None), (b"a,b", "a,b"), (b"a,b\n", "a,b"),
                                             (b"\xef\xbb\xbfa,b\r\n1,2", "a,b")])
def test_header_only_empty_and_bom_files(tmp_path, content, header):
    path = tmp_path / "f.csv"
    path.write_bytes(content)
    source = LineSource(path, block_bytes=1 << 12, columns=COLUMNS)
    assert source.header == header
    rest = b"".join(b for b, _, _ in source.blocks())
    assert rest == (b"1,2" if content.endswith(b"1,2") else b"")


def test_without_header_a_bom_is_dropped(tmp_path):
    path = tmp_path / "f.txt"
    path.write_bytes(b"\xef\xbb\xbf1,2\n3,4\n")
    source = LineSource(path, block_bytes=1 << 12, columns=COLUMNS, has_header=False)
    assert [(b, first, n) for b, first, n in source.blocks()] == [(b"1,2\n3,4\n", 1, 2)]


def test_a_file_that_grows_while_its_last_block_is_read_is_read_on(tmp_path, monkeypatch):
    from amlgraph.ingest import _lines as ingest_lines

    lines = [f"{i},{'x' * (i % 13)}" for i in range(500)]
    path = tmp_path / "f.csv"
    text = _write(path, lines, False)  # the last line unterminated until more is appended
    more = "".join(f"\n{i},y" for i in range(500, 2_500)).encode() + b"\n"
    source = LineSource(path, block_bytes=1 << 12, columns=COLUMNS)
    read, grown = ingest_lines._PlainBlocks._read, []

    def read_then_grow(self, n, pos):
        data = read(self, n, pos)
        if not grown and pos + len(data) == len(text):  # the last block, by the size taken so far
            grown.append(True)
            with open(path, "ab") as fh:
                fh.write(more)
        return data

    monkeypatch.setattr(ingest_lines._PlainBlocks, "_read", read_then_grow)
    blocks = [(buf, first, n) for buf, first, n in source.blocks()]
    assert grown
    assert b"".join(b for b, _, _ in blocks) == (text + more)[len(b"a,b\n"):]
    assert all(b.endswith(b"\n") for b, _, _ in blocks)
    assert max(len(b) for b, _, _ in blocks) < 2 * 4_096
    assert sum(n for _, _, n in blocks) == 2_500
