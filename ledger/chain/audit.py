"""``reserve audit``: reconcile the books with the chain and say what does not match.

Three steps, so no database transaction is ever held across a call to the node:

1. **gather** — :func:`read_books` (one read-only session: vaults, every vault-type account,
   live on-chain entries with their vault legs, the journal's own verification, the highest
   address index issued per vault) and :func:`read_chain` (RPC: each vault wallet's view, one
   ``scantxoutset`` pass over every vault descriptor as far as the wallets watch and addresses
   were issued, the raw transactions, where recorded blocks stand);
   then :func:`read_outflows` (a short read: every transaction spending a vault's outputs, gated
   or not, with the gate's facts for the others: :mod:`ledger.chain.outflows`);
2. **judge** — :func:`ledger.chain.audit_judge.judge`, pure: findings, pending movements, totals,
   the outflows judged against the gate (the values in and out: :mod:`ledger.chain.audit_report`);
3. **write** — :func:`store_audit` (one short transaction): checks the journal is still the one
   audited, signs a checkpoint of it, keeps the audit row and appends an ``audit`` record to the
   tamper-evident log (so a changed audit row is caught by ``ledger verify``).

The report's JSON form (``schema`` = ``reserve-ledger-audit/v2``) is documented in
``docs/audit.md``.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from custody.chain import ChainTx, block_places, fetch_transactions
from custody.errors import CustodyError
from custody.rpc import RpcClient
from custody.wallet import ScanResult, scan_vaults
from custody.wallet_txs import wallet_tx_states
from custody.wallet_view import WalletView, read_wallet_view
from ledger.chain.audit_history import past_audit_findings, past_audits
from ledger.chain.audit_judge import conflicted_txids, judge
from ledger.chain.audit_report import (
    SCHEMA,
    AuditReport,
    BookedEntry,
    Books,
    ChainFacts,
    EntryCheck,
    Finding,
    FindingCode,
    Pending,
    VaultAccount,
    VaultBalances,
    VaultFacts,
)
from ledger.chain.issuance import issued_ranges
from ledger.chain.outflows import Outflows, acknowledged_outflows, gather_outflows
from ledger.chain.recording import VaultScripts
from ledger.chain.vaults import Vault, list_vaults
from ledger.errors import Conflict, LedgerError
from ledger.journal.balances import balance, is_reserve
from ledger.journal.book import last_seq
from ledger.journal.entry import RESERVE_ACCOUNT_TYPE
from ledger.journal.keychain import key_findings, trusted_public_keys
from ledger.journal.proofs import make_checkpoint
from ledger.journal.verify import verify_ledger
from ledger.store.audit_models import AuditRow
from ledger.store.models import AccountRow, CheckpointRow, EntryRow, PostingRow

__all__ = [
    "SCHEMA",
    "AuditReport",
    "EntryCheck",
    "Finding",
    "FindingCode",
    "Gathered",
    "Pending",
    "VaultBalances",
    "audit_of",
    "read_books",
    "read_chain",
    "read_outflows",
    "run_audit",
    "store_audit",
]

TIP_ATTEMPTS = 3
"""The chain is read again when a block arrives while it is being read (at most this often)."""


# --- gather: the books ------------------------------------------------------------------------


def _live_seqs(session: Session) -> set[int]:
    """Entries that are neither reversals nor reversed."""
    reversed_seqs = set(
        session.scalars(select(EntryRow.reverses_seq).where(EntryRow.reverses_seq.is_not(None)))
    )
    live = session.scalars(select(EntryRow.seq).where(EntryRow.reverses_seq.is_(None)))
    return {s for s in live if s not in reversed_seqs}


def _vault_postings(session: Session) -> list[tuple[int, str, int]]:
    """(seq, account, amount) of every posting to a vault-type account."""
    rows = session.execute(
        select(PostingRow.entry_seq, AccountRow.name, PostingRow.amount)
        .join(AccountRow, AccountRow.id == PostingRow.account_id)
        .where(AccountRow.type == RESERVE_ACCOUNT_TYPE)
        .order_by(PostingRow.entry_seq)
    ).all()
    return [(int(s), str(a), int(n)) for s, a, n in rows]


@dataclass(frozen=True, slots=True)
class Gathered:
    """What the database says: the books as the judge sees them, the vaults (descriptors) and
    the highest address index issued per vault (``ledger.chain.issuance.issued_ranges``)."""

    books: Books
    vaults: tuple[Vault, ...]
    issued: Mapping[str, int]


def read_books(session: Session, public_key_pem: bytes) -> Gathered:
    """Everything the audit needs from the database; only reads."""
    keys = trusted_public_keys(session, public_key_pem)  # the key file's, and keys rotated from
    verification = verify_ledger(session, keys)
    key_problems = key_findings(session, public_key_pem)
    live = _live_seqs(session)
    postings = _vault_postings(session)
    figures = balance(session)
    vault_accounts = tuple(
        VaultAccount(
            a.name,
            a.amount,
            tuple(sorted({s for s, acct, _ in postings if acct == a.name and s in live})),
        )
        for a in figures.accounts
        if is_reserve(a.type)
    )
    legs: dict[int, dict[str, int]] = defaultdict(dict)
    for seq, account, amount in postings:
        legs[seq][account] = legs[seq].get(account, 0) + amount
    rows = session.execute(
        select(EntryRow.seq, EntryRow.txid, EntryRow.kind, EntryRow.block_hash, EntryRow.block_height)
        .where(EntryRow.txid.is_not(None), EntryRow.block_hash.is_not(None), EntryRow.kind != "reversal")
        .order_by(EntryRow.seq)  # chain bookings only: a manual entry's txid is a note, not a booking
    ).all()
    entries = tuple(
        BookedEntry(
            seq=r.seq,
            txid=str(r.txid),
            kind=r.kind,
            block_hash=r.block_hash,
            block_height=r.block_height,
            vault_legs=tuple(sorted(legs.get(r.seq, {}).items())),
        )
        for r in rows
        if r.seq in live
    )
    stored = list_vaults(session, include_retired=True)
    vaults = tuple(VaultFacts(v.name, v.account, v.wallet_name, v.retired) for v in stored)
    books = Books(
        tree_size=verification.entries,
        root=verification.root.hex(),
        verification=tuple((text, verification.first_bad_seq) for text in verification.findings),
        key_problems=tuple(key_problems),
        reserve=figures.reserve,
        vaults=vaults,
        vault_accounts=vault_accounts,
        entries=entries,
        past_audits=past_audits(session),
    )
    return Gathered(books, tuple(stored), issued_ranges(session))


# --- gather: the chain ------------------------------------------------------------------------


def read_chain(rpc: RpcClient, gathered: Gathered) -> ChainFacts:
    """Everything the audit needs from the node, read again if a block arrives meanwhile."""
    for _ in range(TIP_ATTEMPTS):
        facts = _read_chain_once(rpc, gathered)
        if rpc.get_blockchain_info().best_block_hash == facts.scan.best_block == facts.best_block:
            return facts
    raise LedgerError(
        f"the node's chain kept moving while it was read ({TIP_ATTEMPTS} tries); "
        "run `reserve audit` again when blocks arrive less often"
    )


def _read_chain_once(rpc: RpcClient, gathered: Gathered) -> ChainFacts:
    vaults = gathered.vaults
    info = rpc.get_blockchain_info()
    wallets: dict[str, WalletView | None] = {v.name: read_wallet_view(rpc, v.wallet_name) for v in vaults}
    # scan at least as far as the wallet watches and as addresses were ever issued
    ranges = {
        v.name: max((w.range_end or 0) if (w := wallets[v.name]) else 0, gathered.issued.get(v.name, 0))
        for v in vaults
    }
    scripts = VaultScripts.of(vaults, ranges)
    scan = ScanResult(info.blocks, info.best_block_hash, ())
    if vaults:
        try:
            scan = scan_vaults(
                rpc,
                [
                    (d, scripts.ranges[v.name] - 1)
                    for v in vaults
                    for d in (v.descriptor.receive(), v.descriptor.change())
                ],
            )
        except CustodyError as exc:  # keeps its type (scan in progress, node unreachable, ...)
            exc.add_note("the audit's UTXO scan failed; nothing was stored")
            raise
    entries = gathered.books.entries
    known = {t.txid for w in wallets.values() if w for t in w.transactions if not t.conflicted}
    wanted = sorted({e.txid for e in entries} | known | {o.txid for o in scan.outputs})
    wallet_names = [v.wallet_name for v in vaults]
    txs = fetch_transactions(rpc, wanted, wallets=wallet_names)
    # a recorded transaction that is not confirmed: ask the wallets directly (listtransactions
    # leaves out a deposit conflicted by a transaction that pays no vault)
    unconfirmed = [e.txid for e in entries if not _confirmed(txs.get(e.txid))]
    states = wallet_tx_states(rpc, wallet_names, unconfirmed) if unconfirmed else {}
    # where booked entries' blocks stand, and the blocks past audit records say they saw
    audited = [a.best_block for a in gathered.books.past_audits]
    places = block_places(rpc, [e.block_hash for e in entries if e.block_hash] + audited)
    return ChainFacts(
        chain=info.chain,
        height=info.blocks,
        best_block=info.best_block_hash,
        scan=scan,
        by_script=scripts.by_script,
        ranges=dict(scripts.ranges),
        wallets=wallets,
        entry_states=states,
        txs=txs,
        places=places,
    )


def _confirmed(tx: ChainTx | None) -> bool:
    return tx is not None and tx.block is not None and tx.block.in_best_chain


def read_outflows(session: Session, gathered: Gathered, chain: ChainFacts) -> Outflows:
    """The books' side of every transaction the chain read found spending a vault's outputs
    (:mod:`ledger.chain.outflows`: gated or not, the gate's facts and limits for the others) and
    the acknowledged ones; a short read after the chain was read."""
    conflicts = conflicted_txids(chain.wallets, chain.entry_states)
    txs = [
        t
        for t in chain.txs.values()
        if t.txid not in conflicts and (t.block is None or t.block.in_best_chain)
    ]
    items = gather_outflows(session, txs, chain.by_script, chain.ranges, chain.height, gathered.vaults)
    return Outflows(items, acknowledged_outflows(session))


def run_audit(session: Session, rpc: RpcClient, public_key_pem: bytes, *, min_conf: int = 1) -> AuditReport:
    """Gather (``session`` is only read) and judge; nothing is written (see :func:`store_audit`)."""
    gathered = read_books(session, public_key_pem)
    chain = read_chain(rpc, gathered)
    outflows = read_outflows(session, gathered, chain)
    return audit_of(gathered.books, chain, min_conf=min_conf, outflows=outflows)


def audit_of(
    books: Books, chain: ChainFacts, *, min_conf: int, outflows: Outflows | None = None
) -> AuditReport:
    """Judge gathered facts (stamped with the time of judging)."""
    now = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    report = judge(books, chain, min_conf=min_conf, audited_at=now, outflows=outflows)
    forged = past_audit_findings(books.past_audits, chain.places)
    return dataclasses.replace(report, findings=report.findings + forged) if forged else report


# --- write ------------------------------------------------------------------------------------


def _refuse_if_appended(session: Session, report: AuditReport) -> None:
    """:class:`Conflict` when entries were appended since the audit read the journal.

    Entries are numbered 1..N, so the highest number is the count the audit read, unless an
    entry was inserted past a gap outside the service (seq 9999 after 41): then the count tells,
    and the gap is a finding of the audit's own verification, not a race to run again for.
    """
    now = last_seq(session)
    if now == report.tree_size:
        return
    count = int(session.scalar(select(func.count()).select_from(EntryRow)) or 0)
    if count != report.tree_size:
        raise Conflict(
            f"the journal has {count} entries but the audit read {report.tree_size}: it changed while "
            "the audit ran; run `reserve audit` again"
        )


def store_audit(session: Session, report: AuditReport, key: Ed25519PrivateKey) -> tuple[int, int | None]:
    """Sign a checkpoint of the tree the audit covered, keep the audit row and commit its result
    to the log as an ``audit`` record, in the caller's (short, write) transaction.

    Refuses (:class:`Conflict`) when the journal changed since it was read for the audit.
    Returns (audit id, checkpoint id); no checkpoint for an empty journal, nor for one that failed
    its own verification or whose signing key may not sign (a checkpoint never signs a tampered
    journal, nor with a replaced key).
    """
    from ledger.journal.records import RecordKind, append_record, audit_body

    _refuse_if_appended(session, report)
    checkpoint_id = None
    # a journal that fails its own verification, or a key that may not sign, signs nothing: the
    # audit is kept alone
    unsigned = (FindingCode.LEDGER_VERIFICATION, FindingCode.SIGNING_KEY)
    verified = not any(f.code in unsigned for f in report.findings)
    if report.tree_size and verified:
        cp = make_checkpoint(session, key)
        if cp.root.hex() != report.root:
            raise Conflict(
                "the journal's root changed while the audit ran; run `reserve audit` again "
                "(and `reserve ledger verify` if nothing else writes to it)"
            )
        checkpoint_id = session.scalar(select(func.max(CheckpointRow.id)))
    text = json.dumps(report.to_json(), sort_keys=True)
    row = AuditRow(
        tree_size=report.tree_size,
        root=bytes.fromhex(report.root),
        checkpoint_id=checkpoint_id,
        min_conf=report.min_conf,
        height=report.height,
        best_block=report.best_block,
        findings=len(report.findings),
        ok=report.ok,
        report=text,
    )
    session.add(row)
    session.flush()
    append_record(
        session,
        RecordKind.AUDIT,
        audit_body(
            audit_id=row.id,
            tree_size=row.tree_size,
            root=row.root,
            checkpoint_id=checkpoint_id,
            height=row.height,
            best_block=row.best_block,
            min_conf=row.min_conf,
            findings=row.findings,
            ok=row.ok,
            report=text,
        ),
    )
    return row.id, checkpoint_id
