"""The journal: accounts, entries, postings, checkpoints, and their append-only triggers.

Revision ID: 0001_journal
Revises:
Create Date: 2024-06-01
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from ledger.store.db import append_only_ddl, drop_append_only_ddl, pg_append_only_function_ddl

revision: str = "0001_journal"
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("accounts", "entries", "postings", "checkpoints")
_NOW = sa.text("CURRENT_TIMESTAMP")
ACCOUNT_TYPES = ("vault", "custodian", "counterparty", "income", "expense", "equity")
ENTRY_KINDS = (
    "opening",
    "deposit",
    "withdrawal",
    "transfer",
    "fee",
    "mining",
    "adjustment",
    "reversal",
)


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    op.create_table(
        "accounts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("type", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=_NOW, nullable=False),
        sa.CheckConstraint(_one_of("type", ACCOUNT_TYPES), name=op.f("ck_accounts_type")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_accounts")),
        sa.UniqueConstraint("name", name=op.f("uq_accounts_name")),
    )
    op.create_table(
        "entries",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("memo", sa.Text(), nullable=False),
        sa.Column("ref", sa.String(length=200), nullable=True),
        sa.Column("content_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("reverses_seq", sa.BigInteger(), nullable=True),
        sa.Column("txid", sa.String(length=64), nullable=True),
        sa.Column("outputs", sa.String(length=200), nullable=True),
        sa.Column("block_hash", sa.String(length=64), nullable=True),
        sa.Column("block_height", sa.Integer(), nullable=True),
        sa.Column("leaf_hash", sa.LargeBinary(length=32), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=_NOW, nullable=False),
        sa.CheckConstraint(_one_of("kind", ENTRY_KINDS), name=op.f("ck_entries_kind")),
        sa.CheckConstraint("seq >= 1", name=op.f("ck_entries_seq_positive")),
        sa.ForeignKeyConstraint(
            ["reverses_seq"], ["entries.seq"], name=op.f("fk_entries_reverses_seq_entries")
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_entries")),
        sa.UniqueConstraint("ref", name=op.f("uq_entries_ref")),
        sa.UniqueConstraint("reverses_seq", name=op.f("uq_entries_reverses_seq")),
    )
    op.create_index(op.f("ix_entries_txid"), "entries", ["txid"], unique=False)
    op.create_table(
        "postings",
        sa.Column("entry_seq", sa.BigInteger(), nullable=False),
        sa.Column("idx", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.CheckConstraint("amount <> 0", name=op.f("ck_postings_amount_nonzero")),
        sa.ForeignKeyConstraint(
            ["account_id"], ["accounts.id"], name=op.f("fk_postings_account_id_accounts")
        ),
        sa.ForeignKeyConstraint(["entry_seq"], ["entries.seq"], name=op.f("fk_postings_entry_seq_entries")),
        sa.PrimaryKeyConstraint("entry_seq", "idx", name=op.f("pk_postings")),
    )
    op.create_index(op.f("ix_postings_account_id"), "postings", ["account_id"], unique=False)
    op.create_table(
        "checkpoints",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("tree_size", sa.BigInteger(), nullable=False),
        sa.Column("root", sa.LargeBinary(length=32), nullable=False),
        sa.Column("timestamp", sa.BigInteger(), nullable=False),
        sa.Column("key_id", sa.String(length=16), nullable=False),
        sa.Column("signature", sa.LargeBinary(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=_NOW, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_checkpoints")),
    )
    op.create_index(op.f("ix_checkpoints_tree_size"), "checkpoints", ["tree_size"], unique=False)

    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        op.execute(pg_append_only_function_ddl())
    for table in TABLES:
        for statement in append_only_ddl(dialect, table):
            op.execute(statement)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for table in TABLES:
        for statement in drop_append_only_ddl(dialect, table):
            op.execute(statement)
    op.drop_index(op.f("ix_checkpoints_tree_size"), table_name="checkpoints")
    op.drop_table("checkpoints")
    op.drop_index(op.f("ix_postings_account_id"), table_name="postings")
    op.drop_table("postings")
    op.drop_index(op.f("ix_entries_txid"), table_name="entries")
    op.drop_table("entries")
    op.drop_table("accounts")
    if dialect == "postgresql":
        op.execute("DROP FUNCTION IF EXISTS reserve_append_only()")
