"""Signed checkpoints of the journal and the proof documents built on them.

- :func:`make_checkpoint` signs (tree size, root, time) for the journal as it is and stores it;
  it first checks that the journal still extends the previous checkpoint, that every entry
  recorded since then still matches its leaf hash and that the key is the ledger's
  (:mod:`ledger.journal.keychain`), so a checkpoint never blesses tampering or a swapped key.
- :func:`rotate_key` hands the signing key over: the old key signs a ``key-rotated`` record,
  the new key signs a checkpoint covering it.
- :func:`inclusion_document` proves one entry is in the tree of the latest checkpoint.
- :func:`consistency_document` proves an older checkpoint's tree is a prefix of a newer one.

The documents' formats are defined in :mod:`ledger.verify_proof`, the auditors' verifier.
"""

from __future__ import annotations

import time
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from ledger.errors import Conflict, NotFound, TamperDetected
from ledger.journal.book import get_entry, iter_leaf_hashes, iter_stored
from ledger.journal.checkpoint import Checkpoint, public_key_pem, sign_checkpoint
from ledger.journal.entry import Entry
from ledger.journal.heads import (
    Sealer,
    TreeHead,
    add_postings,
    latest_head_row,
    require_covered,
    seal,
    sign_head,
    store_head,
)
from ledger.journal.keychain import check_signing_key, key_chain, rotation_body
from ledger.journal.merkle import MerkleAccumulator, consistency_proof, inclusion_proof, leaf_hash, root_of
from ledger.journal.records import RecordKind, append_record
from ledger.store.db import lock_journal
from ledger.store.models import CheckpointRow
from ledger.verify_proof import CONSISTENCY_FORMAT, INCLUSION_FORMAT, key_id

_RUN_VERIFY = "run `reserve ledger verify` to see what changed"


def _checkpoint(row: CheckpointRow) -> Checkpoint:
    return Checkpoint(
        tree_size=row.tree_size,
        root=bytes(row.root),
        timestamp=row.timestamp,
        key_id=row.key_id,
        signature=bytes(row.signature),
    )


def latest_checkpoint(session: Session) -> Checkpoint | None:
    row = session.scalar(
        select(CheckpointRow).order_by(CheckpointRow.tree_size.desc(), CheckpointRow.id.desc()).limit(1)
    )
    return None if row is None else _checkpoint(row)


def list_checkpoints(session: Session) -> tuple[Checkpoint, ...]:
    return tuple(_checkpoint(r) for r in session.scalars(select(CheckpointRow).order_by(CheckpointRow.id)))


def make_checkpoint(session: Session, key: Ed25519PrivateKey, timestamp: int | None = None) -> Checkpoint:
    """Sign and store a checkpoint of the whole journal as it is now.

    Refuses (:class:`TamperDetected`) when the journal no longer extends the latest checkpoint,
    when an entry since then no longer matches its leaf hash, when the latest tree head signed by
    the ledger key does not cover exactly this tree (entries appended behind the service's back,
    :func:`~ledger.journal.heads.require_covered`), or when ``key`` is not the key
    that signed the stored checkpoints (nor one they handed over to by a key-rotation record):
    a replaced key file never signs over the old history.
    """
    lock_journal(session)
    pem = public_key_pem(key)
    check_signing_key(session, pem)
    seal(session, Sealer(key))  # this transaction's own entries (a key rotation's record)
    acc = _checked_tree(session)
    require_covered(session, pem, acc)
    cp = sign_checkpoint(key, acc.size, acc.root(), int(time.time()) if timestamp is None else timestamp)
    session.add(
        CheckpointRow(
            tree_size=cp.tree_size,
            root=cp.root,
            timestamp=cp.timestamp,
            key_id=cp.key_id,
            signature=cp.signature,
        )
    )
    session.flush()
    return cp


def rotate_key(
    session: Session, old_key: Ed25519PrivateKey, new_key: Ed25519PrivateKey, timestamp: int | None = None
) -> tuple[Entry, Checkpoint]:
    """Hand the ledger over from ``old_key`` to ``new_key``; returns the record and the checkpoint.

    ``old_key`` must be the key allowed to sign now (:func:`~ledger.journal.keychain.check_signing_key`)
    and the journal must check out as for a checkpoint. The old key signs the handover
    (:func:`~ledger.journal.keychain.rotation_body`), which is appended as a ``key-rotated`` record; then
    the new key signs a checkpoint covering it. From then on only the new key signs.
    """
    lock_journal(session)
    old_pem, new_pem = public_key_pem(old_key), public_key_pem(new_key)
    check_signing_key(session, old_pem)
    chain = key_chain(session)
    used = {r.old_key_id for r in chain.rotations} | {r.new_key_id for r in chain.rotations}
    used |= {str(k) for k in session.scalars(select(CheckpointRow.key_id).distinct())}
    if key_id(new_pem) in used or key_id(new_pem) == key_id(old_pem):
        raise Conflict(
            f"key {key_id(new_pem)} has signed for this ledger before; hand over to a fresh key "
            "(give a --new-key path that does not exist yet, and it is created)"
        )
    acc = _checked_tree(session)
    entry = append_record(
        session, RecordKind.KEY_ROTATED, rotation_body(old_key, new_pem, acc.size, acc.root())
    )
    return entry, make_checkpoint(session, new_key, timestamp)


def seal_existing(session: Session, key: Ed25519PrivateKey, timestamp: int | None = None) -> TreeHead | None:
    """``reserve init``: when no tree head is stored yet (a new database, or one upgraded from
    before tree heads), sign one over every entry there is, after checking each against its leaf
    hash and the tree against the latest checkpoint; ``None`` when heads exist already (never
    a second time: that would sign over rows inserted since)."""
    lock_journal(session)
    if latest_head_row(session) is not None:
        return None
    check_signing_key(session, public_key_pem(key))
    acc = _checked_tree(session)
    totals: dict[str, tuple[str, int]] = {}
    for stored in iter_stored(session):
        if leaf_hash(stored.encode()) != stored.leaf_hash:
            raise TamperDetected(
                f"entry {stored.seq} no longer matches its leaf hash; refusing to sign a tree head "
                f"over it; {_RUN_VERIFY}"
            )
        add_postings(totals, stored.postings)
    head = sign_head(key, acc, totals, int(time.time()) if timestamp is None else timestamp)
    store_head(session, head)
    return head


def _checked_tree(session: Session) -> MerkleAccumulator:
    """The journal's tree, after checking it still extends the latest checkpoint and that every
    entry since then matches its leaf hash (the caller holds the journal lock)."""
    previous = latest_checkpoint(session)
    acc = MerkleAccumulator()
    for seq, h in iter_leaf_hashes(session):
        if seq != acc.size + 1:
            raise TamperDetected(f"entry numbers jump from {acc.size} to {seq}; {_RUN_VERIFY}")
        acc.append(h)
        if previous is not None and acc.size == previous.tree_size and acc.root() != previous.root:
            raise TamperDetected(
                f"the first {previous.tree_size} entries no longer have the root of the latest "
                f"checkpoint; refusing to sign; {_RUN_VERIFY}"
            )
    start = 1
    if previous is not None:
        if acc.size < previous.tree_size:
            raise TamperDetected(
                f"the journal has {acc.size} entries, fewer than the {previous.tree_size} of "
                f"the latest checkpoint; refusing to sign; {_RUN_VERIFY}"
            )
        start = previous.tree_size + 1
    for stored in iter_stored(session, start=start):
        if leaf_hash(stored.encode()) != stored.leaf_hash:
            raise TamperDetected(
                f"entry {stored.seq} no longer matches its leaf hash; refusing to sign; {_RUN_VERIFY}"
            )
    return acc


def _leaves(session: Session, cp: Checkpoint) -> list[bytes]:
    """The leaf hashes of the checkpoint's tree, checked against its root."""
    leaves = [h for _, h in iter_leaf_hashes(session, upto=cp.tree_size)]
    if len(leaves) != cp.tree_size or root_of(leaves) != cp.root:
        raise TamperDetected(
            f"the first {cp.tree_size} entries no longer match the checkpoint of that size; {_RUN_VERIFY}"
        )
    return leaves


def _checkpoint_of_size(session: Session, size: int) -> Checkpoint:
    row = session.scalar(
        select(CheckpointRow)
        .where(CheckpointRow.tree_size == size)
        .order_by(CheckpointRow.id.desc())
        .limit(1)
    )
    if row is None:
        sizes = sorted({cp.tree_size for cp in list_checkpoints(session)})
        raise NotFound(
            f"no checkpoint of tree size {size}; the checkpoints have sizes {sizes or 'none yet'} "
            "(`reserve ledger checkpoint` makes one of the current size)"
        )
    return _checkpoint(row)


def inclusion_document(session: Session, seq: int) -> dict[str, Any]:
    """Proof that entry ``seq`` is in the tree of the latest checkpoint."""
    entry = get_entry(session, seq)
    cp = latest_checkpoint(session)
    if cp is None:
        raise NotFound("there is no checkpoint yet; run `reserve ledger checkpoint` first")
    if seq > cp.tree_size:
        raise NotFound(
            f"entry {seq} is newer than the latest checkpoint (tree size {cp.tree_size}); "
            "run `reserve ledger checkpoint` first"
        )
    leaves = _leaves(session, cp)
    stored = next(iter_stored(session, start=seq, page=1))
    data = stored.encode()
    if leaf_hash(data) != entry.leaf_hash or entry.leaf_hash != leaves[seq - 1]:
        raise TamperDetected(f"entry {seq} no longer matches its leaf hash; {_RUN_VERIFY}")
    return {
        "format": INCLUSION_FORMAT,
        "seq": seq,
        "leaf_index": seq - 1,
        "entry_hex": data.hex(),
        "leaf_hash": entry.leaf_hash.hex(),
        "tree_size": cp.tree_size,
        "root": cp.root.hex(),
        "proof": [h.hex() for h in inclusion_proof(seq - 1, leaves)],
        "checkpoint": cp.to_json(),
    }


def consistency_document(session: Session, old_size: int, new_size: int) -> dict[str, Any]:
    """Proof that the checkpoint of ``old_size`` is a prefix of the checkpoint of ``new_size``."""
    if old_size > new_size:
        raise NotFound(f"old size {old_size} is larger than new size {new_size}; swap them")
    old = _checkpoint_of_size(session, old_size)
    new = _checkpoint_of_size(session, new_size)
    leaves = _leaves(session, new)
    if root_of(leaves[:old_size]) != old.root:
        raise TamperDetected(
            f"the first {old_size} entries no longer match the checkpoint of that size; {_RUN_VERIFY}"
        )
    return {
        "format": CONSISTENCY_FORMAT,
        "old": old.to_json(),
        "new": new.to_json(),
        "proof": [h.hex() for h in consistency_proof(old_size, leaves)],
    }
