"""What one vault's watch-only wallet says, read once as typed values (for the audit).

:func:`read_wallet_view` asks a watch-only descriptor wallet for its transactions
(:func:`custody.wallet_txs.list_wallet_txs`: one state per transaction), its unspent outputs
(``listunspent`` from 0 confirmations), its balances and how far its descriptors reach.

What bitcoind says, and what is relied on:

- ``confirmations`` is positive in a block of the best chain, 0 in the mempool (or dropped from
  it), and negative for a transaction that conflicts with one in the best chain (double-spent,
  replaced, or a deposit double-spent away in a reorg);
- ``walletconflicts`` names the wallet's other transactions spending an input of this one, and
  ``replaced_by_txid`` is set on a transaction the wallet replaced by fee bumping;
- an immature coinbase output is not in ``listunspent`` (the wallet knows its transaction);
- an output spent by a mempool transaction of the wallet is no longer in ``listunspent``;
- nor is a coin *locked* in the wallet (``lockunspent``: an open spend holds its coins so that no
  other proposal picks them). It is unspent all the same (the wallet unlocks a coin as soon as one
  of its transactions spends it), so the view lists it too, read from its wallet transaction
  (``listlockunspent``, then ``gettransaction``), marked ``locked``.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass

from custody.chain import decode_checked
from custody.errors import InvalidInput, WalletNotFound
from custody.maturity import is_immature
from custody.rpc import RpcClient
from custody.spend_node import locked_coins
from custody.wallet import Balances, Utxo, list_unspent, range_end_of, wallet_balances
from custody.wallet_txs import WalletTxState, list_wallet_txs, wallet_transactions


@dataclass(frozen=True, slots=True)
class Outpoint:
    txid: str
    vout: int

    def __post_init__(self) -> None:
        if len(self.txid) != 64 or self.vout < 0:
            raise InvalidInput(f"bad outpoint {self.txid}:{self.vout}")

    def __str__(self) -> str:
        return f"{self.txid}:{self.vout}"


@dataclass(frozen=True, slots=True)
class WalletView:
    """One vault wallet: its transactions, unspent outputs (any depth), balances and reach.

    ``range_end`` is one past the highest index any of its ranged descriptors watches
    (``None`` when it has none).
    """

    wallet_name: str
    transactions: tuple[WalletTxState, ...]
    unspent: tuple[Utxo, ...]
    balances: Balances
    range_end: int | None

    @property
    def confirmed_unspent(self) -> tuple[Utxo, ...]:
        return tuple(u for u in self.unspent if u.confirmations >= 1)

    @property
    def unconfirmed_unspent(self) -> tuple[Utxo, ...]:
        return tuple(u for u in self.unspent if u.confirmations < 1)

    @property
    def confirmed_txids(self) -> frozenset[str]:
        return frozenset(t.txid for t in self.transactions if t.confirmed)


def read_wallet_view(rpc: RpcClient, wallet_name: str) -> WalletView | None:
    """The wallet's view, or ``None`` when the node has no such wallet loaded."""
    wallet = rpc.wallet(wallet_name)
    try:
        # unspent outputs first: a spend arriving in between then shows as pending (listed by the
        # transactions read after) while its inputs still show as unspent, never as missing. The
        # locks are read before and after: a coin locked or unlocked meanwhile is in one of them
        locked = locked_coins(wallet)
        unspent = list_unspent(wallet, 0)
        locked |= locked_coins(wallet)
        unspent += locked_unspent(rpc, wallet_name, locked - {(u.txid, u.vout) for u in unspent})
        transactions = list_wallet_txs(rpc, wallet_name)
        balances = wallet_balances(wallet)
        listed = wallet.call("listdescriptors")["descriptors"]
    except WalletNotFound:
        return None
    finally:
        wallet.close()
    return WalletView(
        wallet_name=wallet_name,
        transactions=transactions,
        unspent=tuple(sorted(unspent, key=lambda u: (u.txid, u.vout))),
        balances=balances,
        range_end=range_end_of(listed),
    )


def locked_unspent(
    rpc: RpcClient, wallet_name: str, outpoints: Collection[tuple[str, int]]
) -> tuple[Utxo, ...]:
    """The locked coins ``outpoints`` as unspent outputs (``locked=True``), each read from its
    transaction in the wallet (one ``gettransaction`` batch). Left out: a coin whose transaction
    the wallet does not know or shows conflicted (it does not exist), and an immature coinbase
    output (``listunspent`` leaves those out too; the wallet's balances count them)."""
    if not outpoints:
        return ()
    known = wallet_transactions(rpc, [wallet_name], sorted({t for t, _ in outpoints}))
    found: list[Utxo] = []
    for txid, vout in sorted(outpoints):
        state = known.get(txid)
        if state is None or not state.raw_hex or state.conflicted:
            continue
        tx = decode_checked(txid, state.raw_hex)
        if vout >= len(tx.vout) or is_immature(coinbase=tx.is_coinbase(), confirmations=state.confirmations):
            continue
        out = tx.vout[vout]
        found.append(
            Utxo(
                txid=txid,
                vout=vout,
                address="",
                script_pubkey=bytes(out.scriptPubKey),
                amount=int(out.nValue),
                confirmations=state.confirmations,
                solvable=True,
                descriptor="",
                locked=True,
            )
        )
    return tuple(found)
