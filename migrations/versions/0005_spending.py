"""Spending policy, spends and attestations (append-only), their log record kinds, and an index on
``entries.block_height`` for the velocity limit's query of recent outflows.

Revision ID: 0005_spending
Revises: 0004_records
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from ledger.store.db import append_only_ddl, drop_append_only_ddl
from ledger.store.entry_kinds import set_entry_kinds

revision: str = "0005_spending"
down_revision: str | None = "0004_records"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MONEY_KINDS = ("opening", "deposit", "withdrawal", "transfer", "fee", "mining", "adjustment", "reversal")
OLD_RECORD_KINDS = ("vault-added", "vault-retired", "audit", "addresses-issued", "key-rotated")
NEW_RECORD_KINDS = ("policy-changed", "spend", "attestation")
TABLES = ("policy_changes", "spend_events", "spend_inputs", "attestations")


def _now() -> sa.Column[object]:
    return sa.Column(
        "created_at", sa.DateTime(timezone=True), server_default=sa.text("CURRENT_TIMESTAMP"), nullable=False
    )


def _record_seq(table: str) -> tuple[sa.Column[object], sa.ForeignKeyConstraint]:
    return (
        sa.Column("record_seq", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["record_seq"], ["entries.seq"], name=op.f(f"fk_{table}_record_seq_entries")),
    )


def upgrade() -> None:
    set_entry_kinds(MONEY_KINDS + OLD_RECORD_KINDS + NEW_RECORD_KINDS)
    op.create_index(op.f("ix_entries_block_height"), "entries", ["block_height"], unique=False)
    op.create_table(
        "policy_changes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("vault", sa.String(length=100), nullable=False),
        sa.Column("change", sa.String(length=20), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("loosens", sa.Boolean(), nullable=False),
        sa.Column("requested_height", sa.Integer(), nullable=False),
        sa.Column("effective_height", sa.Integer(), nullable=False),
        *_record_seq("policy_changes"),
        _now(),
        sa.CheckConstraint(
            "change IN ('set', 'allow-add', 'allow-remove')", name=op.f("ck_policy_changes_change")
        ),
        sa.CheckConstraint(
            "effective_height >= requested_height", name=op.f("ck_policy_changes_effective_after_request")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_policy_changes")),
    )
    op.create_index(op.f("ix_policy_changes_vault"), "policy_changes", ["vault"], unique=False)
    op.create_table(
        "spend_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("spend", sa.Integer(), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("vault", sa.String(length=100), nullable=False),
        sa.Column("txid", sa.String(length=64), nullable=False),
        sa.Column("psbt", sa.Text(), nullable=False),
        sa.Column("psbt_sha256", sa.String(length=64), nullable=False),
        sa.Column("amount", sa.BigInteger(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("detail", sa.Text(), nullable=False),
        *_record_seq("spend_events"),
        _now(),
        sa.CheckConstraint(
            "state IN ('proposed', 'signed', 'broadcast', 'confirmed', 'cancelled', 'conflicted')",
            name=op.f("ck_spend_events_state"),
        ),
        sa.CheckConstraint("spend >= 1 AND step >= 0", name=op.f("ck_spend_events_numbers")),
        sa.CheckConstraint("amount >= 0", name=op.f("ck_spend_events_amount")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_spend_events")),
        sa.UniqueConstraint("spend", "step", name=op.f("uq_spend_events_spend")),
    )
    op.create_index(op.f("ix_spend_events_vault"), "spend_events", ["vault"], unique=False)
    op.create_index(op.f("ix_spend_events_txid"), "spend_events", ["txid"], unique=False)
    op.create_table(
        "spend_inputs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("spend", sa.Integer(), nullable=False),
        sa.Column("txid", sa.String(length=64), nullable=False),
        sa.Column("vout", sa.Integer(), nullable=False),
        sa.CheckConstraint("vout >= 0", name=op.f("ck_spend_inputs_vout")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_spend_inputs")),
        sa.UniqueConstraint("spend", "txid", "vout", name=op.f("uq_spend_inputs_spend")),
    )
    op.create_index("ix_spend_inputs_outpoint", "spend_inputs", ["txid", "vout"], unique=False)
    op.create_table(
        "attestations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("height", sa.Integer(), nullable=False),
        sa.Column("block_hash", sa.String(length=64), nullable=False),
        sa.Column("document", sa.Text(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        *_record_seq("attestations"),
        _now(),
        sa.CheckConstraint("height >= 0", name=op.f("ck_attestations_height")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attestations")),
    )
    for table in TABLES:
        for statement in append_only_ddl(op.get_bind().dialect.name, table):
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().scalar(
        sa.text("SELECT count(*) FROM entries WHERE kind IN :k").bindparams(
            sa.bindparam("k", NEW_RECORD_KINDS, expanding=True)
        )
    ):
        raise RuntimeError(
            "the journal holds spending or attestation records; they cannot be removed from an "
            "append-only log, so 0005_spending cannot be downgraded"
        )
    for table in reversed(TABLES):
        for statement in drop_append_only_ddl(op.get_bind().dialect.name, table):
            op.execute(statement)
        op.drop_table(table)
    op.drop_index(op.f("ix_entries_block_height"), table_name="entries")
    set_entry_kinds(MONEY_KINDS + OLD_RECORD_KINDS)
