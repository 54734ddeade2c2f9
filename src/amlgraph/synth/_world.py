"""The generator's world: banks, accounts, entities, counterparty lists; the accounts file."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl

from amlgraph.schema import ACCOUNTS_HEADER
from amlgraph.synth._format import pick_text
from amlgraph.synth._money import COUNTRY_CURRENCY, COUNTRY_NAMES, COUNTRY_SHARE
from amlgraph.synth._presets import IDLE_FRACTION, Preset

#: Fixed counterparties per account (repeat business: most payments go to one of them).
NEIGHBOURS = 6
#: Share of an account's fixed counterparties at its own bank (laundering crosses banks more).
SAME_BANK = 0.45
#: Share of accounts whose string is reused by another account at another bank.
REUSE = 0.004
#: Share of accounts able to pay in Bitcoin.
CRYPTO = 0.05
_HEX = np.frombuffer(b"0123456789ABCDEF", dtype=np.uint8)
#: byte -> its two hex digits, as the uint16 holding them in memory order
_HEX_PAIRS = np.stack([np.repeat(_HEX, 16), np.tile(_HEX, 16)], axis=1).copy().view(np.uint16).ravel()
_ENTITY_KINDS = ("Corporation", "Sole Proprietorship", "Partnership")


def hex_strings(values: np.ndarray, width: int) -> pl.Series:
    """Format non-negative integers below ``16**width`` as upper-case hex of fixed ``width``."""
    n_bytes = (width + 1) // 2                       # two hex digits per byte, one lookup each
    big_endian = values.astype(">u8").view(np.uint8).reshape(-1, 8)[:, 8 - n_bytes:]
    chars = np.empty((values.size, 2 * n_bytes), dtype=np.uint8)
    chars.view(np.uint16)[:] = _HEX_PAIRS[big_endian]
    text = np.ascontiguousarray(chars[:, 2 * n_bytes - width:])
    return pl.Series(text.view(f"S{width}").ravel()).cast(pl.String)


def unique_ints(rng: np.random.Generator, n: int, low: int, high: int) -> np.ndarray:
    """``n`` distinct random integers in [low, high), in random order (int64)."""
    out = np.empty(0, dtype=np.int64)
    while out.size < n:
        more = rng.integers(low, high, size=int((n - out.size) * 1.05) + 16)
        out = _first_occurrences(np.concatenate([out, more]))
    return out[:n]


def _first_occurrences(values: np.ndarray) -> np.ndarray:
    """``values`` without repeats, each kept where it first occurs, in the original order."""
    ordered = np.sort(values)
    repeated = ordered[1:][ordered[1:] == ordered[:-1]]
    if repeated.size == 0:                 # the usual case: random draws rarely collide
        return values
    at = np.flatnonzero(np.isin(values, repeated))
    _, first = np.unique(values[at], return_index=True)
    keep = np.ones(values.size, dtype=bool)
    keep[at] = False
    keep[at[first]] = True
    return values[keep]


@dataclass
class World:
    """Everything per bank and per account that the row generators sample from.

    Accounts ``[0, n_active)`` transact and are sorted by bank; ``[n_active, n_accounts)`` are idle.
    """

    n_active: int
    bank_of: np.ndarray        # (n_accounts,) int32 bank index
    code: np.ndarray           # (n_accounts,) int64 account number
    home: np.ndarray           # (n_accounts,) int8 currency code of the bank's country
    scale: np.ndarray          # (n_active,) float64 typical payment size factor
    send_urn: np.ndarray       # int32 urn of active accounts, weighted by sending activity
    recv_urn: np.ndarray       # int32 urn of active accounts, weighted by popularity as a payee
    neighbours: np.ndarray     # (n_active, NEIGHBOURS) int32 fixed counterparties
    crypto: np.ndarray         # (n_crypto,) int32 active accounts that use Bitcoin
    crypto_urn: np.ndarray     # int32 urn of those accounts, weighted by activity
    sweep: np.ndarray          # (n_active,) int32 permutation: every account sends once
    bank_ids: np.ndarray       # (n_banks,) int64
    bank_country: np.ndarray   # (n_banks,) int16
    bank_text: pl.Series       # (n_banks,) zero-padded bank ids as written in Trans.csv
    account_text: pl.Series    # (n_accounts,) 9 hex characters
    bank_field: pl.Series      # (n_accounts,) the account's bank id as written in Trans.csv
    entity_of: np.ndarray      # (n_accounts,) int64 entity index

    @property
    def n_accounts(self) -> int:
        return int(self.code.size)


def make_urn(weight: np.ndarray, items: np.ndarray | None = None, per_item: int = 4) -> np.ndarray:
    """An urn: each item repeated in proportion to its weight (at least once), int32.

    Drawing from an urn is one random gather, much faster than a binary search over cumulative
    weights for millions of accounts; weights are kept to about 1/(per_item x n) resolution.
    """
    items = np.arange(weight.size, dtype=np.int32) if items is None else items.astype(np.int32)
    copies = np.maximum(1, np.round(weight * (per_item * weight.size / weight.sum()))).astype(np.int64)
    return np.repeat(items, copies)


def pick(urn: np.ndarray, rng: np.random.Generator, n: int) -> np.ndarray:
    """Draw ``n`` items from ``urn`` with replacement, as int64 (NumPy gathers fastest with it)."""
    return urn[rng.integers(0, urn.size, n)].astype(np.int64)


def build_world(preset: Preset, rng: np.random.Generator) -> World:
    """Create banks and accounts for ``preset``.

    Bank sizes are heavy-tailed (Zipf); bank ids are written zero-padded to a per-bank width.
    """
    n_active = preset.accounts
    n_idle = max(1, round(n_active * IDLE_FRACTION))
    n_banks = max(8, round(n_active / 17))
    ids = np.sort(unique_ints(rng, n_banks, 1, max(1_000, 12 * n_banks)))
    ids[10:] = rng.permutation(ids[10:])           # big banks mostly have small ids, then random
    size = 1.0 / np.arange(1, n_banks + 1) ** 1.05
    size /= size.sum()
    bank_of = np.repeat(np.arange(n_banks, dtype=np.int32), rng.multinomial(n_active, size))
    idle_bank = rng.choice(n_banks, size=n_idle, p=size).astype(np.int32)
    country = rng.choice(len(COUNTRY_SHARE), size=n_banks, p=COUNTRY_SHARE).astype(np.int16)
    country[:3] = 0                                # the largest banks are American

    digits = np.floor(np.log10(ids)).astype(np.int64) + 1
    width = np.maximum(3, digits + 1 + (rng.random(n_banks) < 0.3))
    bank_text = pl.DataFrame({"s": ids.astype(str), "w": width}).select(
        pl.col("s").str.zfill(pl.col("w")))["s"]

    all_bank = np.concatenate([bank_of, idle_bank])
    n_all = all_bank.size
    code = 0x800000000 + unique_ints(rng, n_all, 0, 0x100000000)
    # some account strings exist at two banks: copy a string to an account at another bank
    pair = rng.choice(n_active, size=2 * max(1, round(n_active * REUSE)), replace=False)
    src, dst = pair[::2], pair[1::2]
    ok = bank_of[src] != bank_of[dst]
    code[dst[ok]] = code[src[ok]]

    entity_of = np.arange(n_all, dtype=np.int64)
    shared = rng.choice(n_all, size=n_all // 25, replace=False)
    entity_of[shared] = rng.integers(0, n_all, size=shared.size)

    scale = rng.lognormal(0.0, 0.8, n_active)
    activity = rng.lognormal(0.0, 1.3, n_active)
    recv_urn = make_urn(rng.lognormal(0.0, 1.5, n_active))
    neighbours = _neighbours(bank_of, recv_urn, rng)
    crypto = np.flatnonzero(rng.random(n_active) < CRYPTO).astype(np.int32)
    if crypto.size < 2:
        crypto = np.arange(min(2, n_active), dtype=np.int32)
    account_text = hex_strings(code, 9)
    return World(
        n_active=n_active, bank_of=all_bank, code=code,
        home=COUNTRY_CURRENCY[country[all_bank]], scale=scale, send_urn=make_urn(activity),
        recv_urn=recv_urn, neighbours=neighbours, crypto=crypto,
        crypto_urn=make_urn(activity[crypto], crypto),
        sweep=rng.permutation(n_active).astype(np.int32), bank_ids=ids, bank_country=country,
        bank_text=bank_text, account_text=account_text,
        bank_field=pick_text(bank_text, all_bank), entity_of=entity_of,
    )


def _neighbours(bank_of: np.ndarray, recv_urn: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Fixed counterparties, shape (n_active, NEIGHBOURS): some at the same bank, some anywhere."""
    n = bank_of.size
    per_bank = np.bincount(bank_of).astype(np.int32)
    count = per_bank[bank_of][:, None]                   # bank_of is sorted: banks are runs
    first = (np.cumsum(per_bank, dtype=np.int32) - per_bank)[bank_of][:, None]
    own = np.arange(n, dtype=np.int32)[:, None]
    out = first + (rng.random((n, NEIGHBOURS)) * count).astype(np.int32)   # at the same bank
    slot = rng.integers(0, recv_urn.size, n * NEIGHBOURS)   # urn slots of payees "anywhere"
    use_same = (rng.random((n, NEIGHBOURS)) < SAME_BANK) & (out != own)
    flat = out.reshape(-1)
    anywhere = np.flatnonzero(~use_same.reshape(-1))        # look up only the slots used
    flat[anywhere] = recv_urn[slot[anywhere]]
    again = np.flatnonzero(out == own)                       # no fixed self-payee: the slot
    flat[again] = recv_urn[slot[::-1][again]]                # drawn for the mirror position
    return out


def write_accounts(path: Path, world: World, rng: np.random.Generator) -> int:
    """Write the accounts file (Bank Name, Bank ID, Account Number, Entity ID, Entity Name).

    Rows are sorted by Bank ID, then Account Number (9 hex digits: text order is number order).
    Text is formatted once per bank and once per entity, then gathered per account.

    Returns:
        The number of rows written.
    """
    n_ent = world.n_accounts
    entity_hex = hex_strings(unique_ints(rng, n_ent, 0x10000000000, 0x100000000000), 11)
    kind = np.searchsorted([0.5, 0.85], rng.random(n_ent), side="right").astype(np.uint32)
    banks = pl.DataFrame({
        "country": pick_text(pl.Series(COUNTRY_NAMES), world.bank_country),
        "no": np.arange(world.bank_ids.size), "id": world.bank_ids,
    }).select(pl.format("{} Bank #{},{}", "country", "no", "id"))[:, 0]
    entities = pl.DataFrame({
        "hex": entity_hex, "kind": pick_text(pl.Series(_ENTITY_KINDS), kind), "no": np.arange(n_ent),
    }).select(pl.format("{},{} #{}", "hex", "kind", "no"))[:, 0]
    # (Bank ID, account number) as one integer: account numbers are below 2**36
    order = np.argsort(world.bank_ids[world.bank_of] << 36 | world.code).astype(np.uint32)
    table = pl.DataFrame([
        pick_text(banks, world.bank_of[order]).alias("bank"),
        pick_text(world.account_text, order).alias("account"),
        pick_text(entities, world.entity_of[order]).alias("entity"),
    ])
    with open(path, "wb") as handle:
        handle.write((",".join(ACCOUNTS_HEADER) + "\n").encode())
        table.write_csv(handle, include_header=False, line_terminator="\n", quote_style="never")
    return table.height
