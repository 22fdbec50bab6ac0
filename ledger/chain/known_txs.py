"""The transactions the vaults' watch-only wallets know, by state (read by sync and the outflow judge)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from custody.errors import WalletNotFound
from custody.rpc import RpcClient
from custody.wallet_txs import list_wallet_txs
from ledger.chain.vaults import Vault
from ledger.errors import NotFound


@dataclass(frozen=True, slots=True)
class WalletTxids:
    """The transactions the vaults' wallets know, by state. ``conflicted``: txid -> the
    transaction that replaced or double-spent it (``None`` when no wallet says)."""

    confirmed: frozenset[str]
    unconfirmed: frozenset[str]
    conflicted: dict[str, str | None]
    unwatched: tuple[str, ...] = ()  # vaults whose wallet is not loaded


def wallet_txids(rpc: RpcClient, vaults: Sequence[Vault], *, strict: bool = True) -> WalletTxids:
    """Transactions the vaults' watch-only wallets know, by state.

    A vault whose wallet is not loaded is :class:`NotFound` when ``strict``, else listed in
    ``unwatched``.
    """
    confirmed: set[str] = set()
    unconfirmed: set[str] = set()
    conflicted: dict[str, str | None] = {}
    unwatched: list[str] = []
    for v in vaults:
        try:
            txs = list_wallet_txs(rpc, v.wallet_name)
        except WalletNotFound:
            if strict:
                raise NotFound(
                    f"vault {v.name} is not watched by the node (wallet {v.wallet_name} is not "
                    f"loaded): run `reserve vault watch {v.name}`"
                ) from None
            unwatched.append(v.name)
            continue
        for t in txs:
            if t.confirmed:
                confirmed.add(t.txid)
                # a confirmed transaction names those it double-spent (e.g. a fee-bumped original)
                for other in t.conflicts:
                    conflicted[other] = conflicted.get(other) or t.txid
            elif t.conflicted:
                conflicted[t.txid] = t.replaced_by or conflicted.get(t.txid)
            else:
                unconfirmed.add(t.txid)
    for txid in confirmed:
        conflicted.pop(txid, None)
    return WalletTxids(
        frozenset(confirmed),
        frozenset(unconfirmed - confirmed - conflicted.keys()),
        conflicted,
        tuple(unwatched),
    )
