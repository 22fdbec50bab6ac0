"""Canonical bytes built by hand from the documented layout, with every optional field present.

Mutation testing (``scripts/mutation``) found that dropping ``block_height`` from the leaf, or
widening it to 8 bytes, passed the suite: only the worked example without block fields pinned the
bytes. Here the expected bytes are assembled from the format description alone.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib

import pytest

from ledger.errors import InvalidInput
from ledger.journal.canonical import (
    content_hash,
    encode_draft,
    encode_entry,
    encode_entry_fields,
    entry_leaf_hash,
)
from ledger.journal.entry import Entry, EntryDraft, Posting


def u32(n: int) -> bytes:
    return n.to_bytes(4, "big")


def u64(n: int) -> bytes:
    return n.to_bytes(8, "big")


def i64(n: int) -> bytes:
    return n.to_bytes(8, "big", signed=True)


def text(s: str) -> bytes:
    data = s.encode()
    return u32(len(data)) + data


def present(data: bytes) -> bytes:
    return b"\x01" + data


ABSENT = b"\x00"
TXID = "0f" * 16 + "e1" * 16
BLOCK = "00" * 4 + "7a" * 28

CONFIRMED = Entry(
    seq=258,
    kind="deposit",
    date=dt.date(2025, 12, 31),
    memo="coins in",
    postings=(Posting("vault:cold", 70_000, "vault"), Posting("acme", -70_000, "counterparty")),
    leaf_hash=b"\x00" * 32,
    ref="acme-7",
    txid=TXID,
    outputs="0,2",
    block_hash=BLOCK,
    block_height=840_000,
)

CONFIRMED_BYTES = (
    b"RLE\x01"
    + u64(258)
    + text("deposit")
    + text("2025-12-31")
    + text("coins in")
    + present(text("acme-7"))
    + ABSENT
    + present(bytes.fromhex(TXID))
    + present(text("0,2"))
    + present(bytes.fromhex(BLOCK))
    + present(u32(840_000))
    + u32(2)
    + text("vault:cold")
    + text("vault")
    + i64(70_000)
    + text("acme")
    + text("counterparty")
    + i64(-70_000)
)


def test_entry_with_block_fields_by_hand() -> None:
    assert encode_entry(CONFIRMED) == CONFIRMED_BYTES
    assert entry_leaf_hash(CONFIRMED) == hashlib.sha256(b"\x00" + CONFIRMED_BYTES).digest()


def test_block_height_alone_changes_the_leaf() -> None:
    assert encode_entry(dataclasses.replace(CONFIRMED, block_height=840_001)) != CONFIRMED_BYTES
    assert encode_entry(dataclasses.replace(CONFIRMED, block_hash="11" * 32)) != CONFIRMED_BYTES


def test_reversal_by_hand() -> None:
    rev = Entry(
        seq=9,
        kind="reversal",
        date=dt.date(2026, 1, 2),
        memo="undo 3",
        postings=(Posting("fees", 5, "expense"), Posting("vault:hot", -5, "vault")),
        leaf_hash=b"\x00" * 32,
        reverses_seq=3,
    )
    assert encode_entry(rev) == (
        b"RLE\x01"
        + u64(9)
        + text("reversal")
        + text("2026-01-02")
        + text("undo 3")
        + ABSENT
        + present(u64(3))
        + ABSENT * 4
        + u32(2)
        + text("fees")
        + text("expense")
        + i64(5)
        + text("vault:hot")
        + text("vault")
        + i64(-5)
    )


def test_draft_with_every_field_by_hand() -> None:
    draft = EntryDraft(
        kind="deposit",
        memo="coins in",
        postings=(Posting("vault:cold", 70_000), Posting("acme", -70_000)),
        date=dt.date(2025, 12, 31),
        ref="acme-7",
        txid=TXID,
        outputs="0,2",
        block_hash=BLOCK,
        block_height=840_000,
    )
    expected = (
        b"RLD\x01"
        + text("deposit")
        + present(text("2025-12-31"))
        + text("coins in")
        + present(text("acme-7"))
        + ABSENT
        + present(bytes.fromhex(TXID))
        + present(text("0,2"))
        + present(bytes.fromhex(BLOCK))
        + present(u32(840_000))
        + u32(2)
        + text("vault:cold")
        + i64(70_000)
        + text("acme")
        + i64(-70_000)
    )
    assert encode_draft(draft) == expected
    assert content_hash(draft) == hashlib.sha256(expected).digest()
    undated = dataclasses.replace(draft, date=None)
    assert encode_draft(undated) == expected.replace(present(text("2025-12-31")), ABSENT, 1)


def test_draft_reversal_commits_to_the_reversed_entry() -> None:
    draft = EntryDraft(
        kind="reversal", memo="undo", postings=(Posting("a", 1), Posting("b", -1)), reverses_seq=3
    )
    assert encode_draft(draft) == (
        b"RLD\x01"
        + text("reversal")
        + ABSENT
        + text("undo")
        + ABSENT
        + present(u64(3))
        + ABSENT * 4
        + u32(2)
        + text("a")
        + i64(1)
        + text("b")
        + i64(-1)
    )


def test_unencodable_values_are_named() -> None:
    fields = {
        "seq": 1,
        "kind": "deposit",
        "date": dt.date(2024, 1, 1),
        "memo": "m",
        "ref": None,
        "reverses_seq": None,
        "txid": None,
        "outputs": None,
        "block_hash": None,
        "block_height": None,
        "postings": [],
    }
    with pytest.raises(InvalidInput, match=r"^text '\\ud800' is not valid Unicode: surrogates not allowed$"):
        encode_entry_fields(**{**fields, "memo": "\ud800"})  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match=r"^'abcd' is not 32 bytes of hex$"):
        encode_entry_fields(**{**fields, "txid": "abcd"})  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match=r"^entry -1 has a field that cannot be encoded: "):
        encode_entry_fields(**{**fields, "seq": -1})  # type: ignore[arg-type]
