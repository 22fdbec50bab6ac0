"""Stored audits, append-only.

Revision ID: 0003_audits
Revises: 0002_vaults
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from ledger.store.db import append_only_ddl, drop_append_only_ddl

revision: str = "0003_audits"
down_revision: str | None = "0002_vaults"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "audits",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column(
            "audited_at",
            sa.DateTime(timezone=True),
            server_default=sa.text("CURRENT_TIMESTAMP"),
            nullable=False,
        ),
        sa.Column("tree_size", sa.BigInteger(), nullable=False),
        sa.Column("root", sa.LargeBinary(length=32), nullable=False),
        sa.Column("checkpoint_id", sa.Integer(), nullable=True),
        sa.Column("min_conf", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("best_block", sa.String(length=64), nullable=False),
        sa.Column("findings", sa.Integer(), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("report", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["checkpoint_id"], ["checkpoints.id"], name=op.f("fk_audits_checkpoint_id_checkpoints")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audits")),
    )
    for statement in append_only_ddl(op.get_bind().dialect.name, "audits"):
        op.execute(statement)


def downgrade() -> None:
    for statement in drop_append_only_ddl(op.get_bind().dialect.name, "audits"):
        op.execute(statement)
    op.drop_table("audits")
