"""Entry invariants are checked on construction."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from custody.amount import MAX_MONEY
from ledger.entry import Entry, EntryDraft, Posting, reversal_postings
from ledger.errors import InvalidInput

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
