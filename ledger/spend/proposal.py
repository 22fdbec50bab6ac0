"""``reserve spend create``: a spend proposal, built by the vault's wallet and judged before it is kept.

Gather, judge, write:

1. **gather**: the node's tip; a short read of the books (the vault, its policy and allowlist at
   the tip, the other vaults, the coins open spends hold); each ``--pay DEST=AMOUNT`` resolved to
   an address (:func:`resolve`): an active allowlist entry (its address, or for a descriptor
   entry its next address no proposal used), another vault (its next receive address, derived
   here and issued through :mod:`ledger.chain.issuance` so it is watched and recorded), or a raw
   address that is one of those. Anything else is refused with its reason before the node is
   asked. Then the node: the destination vaults' wallets cover the new addresses, the coins open
   spends hold are locked in the vault's wallet, the wallet builds the PSBT
   (``walletcreatefundedpsbt``: its unlocked coins, change to its change branch, BIP-32
   derivations), and the chosen coins are locked (persistent), so a concurrent proposal cannot
   take them;
2. **judge**: the gate (:mod:`ledger.spend.gate`) on the PSBT, every rule but those a fresh
   proposal cannot meet yet (approvals, required holders, the delay after quorum). Any violation:
   the coins are unlocked and :class:`~ledger.spend.gate.SpendRefused` (a policy violation)
   lists every one; nothing is stored;
3. **write**: one short transaction that re-checks no open spend holds these coins, records the
   issued vault address, and stores event 0 ``proposed`` with the coins and its log record.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from custody.address import address_script
from custody.amount import parse_btc
from custody.errors import CustodyError, InvalidInput
from custody.network import Network
from custody.psbt import Psbt
from custody.rpc import RpcClient
from custody.spend_gate import GateFacts, RuleResult
from custody.spend_node import Outpoint, fund_psbt, lock_coins, outpoint_text, unlock_coins
from custody.spend_policy import MAX_FEE_RATE
from ledger.chain.issuance import IssuePlan, cover_issue, plan_issue, record_issue
from ledger.chain.vaults import Vault, get_vault, list_vaults
from ledger.errors import Conflict
from ledger.files import write_text
from ledger.journal.entry import check_text
from ledger.spend.events import (
    PROPOSED,
    Destination,
    Spend,
    add_inputs,
    append_event,
    get_spend,
    list_spends,
    next_number,
    open_spend_inputs,
    used_scripts,
)
from ledger.spend.gate import CREATE_WAIVED, GateContext, SpendRefused, judge, node_coins, read_context
from ledger.spend.policy_store import AllowEntry
from ledger.store.db import lock_journal

SessionFactory = Callable[[], AbstractContextManager[Session]]

MAX_MEMO = 500
MAX_PAYMENTS = 100


# --- input ------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Payment:
    """One ``--pay DEST=AMOUNT``: a destination as typed and an amount in sat."""

    dest: str
    amount: int


def parse_payment(text: str) -> Payment:
    """``DEST=AMOUNT`` (amount in BTC, or ``...sat``)."""
    dest, sep, amount = text.partition("=")
    dest = dest.strip()
    if not sep or not dest or not amount.strip():
        raise InvalidInput(
            f"--pay {text!r} is not DEST=AMOUNT: give an allowlist entry, a vault or an address, "
            "'=', and an amount in BTC, e.g. --pay exchange=0.5"
        )
    return Payment(dest, parse_btc(amount))


def parse_fee_rate(text: str) -> int:
    """A fee rate in sat/vB with at most 3 decimals, as int sat/kvB (``2.5`` -> ``2500``)."""
    raw = text.strip()
    try:
        value = Decimal(raw)
    except InvalidOperation:
        value = Decimal("NaN")
    if not value.is_finite() or len(raw) > 20 or "e" in raw.lower():
        raise InvalidInput(f"--fee-rate {text!r} is not a number of sat/vB (e.g. 2 or 1.5)")
    kvb = value * 1000
    if kvb != kvb.to_integral_value():
        raise InvalidInput(f"--fee-rate {text!r} has more than 3 decimals; give sat/vB like 1.234")
    rate = int(kvb)
    if not 1 <= rate <= MAX_FEE_RATE:
        raise InvalidInput(
            f"--fee-rate {text!r} sat/vB is out of range: give 0.001 to {MAX_FEE_RATE // 1000} sat/vB"
        )
    return rate


def parse_outpoint(text: str) -> Outpoint:
    """``TXID:VOUT``."""
    txid, sep, vout = text.strip().rpartition(":")
    if not sep or len(txid) != 64 or not vout.isdigit() or len(vout) > 10:
        raise InvalidInput(f"--input {text!r} is not TXID:VOUT (64 hex digits, ':', an output index)")
    try:
        bytes.fromhex(txid)
    except ValueError:
        raise InvalidInput(f"--input {text!r}: the txid is not hexadecimal") from None
    if int(vout) > 0xFFFF_FFFF:
        raise InvalidInput(f"--input {text!r}: output index {vout} is above 4294967295")
    return txid.lower(), int(vout)


@dataclass(frozen=True, slots=True)
class Request:
    """What ``reserve spend create`` asks for."""

    vault: str
    payments: tuple[Payment, ...]
    memo: str
    fee_rate: int | None = None  # sat/kvB; None: the node's estimate
    inputs: tuple[Outpoint, ...] = ()  # coin control; empty: the wallet chooses

    def __post_init__(self) -> None:
        if not self.payments:
            raise InvalidInput("a spend pays someone: give at least one --pay DEST=AMOUNT")
        if len(self.payments) > MAX_PAYMENTS:
            raise InvalidInput(f"{len(self.payments)} payments in one spend; at most {MAX_PAYMENTS}")
        names = [p.dest for p in self.payments]
        twice = sorted({n for n in names if names.count(n) > 1})
        if twice:
            raise InvalidInput(f"--pay names {', '.join(twice)} twice; pay each destination once")
        memo = self.memo.strip()
        if not memo:
            raise InvalidInput("a spend needs a memo (--memo TEXT): it becomes the booked entry's memo")
        if len(memo) > MAX_MEMO:
            raise InvalidInput(f"the memo is {len(memo)} characters; at most {MAX_MEMO}")
        check_text(memo, "the memo")
        object.__setattr__(self, "memo", memo)
        if len(set(self.inputs)) != len(self.inputs):
            raise InvalidInput("--input names a coin twice")


# --- destinations -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Resolved:
    """A payment with its address: to an allowlist entry or another vault (``issue``: the
    address to hand out)."""

    payment: Payment
    kind: str  # "allowlist" or "vault"
    name: str
    address: str
    script: bytes
    issue: IssuePlan | None = None


def _entry_address(entry: AllowEntry, network: Network, used: frozenset[str]) -> tuple[str, bytes] | None:
    from custody.address import script_address

    for script in entry.scripts:
        address = script_address(script, network)
        if len(entry.scripts) == 1 or address not in used:
            return address, script
    return None


def resolve(
    session: Session,
    payments: Sequence[Payment],
    ctx: GateContext,
    others: Sequence[Vault],
) -> tuple[tuple[Resolved, ...], tuple[str, ...]]:
    """Each payment's address, and every reason one cannot be paid (policy findings)."""
    vault = ctx.vault
    network = vault.network
    active = {e.name: e for e in ctx.allow_active}
    pending = {e.name: e for e in ctx.allow_pending}
    by_name = {v.name: v for v in others}
    retired = {v.name: v for v in list_vaults(session, include_retired=True) if v.retired}
    used = used_scripts(session)
    out: list[Resolved] = []
    findings: list[str] = []
    for p in payments:
        what = f"--pay {p.dest}"
        if p.dest == vault.name:
            findings.append(f"{what}: a vault does not pay itself; its change comes back by itself")
            continue
        if p.dest in active:
            found = _entry_address(active[p.dest], network, used)
            if found is None:
                findings.append(f"{what}: every address of allowlist entry {p.dest} was used by a proposal")
                continue
            out.append(Resolved(p, "allowlist", p.dest, found[0], found[1]))
            continue
        if p.dest in pending:
            entry = pending[p.dest]
            findings.append(
                f"{what}: allowlist entry {p.dest} is still in its delay: it becomes active at height "
                f"{entry.active_at} (tip {ctx.tip}); propose the spend then"
            )
            continue
        if p.dest in retired:
            findings.append(
                f"{what}: vault {p.dest} is retired ({retired[p.dest].retired_reason}); a retired "
                "vault receives nothing: pay an active vault (`reserve vault list`)"
            )
            continue
        if p.dest in by_name:
            other = by_name[p.dest]
            if other.network is not network:
                findings.append(
                    f"{what}: vault {other.name} is on {other.network.chain}, not {network.chain}"
                )
                continue
            from ledger.chain.issuance import issued_ranges

            start = issued_ranges(session).get(other.name, 0)
            plan = plan_issue(session, other.name, start, 1, False)
            address = plan.addresses[0]
            out.append(Resolved(p, "vault", other.name, address, address_script(address, network), plan))
            continue
        # not a name: an address, which must be one of the above
        try:
            script = address_script(p.dest, network)
        except InvalidInput as e:
            raise InvalidInput(
                f"{what}: not an allowlist entry of vault {vault.name}, not a vault of the reserve, "
                f"and not an address ({e}); `reserve policy show {vault.name}` lists the allowlist"
            ) from None
        entry_active = next((e for e in ctx.allow_active if script in e.scripts), None)
        entry_pending = next((e for e in ctx.allow_pending if script in e.scripts), None)
        other_name = ctx.others.by_script.get(script)
        retired_name = ctx.retired.by_script.get(script)
        if entry_active is not None:
            out.append(Resolved(p, "allowlist", entry_active.name, p.dest, script))
        elif other_name is not None:
            out.append(Resolved(p, "vault", other_name, p.dest, script))
        elif entry_pending is not None:
            findings.append(
                f"{what}: the address is allowlist entry {entry_pending.name}, still in its delay until "
                f"height {entry_pending.active_at} (tip {ctx.tip})"
            )
        elif retired_name is not None:
            findings.append(
                f"{what}: address {p.dest} is vault {retired_name}'s, which is retired "
                f"({retired[retired_name].retired_reason}); a retired vault receives nothing: pay an "
                "active vault (`reserve vault list`)"
            )
        else:
            findings.append(
                f"{what}: address {p.dest} is not on vault {vault.name}'s allowlist and is no vault's "
                f"address; add it first (`reserve policy allow add {vault.name} NAME --address ADDRESS`), "
                "it becomes usable once the policy's loosen delay has passed"
            )
    return tuple(out), tuple(findings)


# --- the service ------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Created:
    """A stored proposal and the gate's verdict on it at creation."""

    spend: Spend
    results: tuple[RuleResult, ...]
    fee: int
    vsize: int


@dataclass(frozen=True, slots=True)
class _Plan:
    ctx: GateContext
    resolved: tuple[Resolved, ...]
    held: dict[Outpoint, int]  # coins of open spends of this vault


def _plan(session: Session, request: Request, tip: int) -> _Plan:
    vault = get_vault(session, request.vault)
    if vault.retired:
        raise Conflict(f"vault {vault.name} is retired ({vault.retired_reason}); it proposes no spend")
    ctx = read_context(session, vault.name, tip)
    others = tuple(v for v in list_vaults(session) if v.name != vault.name)
    resolved, findings = resolve(session, request.payments, ctx, others)
    held = {o: s.number for s in list_spends(session, vault.name, open_only=True) for o in s.inputs}
    taken = [
        f"locks: input {outpoint_text(o)} is held by open spend #{ctx.locks[o]} "
        "(cancel that spend first to free it)"
        for o in request.inputs
        if o in ctx.locks
    ]
    if findings or taken:
        raise SpendRefused(
            f"vault {vault.name}'s policy refuses the spend; nothing was stored", findings + tuple(taken)
        )
    return _Plan(ctx, resolved, held)


def _write(session: Session, request: Request, plan: _Plan, psbt: Psbt, facts: GateFacts) -> Spend:
    lock_journal(session)
    coins = tuple((i.txid, i.vout) for i in psbt.tx.inputs)
    held = open_spend_inputs(session)
    clash = [f"{outpoint_text(o)} (spend #{held[o]})" for o in coins if o in held]
    if clash:
        raise Conflict(
            f"coin(s) {', '.join(clash)} were taken by another proposal meanwhile; nothing was "
            "stored: run the command again"
        )
    for r in plan.resolved:
        if r.issue is not None:
            record_issue(session, r.issue)
    number = next_number(session)
    scripts = {r.script: r for r in plan.resolved}
    destinations = [
        Destination(n, paid.kind, paid.name, paid.address, o.value)
        for n, o in enumerate(psbt.tx.outputs)
        if (paid := scripts.get(o.script_pubkey)) is not None
    ]
    detail: dict[str, Any] = {
        "memo": request.memo,
        "destinations": [d.as_json() for d in destinations],
        "change": [n for n, o in enumerate(psbt.tx.outputs) if o.script_pubkey not in scripts],
        "fee": facts.fee,
        "fee_rate": request.fee_rate,
        "vsize": facts.vsize,
        "inputs": [outpoint_text(o) for o in coins],
    }
    add_inputs(session, number, coins)
    append_event(
        session,
        spend=number,
        state=PROPOSED,
        vault=plan.ctx.vault.name,
        txid=psbt.tx.txid,
        psbt=psbt.to_base64(),
        amount=facts.outgoing,
        height=plan.ctx.tip,
        detail=detail,
    )
    return get_spend(session, number)


def create_spend(read: SessionFactory, write: SessionFactory, rpc: RpcClient, request: Request) -> Created:
    """Propose a spend (module doc); raises :class:`~ledger.spend.gate.SpendRefused` with every
    violation, or :class:`InvalidInput`, writing and locking nothing."""
    tip = rpc.get_block_count()
    with read() as s:
        plan = _plan(s, request, tip)
    vault = plan.ctx.vault
    chain = rpc.get_blockchain_info().chain
    if Network.from_chain(chain) is not vault.network:
        raise InvalidInput(f"vault {vault.name} is on {vault.network.chain} but the node is on {chain}")
    for r in plan.resolved:
        if r.issue is not None:
            cover_issue(rpc, r.issue)
    wallet = rpc.wallet(vault.wallet_name)
    locked: tuple[Outpoint, ...] = ()
    try:
        # coins of this vault's open proposals must not be chosen again (a lock lost on the node)
        lock_coins(wallet, plan.held, skip_unavailable=True)
        funded = fund_psbt(
            wallet,
            [(r.address, r.payment.amount) for r in plan.resolved],
            fee_rate=request.fee_rate,
            inputs=request.inputs,
        )
        psbt = Psbt.parse(funded.psbt)
        locked = lock_coins(wallet, [(i.txid, i.vout) for i in psbt.tx.inputs])
        verdict = judge(psbt, plan.ctx, node_coins(rpc, psbt), None)
        refused = verdict.violations_except(CREATE_WAIVED)
        if refused:
            raise SpendRefused(f"vault {vault.name}'s policy refuses the spend; nothing was stored", refused)
        with write() as s:
            spend = _write(s, request, plan, psbt, verdict.facts)
        # a concurrent proposal that lost the race may have locked these coins first and unlocked
        # them as it gave up: the coins this spend holds in the books are locked again
        lock_coins(wallet, spend.inputs, skip_unavailable=True)
    except BaseException as exc:
        if locked:
            _release(read, wallet, locked, exc)
        raise
    finally:
        wallet.close()
    return Created(spend, verdict.results, verdict.facts.fee, verdict.facts.vsize)


def _release(read: SessionFactory, wallet: RpcClient, locked: Sequence[Outpoint], exc: BaseException) -> None:
    """Unlock the coins this proposal locked and gave up, except those another open spend holds in
    the books (a concurrent proposal that chose the same coins and was stored first: the wallet
    lock is its now)."""
    try:
        with read() as s:
            held = open_spend_inputs(s)
    except Exception as e:  # the books cannot say: leave the coins locked rather than free a held one
        exc.add_note(f"coin(s) {', '.join(outpoint_text(o) for o in locked)} stay locked ({e})")
        return
    free = [o for o in locked if o not in held]
    try:
        unlock_coins(wallet, free)
    except CustodyError:
        exc.add_note(f"coin(s) {', '.join(outpoint_text(o) for o in free)} stay locked in the wallet")


def write_psbt_file(directory: Path, spend: Spend) -> Path:
    """Write ``spend-N.psbt`` (base64, one line) into ``directory``, whole or not at all
    (:class:`~ledger.errors.WriteFailed` when it cannot be written); returns its path."""
    path = directory / f"spend-{spend.number}.psbt"
    write_text(path, spend.psbt + "\n", encoding="ascii")
    return path
