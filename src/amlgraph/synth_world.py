"""The generator's world: banks, accounts, entities, counterparty lists; the accounts file."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import polars as pl

from amlgraph.synth_format import party_text
from amlgraph.synth_money import COUNTRY_CURRENCY, COUNTRY_NAMES, COUNTRY_SHARE
from amlgraph.synth_presets import IDLE_FRACTION, Preset

#: Fixed counterparties per account (repeat business: most payments go to one of them).
NEIGHBOURS = 6
#: Share of an account's fixed counterparties at its own bank (laundering crosses banks more).
SAME_BANK = 0.45
#: Share of accounts whose string is reused by another account at another bank.
REUSE = 0.004
#: Share of accounts able to pay in Bitcoin.
CRYPTO = 0.05
_HEX = np.frombuffer(b"0123456789ABCDEF", dtype=np.uint8)
_ENTITY_KINDS = np.array(["Corporation", "Sole Proprietorship", "Partnership"])


def hex_strings(values: np.ndarray, width: int) -> pl.Series:
    """Format non-negative integers as upper-case hex of fixed ``width`` (vectorised)."""
    shifts = (4 * np.arange(width - 1, -1, -1)).astype(np.uint64)
    chars = _HEX[(values.astype(np.uint64)[:, None] >> shifts) & np.uint64(15)]
    return pl.Series(np.ascontiguousarray(chars).view(f"S{width}").ravel()).cast(pl.String)


def unique_ints(rng: np.random.Generator, n: int, low: int, high: int) -> np.ndarray:
    """``n`` distinct random integers in [low, high), in random order (int64)."""
    out = np.empty(0, dtype=np.int64)
    while out.size < n:
        more = rng.integers(low, high, size=int((n - out.size) * 1.05) + 16)
        merged = np.concatenate([out, more])
        _, first = np.unique(merged, return_index=True)
        out = merged[np.sort(first)]
    return out[:n]


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
    party: pl.Series           # (n_accounts,) "<padded bank>,<account>" as written in Trans.csv
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
    """Draw ``n`` items from ``urn`` with replacement (int64)."""
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
        party=party_text(all_bank, bank_text, account_text), entity_of=entity_of,
    )


def _neighbours(bank_of: np.ndarray, recv_urn: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Fixed counterparties, shape (n_active, NEIGHBOURS): some at the same bank, some anywhere."""
    n = bank_of.size
    first = np.searchsorted(bank_of, bank_of, side="left")
    count = np.searchsorted(bank_of, bank_of, side="right") - first
    own = np.repeat(np.arange(n), NEIGHBOURS)
    same = first[own] + (rng.random(own.size) * count[own]).astype(np.int64)
    anywhere = pick(recv_urn, rng, own.size)
    use_same = (rng.random(own.size) < SAME_BANK) & (same != own)
    out = np.where(use_same, same, anywhere)
    out = np.where(out == own, anywhere[::-1], out)   # avoid fixed self-counterparties
    return out.reshape(n, NEIGHBOURS).astype(np.int32)


def accounts_frame(world: World, rng: np.random.Generator) -> pl.DataFrame:
    """The accounts file as a frame: Bank Name, Bank ID, Account Number, Entity ID, Entity Name."""
    n_ent = world.n_accounts
    entity_hex = hex_strings(unique_ints(rng, n_ent, 0x10000000000, 0x100000000000), 11)
    kind = _ENTITY_KINDS[np.searchsorted([0.5, 0.85], rng.random(n_ent), side="right")]
    bank = world.bank_of
    frame = pl.DataFrame({
        "country": np.array(COUNTRY_NAMES)[world.bank_country[bank]],
        "bank_no": bank.astype(np.int64),
        "Bank ID": world.bank_ids[bank],
        "Account Number": world.account_text,
        "Entity ID": entity_hex.gather(world.entity_of),
        "kind": kind[world.entity_of],
        "ent_no": world.entity_of,
    })
    return frame.select(
        pl.format("{} Bank #{}", "country", "bank_no").alias("Bank Name"),
        "Bank ID", "Account Number", "Entity ID",
        pl.format("{} #{}", "kind", "ent_no").alias("Entity Name"),
    ).sort("Bank ID", "Account Number", maintain_order=True)
