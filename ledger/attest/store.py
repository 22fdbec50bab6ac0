"""Attestations in the books: what they read from the database, and how they are kept.

- :func:`read_vaults`: the vaults to attest (retired ones too: a retired vault may still hold
  coins) as custody's :class:`~custody.chain_at.VaultSpec` and the document's
  :class:`~ledger.attest.document.VaultInfo`;
- :func:`ledger_at_checkpoint`: signs a checkpoint of the journal as it is (the ledger "at the
  same moment") and reads its entries' canonical bytes and the vault-type balances after them;
- :func:`store_attestation`: appends an ``attestation`` record (height, block, tree size, root and
  the document's SHA-256) to the Merkle log and keeps the document in ``attestations`` (append-only,
  the row names its record); :func:`list_attestations` reads them back and cross-checks every row
  with its record and with its own document's hash, so a changed row is reported.

Service functions take the caller's session; the caller gathers from the node before opening the
write transaction (gather, judge, write).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from custody.chain_at import Snapshot, VaultSpec
from ledger.attest.document import LedgerAt, VaultInfo, build_document, sign_document, with_controls
from ledger.attest.verify_doc import (
    canonical_bytes,
    document_sha256,
    verify_attestation,
    verify_attestation_signature,
)
from ledger.chain.issuance import issued_ranges
from ledger.chain.vaults import get_vault, list_vaults
from ledger.errors import InvalidInput, NotFound, TamperDetected
from ledger.journal.balances import verified_balance
from ledger.journal.book import iter_stored
from ledger.journal.checkpoint import public_key_pem
from ledger.journal.proofs import make_checkpoint
from ledger.journal.records import RecordKind, append_record, records
from ledger.store.spend_models import AttestationRow
from ledger.verify_proof import ProofError, strict_json_loads


def read_vaults(session: Session) -> tuple[tuple[VaultSpec, ...], tuple[VaultInfo, ...]]:
    """Every vault, retired or not, as the chain reader and the document need it."""
    vaults = list_vaults(session, include_retired=True)
    issued = issued_ranges(session)
    specs = tuple(VaultSpec(v.name, v.wallet_name, v.descriptor, issued.get(v.name, 0)) for v in vaults)
    infos = tuple(VaultInfo(v.name, v.account, str(v.descriptor), v.threshold, v.holders) for v in vaults)
    return specs, infos


def ledger_at_checkpoint(session: Session, key: Ed25519PrivateKey) -> LedgerAt:
    """Sign a checkpoint of the journal now (in the caller's write transaction) and read what the
    document carries of it: every entry's canonical bytes and the vault accounts' balances, as the
    tree head that the checkpoint covers signed them (:func:`~ledger.journal.balances.verified_balance`)."""
    cp = make_checkpoint(session, key)
    entries = []
    for stored in iter_stored(session):
        if stored.seq > cp.tree_size:
            break
        entries.append(stored.encode())
    figures = verified_balance(session, public_key_pem(key), None, cp.tree_size)
    if not figures.ok:  # the checkpoint just signed covers a signed head: cannot happen untampered
        raise TamperDetected(
            f"the vault balances at the checkpoint do not verify: {figures.findings[0]}; "
            "run `reserve ledger verify`"
        )
    vault_accounts = {a.name: a.amount for a in figures.balances.accounts if a.in_reserve}
    return LedgerAt(cp, tuple(entries), vault_accounts)


@dataclass(frozen=True, slots=True)
class StoredAttestation:
    """A kept attestation: its row, its record's number, and what the cross-checks found."""

    id: int
    height: int
    block_hash: str
    sha256: str
    record_seq: int
    created_at: str
    findings: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "height": self.height,
            "block_hash": self.block_hash,
            "sha256": self.sha256,
            "record_seq": self.record_seq,
            "created_at": self.created_at,
            "findings": list(self.findings),
        }


def attestation_body(doc: dict[str, Any]) -> dict[str, Any]:
    """The ``attestation`` record's body: what binds the stored document to the log."""
    cp = doc["ledger"]["checkpoint"]
    return {
        "height": doc["height"],
        "block_hash": doc["block_hash"],
        "tree_size": cp["tree_size"],
        "root": cp["root"],
        "sha256": document_sha256(doc),
    }


def store_attestation(session: Session, doc: dict[str, Any]) -> StoredAttestation:
    """Keep a signed document: its log record, then its row (in the caller's transaction)."""
    if "signature" not in doc:
        raise InvalidInput("an attestation is stored only once signed")
    entry = append_record(session, RecordKind.ATTESTATION, attestation_body(doc))
    row = AttestationRow(
        height=doc["height"],
        block_hash=doc["block_hash"],
        document=canonical_bytes(doc).decode("ascii"),
        sha256=document_sha256(doc),
        record_seq=entry.seq,
    )
    session.add(row)
    session.flush()
    return StoredAttestation(row.id, row.height, row.block_hash, row.sha256, entry.seq, "", ())


def _findings(
    row: AttestationRow, bodies: dict[int, dict[str, Any]], public_keys: Sequence[bytes] | None = None
) -> tuple[str, ...]:
    found = []
    body = bodies.get(row.record_seq)
    if body is None:
        found.append(
            f"attestation #{row.id} names record {row.record_seq}, which is not an attestation record"
        )
    try:
        doc = strict_json_loads(row.document)
        actual = document_sha256(doc)
    except (ProofError, TypeError) as exc:
        return (*found, f"attestation #{row.id}: its stored document cannot be read: {exc}")
    if row.document != canonical_bytes(doc).decode("ascii"):
        found.append(
            f"attestation #{row.id}: its stored text is not the canonical JSON the ledger writes "
            "(what `attest show` and the site hand out would differ from what was signed)"
        )
    if actual != row.sha256:
        found.append(f"attestation #{row.id}: its document hashes to {actual}, the row says {row.sha256}")
    if public_keys is not None and "signature" in verify_attestation_signature(doc, public_keys):
        found.append(f"attestation #{row.id}: its document is not signed by a trusted ledger key")
    if body is not None:
        for name, value in (("sha256", actual), ("height", row.height), ("block_hash", row.block_hash)):
            if body.get(name) != value:
                found.append(
                    f"attestation #{row.id}: {name} {value} differs from its log record "
                    f"#{row.record_seq} ({body.get(name)})"
                )
    return tuple(found)


def list_attestations(
    session: Session, public_keys: Sequence[bytes] | None = None
) -> tuple[tuple[StoredAttestation, ...], tuple[str, ...]]:
    """Every kept attestation, oldest first, each cross-checked with its record (and, given the
    trusted ledger keys, its document's signature: a row and record appended together by someone
    without the key agree with each other); and the problems of the log as a whole (an
    attestation record whose row is gone)."""
    bodies = {r.seq: r.body for r in records(session, RecordKind.ATTESTATION)}
    rows = session.scalars(select(AttestationRow).order_by(AttestationRow.id)).all()
    out_of_order: dict[int, str] = {}  # a row INSERTed later naming an earlier record: a replay
    last = 0
    for r in rows:
        if r.record_seq <= last:
            out_of_order[r.id] = (
                f"attestation #{r.id} names record #{r.record_seq}, but an earlier row names record "
                f"#{last}: each record has one row, kept in the records' order (a copy of an older "
                "attestation was inserted behind the application's back)"
            )
        last = max(last, r.record_seq)
    listed = tuple(
        StoredAttestation(
            r.id,
            r.height,
            r.block_hash,
            r.sha256,
            r.record_seq,
            r.created_at.isoformat(timespec="seconds") if r.created_at else "",
            (*_findings(r, bodies, public_keys), *([out_of_order[r.id]] if r.id in out_of_order else [])),
        )
        for r in rows
    )
    claimed = {r.record_seq for r in rows}
    orphans = tuple(
        f"attestation record #{seq} has no attestation row: a row was deleted"
        for seq in bodies
        if seq not in claimed
    )
    return listed, orphans


def get_document(session: Session, attestation_id: int) -> dict[str, Any]:
    """The stored document of attestation ``attestation_id``."""
    row = session.get(AttestationRow, attestation_id)
    if row is None:
        raise NotFound(f"no attestation #{attestation_id}; `reserve attest list` shows them")
    try:
        doc: dict[str, Any] = strict_json_loads(row.document)
    except ProofError as exc:
        raise TamperDetected(
            f"attestation #{row.id}: its stored document cannot be read ({exc}); run `reserve attest list`"
        ) from exc
    return doc


# --- the service: draft, sign, keep ---------------------------------------------------------------


def draft_attestation(
    session: Session,
    key: Ed25519PrivateKey,
    chain: Snapshot,
    vaults: Sequence[VaultInfo],
    created_at: str,
) -> dict[str, Any]:
    """Sign a checkpoint now and the document binding it to ``chain`` (no proof of control yet);
    nothing else is written. The caller gathered ``chain`` before opening this transaction."""
    ledger = ledger_at_checkpoint(session, key)
    return sign_document(build_document(chain, vaults, ledger, created_at=created_at), key)


def write_attestation(
    session: Session,
    key: Ed25519PrivateKey,
    chain: Snapshot,
    vaults: Sequence[VaultInfo],
    created_at: str,
) -> tuple[dict[str, Any], StoredAttestation]:
    """``reserve attest``: a checkpoint, the signed document (without proof of control), kept."""
    doc = draft_attestation(session, key, chain, vaults, created_at)
    return doc, store_attestation(session, doc)


def check_draft(doc: Any, public_keys: Sequence[bytes]) -> dict[str, Any]:
    """A draft this ledger signed, every offline check passing (its proofs of control aside)."""
    result = verify_attestation(doc, public_keys)
    failed = [f"{c.name}: {f}" for c in result.checks if c.name != "control" for f in c.findings]
    if failed:
        raise InvalidInput("the draft attestation does not verify: " + "; ".join(failed[:5]))
    return dict(doc)


def control_outputs(vault_doc: Mapping[str, Any]) -> list[tuple[str, int, int, bytes, int, int]]:
    """A vault's outputs in a document as :mod:`ledger.attest.control` takes them."""
    return [
        (o["txid"], o["vout"], o["amount"], bytes.fromhex(o["script_pubkey"]), o["branch"], o["index"])
        for o in vault_doc["outputs"]
    ]


def control_message_of(doc: Mapping[str, Any], vault: str) -> bytes:
    """The message the vault's holders sign for this document (block and checkpoint)."""
    from ledger.attest.control import control_message

    cp = doc["ledger"]["checkpoint"]
    return control_message(
        network=doc["network"],
        height=doc["height"],
        block_hash=doc["block_hash"],
        tree_size=cp["tree_size"],
        root=cp["root"],
        vault=vault,
    )


def control_requests(session: Session, doc: Mapping[str, Any]) -> list[tuple[str, str, str]]:
    """``(vault, address, base64 PSBT)`` for every funded address of every vault: what the
    holders sign, through the same PSBT flow as a spend."""
    from ledger.attest.control import prepare_control

    out = []
    for v in doc["vaults"]:
        if v["outputs"]:
            vault = get_vault(session, v["name"])
            message = control_message_of(doc, v["name"])
            out += [(v["name"], a, p) for a, p in prepare_control(vault, control_outputs(v), message)]
    return out


def finish_controls(
    session: Session, doc: Mapping[str, Any], signed: Sequence[str | bytes]
) -> dict[str, dict[str, Any]]:
    """Every funded vault's proof of control from the holders' signed PSBTs (routed to their vault
    by the unsigned transaction they sign). Reads only."""
    from custody.psbt import Psbt
    from ledger.attest.control import finish_control

    vault_of = {Psbt.parse(p).tx.txid: name for name, _, p in control_requests(session, doc)}
    routed: dict[str, list[str | bytes]] = {name: [] for name in vault_of.values()}
    for text in signed:
        txid = Psbt.parse(text).tx.txid
        if txid not in vault_of:
            raise InvalidInput(
                f"signed PSBT for transaction {txid} belongs to none of this attestation's proofs; "
                "sign the PSBTs `reserve attest prepare` wrote for it"
            )
        routed[vault_of[txid]].append(text)
    controls = {}
    for v in doc["vaults"]:
        if v["outputs"]:
            vault = get_vault(session, v["name"])
            message = control_message_of(doc, v["name"])
            controls[v["name"]] = finish_control(
                vault, control_outputs(v), message, routed.get(v["name"], [])
            )
    return controls


def finish_attestation(
    session: Session, key: Ed25519PrivateKey, draft: dict[str, Any], controls: Mapping[str, dict[str, Any]]
) -> tuple[dict[str, Any], StoredAttestation]:
    """The draft with its proofs of control, signed again and kept."""
    doc = sign_document(with_controls(draft, controls), key)
    return doc, store_attestation(session, doc)
