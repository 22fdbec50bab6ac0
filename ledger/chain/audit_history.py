"""Past audits held to the chain: every ``audit`` record names a block the node must know.

An ``audit`` record says which chain tip its audit saw (``best_block`` at ``height``). One
appended outside the service (a row and record saying ``ok`` for a block that never was) has
matching hashes, so ``ledger verify`` alone cannot tell; the node can. ``reserve audit`` gathers
the records (:func:`past_audits`), asks the node where each block stands in the same batch as
the booked entries' blocks (:func:`ledger.chain.audit.read_chain`), and :func:`judge_past_audits`
makes a finding of each block the node does not know, or knows at another height. A block that
is known but no longer on the best chain is a reorganisation, not a finding.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence

from sqlalchemy import select
from sqlalchemy.orm import Session

from custody.chain import BlockPlace
from ledger.chain.audit_report import Finding, FindingCode, PastAudit
from ledger.journal.entry import RecordKind
from ledger.store.models import EntryRow


def past_audits(session: Session) -> tuple[PastAudit, ...]:
    """Every ``audit`` record whose best block is 64 hex digits (``ledger verify`` reports the
    others), in log order."""
    out: list[PastAudit] = []
    for seq, memo in session.execute(
        select(EntryRow.seq, EntryRow.memo)
        .where(EntryRow.kind == RecordKind.AUDIT.value)
        .order_by(EntryRow.seq)
    ):
        try:
            body = json.loads(memo)
        except ValueError:
            continue
        block = body.get("best_block") if isinstance(body, dict) else None
        if isinstance(block, str) and len(block) == 64 and all(c in "0123456789abcdef" for c in block):
            out.append(PastAudit(int(seq), body.get("audit_id"), body.get("height"), block))
    return tuple(out)


def judge_past_audits(past: Sequence[PastAudit], places: Mapping[str, BlockPlace]) -> list[tuple[str, int]]:
    """Pure: ``(finding, record seq)`` for each past audit whose block the node does not know
    (``places`` from :func:`custody.chain.block_places`: height -1) or knows at another height."""
    findings: list[tuple[str, int]] = []
    for audit in past:
        place = places.get(audit.best_block)
        if place is None:
            continue  # not asked (no node at hand)
        said = f"audit #{audit.audit_id} (record #{audit.seq}) says it saw block {audit.best_block}"
        if place.height < 0:
            findings.append(
                (
                    f"{said} at height {audit.height}, which the node does not know: no audit of this "
                    "chain saw it, the record was appended outside the service (or this node never "
                    "saw a block reorganised away before it synced)",
                    audit.seq,
                )
            )
        elif place.height != audit.height:
            findings.append(
                (
                    f"{said} at height {audit.height}, but that block is at height {place.height}: "
                    "the record was appended outside the service",
                    audit.seq,
                )
            )
    return findings


def past_audit_findings(past: Sequence[PastAudit], places: Mapping[str, BlockPlace]) -> tuple[Finding, ...]:
    """:func:`judge_past_audits` as audit findings (``ledger-verification``: the log holds a
    record the service did not write, so the audit signs no checkpoint over it)."""
    return tuple(
        Finding(
            FindingCode.LEDGER_VERIFICATION,
            text,
            "an audit record names a block this chain does not have: restore the database from a "
            "backup taken before it was appended, and find who can write to the database",
            seq=seq,
        )
        for text, seq in judge_past_audits(past, places)
    )
