"""Chain-verified recording: a movement enters the books only as the chain shows it.

``reserve record deposit|withdrawal|transfer|mining`` runs in three steps:

1. **gather** (:func:`gather_record`): a short read of the books (vaults, accounts, the entry
   already booking the txid, issued address ranges), then the node, with no write transaction
   open: the raw transaction with its inputs' previous outputs (:mod:`custody.chain`; on a node
   without ``-txindex`` through the vaults' watch-only wallets) and the wallets' view of it
   (confirmations, conflicts, replacement). The result is a plain :class:`RecordPlan`;
2. **judge** (:func:`judge_record`, pure): the transaction must be confirmed in the best chain,
   move the claimed vault in the claimed direction (:mod:`ledger.chain.movement`), match ``--amount``,
   name no vault as the counterparty, and not be booked yet. The draft books the **whole**
   transaction output by output: every vault it touches gets its own net flow;
3. **write** (:func:`write_record`): one short transaction that re-checks the txid is still
   unbooked and appends the entry with ``chain_verified=True``.

Any refusal writes nothing.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass

from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from custody.amount import format_btc
from custody.chain import ChainTx, check_txid, fetch_transactions, has_txindex
from custody.errors import WalletNotFound
from custody.rpc import RpcClient
from custody.wallet import watched_range_end
from custody.wallet_txs import WalletTxState, wallet_tx_states
from ledger.chain.issuance import issued_ranges
from ledger.chain.movement import SYSTEM_ACCOUNTS, Movement, MovementKind, classify, describe, postings_for
from ledger.chain.vaults import Vault, list_vaults
from ledger.errors import ChainMismatch, Conflict, InvalidInput, NotFound
from ledger.journal import accounts, book
from ledger.journal.entry import RESERVE_ACCOUNT_TYPE, Entry, EntryDraft
from ledger.store.db import lock_journal, read_only
from ledger.store.models import AccountRow, EntryRow

SCRIPT_RANGE = 1000
"""At least receive and change indexes 0..SCRIPT_RANGE-1 of every vault are matched against the
chain; more when the vault's watch-only wallet has grown its range or addresses were issued
beyond it."""

SessionFactory = Callable[[], AbstractContextManager[Session]]


def session_factories(engine: Engine) -> tuple[SessionFactory, SessionFactory]:
    """``(read, write)`` session factories over ``engine`` for callers without the CLI's
    :class:`~ledger.cli.app.App` (benches, scripts): each opens one transaction, the read one
    without a write lock (:func:`ledger.store.db.read_only`)."""

    @contextmanager
    def read() -> Iterator[Session]:
        with Session(read_only(engine)) as s, s.begin():
            yield s

    @contextmanager
    def write() -> Iterator[Session]:
        with Session(engine) as s, s.begin():
            yield s

    return read, write


_script_cache: dict[tuple[str, int], dict[bytes, str]] = {}


@dataclass(frozen=True, slots=True)
class VaultScripts:
    """Every vault script the books know, ``script_pubkey -> vault name``, and the index range
    (``0..ranges[vault]-1`` on receive and change) each vault was expanded to."""

    by_script: Mapping[bytes, str]
    ranges: Mapping[str, int]
    unwatched: tuple[str, ...] = ()  # vaults whose watch-only wallet is not loaded

    @property
    def vaults(self) -> tuple[str, ...]:
        return tuple(self.ranges)

    @classmethod
    def of(cls, vaults: Iterable[Vault], *range_maps: Mapping[str, int] | None) -> VaultScripts:
        """Scripts of ``vaults`` up to the largest end any of ``range_maps`` gives (at least
        :data:`SCRIPT_RANGE`)."""
        scripts: dict[bytes, str] = {}
        used: dict[str, int] = {}
        for v in vaults:
            end = max([SCRIPT_RANGE, *((m or {}).get(v.name, 0) for m in range_maps)])
            used[v.name] = end
            key = (str(v.descriptor), end)
            if key not in _script_cache:
                derived: dict[bytes, str] = {}
                for change in (False, True):
                    for i in range(end):
                        derived[v.descriptor.script_pubkey(i, change)] = v.name
                _script_cache[key] = derived
            scripts.update(_script_cache[key])
        return cls(scripts, used)

    def describe_ranges(self) -> str:
        return ", ".join(f"0-{end - 1} of {name}" for name, end in self.ranges.items())


def wallet_ranges(rpc: RpcClient, vaults: Iterable[Vault]) -> dict[str, int]:
    """How far each vault's watch-only wallet watches (range end + 1); vaults not watched: none."""
    out: dict[str, int] = {}
    for v in vaults:
        try:
            end = watched_range_end(rpc, v.wallet_name)
        except WalletNotFound:
            continue
        if end is not None:
            out[v.name] = end
    return out


def recorded_txids(session: Session, txids: Iterable[str] | None = None) -> dict[str, int]:
    """txid -> seq of the entry booking it, for entries that are not reversed.

    Only chain recording's bookings count (they carry the block hash; no other entry may): a
    manual entry naming a txid is a note about it, never its booking, so it cannot keep a
    transaction out of the books."""
    reversed_seqs = select(EntryRow.reverses_seq).where(EntryRow.reverses_seq.is_not(None))
    q = select(EntryRow.txid, EntryRow.seq).where(
        EntryRow.txid.is_not(None),
        EntryRow.block_hash.is_not(None),
        EntryRow.kind != "reversal",
        EntryRow.seq.not_in(reversed_seqs),
    )
    if txids is not None:
        q = q.where(EntryRow.txid.in_(list(txids)))
    return {str(t): int(s) for t, s in session.execute(q)}


def ensure_system_accounts(session: Session) -> None:
    """The accounts chain recording books against (mining income, network fees, unattributed)."""
    for name, account_type in SYSTEM_ACCOUNTS:
        try:
            existing = accounts.get_account(session, name)
        except NotFound:
            accounts.add_account(session, name, account_type)
            continue
        if existing.type != account_type:  # opened before names were guarded: never book to it
            raise Conflict(
                f"account {name!r} has type {existing.type}, but chain recording books to it as its "
                f"{account_type} account; nothing was booked. Accounts are never renamed or retyped: "
                f"restore the books from a backup taken before {name!r} was opened"
            )


def chain_ref(session: Session, txid: str) -> str:
    """The idempotency ref of the next entry booking ``txid`` (counts earlier, reversed ones).

    A ref of that name already held by another entry (taken by hand before the
    :data:`~ledger.journal.book.CHAIN_REF_PREFIX` namespace was reserved) is passed over, so it
    never blocks the booking."""
    prior = session.scalar(select(func.count()).select_from(EntryRow).where(EntryRow.txid == txid)) or 0
    ref = f"{book.CHAIN_REF_PREFIX}{txid}:{prior}"
    while session.scalar(select(EntryRow.seq).where(EntryRow.ref == ref)) is not None:
        prior += 1
        ref = f"{book.CHAIN_REF_PREFIX}{txid}:{prior}"
    return ref


def draft_for(tx: ChainTx, movement: Movement, *, counterparty: str | None, memo: str | None) -> EntryDraft:
    """The entry booking a confirmed transaction whole: every vault its net flow (pure)."""
    if tx.block is None:
        raise ChainMismatch(f"transaction {tx.txid} is unconfirmed; record it once it is in a block")
    return EntryDraft(
        kind=str(movement.kind),
        memo=memo or describe(movement),
        postings=postings_for(movement, counterparty),
        txid=tx.txid,
        outputs=",".join(str(i) for i in movement.outputs) or None,
        block_hash=tx.block.block_hash,
        block_height=tx.block.height,
    )


# --- gather -----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Claim:
    """What the user says a transaction is: ``vault`` receives a deposit or mining reward, or
    spends in a withdrawal or transfer; ``to_vault`` receives a transfer; ``amount`` (satoshis,
    optional) is checked against the chain."""

    kind: str
    txid: str
    vault: str
    to_vault: str | None = None
    counterparty: str | None = None
    amount: int | None = None
    memo: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("deposit", "withdrawal", "transfer", "mining"):
            raise InvalidInput(
                f"record kind {self.kind!r} is not one of deposit, withdrawal, transfer, mining"
            )
        object.__setattr__(self, "txid", check_txid(self.txid))


@dataclass(frozen=True, slots=True)
class Books:
    """What the books say before the node is asked (a short read)."""

    vaults: tuple[Vault, ...]
    issued: Mapping[str, int]  # vault -> highest issued address index + 1
    account_types: Mapping[str, str]  # name -> type, of the accounts the request names
    booked: Mapping[str, int]  # txid -> seq of the live entry booking it


def read_books(session: Session, txids: Iterable[str] | None, account_names: Iterable[str] = ()) -> Books:
    """The gather step's database part: vaults, issued ranges, the named accounts, and which of
    ``txids`` (``None``: any txid) live entries book already."""
    names = sorted(set(account_names))
    rows = session.execute(select(AccountRow.name, AccountRow.type).where(AccountRow.name.in_(names))).all()
    return Books(
        vaults=list_vaults(session, include_retired=True),
        issued=issued_ranges(session),
        account_types={str(n): str(t) for n, t in rows},
        booked=recorded_txids(session, None if txids is None else list(txids)),
    )


def scripts_of(rpc: RpcClient, books: Books) -> VaultScripts:
    """Every vault's scripts, as far as its wallet watches or addresses were issued."""
    watched = wallet_ranges(rpc, books.vaults)
    scripts = VaultScripts.of(books.vaults, watched, books.issued)
    unwatched = tuple(v.name for v in books.vaults if v.name not in watched)
    return dataclasses.replace(scripts, unwatched=unwatched)


def blind_spot(tx: ChainTx, scripts: VaultScripts) -> str | None:
    """Why ``tx`` cannot be classified safely, or ``None``.

    An input whose previous output the node cannot show (no ``-txindex``) counts as someone
    else's. That holds only while every vault's wallet is loaded: a vault's own coins are always
    in its wallet. Otherwise the input might be an unwatched vault's coins (pure).
    """
    unknown = sum(1 for i in tx.inputs if i.prevout is None)
    if tx.is_coinbase or not unknown or not scripts.unwatched:
        return None
    return (
        f"the previous outputs of {unknown} input(s) of transaction {tx.txid} cannot be found "
        f"(the node has no -txindex) and vault(s) {', '.join(scripts.unwatched)} are not watched, "
        "so they could be a vault's coins: run `reserve vault watch NAME` for each, or use a node "
        "with -txindex=1"
    )


@dataclass(frozen=True, slots=True)
class RecordPlan:
    """Everything :func:`judge_record` needs, gathered from the books and the node."""

    claim: Claim
    books: Books
    scripts: VaultScripts
    tx: ChainTx | None  # None: the node could not find it
    state: WalletTxState | None  # the vault wallets' view (None: no vault wallet knows it)
    txindex: bool | None  # whether the node has -txindex (asked only when the tx was not found)


def gather_record(rpc: RpcClient, books: Books, claim: Claim) -> RecordPlan:
    """The gather step's node part (no database transaction open)."""
    scripts = scripts_of(rpc, books)
    if any(name not in scripts.vaults for name in (claim.vault, claim.to_vault) if name is not None):
        return RecordPlan(claim, books, scripts, None, None, None)
    wallets = [v.wallet_name for v in books.vaults]
    tx = fetch_transactions(rpc, [claim.txid], wallets).get(claim.txid)
    state = wallet_tx_states(rpc, wallets, [claim.txid]).get(claim.txid)
    txindex = has_txindex(rpc) if tx is None else None
    return RecordPlan(claim, books, scripts, tx, state, txindex)


# --- judge ------------------------------------------------------------------------------------------


def _never_confirms(txid: str, state: WalletTxState, booked_as: int | None) -> ChainMismatch:
    by = f" by transaction {state.replaced_by}" if state.replaced_by else ""
    if booked_as is not None:
        advice = (
            f"it is booked as entry #{booked_as}: reverse that entry "
            f"(`reserve reverse {booked_as} --memo ...`)"
        )
    elif state.replaced_by:
        advice = f"there is nothing to record; record {state.replaced_by} instead if it moves a vault"
    else:
        advice = "there is nothing to record; record the transaction that replaced it instead"
    return ChainMismatch(
        f"transaction {txid} was replaced or double-spent{by} (the vault wallet shows "
        f"{state.confirmations} confirmations): it can never confirm; {advice}"
    )


def _not_found(plan: RecordPlan) -> ChainMismatch:
    txid = plan.claim.txid
    if plan.txindex:
        need = "the node has -txindex, so the txid is wrong or the node is not synced"
    else:
        need = (
            "the node runs without -txindex, so it finds a confirmed transaction only when it "
            "pays or spends a vault whose watch-only wallet is loaded (`reserve vault watch NAME`); "
            "check the txid, or run the node with -txindex=1 to find any transaction"
        )
    return ChainMismatch(
        f"transaction {txid} is not known to the node (not in the mempool nor in a block): {need}"
    )


def flow_checked(movement: Movement, claim: Claim) -> int:
    """The amount ``claim`` speaks of, after checking the movement goes the claimed way: the
    vault's gain for a deposit or mining reward, what left for outside for a withdrawal, the
    target vault's gain for a transfer. Raises :class:`ChainMismatch` otherwise."""
    flow = movement.flow
    txid, kind, vault = claim.txid, claim.kind, claim.vault
    wrong = ChainMismatch(
        f"transaction {txid} is a {describe(movement)}, not a {kind} of vault {vault}"
        + (f" to vault {claim.to_vault}" if claim.to_vault else "")
        + "; name the vault the chain shows moving, or use the matching `reserve record` command"
    )
    gained, lost = flow.get(vault, 0) > 0, flow.get(vault, 0) < 0
    if kind == "mining":
        if movement.kind is not MovementKind.MINING or not gained:
            raise wrong
        return flow[vault]
    if kind == "deposit":
        if movement.kind is not MovementKind.DEPOSIT or not gained:
            raise wrong
        return flow[vault]
    if kind == "withdrawal":
        if not lost or movement.external <= 0 or movement.kind is MovementKind.MINING:
            raise wrong
        return movement.external
    # transfer
    if claim.to_vault is None or not lost or flow.get(claim.to_vault, 0) <= 0:
        raise wrong
    return flow[claim.to_vault]


def judge_record(plan: RecordPlan) -> EntryDraft:
    """The entry to book, or the reason not to (pure: no I/O)."""
    claim = plan.claim
    for name in (claim.vault, claim.to_vault):
        if name is not None and name not in plan.scripts.vaults:
            raise NotFound(f"unknown vault {name!r}; `reserve vault list` shows the vaults")
    if claim.counterparty is not None:
        kind = plan.books.account_types.get(claim.counterparty)
        if kind is None:
            raise NotFound(
                f"no account named {claim.counterparty!r}; create it first with "
                f"`reserve account add {claim.counterparty} --type counterparty`"
            )
        if kind == RESERVE_ACCOUNT_TYPE:
            raise InvalidInput(
                f"{claim.counterparty!r} is a vault account: a vault is never the counterparty, its "
                "postings come from the chain; name an outside account (e.g. --from/--to exchange-a), "
                "or record a movement between vaults with `reserve record transfer`"
            )
    tx, state = plan.tx, plan.state
    seq = plan.books.booked.get(claim.txid)
    if state is not None and state.conflicted:
        raise _never_confirms(claim.txid, state, seq)
    if tx is None:
        raise _not_found(plan)
    if tx.is_coinbase and (tx.block is None or not tx.block.in_best_chain):
        raise ChainMismatch(
            f"mining reward {tx.txid} is not in a block of the best chain (its block left it in a "
            "reorganisation): a coinbase never returns to the mempool, so it can never confirm; "
            + (
                f"it is booked as entry #{seq}: reverse that entry (`reserve reverse {seq} --memo ...`)"
                if seq is not None
                else "there is nothing to record"
            )
        )
    if tx.block is None:
        raise ChainMismatch(
            f"transaction {tx.txid} is unconfirmed (pending in the mempool); record it after it confirms"
        )
    if not tx.block.in_best_chain:
        raise ChainMismatch(
            f"transaction {tx.txid} is in block {tx.block.block_hash}, which is not in the best chain "
            "(a reorganisation); record it after it confirms in the best chain"
        )
    if (why := blind_spot(tx, plan.scripts)) is not None:
        raise ChainMismatch(why)
    movement = classify(tx, plan.scripts.by_script)
    if movement is None:
        raise ChainMismatch(
            f"transaction {tx.txid} neither pays nor spends any vault's scripts "
            f"(checked receive and change indexes {plan.scripts.describe_ranges()}); "
            "check the txid, or watch the vault it pays (`reserve vault watch NAME`)"
        )
    amount = flow_checked(movement, claim)
    if claim.amount is not None and claim.amount != amount:
        raise ChainMismatch(
            f"amount mismatch: you said {format_btc(claim.amount)} BTC but transaction {tx.txid} "
            f"moves {format_btc(amount)} BTC ({describe(movement)}); check the amount and the txid"
        )
    if seq is not None:
        raise Conflict(
            f"transaction {claim.txid} is already recorded as entry #{seq}; "
            "reverse that entry first if it was booked wrongly"
        )
    counterparty = None if claim.kind == "mining" else claim.counterparty
    return draft_for(tx, movement, counterparty=counterparty, memo=claim.memo)


# --- write ------------------------------------------------------------------------------------------


def write_record(session: Session, draft: EntryDraft) -> Entry:
    """Book a judged draft in the caller's (short, write) transaction, re-checking that its txid
    was not booked meanwhile."""
    if draft.txid is None:
        raise InvalidInput("a chain-verified entry needs its txid")
    lock_journal(session)  # PostgreSQL: the re-check and the system accounts under the writers' lock
    if (seq := recorded_txids(session, [draft.txid]).get(draft.txid)) is not None:
        raise Conflict(
            f"transaction {draft.txid} is already recorded as entry #{seq}; "
            "reverse that entry first if it was booked wrongly"
        )
    ensure_system_accounts(session)
    draft = dataclasses.replace(draft, ref=chain_ref(session, draft.txid))
    return book.append(session, draft, chain_verified=True)


def record_movement(read: SessionFactory, write: SessionFactory, rpc: RpcClient, claim: Claim) -> Entry:
    """Gather (``read`` session, then the node), judge, write (one ``write`` session)."""
    with read() as s:
        books = read_books(s, [claim.txid], [claim.counterparty] if claim.counterparty else [])
    plan = gather_record(rpc, books, claim)
    draft = judge_record(plan)
    with write() as s:
        return write_record(s, draft)
