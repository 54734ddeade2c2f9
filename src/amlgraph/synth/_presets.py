"""Presets of the synthetic generator: sizes, laundering rates and calendars of the IBM data sets."""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, replace

from amlgraph.errors import ConfigError

#: Accounts listed in the accounts file that never transact (HI-Small: 3,501 of 518,581).
IDLE_FRACTION = 3_501 / 515_080
#: Smallest row count the generator accepts (below it the typologies do not fit).
MIN_ROWS = 100


@dataclass(frozen=True)
class Preset:
    """Parameters of one generated data set.

    Attributes:
        name: IBM-style file prefix (``HI-Small`` -> ``HI-Small_Trans.csv``).
        rows: transactions written, laundering included.
        accounts: accounts that transact (the accounts file lists a few idle ones more).
        laundering_rate: laundering rows per row (HI-Small: 1/981).
        start: first day of the nominal calendar.
        days: nominal days; rows run ``tail_days`` past them, thinly.
        tail_days: days after the nominal range that still hold a few rows.
    """

    name: str
    rows: int
    accounts: int
    laundering_rate: float
    start: dt.date
    days: int
    tail_days: int = 3

    def scaled(self, rows: int) -> "Preset":
        """Return this preset resized to ``rows`` rows, accounts scaled in proportion."""
        accounts = max(30, round(self.accounts * rows / self.rows))
        return replace(self, rows=rows, accounts=accounts)


_SEP1 = dt.date(2022, 9, 1)
_AUG1 = dt.date(2022, 8, 1)

#: preset key -> parameters. The six IBM sizes as published; ``tiny`` and ``small`` use a higher
#: laundering rate so that tests and the demo see every typology several times.
PRESETS: dict[str, Preset] = {
    "tiny": Preset("Tiny", 10_000, 1_000, 1 / 50, _SEP1, 10, 2),
    "small": Preset("Small", 200_000, 20_000, 1 / 250, _SEP1, 10, 2),
    "hi-small": Preset("HI-Small", 5_078_345, 515_080, 1 / 981, _SEP1, 10),
    "li-small": Preset("LI-Small", 6_924_049, 705_907, 1 / 1942, _SEP1, 10),
    "hi-medium": Preset("HI-Medium", 31_898_238, 2_077_023, 1 / 905, _SEP1, 16),
    "li-medium": Preset("LI-Medium", 31_251_483, 2_028_010, 1 / 1948, _SEP1, 16),
    "hi-large": Preset("HI-Large", 179_702_229, 2_116_168, 1 / 807, _AUG1, 97),
    "li-large": Preset("LI-Large", 176_066_557, 2_064_214, 1 / 1750, _AUG1, 97),
}


def resolve_preset(preset: str, rows: int | None = None) -> Preset:
    """Look up a preset by key (case-insensitive, ``HI-Small`` or ``hi_small`` accepted).

    Args:
        preset: a key of :data:`PRESETS` or an IBM-style name.
        rows: if given, resize the preset to this many rows.

    Returns:
        The preset, resized when ``rows`` is given.

    Raises:
        ConfigError: unknown preset, or ``rows`` not an integer >= MIN_ROWS.
    """
    key = str(preset).strip().lower().replace("_", "-")
    if key not in PRESETS:
        raise ConfigError(f"unknown synth preset {preset!r}; must be one of {{{', '.join(PRESETS)}}}")
    chosen = PRESETS[key]
    if rows is None:
        return chosen
    if isinstance(rows, bool) or not isinstance(rows, int) or rows < MIN_ROWS:
        raise ConfigError(f"rows must be an integer >= {MIN_ROWS} (got {rows!r}); "
                          f"omit it to use the preset's {chosen.rows:,} rows")
    return chosen.scaled(rows)
