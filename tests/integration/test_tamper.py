"""Tampering behind the application's back (triggers dropped, raw SQL) is found by verify_ledger,
which says what is wrong and names the first bad entry where that is meaningful."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine, insert, select, text
from sqlalchemy.orm import Session

from ledger.accounts import add_account
from ledger.checkpoint import public_key_pem
from ledger.entry import EntryDraft, Posting
from ledger.journal import append, append_many, iter_stored
from ledger.merkle import leaf_hash
from ledger.models import EntryRow, PostingRow
from ledger.proofs import make_checkpoint
from ledger.verify import VerifyReport, verify_ledger
from tests.fixtures.db import drop_append_only_triggers

N = 8


def draft(i: int) -> EntryDraft:
    return EntryDraft(
        kind="deposit",
        memo=f"deposit {i}",
        postings=(Posting("vault", 1000 * i), Posting("acme", -1000 * i)),
    )


@pytest.fixture
def books(engine: Engine, signing_key: Ed25519PrivateKey) -> Engine:
    """Eight entries with checkpoints at sizes 4 and 8; triggers dropped, ready to tamper."""
    with Session(engine) as s, s.begin():
        add_account(s, "vault", "vault")
        add_account(s, "acme", "counterparty")
        append_many(s, [draft(i) for i in range(1, 5)])
        make_checkpoint(s, signing_key)
        append_many(s, [draft(i) for i in range(5, N + 1)])
        make_checkpoint(s, signing_key)
    assert verify(engine, signing_key).ok
    drop_append_only_triggers(engine)
    return engine


def verify(engine: Engine, key: Ed25519PrivateKey) -> VerifyReport:
    with Session(engine) as s, s.begin():
        return verify_ledger(s, public_key_pem(key))


def raw(engine: Engine, *statements: str) -> None:
    with engine.begin() as c:
        for statement in statements:
            c.execute(text(statement))


def rows_from(engine: Engine, seq: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Entry and posting rows from ``seq`` on, then delete them (postings first)."""
    et, pt = EntryRow.__table__, PostingRow.__table__
    with engine.begin() as c:
        entries = [dict(r._mapping) for r in c.execute(select(et).where(et.c.seq >= seq))]
        postings = [dict(r._mapping) for r in c.execute(select(pt).where(pt.c.entry_seq >= seq))]
        c.execute(text(f"DELETE FROM postings WHERE entry_seq >= {seq}"))
        c.execute(text(f"DELETE FROM entries WHERE seq >= {seq}"))
    return entries, postings


def reinsert(engine: Engine, entries: list[dict[str, Any]], postings: list[dict[str, Any]]) -> None:
    with engine.begin() as c:
        c.execute(insert(EntryRow), entries)
        c.execute(insert(PostingRow), postings)


def test_untouched_books_verify(books: Engine, signing_key: Ed25519PrivateKey) -> None:
    report = verify(books, signing_key)
    assert report.ok and report.entries == N and report.checkpoints == 2 and report.first_bad_seq is None


def test_changed_amount(books: Engine, signing_key: Ed25519PrivateKey) -> None:
    raw(
        books,
        "UPDATE postings SET amount = amount + 100000 WHERE entry_seq = 3 AND idx = 0",
        "UPDATE postings SET amount = amount - 100000 WHERE entry_seq = 3 AND idx = 1",
    )
    report = verify(books, signing_key)
    assert not report.ok and report.first_bad_seq == 3
    assert "entry 3 does not match its leaf hash" in report.findings[0]
    assert any("checkpoint #1 (tree size 4)" in f and "rewritten" in f for f in report.findings)


def test_unbalanced_amount(books: Engine, signing_key: Ed25519PrivateKey) -> None:
    raw(books, "UPDATE postings SET amount = 1 WHERE entry_seq = 6 AND idx = 0")
    report = verify(books, signing_key)
    assert report.first_bad_seq == 6
    assert any("entry 6 breaks double entry" in f for f in report.findings)


def test_changed_memo(books: Engine, signing_key: Ed25519PrivateKey) -> None:
    raw(books, "UPDATE entries SET memo = 'nothing to see' WHERE seq = 5")
    report = verify(books, signing_key)
    assert report.first_bad_seq == 5
    assert "entry 5 does not match its leaf hash" in report.findings[0]
    assert any("checkpoint #2 (tree size 8)" in f and "entries 5..8" in f for f in report.findings)


def test_deleted_entry(books: Engine, signing_key: Ed25519PrivateKey) -> None:
    raw(books, "DELETE FROM postings WHERE entry_seq = 2", "DELETE FROM entries WHERE seq = 2")
    report = verify(books, signing_key)
    assert report.first_bad_seq == 2
    assert "entries 2..2 are missing" in report.findings[0]


def test_forged_entry_inserted_into_history(books: Engine, signing_key: Ed25519PrivateKey) -> None:
    """A forger who knows the format renumbers entries 3.. and recomputes every leaf hash."""
    with Session(books) as s:
        later = [st for st in iter_stored(s) if st.seq >= 3]
    entries, postings = rows_from(books, 3)
    forged = dict(entries[0], memo="forged", ref=None)
    shifted = [forged] + [dict(e, seq=e["seq"] + 1) for e in entries]
    stored = [dataclasses.replace(later[0], memo="forged"), *later]
    for row, st in zip(shifted, stored, strict=True):
        row["leaf_hash"] = leaf_hash(dataclasses.replace(st, seq=row["seq"]).encode())
    new_postings = [p for p in postings if p["entry_seq"] == 3] + [
        dict(p, entry_seq=p["entry_seq"] + 1) for p in postings
    ]
    reinsert(books, shifted, new_postings)
    report = verify(books, signing_key)
    assert not report.ok and report.entries == N + 1
    assert any("checkpoint #1 (tree size 4)" in f and "entries 1..4" in f for f in report.findings)
    assert any("checkpoint #2 (tree size 8)" in f for f in report.findings)


def test_forged_entry_with_bad_leaf(books: Engine, signing_key: Ed25519PrivateKey) -> None:
    entries, postings = rows_from(books, N)
    forged = dict(entries[0], seq=N + 1, memo="forged", leaf_hash=b"\x11" * 32)
    reinsert(books, [*entries, forged], postings + [dict(p, entry_seq=N + 1) for p in postings])
    report = verify(books, signing_key)
    assert report.first_bad_seq == N + 1
    assert f"entry {N + 1} does not match its leaf hash" in report.findings[0]


def test_swapped_entries(books: Engine, signing_key: Ed25519PrivateKey) -> None:
    entries, postings = rows_from(books, 2)
    by_seq = {e["seq"]: e for e in entries}
    swapped = [dict(by_seq[3], seq=2), dict(by_seq[2], seq=3)] + [e for e in entries if e["seq"] > 3]
    moved = [dict(p, entry_seq={2: 3, 3: 2}.get(p["entry_seq"], p["entry_seq"])) for p in postings]
    reinsert(books, swapped, moved)
    report = verify(books, signing_key)
    assert report.first_bad_seq == 2
    assert "entry 2 does not match its leaf hash" in report.findings[0]
    assert "entry 3 does not match its leaf hash" in report.findings[1]


def test_swapped_entries_with_recomputed_hashes(books: Engine, signing_key: Ed25519PrivateKey) -> None:
    with Session(books) as s:
        stored = {st.seq: st for st in iter_stored(s)}
    entries, postings = rows_from(books, 2)
    by_seq = {e["seq"]: e for e in entries}
    swapped = [
        dict(by_seq[3], seq=2, leaf_hash=leaf_hash(dataclasses.replace(stored[3], seq=2).encode())),
        dict(by_seq[2], seq=3, leaf_hash=leaf_hash(dataclasses.replace(stored[2], seq=3).encode())),
    ] + [e for e in entries if e["seq"] > 3]
    moved = [dict(p, entry_seq={2: 3, 3: 2}.get(p["entry_seq"], p["entry_seq"])) for p in postings]
    reinsert(books, swapped, moved)
    report = verify(books, signing_key)
    assert not report.ok
    assert report.findings[0].startswith("checkpoint #1 (tree size 4) signed root")
    assert "history was rewritten" in report.findings[0]


def test_changed_checkpoint(books: Engine, signing_key: Ed25519PrivateKey) -> None:
    with books.begin() as c:
        c.execute(text("UPDATE checkpoints SET root = :r WHERE tree_size = 4"), {"r": b"\x00" * 32})
    report = verify(books, signing_key)
    assert not report.ok
    assert "checkpoint #1 (tree size 4) does not verify" in report.findings[0]


def test_checkpoint_from_another_key(books: Engine, signing_key: Ed25519PrivateKey) -> None:
    report = verify(books, Ed25519PrivateKey.generate())
    assert not report.ok and len(report.findings) == 2
    assert all("does not verify" in f for f in report.findings)


def test_cut_tail_and_append_different_entries(books: Engine, signing_key: Ed25519PrivateKey) -> None:
    raw(books, "DELETE FROM postings WHERE entry_seq >= 7", "DELETE FROM entries WHERE seq >= 7")
    report = verify(books, signing_key)
    assert report.first_bad_seq == 7
    assert "checkpoint #2 covers 8 entries but the journal now has only 6" in report.findings[0]
    with Session(books) as s, s.begin():
        append(s, draft(70))
        append(s, draft(80))
    report = verify(books, signing_key)
    assert not report.ok and report.entries == N
    assert report.findings == (report.findings[0],) and "checkpoint #2 (tree size 8)" in report.findings[0]
    assert "entries 5..8" in report.findings[0]
