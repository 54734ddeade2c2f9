""".npy files of the checkpoint store: which dtypes may be stored, and the one reader of arrays.

Verification and loading run the same checks (:func:`check_npy` is :func:`load_npy` without the
data): the header is parsed without pickle, its dtype must be plain (no object, structured,
subarray or void dtype), C order, the dtype and shape the manifest records, and the file exactly
as long as the header implies. The file is opened as every store file is (a regular file only,
never a FIFO or device, never through a final symlink).
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


def _check_npy(f: BinaryIO, info: dict) -> tuple[Any, tuple[int, ...], int, int]:
    dtype, shape, offset = npy_header(f)
    if dtype.str != info["dtype"] or list(shape) != list(info["shape"]):
        raise ValueError(f"holds {dtype.str}{list(shape)}, the manifest says {info['dtype']}{info['shape']}")
    count = 1
    for n in shape:
        count *= n
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
        _check_npy(f, info)


def load_npy(path: Path, info: dict, *, mmap: bool = True) -> Any:
    """Load the .npy file ``path`` after the checks of :func:`check_npy`.

    ``mmap=True``: a read-only memory map (a read-only array when empty); else a writable copy.
    No pickle is ever involved: the dtype is checked from the header before any data is read.

    Raises:
        OSError, ValueError: see :func:`check_npy`; a short read.
    """
    with open_regular(path) as f:
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
