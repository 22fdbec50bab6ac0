"""``reserve sync``: book the on-chain movements of watched vaults that are not in the ledger.

The watch-only wallets say which transactions touch the vaults; each is then fetched raw and
classified exactly as :mod:`ledger.recording` does, so sync books nothing a manual record would
refuse. Idempotent: transactions already booked are skipped; a second run books nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.orm import Session

from custody.chain import fetch_transactions
from custody.errors import WalletNotFound
from custody.rpc import RpcClient
from ledger.errors import NotFound
from ledger.movement import Movement, classify
from ledger.recording import VaultScripts, book, recorded_txids, wallet_ranges
from ledger.vaults import Vault, list_vaults


@dataclass(frozen=True, slots=True)
class WalletTxids:
    confirmed: frozenset[str]
    unconfirmed: frozenset[str]
    conflicted: dict[str, str | None]  # txid -> replaced_by_txid


def wallet_txids(rpc: RpcClient, vaults: Sequence[Vault]) -> WalletTxids:
    """Transactions the vaults' watch-only wallets know, by state."""
    confirmed: set[str] = set()
    unconfirmed: set[str] = set()
    conflicted: dict[str, str | None] = {}
    for v in vaults:
        try:
            txs = rpc.wallet(v.wallet_name).call("listtransactions", "*", 1_000_000, 0, True)
        except WalletNotFound:
            raise NotFound(
                f"vault {v.name} is not watched by the node (wallet {v.wallet_name} is not loaded): "
                f"run `reserve vault watch {v.name}`"
            ) from None
        for t in txs:
            conf = int(t.get("confirmations", 0))
            if conf > 0:
                confirmed.add(t["txid"])
                # a confirmed transaction names those it double-spent (e.g. a fee-bumped original)
                for other in t.get("walletconflicts", []):
                    conflicted.setdefault(other, t["txid"])
            elif conf == 0:
                unconfirmed.add(t["txid"])
            else:
                conflicted[t["txid"]] = t.get("replaced_by_txid")
    return WalletTxids(frozenset(confirmed), frozenset(unconfirmed - confirmed), conflicted)


@dataclass(frozen=True, slots=True)
class SyncItem:
    movement: Movement
    block_height: int
    seq: int | None  # None on a dry run


@dataclass(frozen=True, slots=True)
class SyncReport:
    items: tuple[SyncItem, ...]
    dry_run: bool
    already_recorded: int
    unconfirmed: int


def sync(session: Session, rpc: RpcClient, *, vault: str | None = None, dry_run: bool = False) -> SyncReport:
    all_vaults = list_vaults(session, include_retired=True)
    watched = [v for v in all_vaults if vault is None or v.name == vault]
    if vault is not None and not watched:
        raise NotFound(f"unknown vault {vault!r}; `reserve vault list` shows the vaults")
    scripts = VaultScripts.of(all_vaults, wallet_ranges(rpc, all_vaults))
    known = wallet_txids(rpc, watched)
    booked = recorded_txids(session, known.confirmed)
    todo = sorted(known.confirmed - booked.keys())
    txs = fetch_transactions(rpc, todo)
    found = []
    for txid in todo:
        tx = txs.get(txid)
        if tx is None or tx.block is None or not tx.block.in_best_chain:
            continue
        movement = classify(tx, scripts.by_script)
        if movement is not None:
            found.append((tx.block.height, txid, tx, movement))
    items = []
    for height, _txid, tx, movement in sorted(found, key=lambda f: (f[0], f[1])):
        seq = None if dry_run else book(session, tx, movement).seq
        items.append(SyncItem(movement, height, seq))
    return SyncReport(tuple(items), dry_run, len(booked), len(known.unconfirmed))
