"""Canonical entry bytes: the documented worked example, and every field changes the bytes."""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ledger.journal.canonical import content_hash, encode_draft, encode_entry, entry_leaf_hash
from ledger.journal.entry import Entry, EntryDraft, Posting
from ledger.journal.records import RecordKind, canonical_json, vault_retired_body

DOC = Path(__file__).resolve().parents[2] / "docs" / "ledger-format.md"

EXAMPLE = Entry(
    seq=1,
    kind="deposit",
    date=dt.date(2024, 1, 31),
    memo="Acme deposit",
    postings=(Posting("vault:cold", 150_000_000, "vault"), Posting("acme", -150_000_000, "counterparty")),
    leaf_hash=b"\x00" * 32,
    ref="acme-1",
    txid="aa" * 32,
    outputs="0",
)


RECORD_EXAMPLE = Entry(
    seq=7,
    kind="vault-retired",
    date=dt.date(2026, 11, 25),
    memo=canonical_json(vault_retired_body(vault="hot", reason="keys rotated")),
    postings=(),
    leaf_hash=b"\x00" * 32,
)


def test_worked_examples_in_the_doc_are_what_the_code_produces() -> None:
    doc = DOC.read_text()
    blocks = re.findall(r"```\n([0-9a-f]+)\n```", doc)
    assert blocks == [
        encode_entry(EXAMPLE).hex(),
        entry_leaf_hash(EXAMPLE).hex(),
        encode_entry(RECORD_EXAMPLE).hex(),
        entry_leaf_hash(RECORD_EXAMPLE).hex(),
    ]
    # and the leaf hashes are reproducible with hashlib alone
    for data, leaf in (blocks[0:2], blocks[2:4]):
        assert hashlib.sha256(b"\x00" + bytes.fromhex(data)).hexdigest() == leaf
    assert RECORD_EXAMPLE.memo == '{"reason":"keys rotated","vault":"hot"}'
    assert f"is `{RECORD_EXAMPLE.memo}` ({len(RECORD_EXAMPLE.memo)} bytes)" in doc


def test_record_kinds_are_documented() -> None:
    doc = DOC.read_text()
    for kind in RecordKind:
        assert f"| `{kind}`" in doc and f"- `{kind}`:" in doc


def test_record_bytes_have_no_postings_and_no_optional_fields() -> None:
    data = encode_entry(RECORD_EXAMPLE)
    assert data.endswith(b"\x00" * 6 + (0).to_bytes(4, "big"))


def test_layout_by_hand() -> None:
    data = encode_entry(EXAMPLE)
    assert data[:4] == b"RLE\x01"
    assert int.from_bytes(data[4:12], "big") == 1
    assert data[12:16] == (7).to_bytes(4, "big") and data[16:23] == b"deposit"
    assert data.endswith((-150_000_000).to_bytes(8, "big", signed=True))


@pytest.mark.parametrize(
    "change",
    [
        {"seq": 2},
        {"kind": "transfer"},
        {"date": dt.date(2024, 2, 1)},
        {"memo": "Acme deposit."},
        {"ref": None},
        {"ref": "acme-2"},
        {"txid": "ab" * 32},
        {"txid": None, "outputs": None},
        {"outputs": "1"},
        {"block_hash": "cc" * 32, "block_height": 100},
        {
            "postings": (
                Posting("vault:cold", 150_000_001, "vault"),
                Posting("acme", -150_000_001, "counterparty"),
            )
        },
        {
            "postings": (
                Posting("vault:cold", 150_000_000, "custodian"),
                Posting("acme", -150_000_000, "counterparty"),
            )
        },
        {
            "postings": (
                Posting("acme", -150_000_000, "counterparty"),
                Posting("vault:cold", 150_000_000, "vault"),
            )
        },
    ],
)
def test_every_field_is_committed(change: dict[str, object]) -> None:
    assert encode_entry(dataclasses.replace(EXAMPLE, **change)) != encode_entry(EXAMPLE)  # type: ignore[arg-type]


def test_reversal_fields() -> None:
    rev = dataclasses.replace(
        EXAMPLE, seq=5, kind="reversal", reverses_seq=1, ref=None, txid=None, outputs=None
    )
    assert int.from_bytes(encode_entry(rev)[4:12], "big") == 5
    assert encode_entry(rev) != encode_entry(dataclasses.replace(rev, reverses_seq=2))


def test_length_prefixes_prevent_ambiguity() -> None:
    a = dataclasses.replace(EXAMPLE, memo="ab", ref="c")
    b = dataclasses.replace(EXAMPLE, memo="a", ref="bc")
    assert encode_entry(a) != encode_entry(b)


def test_draft_hash_ignores_nothing_the_caller_said() -> None:
    d = EntryDraft(kind="deposit", memo="m", postings=(Posting("a", 1), Posting("b", -1)), ref="r")
    assert content_hash(d) == content_hash(dataclasses.replace(d))
    assert content_hash(d) != content_hash(dataclasses.replace(d, date=dt.date(2024, 1, 1)))
    assert content_hash(d) != content_hash(dataclasses.replace(d, memo="m2"))
    assert encode_draft(d)[:4] == b"RLD\x01"


@given(st.text(max_size=50), st.text(max_size=50))
def test_memo_round_trips_through_length_prefix(memo: str, other: str) -> None:
    if not memo.strip() or not other.strip():
        return
    try:
        memo.encode("utf-8")
        other.encode("utf-8")
    except UnicodeEncodeError:
        return
    a = encode_entry(dataclasses.replace(EXAMPLE, memo=memo))
    b = encode_entry(dataclasses.replace(EXAMPLE, memo=other))
    assert (a == b) == (memo == other)
