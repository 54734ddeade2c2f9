"""``--rates FILE``: exchange rates given by the user, a CSV ``currency,usd_per_unit``.

One row per currency, names as in the transactions file (``Bitcoin,20000``); a header line
``currency,usd_per_unit`` is required, so that a file of another kind is not taken for rates.
Rates given here win over the rates inferred from the data.
"""
from __future__ import annotations

import csv
import math
from pathlib import Path

from amlgraph.errors import InputError

RATES_HEADER = ("currency", "usd_per_unit")
#: A rates file is a few lines; anything far larger is not one.
_MAX_BYTES = 1 << 20


def read_rates(path: str | Path) -> dict[str, float]:
    """USD per unit of each named currency.

    Raises:
        InputError: naming the file, line, column and value: a missing file, another header,
            a line without two fields, a rate that is not a finite number > 0, a currency twice.
    """
    path = Path(path)
    hint = "the rates file is a CSV with the header currency,usd_per_unit and one line per currency"
    try:
        if path.stat().st_size > _MAX_BYTES:
            raise InputError(f"larger than {_MAX_BYTES:,} bytes: not a rates file", path=str(path), hint=hint)
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError("no such rates file", path=str(path), hint="check the --rates path") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"cannot read the rates file ({exc})", path=str(path), hint=hint) from None
    rows = list(csv.reader(text.splitlines()))
    if not rows or tuple(c.strip().lower() for c in rows[0]) != RATES_HEADER:
        raise InputError("wrong header", path=str(path), line=1, value=",".join(rows[0]) if rows else "",
                         hint=hint)
    rates: dict[str, float] = {}
    for line, row in enumerate(rows[1:], start=2):
        if not row or not "".join(row).strip():
            continue
        if len(row) != 2:
            raise InputError(f"expected 2 fields, found {len(row)}", path=str(path), line=line,
                             value=",".join(row), hint=hint)
        name, raw = row[0].strip(), row[1].strip()
        try:
            value = float(raw)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and value > 0):
            raise InputError("the rate must be a finite number > 0", path=str(path), line=line,
                             column="usd_per_unit", value=raw, hint=hint)
        if name in rates:
            raise InputError("currency given twice", path=str(path), line=line, column="currency",
                             value=name, hint="give each currency once")
        rates[name] = value
    return rates
