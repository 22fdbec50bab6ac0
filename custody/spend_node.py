"""The node's side of a spend: typed calls for building, locking, checking and sending PSBTs.

The service holds no private key: a vault's watch-only wallet selects coins and builds the
unsigned PSBT (``walletcreatefundedpsbt``), the coins a proposal uses are locked in that wallet
(``lockunspent``, persistent) so no other proposal picks them, the gate reads each input's
previous output from the node's UTXO set (``gettxout``), and a spend that passes the gate is
finalized (``finalizepsbt``), checked (``testmempoolaccept``) and sent
(``sendrawtransaction``). Nothing outside this module indexes the JSON of these calls.

Fee rates are int sat/kvB here as everywhere inside (1 sat/vB = 1000 sat/kvB); they go to the
node as exact :class:`~decimal.Decimal` sat/vB.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal

from custody.amount import btc_decimal, sat_from_rpc
from custody.errors import CustodyError, InvalidInput, RpcError
from custody.rpc import RpcClient

Outpoint = tuple[str, int]

_UNAVAILABLE = ("unknown transaction", "expected unspent output", "vout index out of bounds")
"""What ``lockunspent`` says of a coin the wallet does not have (or no longer has) unspent."""


def outpoint_text(outpoint: Outpoint) -> str:
    """``txid:vout``."""
    return f"{outpoint[0]}:{outpoint[1]}"


@dataclass(frozen=True, slots=True)
class FundedPsbt:
    """What the vault's wallet built: the PSBT (base64), its fee and the change output's index."""

    psbt: str
    fee: int
    change_index: int | None


@dataclass(frozen=True, slots=True)
class Coin:
    """An unspent output as the node's UTXO set has it (``gettxout``)."""

    value: int
    script_pubkey: bytes
    confirmations: int
    coinbase: bool


@dataclass(frozen=True, slots=True)
class Finalized:
    """``finalizepsbt``: the network transaction when every input is complete."""

    complete: bool
    hex: str | None


def fee_rate_text(sat_per_kvb: int) -> Decimal:
    """``sat_per_kvb`` as exact sat/vB for the node (``2500`` -> ``2.5``)."""
    return Decimal(sat_per_kvb).scaleb(-3)


def fund_psbt(
    wallet: RpcClient,
    outputs: Sequence[tuple[str, int]],
    *,
    fee_rate: int | None,
    inputs: Sequence[Outpoint] = (),
) -> FundedPsbt:
    """Have the vault's watch-only wallet (``wallet``, a ``/wallet/<name>`` client) build an
    unsigned PSBT paying ``outputs`` (address, sat), with change to its internal (change)
    descriptor and BIP-32 derivations for every key. ``inputs``: use exactly these coins
    (coin control), else the wallet selects among its unlocked coins. Locks nothing."""
    if not outputs:
        raise InvalidInput("a spend needs at least one output (--pay DEST=AMOUNT)")
    options: dict[str, object] = {"includeWatching": True, "lockUnspents": False}
    if fee_rate is not None:
        options["fee_rate"] = fee_rate_text(fee_rate)
    if inputs:
        options["add_inputs"] = False
    try:
        reply = wallet.call_named(
            "walletcreatefundedpsbt",
            inputs=[{"txid": t, "vout": v} for t, v in inputs],
            outputs=[{address: btc_decimal(sat)} for address, sat in outputs],
            locktime=0,
            options=options,
            bip32derivs=True,
        )
    except RpcError as e:
        if e.code == -6 or "Insufficient funds" in e.rpc_message:
            raise InvalidInput(
                f"the vault's unlocked coins cannot pay {sum(s for _, s in outputs)} sat plus the fee "
                f"({e.rpc_message}); coins of open spends are locked: cancel one or pay less"
            ) from None
        raise
    change = int(reply.get("changepos", -1))
    return FundedPsbt(str(reply["psbt"]), sat_from_rpc(reply["fee"]), None if change < 0 else change)


def locked_coins(wallet: RpcClient) -> frozenset[Outpoint]:
    """The coins locked in the wallet (``listlockunspent``)."""
    return frozenset((str(o["txid"]), int(o["vout"])) for o in wallet.call("listlockunspent"))


def lock_coins(
    wallet: RpcClient, outpoints: Iterable[Outpoint], *, skip_unavailable: bool = False
) -> tuple[Outpoint, ...]:
    """Lock ``outpoints`` in the wallet (persistent: kept across restarts) unless already locked;
    returns those this call locked (so a caller that gives up unlocks only those, never a coin
    another proposal locked). A coin another caller locks between the listing and this call's
    lock is :class:`CustodyError` naming it, and nothing stays locked by this call. Which
    proposal holds a coin is the books' to say (``spend_inputs``), re-checked when it is stored.
    ``skip_unavailable``: coins the wallet does not know or has spent are passed over."""
    todo = sorted(set(outpoints) - locked_coins(wallet))
    done: list[Outpoint] = []
    for outpoint in todo:  # one at a time: on a refusal, undo exactly what this call did
        try:
            wallet.call("lockunspent", False, [{"txid": outpoint[0], "vout": outpoint[1]}], True)
        except RpcError as e:
            if skip_unavailable and any(w in e.rpc_message for w in _UNAVAILABLE):
                continue
            unlock_coins(wallet, done)
            raise CustodyError(
                f"coin {outpoint_text(outpoint)} cannot be locked ({e.rpc_message}): another "
                "proposal took it at the same moment; run the command again"
            ) from None
        done.append(outpoint)
    return tuple(done)


def unlock_coins(wallet: RpcClient, outpoints: Iterable[Outpoint]) -> tuple[Outpoint, ...]:
    """Unlock those of ``outpoints`` that are locked in the wallet; returns those unlocked. A coin
    the wallet has meanwhile seen spent is left as the node keeps it (it can never be chosen)."""
    done: list[Outpoint] = []
    for t, v in sorted(set(outpoints) & locked_coins(wallet)):
        try:
            wallet.call("lockunspent", True, [{"txid": t, "vout": v}], True)
        except RpcError as e:
            if any(w in e.rpc_message for w in _UNAVAILABLE):
                continue
            raise
        done.append((t, v))
    return tuple(done)


def unspent_coins(
    rpc: RpcClient, outpoints: Sequence[Outpoint], *, include_mempool: bool = True
) -> dict[Outpoint, Coin | None]:
    """Each outpoint's coin in the node's UTXO set (``None``: spent, or never existed). With
    ``include_mempool`` a coin spent by a mempool transaction counts as spent."""
    node = rpc.clone(wallet=None)
    try:
        replies = node.batch([("gettxout", (t, v, include_mempool)) for t, v in outpoints])
    finally:
        node.close()
    out: dict[Outpoint, Coin | None] = {}
    for outpoint, r in zip(outpoints, replies, strict=True):
        out[outpoint] = (
            None
            if r is None
            else Coin(
                value=sat_from_rpc(r["value"]),
                script_pubkey=bytes.fromhex(r["scriptPubKey"]["hex"]),
                confirmations=int(r["confirmations"]),
                coinbase=bool(r.get("coinbase", False)),
            )
        )
    return out


def finalize_psbt(rpc: RpcClient, psbt: str) -> Finalized:
    """``finalizepsbt``: combine each input's signatures into its witness, extract the transaction."""
    node = rpc.clone(wallet=None)
    try:
        reply = node.call("finalizepsbt", psbt, True)
    finally:
        node.close()
    complete = bool(reply.get("complete"))
    return Finalized(complete, str(reply["hex"]) if complete and reply.get("hex") else None)


def mempool_refusal(rpc: RpcClient, tx_hex: str, max_fee_rate: int) -> str | None:
    """Why the node's mempool would refuse ``tx_hex`` (``testmempoolaccept``), ``None`` if it takes it.
    ``max_fee_rate`` (sat/kvB) replaces the node's default ceiling (the gate has checked the fee)."""
    node = rpc.clone(wallet=None)
    try:
        [reply] = node.call("testmempoolaccept", [tx_hex], btc_decimal(max(max_fee_rate, 1)))
    finally:
        node.close()
    if reply.get("allowed"):
        return None
    return str(reply.get("reject-reason") or reply.get("package-error") or "refused")


def send_transaction(rpc: RpcClient, tx_hex: str, max_fee_rate: int) -> str:
    """``sendrawtransaction``; returns the txid. ``max_fee_rate`` in sat/kvB, as for
    :func:`mempool_refusal`."""
    node = rpc.clone(wallet=None)
    try:
        return str(node.call("sendrawtransaction", tx_hex, btc_decimal(max(max_fee_rate, 1))))
    finally:
        node.close()


def in_mempool(rpc: RpcClient, txids: Sequence[str]) -> frozenset[str]:
    """Those of ``txids`` in the node's mempool."""
    if not txids:
        return frozenset()
    node = rpc.clone(wallet=None)
    try:
        replies = node.batch_results([("getmempoolentry", (t,)) for t in txids])
    finally:
        node.close()
    return frozenset(t for t, r in zip(txids, replies, strict=True) if not isinstance(r, RpcError))
