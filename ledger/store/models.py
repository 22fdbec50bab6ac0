"""The database tables, as typed SQLAlchemy 2 models. Only Alembic creates them (``migrations/``).

Journal tables are append-only: the database refuses ``UPDATE`` and ``DELETE`` with triggers
(created by the migration) and the ORM refuses them before they reach it: a session that is
about to flush a changed or deleted :class:`AppendOnly` row, or to run an ORM ``update()`` /
``delete()`` on one, raises :class:`~ledger.errors.LedgerError`.

Other modules add their tables to the same :class:`Base` (import it from here).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Date,
    DateTime,
    ForeignKey,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Text,
    event,
    func,
    select,
    text,
)
from sqlalchemy.engine.default import DefaultExecutionContext
from sqlalchemy.orm import (
    DeclarativeBase,
    Mapped,
    ORMExecuteState,
    Session,
    UOWTransaction,
    mapped_column,
)

from ledger.errors import LedgerError
from ledger.journal.entry import ACCOUNT_TYPES, ALL_KINDS

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

_NOW = text("CURRENT_TIMESTAMP")


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class AppendOnly:
    """Marker: rows of this model are written once and never changed or deleted."""

    __slots__ = ()


class AccountRow(AppendOnly, Base):
    __tablename__ = "accounts"
    __table_args__ = (CheckConstraint(_one_of("type", ACCOUNT_TYPES), name="type"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    type: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=_NOW)


class EntryRow(AppendOnly, Base):
    __tablename__ = "entries"
    __table_args__ = (
        CheckConstraint(_one_of("kind", ALL_KINDS), name="kind"),
        CheckConstraint("seq >= 1", name="seq_positive"),
    )

    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(16), index=True)  # finds the few log records
    date: Mapped[dt.date] = mapped_column(Date)
    memo: Mapped[str] = mapped_column(Text)
    ref: Mapped[str | None] = mapped_column(String(200), unique=True)
    content_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    reverses_seq: Mapped[int | None] = mapped_column(BigInteger, ForeignKey("entries.seq"), unique=True)
    txid: Mapped[str | None] = mapped_column(String(64), index=True)
    outputs: Mapped[str | None] = mapped_column(String(200))
    block_hash: Mapped[str | None] = mapped_column(String(64))
    block_height: Mapped[int | None] = mapped_column(Integer, index=True)  # velocity: recent outflows
    leaf_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=_NOW)


class PostingRow(AppendOnly, Base):
    __tablename__ = "postings"
    __table_args__ = (CheckConstraint("amount <> 0", name="amount_nonzero"),)

    entry_seq: Mapped[int] = mapped_column(BigInteger, ForeignKey("entries.seq"), primary_key=True)
    idx: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    account_id: Mapped[int] = mapped_column(Integer, ForeignKey("accounts.id"), index=True)
    amount: Mapped[int] = mapped_column(BigInteger)


def _next_checkpoint_id(context: DefaultExecutionContext) -> int:
    """Checkpoint ids are 1..N with no gap, so a missing id means a deleted row (``ledger verify``
    reports it). A database sequence would skip the ids of rolled-back inserts on PostgreSQL;
    this takes the next number instead, under the journal lock every checkpoint writer holds."""
    last = context.connection.scalar(select(func.max(CheckpointRow.id)))
    return (last or 0) + 1


class CheckpointRow(AppendOnly, Base):
    __tablename__ = "checkpoints"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, default=_next_checkpoint_id)
    tree_size: Mapped[int] = mapped_column(BigInteger, index=True)
    root: Mapped[bytes] = mapped_column(LargeBinary(32))
    timestamp: Mapped[int] = mapped_column(BigInteger)
    key_id: Mapped[str] = mapped_column(String(16))
    signature: Mapped[bytes] = mapped_column(LargeBinary(64))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=_NOW)


class TreeHeadRow(AppendOnly, Base):
    """A signed tree head (:mod:`ledger.journal.heads`): written by every transaction that appends
    entries, in that transaction, covering them. ``tree_size`` is the key: one head per size."""

    __tablename__ = "tree_heads"
    __table_args__ = (CheckConstraint("tree_size >= 0", name="tree_size_non_negative"),)

    tree_size: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    root: Mapped[bytes] = mapped_column(LargeBinary(32))
    frontier: Mapped[bytes] = mapped_column(LargeBinary)  # 32-byte hashes, largest subtree first
    balances: Mapped[str] = mapped_column(Text)  # canonical JSON, as signed
    timestamp: Mapped[int] = mapped_column(BigInteger)
    key_id: Mapped[str] = mapped_column(String(16))
    signature: Mapped[bytes] = mapped_column(LargeBinary(64))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=_NOW)


APPEND_ONLY_TABLES = ("accounts", "entries", "postings", "checkpoints", "tree_heads")


@event.listens_for(Session, "before_flush")
def _refuse_changes(session: Session, _flush: UOWTransaction, _instances: Any) -> None:
    for obj in session.deleted:
        if isinstance(obj, AppendOnly):
            raise LedgerError(
                f"append-only: refusing to delete a {type(obj).__name__}; "
                "record a reversal (`reserve reverse SEQ`) instead"
            )
    for obj in session.dirty:
        if isinstance(obj, AppendOnly) and session.is_modified(obj):
            raise LedgerError(
                f"append-only: refusing to change a {type(obj).__name__}; "
                "record a reversal (`reserve reverse SEQ`) and a new entry instead"
            )


@event.listens_for(Session, "do_orm_execute")
def _refuse_bulk_changes(state: ORMExecuteState) -> None:
    mapper = state.bind_mapper
    if (state.is_update or state.is_delete) and mapper is not None and issubclass(mapper.class_, AppendOnly):
        raise LedgerError(
            f"append-only: refusing an ORM {'update' if state.is_update else 'delete'} "
            f"of {mapper.class_.__name__} rows"
        )
