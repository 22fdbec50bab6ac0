"""Vaults, their keys and retirements, with the append-only triggers of 0001.

Revision ID: 0002_vaults
Revises: 0001_journal
Create Date: 2024-06-02
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from ledger.store.db import append_only_ddl, drop_append_only_ddl

revision: str = "0002_vaults"
down_revision: str | None = "0001_journal"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("vaults", "vault_keys", "vault_retirements")
_NOW = sa.text("CURRENT_TIMESTAMP")
NETWORKS = ("main", "test", "testnet4", "signet", "regtest")


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def upgrade() -> None:
    op.create_table(
        "vaults",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("threshold", sa.Integer(), nullable=False),
        sa.Column("descriptor", sa.Text(), nullable=False),
        sa.Column("network", sa.String(length=16), nullable=False),
        sa.Column("birthday_height", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), server_default=_NOW, nullable=False),
        sa.CheckConstraint(_one_of("kind", ("wsh",)), name=op.f("ck_vaults_kind")),
        sa.CheckConstraint(_one_of("network", NETWORKS), name=op.f("ck_vaults_network")),
        sa.CheckConstraint("threshold >= 1", name=op.f("ck_vaults_threshold_positive")),
        sa.CheckConstraint(
            "birthday_height IS NULL OR birthday_height >= 0", name=op.f("ck_vaults_birthday")
        ),
        sa.ForeignKeyConstraint(["account_id"], ["accounts.id"], name=op.f("fk_vaults_account_id_accounts")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vaults")),
        sa.UniqueConstraint("account_id", name=op.f("uq_vaults_account_id")),
        sa.UniqueConstraint("name", name=op.f("uq_vaults_name")),
    )
    op.create_table(
        "vault_keys",
        sa.Column("vault_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("holder", sa.String(length=100), nullable=False),
        sa.Column("key", sa.Text(), nullable=False),
        sa.Column("xpub", sa.String(length=120), nullable=False),
        sa.Column("fingerprint", sa.String(length=8), nullable=True),
        sa.CheckConstraint("position >= 0", name=op.f("ck_vault_keys_position")),
        sa.ForeignKeyConstraint(["vault_id"], ["vaults.id"], name=op.f("fk_vault_keys_vault_id_vaults")),
        sa.PrimaryKeyConstraint("vault_id", "position", name=op.f("pk_vault_keys")),
    )
    op.create_index(op.f("ix_vault_keys_xpub"), "vault_keys", ["xpub"], unique=False)
    op.create_table(
        "vault_retirements",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("vault_id", sa.Integer(), nullable=False),
        sa.Column("retired_at", sa.DateTime(timezone=True), server_default=_NOW, nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["vault_id"], ["vaults.id"], name=op.f("fk_vault_retirements_vault_id_vaults")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_vault_retirements")),
        sa.UniqueConstraint("vault_id", name=op.f("uq_vault_retirements_vault_id")),
    )

    # 0001 created the PostgreSQL trigger function (reserve_append_only) the triggers call.
    dialect = op.get_bind().dialect.name
    for table in TABLES:
        for statement in append_only_ddl(dialect, table):
            op.execute(statement)


def downgrade() -> None:
    dialect = op.get_bind().dialect.name
    for table in TABLES:
        for statement in drop_append_only_ddl(dialect, table):
            op.execute(statement)
    op.drop_table("vault_retirements")
    op.drop_index(op.f("ix_vault_keys_xpub"), table_name="vault_keys")
    op.drop_table("vault_keys")
    op.drop_table("vaults")
