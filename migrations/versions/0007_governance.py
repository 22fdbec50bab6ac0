"""Governed changes: the ``change-proposed``, ``approval`` and ``change-applied`` log record kinds.

No table: a governed change, its approvals and its application live in the Merkle log only
(:mod:`ledger.governance.changes`), each approval re-verified (BIP-322) whenever it is read.

Revision ID: 0007_governance
Revises: 0006_tree_heads
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from ledger.store.entry_kinds import set_entry_kinds

revision: str = "0007_governance"
down_revision: str | None = "0006_tree_heads"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MONEY_KINDS = ("opening", "deposit", "withdrawal", "transfer", "fee", "mining", "adjustment", "reversal")
OLD_RECORD_KINDS = (
    "vault-added",
    "vault-retired",
    "audit",
    "addresses-issued",
    "key-rotated",
    "policy-changed",
    "spend",
    "attestation",
)
NEW_RECORD_KINDS = ("change-proposed", "approval", "change-applied")


def upgrade() -> None:
    set_entry_kinds(MONEY_KINDS + OLD_RECORD_KINDS + NEW_RECORD_KINDS)


def downgrade() -> None:
    if op.get_bind().scalar(
        sa.text("SELECT count(*) FROM entries WHERE kind IN :k").bindparams(
            sa.bindparam("k", NEW_RECORD_KINDS, expanding=True)
        )
    ):
        raise RuntimeError(
            "the journal holds governance records; they cannot be removed from an append-only log, "
            "so 0007_governance cannot be downgraded"
        )
    set_entry_kinds(MONEY_KINDS + OLD_RECORD_KINDS)
