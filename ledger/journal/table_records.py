"""Rows of the spending and attestation tables held to their log records (for ``ledger verify``).

Each row of ``policy_changes``, ``spend_events`` and ``attestations`` is written with a log record
(:mod:`ledger.journal.records`) in the same transaction and names it (``record_seq``). The record
is a leaf of the Merkle tree; the row is not. So a row edited or inserted behind the
application's back (raw SQL with the triggers dropped) disagrees with its record, a row deleted
leaves a record without its row, and a stored PSBT or document that no longer hashes to the
digest its record committed to has been replaced. :func:`table_record_findings` reports each.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ledger.journal.entry import RecordKind
from ledger.store.models import EntryRow
from ledger.store.spend_models import AttestationRow, PolicyChangeRow, SpendEventRow, SpendInputRow


def _json_or_text(text: str) -> object:
    try:
        return json.loads(text)
    except ValueError:
        return text


@dataclass(frozen=True, slots=True)
class _Table:
    """How one table's rows are held to their records: the record kind, the fields the record
    body must repeat (name in the body -> the row's value), and digests to recompute."""

    name: str
    model: type[PolicyChangeRow] | type[SpendEventRow] | type[AttestationRow]
    kind: RecordKind
    label: Callable[[Any], str]
    fields: Callable[[Any], Mapping[str, object]]
    digests: Callable[[Any], Iterable[tuple[str, str, str]]]  # (what, stored hex, recomputed hex)


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


TABLES = (
    _Table(
        "policy_changes",
        PolicyChangeRow,
        RecordKind.POLICY_CHANGED,
        lambda r: f"policy change #{r.id} of vault {r.vault}",
        lambda r: {
            "vault": r.vault,
            "change": r.change,
            "body": _json_or_text(r.body),
            "loosens": bool(r.loosens),
            "requested_height": r.requested_height,
            "effective_height": r.effective_height,
        },
        lambda r: (),
    ),
    _Table(
        "spend_events",
        SpendEventRow,
        RecordKind.SPEND,
        lambda r: f"spend {r.spend} step {r.step} ({r.state})",
        lambda r: {
            "spend": r.spend,
            "step": r.step,
            "state": r.state,
            "vault": r.vault,
            "txid": r.txid,
            "psbt_sha256": r.psbt_sha256,
            "amount": r.amount,
            "height": r.height,
            "detail": _json_or_text(r.detail),  # quorum height, destinations, inputs: the gate reads them
        },
        lambda r: (("its PSBT", r.psbt_sha256, _sha256(r.psbt)),),
    ),
    _Table(
        "attestations",
        AttestationRow,
        RecordKind.ATTESTATION,
        lambda r: f"attestation #{r.id} at height {r.height}",
        lambda r: {"height": r.height, "block_hash": r.block_hash, "sha256": r.sha256},
        lambda r: (("its document", r.sha256, _sha256(r.document)),),
    ),
)


def _body_matches(body: Mapping[str, Any], want: Mapping[str, object], field: str) -> bool:
    have = body.get(field)
    value = want[field]
    if field in ("body", "detail") and isinstance(have, str) and not isinstance(value, str):
        have = _json_or_text(have)
    return bool(have == value and type(have) is type(value))


def table_record_findings(session: Session) -> list[str]:
    """Every disagreement between the rows of the spending and attestation tables and the log
    records they name (see the module docstring)."""
    findings: list[str] = []
    for table in TABLES:
        records = {
            int(seq): str(memo)
            for seq, memo in session.execute(
                select(EntryRow.seq, EntryRow.memo).where(EntryRow.kind == table.kind.value)
            )
        }
        claimed: set[int] = set()
        rows: Iterable[Any] = session.scalars(select(table.model).order_by(table.model.id))
        for row in rows:
            label = table.label(row)
            for what, stored, recomputed in table.digests(row):
                if stored != recomputed:
                    findings.append(
                        f"{table.name}: {label}: {what} no longer hashes to the stored digest "
                        f"{stored[:16]}… (it hashes to {recomputed[:16]}…): it was replaced behind the "
                        "application's back"
                    )
            memo = records.get(row.record_seq)
            if memo is None:
                findings.append(
                    f"{table.name}: {label} names log record #{row.record_seq}, which is not a "
                    f"{table.kind.value} record: the row was inserted or changed behind the "
                    "application's back"
                )
                continue
            if row.record_seq in claimed:
                findings.append(
                    f"{table.name}: {label} names log record #{row.record_seq}, which another row names too"
                )
            claimed.add(row.record_seq)
            try:
                body = json.loads(memo)
            except ValueError:
                body = None
            if not isinstance(body, dict):
                findings.append(f"{table.name}: log record #{row.record_seq} is not a JSON object")
                continue
            want = table.fields(row)
            for field in want:
                if not _body_matches(body, want, field):
                    findings.append(
                        f"{table.name}: {label}: its {field} in the database ({want[field]!r}) differs "
                        f"from its log record #{row.record_seq} ({body.get(field)!r}): the row was "
                        "changed behind the application's back"
                    )
        for seq in sorted(records.keys() - claimed):
            findings.append(
                f"{table.name}: log record #{seq} ({table.kind.value}) has no row: the row was deleted "
                "behind the application's back"
            )
    return findings


# --- spend_inputs: held to the proposal records -------------------------------------------------------


def spend_input_findings(session: Session) -> list[str]:
    """``spend_inputs`` held to the spend records: each spend's rows must be exactly the inputs
    its proposal record (its ``spend`` record of step 0) lists, ``txid:vout`` each. The table has
    no record of its own; a row inserted there holds a coin no spend proposed (so no proposal
    may take it), a row deleted frees a coin an open spend still spends."""
    proposals: dict[int, tuple[int, frozenset[str] | None]] = {}
    for seq, memo in session.execute(
        select(EntryRow.seq, EntryRow.memo)
        .where(EntryRow.kind == RecordKind.SPEND.value)
        .order_by(EntryRow.seq)
    ):
        body = _json_or_text(str(memo))
        if not isinstance(body, dict) or body.get("step") != 0 or not isinstance(body.get("spend"), int):
            continue  # not a proposal, or unreadable (table_record_findings reports it)
        detail = body.get("detail")
        inputs = detail.get("inputs") if isinstance(detail, dict) else None
        listed = None
        if isinstance(inputs, list) and all(isinstance(i, str) for i in inputs):
            listed = frozenset(inputs)
        proposals.setdefault(int(body["spend"]), (int(seq), listed))
    held: dict[int, set[str]] = {}
    for spend, txid, vout in session.execute(
        select(SpendInputRow.spend, SpendInputRow.txid, SpendInputRow.vout).order_by(SpendInputRow.id)
    ):
        held.setdefault(int(spend), set()).add(f"{txid}:{vout}")
    return judge_spend_inputs(proposals, held)


def judge_spend_inputs(
    proposals: Mapping[int, tuple[int, frozenset[str] | None]], held: Mapping[int, set[str]]
) -> list[str]:
    """Pure: ``spend -> (proposal record seq, its inputs or None when unreadable)`` against
    ``spend -> outpoints in spend_inputs``; one finding per spend and outpoint that disagree."""
    findings: list[str] = []
    for spend in sorted(held.keys() | proposals.keys()):
        rows = held.get(spend, set())
        if spend not in proposals:
            findings += [
                f"spend_inputs: spend {spend} holds coin {outpoint}, but no spend {spend} was ever "
                "proposed (no proposal record): the row was inserted outside the service"
                for outpoint in sorted(rows)
            ]
            continue
        seq, listed = proposals[spend]
        if listed is None:
            findings.append(f"spend {spend}: its proposal record #{seq} lists no inputs (txid:vout)")
            continue
        findings += [
            f"spend_inputs: spend {spend} holds coin {outpoint}, which its proposal record #{seq} "
            "does not list: the row was inserted outside the service"
            for outpoint in sorted(rows - listed)
        ]
        findings += [
            f"spend_inputs: spend {spend}'s proposal record #{seq} lists input {outpoint}, but "
            "its row is missing: it was deleted outside the service (the coin looks free)"
            for outpoint in sorted(listed - rows)
        ]
    return findings
