"""What the transparency site shows, read from the books in one short read.

:func:`gather_site` reads, in the caller's session and as of one entry (the last one when it
starts), the vaults with their balances and the addresses handed out, the reserve after every
entry that moved a vault, period statements, the latest attestation and the latest signed
checkpoint, and returns them as a :class:`~ledger.report.site.SiteData` of plain values for
:func:`~ledger.report.site.render_site`. No RPC: the site shows what the books say, and the
attestation shows what the chain said at its block.

The period statements are one per calendar month with movements, each the statement
:mod:`ledger.report.statement` computes (``reserve report statement --from D --to D`` prints
the same figures), from the same entries as everything else on the page.
"""

from __future__ import annotations

import calendar
import datetime as dt
import hashlib
import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ledger.chain.vaults import Vault, list_vaults
from ledger.errors import LedgerError, TamperDetected
from ledger.journal.balances import is_reserve, verified_balance
from ledger.journal.book import last_seq
from ledger.journal.checkpoint import Checkpoint
from ledger.journal.entry import Entry
from ledger.journal.heads import JournalCheck
from ledger.journal.proofs import latest_checkpoint, list_checkpoints
from ledger.journal.records import RecordKind, records
from ledger.report.site import (
    Address,
    AttestationView,
    AttestedVault,
    CheckpointView,
    ReservePoint,
    Sat,
    SiteData,
    Table,
    VaultView,
)
from ledger.report.statement import Bound, CheckpointRef, build_statement, summary_rows
from ledger.store.spend_models import AttestationRow

STATEMENT_SOURCE = (
    "Per calendar month, newest first: per vault and in total (section total), the opening balance, "
    "additions by nature (deposits by counterparty, mining), dispositions by counterparty, network "
    "fees, internal transfers between the reserve's vaults (apart: never additions in total) and the "
    "closing balance, each line with the journal entries it comes from. Each is the statement "
    "that reserve report statement prints for that month (with --json, every txid too)."
)


def gather_site(
    session: Session,
    *,
    public_key_pem: bytes,
    title: str = "Reserve transparency report",
    now: dt.datetime | None = None,
) -> tuple[SiteData, tuple[str, ...]]:
    """Everything the site shows, as of the last entry when it starts, and what did not verify.

    ``public_key_pem`` is the ledger's public key: the figures are verified with it (the vaults'
    balances and the reserve from the latest tree head it signed,
    :func:`~ledger.journal.balances.verified_balance`; every entry read for the series and the
    statements against its leaf hash and that head, :class:`~ledger.journal.heads.JournalCheck`),
    and when it signed the latest checkpoint, the site publishes that checkpoint as an exported
    document an auditor can check with ``reserve ledger verify --checkpoint``.
    """
    as_of = last_seq(session)
    verified = verified_balance(session, public_key_pem, None, as_of)
    balances = {a.name: a.amount for a in verified.balances.accounts}
    vaults = list_vaults(session, include_retired=True)
    issued = issued_addresses(session)
    check = JournalCheck(session, public_key_pem)
    entries = [e for e in check.entries() if e.seq <= as_of]
    checkpoint = latest_checkpoint(session)
    refs = [CheckpointRef(c.tree_size, c.root, c.timestamp, c.key_id) for c in list_checkpoints(session)]
    network = ", ".join(sorted({v.network.chain for v in vaults})) or "no vault yet"
    data = SiteData(
        title=title,
        network=network,
        generated_at=now or dt.datetime.now(dt.UTC),
        as_of=verified.balances.as_of,
        reserve=verified.balances.reserve,
        vaults=tuple(_vault_view(v, balances.get(v.account, 0), issued.get(v.name, {})) for v in vaults),
        series=reserve_series(entries),
        statements=monthly_statements(entries, [v.account for v in vaults], refs),
        statement_source=STATEMENT_SOURCE,
        attestation=latest_attestation(session, public_key_pem),
        checkpoint=None if checkpoint is None else checkpoint_view(checkpoint, public_key_pem),
    )
    return data, tuple(dict.fromkeys((*verified.findings, *check.findings)))


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


def month_bounds(entries: Iterable[Entry]) -> tuple[tuple[dt.date, dt.date], ...]:
    """The calendar months (first day, last day) in which an entry moved a vault, in order."""
    months = sorted({(e.date.year, e.date.month) for e in entries if _vault_flows(e)})
    return tuple((dt.date(y, m, 1), dt.date(y, m, calendar.monthrange(y, m)[1])) for y, m in months)


def monthly_statements(
    entries: Sequence[Entry], vaults: Sequence[str] = (), checkpoints: Sequence[CheckpointRef] = ()
) -> tuple[Table, ...]:
    """One statement per calendar month with movements, newest first: the figures of
    ``reserve report statement --from FIRST-DAY --to LAST-DAY``
    (:func:`ledger.report.statement.build_statement`), each row as its summary shows it."""
    tables = []
    for first, last in reversed(month_bounds(entries)):
        st = build_statement(
            entries, Bound(date=first), Bound(date=last), vaults=vaults, checkpoints=checkpoints
        )
        summary = summary_rows(st)
        rows = tuple(
            (
                r.section if i == 0 or summary[i - 1].section != r.section else "",
                r.item,
                r.account,
                Sat(r.amount),
                _entries_text(r.entries),
            )
            for i, r in enumerate(summary)
        )
        cp = st.checkpoint
        covered = (
            f"; covered by the signed checkpoint of tree size {cp.tree_size} (root {cp.root.hex()})"
            if cp is not None
            else "; no signed checkpoint covers them yet"
        )
        tables.append(
            Table(
                title=f"{first:%B %Y}",
                header=("section", "item", "account", "amount (BTC)", "entries"),
                rows=rows,
                note=(
                    f"reserve report statement --from {first} --to {last}: "
                    f"{len(st.entries)} entries moved a vault{covered}"
                ),
            )
        )
    return tuple(tables)


def _entries_text(entries: tuple[int, ...], limit: int = 12) -> str:
    shown = " ".join(f"#{s}" for s in entries[:limit])
    return shown + (f" … (+{len(entries) - limit})" if len(entries) > limit else "")


# --- attestation and checkpoint ---------------------------------------------------------------------


def latest_attestation(session: Session, public_key_pem: bytes | None = None) -> AttestationView | None:
    """The latest attestation stored (``reserve attest``), or ``None`` when there is none.

    Its document must still hash to the SHA-256 stored with it, and every attestation row must
    agree with its log record (:func:`ledger.attest.store.list_attestations`: a row inserted behind
    the application's back, forged or a copy of an older one made the latest, is caught there),
    and, given the ledger's public key, the document must verify offline with it and the keys
    rotation records link to it (:func:`ledger.attest.verify_doc.verify_attestation`: one
    appended the application's way but signed by another key is caught there), or nothing is
    published."""
    row = session.scalar(select(AttestationRow).order_by(AttestationRow.id.desc()).limit(1))
    if row is None:
        return None
    digest = hashlib.sha256(row.document.encode()).hexdigest()
    if digest != row.sha256:
        raise TamperDetected(
            f"attestation #{row.id}: its document's SHA-256 is {digest}, not the stored {row.sha256}; "
            "run `reserve ledger verify`"
        )
    from ledger.attest.store import list_attestations

    listed, problems = list_attestations(session)  # every row held to its log record
    wrong = [f for a in listed for f in a.findings] + list(problems)
    if wrong:
        raise TamperDetected(
            "the attestations table disagrees with the log, so no attestation is published: "
            + "; ".join(wrong)
            + "; run `reserve attest list` and `reserve ledger verify`"
        )
    try:
        doc = json.loads(row.document)
    except ValueError as e:
        raise TamperDetected(f"attestation #{row.id}: its document is not JSON ({e})") from e
    if public_key_pem is not None:  # what an auditor will run on it, with the ledger's keys
        from ledger.attest.verify_doc import verify_attestation
        from ledger.journal.keychain import trusted_public_keys

        result = verify_attestation(doc, trusted_public_keys(session, public_key_pem))
        if result.integrity_failed:  # a shortfall it proves is published, difference and all
            raise TamperDetected(
                f"attestation #{row.id} does not verify ({', '.join(result.integrity_failed)}: "
                + "; ".join(f for c in result.checks if c.name != "reserves" for f in c.findings)[:2000]
                + "), so it is not published; run `reserve attest verify` on `reserve attest show`"
            )
    created = row.created_at  # SQLite: naive UTC (CURRENT_TIMESTAMP); PostgreSQL: aware
    created = created.replace(tzinfo=dt.UTC) if created.tzinfo is None else created.astimezone(dt.UTC)
    return attestation_view(
        row.id, row.height, row.block_hash, row.sha256, row.document, f"{created:%Y-%m-%d %H:%M:%S} UTC", doc
    )


def _nat(value: Any) -> int | None:
    return value if type(value) is int else None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def attestation_view(
    number: int, height: int, block_hash: str, sha256: str, document: str, created_at: str, doc: Any
) -> AttestationView:
    """An attestation as the page shows it, from its stored columns and its parsed
    ``reserve-ledger-attestation/v1`` document (docs/attestation.md): the totals (on chain, in the
    books, difference), per vault the same with its count of outputs and whether it carries a
    proof of control, the network, the signing key id and the ledger checkpoint it carries. A
    field missing or not of its type is left out: the verifier, not the page, judges the document."""
    doc = _dict(doc)
    totals = _dict(doc.get("totals"))
    labels = (("chain", "on chain at the block"), ("ledger", "in the books"), ("difference", "difference"))
    vaults = []
    for v in map(_dict, _list(doc.get("vaults"))):
        if isinstance(v.get("name"), str):
            chain, ledger, difference = (
                _nat(v.get(k)) or 0 for k in ("chain_amount", "ledger_amount", "difference")
            )
            outputs = len(_list(v.get("outputs")))
            vaults.append(
                AttestedVault(v["name"], outputs, chain, ledger, difference, v.get("control") is not None)
            )
    key_id = _dict(doc.get("signature")).get("key_id")
    cp = _dict(_dict(doc.get("ledger")).get("checkpoint"))
    size, root = _nat(cp.get("tree_size")), cp.get("root")
    return AttestationView(
        number=number,
        height=height,
        block_hash=block_hash,
        sha256=sha256,
        document=document,
        totals=tuple((label, n) for key, label in labels if (n := _nat(totals.get(key))) is not None),
        created_at=created_at,
        network=doc["network"] if isinstance(doc.get("network"), str) else "",
        key_id=key_id if isinstance(key_id, str) else "",
        checkpoint=(size, root) if size is not None and isinstance(root, str) else None,
        vaults=tuple(vaults),
    )


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
