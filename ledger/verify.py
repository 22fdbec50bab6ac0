"""Verify the whole journal against its own hashes and its signed checkpoints, in one pass.

:func:`verify_ledger` streams every entry with its postings (keyset pages: memory stays flat)
and reports, as findings rather than exceptions:

- an entry number out of sequence (entries deleted, inserted or renumbered): seqs must be 1..N;
- an entry whose canonical bytes no longer hash to its stored leaf hash (an amount, account,
  memo, date or any other field changed after it was recorded);
- postings that break double entry (fewer than two, a zero amount, not summing to zero);
- a checkpoint whose signature does not verify with the given public key (a changed checkpoint);
- a checkpoint whose root is not the root of the first ``tree_size`` entries as they are now
  (history rewritten after it was signed: entries swapped, or the tail cut and different entries
  appended), or which covers more entries than exist (the tail cut).

The prefix roots for the checkpoints are noted as the streaming Merkle root passes each
checkpoint's size, so there is a single read of the journal.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ledger.checkpoint import Checkpoint, verify_checkpoint
from ledger.errors import InvalidInput
from ledger.journal import PAGE, iter_stored
from ledger.merkle import EMPTY_ROOT, MerkleAccumulator, ProofError, leaf_hash
from ledger.models import CheckpointRow


@dataclass(frozen=True, slots=True)
class VerifyReport:
    ok: bool
    entries: int
    root: bytes  # root of the tree of every stored entry, as it is now
    checkpoints: int
    findings: tuple[str, ...]
    first_bad_seq: int | None  # the first entry found changed, missing or out of place

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "entries": self.entries,
            "root": self.root.hex(),
            "checkpoints": self.checkpoints,
            "findings": list(self.findings),
            "first_bad_seq": self.first_bad_seq,
        }


def stored_checkpoints(session: Session) -> list[tuple[int, Checkpoint | str]]:
    """Every checkpoint row by id: the checkpoint, or why it cannot be read."""
    out: list[tuple[int, Checkpoint | str]] = []
    for row in session.scalars(select(CheckpointRow).order_by(CheckpointRow.id)):
        try:
            cp: Checkpoint | str = Checkpoint(
                tree_size=row.tree_size,
                root=bytes(row.root),
                timestamp=row.timestamp,
                key_id=row.key_id,
                signature=bytes(row.signature),
            )
        except InvalidInput as e:
            cp = f"checkpoint #{row.id} is malformed: {e}"
        out.append((row.id, cp))
    return out


def verify_ledger(session: Session, public_key_pem: bytes, page: int = PAGE) -> VerifyReport:
    """Check every entry and every checkpoint; see the module docstring for what is checked."""
    findings: list[str] = []
    bad_seqs: list[int] = []

    pending: dict[int, list[tuple[int, Checkpoint]]] = defaultdict(list)
    checkpoints = stored_checkpoints(session)
    for cp_id, cp in checkpoints:
        if isinstance(cp, str):
            findings.append(cp)
            continue
        try:
            verify_checkpoint(public_key_pem, cp)
        except ProofError as e:
            findings.append(
                f"checkpoint #{cp_id} (tree size {cp.tree_size}) does not verify: {e}; "
                "it was changed or was not signed by this ledger's key"
            )
            continue
        pending[cp.tree_size].append((cp_id, cp))
    good_sizes: list[int] = []  # sizes of checkpoints that matched, to narrow the damage

    def check_prefix(size: int, root: bytes) -> None:
        for cp_id, cp in pending.pop(size, []):
            if cp.root == root:
                good_sizes.append(size)
                continue
            lo = max((s for s in good_sizes if s < size), default=0) + 1
            findings.append(
                f"checkpoint #{cp_id} (tree size {size}) signed root {cp.root.hex()}, but the "
                f"first {size} entries now have root {root.hex()}: history was rewritten after "
                f"it was signed (entries {lo}..{size} changed, swapped, removed or replaced)"
            )

    acc = MerkleAccumulator()
    check_prefix(0, EMPTY_ROOT)
    expected = 1
    for stored in iter_stored(session, page=page):
        seq = stored.seq
        if seq != expected:
            if seq > expected:
                findings.append(
                    f"entries {expected}..{seq - 1} are missing: the numbers jump from "
                    f"{expected - 1} to {seq} (entries were deleted or renumbered)"
                )
            else:
                findings.append(f"entry {seq} appears out of order after entry {expected - 1}")
            bad_seqs.append(min(seq, expected))
        expected = seq + 1
        try:
            computed = leaf_hash(stored.encode())
        except InvalidInput as e:
            findings.append(f"entry {seq} cannot be encoded: {e}")
            bad_seqs.append(seq)
            computed = stored.leaf_hash
        if computed != stored.leaf_hash:
            findings.append(
                f"entry {seq} does not match its leaf hash: its content (an amount, account, "
                "memo, date or other field) was changed after it was recorded"
            )
            bad_seqs.append(seq)
        amounts = [amount for _, _, amount in stored.postings]
        if len(amounts) < 2 or 0 in amounts or sum(amounts) != 0:
            findings.append(
                f"entry {seq} breaks double entry: postings {amounts} (need two or more non-zero "
                f"amounts summing to zero; they sum to {sum(amounts)})"
            )
            bad_seqs.append(seq)
        acc.append(computed)
        if acc.size in pending:
            check_prefix(acc.size, acc.root())
    for size in sorted(pending):
        for cp_id, _cp in pending[size]:
            findings.append(
                f"checkpoint #{cp_id} covers {size} entries but the journal now has only "
                f"{acc.size}: entries {acc.size + 1}..{size} were removed"
            )
        bad_seqs.append(acc.size + 1)
    return VerifyReport(
        ok=not findings,
        entries=acc.size,
        root=acc.root(),
        checkpoints=len(checkpoints),
        findings=tuple(findings),
        first_bad_seq=min(bad_seqs) if bad_seqs else None,
    )
