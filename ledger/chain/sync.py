"""``reserve sync``: book the on-chain movements of watched vaults that are not in the ledger.

Gather, judge, write, like :mod:`ledger.chain.recording`:

1. **gather**: a short read of the books (vaults, issued ranges, booked txids); then, with no
   database transaction open, the vaults' watch-only wallets say which transactions touch them
   (:mod:`custody.wallet_txs`) and each unbooked confirmed one is fetched raw and decoded
   (:func:`custody.chain.fetch_transactions`, which needs no ``-txindex``);
2. **judge** (:func:`judge_sync`, pure): each transaction is classified against the scripts of
   every vault, so a transaction paying several vaults, or a transfer seen from either side, is
   one entry with every vault's net flow. What cannot be booked (not found, off the best chain,
   touching no vault script, replaced) is a skipped item with its reason; unconfirmed ones are
   pending. No transaction stops the rest;
3. **write** (:func:`write_sync`): one short transaction that re-checks each txid is still
   unbooked (one booked meanwhile, e.g. by ``record``, is skipped) and appends the rest.

A transaction of a spend made through ``reserve spend`` (:mod:`ledger.spend`) is booked with the
spend's memo, each allowlist destination's amount to that counterparty's account (opened when
needed) and a transfer to another vault as such; in the same write the spend gets its
``confirmed`` event naming the entry, and an open spend whose coins another transaction spent is
``conflicted`` (:mod:`ledger.spend.settle`). A booked transaction spending a vault's outputs that
did not pass the gate (the exact transaction of ``reserve spend broadcast``) is reported with the
rules it breaks (:mod:`ledger.chain.outflows`); the audit keeps reporting it until acknowledged.

Idempotent: a second run books nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session

from custody.chain import ChainTx, fetch_transactions
from custody.rpc import RpcClient
from ledger.chain.known_txs import WalletTxids, wallet_txids
from ledger.chain.movement import Movement, classify
from ledger.chain.outflows import (
    OutflowCheck,
    acknowledged_outflows,
    gather_outflows,
    judge_outflows,
    spends_vault,
)
from ledger.chain.recording import (
    Books,
    SessionFactory,
    VaultScripts,
    blind_spot,
    chain_ref,
    draft_for,
    ensure_system_accounts,
    read_books,
    recorded_txids,
    scripts_of,
)
from ledger.chain.vaults import Vault
from ledger.errors import LedgerError, NotFound
from ledger.journal import accounts, book
from ledger.journal.entry import AccountType, EntryDraft
from ledger.spend.events import Spend, spends_by_txid
from ledger.spend.settle import (
    Settlement,
    SettlePlan,
    gather_settle,
    judge_settle,
    open_spends,
    spend_counterparties,
    spend_postings,
    unlock_settled,
    write_settle,
)
from ledger.store.db import lock_journal


@dataclass(frozen=True, slots=True)
class SyncItem:
    movement: Movement
    block_height: int
    seq: int | None  # None on a dry run


@dataclass(frozen=True, slots=True)
class Skipped:
    """Something sync could not book: a transaction (``txid``) or a whole vault (``vault``).

    ``final``: a transaction that can never be booked and asks for nothing (replaced,
    double-spent, or an orphaned mining reward that was never booked). The wallets keep listing
    it, so every later sync finds it again: people see such items as one count, programs each
    one (``--json``)."""

    reason: str
    txid: str | None = None
    vault: str | None = None
    final: bool = False


@dataclass(frozen=True, slots=True)
class SyncReport:
    items: tuple[SyncItem, ...]  # booked (or, on a dry run, to be booked), in chain order
    dry_run: bool
    already_recorded: int
    pending: tuple[str, ...]  # unconfirmed transactions of the vaults: record after they confirm
    skipped: tuple[Skipped, ...]  # what could not be booked, with why and what to do
    spends: tuple[Settlement, ...] = ()  # spends confirmed or conflicted by this sync
    ungated: tuple[OutflowCheck, ...] = ()  # booked outflows that never passed the gate, judged

    @property
    def unconfirmed(self) -> int:
        return len(self.pending)


@dataclass(frozen=True, slots=True)
class SyncPlan:
    """What the books and the node say (the gather step's result)."""

    books: Books
    scripts: VaultScripts
    known: WalletTxids
    todo: tuple[str, ...]  # confirmed, unbooked txids
    txs: dict[str, ChainTx]  # the todo ones, and the unconfirmed ones
    spends: Mapping[str, Spend] = dataclasses.field(default_factory=dict)  # txid -> spend paying in it
    counterparties: frozenset[str] = frozenset()  # spends' counterparty accounts that may be booked to

    @property
    def orphaned(self) -> frozenset[str]:
        """Unconfirmed coinbases: their block left the best chain, and a coinbase never returns
        to the mempool (the wallet lists it as an abandoned "orphan"), so they never confirm."""
        return frozenset(
            t for t in self.known.unconfirmed if (tx := self.txs.get(t)) is not None and tx.is_coinbase
        )


def select_vaults(books: Books, vault: str | None) -> tuple[Vault, ...]:
    chosen = tuple(v for v in books.vaults if vault is None or v.name == vault)
    if vault is not None and not chosen:
        raise NotFound(f"unknown vault {vault!r}; `reserve vault list` shows the vaults")
    return chosen


def gather_sync(rpc: RpcClient, books: Books, vault: str | None = None) -> SyncPlan:
    """The node part of the gather step (no database transaction open)."""
    watched = select_vaults(books, vault)
    scripts = scripts_of(rpc, books)
    known = wallet_txids(rpc, watched, strict=vault is not None)
    todo = tuple(sorted(known.confirmed - books.booked.keys()))
    wanted = (*todo, *sorted(known.unconfirmed))  # unconfirmed: to tell an orphaned coinbase apart
    txs = fetch_transactions(rpc, wanted, [v.wallet_name for v in books.vaults]) if wanted else {}
    return SyncPlan(books, scripts, known, todo, txs)


def judge_sync(plan: SyncPlan) -> tuple[list[tuple[int, EntryDraft, Movement]], list[Skipped]]:
    """Drafts to book (with block height and movement, in chain order) and skipped items (pure)."""
    found: list[tuple[int, EntryDraft, Movement]] = []
    skipped = [
        Skipped(
            f"vault {v} is not watched (its wallet is not loaded): run `reserve vault watch {v}`", vault=v
        )
        for v in plan.known.unwatched
    ]
    for txid, by in sorted(plan.known.conflicted.items()):
        if txid in plan.books.booked:
            continue  # the audit reports a booked transaction that was replaced
        skipped.append(
            Skipped(
                "replaced or double-spent"
                + (f" by {by}" if by else "")
                + ": it can never confirm; nothing to book",
                txid=txid,
                final=True,
            )
        )
    for txid in sorted(plan.orphaned):
        seq = plan.books.booked.get(txid)
        skipped.append(
            Skipped(
                "a mining reward whose block left the best chain: a coinbase never returns to the "
                "mempool, so it can never confirm; "
                + (
                    f"it is booked as entry #{seq}: reverse that entry (`reserve reverse {seq} --memo ...`)"
                    if seq is not None
                    else "nothing to book"
                ),
                txid=txid,
                final=seq is None,
            )
        )
    for txid in plan.todo:
        tx = plan.txs.get(txid)
        if tx is None:
            skipped.append(
                Skipped(
                    "the wallet lists it but the node cannot show it; check the node is synced", txid=txid
                )
            )
            continue
        if tx.block is None or not tx.block.in_best_chain:
            skipped.append(
                Skipped("not in a block of the best chain (a reorganisation?); sync again later", txid=txid)
            )
            continue
        if (why := blind_spot(tx, plan.scripts)) is not None:
            skipped.append(Skipped(why, txid=txid))
            continue
        movement = classify(tx, plan.scripts.by_script)
        if movement is None:
            skipped.append(
                Skipped(
                    "moves no vault's coins within the scripts matched "
                    f"({plan.scripts.describe_ranges()}); nothing to book",
                    txid=txid,
                )
            )
            continue
        draft = draft_for(tx, movement, counterparty=None, memo=None)
        spend = plan.spends.get(txid)
        if spend is not None:  # a spend of ours: its counterparties and memo
            postings = spend_postings(movement, spend, plan.counterparties)
            draft = dataclasses.replace(draft, postings=postings, memo=spend.memo)
        found.append((tx.block.height, draft, movement))
    found.sort(key=lambda f: (f[0], f[2].txid))
    return found, skipped


def _open_counterparties(session: Session, drafts: Sequence[EntryDraft], names: frozenset[str]) -> None:
    """Open the spends' counterparty accounts the drafts book to and that do not exist yet."""
    wanted = {p.account for d in drafts for p in d.postings if p.account in names}
    for name in sorted(wanted):
        try:
            accounts.get_account(session, name)
        except NotFound:
            accounts.add_account(session, name, AccountType.COUNTERPARTY)


def write_sync(
    session: Session,
    found: Sequence[tuple[int, EntryDraft, Movement]],
    counterparties: frozenset[str] = frozenset(),
) -> tuple[list[SyncItem], list[Skipped]]:
    """Book the drafts in the caller's (short, write) transaction; skip those booked meanwhile.
    ``counterparties``: account names of spends' destinations, opened when a draft books to one."""
    if not found:
        return [], []
    lock_journal(session)  # PostgreSQL: the re-check and the system accounts under the writers' lock
    txids = [d.txid for _, d, _ in found if d.txid is not None]
    booked = recorded_txids(session, txids)
    todo = [f for f in found if f[1].txid not in booked]
    skipped = [
        Skipped(f"booked meanwhile as entry #{booked[str(d.txid)]}", txid=d.txid)
        for _, d, _ in found
        if d.txid in booked
    ]
    if not todo:
        return [], skipped
    ensure_system_accounts(session)
    drafts = [dataclasses.replace(d, ref=chain_ref(session, str(d.txid))) for _, d, _ in todo]
    _open_counterparties(session, drafts, counterparties)
    try:
        with session.begin_nested():  # the whole batch at once (the usual case)
            entries = book.append_many(session, drafts, chain_verified=True)
        return [SyncItem(m, h, e.seq) for (h, _, m), e in zip(todo, entries, strict=True)], skipped
    except LedgerError:
        pass
    # One transaction the books refuse never blocks the others: each alone, the refused skipped.
    items: list[SyncItem] = []
    for (height, _, movement), draft in zip(todo, drafts, strict=True):
        try:
            with session.begin_nested():
                [entry] = book.append_many(session, [draft], chain_verified=True)
        except LedgerError as e:
            skipped.append(Skipped(f"not booked: {e}", txid=draft.txid))
            continue
        items.append(SyncItem(movement, height, entry.seq))
    return items, skipped


def _usable_counterparties(session: Session, spends: Mapping[str, Spend]) -> frozenset[str]:
    """Spends' counterparty names that are counterparty accounts, or no account yet (never a vault's
    or a system account of another type: those legs go to unattributed)."""
    names = {n for s in spends.values() for n in spend_counterparties(s)}
    usable: set[str] = set()
    for name in names:
        try:
            account = accounts.get_account(session, name)
        except NotFound:
            usable.add(name)
            continue
        if account.type == AccountType.COUNTERPARTY:
            usable.add(name)
    return frozenset(usable)


def sync(
    read: SessionFactory,
    write: SessionFactory,
    rpc: RpcClient,
    *,
    vault: str | None = None,
    dry_run: bool = False,
) -> SyncReport:
    """Gather (``read`` session, then the node), judge, write (one ``write`` session)."""
    with read() as s:
        books = read_books(s, None)
        spends = spends_by_txid(s)
        counterparties = _usable_counterparties(s, spends)
        still_open = tuple(x for x in open_spends(s) if vault is None or x.vault == vault)
    plan = dataclasses.replace(gather_sync(rpc, books, vault), spends=spends, counterparties=counterparties)
    settle_plan: SettlePlan = gather_settle(rpc, still_open, books.vaults)
    tip = rpc.get_block_count()
    found, skipped = judge_sync(plan)
    ungated = _ungated(read, plan, [m.txid for _, _, m in found], tip)
    conflicted = judge_settle(settle_plan)
    settled: list[Settlement] = []
    if dry_run:
        items = [SyncItem(m, h, None) for h, _, m in found]
    else:
        with write() as s:
            items, late = write_sync(s, found, counterparties)
            if settle_plan.spends:
                lock_journal(s)
                booked = recorded_txids(s, [x.txid for x in settle_plan.spends])
                settled = write_settle(s, settle_plan, conflicted, booked, tip)
        skipped += late
        unlock_settled(rpc, read, settled)
    pending = tuple(sorted(plan.known.unconfirmed - plan.orphaned))
    already = len(plan.known.confirmed & plan.books.booked.keys())
    return SyncReport(tuple(items), dry_run, already, pending, tuple(skipped), tuple(settled), ungated)


def _ungated(
    read: SessionFactory, plan: SyncPlan, txids: Sequence[str], tip: int
) -> tuple[OutflowCheck, ...]:
    """The transactions to book that spend a vault's outputs without having passed the gate,
    judged against it (:mod:`ledger.chain.outflows`; the audit reports them until acknowledged)."""
    txs = [plan.txs[t] for t in txids if t in plan.txs]
    if not any(spends_vault(t, plan.scripts.by_script) for t in txs):
        return ()
    with read() as s:
        outflows = gather_outflows(
            s, txs, plan.scripts.by_script, plan.scripts.ranges, tip, plan.books.vaults
        )
        acknowledged = acknowledged_outflows(s)
    return tuple(c for c in judge_outflows(outflows, acknowledged) if not c.outflow.gated)
