"""Log records: widen ``entries.kind`` to the record kinds (indexed), and backfill the records of what is
already stored (vaults, retirements, audits), so old history keeps its prefix and old
checkpoints still verify.

PostgreSQL drops and recreates the constraint. SQLite has no ALTER for a CHECK constraint and a
table rebuild cannot run inside the migration's transaction (see
:func:`ledger.store.entry_kinds.sqlite_set_entry_kinds`): the constraint's text is rewritten in
the schema, as SQLite documents for such changes; no row, trigger, index or foreign key is
touched.

Revision ID: 0004_records
Revises: 0003_audits
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op

from ledger.journal.canonical import encode_draft, encode_entry_fields
from ledger.journal.entry import EntryDraft
from ledger.journal.merkle import leaf_hash
from ledger.journal.records import KeyFields, audit_body, canonical_json, vault_added_body, vault_retired_body
from ledger.store.entry_kinds import set_entry_kinds

revision: str = "0004_records"
down_revision: str | None = "0003_audits"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MONEY_KINDS = ("opening", "deposit", "withdrawal", "transfer", "fee", "mining", "adjustment", "reversal")
RECORD_KINDS = ("vault-added", "vault-retired", "audit", "addresses-issued", "key-rotated")


def upgrade() -> None:
    set_entry_kinds(MONEY_KINDS + RECORD_KINDS)
    op.create_index(op.f("ix_entries_kind"), "entries", ["kind"], unique=False)  # records are few
    _backfill()


def downgrade() -> None:
    if op.get_bind().scalar(
        sa.text("SELECT count(*) FROM entries WHERE kind IN :k").bindparams(
            sa.bindparam("k", RECORD_KINDS, expanding=True)
        )
    ):
        raise RuntimeError(
            "the journal holds log records (vault definitions, audits, ...); they cannot be removed "
            "from an append-only log, so 0004_records cannot be downgraded"
        )
    op.drop_index(op.f("ix_entries_kind"), table_name="entries")
    set_entry_kinds(MONEY_KINDS)


# --- backfill ---------------------------------------------------------------------------------------


def _backfill() -> None:
    """Append a record for every vault, retirement and stored audit, in that order (each group by
    id), after the entries already in the log, exactly as :func:`ledger.journal.book.append` would."""
    bind = op.get_bind()
    bodies: list[tuple[str, dict[str, Any]]] = []
    keys: dict[int, list[KeyFields]] = {}
    for vault_id, holder, key, xpub, fingerprint in bind.execute(
        sa.text("SELECT vault_id, holder, key, xpub, fingerprint FROM vault_keys ORDER BY vault_id, position")
    ):
        keys.setdefault(vault_id, []).append(KeyFields(holder, key, xpub, fingerprint))
    names: dict[int, str] = {}
    for vault_id, name, kind, threshold, descriptor, network, birthday in bind.execute(
        sa.text(
            "SELECT id, name, kind, threshold, descriptor, network, birthday_height FROM vaults ORDER BY id"
        )
    ):
        names[vault_id] = name
        body = vault_added_body(
            vault=name,
            kind=kind,
            threshold=threshold,
            descriptor=descriptor,
            network=network,
            birthday=birthday,
            keys=keys.get(vault_id, []),
        )
        bodies.append(("vault-added", body))
    for vault_id, reason in bind.execute(
        sa.text("SELECT vault_id, reason FROM vault_retirements ORDER BY id")
    ):
        bodies.append(("vault-retired", vault_retired_body(vault=names[vault_id], reason=reason)))
    for row in bind.execute(
        sa.text(
            "SELECT id, tree_size, root, checkpoint_id, height, best_block, min_conf, findings, ok, "
            "report FROM audits ORDER BY id"
        )
    ):
        body = audit_body(
            audit_id=row[0],
            tree_size=row[1],
            root=bytes(row[2]),
            checkpoint_id=row[3],
            height=row[4],
            best_block=row[5],
            min_conf=row[6],
            findings=row[7],
            ok=bool(row[8]),
            report=row[9],
        )
        bodies.append(("audit", body))
    if not bodies:
        return
    if bind.dialect.name == "postgresql":
        bind.execute(sa.text("LOCK TABLE entries IN EXCLUSIVE MODE"))
    seq = bind.scalar(sa.text("SELECT max(seq) FROM entries")) or 0
    today = dt.datetime.now(dt.UTC).date()
    entries = sa.table(
        "entries",
        sa.column("seq", sa.BigInteger()),
        sa.column("kind", sa.String()),
        sa.column("date", sa.Date()),
        sa.column("memo", sa.Text()),
        sa.column("content_hash", sa.LargeBinary()),
        sa.column("leaf_hash", sa.LargeBinary()),
    )
    rows = []
    for kind, body in bodies:
        seq += 1
        memo = canonical_json(body)
        entry_bytes = encode_entry_fields(
            seq=seq,
            kind=kind,
            date=today,
            memo=memo,
            ref=None,
            reverses_seq=None,
            txid=None,
            outputs=None,
            block_hash=None,
            block_height=None,
            postings=(),
        )
        rows.append(
            {
                "seq": seq,
                "kind": kind,
                "date": today,
                "memo": memo,
                "content_hash": hashlib.sha256(_draft_bytes(kind, memo)).digest(),
                "leaf_hash": leaf_hash(entry_bytes),
            }
        )
    bind.execute(sa.insert(entries), rows)


def _draft_bytes(kind: str, memo: str) -> bytes:
    return encode_draft(EntryDraft(kind=kind, memo=memo, postings=()))
