"""The text of an amount in IBM Multi-GNN's ``formatted_transactions.csv``, computed column-wise.

``format_kaggle_files.py`` writes each amount with ``%f``, then reads its own output back with
datatable's ``fread`` and writes it again with datatable's ``to_csv``. The amount in the file is
therefore datatable's text of fread's reading of the ``%f`` text, which is neither ``%f`` nor
Python's ``repr``:

- **fread** reads up to 18 significant digits into an integer ``acc`` (further digits are dropped,
  not rounded) and returns ``double(long double(acc) * 10^e)``, with ``10^e`` a ``long double``
  constant. The product is rounded twice (to the ``long double`` and then to the ``double``), so
  a few values in a million read one unit in the last place away from the correctly rounded one
  (``0.005473`` reads as ``0.0054730000000000004`` on x86-64).
- **to_csv** prints a double with datatable's "Dragonfly" algorithm (a simplified Grisu2): the
  value is scaled to an 18-digit integer ``D`` with a decimal exponent ``E``, ``D`` is rounded to
  the multiple of 1000, 100 or 10 nearest to it within the value's precision, and written as
  ``d.ddde+EE`` when ``E < -4`` or ``E >= 15`` (``1.0e+15``, ``1.0e-5``), ``0.000ddd`` when
  ``E < 0``, else ``ddd.ddd`` with at least one decimal (``100.0``). Its digits are the shortest
  ones for amounts with up to 15 significant digits, but not always for longer ones
  (``96363701138.50279`` is written ``96363701138.5028``).

Both are reproduced here with NumPy integer and ``long double`` arithmetic and Polars string
expressions: no Python code runs per value. The ``long double`` is NumPy's, the platform's C
``long double``, as in the datatable build of the same platform (80-bit extended on x86-64 Linux).
"""
from __future__ import annotations

from fractions import Fraction
from functools import lru_cache

import numpy as np
import polars as pl

_MAX_DIGITS = 18  # fread's significant digits
_U64 = np.uint64
_LOW32 = _U64(0xFFFFFFFF)
_TEN17 = 10 ** 17
_TEN18 = 10 ** 18


@lru_cache(maxsize=1)
def _scale_table() -> np.ndarray:
    """``A(eb) = round(2^(eb - 1022) * 10^(17 - E(eb)))`` for every biased exponent ``eb``, with
    ``E(eb) = ((eb * 1233 + 201) >> 12) - 308`` (the Dragonfly scaling constants)."""
    out = np.zeros(2048, dtype=np.uint64)
    for eb in range(2048):
        power10 = 17 - ((eb * 1233 + 201) >> 12) + 308
        power2 = eb - 1023 + 1
        a = Fraction(10) ** power10 * Fraction(2) ** power2
        out[eb] = round(a)
    return out


def fread_values(values: np.ndarray) -> np.ndarray:
    """What datatable's ``fread`` reads from the ``%f`` text of each of ``values``.

    Args:
        values: float64 array of shape (n,), finite.

    Returns:
        float64 array of shape (n,).
    """
    values = np.ascontiguousarray(values, dtype=np.float64)
    x = np.abs(values)
    # The six-decimal integer of the %f text (correctly rounded; a tie cannot occur, as
    # x * 10^6 = k + 1/2 has no binary fraction), from the long double product when that
    # product is far enough from a half to round as the exact one would.
    scaled = x.astype(np.longdouble) * np.longdouble(1_000_000)
    acc = np.rint(scaled)
    slack = 0.5 - np.abs(scaled - acc)
    quick = (x < 1e12) & (slack > scaled * np.longdouble(2.0 ** -60) + np.longdouble(2.0 ** -40))
    out = np.empty(len(x), dtype=np.float64)
    # Below 10^12 the %f text has at most 18 digits: fread's integer is all of them, e = -6.
    out[quick] = (acc[quick] * np.longdouble("1e-6")).astype(np.float64)
    slow = np.flatnonzero(~quick)
    if len(slow):
        out[slow] = _fread_by_text(x[slow])
    return np.where(np.signbit(values), -out, out)


def _fread_by_text(x: np.ndarray) -> np.ndarray:
    """:func:`fread_values` for non-negative ``x`` through the %f text itself (large values, whose
    text has more than fread's 18 digits, and values near a rounding boundary)."""
    text = pl.DataFrame({"v": x}).write_csv(include_header=False, float_precision=6,
                                            float_scientific=False)
    s = pl.Series([text]).str.strip_chars_end("\n").str.split("\n").explode()
    parts = s.str.split_exact(".", 1).struct.rename_fields(["whole", "frac"]).struct.unnest()
    frame = parts.with_columns(whole=pl.col("whole").str.strip_chars_start("0"))
    frame = frame.with_columns(digits=pl.when(pl.col("whole") == "")
                               .then(pl.col("frac").str.strip_chars_start("0"))
                               .otherwise(pl.col("whole") + pl.col("frac")))
    frame = frame.with_columns(n=pl.col("digits").str.len_bytes().cast(pl.Int64))
    frame = frame.select(
        acc=pl.col("digits").str.slice(0, _MAX_DIGITS).replace("", "0").cast(pl.UInt64),
        e=pl.max_horizontal(pl.col("n") - _MAX_DIGITS, 0) - 6,
    )
    acc = frame["acc"].to_numpy().astype(np.longdouble)
    e = frame["e"].to_numpy()
    scale = np.empty(len(e), dtype=np.longdouble)
    for k in np.unique(e):
        scale[e == k] = np.longdouble(f"1e{int(k)}")  # fread's long double constant 10^k
    return (acc * scale).astype(np.float64)


def _mul_high_rounded(g: np.ndarray, a: np.ndarray) -> np.ndarray:
    """``(g * a + 2^63) >> 64`` for uint64 arrays, exactly (the 128-bit product in 32-bit limbs)."""
    gh, gl = g >> _U64(32), g & _LOW32
    ah, al = a >> _U64(32), a & _LOW32
    ll, lh, hl, hh = gl * al, gl * ah, gh * al, gh * ah
    mid = (ll >> _U64(32)) + (lh & _LOW32) + (hl & _LOW32)
    high = hh + (lh >> _U64(32)) + (hl >> _U64(32)) + (mid >> _U64(32))
    bit63 = (mid >> _U64(31)) & _U64(1)  # bit 63 of the low half is bit 31 of mid
    return high + bit63


def datatable_text(values: np.ndarray) -> pl.Series:
    """The text datatable's ``to_csv`` writes for each float64 of ``values``.

    Args:
        values: float64 array of shape (n,).

    Returns:
        A String series of length n: ``0.0`` for zeros and subnormals, ``inf``, an empty string for
        NaN (datatable writes nothing), else the Dragonfly digits (module docstring).
    """
    v = np.ascontiguousarray(values, dtype=np.float64)
    bits = v.view(np.uint64) & _U64(0x7FFFFFFFFFFFFFFF)
    eb = (bits >> _U64(52)).astype(np.int64)
    normal = (eb > 0) & (eb < 0x7FF)
    ebn = np.where(normal, eb, 1)
    big_e = ((201 + ebn * 1233) >> 12) - 308
    a = _scale_table()[ebn]
    d = _mul_high_rounded((bits << _U64(11)) | _U64(1 << 63), a).astype(np.int64)  # < 2.1e18
    eps = ((a + _U64(1 << 53)) >> _U64(54)).astype(np.int64)
    # Round D to the multiple of 1000, 100 or 10 within eps of it, the first that exists.
    pending = np.ones(len(d), dtype=bool)
    rem = d % 1000
    for mod in (1000, 100, 10):
        rem = rem % mod
        down = pending & (eps >= rem)
        up = pending & ~down & (eps >= mod - rem)
        d = np.where(down, d - rem + np.where(rem > mod // 2, mod, 0), d)
        d = np.where(up, d - rem + mod, d)
        pending &= ~(down | up)
    over = d >= _TEN18
    d = np.where(over, d // 10, d)
    big_e = np.where(normal, big_e + over, 0)
    d = np.where(normal, d, 0)
    # D has 18 digits (10^17 <= D < 10^18); k of them are significant.
    tens = 10 ** np.arange(19, dtype=np.int64)
    zeros, sig = np.zeros(len(d), dtype=np.int64), d
    for p in (16, 8, 4, 2, 1):  # trailing zeros, at most 17, found by halves
        hit = (sig % tens[p] == 0) & (zeros + p <= 17)
        sig = np.where(hit, sig // tens[p], sig)
        zeros += np.where(hit, p, 0)
    k = 18 - zeros
    # The text is HEAD "." TAIL [EXPONENT], TAIL zero-padded to WIDTH digits (at least one).
    sci = normal & ((big_e < -4) | (big_e >= 15))
    small = normal & ~sci & (big_e < 0)
    fixed = normal & ~sci & ~small
    int_digits = np.clip(big_e + 1, 1, 15)
    head = np.select([fixed, sci], [d // tens[18 - int_digits], d // tens[17]], 0)
    width = np.select([fixed, sci, small], [k - int_digits, k - 1, k - big_e - 1], 0)
    width = np.maximum(width, 0)
    tail = np.where(small, sig, sig % tens[np.minimum(width, 18)])
    width = np.maximum(width, 1)
    frame = pl.DataFrame({"head": head, "tail": tail, "width": width})
    parts = [pl.col("head").cast(pl.String), pl.lit("."),
             pl.col("tail").cast(pl.String).str.zfill(pl.col("width"))]
    if sci.any():
        frame = frame.with_columns(E=pl.Series(big_e), sci=pl.Series(sci))
        parts.append(pl.when(pl.col("sci")).then(pl.concat_str([
            pl.when(pl.col("E") < 0).then(pl.lit("e-")).otherwise(pl.lit("e+")),
            pl.col("E").abs().cast(pl.String)])).otherwise(pl.lit("")))
    text = pl.concat_str(parts)
    if not normal.all():
        frame = frame.with_columns(eb=pl.Series(eb), mant=pl.Series((bits & _U64((1 << 52) - 1)) == 0))
        text = (pl.when(pl.col("eb") == 0x7FF).then(pl.when(pl.col("mant")).then(pl.lit("inf"))
                                                   .otherwise(pl.lit("")))
                .otherwise(text))
    neg = np.signbit(v)
    if neg.any():
        frame = frame.with_columns(neg=pl.Series(neg))
        text = pl.concat_str([pl.when(pl.col("neg")).then(pl.lit("-")).otherwise(pl.lit("")), text])
    return frame.select(text.alias("text"))["text"]


def multignn_amount_text(values: np.ndarray) -> pl.Series:
    """The text of each amount in Multi-GNN's formatted file: ``to_csv`` of ``fread`` of ``%f``."""
    return datatable_text(fread_values(values))
