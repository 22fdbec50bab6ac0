"""Signed tree heads (append-only): every write transaction of the service ends with one, signed
by the ledger key, covering the entries it appended (``ledger.journal.heads``).

The migration creates the table only: it has no key. ``reserve init``, which has it, then signs
one head over the entries written before (``ledger.journal.proofs.seal_existing``).

Revision ID: 0006_tree_heads
Revises: 0005_spending
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from ledger.store.db import append_only_ddl, drop_append_only_ddl

revision: str = "0006_tree_heads"
down_revision: str | None = "0005_spending"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "tree_heads",
        sa.Column("tree_size", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("root", sa.LargeBinary(length=32), nullable=False),
        sa.Column("frontier", sa.LargeBinary(), nullable=False),
        sa.Column("balances", sa.Text(), nullable=False),
        sa.Column("timestamp", sa.BigInteger(), nullable=False),
        sa.Column("key_id", sa.String(length=16), nullable=False),
        sa.Column("signature", sa.LargeBinary(length=64), nullable=False),
        sa.Column(
            "created_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
        ),
        sa.CheckConstraint("tree_size >= 0", name=op.f("ck_tree_heads_tree_size_non_negative")),
        sa.PrimaryKeyConstraint("tree_size", name=op.f("pk_tree_heads")),
    )
    for statement in append_only_ddl(op.get_bind().dialect.name, "tree_heads"):
        op.execute(statement)


def downgrade() -> None:
    for statement in drop_append_only_ddl(op.get_bind().dialect.name, "tree_heads"):
        op.execute(statement)
    op.drop_table("tree_heads")
