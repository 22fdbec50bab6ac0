"""A spend's history: append-only events, the coins it holds, and what left a vault lately.

A spend is a number and the events it passed through (``spend_events``, step 0 = ``proposed``),
each with the PSBT as it was at that step and a ``spend`` log record in the Merkle log carrying
the same fields (the PSBT by its SHA-256), so a changed or deleted row is tamper evidence
(``ledger verify``, :mod:`ledger.journal.table_records`). Nothing is ever updated: a spend's
state is its latest event. Its coins (``spend_inputs``) are written with the proposal; they are
held while the spend is open (not confirmed, cancelled or conflicted), so two open spends never
use one coin.

Service functions take the caller's session; the writers expect a write transaction in which
:func:`ledger.store.db.lock_journal` serialises them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from custody.spend_node import Outpoint
from ledger.errors import InvalidInput, NotFound, TamperDetected
from ledger.journal.records import RecordKind, append_record, canonical_json
from ledger.journal.table_records import spend_input_findings
from ledger.store.models import EntryRow
from ledger.store.spend_models import SpendEventRow, SpendInputRow

PROPOSED, SIGNED, BROADCAST = "proposed", "signed", "broadcast"
CONFIRMED, CANCELLED, CONFLICTED = "confirmed", "cancelled", "conflicted"
TERMINAL = (CONFIRMED, CANCELLED, CONFLICTED)
"""States after which a spend changes no more and holds no coin."""

OUTFLOW_KINDS = ("withdrawal", "transfer")
"""Booked entry kinds whose negative vault postings count towards the velocity limit."""


@dataclass(frozen=True, slots=True)
class SpendEvent:
    """One stored state of a spend."""

    spend: int
    step: int
    state: str
    vault: str
    txid: str
    psbt: str  # base64
    psbt_sha256: str
    amount: int  # sat leaving the vault (outputs that are not change; no fee)
    height: int  # the node's tip when it was stored
    detail: dict[str, Any]
    record_seq: int
    created_at: dt.datetime | None = None


@dataclass(frozen=True, slots=True)
class Destination:
    """Where a proposal pays: an allowlist entry (counterparty) or another vault."""

    index: int  # output index in the transaction
    kind: str  # "allowlist" or "vault"
    name: str
    address: str
    amount: int

    def as_json(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "kind": self.kind,
            "name": self.name,
            "address": self.address,
            "amount": self.amount,
        }


@dataclass(frozen=True, slots=True)
class Spend:
    """A spend: its events in order and the coins it holds."""

    number: int
    events: tuple[SpendEvent, ...]
    inputs: tuple[Outpoint, ...]

    @property
    def proposal(self) -> SpendEvent:
        return self.events[0]

    @property
    def latest(self) -> SpendEvent:
        return self.events[-1]

    @property
    def state(self) -> str:
        return self.latest.state

    @property
    def open(self) -> bool:
        return self.state not in TERMINAL

    @property
    def vault(self) -> str:
        return self.proposal.vault

    @property
    def txid(self) -> str:
        return self.proposal.txid

    @property
    def psbt(self) -> str:
        """The PSBT as it is now (with every signature imported so far)."""
        return self.latest.psbt

    @property
    def amount(self) -> int:
        return self.proposal.amount

    @property
    def memo(self) -> str:
        return str(self.proposal.detail.get("memo", ""))

    @property
    def destinations(self) -> tuple[Destination, ...]:
        return tuple(
            Destination(int(d["index"]), str(d["kind"]), str(d["name"]), str(d["address"]), int(d["amount"]))
            for d in self.proposal.detail.get("destinations", [])
        )

    @property
    def quorum_height(self) -> int | None:
        """The height at which the spend first had quorum (stored with the signature that gave it)."""
        for e in self.events:
            h = e.detail.get("quorum_height")
            if isinstance(h, int) and not isinstance(h, bool):
                return h
        return None

    def reached(self, state: str) -> SpendEvent | None:
        """The first event of ``state``, if any."""
        return next((e for e in self.events if e.state == state), None)


def psbt_sha256(psbt: str) -> str:
    """SHA-256 (hex) of the PSBT's base64 text as stored."""
    return hashlib.sha256(psbt.encode("ascii")).hexdigest()


def spend_body(
    *,
    spend: int,
    step: int,
    state: str,
    vault: str,
    txid: str,
    psbt_sha256: str,
    amount: int,
    height: int,
    detail: Mapping[str, Any],
) -> dict[str, Any]:
    """The body of a ``spend`` log record: every field of its event row, the PSBT by SHA-256."""
    return {
        "spend": spend,
        "step": step,
        "state": state,
        "vault": vault,
        "txid": txid,
        "psbt_sha256": psbt_sha256,
        "amount": amount,
        "height": height,
        "detail": dict(detail),
    }


# --- reading ----------------------------------------------------------------------------------------


def _event(row: SpendEventRow) -> SpendEvent:
    try:
        detail = json.loads(row.detail)
    except ValueError:
        detail = {"unreadable": row.detail}
    return SpendEvent(
        spend=row.spend,
        step=row.step,
        state=row.state,
        vault=row.vault,
        txid=row.txid,
        psbt=row.psbt,
        psbt_sha256=row.psbt_sha256,
        amount=int(row.amount),
        height=row.height,
        detail=detail if isinstance(detail, dict) else {"unreadable": row.detail},
        record_seq=int(row.record_seq),
        created_at=row.created_at,
    )


def _spends(session: Session, numbers: Sequence[int] | None) -> tuple[Spend, ...]:
    q = select(SpendEventRow).order_by(SpendEventRow.spend, SpendEventRow.step)
    iq = select(SpendInputRow).order_by(SpendInputRow.spend, SpendInputRow.id)
    if numbers is not None:
        q = q.where(SpendEventRow.spend.in_(list(numbers)))
        iq = iq.where(SpendInputRow.spend.in_(list(numbers)))
    events: dict[int, list[SpendEvent]] = {}
    for row in session.scalars(q):
        events.setdefault(row.spend, []).append(_event(row))
    inputs: dict[int, list[Outpoint]] = {}
    for i in session.scalars(iq):
        inputs.setdefault(i.spend, []).append((i.txid, i.vout))
    return tuple(Spend(n, tuple(evs), tuple(inputs.get(n, ()))) for n, evs in sorted(events.items()))


def get_spend(session: Session, number: int) -> Spend:
    """Spend ``number`` (:class:`NotFound` when there is none)."""
    if isinstance(number, bool) or not isinstance(number, int) or number < 1:
        raise InvalidInput(f"spend number {number!r} must be a positive integer (see `reserve spend list`)")
    found = _spends(session, [number])
    if not found:
        raise NotFound(f"no spend #{number}; `reserve spend list` shows the spends")
    return found[0]


def list_spends(session: Session, vault: str | None = None, *, open_only: bool = False) -> tuple[Spend, ...]:
    """Every spend (of ``vault``), by number; only open ones with ``open_only``."""
    spends = _spends(session, None)
    return tuple(s for s in spends if (vault is None or s.vault == vault) and (s.open or not open_only))


def _latest_states() -> Any:
    """``(spend, state)`` of each spend's latest event (a subquery)."""
    last = (
        select(SpendEventRow.spend, func.max(SpendEventRow.step).label("step"))
        .group_by(SpendEventRow.spend)
        .subquery()
    )
    return (
        select(SpendEventRow.spend, SpendEventRow.state, SpendEventRow.vault, SpendEventRow.txid)
        .join(last, (last.c.spend == SpendEventRow.spend) & (last.c.step == SpendEventRow.step))
        .subquery()
    )


def open_spend_inputs(session: Session) -> dict[Outpoint, int]:
    """``(txid, vout) -> number`` of the open spend holding that coin."""
    latest = _latest_states()
    q = (
        select(SpendInputRow.txid, SpendInputRow.vout, SpendInputRow.spend)
        .join(latest, latest.c.spend == SpendInputRow.spend)
        .where(latest.c.state.not_in(TERMINAL))
    )
    return {(str(t), int(v)): int(n) for t, v, n in session.execute(q)}


def velocity_used(
    session: Session,
    vault: str,
    tip_height: int,
    window: int,
    *,
    until: int | None = None,
    exclude_txid: str | None = None,
) -> int:
    """Sat that left ``vault`` within the last ``window`` blocks as of ``tip_height``, the network
    fee included alike for what is booked and what is on its way: its booked withdrawals and
    transfers out (its negative postings, which carry the fee, of live entries in blocks above
    ``tip_height - window``; one query on the ``entries.block_height`` index), plus what its
    broadcast spends not booked yet send out and pay in fees (their amount and the fee stored with
    the broadcast).

    ``until``: only entries in blocks up to that height count, and no broadcast spend (the books
    as they stood at a past height, for judging a transaction sent then:
    :mod:`ledger.chain.outflows`). ``exclude_txid``: that transaction is not counted (the one
    being judged)."""
    # Driven by the entries.block_height index (a window, never the history): `+p.account_id`
    # and `e.kind || ''` keep the planner from walking every posting of the vault or every
    # withdrawal instead (SQLite plans without statistics); postings are then read by their key.
    booked = session.execute(
        text(
            "SELECT coalesce(sum(-p.amount), 0) FROM entries e "
            "JOIN postings p ON p.entry_seq = e.seq "
            "WHERE e.block_height > :since AND e.block_height <= :until "
            "AND (e.kind || '') IN ('withdrawal', 'transfer') "
            "AND +p.account_id = (SELECT a.id FROM accounts a WHERE a.name = :vault) "
            "AND p.amount < 0 AND (e.txid IS NULL OR e.txid <> :exclude) "
            "AND NOT EXISTS (SELECT 1 FROM entries r WHERE r.reverses_seq = e.seq)"
        ),
        {
            "since": tip_height - window,
            "until": _NO_HEIGHT if until is None else until,
            "vault": vault,
            "exclude": exclude_txid or "",
        },
    ).scalar_one()
    if until is not None:
        return int(booked)
    pending = session.execute(
        text(
            "SELECT s.amount, s.detail FROM spend_events s "
            "WHERE s.vault = :vault AND s.state = 'broadcast' AND s.txid <> :exclude "
            "AND NOT EXISTS (SELECT 1 FROM spend_events t WHERE t.spend = s.spend AND t.step > s.step) "
            "AND NOT EXISTS (SELECT 1 FROM entries e WHERE e.txid = s.txid AND e.block_hash IS NOT NULL)"
        ),
        {"vault": vault, "exclude": exclude_txid or ""},
    ).all()
    return int(booked) + sum(int(amount) + _stored_fee(detail) for amount, detail in pending)


_NO_HEIGHT = 2**62
"""Above any block height: no upper bound."""


def _stored_fee(detail: str) -> int:
    """The fee a broadcast event stored (``{"fee": sat, ...}``); 0 when it has none."""
    try:
        fee = json.loads(detail).get("fee", 0)
    except (ValueError, AttributeError):
        return 0
    return fee if isinstance(fee, int) and not isinstance(fee, bool) and fee > 0 else 0


def spends_by_txid(session: Session, txids: Iterable[str] | None = None) -> dict[str, Spend]:
    """``txid -> spend`` for spends (not cancelled) paying in those transactions."""
    q = select(SpendEventRow.spend).where(SpendEventRow.step == 0)
    if txids is not None:
        q = q.where(SpendEventRow.txid.in_(list(txids)))
    numbers = [int(n) for n in session.scalars(q)]
    return {s.txid: s for s in _spends(session, numbers) if s.state != CANCELLED} if numbers else {}


def used_scripts(session: Session) -> frozenset[str]:
    """Addresses any spend's proposal paid to (so a descriptor allowlist entry's next unused
    address is not one a proposal already used)."""
    out: set[str] = set()
    for row in session.scalars(select(SpendEventRow.detail).where(SpendEventRow.step == 0)):
        try:
            detail = json.loads(row)
        except ValueError:
            continue
        for d in detail.get("destinations", []) if isinstance(detail, dict) else []:
            if isinstance(d, dict) and isinstance(d.get("address"), str):
                out.add(d["address"])
    return frozenset(out)


# --- integrity ------------------------------------------------------------------------------------


def tamper_findings(session: Session, vault: str) -> list[str]:
    """Where ``vault``'s spend rows disagree with the log records they were written with: an event
    row whose fields (its detail too: the quorum height the delay rule counts from), PSBT or digest
    differ from its record, a record whose row is gone, steps out of order, and any spend whose
    held coins (``spend_inputs``) are not its proposal record's inputs. The gate relies on these rows;
    :func:`check_untampered` refuses to judge on them when any is found."""
    findings: list[str] = []
    records: dict[int, dict[str, Any]] = {}
    for seq, memo in session.execute(
        select(EntryRow.seq, EntryRow.memo).where(EntryRow.kind == RecordKind.SPEND.value)
    ):
        try:
            body = json.loads(memo)
        except ValueError:
            body = None
        if isinstance(body, dict) and body.get("vault") == vault:
            records[int(seq)] = body
    claimed: set[int] = set()
    steps: dict[int, list[tuple[int, int]]] = {}
    rows = session.scalars(
        select(SpendEventRow).where(SpendEventRow.vault == vault).order_by(SpendEventRow.id)
    )
    for row in rows:
        label = f"spend {row.spend} step {row.step} ({row.state})"
        steps.setdefault(row.spend, []).append((row.step, int(row.record_seq)))
        if psbt_sha256(row.psbt) != row.psbt_sha256:
            findings.append(f"{label}: its PSBT does not hash to its stored digest: it was replaced")
        body = records.get(int(row.record_seq))
        if body is None:
            findings.append(
                f"{label} names log record #{row.record_seq}, which is no spend record of {vault}"
            )
            continue
        claimed.add(int(row.record_seq))
        try:
            detail = json.loads(row.detail)
        except ValueError:
            detail = row.detail
        want = {
            "spend": row.spend,
            "step": row.step,
            "state": row.state,
            "vault": row.vault,
            "txid": row.txid,
            "psbt_sha256": row.psbt_sha256,
            "amount": int(row.amount),
            "height": row.height,
            "detail": detail,
        }
        for field, value in want.items():
            if body.get(field) != value:
                what = "PSBT (its digest)" if field == "psbt_sha256" else field
                findings.append(
                    f"{label}: its {what} differs from its log record #{row.record_seq}: the row was changed"
                )
    for seq in sorted(records.keys() - claimed):
        body = records[seq]
        findings.append(
            f"spend {body.get('spend')} step {body.get('step')} ({body.get('state')}): its log record "
            f"#{seq} has no row: the row was deleted"
        )
    for number, seen in sorted(steps.items()):
        ordered = sorted(seen)
        if [s for s, _ in ordered] != list(range(len(ordered))) or [r for _, r in ordered] != sorted(
            r for _, r in ordered
        ):
            findings.append(f"spend {number}: its steps are missing or out of their records' order")
    # every spend's coins, not only this vault's: which coins are held is read across all spends
    findings += spend_input_findings(session)
    return findings


def check_untampered(session: Session, vault: str) -> None:
    """:class:`TamperDetected` listing :func:`tamper_findings`, if any: a gate that judged on
    edited rows (a moved quorum height, a freed coin, a deleted broadcast) would pass what the
    records forbid."""
    findings = tamper_findings(session, vault)
    if findings:
        raise TamperDetected(
            f"vault {vault}'s spend records were tampered with; nothing was judged or stored "
            "(`reserve ledger verify` lists them):\n  - " + "\n  - ".join(findings)
        )


# --- writing ----------------------------------------------------------------------------------------


def next_number(session: Session) -> int:
    """The number of the next proposal (under the journal lock the caller holds)."""
    return int(session.scalar(select(func.max(SpendEventRow.spend))) or 0) + 1


def append_event(
    session: Session,
    *,
    spend: int,
    state: str,
    vault: str,
    txid: str,
    psbt: str,
    amount: int,
    height: int,
    detail: Mapping[str, Any],
) -> SpendEvent:
    """Store the next event of ``spend`` and its log record, in the caller's write transaction."""
    step = int(
        session.scalar(
            select(func.coalesce(func.max(SpendEventRow.step) + 1, 0)).where(SpendEventRow.spend == spend)
        )
        or 0
    )
    digest = psbt_sha256(psbt)
    body = spend_body(
        spend=spend,
        step=step,
        state=state,
        vault=vault,
        txid=txid,
        psbt_sha256=digest,
        amount=amount,
        height=height,
        detail=detail,
    )
    record = append_record(session, RecordKind.SPEND, body)
    row = SpendEventRow(
        spend=spend,
        step=step,
        state=state,
        vault=vault,
        txid=txid,
        psbt=psbt,
        psbt_sha256=digest,
        amount=amount,
        height=height,
        detail=canonical_json(detail) if detail else "{}",
        record_seq=record.seq,
    )
    session.add(row)
    session.flush()
    return _event(row)


def add_inputs(session: Session, spend: int, outpoints: Iterable[Outpoint]) -> None:
    """Store the coins a new proposal holds."""
    session.add_all(SpendInputRow(spend=spend, txid=t, vout=v) for t, v in outpoints)
    session.flush()
