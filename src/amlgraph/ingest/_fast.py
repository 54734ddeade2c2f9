"""The fast path of the transaction reader: a block of plain lines split by Polars' CSV parser.

The IBM files have no quotes, no blank lines and exactly 10 commas on every line. A block of whole
lines (cut by `ingest_lines`, so line numbers stay exact) that provably has that shape is split by
`pl.read_csv` with 11 String columns, which is several times faster than splitting each line with
string expressions. The fields are then validated and cast by the same expressions as on the slow
path (`ingest_validate`), so both paths accept, reject and type every line alike. Any block that
does not pass every check below returns None and goes through the line splitter instead.

Why the checks are enough (for a block of n lines, n_nl of them ending in `\\n`, no `"`, no `\\r`):
1. The block holds exactly 10 * n commas (counted with NumPy).
2. Polars returns n rows of 11 non-null fields. Without quoting, a field is a run of bytes of its
   line with no comma and no line end.
3. The predicted lines tile the block: line i is its fields plus 10 commas plus `\\n`; every
   predicted line end is a `\\n` byte, the last ends where the block ends, and the block holds no
   other `\\n` (there are n_nl). So the predicted lines are the physical lines, and line i has at
   most 10 commas (its length is its field bytes + 10 + 1, the field bytes being none of its
   commas); with 10 * n commas in all, every line has exactly 10, which is what the line splitter
   requires, and the fields are the line's 11 comma-separated parts.
Lines ending in `\\r\\n` are read as if they ended in `\\n` (the slow path strips the `\\r` from the
last field too); a `\\r` anywhere else sends the block to the slow path.
"""
from __future__ import annotations

import numpy as np
import polars as pl

from amlgraph.ingest._lines import count_byte

_COMMA, _NEWLINE = 0x2C, 0x0A


def split_plain_block(buf: bytes, n_lines: int, names: tuple[str, ...]) -> pl.DataFrame | None:
    """Split a block of lines into String fields, or None when it needs the line splitter.

    Args:
        buf: whole lines of text (UTF-8, no NUL byte), the last one possibly without `\\n`.
        n_lines: the number of lines of `buf` (its `\\n` bytes, plus one for an unterminated
            last line), as counted by `ingest_lines.count_lines`.
        names: the names of the fields, by position.

    Returns:
        A frame of shape (n_lines, len(names)), one String column per name, each field verbatim
        (empty fields are empty strings); None when the block has a `"`, a blank line, a line with
        another number of commas, a `\\r` not followed by `\\n`, or anything Polars does not read
        as exactly those lines.
    """
    n_fields = len(names)
    if n_lines < 1 or buf.find(b'"') >= 0:
        return None
    terminated = buf.endswith(b"\n")
    if buf.find(b"\r") >= 0:
        buf = buf.replace(b"\r\n", b"\n")
        if buf.find(b"\r") >= 0:
            return None
        terminated = buf.endswith(b"\n")
    if count_byte(buf, _COMMA) != (n_fields - 1) * n_lines:
        return None
    try:
        fields = pl.read_csv(buf, has_header=False, schema={name: pl.String for name in names},
                             quote_char=None, empty_string_is_null=False, raise_if_empty=False,
                             truncate_ragged_lines=False)
    except pl.exceptions.PolarsError:
        return None
    if fields.height != n_lines or fields.width != n_fields or any(fields.null_count().row(0)):
        return None
    # Predicted end of every line: the position of its `\n` (one past the block for an
    # unterminated last line).
    lengths = fields.select(pl.sum_horizontal(pl.col(name).str.len_bytes().cast(pl.Int64) for name in names)
                            + n_fields).to_series()
    ends = lengths.cum_sum().to_numpy() - 1
    if int(ends[-1]) != len(buf) - (1 if terminated else 0):
        return None
    newline_ends = ends if terminated else ends[:-1]
    if not bool((np.frombuffer(buf, dtype=np.uint8)[newline_ends] == _NEWLINE).all()):
        return None
    return fields
