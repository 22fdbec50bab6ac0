"""How a spend ends: cancelled by a person, confirmed on chain, or conflicted by another transaction.

``reserve spend cancel N --reason R`` stores ``cancelled`` and then unlocks the coins in the vault's
wallet (a spend on the network cannot be cancelled: only another transaction can conflict it; one
stored as broadcast whose transaction the node never got can).

``reserve sync`` settles open spends (:func:`gather_settle`, :func:`judge_settle`,
:func:`write_settle`): one whose transaction is booked (by this sync, which books it as the
withdrawal to the allowlist entry's counterparty or the transfer to the vault, with the spend's
memo, or earlier by ``record``) gets a ``confirmed`` event naming the entry (and ``outside_gate``
when it was never broadcast through ``reserve spend broadcast``: key holders combined and sent it
themselves, past every rule); one whose transaction
the vault's wallet sees replaced or double-spent, or whose coins a confirmed transaction of
someone else spent, gets ``conflicted`` and its coins unlocked.

:func:`spend_postings` is the booking of a spend's transaction: every vault its net flow, each
allowlist destination's amount to that counterparty, the fee to network fees (pure).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from custody.errors import CustodyError, InvalidInput
from custody.rpc import RpcClient
from custody.spend_node import Outpoint, unlock_coins, unspent_coins
from custody.wallet_txs import WalletTxState, wallet_tx_states
from ledger.chain.movement import NETWORK_FEES, UNATTRIBUTED, Movement, MovementKind
from ledger.chain.vaults import Vault
from ledger.errors import Conflict
from ledger.journal.entry import Posting, check_text
from ledger.spend.events import (
    BROADCAST,
    CANCELLED,
    CONFIRMED,
    CONFLICTED,
    PROPOSED,
    SIGNED,
    Spend,
    append_event,
    check_untampered,
    get_spend,
    list_spends,
)
from ledger.store.db import lock_journal

SessionFactory = Callable[[], AbstractContextManager[Session]]


# --- booking ----------------------------------------------------------------------------------------


def spend_counterparties(spend: Spend) -> tuple[str, ...]:
    """The counterparty accounts a spend pays (its allowlist destinations' names)."""
    return tuple(dict.fromkeys(d.name for d in spend.destinations if d.kind == "allowlist"))


def spend_postings(m: Movement, spend: Spend, usable: Iterable[str]) -> tuple[Posting, ...]:
    """Balanced postings of a spend's transaction: each vault its net flow, each allowlist
    destination (whose counterparty account is ``usable``) what it received, the rest of what
    left to :data:`UNATTRIBUTED` (nothing, for a spend the gate passed) and the fee to
    :data:`NETWORK_FEES` (pure)."""
    legs = [Posting(v, n) for v, n in m.flows]
    rest = m.counterparty_amount
    allowed = set(usable)
    paid: dict[str, int] = {}
    if m.kind in (MovementKind.WITHDRAWAL, MovementKind.TRANSFER) and not m.foreign_inputs:
        for d in spend.destinations:
            if d.kind == "allowlist" and d.name in allowed:
                paid[d.name] = paid.get(d.name, 0) + d.amount
    if 0 < sum(paid.values()) <= rest:
        legs += [Posting(name, amount) for name, amount in paid.items()]
        rest -= sum(paid.values())
    if rest:
        legs.append(Posting(UNATTRIBUTED, rest))
    if m.fee:
        legs.append(Posting(NETWORK_FEES, m.fee))
    return tuple(legs)


# --- cancel -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Cancelled:
    spend: Spend
    unlocked: tuple[Outpoint, ...]
    note: str | None  # what could not be done on the node


def cancel_spend(
    read: SessionFactory, write: SessionFactory, rpc: RpcClient, number: int, reason: str
) -> Cancelled:
    """Cancel an open spend that is not on the network; its coins are unlocked."""
    reason = reason.strip()
    if not reason:
        raise InvalidInput("a cancellation needs a reason (--reason TEXT)")
    check_text(reason, "the reason")
    if len(reason) > 500:
        raise InvalidInput(f"the reason is {len(reason)} characters; at most 500")
    with read() as s:
        spend = get_spend(s, number)
        check_untampered(s, spend.vault)  # the coins it unlocks are its rows in spend_inputs
    unsent = spend.state == BROADCAST and not _on_network(rpc, spend)
    _check_cancellable(spend, unsent=unsent)
    tip = rpc.get_block_count()
    with write() as s:
        lock_journal(s)
        now = get_spend(s, number)
        _check_cancellable(now, unsent=unsent and now.latest.step == spend.latest.step)
        append_event(
            s,
            spend=number,
            state=CANCELLED,
            vault=now.vault,
            txid=now.txid,
            psbt=now.psbt,
            amount=now.amount,
            height=tip,
            detail={"reason": reason},
        )
        stored = get_spend(s, number)
    return Cancelled(stored, *_unlock(rpc, stored))


def _on_network(rpc: RpcClient, spend: Spend) -> bool:
    """Whether the node has a broadcast spend's transaction (mempool, or the vault's wallet knows
    it: pending, confirmed or conflicted). A spend stored as broadcast whose send never happened
    (the command stopped between storing its claim and sending) is not, and may be cancelled."""
    from custody.spend_node import in_mempool
    from custody.wallet import vault_wallet_name

    if in_mempool(rpc, [spend.txid]):
        return True
    try:
        return spend.txid in wallet_tx_states(rpc, [vault_wallet_name(spend.vault)], [spend.txid])
    except CustodyError:  # the wallet cannot say (not loaded): assume it is out there
        return True


def _check_cancellable(spend: Spend, *, unsent: bool = False) -> None:
    if spend.state == BROADCAST and not unsent:
        raise Conflict(
            f"spend #{spend.number} is on the network (transaction {spend.txid}) and cannot be "
            "cancelled; only a transaction spending its coins can replace it"
        )
    if spend.state not in (PROPOSED, SIGNED) and not (spend.state == BROADCAST and unsent):
        raise Conflict(f"spend #{spend.number} is {spend.state} already")


def _unlock(rpc: RpcClient, spend: Spend) -> tuple[tuple[Outpoint, ...], str | None]:
    from custody.wallet import vault_wallet_name

    wallet = rpc.wallet(vault_wallet_name(spend.vault))
    try:
        return unlock_coins(wallet, spend.inputs), None
    except CustodyError as e:
        return (), f"the coins could not be unlocked in the vault's wallet ({e}); they are free in the books"
    finally:
        wallet.close()


# --- settling open spends in sync -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SettlePlan:
    """The open spends and what the node says of them."""

    spends: tuple[Spend, ...]
    states: Mapping[str, WalletTxState]  # txid -> the vault wallets' view
    spent: Mapping[int, tuple[Outpoint, ...]]  # spend -> its coins a confirmed transaction spent


@dataclass(frozen=True, slots=True)
class Settlement:
    """A spend that ended in this sync (``seq``: the entry booking a confirmed one)."""

    spend: int
    state: str
    txid: str
    seq: int | None = None
    by: str | None = None  # the conflicting transaction, when known
    reason: str = ""


def gather_settle(rpc: RpcClient, spends: Sequence[Spend], vaults: Sequence[Vault]) -> SettlePlan:
    """The node's view of the open spends (no transaction open)."""
    if not spends:
        return SettlePlan((), {}, {})
    loaded = set(rpc.list_wallets())
    watched = {v.name for v in vaults if v.wallet_name in loaded}
    wallets = [v.wallet_name for v in vaults if v.name in {s.vault for s in spends} and v.name in watched]
    states = wallet_tx_states(rpc, wallets, [s.txid for s in spends])
    # A spend the vault's wallet does not know was never on the network, as long as that wallet is
    # loaded (it sees every transaction spending the vault's coins); only then do its coins spent
    # by a confirmed transaction mean another transaction took them.
    unknown = [s for s in spends if s.txid not in states and s.vault in watched]
    outpoints = [o for s in unknown for o in s.inputs]
    coins = unspent_coins(rpc, outpoints, include_mempool=False) if outpoints else {}
    spent = {s.number: tuple(o for o in s.inputs if coins.get(o) is None) for s in unknown}
    return SettlePlan(tuple(spends), states, {n: c for n, c in spent.items() if c})


def judge_settle(plan: SettlePlan) -> list[Settlement]:
    """Conflicted spends (pure); confirmed ones are found when writing (:func:`write_settle`)."""
    out: list[Settlement] = []
    for s in plan.spends:
        state = plan.states.get(s.txid)
        if state is not None and state.conflicted:
            out.append(
                Settlement(
                    s.number, CONFLICTED, s.txid, by=state.replaced_by, reason="replaced or double-spent"
                )
            )
        elif state is None and s.number in plan.spent:
            coins = ", ".join(f"{t}:{v}" for t, v in plan.spent[s.number])
            out.append(
                Settlement(
                    s.number, CONFLICTED, s.txid, reason=f"coin(s) {coins} were spent by another transaction"
                )
            )
    return out


def write_settle(
    session: Session, plan: SettlePlan, conflicted: Sequence[Settlement], booked: Mapping[str, int], tip: int
) -> list[Settlement]:
    """Store ``confirmed`` for open spends whose transaction ``booked`` names (txid -> entry seq)
    and ``conflicted`` for ``conflicted``, re-checking each is still open (caller's write
    transaction, under the journal lock)."""
    out: list[Settlement] = []
    todo: list[Settlement] = list(conflicted)
    for s in plan.spends:
        if s.txid in booked:
            state = plan.states.get(s.txid)
            todo.append(
                Settlement(
                    s.number,
                    CONFIRMED,
                    s.txid,
                    seq=booked[s.txid],
                    by=None if state is None else state.block_hash,
                )
            )
    for item in sorted(todo, key=lambda t: (t.spend, t.state != CONFIRMED)):
        now = get_spend(session, item.spend)
        if not now.open or any(o.spend == item.spend for o in out):
            continue
        detail: dict[str, Any]
        if item.state == CONFIRMED:
            detail = {"entry_seq": item.seq, "block_hash": item.by}
            if now.reached(BROADCAST) is None:  # the holders sent it themselves: no rule was applied
                detail["outside_gate"] = True
        else:
            detail = {"by": item.by, "reason": item.reason}
        append_event(
            session,
            spend=item.spend,
            state=item.state,
            vault=now.vault,
            txid=now.txid,
            psbt=now.psbt,
            amount=now.amount,
            height=tip,
            detail=detail,
        )
        out.append(item)
    return out


def unlock_settled(rpc: RpcClient, read: SessionFactory, settled: Sequence[Settlement]) -> None:
    """Unlock, best effort, the coins of spends that ended conflicted (their lock serves nothing)."""
    numbers = [s.spend for s in settled if s.state == CONFLICTED]
    if not numbers:
        return
    with read() as s:
        spends = [get_spend(s, n) for n in numbers]
    for spend in spends:
        _unlock(rpc, spend)


def open_spends(session: Session) -> tuple[Spend, ...]:
    return list_spends(session, open_only=True)
