"""Chain-verified recording: a movement enters the books only as the chain shows it.

``record_movement`` fetches the raw transaction (and its inputs' previous outputs) from the node,
decodes it here (:mod:`custody.chain`), requires it to be in the best chain, classifies it against
the scripts of every vault (:mod:`ledger.movement`), checks it is what the caller said (kind,
vaults, optional amount) and that it is not already in the books, then appends one entry carrying
txid, vault output indexes, block hash and height. Any refusal writes nothing.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from custody.amount import format_btc
from custody.chain import ChainTx, fetch_transaction
from custody.errors import WalletNotFound
from custody.rpc import RpcClient
from ledger import accounts, journal
from ledger.entry import Entry, EntryDraft
from ledger.errors import ChainMismatch, Conflict, NotFound
from ledger.models import EntryRow
from ledger.movement import SYSTEM_ACCOUNTS, Movement, classify, describe, postings_for
from ledger.vaults import Vault, list_vaults

SCRIPT_RANGE = 1000
"""At least receive and change indexes 0..SCRIPT_RANGE-1 of every vault are matched against the
chain; more when the vault's watch-only wallet has grown its range (its gap limit)."""

_script_cache: dict[tuple[str, int], dict[bytes, str]] = {}


@dataclass(frozen=True, slots=True)
class VaultScripts:
    """Every vault script the books know, ``script_pubkey -> vault name``, and the index range
    (``0..ranges[vault]-1`` on receive and change) each vault was expanded to."""

    by_script: Mapping[bytes, str]
    ranges: Mapping[str, int]

    @property
    def vaults(self) -> tuple[str, ...]:
        return tuple(self.ranges)

    @classmethod
    def of(cls, vaults: Iterable[Vault], ranges: Mapping[str, int] | None = None) -> VaultScripts:
        scripts: dict[bytes, str] = {}
        used: dict[str, int] = {}
        for v in vaults:
            end = max(SCRIPT_RANGE, (ranges or {}).get(v.name, 0))
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


def wallet_ranges(rpc: RpcClient, vaults: Iterable[Vault]) -> dict[str, int]:
    """How far each vault's watch-only wallet watches (range end + 1); vaults not watched: none."""
    out: dict[str, int] = {}
    for v in vaults:
        try:
            listed = rpc.wallet(v.wallet_name).call("listdescriptors")["descriptors"]
        except WalletNotFound:
            continue
        ends = [int(d["range"][1]) + 1 for d in listed if "range" in d]
        if ends:
            out[v.name] = max(ends)
    return out


def load_vault_scripts(session: Session, rpc: RpcClient) -> VaultScripts:
    vaults = list_vaults(session, include_retired=True)
    return VaultScripts.of(vaults, wallet_ranges(rpc, vaults))


def recorded_txids(session: Session, txids: Iterable[str] | None = None) -> dict[str, int]:
    """txid -> seq of the entry booking it, for entries that are not reversed."""
    reversed_seqs = select(EntryRow.reverses_seq).where(EntryRow.reverses_seq.is_not(None))
    q = select(EntryRow.txid, EntryRow.seq).where(
        EntryRow.txid.is_not(None), EntryRow.kind != "reversal", EntryRow.seq.not_in(reversed_seqs)
    )
    if txids is not None:
        q = q.where(EntryRow.txid.in_(list(txids)))
    return {str(t): int(s) for t, s in session.execute(q)}


def ensure_system_accounts(session: Session) -> None:
    """The accounts chain recording books against (mining income, network fees, unattributed)."""
    for name, account_type in SYSTEM_ACCOUNTS:
        try:
            accounts.get_account(session, name)
        except NotFound:
            accounts.add_account(session, name, account_type)


def _prior_chain_entries(session: Session, txid: str) -> int:
    return len(session.scalars(select(EntryRow.seq).where(EntryRow.txid == txid)).all())


def book(
    session: Session,
    tx: ChainTx,
    movement: Movement,
    *,
    counterparty: str | None = None,
    memo: str | None = None,
) -> Entry:
    """Append the entry for an already verified movement (no RPC)."""
    if tx.block is None:
        raise ChainMismatch(f"transaction {tx.txid} is unconfirmed; record it once it is in a block")
    if (seq := recorded_txids(session, [tx.txid]).get(tx.txid)) is not None:
        raise Conflict(
            f"transaction {tx.txid} is already recorded as entry #{seq}; "
            "reverse that entry first if it was booked wrongly"
        )
    ensure_system_accounts(session)
    if counterparty is not None:
        accounts.get_account(session, counterparty)
    draft = EntryDraft(
        kind=movement.kind,
        memo=memo or describe(movement),
        postings=postings_for(movement, counterparty),
        ref=f"chain:{tx.txid}:{_prior_chain_entries(session, tx.txid)}",
        txid=tx.txid,
        outputs=",".join(str(i) for i in movement.outputs) or None,
        block_hash=tx.block.block_hash,
        block_height=tx.block.height,
    )
    return journal.append(session, draft, chain_verified=True)


def record_movement(
    session: Session,
    rpc: RpcClient,
    *,
    kind: str,
    txid: str,
    vault: str | None = None,
    to_vault: str | None = None,
    counterparty: str | None = None,
    amount: int | None = None,
    memo: str | None = None,
) -> Entry:
    """Verify ``txid`` against the chain as a ``kind`` movement of ``vault`` and record it.

    ``vault`` is the receiving vault of a deposit or mining reward and the spending vault of a
    withdrawal or transfer; ``to_vault`` the receiving vault of a transfer.
    """
    scripts = load_vault_scripts(session, rpc)
    for name in (vault, to_vault):
        if name is not None and name not in scripts.vaults:
            raise NotFound(f"unknown vault {name!r}; `reserve vault list` shows the vaults")
    if counterparty is not None:
        accounts.get_account(session, counterparty)
    tx = fetch_transaction(rpc, txid)
    if tx.block is None or not tx.block.in_best_chain:
        raise ChainMismatch(
            f"transaction {tx.txid} is not in a block of the best chain (it is unconfirmed); "
            "wait for a confirmation and record it then"
        )
    movement = classify(tx, scripts.by_script)
    if movement is None:
        raise ChainMismatch(
            f"transaction {tx.txid} neither pays nor spends any vault's scripts "
            "(checked receive and change indexes "
            + ", ".join(f"0-{end - 1} of {name}" for name, end in scripts.ranges.items())
            + ")"
        )
    side = movement.target if kind in ("deposit", "mining") else movement.source
    if side != vault or (kind == "transfer" and movement.target != to_vault):
        raise ChainMismatch(
            f"transaction {tx.txid} is a {describe(movement)}, not a {kind} of vault {vault}"
            + (f" to vault {to_vault}" if to_vault else "")
        )
    if movement.kind != kind:
        raise ChainMismatch(f"transaction {tx.txid} is a {describe(movement)}, not a {kind}")
    if amount is not None and amount != movement.amount:
        raise ChainMismatch(
            f"amount mismatch: you said {format_btc(amount)} BTC but transaction {tx.txid} moves "
            f"{format_btc(movement.amount)} BTC ({describe(movement)})"
        )
    return book(session, tx, movement, counterparty=counterparty, memo=memo)
