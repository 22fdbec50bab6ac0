"""Journal rows cannot be changed or deleted: the ORM refuses, and so does the database."""

from __future__ import annotations

import pytest
from sqlalchemy import Engine, delete, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from ledger.errors import LedgerError
from ledger.journal.accounts import add_account
from ledger.journal.book import append
from ledger.journal.entry import EntryDraft, Posting
from ledger.journal.proofs import make_checkpoint
from ledger.store.models import APPEND_ONLY_TABLES, AccountRow, Base, CheckpointRow, EntryRow, PostingRow
from tests.fixtures.db import snapshot


@pytest.fixture
def filled(engine: Engine, signing_key: object) -> Engine:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    assert isinstance(signing_key, Ed25519PrivateKey)
    with Session(engine) as s, s.begin():
        add_account(s, "bank", "custodian")
        add_account(s, "acme", "counterparty")
        append(s, EntryDraft(kind="deposit", memo="in", postings=(Posting("bank", 5), Posting("acme", -5))))
        make_checkpoint(s, signing_key)
    return engine


@pytest.mark.parametrize("model", [AccountRow, EntryRow, PostingRow, CheckpointRow])
def test_orm_refuses_update_and_delete(filled: Engine, model: type[Base]) -> None:
    before = snapshot(filled)
    with pytest.raises(LedgerError, match="append-only: refusing to change"), Session(filled) as s, s.begin():
        row = s.scalars(select(model)).first()
        column = {AccountRow: "name", EntryRow: "memo", PostingRow: "amount", CheckpointRow: "timestamp"}[
            model
        ]
        setattr(row, column, 7 if column in ("amount", "timestamp") else "changed")
        s.flush()
    with pytest.raises(LedgerError, match="append-only: refusing to delete"), Session(filled) as s, s.begin():
        s.delete(s.scalars(select(model)).first())
        s.flush()
    with pytest.raises(LedgerError, match="append-only: refusing an ORM"), Session(filled) as s, s.begin():
        s.execute(delete(model))
    with pytest.raises(LedgerError, match="append-only: refusing an ORM"), Session(filled) as s, s.begin():
        s.execute(update(model).values(id=1) if hasattr(model, "id") else update(model).values(kind="fee"))
    assert snapshot(filled) == before


@pytest.mark.parametrize("table", APPEND_ONLY_TABLES)
def test_database_refuses_raw_update_and_delete(filled: Engine, table: str) -> None:
    before = snapshot(filled)
    column = {
        "accounts": "name",
        "entries": "memo",
        "postings": "amount",
        "checkpoints": "key_id",
        "tree_heads": "key_id",
    }[table]
    value = "1" if column == "amount" else "'x'"
    statements = [f"UPDATE {table} SET {column} = {value}", f"DELETE FROM {table}"]
    if filled.dialect.name == "postgresql":
        statements.append(f"TRUNCATE {table} CASCADE")
    for statement in statements:
        with pytest.raises(DBAPIError, match="append-only"), filled.begin() as c:
            c.exec_driver_sql(statement)
    assert snapshot(filled) == before


def test_inserts_still_allowed(filled: Engine) -> None:
    with Session(filled) as s, s.begin():
        e = append(
            s, EntryDraft(kind="deposit", memo="more", postings=(Posting("bank", 1), Posting("acme", -1)))
        )
    assert e.seq == 2
