"""What the transparency site shows, read from the books in one short read.

:func:`gather_site` reads, in the caller's session and as of one entry (the last one when it
starts), the vaults with their balances and the addresses handed out, the reserve after every
entry that moved a vault, period statements, the latest attestation and the latest signed
checkpoint, and returns them as a :class:`~ledger.report.site.SiteData` of plain values for
:func:`~ledger.report.site.render_site`. No RPC: the site shows what the books say, and the
attestation shows what the chain said at its block.

The period statements are a month-by-month movement table per vault computed here from the
postings (opening, received, sent, closing); every figure is a sum of vault postings, so the
closing balance of the last month equals ``reserve balance``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import inspect, text
from sqlalchemy.orm import Session

from ledger.chain.vaults import Vault, list_vaults
from ledger.errors import LedgerError
from ledger.journal.balances import balance, is_reserve
from ledger.journal.book import iter_entries, last_seq
from ledger.journal.checkpoint import Checkpoint
from ledger.journal.entry import Entry
from ledger.journal.proofs import latest_checkpoint
from ledger.journal.records import RecordKind, records
from ledger.report.site import (
    Address,
    AttestationView,
    CheckpointView,
    ReservePoint,
    Sat,
    SiteData,
    Table,
    VaultView,
)

STATEMENT_SOURCE = (
    "Per vault and month: the balance at the start, what the vault received and sent (fees "
    "included in what was sent), and the balance at the end, from the vault postings of the journal."
)


def gather_site(
    session: Session,
    *,
    title: str = "Reserve transparency report",
    public_key_pem: bytes | None = None,
    now: dt.datetime | None = None,
) -> SiteData:
    """Everything the site shows, as of the last entry when it starts.

    ``public_key_pem`` is the ledger's checkpoint public key: when it signed the latest
    checkpoint, the site publishes that checkpoint as an exported document an auditor can check
    with ``reserve ledger verify --checkpoint``.
    """
    as_of = last_seq(session)
    books = balance(session, None, as_of)
    balances = {a.name: a.amount for a in books.accounts}
    vaults = list_vaults(session, include_retired=True)
    issued = issued_addresses(session)
    entries = [e for e in iter_entries(session) if e.seq <= as_of]
    checkpoint = latest_checkpoint(session)
    network = ", ".join(sorted({v.network.chain for v in vaults})) or "no vault yet"
    return SiteData(
        title=title,
        network=network,
        generated_at=now or dt.datetime.now(dt.UTC),
        as_of=as_of,
        reserve=books.reserve,
        vaults=tuple(_vault_view(v, balances.get(v.account, 0), issued.get(v.name, {})) for v in vaults),
        series=reserve_series(entries),
        statements=monthly_statements(entries),
        statement_source=STATEMENT_SOURCE,
        attestation=latest_attestation(session),
        checkpoint=None if checkpoint is None else checkpoint_view(checkpoint, public_key_pem),
    )


# --- vaults and addresses ---------------------------------------------------------------------------


def issued_addresses(session: Session) -> dict[str, dict[bool, int]]:
    """``vault -> {change: highest index handed out}`` from the ``addresses-issued`` records."""
    out: dict[str, dict[bool, int]] = {}
    for record in records(session, RecordKind.ADDRESSES_ISSUED):
        vault, change, index = record.body.get("vault"), record.body.get("change"), record.body.get("index")
        if not isinstance(vault, str) or not isinstance(change, bool) or type(index) is not int:
            raise LedgerError(
                f"log record #{record.seq} (addresses-issued) has no vault, branch and index: "
                f"{record.body!r}; run `reserve ledger verify`"
            )
        branches = out.setdefault(vault, {})
        branches[change] = max(branches.get(change, -1), index)
    return out


def _vault_view(vault: Vault, amount: int, highest: Mapping[bool, int]) -> VaultView:
    addresses: list[Address] = []
    for change in (False, True):
        if change in highest:
            derived = vault.descriptor.addresses(0, highest[change] + 1, change, vault.network)
            branch = "change" if change else "receive"
            addresses += [Address(branch, i, a) for i, a in enumerate(derived)]
    return VaultView(
        name=vault.name,
        label=vault.label,
        holders=vault.holders,
        descriptor=str(vault.descriptor),
        network=vault.network.chain,
        balance=amount,
        retired=vault.retired,
        retired_reason=vault.retired_reason,
        addresses=tuple(addresses),
    )


# --- the reserve over time and the statements -------------------------------------------------------


def _vault_flows(entry: Entry) -> dict[str, int]:
    flows: dict[str, int] = {}
    for p in entry.postings:
        if p.account_type is not None and is_reserve(p.account_type):
            flows[p.account] = flows.get(p.account, 0) + p.amount
    return flows


def reserve_series(entries: Iterable[Entry]) -> tuple[ReservePoint, ...]:
    """The reserve, in total and per vault, after each entry that moved a vault account."""
    held: dict[str, int] = {}
    points: list[ReservePoint] = []
    for entry in entries:
        flows = _vault_flows(entry)
        if not flows:
            continue
        for name, amount in flows.items():
            held[name] = held.get(name, 0) + amount
        points.append(ReservePoint(entry.seq, entry.date, sum(held.values()), tuple(sorted(held.items()))))
    return tuple(points)


@dataclass
class _Month:
    opening: int
    received: int = 0
    sent: int = 0


def monthly_statements(entries: Iterable[Entry]) -> tuple[Table, ...]:
    """One table per month with movements: per vault that moved, the opening balance, received,
    sent and closing balance (closing = opening + received - sent), then the reserve in total
    (all vaults; a transfer between two vaults is both received and sent)."""
    held: dict[str, int] = {}
    months: dict[str, dict[str, _Month]] = {}
    opening: dict[str, int] = {}
    seqs: dict[str, tuple[int, int]] = {}
    for entry in entries:
        flows = _vault_flows(entry)
        if not flows:
            continue
        month = entry.date.strftime("%Y-%m")
        opening.setdefault(month, sum(held.values()))
        seqs[month] = (seqs.get(month, (entry.seq, 0))[0], entry.seq)
        rows = months.setdefault(month, {})
        for name, amount in flows.items():
            row = rows.setdefault(name, _Month(opening=held.get(name, 0)))
            if amount > 0:
                row.received += amount
            else:
                row.sent -= amount
            held[name] = held.get(name, 0) + amount
    tables = []
    for month, rows in months.items():
        lines: list[tuple[str | int | Sat, ...]] = []
        for name in sorted(rows):
            r = rows[name]
            closing = r.opening + r.received - r.sent
            lines.append((name, Sat(r.opening), Sat(r.received), Sat(r.sent), Sat(closing)))
        received = sum(r.received for r in rows.values())
        sent = sum(r.sent for r in rows.values())
        start = opening[month]
        lines.append(("reserve", Sat(start), Sat(received), Sat(sent), Sat(start + received - sent)))
        first, last = seqs[month]
        tables.append(
            Table(
                title=month,
                header=("vault", "opening (BTC)", "received (BTC)", "sent (BTC)", "closing (BTC)"),
                rows=tuple(lines),
                note=f"journal entries {first} to {last}",
            )
        )
    return tuple(tables)


# --- attestation and checkpoint ---------------------------------------------------------------------


def latest_attestation(session: Session) -> AttestationView | None:
    """The latest row of ``attestations`` (``reserve attest``), or ``None`` when there is none
    (or the database predates the table)."""
    if not inspect(session.connection()).has_table("attestations"):
        return None
    row = session.execute(
        text(
            "SELECT id, height, block_hash, document, sha256, created_at FROM attestations "
            "ORDER BY id DESC LIMIT 1"
        )
    ).first()
    if row is None:
        return None
    number, height, block_hash, document, sha256, created_at = row
    digest = hashlib.sha256(str(document).encode()).hexdigest()
    if digest != sha256:
        raise LedgerError(
            f"attestation #{number}: its document's SHA-256 is {digest}, not the stored {sha256}; "
            "the attestations table was changed: run `reserve ledger verify`"
        )
    try:
        doc = json.loads(document)
    except ValueError as e:
        raise LedgerError(f"attestation #{number}: its document is not JSON ({e})") from e
    return AttestationView(
        number=int(number),
        height=int(height),
        block_hash=str(block_hash),
        sha256=str(sha256),
        document=str(document),
        totals=attestation_totals(doc),
        created_at=str(created_at),
    )


def attestation_totals(doc: Any) -> tuple[tuple[str, int], ...]:
    """The totals an attestation document states: every whole-number ``*_sat`` field at its top
    level and in its ``totals`` object, labelled by its name."""
    found: list[tuple[str, int]] = []
    if not isinstance(doc, dict):
        return ()
    for source in (doc, doc.get("totals")):
        if not isinstance(source, dict):
            continue
        for key, value in source.items():
            if isinstance(key, str) and key.endswith("_sat") and type(value) is int:
                found.append((key.removesuffix("_sat").replace("_", " "), value))
    return tuple(found)


def checkpoint_view(cp: Checkpoint, public_key_pem: bytes | None) -> CheckpointView:
    """The checkpoint for the page; exported (with the key) when ``public_key_pem`` signed it."""
    exported = None
    if public_key_pem is not None:
        from ledger.verify_proof import key_id

        if key_id(public_key_pem) == cp.key_id:
            exported = json.dumps(cp.to_export(public_key_pem), indent=2, sort_keys=True) + "\n"
    return CheckpointView(
        tree_size=cp.tree_size,
        root=cp.root.hex(),
        timestamp=cp.timestamp,
        key_id=cp.key_id,
        signature=cp.signature.hex(),
        exported=exported,
    )
