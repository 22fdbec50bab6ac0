"""The approval document of a governed change: its log records verbatim, for the offline verifier.

``reserve approve show N --export FILE`` writes it; :mod:`ledger.governance.verify_approval`
checks it with no database and no node. Each record is given as its entry number and memo (the
canonical JSON the Merkle leaf commits to), so ``reserve ledger proof SEQ`` proves each one is in
the log the ledger's checkpoints sign.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ledger.errors import TamperDetected
from ledger.governance.changes import get_change
from ledger.journal.records import RecordKind, records
from ledger.store.models import EntryRow

DOCUMENT_FORMAT = "reserve-ledger-approvals/v1"


def approval_document(session: Session, number: int) -> dict[str, Any]:
    """The document of change ``number`` (its approvals verified first, :func:`get_change`)."""
    change = get_change(session, number)
    vault_seq = max(
        (r.seq for r in records(session, RecordKind.VAULT_ADDED) if r.body.get("vault") == change.vault),
        default=None,
    )
    if vault_seq is None:
        raise TamperDetected(f"vault {change.vault} has no vault-added record; run `reserve ledger verify`")
    seqs = [vault_seq, change.number, *(a.seq for a in change.approvals)]
    if change.applied is not None:
        seqs.append(change.applied.seq)
    rows = session.execute(select(EntryRow.seq, EntryRow.memo).where(EntryRow.seq.in_(seqs)))
    memos = {int(seq): str(memo) for seq, memo in rows}

    def record(seq: int) -> dict[str, Any]:
        return {"seq": seq, "memo": memos[seq]}

    return {
        "format": DOCUMENT_FORMAT,
        "vault": record(vault_seq),
        "change": record(change.number),
        "approvals": [record(a.seq) for a in change.approvals],
        "applied": None if change.applied is None else record(change.applied.seq),
    }
