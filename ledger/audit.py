"""``reserve audit``: reconcile the books with the chain and say what does not match.

For each vault and in total it puts side by side the ledger balance; the chain balance from the
vault's watch-only wallet (confirmed, unconfirmed, immature) and, independently, from one
``scantxoutset`` pass over every vault descriptor (split into confirmed at ``min_conf`` or more,
shallower, and immature coinbase). It re-checks every recorded on-chain entry (transaction in the
best chain, recorded block still on it, confirmations, amounts re-derived from the raw
transaction), lists unrecorded movements, transactions booked twice, conflicted or replaced
transactions, and runs the ledger's own verification.

Judging returns findings (:class:`Finding`); only "cannot run at all" raises. The report's JSON
form (``schema`` = ``reserve-ledger-audit/v1``) is documented in ``docs/audit.md``.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from custody.amount import format_btc, sat_from_rpc
from custody.chain import COINBASE_MATURITY, block_places, fetch_transactions
from custody.rpc import RpcClient
from ledger.audit_models import AuditRow
from ledger.balances import balance
from ledger.models import AccountRow, CheckpointRow, EntryRow, PostingRow
from ledger.movement import classify, describe, postings_for
from ledger.proofs import make_checkpoint
from ledger.recording import VaultScripts, wallet_ranges
from ledger.sync import wallet_txids
from ledger.vaults import Vault, list_vaults
from ledger.verify import verify_ledger

SCHEMA = "reserve-ledger-audit/v1"


@dataclass(frozen=True, slots=True)
class Finding:
    code: str  # balance-mismatch, wallet-scan-mismatch, unrecorded, recorded-twice, not-in-best-chain,
    # shallow, missing-transaction, conflicted, amount-mismatch, ledger-verification
    message: str
    vault: str | None = None
    txid: str | None = None
    seq: int | None = None


@dataclass(frozen=True, slots=True)
class VaultBalances:
    vault: str
    ledger: int
    wallet_confirmed: int
    wallet_unconfirmed: int
    wallet_immature: int
    scan_confirmed: int  # >= min_conf confirmations, mature
    scan_shallow: int  # 1 .. min_conf-1 confirmations, mature
    scan_immature: int  # coinbase with < 100 confirmations
    utxos: int

    @property
    def chain_total(self) -> int:
        return self.scan_confirmed + self.scan_shallow + self.scan_immature


@dataclass(frozen=True, slots=True)
class EntryCheck:
    seq: int
    txid: str
    kind: str
    recorded_block: str | None
    recorded_height: int | None
    current_block: str | None
    current_height: int | None
    confirmations: int
    recorded_block_in_best_chain: bool
    status: str  # ok | moved | shallow | not-in-best-chain | missing


@dataclass(frozen=True, slots=True)
class AuditReport:
    schema: str
    audited_at: str
    min_conf: int
    chain: str
    height: int
    best_block: str
    tree_size: int
    root: str
    vaults: tuple[VaultBalances, ...]
    entries: tuple[EntryCheck, ...]
    findings: tuple[Finding, ...]
    totals: dict[str, int] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return not self.findings

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["ok"] = self.ok
        return data


def _wallet_balances(rpc: RpcClient, vault: Vault) -> tuple[int, int, int]:
    w = rpc.wallet(vault.wallet_name)
    mine = w.call("getbalances")["mine"]
    confirmed = sum(sat_from_rpc(u["amount"]) for u in w.call("listunspent", 1))
    return confirmed, sat_from_rpc(mine["untrusted_pending"]), sat_from_rpc(mine["immature"])


def _scan(
    rpc: RpcClient, vaults: Sequence[Vault], scripts: VaultScripts, height: int, min_conf: int
) -> dict[str, list[int]]:
    """One scantxoutset pass: per vault [confirmed>=min_conf, shallow, immature, utxo count]."""
    objs = [
        {"desc": d, "range": [0, scripts.ranges[v.name] - 1]}
        for v in vaults
        for d in (v.descriptor.receive(), v.descriptor.change())
    ]
    out: dict[str, list[int]] = {v.name: [0, 0, 0, 0] for v in vaults}
    if not objs:
        return out
    result = rpc.call("scantxoutset", "start", objs)
    for u in result["unspents"]:
        vault = scripts.by_script.get(bytes.fromhex(u["scriptPubKey"]))
        if vault is None or vault not in out:
            continue
        conf = height - int(u["height"]) + 1
        sat = sat_from_rpc(u["amount"])
        # the wallet's rule: a coinbase is immature until it has COINBASE_MATURITY + 1 confirmations
        immature = u.get("coinbase") and conf <= COINBASE_MATURITY
        slot = 2 if immature else (0 if conf >= min_conf else 1)
        out[vault][slot] += sat
        out[vault][3] += 1
    return out


def _legs(legs: dict[str, int]) -> str:
    return ", ".join(f"{a} {format_btc(n)}" for a, n in sorted(legs.items())) or "nothing"


def _balances(
    session: Session,
    rpc: RpcClient,
    vaults: Sequence[Vault],
    scripts: VaultScripts,
    height: int,
    min_conf: int,
) -> tuple[list[VaultBalances], list[Finding]]:
    """Ledger, watch-only wallet and one UTXO scan side by side, per vault."""
    findings: list[Finding] = []
    scan = _scan(rpc, vaults, scripts, height, min_conf)
    rows = []
    ledger_balances = {a.name: a.amount for a in balance(session).accounts}
    for v in vaults:
        wc, wu, wi = _wallet_balances(rpc, v)
        sc, ss, si, n = scan[v.name]
        vb = VaultBalances(v.name, ledger_balances.get(v.account, 0), wc, wu, wi, sc, ss, si, n)
        rows.append(vb)
        if vb.ledger != vb.chain_total:
            findings.append(
                Finding(
                    "balance-mismatch",
                    f"vault {v.name}: ledger {format_btc(vb.ledger)} BTC but the chain holds "
                    f"{format_btc(vb.chain_total)} BTC "
                    f"(difference {format_btc(vb.chain_total - vb.ledger)} BTC)",
                    vault=v.name,
                )
            )
        if wc + wi != vb.chain_total:
            findings.append(
                Finding(
                    "wallet-scan-mismatch",
                    f"vault {v.name}: watch-only wallet sees {format_btc(wc + wi)} BTC confirmed but "
                    f"the UTXO scan finds {format_btc(vb.chain_total)} BTC; "
                    f"run `reserve vault watch {v.name}` (rescan)",
                    vault=v.name,
                )
            )
    return rows, findings


ChainEntry = tuple[int, str, str, str | None, int | None]  # seq, txid, kind, block hash, height


def _live_chain_entries(session: Session) -> list[ChainEntry]:
    """Recorded on-chain entries that are not reversals and not reversed."""
    rows = session.execute(
        select(EntryRow.seq, EntryRow.txid, EntryRow.kind, EntryRow.block_hash, EntryRow.block_height).where(
            EntryRow.txid.is_not(None), EntryRow.kind != "reversal"
        )
    ).all()
    reversed_seqs = set(
        session.scalars(select(EntryRow.reverses_seq).where(EntryRow.reverses_seq.is_not(None)))
    )
    return [
        (r.seq, str(r.txid), r.kind, r.block_hash, r.block_height) for r in rows if r.seq not in reversed_seqs
    ]


def _vault_legs(session: Session) -> dict[int, dict[str, int]]:
    """seq -> {vault account: amount} of every on-chain entry."""
    legs: dict[int, dict[str, int]] = defaultdict(dict)
    for seq, account, amount in session.execute(
        select(PostingRow.entry_seq, AccountRow.name, PostingRow.amount)
        .join(AccountRow, AccountRow.id == PostingRow.account_id)
        .join(EntryRow, EntryRow.seq == PostingRow.entry_seq)
        .where(EntryRow.txid.is_not(None), AccountRow.type == "vault")
    ):
        legs[seq][account] = legs[seq].get(account, 0) + amount
    return legs


def _check_entries(
    session: Session, rpc: RpcClient, vaults: Sequence[Vault], scripts: VaultScripts, min_conf: int
) -> tuple[list[EntryCheck], list[Finding], set[str]]:
    """Every recorded on-chain entry against the chain; also returns the booked txids."""
    findings: list[Finding] = []
    entry_rows = _live_chain_entries(session)
    by_txid: dict[str, list[int]] = defaultdict(list)
    for seq, txid, *_ in entry_rows:
        by_txid[txid].append(seq)
    for dup, seqs in by_txid.items():
        if len(seqs) > 1:
            findings.append(
                Finding(
                    "recorded-twice",
                    f"transaction {dup} is booked {len(seqs)} times: entries {seqs}",
                    txid=dup,
                )
            )
    txs = fetch_transactions(rpc, sorted(by_txid))
    vault_accounts = {v.account for v in vaults}
    vault_legs = _vault_legs(session)
    places = block_places(rpc, [e[3] for e in entry_rows if e[3]])
    checks = []
    for seq, txid, kind, rec_hash, rec_height in entry_rows:
        tx = txs.get(txid)
        rec_ok = rec_hash is not None and places[rec_hash].in_best_chain
        if tx is None:
            status = "missing"
            findings.append(
                Finding(
                    "missing-transaction",
                    f"entry #{seq}: transaction {txid} is in neither the best chain nor the mempool "
                    "(conflicted or replaced?)",
                    txid=txid,
                    seq=seq,
                )
            )
            checks.append(EntryCheck(seq, txid, kind, rec_hash, rec_height, None, None, 0, rec_ok, status))
            continue
        cur = tx.block
        conf = tx.confirmations
        if cur is None or not cur.in_best_chain:
            status = "not-in-best-chain"
            findings.append(
                Finding(
                    "not-in-best-chain",
                    f"entry #{seq}: transaction {txid} is no longer confirmed; its recorded block {rec_hash} "
                    f"at height {rec_height} is {'on' if rec_ok else 'off'} the best chain",
                    txid=txid,
                    seq=seq,
                )
            )
        elif conf < min_conf:
            status = "shallow"
            findings.append(
                Finding(
                    "shallow",
                    f"entry #{seq}: transaction {txid} has {conf} confirmations, fewer than {min_conf}",
                    txid=txid,
                    seq=seq,
                )
            )
        else:
            status = "ok" if cur.block_hash == rec_hash else "moved"
        movement = classify(tx, scripts.by_script)
        booked = vault_legs.get(seq, {})
        expected = {p.account: p.amount for p in postings_for(movement)} if movement else {}
        expected = {a: n for a, n in expected.items() if a in vault_accounts}
        if booked != expected:
            findings.append(
                Finding(
                    "amount-mismatch",
                    f"entry #{seq} books {_legs(booked)} on vaults but transaction {txid} "
                    f"moves {_legs(expected)}",
                    txid=txid,
                    seq=seq,
                )
            )
        checks.append(
            EntryCheck(
                seq,
                txid,
                kind,
                rec_hash,
                rec_height,
                cur.block_hash if cur else None,
                cur.height if cur else None,
                conf,
                rec_ok,
                status,
            )
        )
    return checks, findings, set(by_txid)


def _wallet_findings(
    rpc: RpcClient, vaults: Sequence[Vault], scripts: VaultScripts, booked: set[str]
) -> list[Finding]:
    """Movements the watch-only wallets know that the books do not; conflicted bookings."""
    findings: list[Finding] = []
    known = wallet_txids(rpc, vaults)
    unrecorded = sorted(known.confirmed - booked)
    extra = fetch_transactions(rpc, unrecorded)
    for txid in unrecorded:
        tx = extra.get(txid)
        if tx is None or tx.block is None or not tx.block.in_best_chain:
            continue
        movement = classify(tx, scripts.by_script)
        what = describe(movement) if movement else "a transaction touching a vault"
        findings.append(
            Finding(
                "unrecorded",
                f"unrecorded movement: {what}, transaction {txid} in block {tx.block.height}; "
                "book it with `reserve sync` or `reserve record ...`",
                vault=(movement.target or movement.source) if movement else None,
                txid=txid,
            )
        )
    for txid, replaced_by in sorted(known.conflicted.items()):
        if txid in booked:
            extra_text = f", replaced by {replaced_by}" if replaced_by else ""
            findings.append(
                Finding("conflicted", f"recorded transaction {txid} is conflicted{extra_text}", txid=txid)
            )
    return findings


def run_audit(session: Session, rpc: RpcClient, public_key_pem: bytes, *, min_conf: int = 1) -> AuditReport:
    info = rpc.get_blockchain_info()
    vaults = list_vaults(session, include_retired=True)
    scripts = VaultScripts.of(vaults, wallet_ranges(rpc, vaults))
    verification = verify_ledger(session, public_key_pem)
    findings = [
        Finding("ledger-verification", text, seq=verification.first_bad_seq) for text in verification.findings
    ]
    rows, balance_findings = _balances(session, rpc, vaults, scripts, info.blocks, min_conf)
    checks, entry_findings, booked = _check_entries(session, rpc, vaults, scripts, min_conf)
    findings += balance_findings + entry_findings + _wallet_findings(rpc, vaults, scripts, booked)
    totals = {
        "ledger": sum(r.ledger for r in rows),
        "chain": sum(r.chain_total for r in rows),
        "scan_confirmed": sum(r.scan_confirmed for r in rows),
        "scan_shallow": sum(r.scan_shallow for r in rows),
        "scan_immature": sum(r.scan_immature for r in rows),
        "wallet_confirmed": sum(r.wallet_confirmed for r in rows),
        "wallet_unconfirmed": sum(r.wallet_unconfirmed for r in rows),
        "wallet_immature": sum(r.wallet_immature for r in rows),
    }
    return AuditReport(
        schema=SCHEMA,
        audited_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        min_conf=min_conf,
        chain=info.chain,
        height=info.blocks,
        best_block=info.best_block_hash,
        tree_size=verification.entries,
        root=verification.root.hex(),
        vaults=tuple(rows),
        entries=tuple(checks),
        findings=tuple(findings),
        totals=totals,
    )


def store_audit(session: Session, report: AuditReport, key: Ed25519PrivateKey) -> tuple[int, int | None]:
    """Sign a checkpoint of the tree the audit covered and keep the audit with it, append-only.

    Returns (audit id, checkpoint id); no checkpoint for an empty journal.
    """
    checkpoint_id = None
    if report.tree_size:
        make_checkpoint(session, key)
        checkpoint_id = session.scalar(select(func.max(CheckpointRow.id)))
    row = AuditRow(
        tree_size=report.tree_size,
        root=bytes.fromhex(report.root),
        checkpoint_id=checkpoint_id,
        min_conf=report.min_conf,
        height=report.height,
        best_block=report.best_block,
        findings=len(report.findings),
        ok=report.ok,
        report=json.dumps(report.to_json(), sort_keys=True),
    )
    session.add(row)
    session.flush()
    return row.id, checkpoint_id
