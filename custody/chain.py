"""Chain observation: transactions fetched raw from the node and decoded here.

A recorded movement must be backed by the chain, so nothing is taken from a wallet's summary: the
raw transaction is fetched (``getrawtransaction``; on a node without ``-txindex`` from the block
the vault's watch-only wallet places it in), decoded with python-bitcoinlib, its txid recomputed
and compared, and each input's previous output decoded from its own raw transaction (found
through the node, else through the vault wallets). Amounts are satoshis taken from the
serialised outputs.
Block placement comes from ``getblockheader`` (``confirmations == -1`` means off the best chain).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from bitcoin.core import CTransaction, b2lx

from custody.errors import BlockNotAvailable, CustodyError, InvalidAddressOrKey, InvalidInput, RpcError
from custody.rpc import RpcClient
from custody.wallet_txs import wallet_transactions


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
    raw: bytes = field(default=b"", repr=False, compare=False)
    """the network serialization, witnesses included (empty when not fetched from the node)"""

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


def decode_checked(txid: str, hex_tx: str) -> CTransaction:
    """Decode ``hex_tx`` and check it is transaction ``txid`` (its txid recomputed)."""
    computed, tx = decode_raw(hex_tx)
    if computed != txid:
        raise InvalidInput(f"node returned transaction {computed} when asked for {txid}")
    return tx


def _raw_from_node(
    rpc: RpcClient, txids: Sequence[str], block_of: dict[str, str] | None = None
) -> dict[str, tuple[CTransaction, str | None]]:
    """``getrawtransaction`` in one batch (in ``block_of[txid]`` when given); unknown ones left out."""
    calls = [("getrawtransaction", (t, 1, block_of[t]) if block_of else (t, 1)) for t in txids]
    out: dict[str, tuple[CTransaction, str | None]] = {}
    replies = rpc.batch_results(calls)
    gone = [(t, r) for t, r in zip(txids, replies, strict=True) if isinstance(r, BlockNotAvailable)]
    if gone and block_of:  # name the first block missing, with every transaction wanted from it
        first = block_of[gone[0][0]]
        raise block_not_available(rpc, first, [t for t, _ in gone if block_of[t] == first], gone[0][1])
    for txid, reply in zip(txids, replies, strict=True):
        if isinstance(reply, InvalidAddressOrKey):
            continue
        if isinstance(reply, RpcError):
            raise reply
        block = block_of[txid] if block_of else reply.get("blockhash")
        out[txid] = (decode_checked(txid, reply["hex"]), block)
    return out


def _find_transactions(
    rpc: RpcClient, txids: Sequence[str], wallets: Sequence[str]
) -> dict[str, tuple[CTransaction, str | None]]:
    """The node's mempool or ``txindex`` first; for the rest, the block the vault wallets place
    it in, then ``getrawtransaction TXID true BLOCKHASH`` (read from that block on disk)."""
    found = _raw_from_node(rpc, txids)
    missing = [t for t in txids if t not in found]
    if missing and wallets:
        known = wallet_transactions(rpc, wallets, missing)
        in_blocks = {t: s.block_hash for t, s in known.items() if s.block_hash}
        if in_blocks:
            found.update(_raw_from_node(rpc, sorted(in_blocks), in_blocks))
    return found


def _find_prevouts(rpc: RpcClient, txids: Sequence[str], wallets: Sequence[str]) -> dict[str, CTransaction]:
    """Previous transactions from the node, else from the vault wallets (a vault's spends spend
    its wallet's own transactions); ones found nowhere are left out."""
    found = {t: tx for t, (tx, _) in _raw_from_node(rpc, txids).items()}
    missing = [t for t in txids if t not in found]
    if missing and wallets:
        for txid, s in wallet_transactions(rpc, wallets, missing).items():
            if s.raw_hex:
                found[txid] = decode_checked(txid, s.raw_hex)
    return found


def fetch_transactions(
    rpc: RpcClient, txids: Sequence[str], wallets: Sequence[str] = ()
) -> dict[str, ChainTx]:
    """Fetch and decode many transactions with their prevouts and blocks, a few batches in all.

    Works on a node with ``-txindex`` (any transaction) and without it: then a confirmed
    transaction is found through the watch-only ``wallets`` of the vaults it touches, and so are
    the previous outputs a vault spends. Unconfirmed transactions come from the mempool.
    Unknown txids are left out of the result (the caller decides what that means); an input
    whose previous output cannot be found has ``prevout=None`` (so the transaction's fee is
    ``None``).
    """
    wanted = list(dict.fromkeys(check_txid(t) for t in txids))
    decoded = _find_transactions(rpc, wanted, wallets)

    prev_ids = sorted(
        {b2lx(i.prevout.hash) for tx, _ in decoded.values() if not tx.is_coinbase() for i in tx.vin}
    )
    prev_txs = _find_prevouts(rpc, prev_ids, wallets) if prev_ids else {}

    hashes = sorted({h for _, h in decoded.values() if h})
    headers = block_places(rpc, hashes)

    out: dict[str, ChainTx] = {}
    for txid, (tx, block_hash) in decoded.items():
        out[txid] = ChainTx(
            txid=txid,
            inputs=resolve_inputs(tx, prev_txs),
            outputs=_outputs(tx),
            block=headers[block_hash] if block_hash else None,
            coinbase=tx.is_coinbase(),
            raw=tx.serialize(),
        )
    return out


def resolve_inputs(tx: CTransaction, prev_txs: dict[str, CTransaction]) -> tuple[TxInput, ...]:
    if tx.is_coinbase():
        return (TxInput(prev_txid="00" * 32, prev_index=-1, prevout=None),)
    inputs = []
    for i in tx.vin:
        prev_id, n = b2lx(i.prevout.hash), int(i.prevout.n)
        prev = prev_txs.get(prev_id)
        prevout = None
        if prev is not None and n < len(prev.vout):
            o = prev.vout[n]
            prevout = TxOutput(n, int(o.nValue), bytes(o.scriptPubKey))
        inputs.append(TxInput(prev_txid=prev_id, prev_index=n, prevout=prevout))
    return tuple(inputs)


def has_txindex(rpc: RpcClient) -> bool:
    """Whether the node keeps a transaction index (finds any confirmed transaction by txid)."""
    return "txindex" in rpc.call("getindexinfo", "txindex")


def fetch_transaction(rpc: RpcClient, txid: str, wallets: Sequence[str] = ()) -> ChainTx:
    """One transaction; :class:`InvalidInput` naming the txid when the node does not know it."""
    found = fetch_transactions(rpc, [txid], wallets).get(check_txid(txid))
    if found is None:
        raise InvalidInput(
            f"transaction {txid} is not known to the node (not in the mempool, and not found in a "
            "block: without -txindex the node finds a confirmed transaction only through the "
            "watch-only wallet of a vault it touches): check the txid, that the node is synced, "
            "and run the node with -txindex=1 to find any transaction"
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


def coinbase_txid(rpc: RpcClient, block_hash: str) -> str:
    """The txid of the coinbase transaction of block ``block_hash`` (its first transaction)."""
    try:
        block = rpc.call("getblock", block_hash, 1)
    except BlockNotAvailable as e:
        raise block_not_available(rpc, block_hash, ["its coinbase"], e) from None
    return check_txid(str(block["tx"][0]))


def block_not_available(
    rpc: RpcClient, block_hash: str, wanted: Sequence[str], cause: RpcError
) -> BlockNotAvailable:
    """What to say when the node has block ``block_hash``'s header but not its data: the block,
    its height, the transactions (or what else) ``wanted`` from it, and, on a pruned node, that
    it is pruned and which height it would need to keep. Asks the node (header, chain info)."""
    where = f"block {block_hash}"
    height: int | None = None
    try:
        height = int(rpc.call("getblockheader", block_hash, True)["height"])
        info = rpc.get_blockchain_info()
    except CustodyError:
        info = None
    if height is not None:
        where += f" at height {height}"
    holding = f" (which holds {', '.join(wanted)})" if wanted else ""
    if info is not None and height is not None and info.pruned_below(height):
        text = (
            f"the node no longer has {where}{holding}: it is pruned and keeps blocks from height "
            f"{info.prune_height} up, so reading this needs a node that keeps blocks from height "
            f"{height}: point --rpc-url at an unpruned node (or one whose prune height is at most "
            f"{height}); the books and the vault wallets are fine"
        )
    elif info is not None and info.pruned:
        text = (
            f"the node does not have {where}{holding} on disk: it is pruned (it keeps blocks from "
            f"height {info.prune_height} up) and would need that block; point --rpc-url at an "
            "unpruned node"
        )
    else:
        text = (
            f"the node does not have {where}{holding} on disk (not fully downloaded); wait until "
            "it has synced and run the command again"
        )
    return BlockNotAvailable(cause.code, f"{text} [{cause.rpc_message}]", cause.method)
