"""The ledger's signing keys over time: which keys may sign, and how one hands over to the next.

One Ed25519 key signs the ledger's checkpoints (and, through them, its audits). Replacing it is
an explicit handover, never a silent swap of the key file:

- ``reserve ledger rotate-key --new-key FILE`` appends a ``key-rotated`` record to the journal
  whose body is the key rotation document of :mod:`ledger.verify_proof` (both public keys, their
  key ids, the tree size and root just before the record, and the OLD key's signature over
  :func:`~ledger.verify_proof.rotation_message`), then signs a checkpoint with the new key. The
  record is a leaf of the Merkle tree, so every later checkpoint covers it.
- :func:`trusted_public_keys` follows those records from a key one trusts (the key file, or the
  auditor's ``--pubkey``) to every key linked to it, each link checked with the older key's
  signature; checkpoints by any of them verify.
- :func:`check_signing_key` is what :func:`ledger.journal.proofs.make_checkpoint` asks before signing:
  a key that is not linked to the keys of the stored checkpoints, or that was handed over
  already, never signs over the old history (:class:`~ledger.errors.TamperDetected`).
- :func:`key_findings` says what ``reserve ledger verify`` reports about keys.

Pure judging over values read with one query each; nothing here writes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ledger.errors import InvalidInput, TamperDetected
from ledger.journal.checkpoint import Checkpoint, public_key_pem, verify_checkpoint
from ledger.journal.records import Record, RecordKind, records
from ledger.store.models import CheckpointRow
from ledger.verify_proof import (
    ROTATION_FORMAT,
    ProofError,
    key_id,
    rotation_message,
    verify_rotation_document,
)

_USE_NEW_KEY = "sign with the new key: point --signing-key or RESERVE_SIGNING_KEY at its file"


@dataclass(frozen=True, slots=True)
class Rotation:
    """A checked handover: entry ``seq`` of the journal, signed by the old key."""

    seq: int
    old_key_id: str
    new_key_id: str
    old_public_key: bytes  # PEM
    new_public_key: bytes  # PEM
    tree_size: int  # the journal before the record: always seq - 1
    root: bytes


@dataclass(frozen=True, slots=True)
class KeyChain:
    """The rotations of a journal: the valid ones in log order, and why others are invalid."""

    rotations: tuple[Rotation, ...]
    problems: tuple[str, ...]

    def retired(self, kid: str) -> Rotation | None:
        """The first rotation that handed key ``kid`` over, if any."""
        return next((r for r in self.rotations if r.old_key_id == kid), None)

    def predecessors(self, pem: bytes) -> list[bytes]:
        """``pem`` and every key it was handed over from, newest first."""
        chain, seen = [pem], {key_id(pem)}
        for rot in reversed(self.rotations):
            if rot.new_key_id == key_id(chain[-1]) and rot.old_key_id not in seen:
                chain.append(rot.old_public_key)
                seen.add(rot.old_key_id)
        return chain

    def linked(self, pem: bytes) -> list[bytes]:
        """Every key linked to ``pem``, oldest first: its predecessors, ``pem``, its successors."""
        return [*reversed(self.predecessors(pem)), *self.successors(pem)]

    def successors(self, pem: bytes) -> list[bytes]:
        """The keys ``pem`` was handed over to, in order (without ``pem``)."""
        chain, seen = [pem], {key_id(pem)}
        for rot in self.rotations:
            if rot.old_key_id == key_id(chain[-1]) and rot.new_key_id not in seen:
                chain.append(rot.new_public_key)
                seen.add(rot.new_key_id)
        return chain[1:]


def rotation_body(
    old_key: Ed25519PrivateKey, new_public_pem: bytes, tree_size: int, root: bytes
) -> dict[str, Any]:
    """The body of a ``key-rotated`` record: the handover document, signed by ``old_key``."""
    old_pem = public_key_pem(old_key)
    if key_id(old_pem) == key_id(new_public_pem):
        raise InvalidInput(f"the new key is the current key {key_id(old_pem)}; give a different key file")
    return {
        "format": ROTATION_FORMAT,
        "old_public_key": old_pem.decode("ascii"),
        "old_key_id": key_id(old_pem),
        "new_public_key": new_public_pem.decode("ascii"),
        "new_key_id": key_id(new_public_pem),
        "tree_size": tree_size,
        "root": root.hex(),
        "signature": old_key.sign(rotation_message(old_pem, new_public_pem, tree_size, root)).hex(),
    }


def parse_rotation(record: Record) -> Rotation:
    """The checked rotation of a ``key-rotated`` record; :class:`InvalidInput` says what is wrong."""
    body = record.body
    where = f"key rotation record (entry {record.seq})"
    old = body.get("old_public_key")
    if not isinstance(old, str) or not old.isascii():
        raise InvalidInput(f"{where} has no old public key")
    try:
        new_pem = verify_rotation_document(body, old.encode("ascii"))
    except (ProofError, KeyError, TypeError) as exc:
        raise InvalidInput(f"{where} does not verify: {exc}") from exc
    if body["tree_size"] != record.seq - 1:
        raise InvalidInput(
            f"{where} was signed for tree size {body['tree_size']} but stands at entry {record.seq}: "
            "it was copied or moved"
        )
    return Rotation(
        seq=record.seq,
        old_key_id=body["old_key_id"],
        new_key_id=body["new_key_id"],
        old_public_key=old.encode("ascii"),
        new_public_key=new_pem,
        tree_size=body["tree_size"],
        root=bytes.fromhex(body["root"]),
    )


def judge_rotations(found: Iterable[Record]) -> KeyChain:
    valid: list[Rotation] = []
    problems: list[str] = []
    for record in found:
        try:
            valid.append(parse_rotation(record))
        except InvalidInput as exc:
            problems.append(str(exc))
    return KeyChain(rotations=tuple(valid), problems=tuple(problems))


def key_chain(session: Session) -> KeyChain:
    """Every key rotation of the journal, checked."""
    try:
        found = records(session, RecordKind.KEY_ROTATED)
    except InvalidInput as exc:
        return KeyChain(rotations=(), problems=(f"the key rotation records cannot be read: {exc}",))
    return judge_rotations(found)


def trusted_public_keys(session: Session, current_pem: bytes) -> list[bytes]:
    """Every key linked to ``current_pem`` by valid rotation records, oldest first.

    The chain runs from the first key through ``current_pem`` to any key it handed over to (so an
    auditor holding an old key follows the handovers); each link is signed by its older key.
    """
    return key_chain(session).linked(current_pem)


def _checkpoint_signers(session: Session) -> list[tuple[str, int]]:
    """(key id, latest checkpoint id) per signing key of the stored checkpoints, latest first."""
    rows = session.execute(
        select(CheckpointRow.key_id, func.max(CheckpointRow.id))
        .group_by(CheckpointRow.key_id)
        .order_by(func.max(CheckpointRow.id).desc())
    ).all()
    return [(str(k), int(i)) for k, i in rows]


def unretired_chain(session: Session, current_pem: bytes) -> KeyChain:
    """The key chain, after checking its records verify and that ``current_pem`` was not handed
    over to another key (:class:`TamperDetected` otherwise): what a tree head's signer needs,
    the head before it then verifying with one of ``chain.predecessors(current_pem)``."""
    chain = key_chain(session)
    kid = key_id(current_pem)
    if chain.problems:
        raise TamperDetected(
            f"{chain.problems[0]}; refusing to sign; run `reserve ledger verify` to see what changed"
        )
    handover = chain.retired(kid)
    if handover is not None:
        raise TamperDetected(
            f"signing key {kid} was handed over to key {handover.new_key_id} by entry "
            f"{handover.seq} and signs nothing any more; {_USE_NEW_KEY}"
        )
    return chain


def check_signing_key(session: Session, current_pem: bytes) -> None:
    """Raise :class:`TamperDetected` unless the key ``current_pem`` may sign a checkpoint now.

    It may when it has not been handed over to another key and every stored checkpoint was
    signed by it or by a key it took over from through valid rotation records.
    """
    chain = unretired_chain(session, current_pem)
    kid = key_id(current_pem)
    if chain.problems:
        raise TamperDetected(
            f"{chain.problems[0]}; refusing to sign; run `reserve ledger verify` to see what changed"
        )
    handover = chain.retired(kid)
    if handover is not None:
        raise TamperDetected(
            f"signing key {kid} was handed over to key {handover.new_key_id} by entry "
            f"{handover.seq} and signs nothing any more; {_USE_NEW_KEY}"
        )
    trusted = {key_id(pem) for pem in chain.predecessors(current_pem)}
    if chain.rotations and chain.rotations[-1].new_key_id not in trusted:
        last = chain.rotations[-1]
        raise TamperDetected(
            f"key mismatch: entry {last.seq} handed the ledger over to key {last.new_key_id}, but the "
            f"signing key file holds key {kid}, which no key-rotation record links to it, so the key "
            "file was replaced; refusing to sign over the old history. Restore the key file of "
            f"key {last.new_key_id}"
        )
    foreign = [(k, i) for k, i in _checkpoint_signers(session) if k not in trusted]
    if foreign:
        other, cp_id = foreign[0]
        raise TamperDetected(
            f"key mismatch: the signing key file holds key {kid}, but checkpoint #{cp_id} was "
            f"signed by key {other} and no key-rotation record links that key to this one, so "
            "the key file was replaced; refusing to sign over the old history. Restore the "
            "original key file; to change keys, run `reserve ledger rotate-key --new-key FILE` "
            "with the original key in place"
        )
    _check_latest_signature(session, {key_id(pem): pem for pem in chain.predecessors(current_pem)})


def _check_latest_signature(session: Session, keys: dict[str, bytes]) -> None:
    """The latest checkpoint's signature must verify with the key it names (a key id column
    rewritten to the new key's would otherwise pass the check above)."""
    row = session.scalar(select(CheckpointRow).order_by(CheckpointRow.id.desc()).limit(1))
    if row is None:
        return
    try:
        cp = Checkpoint(
            tree_size=row.tree_size,
            root=bytes(row.root),
            timestamp=row.timestamp,
            key_id=row.key_id,
            signature=bytes(row.signature),
        )
        verify_checkpoint(keys[cp.key_id], cp)
    except (InvalidInput, ProofError) as exc:
        raise TamperDetected(
            f"the latest checkpoint #{row.id} does not verify with key {row.key_id}: {exc}; refusing "
            "to sign; run `reserve ledger verify` to see what changed"
        ) from exc


def key_findings(session: Session, current_pem: bytes, *, from_key_file: bool = True) -> list[str]:
    """What ``ledger verify`` reports about keys, given the key it verifies with."""
    chain = key_chain(session)
    findings = list(chain.problems)
    kid = key_id(current_pem)
    trusted = [key_id(pem) for pem in chain.linked(current_pem)]
    whose = "the signing key file" if from_key_file else "the given public key"
    signers = session.execute(
        select(CheckpointRow.id, CheckpointRow.key_id, CheckpointRow.tree_size).order_by(CheckpointRow.id)
    ).all()
    by_key: dict[str, list[int]] = {}
    for cp_id, signer, _size in signers:
        by_key.setdefault(str(signer), []).append(int(cp_id))
    for signer, ids in by_key.items():
        if signer not in trusted:
            findings.append(
                f"key mismatch: {len(ids)} checkpoint(s) ({_ids(ids)}) were signed by key "
                f"{signer}, which is neither key {kid} of {whose} nor a key linked to it by a "
                "key-rotation record: the signing key file was replaced (restore the original) "
                "or these checkpoints were forged"
            )
    if chain.rotations and chain.rotations[-1].new_key_id not in trusted:
        last = chain.rotations[-1]
        findings.append(
            f"key mismatch: entry {last.seq} handed the ledger over to key {last.new_key_id}, which is "
            f"neither key {kid} of {whose} nor a key linked to it by a key-rotation record"
        )
    findings += _handover_findings(chain, trusted, [(int(i), str(k), int(s)) for i, k, s in signers])
    return findings


def _handover_findings(
    chain: KeyChain, trusted: Sequence[str], signers: Sequence[tuple[int, str, int]]
) -> list[str]:
    findings: list[str] = []
    for rot in chain.rotations:
        if rot.old_key_id not in trusted:
            continue
        late = [cp_id for cp_id, signer, size in signers if signer == rot.old_key_id and size >= rot.seq]
        if late:
            findings.append(
                f"checkpoint(s) {_ids(late)} cover entry {rot.seq} or later but were signed by key "
                f"{rot.old_key_id}, which entry {rot.seq} handed over to key {rot.new_key_id}: "
                "a retired key was used (or the checkpoints were forged)"
            )
        if not any(signer == rot.new_key_id and size >= rot.seq for _, signer, size in signers):
            findings.append(
                f"entry {rot.seq} handed the key over to {rot.new_key_id}, and a checkpoint signed by "
                f"it was stored right after, but no checkpoint by that key covering entry {rot.seq} "
                "is left: checkpoints were deleted"
            )
    return findings


def _ids(ids: Sequence[int]) -> str:
    shown = ", ".join(f"#{i}" for i in ids[:5])
    return shown + (f" and {len(ids) - 5} more" if len(ids) > 5 else "")
