"""Every vault outflow judged: the exact transaction of a spend that passed the gate, or not.

Key holders can always combine their signatures and send a transaction themselves: a payment to
an address on no allowlist, a fee bump (RBF) of a spend the gate passed, a child (CPFP) spending a
vault's unconfirmed output, the exact proposal before its quorum or delay. The chain accepts it;
the books must not take it for a gated spend. So every transaction spending a vault's output, in
the mempool or confirmed, is classified here:

- **gated**: it is the very transaction (same txid) that ``reserve spend broadcast`` claimed after
  every rule held (a spend with a ``broadcast`` event). A replacement has another txid: not gated.
- **ungated**: anything else. It is judged per vault it spends from by the SAME rules as a spend
  (:func:`custody.spend_gate.evaluate`), on facts built from the transaction itself
  (:func:`custody.outflow_facts.transaction_facts`): outputs against change, other vaults and the
  allowlist, max per spend, velocity, the fee (inputs minus outputs, from the chain) over its real
  vsize, the delay after quorum, and approvals as far as the witness shows them. The policy and the
  allowlist are those in force at the height it was sent (the block before its own; the tip for a
  mempool transaction); the quorum height is its spend's when it is a proposal the holders sent
  themselves, otherwise the height it was sent at (the chain shows no earlier quorum). Even when
  it breaks no rule, not being sent through the gate is itself the finding ``ungated-spend``.

An ungated spend stays a finding in every later audit until the vault's holders acknowledge it.
**The seam for that governed acknowledgement**: :func:`acknowledged_outflows` is the one place
that reads it, ``(vault, txid)`` pairs of the governed ``outflow-acknowledge`` changes the
vault's holders approved (:mod:`ledger.governance.changes`); an acknowledged one is reported with
``acknowledged: true`` and is no finding. Only the acknowledging vault's pair is acknowledged: a
transaction spending two vaults needs both.

Gather (:func:`gather_outflows`: short reads of the books per transaction and vault, pure fact
building), judge (:func:`judge_outflows`, :func:`ungated_findings`: pure). Used by ``reserve
audit`` (:mod:`ledger.chain.audit`), ``reserve sync`` (what it books) and ``reserve spend list``
(:func:`list_outflows`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace

from sqlalchemy import select
from sqlalchemy.orm import Session

from custody.amount import format_btc
from custody.chain import ChainTx
from custody.errors import CustodyError
from custody.outflow_facts import decode_signed, transaction_facts
from custody.rpc import RpcClient
from custody.spend_gate import RuleResult, evaluate
from ledger.chain.audit_report import Finding, FindingCode
from ledger.chain.outflow_values import Outflow as Outflow  # re-exported: the values live apart (no cycle)
from ledger.chain.outflow_values import OutflowCheck as OutflowCheck
from ledger.chain.recording import SCRIPT_RANGE
from ledger.chain.vaults import Vault
from ledger.errors import LedgerError
from ledger.store.spend_models import SpendInputRow

SessionFactory = Callable[[], AbstractContextManager[Session]]

@dataclass(frozen=True, slots=True)
class Outflows:
    """What the judge needs: the outflows gathered and the acknowledged ``(vault, txid)`` pairs."""

    items: tuple[Outflow, ...] = ()
    acknowledged: frozenset[tuple[str, str]] = frozenset()


# --- pure: which vaults a transaction spends from -------------------------------------------------


def vault_losses(tx: ChainTx, by_script: Mapping[bytes, str]) -> dict[str, int]:
    """Vault -> sat it lost in ``tx`` (spent minus received back), for each vault ``tx`` spends an
    output of; empty when it spends none (pure)."""
    spent: dict[str, int] = {}
    for i in tx.inputs:
        if i.prevout is not None and (v := by_script.get(i.prevout.script_pubkey)) is not None:
            spent[v] = spent.get(v, 0) + i.prevout.value
    back: dict[str, int] = {}
    for o in tx.outputs:
        if (v := by_script.get(o.script_pubkey)) is not None and v in spent:
            back[v] = back.get(v, 0) + o.value
    return {v: n - back.get(v, 0) for v, n in sorted(spent.items())}


# --- gather: the books' part ----------------------------------------------------------------------


def acknowledged_outflows(session: Session) -> frozenset[tuple[str, str]]:
    """``(vault, txid)`` of every ungated spend its vault's holders acknowledged: the governed
    ``outflow-acknowledge`` changes their threshold approved, each approval's signature verified
    (:func:`ledger.governance.changes.acknowledged`; ``reserve approve acknowledge``)."""
    from ledger.governance.changes import acknowledged

    return acknowledged(session)


def _replaced_spends(session: Session, txs: Sequence[ChainTx]) -> dict[str, tuple[int, ...]]:
    """txid -> other spends (not cancelled) that held a coin the transaction spends."""
    from ledger.spend.events import CANCELLED, list_spends

    coins = {(i.prev_txid, i.prev_index): t.txid for t in txs for i in t.inputs}
    if not coins:
        return {}
    rows = session.execute(
        select(SpendInputRow.spend, SpendInputRow.txid, SpendInputRow.vout).where(
            SpendInputRow.txid.in_(sorted({t for t, _ in coins}))
        )
    ).all()
    holders: dict[str, set[int]] = {}
    for spend, txid, vout in rows:
        if (by := coins.get((str(txid), int(vout)))) is not None:
            holders.setdefault(by, set()).add(int(spend))
    if not holders:
        return {}
    spends = {s.number: s for s in list_spends(session)}
    live = {n for n, s in spends.items() if s.state != CANCELLED}
    return {
        txid: tuple(sorted(n for n in numbers if n in live and spends[n].txid != txid))
        for txid, numbers in holders.items()
    }


def gather_outflows(
    session: Session,
    txs: Iterable[ChainTx],
    by_script: Mapping[bytes, str],
    ranges: Mapping[str, int],
    tip: int,
    vaults: Sequence[Vault],
) -> tuple[Outflow, ...]:
    """Every (transaction, vault) among ``txs`` where the transaction spends the vault's outputs,
    classified gated or not; an ungated one with the gate's facts and the vault's limits at the
    height it was sent (short reads of the books; the caller gives transactions that are in the
    best chain or the mempool and not conflicted)."""
    from ledger.spend.events import BROADCAST, spends_by_txid

    spending = [t for t in txs if vault_losses(t, by_script)]
    if not spending:
        return ()
    spends = spends_by_txid(session, [t.txid for t in spending])
    replaced = _replaced_spends(session, spending)
    by_name = {v.name: v for v in vaults}
    out: list[Outflow] = []
    for tx in sorted(spending, key=lambda t: (t.block is None, t.block.height if t.block else 0, t.txid)):
        spend = spends.get(tx.txid)
        gated = spend is not None and spend.reached(BROADCAST) is not None
        judged_at = tip if tx.block is None else tx.block.height - 1
        for vault, lost in vault_losses(tx, by_script).items():
            outflow = Outflow(
                txid=tx.txid,
                vault=vault,
                height=None if tx.block is None else tx.block.height,
                judged_at=judged_at,
                amount=lost,
                fee=tx.fee,
                gated=gated,
                spend=None if spend is None else spend.number,
                replaces=replaced.get(tx.txid, ()),
            )
            if not gated:
                outflow = _with_facts(session, outflow, tx, by_name.get(vault), by_script, ranges)
            out.append(outflow)
    return tuple(out)


def _with_facts(
    session: Session,
    outflow: Outflow,
    tx: ChainTx,
    vault: Vault | None,
    by_script: Mapping[bytes, str],
    ranges: Mapping[str, int],
) -> Outflow:
    """``outflow`` with the gate's facts and limits, or with why they cannot be had (a finding
    all the same: an audit never stops on one transaction)."""
    if vault is None:
        return replace(outflow, unjudged=f"vault {outflow.vault} has no definition in the books")
    if not tx.raw:
        return replace(outflow, unjudged="the node did not give the raw transaction")
    try:
        return _judged_facts(session, outflow, tx, vault, by_script, ranges)
    except (LedgerError, CustodyError, ValueError) as exc:  # tampered rows, an odd transaction
        return replace(outflow, unjudged=str(exc).splitlines()[0])


def _judged_facts(
    session: Session,
    outflow: Outflow,
    tx: ChainTx,
    vault: Vault,
    by_script: Mapping[bytes, str],
    ranges: Mapping[str, int],
) -> Outflow:
    from ledger.spend.events import get_spend, velocity_used
    from ledger.spend.gate import find_path, read_context

    signed = decode_signed(tx.raw)
    ctx = read_context(session, vault.name, outflow.judged_at, exclude_spend=outflow.spend)
    spend = None if outflow.spend is None else get_spend(session, outflow.spend)
    used = velocity_used(
        session,
        vault.name,
        outflow.judged_at,
        ctx.limits.velocity_window,
        until=None if tx.block is None else outflow.judged_at,
        exclude_txid=tx.txid,
    )
    end = max(SCRIPT_RANGE, ranges.get(vault.name, 0))
    prevouts = {
        (i.prev_txid, i.prev_index): None if i.prevout is None else (i.prevout.value, i.prevout.script_pubkey)
        for i in tx.inputs
    }
    scripts = [p[1] for p in prevouts.values() if p is not None] + [o.script_pubkey for o in tx.outputs]
    paths = {s: p for s in scripts if by_script.get(s) == vault.name and (p := find_path(vault, s, end=end))}
    allowed = {script: e.name for e in ctx.allow_active for script in e.scripts}
    pending = {script: (e.name, e.active_at) for e in ctx.allow_pending for script in e.scripts}
    quorum = outflow.judged_at if spend is None else spend.quorum_height
    facts = transaction_facts(
        signed,
        vault=vault.name,
        descriptor=vault.descriptor,
        holders=vault.holders,
        network=vault.network,
        prevouts=prevouts,
        vault_scripts=paths,
        other_vaults=ctx.others.by_script,
        allowlist=allowed,
        pending=pending,
        locks=ctx.locks,
        velocity_used=used,
        tip_height=outflow.judged_at,
        quorum_height=quorum,
        spend=outflow.spend,
    )
    return replace(outflow, facts=facts, limits=ctx.limits)


# --- judge (pure) ---------------------------------------------------------------------------------


def judge_outflows(
    outflows: Iterable[Outflow], acknowledged: frozenset[tuple[str, str]] = frozenset()
) -> tuple[OutflowCheck, ...]:
    """Each outflow with every rule's result (the gate's :func:`~custody.spend_gate.evaluate`)
    when it is ungated and could be judged; ``acknowledged`` are ``(vault, txid)`` pairs."""
    out: list[OutflowCheck] = []
    for o in outflows:
        results: tuple[RuleResult, ...] = ()
        if not o.gated and o.facts is not None and o.limits is not None:
            results = evaluate(o.facts, o.limits)
        out.append(OutflowCheck(o, results, (o.vault, o.txid) in acknowledged))
    return tuple(out)


def _btc(sat: int) -> str:
    return f"{format_btc(sat)} BTC"


def describe(check: OutflowCheck) -> str:
    """One line for people: which transaction, from which vault, how much, and what it broke."""
    o = check.outflow
    where = "in the mempool" if o.height is None else f"in block {o.height}"
    text = f"vault {o.vault}: transaction {o.txid} ({where}) took {_btc(max(o.amount, 0))} out of the vault"
    if o.fee is not None:
        text += f" (fee {_btc(o.fee)})"
    if o.gated:
        return text + f": spend #{o.spend}, sent by `reserve spend broadcast` after the gate passed"
    text += " and never passed the gate (`reserve spend broadcast`)"
    if o.spend is not None:
        text += f"; it is spend #{o.spend}'s transaction, sent by the key holders themselves"
    if o.replaces:
        text += "; it spends coins of spend " + ", ".join(f"#{n}" for n in o.replaces) + " (a replacement)"
    if o.unjudged is not None:
        return text + f"; its rules could not be judged: {o.unjudged}"
    if check.broken:
        return text + "; it breaks " + "; ".join(f"{r.rule}: {r.detail}" for r in check.broken)
    return text + "; it breaks no rule of the vault's policy as the chain shows it, but no rule was applied"


ADVICE = (
    "if the vault's key holders sent it on purpose, they acknowledge it with a governed "
    "acknowledgement (`reserve approve acknowledge VAULT TXID --reason ...`, approved by their "
    "threshold); until then every "
    "audit reports it. If they did not, the vault's keys are in other hands: move what is left to a "
    "new vault"
)


def ungated_findings(checks: Iterable[OutflowCheck]) -> list[Finding]:
    """An ``ungated-spend`` finding for every ungated outflow nobody acknowledged (pure)."""
    return [
        Finding(
            FindingCode.UNGATED_SPEND,
            describe(c),
            ADVICE,
            vault=c.outflow.vault,
            txid=c.outflow.txid,
        )
        for c in checks
        if c.failing
    ]


def spends_vault(tx: ChainTx, by_script: Mapping[bytes, str]) -> bool:
    """Whether ``tx`` spends an output of any vault (pure)."""
    return any(i.prevout is not None and i.prevout.script_pubkey in by_script for i in tx.inputs)


def list_outflows(read: SessionFactory, rpc: RpcClient, vault: str | None = None) -> tuple[OutflowCheck, ...]:
    """Every transaction the vaults' wallets know spending a vault's outputs (confirmed in the best
    chain or in the mempool, not replaced), gated or not, judged (``reserve spend list``)."""
    from custody.chain import fetch_transactions
    from ledger.chain.known_txs import wallet_txids
    from ledger.chain.recording import read_books, scripts_of

    with read() as s:
        books = read_books(s, None)
    scripts = scripts_of(rpc, books)
    known = wallet_txids(rpc, books.vaults, strict=False)
    wanted = sorted(known.confirmed | known.unconfirmed)
    txs = fetch_transactions(rpc, wanted, [v.wallet_name for v in books.vaults]) if wanted else {}
    live = [
        t
        for t in txs.values()
        if spends_vault(t, scripts.by_script) and (t.block is None or t.block.in_best_chain)
    ]
    tip = rpc.get_block_count()
    with read() as s:
        outflows = gather_outflows(s, live, scripts.by_script, scripts.ranges, tip, books.vaults)
        acknowledged = acknowledged_outflows(s)
    return tuple(
        c for c in judge_outflows(outflows, acknowledged) if vault is None or c.outflow.vault == vault
    )
