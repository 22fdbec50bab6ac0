"""Entry invariants are checked on construction."""

from __future__ import annotations

import datetime as dt
import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from custody.amount import MAX_MONEY
from ledger.errors import InvalidInput
from ledger.journal.entry import (
    ENTRY_KINDS,
    RECORD_KINDS,
    Entry,
    EntryDraft,
    Posting,
    check_text,
    reversal_postings,
)
from ledger.journal.records import RecordKind, canonical_json

TWO = (Posting("vault", 10), Posting("acme", -10))


def test_valid_draft_and_entry() -> None:
    d = EntryDraft(kind="deposit", memo="in", postings=TWO, ref="r1", txid="ab" * 32, outputs="0,2")
    assert d.postings == TWO
    e = Entry(
        seq=1,
        kind="deposit",
        date=dt.date(2024, 1, 1),
        memo="in",
        postings=(Posting("vault", 10, "vault"), Posting("acme", -10, "counterparty")),
        leaf_hash=b"\x01" * 32,
    )
    assert e.seq == 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"postings": (Posting("vault", 10),)}, "at least two postings"),
        ({"postings": (Posting("vault", 10), Posting("acme", -9))}, "do not balance"),
        ({"postings": [Posting("vault", 10), Posting("acme", -10)]}, "tuple"),
        ({"kind": "gift"}, "kind 'gift' is unknown"),
        ({"memo": "  "}, "memo is empty"),
        ({"memo": "x" * 2001}, "at most 2000"),
        ({"ref": ""}, "ref"),
        ({"kind": "reversal"}, "reversal must name"),
        ({"reverses_seq": 3}, "reversal must name"),
        ({"txid": "AB" * 32}, "txid"),
        ({"txid": "ab" * 31}, "txid"),
        ({"outputs": "0"}, "without a txid"),
        ({"txid": "ab" * 32, "outputs": "0,,1"}, "outputs"),
        ({"block_hash": "cd" * 32}, "go together"),
        ({"date": dt.datetime(2024, 1, 1)}, "date"),
    ],
)
def test_draft_invariants(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"kind": "deposit", "memo": "m", "postings": TWO, **kwargs}
    with pytest.raises(InvalidInput, match=message):
        EntryDraft(**args)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("account", "amount", "message"),
    [
        ("vault", 0, "zero amount"),
        ("vault", MAX_MONEY + 1, "supply cap"),
        ("vault", -MAX_MONEY - 1, "supply cap"),
        ("vault", 1.5, "integer satoshis"),
        ("vault", True, "integer satoshis"),
        ("has space", 1, "account name"),
        ("a=b", 1, "account name"),
        ("", 1, "account name"),
    ],
)
def test_posting_invariants(account: str, amount: object, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        Posting(account, amount)  # type: ignore[arg-type]


def test_entry_needs_account_types_seq_and_leaf() -> None:
    base = {"kind": "deposit", "date": dt.date(2024, 1, 1), "memo": "m", "leaf_hash": b"\x01" * 32}
    with pytest.raises(InvalidInput, match="account type"):
        Entry(seq=1, postings=TWO, **base)  # type: ignore[arg-type]
    typed = (Posting("vault", 10, "vault"), Posting("acme", -10, "counterparty"))
    with pytest.raises(InvalidInput, match="seq"):
        Entry(seq=0, postings=typed, **base)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="leaf hash"):
        Entry(seq=1, postings=typed, **{**base, "leaf_hash": b"x"})  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="later entry"):
        Entry(seq=2, postings=typed, **{**base, "kind": "reversal"}, reverses_seq=2)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="account type"):
        Posting("vault", 1, "asset")


@given(st.lists(st.integers(min_value=1, max_value=MAX_MONEY), min_size=1, max_size=10))
def test_balanced_postings_always_accepted_and_reversal_negates(amounts: list[int]) -> None:
    legs = [Posting(f"a{i}", a) for i, a in enumerate(amounts)]
    total = sum(amounts)
    # the balancing legs, each within the cap
    rest: list[Posting] = []
    while total:
        chunk = min(total, MAX_MONEY)
        rest.append(Posting(f"b{len(rest)}", -chunk))
        total -= chunk
    d = EntryDraft(kind="transfer", memo="m", postings=tuple(legs + rest))
    rev = reversal_postings(d.postings)
    assert sum(p.amount for p in rev) == 0
    assert [(p.account, -p.amount) for p in rev] == [(p.account, p.amount) for p in d.postings]


@given(st.lists(st.integers(min_value=-MAX_MONEY, max_value=MAX_MONEY).filter(bool), min_size=2, max_size=6))
def test_unbalanced_refused(amounts: list[int]) -> None:
    postings = tuple(Posting(f"a{i}", a) for i, a in enumerate(amounts))
    if sum(amounts) == 0:
        assert EntryDraft(kind="transfer", memo="m", postings=postings)
    else:
        with pytest.raises(InvalidInput, match="do not balance"):
            EntryDraft(kind="transfer", memo="m", postings=postings)


# --- log records ------------------------------------------------------------------------------------

RECORD_MEMO = '{"reason":"r","vault":"hot"}'


def test_record_entry() -> None:
    d = EntryDraft(kind="vault-retired", memo=RECORD_MEMO, postings=())
    e = Entry(
        seq=3,
        kind="vault-retired",
        date=dt.date(2026, 1, 1),
        memo=RECORD_MEMO,
        postings=(),
        leaf_hash=b"\1" * 32,
    )
    assert d.postings == e.postings == ()
    assert tuple(RecordKind) == RECORD_KINDS and not set(RECORD_KINDS) & set(ENTRY_KINDS)
    assert EntryDraft(kind="audit", memo='{"a":"' + "x" * 5000 + '"}', postings=())  # beyond MAX_MEMO


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"postings": TWO}, "has no postings"),
        ({"ref": "r1"}, "takes none of ref"),
        ({"txid": "ab" * 32}, "takes none of txid"),
        ({"block_hash": "cd" * 32, "block_height": 1}, "takes none of block_hash, block_height"),
        ({"reverses_seq": 1}, "takes none of reverses_seq"),
        ({"memo": "not json"}, "not JSON"),
        ({"memo": "[1,2]"}, "canonical form"),
        ({"memo": '{"vault": "hot"}'}, "canonical form"),
        ({"memo": '{"b":1,"a":2}'}, "canonical form"),
        ({"memo": '{"v":"caf\u00e9"}'}, "canonical form"),
        ({"memo": '{"a":"' + "x" * 100_000 + '"}'}, "at most 100000"),
    ],
)
def test_record_invariants(kwargs: dict[str, object], message: str) -> None:
    args: dict[str, object] = {"kind": "vault-added", "memo": RECORD_MEMO, "postings": (), **kwargs}
    with pytest.raises(InvalidInput, match=message):
        EntryDraft(**args)  # type: ignore[arg-type]


def test_money_entry_still_needs_postings() -> None:
    with pytest.raises(InvalidInput, match="at least two postings"):
        EntryDraft(kind="deposit", memo=RECORD_MEMO, postings=())


def test_record_bodies_are_canonical_json() -> None:
    assert (
        canonical_json({"b": [1, None, True], "a": "caf\u00e9\n"})
        == '{"a":"caf\\u00e9\\n","b":[1,null,true]}'
    )
    for bad in ({}, {"x": 1.5}, {1: "x"}, {"x": {"y": object()}}):
        with pytest.raises(InvalidInput):
            canonical_json(bad)  # type: ignore[arg-type]


# --- text that is printed ---------------------------------------------------------------------------

CONTROL = [
    chr(c)
    for c in (
        *range(0x20),
        0x7F,
        *range(0x80, 0xA0),
        0x2028,
        0x2029,
        *range(0x202A, 0x202F),
        *range(0x2066, 0x206A),
    )
]


@pytest.mark.parametrize("char", CONTROL, ids=[f"U+{ord(c):04X}" for c in CONTROL])
def test_control_characters_refused_in_memo_and_ref(char: str) -> None:
    code = f"U+{ord(char):04X}"
    with pytest.raises(
        InvalidInput, match=re.escape(f"memo contains the control character {code} at position 2")
    ):
        EntryDraft(kind="deposit", memo=f"ab{char}c", postings=TWO)
    with pytest.raises(InvalidInput, match=re.escape(f"ref contains the control character {code}")):
        EntryDraft(kind="deposit", memo="m", postings=TWO, ref=f"r{char}")


@given(st.text(alphabet=st.characters(exclude_characters=CONTROL, exclude_categories=["Cs"]), min_size=1))
def test_other_text_is_accepted(text: str) -> None:
    assert check_text(text, "memo") == text


def test_stored_entries_with_old_control_characters_still_load() -> None:
    """Entries stored before the rule keep loading (and verifying): only new drafts are judged."""
    e = Entry(
        seq=1,
        kind="deposit",
        date=dt.date(2024, 1, 1),
        memo="two\nlines",
        postings=(Posting("vault", 10, "vault"), Posting("acme", -10, "counterparty")),
        leaf_hash=b"\1" * 32,
    )
    assert e.memo == "two\nlines"
