"""Chain observation: transactions fetched raw from the node and decoded here.

A recorded movement must be backed by the chain, so nothing is taken from a wallet's summary: the
raw transaction is fetched (``getrawtransaction``, the node runs with ``txindex``), decoded with
python-bitcoinlib, its txid recomputed and compared, and each input's previous output decoded
from its own raw transaction. Amounts are satoshis taken from the serialised outputs.
Block placement comes from ``getblockheader`` (``confirmations == -1`` means off the best chain).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from bitcoin.core import CTransaction, b2lx

from custody.errors import InvalidAddressOrKey, InvalidInput, RpcError
from custody.rpc import RpcClient

COINBASE_MATURITY = 100


@dataclass(frozen=True, slots=True)
class TxOutput:
    index: int
    value: int
    script_pubkey: bytes


@dataclass(frozen=True, slots=True)
class TxInput:
    prev_txid: str
    prev_index: int
    prevout: TxOutput | None  # None: a coinbase input, or a previous output the node could not show


@dataclass(frozen=True, slots=True)
class BlockPlace:
    block_hash: str
    height: int
    confirmations: int  # -1: the block is not on the best chain

    @property
    def in_best_chain(self) -> bool:
        return self.confirmations >= 1


@dataclass(frozen=True, slots=True)
class ChainTx:
    txid: str
    inputs: tuple[TxInput, ...]
    outputs: tuple[TxOutput, ...]
    block: BlockPlace | None  # None: unconfirmed (mempool)
    coinbase: bool = False

    def __post_init__(self) -> None:
        if any(o.value < 0 for o in self.outputs):
            raise InvalidInput(f"transaction {self.txid} has a negative output")

    @property
    def is_coinbase(self) -> bool:
        return self.coinbase

    @property
    def confirmations(self) -> int:
        return 0 if self.block is None else self.block.confirmations

    @property
    def fee(self) -> int | None:
        """Network fee in satoshis (0 for a coinbase); ``None`` when a previous output is unknown."""
        if self.is_coinbase:
            return 0
        if any(i.prevout is None for i in self.inputs):
            return None
        spent = sum(i.prevout.value for i in self.inputs if i.prevout is not None)
        return spent - sum(o.value for o in self.outputs)


def check_txid(txid: str) -> str:
    t = txid.strip().lower()
    if len(t) != 64 or any(c not in "0123456789abcdef" for c in t):
        raise InvalidInput(f"txid {txid!r} is not 64 hex characters")
    return t


def decode_raw(hex_tx: str) -> tuple[str, CTransaction]:
    tx = CTransaction.deserialize(bytes.fromhex(hex_tx))
    return b2lx(tx.GetTxid()), tx


def _outputs(tx: CTransaction) -> tuple[TxOutput, ...]:
    return tuple(
        TxOutput(index=i, value=int(o.nValue), script_pubkey=bytes(o.scriptPubKey))
        for i, o in enumerate(tx.vout)
    )


def fetch_transactions(rpc: RpcClient, txids: Sequence[str]) -> dict[str, ChainTx]:
    """Fetch and decode many transactions with their prevouts and blocks in three batches.

    Unknown txids are left out of the result (the caller decides what that means).
    """
    wanted = [check_txid(t) for t in txids]
    raw = rpc.batch_results([("getrawtransaction", (t, 1)) for t in wanted])
    decoded: dict[str, tuple[CTransaction, str | None]] = {}
    for txid, reply in zip(wanted, raw, strict=True):
        if isinstance(reply, InvalidAddressOrKey):
            continue
        if isinstance(reply, RpcError):
            raise reply
        computed, tx = decode_raw(reply["hex"])
        if computed != txid:
            raise InvalidInput(f"node returned transaction {computed} when asked for {txid}")
        decoded[txid] = (tx, reply.get("blockhash"))

    prev_ids = sorted(
        {b2lx(i.prevout.hash) for tx, _ in decoded.values() if not tx.is_coinbase() for i in tx.vin}
    )
    prev_txs: dict[str, CTransaction] = {}
    for prev_id, reply in zip(
        prev_ids, rpc.batch([("getrawtransaction", (p, 0)) for p in prev_ids]), strict=True
    ):
        prev_txs[prev_id] = decode_raw(reply)[1]

    hashes = sorted({h for _, h in decoded.values() if h})
    headers = dict(zip(hashes, rpc.batch([("getblockheader", (h, True)) for h in hashes]), strict=True))

    out: dict[str, ChainTx] = {}
    for txid, (tx, block_hash) in decoded.items():
        inputs = []
        for i in tx.vin:
            if tx.is_coinbase():
                inputs.append(TxInput(prev_txid="00" * 32, prev_index=-1, prevout=None))
                continue
            prev_id = b2lx(i.prevout.hash)
            prev_out = prev_txs[prev_id].vout[i.prevout.n]
            inputs.append(
                TxInput(
                    prev_txid=prev_id,
                    prev_index=int(i.prevout.n),
                    prevout=TxOutput(int(i.prevout.n), int(prev_out.nValue), bytes(prev_out.scriptPubKey)),
                )
            )
        block = None
        if block_hash:
            h = headers[block_hash]
            block = BlockPlace(block_hash, int(h["height"]), int(h["confirmations"]))
        out[txid] = ChainTx(
            txid=txid, inputs=tuple(inputs), outputs=_outputs(tx), block=block, coinbase=tx.is_coinbase()
        )
    return out


def fetch_transaction(rpc: RpcClient, txid: str) -> ChainTx:
    """One transaction; :class:`InvalidInput` naming the txid when the node does not know it."""
    found = fetch_transactions(rpc, [txid]).get(check_txid(txid))
    if found is None:
        raise InvalidInput(
            f"transaction {txid} is not known to the node (not in the best chain nor the mempool): "
            "check the txid and that the node is synced"
        )
    return found


def block_places(rpc: RpcClient, block_hashes: Sequence[str]) -> dict[str, BlockPlace]:
    """Where each block stands now: height and confirmations (-1 = off the best chain)."""
    unique = sorted(set(block_hashes))
    out: dict[str, BlockPlace] = {}
    for h, reply in zip(
        unique, rpc.batch_results([("getblockheader", (h, True)) for h in unique]), strict=True
    ):
        if isinstance(reply, RpcError):
            out[h] = BlockPlace(h, -1, -1)
        else:
            out[h] = BlockPlace(h, int(reply["height"]), int(reply["confirmations"]))
    return out
