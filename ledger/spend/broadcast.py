"""``reserve spend broadcast N``: the gate on the stored PSBT, then finalize and send, or nothing.

Gather (the node's tip; the books' policy, allowlist, locks and velocity at that tip; each input's
coin from the node's UTXO set), judge (:func:`ledger.spend.gate.judge` on the PSBT as stored,
every rule), and only when every rule holds: finalize (``finalizepsbt``), check the final
transaction is the proposal's (same txid), ask the mempool (``testmempoolaccept``), send, and
store a ``broadcast`` event. Any violation is returned with every rule's result and nothing is
finalized, sent or stored.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass

from sqlalchemy.orm import Session

from custody.chain import decode_raw
from custody.errors import InvalidInput
from custody.network import Network
from custody.psbt import Psbt
from custody.rpc import RpcClient
from custody.spend_gate import RuleResult
from custody.spend_node import finalize_psbt, mempool_refusal, send_transaction
from ledger.errors import Conflict
from ledger.spend.events import BROADCAST, PROPOSED, SIGNED, Spend, append_event, get_spend
from ledger.spend.gate import judge, node_coins, read_context
from ledger.store.db import lock_journal

SessionFactory = Callable[[], AbstractContextManager[Session]]


@dataclass(frozen=True, slots=True)
class BroadcastResult:
    """The gate's verdict on the stored PSBT and, when it held, the transaction sent."""

    spend: Spend
    results: tuple[RuleResult, ...]
    violations: tuple[str, ...]
    txid: str | None  # None: nothing was sent
    fee: int
    vsize: int

    @property
    def sent(self) -> bool:
        return self.txid is not None


def check_broadcastable(spend: Spend) -> None:
    if spend.state == BROADCAST:
        raise Conflict(f"spend #{spend.number} was broadcast already as transaction {spend.txid}")
    if spend.state not in (PROPOSED, SIGNED):
        raise Conflict(
            f"spend #{spend.number} is {spend.state}; only a proposed or signed spend is broadcast"
        )


def broadcast_spend(
    read: SessionFactory, write: SessionFactory, rpc: RpcClient, number: int
) -> BroadcastResult:
    """Judge spend ``number`` as stored and send it only if every rule holds (module doc)."""
    with read() as s:
        spend = get_spend(s, number)
    check_broadcastable(spend)
    info = rpc.get_blockchain_info()
    tip = info.blocks
    with read() as s:
        ctx = read_context(s, spend.vault, tip, exclude_spend=number)
    if Network.from_chain(info.chain) is not ctx.vault.network:
        raise InvalidInput(
            f"vault {spend.vault} is on {ctx.vault.network.chain} but the node is on {info.chain}"
        )
    psbt = Psbt.parse(spend.psbt)
    verdict = judge(psbt, ctx, node_coins(rpc, psbt), _quorum_height(spend, tip), spend=number)
    facts = verdict.facts
    found = list(verdict.violations)
    tx_hex: str | None = None
    if not found:
        final = finalize_psbt(rpc, spend.psbt)
        if not final.complete or final.hex is None:
            found.append("finalize: the node could not complete every input's witness from the signatures")
        else:
            txid, _ = decode_raw(final.hex)
            if txid != spend.txid:
                found.append(f"finalize: the final transaction is {txid}, not the proposal's {spend.txid}")
            elif (why := mempool_refusal(rpc, final.hex, ctx.limits.max_fee_rate)) is not None:
                found.append(f"mempool: the node refuses the transaction: {why}")
            else:
                tx_hex = final.hex
    if found or tx_hex is None:
        return BroadcastResult(spend, verdict.results, tuple(found), None, facts.fee, facts.vsize)
    sent = send_transaction(rpc, tx_hex, ctx.limits.max_fee_rate)
    try:
        with write() as s:
            lock_journal(s)
            append_event(
                s,
                spend=number,
                state=BROADCAST,
                vault=spend.vault,
                txid=spend.txid,
                psbt=spend.psbt,
                amount=spend.amount,
                height=tip,
                detail={"fee": facts.fee, "vsize": facts.vsize},
            )
            stored = get_spend(s, number)
    except Exception as e:  # the database failed after the send: say what did happen
        e.add_note(
            f"transaction {sent} WAS broadcast, but its broadcast event was not stored; "
            "`reserve sync` books it when it confirms"
        )
        raise
    return BroadcastResult(stored, verdict.results, (), sent, facts.fee, facts.vsize)


def _quorum_height(spend: Spend, tip: int) -> int | None:
    """When quorum was reached as stored; a spend that never recorded it counts from now."""
    return (
        spend.quorum_height if spend.quorum_height is not None else (tip if spend.state == SIGNED else None)
    )
