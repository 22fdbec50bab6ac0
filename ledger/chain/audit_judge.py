"""The audit's judgement, pure: plain facts about the books and the chain in, a report out.

:mod:`ledger.chain.audit` gathers :class:`Books` (from a read-only session) and :class:`ChainFacts`
(RPC: one UTXO scan, each vault wallet's view, the raw transactions); :func:`judge` compares them:

- every **vault-type account**, defined or not: an account of type ``vault`` without a vault
  definition that holds coins or has live postings is ``undefined-vault-account``; the audit's
  ledger total is the reserve figure of ``reserve balance`` (the sum of every vault account);
- per vault, the **ledger** balance against the **chain** (the UTXO scan: mature outputs with at
  least ``min_conf`` confirmations, shallower ones, immature coinbase), and the **watch-only
  wallet** against the scan **outpoint by outpoint**, where outputs spent by the vault's
  unconfirmed transactions are explained by those pending spends;
- every live **recorded entry** against its transaction (conflicted, missing, no longer
  confirmed, shallow, amounts re-derived from the raw transaction);
- movements the books lack (``unrecorded``), and **pending** (unconfirmed) movements, which are
  shown but are not findings.

The values in and out are in :mod:`ledger.chain.audit_report`. Every finding carries ``advice``: the
command or step that makes it go away. A transaction that cannot be classified is a finding of
its own; the rest of the audit goes on.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

from custody.amount import format_btc
from custody.chain import BlockPlace, ChainTx
from custody.wallet import ScannedOutput
from custody.wallet_txs import WalletTxState
from custody.wallet_view import Outpoint, WalletView
from ledger.chain.audit_report import (
    SCHEMA,
    AuditReport,
    BookedEntry,
    Books,
    ChainFacts,
    EntryCheck,
    EntryStatus,
    Finding,
    FindingCode,
    Pending,
    UndefinedAccount,
    VaultBalances,
    VaultFacts,
)
from ledger.chain.movement import Movement, classify, describe
from ledger.chain.outflows import Outflows, judge_outflows, ungated_findings
from ledger.journal.entry import EntryKind

# --- judging ----------------------------------------------------------------------------------


def judge(
    books: Books, chain: ChainFacts, *, min_conf: int, audited_at: str, outflows: Outflows | None = None
) -> AuditReport:
    """Compare the books with the chain facts; findings, never exceptions, for what differs.
    ``outflows``: the transactions spending vault outputs (:mod:`ledger.chain.outflows`), each
    judged against the gate; an ungated one nobody acknowledged is an ``ungated-spend`` finding."""
    findings = [
        Finding(
            FindingCode.LEDGER_VERIFICATION,
            text,
            "the journal no longer matches its own hashes or signed checkpoints: restore the "
            "database from a backup taken before the change (`reserve ledger verify` shows what "
            "changed); when only checkpoint signatures fail and a signing-key finding is also "
            "reported, restore the original signing key file instead",
            seq=seq,
        )
        for text, seq in books.verification
    ]
    findings += [
        Finding(
            FindingCode.SIGNING_KEY,
            text,
            "restore the original signing key file (change keys only with `reserve ledger "
            "rotate-key --new-key FILE`, which the current key signs); until then nothing is signed",
        )
        for text in books.key_problems
    ]
    undefined, account_findings = judge_accounts(books)
    conflicts = conflicted_txids(chain.wallets, chain.entry_states)
    booked = {e.txid for e in books.entries}
    pending, pending_spent = judge_pending(chain, booked)
    checks, entry_findings = judge_entries(books, chain, min_conf, conflicts)
    waiting = {c.seq for c in checks if c.status is EntryStatus.NOT_IN_BEST_CHAIN}
    rows, balance_findings = judge_balances(
        books, chain, min_conf, pending, pending_spent, [e for e in books.entries if e.seq in waiting]
    )
    findings += (
        account_findings
        + balance_findings
        + entry_findings
        + judge_unrecorded(books, chain, booked, conflicts)
    )
    # the report keeps the ungated ones (acknowledged or not): a gated spend is the expected case
    outflow_checks = tuple(
        c
        for c in (judge_outflows(outflows.items, outflows.acknowledged) if outflows else ())
        if not c.outflow.gated
    )
    findings += ungated_findings(outflow_checks)
    totals = {
        "ledger": books.reserve,
        "ledger_vaults": sum(r.ledger for r in rows),
        "ledger_undefined": sum(u.ledger for u in undefined),
        "chain": sum(r.chain_total for r in rows),
        "scan_confirmed": sum(r.scan_confirmed for r in rows),
        "scan_shallow": sum(r.scan_shallow for r in rows),
        "scan_immature": sum(r.scan_immature for r in rows),
        "wallet_confirmed": sum(r.wallet_confirmed for r in rows),
        "wallet_unconfirmed": sum(r.wallet_unconfirmed for r in rows),
        "wallet_immature": sum(r.wallet_immature for r in rows),
        "pending_in": sum(r.pending_in for r in rows),
        "pending_out": sum(r.pending_out for r in rows),
    }
    return AuditReport(
        schema=SCHEMA,
        audited_at=audited_at,
        min_conf=min_conf,
        chain=chain.chain,
        height=chain.height,
        best_block=chain.best_block,
        tree_size=books.tree_size,
        root=books.root,
        vaults=tuple(rows),
        undefined_accounts=tuple(undefined),
        entries=tuple(checks),
        pending=tuple(pending),
        findings=tuple(findings),
        totals=totals,
        outflows=outflow_checks,
    )


def _reverse_cmd(seq: int, why: str) -> str:
    return f'`reserve reverse {seq} --memo "{why}"`'


def judge_accounts(books: Books) -> tuple[list[UndefinedAccount], list[Finding]]:
    """Vault-type accounts without a vault definition that hold coins or have live postings."""
    defined = {v.account for v in books.vaults}
    rows: list[UndefinedAccount] = []
    findings: list[Finding] = []
    for a in books.vault_accounts:
        if a.name in defined or (a.balance == 0 and not a.live_seqs):
            continue
        rows.append(UndefinedAccount(a.name, a.balance, a.live_seqs))
        reverse = (
            "; ".join(_reverse_cmd(s, f"{a.name} is not a vault") for s in a.live_seqs)
            or "post the opposite amount back through an entry the chain verifies"
        )
        findings.append(
            Finding(
                FindingCode.UNDEFINED_VAULT_ACCOUNT,
                f"account {a.name} is a vault account without a vault definition, yet it holds "
                f"{format_btc(a.balance)} BTC of the reserve"
                + (f" through entries {list(a.live_seqs)}" if a.live_seqs else ""),
                f"nothing on chain backs it: reverse those entries ({reverse})",
            )
        )
    return rows, findings


def conflicted_txids(
    wallets: Mapping[str, WalletView | None], states: Mapping[str, WalletTxState]
) -> dict[str, str | None]:
    """txid -> the transaction that replaced it (``None`` when unknown), for every transaction a
    vault wallet shows as conflicted or that a confirmed wallet transaction double-spends."""
    out: dict[str, str | None] = {s.txid: s.replaced_by for s in states.values() if s.conflicted}
    confirmed = {t.txid for w in wallets.values() if w for t in w.transactions if t.confirmations > 0}
    for w in wallets.values():
        if w is None:
            continue
        for t in w.transactions:
            if t.confirmations > 0:
                for other in t.conflicts:
                    if other not in confirmed:
                        out[other] = t.txid
            elif t.conflicted and out.get(t.txid) is None:
                replacement = t.replaced_by or next((c for c in t.conflicts if c in confirmed), None)
                out[t.txid] = replacement
    return out


def _classify(tx: ChainTx, by_script: Mapping[bytes, str]) -> Movement | str | None:
    """The movement, ``None`` if it moves no vault's coins, or why it cannot be classified."""
    try:
        return classify(tx, by_script)
    except Exception as exc:  # one odd transaction must never stop the audit: it becomes a finding
        return f"{type(exc).__name__}: {exc}"


def _unclassifiable(txid: str, why: str, seq: int | None = None) -> Finding:
    return Finding(
        FindingCode.UNCLASSIFIABLE,
        f"transaction {txid} touches a vault but could not be classified ({why})",
        "the previous outputs of its inputs must be known: load every vault's wallet "
        "(`reserve vault watch NAME`) or run the node with -txindex, then audit again",
        txid=txid,
        seq=seq,
    )


def judge_pending(chain: ChainFacts, booked: set[str]) -> tuple[list[Pending], set[Outpoint]]:
    """Unconfirmed transactions of the vault wallets: the pending movements not yet booked, and
    every outpoint that unconfirmed wallet transactions spend."""
    unconfirmed = sorted({t.txid for w in chain.wallets.values() if w for t in w.transactions if t.pending})
    pending: list[Pending] = []
    spent: set[Outpoint] = set()
    for txid in unconfirmed:
        tx = chain.txs.get(txid)
        if tx is None or tx.block is not None:
            continue  # dropped from the mempool, or confirmed since the wallets were read
        spends = tuple(
            Outpoint(i.prev_txid, i.prev_index)
            for i in tx.inputs
            if i.prevout is not None and i.prevout.script_pubkey in chain.by_script
        )
        spent |= {Outpoint(i.prev_txid, i.prev_index) for i in tx.inputs if not tx.is_coinbase}
        if txid in booked:
            continue
        movement = _classify(tx, chain.by_script)
        if not isinstance(movement, Movement):
            continue
        pending.append(
            Pending(
                txid,
                movement.kind,
                movement.flows,
                movement.fee,
                describe(movement),
                tuple(str(o) for o in spends),
            )
        )
    return pending, spent


def _by_vault(chain: ChainFacts) -> dict[str, list[ScannedOutput]]:
    out: dict[str, list[ScannedOutput]] = defaultdict(list)
    for o in chain.scan.outputs:
        if (vault := chain.by_script.get(o.script_pubkey)) is not None:
            out[vault].append(o)
    return out


def judge_balances(
    books: Books,
    chain: ChainFacts,
    min_conf: int,
    pending: list[Pending],
    pending_spent: set[Outpoint],
    waiting: Sequence[BookedEntry] = (),
) -> tuple[list[VaultBalances], list[Finding]]:
    """Per vault: ledger against the UTXO scan, and the wallet against the scan per outpoint.

    ``waiting`` are recorded entries whose transaction is back in the mempool (a reorg): when
    they explain a vault's difference exactly, the advice is to wait for them."""
    ledger = {a.name: a.balance for a in books.vault_accounts}
    scanned = _by_vault(chain)
    rows: list[VaultBalances] = []
    findings: list[Finding] = []
    for v in books.vaults:
        outs = scanned.get(v.name, [])
        immature = sum(o.amount for o in outs if o.immature)
        confirmed = sum(o.amount for o in outs if not o.immature and o.confirmations >= min_conf)
        shallow = sum(o.amount for o in outs if not o.immature and o.confirmations < min_conf)
        view = chain.wallets.get(v.name)
        flows = [n for p in pending for vault, n in p.flows if vault == v.name]
        row = VaultBalances(
            vault=v.name,
            ledger=ledger.get(v.account, 0),
            wallet_confirmed=sum(u.amount for u in view.confirmed_unspent) if view else 0,
            wallet_unconfirmed=sum(u.amount for u in view.unconfirmed_unspent) if view else 0,
            wallet_immature=view.balances.immature if view else 0,
            scan_confirmed=confirmed,
            scan_shallow=shallow,
            scan_immature=immature,
            utxos=len(outs),
            scanned_range=chain.ranges.get(v.name, 0),
            pending_in=sum(n for n in flows if n > 0),
            pending_out=-sum(n for n in flows if n < 0),
        )
        rows.append(row)
        if row.ledger != row.chain_total:
            legs = [(e.seq, n) for e in waiting for a, n in e.vault_legs if a == v.account]
            findings.append(_balance_mismatch(row, legs))
        if view is None:
            if not v.retired or row.ledger or row.chain_total:
                findings.append(
                    Finding(
                        FindingCode.VAULT_NOT_WATCHED,
                        f"vault {v.name} is not watched by the node (wallet {v.wallet_name} is not "
                        "loaded): its unconfirmed and unrecorded movements cannot be seen",
                        f"run `reserve vault watch {v.name}`",
                        vault=v.name,
                    )
                )
            continue
        mismatch = _wallet_scan_mismatch(v, view, outs, pending_spent, chain)
        if mismatch is not None:
            findings.append(mismatch)
    return rows, findings


def _balance_mismatch(row: VaultBalances, waiting: Sequence[tuple[int, int]]) -> Finding:
    diff = row.chain_total - row.ledger
    if waiting and row.ledger - sum(n for _, n in waiting) == row.chain_total:
        advice = (
            f"the difference is entries {sorted({seq for seq, _ in waiting})}, whose transactions "
            "wait in the mempool after a reorg: wait for them to be mined again and audit again "
            "(if one is double-spent instead, the audit reports it conflicted: reverse it)"
        )
    elif diff > 0:
        advice = (
            f"the chain holds {format_btc(diff)} BTC more than the books: book the movements the "
            "books lack (`reserve sync`; see the unrecorded findings)"
        )
    else:
        advice = (
            f"the books hold {format_btc(-diff)} BTC more than the chain: reverse the entries the "
            "chain does not back (`reserve reverse SEQ --memo ...` for the entries named by the "
            "other findings), then `reserve sync`"
        )
    return Finding(
        FindingCode.BALANCE_MISMATCH,
        f"vault {row.vault}: ledger {format_btc(row.ledger)} BTC but the chain holds "
        f"{format_btc(row.chain_total)} BTC (difference {format_btc(diff)} BTC)",
        advice,
        vault=row.vault,
    )


def _wallet_scan_mismatch(
    v: VaultFacts,
    view: WalletView,
    outs: list[ScannedOutput],
    pending_spent: set[Outpoint],
    chain: ChainFacts,
) -> Finding | None:
    """The wallet's confirmed and immature outputs against the scan's, outpoint by outpoint.

    An output the scan sees that an unconfirmed wallet transaction spends is explained by that
    pending spend (the wallet no longer lists it as unspent)."""
    on_chain = {Outpoint(o.txid, o.vout): o for o in outs}
    in_wallet = {Outpoint(u.txid, u.vout): u.confirmations for u in view.confirmed_unspent}
    # listunspent omits immature coinbase outputs: the wallet has them when it has their block
    known = view.confirmed_txids
    in_wallet.update({op: 0 for op, o in on_chain.items() if o.immature and o.txid in known})
    missing = sorted(set(on_chain) - set(in_wallet) - pending_spent, key=str)
    extra = sorted(set(in_wallet) - set(on_chain), key=str)
    if not missing and not extra:
        return None
    parts = []
    if missing:
        parts.append(f"the wallet lacks {len(missing)} output(s) the UTXO scan finds (e.g. {missing[0]})")
    if extra:
        parts.append(f"the wallet lists {len(extra)} output(s) the UTXO set does not have (e.g. {extra[0]})")
    scanned_to = chain.ranges.get(v.name, 0)
    if view.range_end is not None and view.range_end < scanned_to:
        advice = (
            f"the wallet watches indexes 0-{view.range_end - 1} but the audit scans 0-{scanned_to - 1} "
            f"(addresses issued that far): run `reserve vault watch {v.name} --gap {scanned_to}`"
        )
    else:
        heights = [on_chain[o].height for o in missing] + [
            chain.height - in_wallet[o] + 1 for o in extra if in_wallet[o] > 0
        ]
        start = min(heights, default=0)
        advice = (
            f"rescan the wallet from height {start}: "
            f"`bitcoin-cli -rpcwallet={v.wallet_name} rescanblockchain {start}`"
        )
    return Finding(
        FindingCode.WALLET_SCAN_MISMATCH,
        f"vault {v.name}: " + "; ".join(parts),
        advice,
        vault=v.name,
    )


def judge_entries(
    books: Books, chain: ChainFacts, min_conf: int, conflicts: Mapping[str, str | None]
) -> tuple[list[EntryCheck], list[Finding]]:
    """Every live recorded on-chain entry against its transaction."""
    findings: list[Finding] = []
    by_txid: dict[str, list[int]] = defaultdict(list)
    for e in books.entries:
        by_txid[e.txid].append(e.seq)
    for txid, seqs in sorted(by_txid.items()):
        if len(seqs) > 1:
            extra = sorted(seqs)[1:]
            findings.append(
                Finding(
                    FindingCode.RECORDED_TWICE,
                    f"transaction {txid} is booked {len(seqs)} times: entries {sorted(seqs)}",
                    "reverse the extra entries: "
                    + "; ".join(_reverse_cmd(s, f"{txid} booked twice") for s in extra),
                    txid=txid,
                    seq=extra[0],
                )
            )
    checks = []
    for e in books.entries:
        check, found = _check_entry(e, chain, min_conf, conflicts)
        checks.append(check)
        findings += found
    return checks, findings


def _check_entry(
    e: BookedEntry, chain: ChainFacts, min_conf: int, conflicts: Mapping[str, str | None]
) -> tuple[EntryCheck, list[Finding]]:
    tx = chain.txs.get(e.txid)
    place = chain.places.get(e.block_hash) if e.block_hash else None
    rec_ok = place is not None and place.in_best_chain
    block = tx.block if tx else None
    confirmed = block is not None and block.in_best_chain
    vault = e.vault_legs[0][0] if e.vault_legs else None

    def check(status: EntryStatus, replaced_by: str | None = None) -> EntryCheck:
        return EntryCheck(
            e.seq,
            e.txid,
            e.kind,
            e.block_hash,
            e.block_height,
            block.block_hash if block else None,
            block.height if block else None,
            tx.confirmations if tx and confirmed else 0,
            rec_ok,
            status,
            replaced_by,
        )

    if not confirmed and _orphaned_coinbase(e, tx, place):
        return check(EntryStatus.CONFLICTED), [
            Finding(
                FindingCode.CONFLICTED,
                f"entry #{e.seq}: mining reward {e.txid} was in block {e.block_hash} at height "
                f"{e.block_height}, which left the best chain; a coinbase never returns to the "
                "mempool, so it can never confirm",
                f"reverse the entry: {_reverse_cmd(e.seq, f'{e.txid} orphaned coinbase')}; "
                "then `reserve sync`",
                vault=vault,
                txid=e.txid,
                seq=e.seq,
            )
        ]
    if not confirmed and e.txid in conflicts:
        by = conflicts[e.txid]
        return check(EntryStatus.CONFLICTED, by), [
            Finding(
                FindingCode.CONFLICTED,
                f"entry #{e.seq}: transaction {e.txid} was double-spent"
                + (f", replaced by {by}" if by else "")
                + "; it can never confirm",
                f"reverse the entry: {_reverse_cmd(e.seq, f'{e.txid} conflicted')}; then "
                + (f"`reserve sync` books {by} if it moves a vault's coins" if by else "`reserve sync`"),
                vault=vault,
                txid=e.txid,
                seq=e.seq,
            )
        ]
    if tx is None:
        return check(EntryStatus.MISSING), [
            Finding(
                FindingCode.MISSING_TRANSACTION,
                f"entry #{e.seq}: the node finds transaction {e.txid} neither in the best chain, "
                "the mempool nor the vaults' watch-only wallets",
                "make the vault's wallet find it (`reserve vault watch VAULT`, then `bitcoin-cli "
                f"-rpcwallet=reserve-vault-VAULT rescanblockchain {e.block_height or 0}`); if the "
                f"transaction is gone for good, {_reverse_cmd(e.seq, f'{e.txid} not on chain')}",
                vault=vault,
                txid=e.txid,
                seq=e.seq,
            )
        ]
    found: list[Finding] = []
    if not confirmed:
        status = EntryStatus.NOT_IN_BEST_CHAIN
        found.append(
            Finding(
                FindingCode.NOT_IN_BEST_CHAIN,
                f"entry #{e.seq}: transaction {e.txid} is no longer confirmed; its recorded block "
                f"{e.block_hash} at height {e.block_height} is {'on' if rec_ok else 'off'} the best "
                "chain and the transaction waits in the mempool",
                "wait for it to be mined again and audit again (if it is double-spent instead, the "
                "audit reports it conflicted and says to reverse it)",
                vault=vault,
                txid=e.txid,
                seq=e.seq,
            )
        )
    elif tx.confirmations < min_conf:
        status = EntryStatus.SHALLOW
        found.append(
            Finding(
                FindingCode.SHALLOW,
                f"entry #{e.seq}: transaction {e.txid} has {tx.confirmations} confirmation(s), "
                f"fewer than {min_conf}",
                f"wait for {min_conf - tx.confirmations} more block(s) and audit again",
                vault=vault,
                txid=e.txid,
                seq=e.seq,
            )
        )
    else:
        assert block is not None
        status = EntryStatus.OK if block.block_hash == e.block_hash else EntryStatus.MOVED
    movement = _classify(tx, chain.by_script)
    if isinstance(movement, str):
        found.append(_unclassifiable(e.txid, movement, e.seq))
        return check(status), found
    booked = {a: n for a, n in e.vault_legs if n}
    expected = movement.flow if movement else {}
    if booked != expected:
        found.append(
            Finding(
                FindingCode.AMOUNT_MISMATCH,
                f"entry #{e.seq} books {_legs(booked)} on vault accounts but transaction {e.txid} "
                f"moves {_legs(expected)}",
                f"reverse the entry ({_reverse_cmd(e.seq, f'{e.txid} booked wrongly')}), then "
                "book the transaction as the chain shows it with `reserve sync`",
                vault=vault,
                txid=e.txid,
                seq=e.seq,
            )
        )
    return check(status), found


def _orphaned_coinbase(e: BookedEntry, tx: ChainTx | None, place: BlockPlace | None) -> bool:
    """A recorded coinbase whose transaction is not in the best chain: its block left it, and a
    coinbase is valid only in its own block (never in the mempool, never mined again)."""
    if tx is not None:
        return tx.is_coinbase
    return e.kind == EntryKind.MINING and place is not None and not place.in_best_chain


def _legs(legs: Mapping[str, int]) -> str:
    return ", ".join(f"{a} {format_btc(n)}" for a, n in sorted(legs.items())) or "nothing"


def judge_unrecorded(
    books: Books, chain: ChainFacts, booked: set[str], conflicts: Mapping[str, str | None]
) -> list[Finding]:
    """Confirmed movements of the vaults that the books lack: those the wallets know, and any
    unspent vault output the scan finds whose transaction neither the books nor a wallet know."""
    findings: list[Finding] = []
    known: set[str] = set()
    for vault, view in sorted(chain.wallets.items()):
        if view is None:
            continue
        for t in view.transactions:
            known.add(t.txid)
            if t.confirmations <= 0 or t.txid in booked or t.txid in conflicts:
                continue
            tx = chain.txs.get(t.txid)
            movement = _classify(tx, chain.by_script) if tx else None
            if isinstance(movement, str):
                findings.append(_unclassifiable(t.txid, movement))
                continue
            if tx is not None and movement is None:
                continue  # touches a vault script but moves nothing: nothing to book
            what = describe(movement) if movement else f"a transaction of vault {vault}"
            where = f" in block {tx.block.height}" if tx and tx.block else ""
            findings.append(
                Finding(
                    FindingCode.UNRECORDED,
                    f"unrecorded movement: {what}, transaction {t.txid}{where}",
                    "book it with `reserve sync`",
                    vault=movement.vaults[0] if movement else vault,
                    txid=t.txid,
                )
            )
            booked = booked | {t.txid}
    for o in chain.scan.outputs:
        vault_name = chain.by_script.get(o.script_pubkey)
        if vault_name is None or o.txid in booked or o.txid in known:
            continue
        booked = booked | {o.txid}
        findings.append(
            Finding(
                FindingCode.UNRECORDED,
                f"unrecorded movement: output {o.txid}:{o.vout} of {format_btc(o.amount)} BTC at "
                f"height {o.height} pays vault {vault_name}, and neither the books nor the vault's "
                "watch-only wallet know its transaction",
                f"let the wallet watch that far (`reserve vault watch {vault_name} --gap "
                f"{chain.ranges.get(vault_name, 0)}`), then book it with `reserve sync`",
                vault=vault_name,
                txid=o.txid,
            )
        )
    return findings
