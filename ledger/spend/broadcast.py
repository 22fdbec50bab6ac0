"""``reserve spend broadcast N``: the gate on the stored PSBT, then finalize and send, or nothing.

Gather (the node's tip; the books' policy, allowlist, locks and velocity at that tip; each input's
coin from the node's UTXO set), judge (:func:`ledger.spend.gate.judge` on the PSBT as stored,
every rule), and only when every rule holds: finalize (``finalizepsbt``), check the final
transaction is the proposal's (same txid), ask the mempool (``testmempoolaccept``), then store the
``broadcast`` event (judging the velocity rule again on the books under the journal lock, so two
broadcasts at once cannot both pass a limit together) and send. A send that fails stores the
spend's previous state again when the node refused it (with no answer at all it may have gone
out: the claim stays, and ``spend cancel`` frees a spend the node never got). Any violation is
returned with every rule's result and nothing is sent or stored.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace

from sqlalchemy.orm import Session

from custody.chain import decode_raw
from custody.errors import InvalidInput, RpcError
from custody.network import Network
from custody.psbt import Psbt
from custody.rpc import RpcClient
from custody.spend_gate import RuleResult, evaluate, violations
from custody.spend_node import finalize_psbt, mempool_refusal, send_transaction
from ledger.errors import Conflict
from ledger.spend.events import (
    BROADCAST,
    PROPOSED,
    SIGNED,
    Spend,
    append_event,
    get_spend,
    velocity_used,
)
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
    # Claim, then send: the broadcast event is stored first, under the journal lock, after the
    # rules that depend on other spends are judged again on the books as they are now. Two
    # broadcasts judged at once would otherwise both see the other's amount not yet left, and
    # together pass a velocity limit each alone keeps.
    with write() as s:
        lock_journal(s)
        now = get_spend(s, number)
        if now.latest.step != spend.latest.step:
            raise Conflict(
                f"spend #{number} changed while it was judged (now {now.state}); nothing was "
                "broadcast: run the command again"
            )
        recheck = evaluate(
            replace(
                facts,
                velocity_used=velocity_used(s, spend.vault, tip, ctx.limits.velocity_window),
            ),
            ctx.limits,
        )
        late = violations(recheck)
        if not late:
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
    if late:
        return BroadcastResult(spend, recheck, late, None, facts.fee, facts.vsize)
    try:
        sent = send_transaction(rpc, tx_hex, ctx.limits.max_fee_rate)
    except RpcError as e:  # the node answered no: withdraw the claim, the spend is open as it was
        _withdraw(write, spend, tip, e)
        raise
    except Exception as e:  # no answer: it may have gone out, so the claim stays
        e.add_note(
            f"spend #{number} stays stored as broadcast: the node may have received transaction "
            f"{spend.txid}; `reserve sync` books it if it confirms, and if the node never got it "
            f"`reserve spend cancel {number}` frees its coins"
        )
        raise
    return BroadcastResult(stored, verdict.results, (), sent, facts.fee, facts.vsize)


def _withdraw(write: SessionFactory, spend: Spend, tip: int, error: Exception) -> None:
    """Store the spend's previous state again after a send that failed (the claim withdrawn)."""
    try:
        with write() as s:
            lock_journal(s)
            append_event(
                s,
                spend=spend.number,
                state=spend.state,
                vault=spend.vault,
                txid=spend.txid,
                psbt=spend.psbt,
                amount=spend.amount,
                height=tip,
                detail={"not_sent": str(error)[:500]},
            )
    except Exception as e:
        error.add_note(
            f"transaction {spend.txid} was NOT broadcast, but spend #{spend.number} stays stored as "
            f"broadcast ({e})"
        )


def _quorum_height(spend: Spend, tip: int) -> int | None:
    """When quorum was reached as stored; a spend that never recorded it counts from now."""
    return (
        spend.quorum_height if spend.quorum_height is not None else (tip if spend.state == SIGNED else None)
    )
