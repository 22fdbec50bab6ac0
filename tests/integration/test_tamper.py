"""Tampering behind the application's back (raw SQL with the append-only triggers dropped on
SQLite, or disabled by the owner on PostgreSQL) is found by verify_ledger, which says what is
wrong and names the first bad entry where that is meaningful: the journal itself, checkpoints
(also ones held outside the database), stored audits and vault definitions."""

from __future__ import annotations

import dataclasses
import os
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine, insert, select, text
from sqlalchemy.orm import Session

from custody.descriptor import MultisigDescriptor
from custody.keygen import test_key_from_seed
from custody.network import Network
from custody.policy import Policy
from ledger.chain.vaults import add_vault, get_vault, list_vaults, retire_vault
from ledger.errors import TamperDetected
from ledger.journal.accounts import add_account
from ledger.journal.book import append, append_many, iter_leaf_hashes, iter_stored, last_seq
from ledger.journal.checkpoint import Checkpoint, public_key_pem
from ledger.journal.entry import EntryDraft, Posting
from ledger.journal.merkle import leaf_hash, root_of
from ledger.journal.proofs import make_checkpoint
from ledger.journal.records import RecordKind, append_record, audit_body
from ledger.journal.verify import VerifyReport, stored_checkpoints, verify_ledger
from ledger.store.audit_models import AuditRow
from ledger.store.db import drop_append_only_ddl
from ledger.store.models import APPEND_ONLY_TABLES, EntryRow, PostingRow
from ledger.store.vault_models import VAULT_TABLES
from tests.fixtures.db import unsealed
from tests.fixtures.reserve import Reserve

N = 8


def draft(i: int) -> EntryDraft:
    return EntryDraft(
        kind="deposit",
        memo=f"deposit {i}",
        postings=(Posting("bank", 1000 * i), Posting("acme", -1000 * i)),
    )


@pytest.fixture
def books(engine: Engine, signing_key: Ed25519PrivateKey) -> Engine:
    """Eight entries with checkpoints at sizes 4 and 8; triggers dropped, ready to tamper."""
    with Session(engine) as s, s.begin():
        add_account(s, "bank", "custodian")
        add_account(s, "acme", "counterparty")
        append_many(s, [draft(i) for i in range(1, 5)])
        make_checkpoint(s, signing_key)
        append_many(s, [draft(i) for i in range(5, N + 1)])
        make_checkpoint(s, signing_key)
    assert verify(engine, signing_key).ok
    disable_append_only(engine)
    return engine


def disable_append_only(engine: Engine) -> None:
    """What a tamperer with the owner's access does first: SQLite, drop the triggers; PostgreSQL,
    ``ALTER TABLE ... DISABLE TRIGGER USER`` (the owner may)."""
    tables = (*APPEND_ONLY_TABLES, *VAULT_TABLES, "audits")
    with engine.begin() as c:
        for table in tables:
            if engine.dialect.name == "postgresql":
                c.exec_driver_sql(f"ALTER TABLE {table} DISABLE TRIGGER USER")
            else:
                for statement in drop_append_only_ddl("sqlite", table):
                    c.exec_driver_sql(statement)


def verify(engine: Engine, key: Ed25519PrivateKey, *, outside: tuple[Checkpoint, ...] = ()) -> VerifyReport:
    with Session(engine) as s, s.begin():
        return verify_ledger(s, public_key_pem(key), extra_checkpoints=outside)


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
    assert not report.ok and len(report.findings) == 5  # two checkpoints, two tree heads
    assert all("does not verify" in f for f in report.findings[:4])
    assert report.findings[4] == (
        "entries 1..8 are not covered by a head signed by the ledger key (written outside the service)"
    )


def test_cut_tail_and_append_different_entries(books: Engine, signing_key: Ed25519PrivateKey) -> None:
    raw(books, "DELETE FROM postings WHERE entry_seq >= 7", "DELETE FROM entries WHERE seq >= 7")
    report = verify(books, signing_key)
    assert report.first_bad_seq == 7
    assert "checkpoint #2 covers 8 entries but the journal now has only 6" in report.findings[0]
    with Session(unsealed(books)) as s, s.begin():  # the tamperer has no key
        append(s, draft(70))
        append(s, draft(80))
    report = verify(books, signing_key)
    assert not report.ok and report.entries == N
    assert "checkpoint #2 (tree size 8)" in report.findings[0] and "entries 5..8" in report.findings[0]
    assert report.findings[1].startswith("tree head of size 8 signed root") and len(report.findings) == 2


def test_several_trusted_keys(books: Engine, signing_key: Ed25519PrivateKey) -> None:
    other, third = (public_key_pem(Ed25519PrivateKey.generate()) for _ in range(2))
    with Session(books) as s, s.begin():
        assert verify_ledger(s, [other, public_key_pem(signing_key)]).ok
        report = verify_ledger(s, [other, third])
    assert not report.ok and all("not one of the trusted keys" in f for f in report.findings[:-1])
    assert "not covered by a head signed by the ledger key" in report.findings[-1]


# --- vaults, audits, deleted checkpoints, outside checkpoints ----------------------------------------

R = Network.REGTEST


def _descriptor() -> MultisigDescriptor:
    return MultisigDescriptor.from_keys(2, [test_key_from_seed(os.urandom(32), R) for _ in range(3)])


def _store_audit(s: Session, key: Ed25519PrivateKey, ok: bool) -> int:
    """What ``reserve audit`` stores: a checkpoint, the audit row and its record in the log."""
    make_checkpoint(s, key)
    checkpoint_id = stored_checkpoints(s)[-1][0]
    row = AuditRow(
        tree_size=last_seq(s),
        root=root_of(h for _, h in iter_leaf_hashes(s)),
        checkpoint_id=checkpoint_id,
        min_conf=1,
        height=150,
        best_block="ab" * 32,
        findings=0 if ok else 2,
        ok=ok,
        report='{"findings": []}' if ok else '{"findings": ["a", "b"]}',
    )
    s.add(row)
    s.flush()
    body = audit_body(
        audit_id=row.id,
        tree_size=row.tree_size,
        root=row.root,
        checkpoint_id=row.checkpoint_id,
        height=row.height,
        best_block=row.best_block,
        min_conf=row.min_conf,
        findings=row.findings,
        ok=row.ok,
        report=row.report,
    )
    append_record(s, RecordKind.AUDIT, body)
    return row.id


@pytest.fixture
def reserve_books(engine: Engine, signing_key: Ed25519PrivateKey) -> Engine:
    """Vaults cold and hot (hot retired), money entries, three checkpoints and a failed audit
    (its own checkpoint #3, then its record), then a last entry and checkpoint #4; tamperable."""
    with Session(engine) as s, s.begin():
        add_vault(s, "cold", _descriptor(), ("alice", "bob", "carol"), R, Policy(), birthday_height=7)
        add_vault(s, "hot", _descriptor(), ("alice", "bob", "carol"), R, Policy())
        retire_vault(s, "hot", "keys rotated")
        add_account(s, "bank", "custodian")
        add_account(s, "acme", "counterparty")
        append_many(s, [draft(i) for i in range(1, 3)])
        make_checkpoint(s, signing_key)  # 1
        append_many(s, [draft(i) for i in range(3, 5)])
        make_checkpoint(s, signing_key)  # 2
        _store_audit(s, signing_key, ok=False)  # checkpoint 3, audit 1
        append(s, draft(5))
        make_checkpoint(s, signing_key)  # 4
    assert verify(engine, signing_key).ok
    disable_append_only(engine)
    return engine


def test_vault_descriptor_replaced(reserve_books: Engine, signing_key: Ed25519PrivateKey) -> None:
    """`UPDATE vaults SET descriptor=...` (other keys): verify finds it, and no read hands out
    the attacker's descriptor (`vault address` reads through get_vault)."""
    with reserve_books.begin() as c:
        c.execute(text("UPDATE vaults SET descriptor = :d WHERE name = 'cold'"), {"d": str(_descriptor())})
    report = verify(reserve_books, signing_key)
    assert not report.ok
    assert any(f.startswith("vault 'cold': its descriptor in the database") for f in report.findings)
    with Session(reserve_books) as s:
        with pytest.raises(TamperDetected, match="vault 'cold': its descriptor in the database"):
            get_vault(s, "cold")
        with pytest.raises(TamperDetected, match="vault 'cold'"):
            list_vaults(s)
        assert get_vault(s, "hot").retired  # an untouched vault still reads


def test_vault_key_holder_changed(reserve_books: Engine, signing_key: Ed25519PrivateKey) -> None:
    with reserve_books.begin() as c:
        c.execute(
            text(
                "UPDATE vault_keys SET holder = 'mallory' WHERE position = 1 "
                "AND vault_id = (SELECT id FROM vaults WHERE name = 'cold')"
            )
        )
    report = verify(reserve_books, signing_key)
    assert [f for f in report.findings if "key 1 holder" in f] and not report.ok
    assert "'mallory'" in report.findings[0] and "'bob'" in report.findings[0]
    with Session(reserve_books) as s, pytest.raises(TamperDetected, match="key 1 holder"):
        get_vault(s, "cold")


def test_vault_retirement_deleted(reserve_books: Engine, signing_key: Ed25519PrivateKey) -> None:
    """Deleting a retirement would make a retired vault (and its keys) active again."""
    with reserve_books.begin() as c:
        c.execute(text("DELETE FROM vault_retirements"))
    report = verify(reserve_books, signing_key)
    assert not report.ok
    assert any("vault 'hot' was retired by record" in f and "missing" in f for f in report.findings)
    with Session(reserve_books) as s:
        with pytest.raises(TamperDetected, match="vault 'hot' was retired"):
            get_vault(s, "hot")
        with pytest.raises(TamperDetected):
            list_vaults(s)


def test_vault_row_inserted_or_deleted(reserve_books: Engine, signing_key: Ed25519PrivateKey) -> None:
    with reserve_books.begin() as c:
        c.execute(text("UPDATE vaults SET name = 'warm' WHERE name = 'cold'"))
    findings = verify(reserve_books, signing_key).findings
    assert any("vault 'cold' was defined by record" in f and "no row" in f for f in findings)
    assert any("vault 'warm' has a row in the vaults table but no vault-added record" in f for f in findings)


def test_audit_ok_flipped(reserve_books: Engine, signing_key: Ed25519PrivateKey) -> None:
    with reserve_books.begin() as c:
        c.execute(text("UPDATE audits SET ok = :ok"), {"ok": True})
    report = verify(reserve_books, signing_key)
    assert not report.ok
    assert [f for f in report.findings if f.startswith("audit #1: its ok in the database (True)")]


def test_audit_report_changed(reserve_books: Engine, signing_key: Ed25519PrivateKey) -> None:
    with reserve_books.begin() as c:
        c.execute(text("UPDATE audits SET report = '{\"findings\": []}', findings = 0"))
    findings = verify(reserve_books, signing_key).findings
    assert any(f.startswith("audit #1: its findings") for f in findings)
    assert any(f.startswith("audit #1: its report") for f in findings)


def test_audit_row_deleted(reserve_books: Engine, signing_key: Ed25519PrivateKey) -> None:
    with reserve_books.begin() as c:
        c.execute(text("DELETE FROM audits"))
    with Session(reserve_books) as s:
        record_seq = s.scalars(select(EntryRow.seq).where(EntryRow.kind == "audit")).one()
    assert verify(reserve_books, signing_key).findings == (
        f"audit #1 was recorded by audit record #{record_seq} but its row is missing: it "
        "was deleted behind the application's back",
    )


def test_checkpoint_deleted_from_the_middle(reserve_books: Engine, signing_key: Ed25519PrivateKey) -> None:
    with reserve_books.begin() as c:
        c.execute(text("DELETE FROM checkpoints WHERE id = 2"))
    report = verify(reserve_books, signing_key)
    assert not report.ok and report.checkpoints == 3
    assert report.findings == (
        "checkpoint ids jump from 1 to 3: checkpoint(s) #2..#2 were deleted (checkpoints are numbered 1..N)",
    )


def test_rolled_back_checkpoint_leaves_no_gap(engine: Engine, signing_key: Ed25519PrivateKey) -> None:
    """A checkpoint written by a transaction that then failed must not look like a deleted one
    (a PostgreSQL sequence would skip its id)."""
    with Session(engine) as s, s.begin():
        add_account(s, "bank", "custodian")
        add_account(s, "acme", "counterparty")
        append(s, draft(1))
        make_checkpoint(s, signing_key)
    with pytest.raises(RuntimeError, match="after the checkpoint"), Session(engine) as s, s.begin():
        append(s, draft(2))
        make_checkpoint(s, signing_key)
        raise RuntimeError("the command failed after the checkpoint")
    with Session(engine) as s, s.begin():
        append(s, draft(3))
        make_checkpoint(s, signing_key)
        assert [cp_id for cp_id, _ in stored_checkpoints(s)] == [1, 2]
    assert verify(engine, signing_key).ok


def test_cut_tail_caught_by_outside_checkpoint(reserve_books: Engine, signing_key: Ed25519PrivateKey) -> None:
    """The audit, its record, the last entries and every checkpoint after #2 deleted together:
    the stored rows agree with each other again, but a checkpoint exported before is violated."""
    with Session(reserve_books) as s:
        exported = [cp for _, cp in stored_checkpoints(s)]
        size = last_seq(s)
    assert all(isinstance(cp, Checkpoint) for cp in exported)
    latest = exported[-1]
    assert isinstance(latest, Checkpoint) and latest.tree_size == size
    with reserve_books.begin() as c:
        audit_seq = c.execute(text("SELECT seq FROM entries WHERE kind = 'audit'")).scalar_one()
        c.execute(text("DELETE FROM audits"))
        c.execute(text("DELETE FROM checkpoints WHERE id >= 3"))
        c.execute(text(f"DELETE FROM postings WHERE entry_seq >= {audit_seq}"))
        c.execute(text(f"DELETE FROM entries WHERE seq >= {audit_seq}"))
        c.execute(text(f"DELETE FROM tree_heads WHERE tree_size >= {audit_seq}"))
    assert verify(reserve_books, signing_key).ok  # what nothing outside the database can catch
    report = verify(reserve_books, signing_key, outside=(latest,))
    assert not report.ok and report.outside_checkpoints == 1
    assert report.findings == (
        f"outside checkpoint 1 (timestamp {latest.timestamp}) covers {size} entries but the journal "
        f"now has only {audit_seq - 1}: entries {audit_seq}..{size} were removed",
    )
    assert report.first_bad_seq == audit_seq


def test_rewritten_history_caught_by_outside_checkpoint(
    reserve_books: Engine, signing_key: Ed25519PrivateKey
) -> None:
    """Every checkpoint deleted and an entry rewritten with its leaf hash recomputed."""
    with Session(reserve_books) as s:
        latest = stored_checkpoints(s)[-1][1]
        stored = next(st for st in iter_stored(s) if st.kind == "deposit")
    assert isinstance(latest, Checkpoint)
    forged = dataclasses.replace(stored, memo="rewritten")
    with reserve_books.begin() as c:
        c.execute(text("DELETE FROM audits"))
        c.execute(text("DELETE FROM entries WHERE kind = 'audit'"))
        c.execute(text("DELETE FROM checkpoints"))
        c.execute(
            text("UPDATE entries SET memo = 'rewritten', leaf_hash = :h WHERE seq = :seq"),
            {"h": leaf_hash(forged.encode()), "seq": stored.seq},
        )
    report = verify(reserve_books, signing_key, outside=(latest,))
    assert not report.ok and report.checkpoints == 0
    assert any(f.startswith("outside checkpoint 1") for f in report.findings)


def test_vault_tampering_with_other_vaults_refuses_a_new_vault(reserve_books: Engine) -> None:
    """The policy check of a new vault trusts the other vaults' keys only once they are checked."""
    with reserve_books.begin() as c:
        c.execute(text("UPDATE vault_keys SET xpub = 'tpubforged' WHERE position = 0"))
    with pytest.raises(TamperDetected, match="key 0 xpub"), Session(reserve_books) as s, s.begin():
        add_vault(s, "new", _descriptor(), ("alice", "bob", "carol"), R, Policy())


def test_cli_refuses_a_replaced_descriptor(reserve: Reserve) -> None:
    """`UPDATE vaults SET descriptor=...` with other keys: `ledger verify` exits 1 naming the
    vault and field, and `vault address` hands out nothing (exit 2)."""
    vault = reserve.add_vault("cold")
    honest = vault.address(0)
    attacker = _descriptor()
    engine = reserve.engine()
    try:
        disable_append_only(engine)
        with engine.begin() as c:
            c.execute(
                text("UPDATE vaults SET descriptor = :d WHERE name = :n"),
                {"d": str(attacker), "n": vault.name},
            )
    finally:
        engine.dispose()
    r = reserve.run("ledger", "verify")
    assert r.code == 1 and f"vault '{vault.name}': its descriptor in the database" in r.out + r.err
    r = reserve.run("vault", "address", vault.name)
    assert r.code == 2 and f"vault '{vault.name}': its descriptor in the database" in r.err
    assert attacker.address(0, False, R) not in r.out + r.err and honest not in r.out
