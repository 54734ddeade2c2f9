""".npy files of the checkpoint store: which dtypes may be stored, and the one reader of arrays.

Verification and loading run the same checks (:func:`check_npy` is :func:`load_npy` without the
data): the header is parsed without pickle, its dtype must be plain (no object, structured,
subarray or void dtype), C order, the dtype and shape the manifest records, and the file exactly
as long as the header implies. The file is opened as every store file is (a regular file only,
never a FIFO or device, never through a final symlink).

A file named ``*.npy.zst`` is the same ``.npy`` bytes in one zstd frame (cold arrays, written with
``save(compress=True)``): it is decoded while it is read, so it loads as a copy in memory, never
as a memory map, and checking it means decoding it (the length is that of the decoded bytes).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from amlgraph.store._files import open_regular

#: A .npy header of this store is ~128 bytes; NumPy's own default bound.
NPY_MAX_HEADER = 10_000
_SAFE_KINDS = "biufcSUmM"  # bool, integers, floats, complex, fixed-width bytes/str, datetimes


def unsafe_dtype(dtype: Any) -> str | None:
    """Why an array of ``dtype`` cannot be stored (None when it can): object dtypes would need
    pickle; structured, subarray and void dtypes are not what the store writes."""
    if dtype.hasobject:
        return "has an object dtype (Python objects: it would need pickle)"
    if dtype.fields is not None:
        return f"has a structured dtype ({dtype})"
    if dtype.subdtype is not None:
        return f"has a subarray dtype ({dtype})"
    if dtype.kind not in _SAFE_KINDS:
        return f"has dtype {dtype}, not a plain numeric or fixed-width one"
    return None


def npy_header(f: BinaryIO) -> tuple[Any, tuple[int, ...], int]:
    """Read and check the header of an open .npy file; return (dtype, shape, data offset).

    Raises:
        ValueError: not a .npy file, a bad or oversized header, Fortran order, or an unsafe dtype
            (see :func:`unsafe_dtype`). Nothing is ever unpickled.
    """
    fmt = np.lib.format
    try:
        version = fmt.read_magic(f)
        if version == (1, 0):
            shape, fortran, dtype = fmt.read_array_header_1_0(f, max_header_size=NPY_MAX_HEADER)
        elif version == (2, 0):
            shape, fortran, dtype = fmt.read_array_header_2_0(f, max_header_size=NPY_MAX_HEADER)
        else:
            raise ValueError(f"unsupported .npy format version {version}")
    except (ValueError, TypeError, SyntaxError, RecursionError, OverflowError, MemoryError, EOFError) as exc:
        raise ValueError(f"bad .npy header ({type(exc).__name__}: {exc})") from None
    if fortran:
        raise ValueError("Fortran-ordered .npy (this store writes C order only)")
    bad = unsafe_dtype(dtype)
    if bad:
        raise ValueError(f"the file {bad}")
    return dtype, tuple(int(n) for n in shape), f.tell()


#: Suffix of a zstd-compressed .npy file.
ZST_SUFFIX = ".npy.zst"
#: zstd level of compressed arrays: level 1 decodes at ~1 GB/s and keeps most of level 3's gain.
ZST_LEVEL = 1
#: Compression threads (-1: one per core); the frame is the same format, decoded the same way.
ZST_THREADS = -1


def is_compressed(path: Path | str) -> bool:
    return str(path).endswith(ZST_SUFFIX)


def write_npy_zst(w: BinaryIO, header: bytes, blocks: Any, nbytes: int) -> None:
    """Write ``header`` then every block (uint8 views) to ``w`` as one zstd frame recording its
    decoded size."""
    import zstandard

    cctx = zstandard.ZstdCompressor(level=ZST_LEVEL, threads=ZST_THREADS,
                                    write_checksum=True)  # decoding checks the frame
    with cctx.stream_writer(w, size=len(header) + nbytes, closefd=False, write_return_read=True) as z:
        z.write(header)
        for block in blocks:
            z.write(block)


class _Decoded:
    """A read-only file-like view of a .npy.zst file's decoded bytes (what ``npy_header`` reads)."""

    def __init__(self, f: BinaryIO):
        import zstandard

        self._f = f
        # 4 MB reads: the default 128 kB ones cost ~30 % of the decoding time.
        self._r = zstandard.ZstdDecompressor().stream_reader(f, read_size=1 << 22, closefd=False,
                                                             read_across_frames=False)
        self._pos = 0

    def read(self, n: int = -1) -> bytes:
        out = bytearray()
        while n < 0 or len(out) < n:
            chunk = self._r.read(1 << 20 if n < 0 else n - len(out))
            if not chunk:
                break
            out += chunk
        self._pos += len(out)
        return bytes(out)

    def readinto(self, buf: memoryview) -> int:
        n = self._r.readinto(buf)
        self._pos += n
        return n

    def tell(self) -> int:
        return self._pos

    def at_end(self) -> bool:
        return not self._r.read(1)


def _decoded_size(f: BinaryIO) -> int:
    import zstandard

    f.seek(0)
    try:
        size = zstandard.frame_content_size(f.read(18))
    except zstandard.ZstdError as exc:
        raise ValueError(f"not a zstd frame ({exc})") from None
    f.seek(0)
    if size < 0:
        raise ValueError("zstd frame without its decoded size")
    return size


def _check_npy(f: BinaryIO, info: dict, size: int | None = None) -> tuple[Any, tuple[int, ...], int, int]:
    dtype, shape, offset = npy_header(f)
    if dtype.str != info["dtype"] or list(shape) != list(info["shape"]):
        raise ValueError(f"holds {dtype.str}{list(shape)}, the manifest says {info['dtype']}{info['shape']}")
    count = 1
    for n in shape:
        count *= n
    if size is None:
        size = os.fstat(f.fileno()).st_size
    if offset + count * dtype.itemsize != size:
        raise ValueError(f"has {size} bytes, its header implies {offset + count * dtype.itemsize}")
    return dtype, shape, offset, count


def check_npy(path: Path, info: dict) -> None:
    """Check that ``path`` is a .npy file that loads as ``info`` says (``{"dtype", "shape"}``),
    exactly as :func:`load_npy` would: the checks of loading, without reading the data.

    Raises:
        OSError: not a readable regular file. ValueError: what is wrong.
    """
    with open_regular(path) as f:
        if not is_compressed(path):
            _check_npy(f, info)
            return
        _load_zst(f, info, check_only=True)


def _load_zst(f: BinaryIO, info: dict, *, check_only: bool = False) -> Any:
    import zstandard

    size = _decoded_size(f)
    d = _Decoded(f)
    try:
        dtype, shape, offset, count = _check_npy(d, info, size)
        nbytes = count * dtype.itemsize
        if check_only:
            arr, buf = None, memoryview(bytearray(min(nbytes, 1 << 22)) or b"")
        else:
            arr = np.empty(shape, dtype=dtype)
            buf = memoryview(arr.reshape(-1).view(np.uint8)) if nbytes else memoryview(b"")
        got = 0
        while got < nbytes:
            view = buf[got:] if arr is not None else buf[:min(len(buf), nbytes - got)]
            n = d.readinto(view)
            if not n:
                raise ValueError(f"decodes to {offset + got} bytes, its header implies {offset + nbytes}")
            got += n
        if not d.at_end():
            raise ValueError(f"decodes to more bytes than its header implies ({offset + nbytes})")
    except zstandard.ZstdError as exc:
        raise ValueError(f"bad zstd data ({exc})") from None
    return arr


def load_npy(path: Path, info: dict, *, mmap: bool = True) -> Any:
    """Load the .npy file ``path`` after the checks of :func:`check_npy`.

    ``mmap=True``: a read-only memory map (a read-only array when empty, or a read-only copy of a
    compressed file's data); else a writable copy.
    No pickle is ever involved: the dtype is checked from the header before any data is read.

    Raises:
        OSError, ValueError: see :func:`check_npy`; a short read.
    """
    with open_regular(path) as f:
        if is_compressed(path):
            arr = _load_zst(f, info)
            if mmap:
                arr.flags.writeable = False
            return arr
        dtype, shape, offset, count = _check_npy(f, info)
        if mmap and count > 0:
            return np.memmap(f, dtype=dtype, mode="r", offset=offset, shape=shape, order="C")
        arr = np.empty(shape, dtype=dtype)
        buf = memoryview(arr.reshape(-1).view(np.uint8)) if arr.nbytes else memoryview(b"")
        f.seek(offset)
        got = 0
        while got < len(buf):
            n = f.readinto(buf[got:])
            if not n:
                raise ValueError(f"ends after {offset + got} bytes")
            got += n
    if mmap:
        arr.flags.writeable = False
    return arr
