"""What the vaults' watch-only wallets know about transactions: typed readers.

A watch-only wallet keeps every transaction touching its scripts, with its state: confirmations
(negative when a conflicting transaction is that many blocks deep: it can never confirm), the
block it is in, the transactions it conflicts with, and the one that replaced it (RBF). On a node
without ``-txindex`` the wallets are also how a confirmed transaction is found at all
(:func:`custody.chain.fetch_transactions`). Nothing outside this module indexes the JSON of
``gettransaction`` or ``listtransactions``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from custody.errors import InvalidAddressOrKey, RpcError, WalletNotFound
from custody.rpc import RpcClient


@dataclass(frozen=True, slots=True)
class WalletTxState:
    """One transaction as a vault's wallet sees it.

    ``confirmations``: > 0 in a block of the best chain, 0 unconfirmed, < 0 conflicted by a
    transaction that deep. ``replaced_by``: the transaction that replaced or double-spent it,
    when the wallet knows it (a fee bump of its own, or the first of ``mempool_conflicts``).
    ``mempool_conflicts``: mempool transactions spending an input of it or of an unconfirmed
    parent (``mempoolconflicts``, Core 28+): a deposit replaced (RBF) by a transaction that pays
    no vault has no other trace in the wallet while the replacement is unconfirmed.
    ``coinbase``: a mining reward (``generated``). ``raw_hex``: the serialised transaction (from
    ``gettransaction``; empty from ``listtransactions``).
    """

    txid: str
    wallet: str
    confirmations: int
    block_hash: str | None = None
    conflicts: tuple[str, ...] = ()
    replaced_by: str | None = None
    raw_hex: str = field(default="", repr=False, compare=False)
    mempool_conflicts: tuple[str, ...] = ()
    coinbase: bool = False

    @property
    def conflicted(self) -> bool:
        """It can never confirm (as things stand): double-spent by a confirmed transaction, or
        replaced in the mempool (by a fee bump of the wallet's, or by any transaction)."""
        return self.confirmations < 0 or self.replaced_by is not None or bool(self.mempool_conflicts)

    @property
    def orphaned(self) -> bool:
        """A mining reward not in the best chain: its block left it, and a coinbase never
        returns to the mempool nor is mined again, so it can never confirm."""
        return self.coinbase and self.confirmations < 1

    @property
    def confirmed(self) -> bool:
        return self.confirmations > 0

    @property
    def pending(self) -> bool:
        """Unconfirmed, neither replaced nor an orphaned mining reward: it may still confirm."""
        return self.confirmations == 0 and not self.conflicted and not self.orphaned


def _state(wallet: str, reply: Mapping[str, Any]) -> WalletTxState:
    confirmations = int(reply.get("confirmations", 0))
    # a confirmed transaction has no mempool rival that counts (Core lists none either)
    in_mempool = () if confirmations > 0 else tuple(str(t) for t in reply.get("mempoolconflicts", ()))
    replaced_by = reply.get("replaced_by_txid") or next(iter(in_mempool), None)
    return WalletTxState(
        txid=str(reply["txid"]),
        wallet=wallet,
        confirmations=confirmations,
        block_hash=str(reply["blockhash"]) if reply.get("blockhash") else None,
        conflicts=tuple(str(t) for t in reply.get("walletconflicts", ())),
        replaced_by=str(replaced_by) if replaced_by else None,
        raw_hex=str(reply.get("hex", "")),
        mempool_conflicts=in_mempool,
        coinbase=bool(reply.get("generated", False)),
    )


def _lookup(rpc: RpcClient, wallets: Sequence[str], txids: Iterable[str]) -> dict[str, WalletTxState]:
    """``gettransaction`` for each txid in the first wallet that knows it: one batch per wallet.

    Wallets that are not loaded, and txids no wallet knows, are left out.
    """
    todo = list(dict.fromkeys(txids))
    found: dict[str, WalletTxState] = {}
    for name in dict.fromkeys(wallets):
        if not todo:
            break
        client = rpc.wallet(name)
        try:
            replies = client.batch_results([("gettransaction", (t, True)) for t in todo])
        except WalletNotFound:
            continue
        finally:
            client.close()
        for txid, reply in zip(todo, replies, strict=True):
            if isinstance(reply, InvalidAddressOrKey | WalletNotFound):
                continue
            if isinstance(reply, RpcError):
                raise reply
            found[txid] = _state(name, reply)
        todo = [t for t in todo if t not in found]
    return found


def wallet_transactions(
    rpc: RpcClient, wallets: Sequence[str], txids: Iterable[str]
) -> dict[str, WalletTxState]:
    """The state (and raw hex) of each txid some of ``wallets`` knows; unknown txids left out."""
    return _lookup(rpc, wallets, txids)


def wallet_tx_states(
    rpc: RpcClient, wallets: Sequence[str], txids: Iterable[str]
) -> dict[str, WalletTxState]:
    """Like :func:`wallet_transactions`, and a conflicted transaction whose wallet does not say
    what replaced it gets ``replaced_by`` = the conflicting transaction that is confirmed."""
    states = _lookup(rpc, wallets, txids)
    unnamed = {t: s for t, s in states.items() if s.confirmations < 0 and s.replaced_by is None}
    rivals = _lookup(rpc, wallets, sorted({c for s in unnamed.values() for c in s.conflicts}))
    for txid, s in unnamed.items():
        winner = next((c for c in s.conflicts if c in rivals and rivals[c].confirmed), None)
        if winner is not None:
            states[txid] = replace(s, replaced_by=winner)
    return states


def list_wallet_txs(rpc: RpcClient, wallet: str) -> tuple[WalletTxState, ...]:
    """Every transaction ``wallet`` knows, once each (``listtransactions`` lists one line per
    address and category). Raises :class:`WalletNotFound` when the wallet is not loaded.

    The whole history in one call: on its own connection with the long timeout (a wallet with
    many transactions answers in seconds to minutes, more on a busy node)."""
    client = rpc.wallet(wallet).long_call_client()
    try:
        listed = client.listtransactions(label="*", count=1_000_000, skip=0, include_watchonly=True)
    finally:
        client.close()
    by_txid: dict[str, WalletTxState] = {}
    for line in listed:
        s = _state(wallet, line)
        prior = by_txid.get(s.txid)
        if prior is None:
            by_txid[s.txid] = s
        elif s.conflicts and not prior.conflicts:
            by_txid[s.txid] = replace(prior, conflicts=s.conflicts)
    return tuple(by_txid.values())
