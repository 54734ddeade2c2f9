"""Physical lines of a text input file: decompression, decoding checks, line numbers.

The readers work on physical lines, not on a CSV parser's records, so that every error and every
quarantined row carries the exact 1-based line number of the file (header = line 1) and so that a
malformed row can never shift or swallow its neighbours. Plain, gzip and zstd files are streamed in
blocks of bytes; memory is bounded by the block size (and by the longest line).
"""
from __future__ import annotations

import gzip
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow as pa

from amlgraph.errors import InputError

GZIP_MAGIC = b"\x1f\x8b"
ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
BOM = b"\xef\xbb\xbf"
BLANK_LINES = ("", "\n", "\r\n")
_SAMPLE_BYTES = 4
_COMPRESSED_READ = 1 << 16


class _ZstdStream:
    """A zstd file as a byte stream that notices a truncated frame (zstandard's reader does not)."""

    def __init__(self, fh):
        import zstandard

        self._fh, self._zstd = fh, zstandard
        self._dobj = zstandard.ZstdDecompressor().decompressobj()
        self._in_frame = False

    def read(self, size: int) -> bytes:
        while True:
            chunk = self._fh.read(size)
            if not chunk:
                if self._in_frame and not self._dobj.eof:
                    raise EOFError("zstd stream ends before the end of its frame")
                return b""
            out = self._decompress(chunk)
            if out:
                return out

    def _decompress(self, chunk: bytes) -> bytes:
        parts = []
        while chunk:
            if self._dobj.eof:  # next frame of a multi-frame file
                self._dobj = self._zstd.ZstdDecompressor().decompressobj()
            self._in_frame = True
            parts.append(self._dobj.decompress(chunk))
            chunk = self._dobj.unused_data if self._dobj.eof else b""
        return b"".join(parts)

    def close(self) -> None:
        self._fh.close()


def open_binary(path: Path):
    """Open a plain, gzip or zstd file as a stream of decompressed bytes (sniffed by magic bytes).

    Raises:
        InputError: the file is missing, a directory or unreadable.
    """
    path = Path(path)
    if not path.exists():
        raise InputError("no such file", path=str(path), hint="check the path")
    if path.is_dir():
        raise InputError("is a directory, expected a file", path=str(path))
    try:
        fh = open(path, "rb")
        magic = fh.read(_SAMPLE_BYTES)
        fh.seek(0)
    except OSError as exc:
        raise InputError(f"cannot read the file: {exc.strerror or exc}", path=str(path)) from exc
    if magic.startswith(GZIP_MAGIC):
        return gzip.GzipFile(fileobj=fh, mode="rb")
    if magic.startswith(ZSTD_MAGIC):
        return _ZstdStream(fh)
    return fh


def _check_text(buf: bytes, path: Path, first_line: int, columns: tuple[str, ...]) -> None:
    """Fail on NUL bytes or invalid UTF-8, naming the line and column of the first bad byte."""
    nul = buf.find(b"\x00")
    if nul >= 0:
        line, column = _locate(buf, nul, first_line, columns)
        raise InputError("binary data (a NUL byte), expected CSV text", path=str(path), line=line,
                         column=column, hint="is this the right file?")
    if buf.isascii():  # the common case, far faster than decoding
        return
    try:
        buf.decode("utf-8")
    except UnicodeDecodeError as exc:
        line, column = _locate(buf, exc.start, first_line, columns)
        raise InputError(f"not valid UTF-8 text (byte 0x{buf[exc.start]:02x})", path=str(path),
                         line=line, column=column,
                         value=buf[max(0, exc.start - 10):exc.start + 10].decode("utf-8", "replace"),
                         hint="save the file as UTF-8 (is it a binary file or another encoding?)") from None


def _locate(buf: bytes, pos: int, first_line: int, columns: tuple[str, ...]) -> tuple[int, str | None]:
    start = buf.rfind(b"\n", 0, pos) + 1
    index = buf.count(b",", start, pos)
    return first_line + buf.count(b"\n", 0, pos), (columns[index] if index < len(columns) else None)


_PROBE = 1 << 16


class _PlainBlocks:
    """Blocks of whole lines of a plain file, each read by position with one read of exactly its
    bytes.

    A stream read would return a block of about the right size that must then be cut after its
    last line end and joined to the carried-over start of a line: two more copies of every block
    into fresh pages, which cost more (mostly the kernel's zeroing of those pages) than the read
    itself. Here the block's end, after the last ``\\n`` before its target size, is found first in
    a small read near that size, then the block is read. The file's size is known, so its n
    blocks are made even (about size / n bytes each) rather than n - 1 full blocks and a
    remainder: the chunks made of them take equal turns on the threads. A short tail joins the
    last block; a file that grows while it is read is read on in blocks of the same size.
    """

    def __init__(self, fd: int, block_bytes: int):
        self._fd, self._pos = fd, 0
        self._size = os.fstat(fd).st_size
        blocks = max(1, -(-self._size // block_bytes))
        self.block_bytes = max(-(-self._size // blocks), 1)

    def _read(self, n: int, pos: int) -> bytes:
        """Up to ``n`` bytes at ``pos`` (fewer only at the end of the file)."""
        data = os.pread(self._fd, n, pos)
        if 0 < len(data) < n:
            parts = [data]
            while n > (got := sum(map(len, parts))) and (more := os.pread(self._fd, n - got, pos + got)):
                parts.append(more)
            data = b"".join(parts)
        return data

    def _line_end_after(self, pos: int) -> int | None:
        """Offset just past the first ``\\n`` at or after ``pos``; None when there is none."""
        while window := os.pread(self._fd, _PROBE, pos):
            cut = window.find(b"\n")
            if cut >= 0:
                return pos + cut + 1
            pos += len(window)
        return None

    def _line_end_before(self, start: int, end: int) -> int | None:
        """Offset just past the last ``\\n`` in [start, end); None when there is none."""
        while end > start:
            lo = max(start, end - _PROBE)
            cut = os.pread(self._fd, end - lo, lo).rfind(b"\n")
            if cut >= 0:
                return lo + cut + 1
            end = lo
        return None

    def first_line(self) -> bytes | None:
        """The first line (terminator kept), without consuming it; None for an empty file."""
        end = self._line_end_after(0)
        line = self._read(end, 0) if end is not None else self._read(self._size, 0)
        return line or None

    def skip(self, n: int) -> None:
        self._pos += n

    def next(self) -> bytes | None:
        """The next block: whole lines, the file's last line possibly without ``\\n``."""
        start = self._pos
        while True:
            left = self._size - start
            if left - self.block_bytes < self.block_bytes // 4:
                # The last block by the size taken so far: read to the end of the file, unless it
                # has grown since (then on in blocks).
                self._size = max(self._size, os.fstat(self._fd).st_size)
                left = self._size - start
            if left - self.block_bytes >= self.block_bytes // 4:
                end = self._line_end_before(start, start + self.block_bytes) or self._line_end_after(
                    start + self.block_bytes)
                if end is not None:
                    self._pos = end
                    return self._read(end - start, start)
            data = self._read(max(left, 0), start)
            if not os.pread(self._fd, 1, start + len(data)):
                self._pos = start + len(data)
                return data or None
            # It grew while this block was read: take its new size and cut this block again.
            self._size = os.fstat(self._fd).st_size


class LineSource:
    """The header and the physical lines of a text file, in blocks.

    Attributes:
        header: the first line, BOM and line terminator stripped; None for a 0-byte file.
    """

    def __init__(self, path: Path, *, block_bytes: int, columns: tuple[str, ...], has_header: bool = True):
        self.path, self.block_bytes, self.columns = Path(path), max(int(block_bytes), 1 << 12), columns
        self._stream = open_binary(self.path)
        compressed = isinstance(self._stream, (gzip.GzipFile, _ZstdStream))
        self._carry, self._eof = b"", False
        self._first_line = 2 if has_header else 1
        self.header: str | None = None
        # A plain file is read by position (``_PlainBlocks``): each block with one read of exactly
        # its bytes, no copy to join or cut them.
        self._plain = None if compressed else _PlainBlocks(self._stream.fileno(), self.block_bytes)
        if self._plain is not None:
            self.block_bytes = self._plain.block_bytes
            first = self._plain.first_line()
            if first is None:
                return
            if not has_header:
                self._plain.skip(len(BOM) if first.startswith(BOM) else 0)
                return
            self._plain.skip(len(first))
            head = first
        else:
            first = self._next_block(first_line=1)
            if first is None:
                return
            if not has_header:
                self._carry = first.removeprefix(BOM) + self._carry
                return
            cut = first.find(b"\n")
            head, rest = (first, b"") if cut < 0 else (first[:cut + 1], first[cut + 1:])
            self._carry = rest + self._carry
        _check_text(head, self.path, 1, columns)
        self.header = head.decode("utf-8").removeprefix("\ufeff").rstrip("\r\n")

    def _next_block(self, first_line: int) -> bytes | None:
        """Next run of complete lines, about block_bytes long (the file's last line may lack `\\n`)."""
        if self._plain is not None:
            return self._plain.next()
        parts, size, has_newline = [self._carry], len(self._carry), b"\n" in self._carry
        while not self._eof and (size < self.block_bytes or not has_newline):
            try:
                # Compressed streams are read in small steps so that a decompression error is located.
                step = self.block_bytes - size if size < self.block_bytes else _COMPRESSED_READ
                data = self._stream.read(min(_COMPRESSED_READ, step))
            except MemoryError:
                raise
            except Exception as exc:  # EOFError, gzip.BadGzipFile, zlib.error, zstd.ZstdError, OSError
                line = first_line + sum(part.count(b"\n") for part in parts)
                raise InputError(f"compressed data is truncated or corrupt ({exc})", path=str(self.path),
                                 line=line, hint="the lines before this one were readable; re-download "
                                                 "or recompress the file") from exc
            if not data:
                self._eof = True
                break
            parts.append(data)
            size += len(data)
            has_newline = has_newline or b"\n" in data
        if self._eof:
            self._carry = b""
            return b"".join(parts) or None
        # Cut after the last `\n` without copying the block twice (join, then slice).
        last = len(parts) - 1
        while (cut := parts[last].rfind(b"\n")) < 0:
            last -= 1
        self._carry = b"".join([parts[last][cut + 1:], *parts[last + 1:]])
        return b"".join([*parts[:last], memoryview(parts[last])[:cut + 1]]) or None

    def __iter__(self) -> Iterator[tuple[pl.Series, int]]:
        """Yield (lines, first line number) with each line's terminator kept (`\\n`, `\\r\\n` or none)."""
        for buf, line_no, _ in self.blocks():
            yield split_lines(buf), line_no

    def blocks(self) -> Iterator[tuple[bytes, int, int]]:
        """Yield (block, first line number, number of physical lines), each block whole lines of text.

        The block is checked as text (no NUL byte, valid UTF-8) before it is yielded; the last line
        of the file may lack its `\\n`.
        """
        line_no = self._first_line
        try:
            while (buf := self._next_block(line_no)) is not None:
                _check_text(buf, self.path, line_no, self.columns)
                n_lines = count_lines(buf)
                yield buf, line_no, n_lines
                line_no += n_lines
        finally:
            self.close()

    def close(self) -> None:
        self._stream.close()


def count_lines(buf: bytes) -> int:
    """The number of lines of a block: its `\\n` bytes, plus one for a last line without one."""
    return count_byte(buf, 0x0A) + (0 if buf.endswith(b"\n") else 1)


_COUNT_STEP = 1 << 20


def count_byte(buf: bytes, value: int) -> int:
    """How many bytes of ``buf`` equal ``value``, a megabyte at a time.

    A comparison of the whole block would allocate a mask as large as the block (tens of MB of
    fresh pages for the kernel to zero, twice per block); one reused 1 MB mask stays in cache and
    takes half the time.
    """
    data = np.frombuffer(buf, dtype=np.uint8)
    mask = np.empty(min(len(data), _COUNT_STEP), dtype=bool)
    total = 0
    for start in range(0, len(data), _COUNT_STEP):
        part = data[start:start + _COUNT_STEP]
        hit = mask[:len(part)]
        np.equal(part, value, out=hit)
        total += int(np.count_nonzero(hit))
    return total


def split_lines(buf: bytes) -> pl.Series:
    """Cut a block into its lines without a Python loop: offsets from the positions of `\\n`."""
    ends = np.flatnonzero(np.frombuffer(buf, dtype=np.uint8) == 0x0A) + 1
    if len(ends) == 0 or ends[-1] != len(buf):
        ends = np.append(ends, len(buf))
    offsets = np.concatenate(([0], ends)).astype(np.int64)
    arr = pa.LargeStringArray.from_buffers(len(ends), pa.py_buffer(offsets), pa.py_buffer(buf))
    return pl.Series("raw", arr)
