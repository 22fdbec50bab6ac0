"""Verify the whole journal against its own hashes and its signed checkpoints, in one pass.

:func:`verify_ledger` streams every entry with its postings (keyset pages: memory stays flat)
and reports, as findings rather than exceptions:

- an entry number out of sequence (entries deleted, inserted or renumbered): seqs must be 1..N;
- an entry whose canonical bytes no longer hash to its stored leaf hash (an amount, account,
  memo, date or any other field changed after it was recorded);
- postings that break double entry (fewer than two, a zero amount, not summing to zero), or a
  log record (:mod:`ledger.journal.records`) with postings or a memo that is not a JSON object;
- a checkpoint whose signature does not verify with any of the trusted public keys (a changed
  checkpoint, or one signed by a key outside the chain of key rotations);
- a checkpoint whose root is not the root of the first ``tree_size`` entries as they are now
  (history rewritten after it was signed: entries swapped, or the tail cut and different entries
  appended), or which covers more entries than exist (the tail cut). Checkpoints held outside
  the database (``extra_checkpoints``, e.g. exported with ``ledger checkpoint --export``) are
  checked exactly like stored ones, so a cut tail is found even when every stored checkpoint
  was deleted with it;
- a gap in the stored checkpoint ids (they must be 1..N: a checkpoint row was deleted);
- tree heads (:class:`ledger.journal.heads.HeadCheck`): each must be signed by a trusted key and
  match the root and the account balances of the entries it covers; entries beyond the latest
  valid head were not written by the service (a database role that can INSERT but does not hold
  the key appended them);
- stored audits: each audit row must match its ``audit`` record in the log (and the other way
  round), the tree each covered must still have the root it saw, and the checkpoint it names
  must exist;
- vaults: each vault's rows must match its ``vault-added`` / ``vault-retired`` records
  (:func:`ledger.chain.vaults.vault_findings`);
- spending policy changes, spend events and attestations: each row must match the log record it
  names, and its PSBT or document must still hash to the digest the record committed to
  (:func:`ledger.journal.table_records.table_record_findings`);
- values checked when read (:func:`record_value_findings`): an issued address index outside
  ``0..9,999``, a spend's ``spend_inputs`` rows that are not its proposal record's inputs; and
  (in :func:`ledger.chain.vaults.vault_findings`) a key serving two vaults, in any order.

The prefix roots for the checkpoints and audits are noted as the streaming Merkle root passes
each one's size, so there is a single read of the journal.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ledger.chain.issuance import issued_findings
from ledger.chain.vaults import vault_findings
from ledger.errors import InvalidInput
from ledger.governance.changes import governance_findings
from ledger.journal.book import PAGE, iter_stored_rows
from ledger.journal.canonical import encode_entry_fields
from ledger.journal.checkpoint import Checkpoint, verify_checkpoint
from ledger.journal.entry import RECORD_KINDS
from ledger.journal.heads import HeadCheck
from ledger.journal.merkle import EMPTY_ROOT, MerkleAccumulator, ProofError, leaf_hash
from ledger.journal.records import RecordKind, audit_body
from ledger.journal.table_records import spend_input_findings, table_record_findings
from ledger.store.audit_models import AuditRow
from ledger.store.models import CheckpointRow, EntryRow
from ledger.verify_proof import key_id


@dataclass(frozen=True, slots=True)
class VerifyReport:
    ok: bool
    entries: int
    root: bytes  # root of the tree of every stored entry, as it is now
    checkpoints: int
    findings: tuple[str, ...]
    first_bad_seq: int | None  # the first entry found changed, missing or out of place
    outside_checkpoints: int = 0  # checkpoints given from outside the database

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "entries": self.entries,
            "root": self.root.hex(),
            "checkpoints": self.checkpoints,
            "outside_checkpoints": self.outside_checkpoints,
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


@dataclass(frozen=True, slots=True)
class _Prefix:
    """Something that saw the first ``size`` entries with ``root``: a checkpoint or an audit."""

    label: str  # "checkpoint #3", "exported checkpoint 1 (timestamp ...)", "audit #2", ...
    size: int
    root: bytes
    signed: bool


def _signature_problem(keys: dict[str, bytes], cp: Checkpoint) -> str | None:
    pem = keys.get(cp.key_id)
    if pem is None:
        if len(keys) == 1:  # the single-key message names both keys
            pem = next(iter(keys.values()))
        else:
            return f"it names key {cp.key_id}, which is not one of the trusted keys ({', '.join(keys)})"
    try:
        verify_checkpoint(pem, cp)
    except ProofError as e:
        return str(e)
    return None


def _checkpoint_prefixes(
    session: Session, keys: dict[str, bytes], extra: Sequence[Checkpoint], findings: list[str]
) -> tuple[list[_Prefix], list[int]]:
    """Stored and outside checkpoints whose signature verifies; ids of the stored ones."""
    prefixes: list[_Prefix] = []
    ids: list[int] = []
    labelled: list[tuple[str, Checkpoint | str]] = []
    for cp_id, cp in stored_checkpoints(session):
        ids.append(cp_id)
        labelled.append((f"checkpoint #{cp_id}", cp))
    for i, cp in enumerate(extra, 1):
        labelled.append((f"outside checkpoint {i} (timestamp {cp.timestamp})", cp))
    for label, cp in labelled:
        if isinstance(cp, str):
            findings.append(cp)
            continue
        problem = _signature_problem(keys, cp)
        if problem is not None:
            findings.append(
                f"{label} (tree size {cp.tree_size}) does not verify: {problem}; "
                "it was changed or was not signed by this ledger's key"
            )
            continue
        prefixes.append(_Prefix(label, cp.tree_size, cp.root, signed=True))
    expected = 1
    for cp_id in ids:
        if cp_id > expected:
            findings.append(
                f"checkpoint ids jump from {expected - 1} to {cp_id}: checkpoint(s) "
                f"#{expected}..#{cp_id - 1} were deleted (checkpoints are numbered 1..N)"
            )
        expected = max(expected, cp_id + 1)
    return prefixes, ids


def _audit_findings(session: Session, checkpoint_ids: Sequence[int]) -> tuple[list[str], list[_Prefix]]:
    """Audit rows against their ``audit`` records, and the trees they covered (to check)."""
    findings: list[str] = []
    prefixes: list[_Prefix] = []
    recorded: dict[int, tuple[int, dict[str, Any]]] = {}
    for seq, memo in session.execute(
        select(EntryRow.seq, EntryRow.memo)
        .where(EntryRow.kind == RecordKind.AUDIT.value)
        .order_by(EntryRow.seq)
    ):
        try:
            body = json.loads(memo)
        except ValueError:
            body = None
        if (
            not isinstance(body, dict)
            or isinstance(body.get("audit_id"), bool)
            or not isinstance(body.get("audit_id"), int)
        ):
            findings.append(f"audit record #{seq} is not an audit record (no audit_id): {memo[:80]!r}")
            continue
        if body["audit_id"] in recorded:
            findings.append(
                f"audit #{body['audit_id']} has two audit records (#{recorded[body['audit_id']][0]}, #{seq})"
            )
            continue
        recorded[body["audit_id"]] = (seq, body)
        root = body.get("root")
        size = body.get("tree_size")
        if isinstance(size, int) and isinstance(root, str):
            try:
                prefixes.append(_Prefix(f"audit record #{seq}", size, bytes.fromhex(root), signed=False))
            except ValueError:
                findings.append(f"audit record #{seq} has a malformed root {root!r}")
    known_checkpoints = set(checkpoint_ids)
    seen: set[int] = set()
    for row in session.scalars(select(AuditRow).order_by(AuditRow.id)):
        seen.add(row.id)
        stored = audit_body(
            audit_id=row.id,
            tree_size=row.tree_size,
            root=bytes(row.root),
            checkpoint_id=row.checkpoint_id,
            height=row.height,
            best_block=row.best_block,
            min_conf=row.min_conf,
            findings=row.findings,
            ok=row.ok,
            report=row.report,
        )
        prefixes.append(_Prefix(f"audit #{row.id}", row.tree_size, bytes(row.root), signed=False))
        if row.checkpoint_id is not None and row.checkpoint_id not in known_checkpoints:
            findings.append(
                f"audit #{row.id} names checkpoint #{row.checkpoint_id}, which is missing: "
                "it was deleted behind the application's back"
            )
        if row.id not in recorded:
            findings.append(
                f"audit #{row.id} has no audit record in the log: it was inserted behind the "
                "application's back"
            )
            continue
        seq, body = recorded[row.id]
        for field, value in stored.items():
            if body.get(field) != value:
                what = "report" if field == "report_sha256" else field
                findings.append(
                    f"audit #{row.id}: its {what} in the database ({value!r}) differs from its audit "
                    f"record #{seq} ({body.get(field)!r}): it was changed behind the application's back"
                )
    for audit_id, (seq, _body) in sorted(recorded.items()):
        if audit_id not in seen:
            findings.append(
                f"audit #{audit_id} was recorded by audit record #{seq} but its row is missing: it was "
                "deleted behind the application's back"
            )
    return findings, prefixes


def verify_ledger(
    session: Session,
    public_keys: bytes | Sequence[bytes],
    page: int = PAGE,
    *,
    extra_checkpoints: Sequence[Checkpoint] = (),
) -> VerifyReport:
    """Check every entry, checkpoint, stored audit and vault; see the module docstring.

    ``public_keys`` is the ledger's public key (PEM), or every trusted key (the chain of key
    rotations); a checkpoint must verify with the key it names. ``extra_checkpoints`` are
    checkpoints held outside the database, checked exactly like stored ones.
    """
    keys_pem = (public_keys,) if isinstance(public_keys, bytes) else tuple(public_keys)
    keys = {key_id(pem): pem for pem in keys_pem}
    findings: list[str] = []
    bad_seqs: list[int] = []

    checkpoint_prefixes, checkpoint_ids = _checkpoint_prefixes(session, keys, extra_checkpoints, findings)
    heads = HeadCheck(session, keys)
    audit_problems, audit_prefixes = _audit_findings(session, checkpoint_ids)
    pending: dict[int, list[_Prefix]] = defaultdict(list)
    for prefix in checkpoint_prefixes + audit_prefixes:
        pending[prefix.size].append(prefix)
    good_sizes: list[int] = []  # sizes of signed checkpoints that matched, to narrow the damage

    def check_prefix(size: int, root: bytes) -> None:
        for prefix in pending.pop(size, []):
            if prefix.root == root:
                if prefix.signed:
                    good_sizes.append(size)
                continue
            lo = max((s for s in good_sizes if s < size), default=0) + 1
            verb, when = ("signed", "was signed") if prefix.signed else ("saw", "ran")
            findings.append(
                f"{prefix.label} (tree size {size}) {verb} root {prefix.root.hex()}, but the "
                f"first {size} entries now have root {root.hex()}: history was rewritten after "
                f"it {when} (entries {lo}..{size} changed, swapped, removed or replaced)"
            )

    acc = MerkleAccumulator()
    check_prefix(0, EMPTY_ROOT)
    expected = 1
    for row in iter_stored_rows(session, page=page):  # plain tuples: no object per entry
        seq, kind, date, memo, ref, reverses_seq, txid, outputs, block_hash, block_height = row[:10]
        stored, postings = row[10], row[11]
        if seq != expected:
            if seq > expected:
                findings.append(_gap_finding(expected - 1, seq))
            else:
                findings.append(f"entry {seq} appears out of order after entry {expected - 1}")
            bad_seqs.append(min(seq, expected))
        expected = seq + 1
        try:
            computed = leaf_hash(
                encode_entry_fields(
                    seq=seq,
                    kind=kind,
                    date=date,
                    memo=memo,
                    ref=ref,
                    reverses_seq=reverses_seq,
                    txid=txid,
                    outputs=outputs,
                    block_hash=block_hash,
                    block_height=block_height,
                    postings=postings,
                )
            )
        except InvalidInput as e:
            findings.append(f"entry {seq} cannot be encoded: {e}")
            bad_seqs.append(seq)
            computed = stored
        if computed != stored:
            findings.append(
                f"entry {seq} does not match its leaf hash: its content (an amount, account, "
                "memo, date or other field) was changed after it was recorded"
            )
            bad_seqs.append(seq)
        problem = _shape_problem(kind, memo, [amount for _, _, amount in postings])
        if problem is not None:
            findings.append(f"entry {seq} {problem}")
            bad_seqs.append(seq)
        acc.append(computed)
        heads.count(postings)
        if acc.size in pending:
            check_prefix(acc.size, acc.root())
        if acc.size == heads.next_size:
            heads.reached(acc.size, acc.root())
    for size in sorted(pending):
        for prefix in pending[size]:
            findings.append(
                f"{prefix.label} covers {size} entries but the journal now has only "
                f"{acc.size}: entries {acc.size + 1}..{size} were removed"
            )
        bad_seqs.append(acc.size + 1)
    uncovered = heads.finish(acc.size)
    if uncovered is not None:
        bad_seqs.append(uncovered)
    findings += heads.findings
    findings += audit_problems
    findings += vault_findings(session)
    findings += table_record_findings(session)
    findings += record_value_findings(session)
    findings += governance_findings(session)
    return VerifyReport(
        ok=not findings,
        entries=acc.size,
        root=acc.root(),
        checkpoints=len(checkpoint_ids),
        findings=tuple(findings),
        first_bad_seq=min(bad_seqs) if bad_seqs else None,
        outside_checkpoints=len(extra_checkpoints),
    )


def _gap_finding(before: int, seq: int) -> str:
    """An entry numbered ``seq`` right after entry ``before`` (``seq > before + 1``): the service
    numbers entries 1..N under the journal lock, so one past a gap was written outside it, or the
    entries between were deleted."""
    return (
        f"entry {seq} follows {before}: seq must be contiguous (inserted outside the service, or "
        f"entries {before + 1}..{seq - 1} are missing: deleted or renumbered)"
    )


def record_value_findings(session: Session) -> list[str]:
    """Log records whose values the service never writes (bounds checked when read): an
    ``addresses-issued`` index outside ``0..9,999``, a spend's held coins (``spend_inputs``) that
    are not its proposal's inputs. Readers ignore or refuse what these name."""
    return issued_findings(session) + spend_input_findings(session)


def _shape_problem(kind: str, memo: str, amounts: list[int]) -> str | None:
    """Why an entry's postings do not fit its kind (``None`` when they do)."""
    if kind in RECORD_KINDS:
        if amounts:
            return f"is a {kind} record but has postings {amounts}; records have none"
        try:
            body = json.loads(memo)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return f"is a {kind} record but its memo is not a JSON object"
        return None
    if len(amounts) < 2 or 0 in amounts or sum(amounts) != 0:
        return (
            f"breaks double entry: postings {amounts} (need two or more non-zero "
            f"amounts summing to zero; they sum to {sum(amounts)})"
        )
    return None
