"""The chain at a past block: a vault's unspent outputs at height H, their Merkle proofs, headers.

Typed readers for an attestation at block H (default: the tip), each a few batched round trips
whatever the number of outputs:

- :func:`block_at`: the best chain's block at H (``getblockhash``), refusing a height above the tip;
- :func:`vault_outputs_at`: the vault's unspent outputs at H, read from its watch-only wallet;
- :func:`merkle_proofs`: one ``gettxoutproof [txids] BLOCKHASH`` per block, all in one batch (the
  block hash is given, so no ``-txindex`` is needed; the block must not be pruned);
- :func:`raw_headers`: the 80-byte headers of a range of heights (``getblockhash`` then
  ``getblockheader HASH false``, two batches).

How the unspent outputs at H are found (:func:`outputs_at`, pure): a vault's watch-only wallet keeps
every transaction that pays one of its scripts *and* every transaction that spends one of its
outputs (bitcoind adds a transaction to a wallet when it credits or debits it). So, from the
wallet's transactions confirmed in blocks of the best chain at heights <= H, the outputs at H are
those paying a vault script, minus those spent by an input of any of these transactions. Spends
confirmed after H, or still in the mempool, do not count: the output was unspent at H. Which
script is the vault's is decided by deriving the descriptor (:func:`script_paths`, receive and
change up to the highest index the wallet saw paid, :func:`used_end`, or handed out by the books),
never by the wallet's labels, and each output keeps its
(branch, index) so an auditor can derive its script again.

This needs the wallet to know the history up to H: it must have been created (or rescanned)
from the vault's birth, and have processed block H (``getwalletinfo`` ``lastprocessedblock``;
checked). A wallet imported with ``timestamp: now`` after coins arrived does not know them, nor
does a wallet whose range was smaller than the addresses used at the time (then the vault's
``vault watch`` re-imports with the original timestamp, and rescans).
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass

from custody.chain import block_not_available, block_places
from custody.descriptor import MultisigDescriptor
from custody.errors import BlockNotAvailable, InvalidInput, RpcError, WalletNotFound
from custody.merkleblock import RawTx
from custody.rpc import RpcClient
from custody.wallet import scan_vaults, vault_scan_objects
from custody.wallet_txs import list_wallet_txs, wallet_transactions


@dataclass(frozen=True, slots=True)
class OutputAt:
    """One unspent output of a vault at height H, with where it came from."""

    txid: str
    vout: int
    amount: int  # satoshis
    script_pubkey: bytes
    branch: int  # 0 receive, 1 change (the descriptor's branch index)
    index: int  # address index on that branch
    block_hash: str
    height: int
    coinbase: bool

    def __post_init__(self) -> None:
        if len(self.txid) != 64 or self.vout < 0 or self.amount < 0 or self.height < 0:
            raise InvalidInput(f"bad output {self.txid}:{self.vout} of {self.amount} sat at {self.height}")

    @property
    def outpoint(self) -> str:
        return f"{self.txid}:{self.vout}"


@dataclass(frozen=True, slots=True)
class ConfirmedTx:
    """A wallet transaction confirmed in the best chain, with its block."""

    tx: RawTx
    block_hash: str
    height: int


# --- pure -------------------------------------------------------------------------------------


def script_paths(descriptor: MultisigDescriptor, end: int) -> dict[bytes, tuple[int, int]]:
    """``script_pubkey -> (branch, index)`` for indexes ``0..end-1`` of every branch."""
    changes = (False, True) if descriptor.is_multipath else (False,)
    out: dict[bytes, tuple[int, int]] = {}
    for change in changes:
        branch = descriptor.branches[1 if change else 0]
        for i in range(end):
            out[descriptor.script_pubkey(i, change)] = (branch, i)
    return out


def outputs_at(
    txs: Iterable[ConfirmedTx], paths: Mapping[bytes, tuple[int, int]], height: int
) -> tuple[OutputAt, ...]:
    """The outputs paying ``paths`` scripts created and not spent by ``txs`` confirmed at <= height,
    ordered by (height, txid, vout)."""
    upto = [t for t in txs if t.height <= height]
    spent = {prev for t in upto if not t.tx.is_coinbase for prev in t.tx.inputs}
    found = []
    for t in upto:
        for vout, (amount, script) in enumerate(t.tx.outputs):
            path = paths.get(script)
            if path is None or (t.tx.txid, vout) in spent:
                continue
            found.append(
                OutputAt(
                    txid=t.tx.txid,
                    vout=vout,
                    amount=amount,
                    script_pubkey=script,
                    branch=path[0],
                    index=path[1],
                    block_hash=t.block_hash,
                    height=t.height,
                    coinbase=t.tx.is_coinbase,
                )
            )
    return tuple(sorted(found, key=lambda o: (o.height, o.txid, o.vout)))


# --- readers ----------------------------------------------------------------------------------


def block_at(rpc: RpcClient, height: int | None) -> tuple[int, str]:
    """(height, block hash) of the best chain at ``height`` (``None``: the tip)."""
    info = rpc.get_blockchain_info()
    if height is None:
        return info.blocks, info.best_block_hash
    if isinstance(height, bool) or height < 0 or height > info.blocks:
        raise InvalidInput(
            f"height {height} is not on the node's best chain (heights 0..{info.blocks}); "
            "give a height at or below the tip"
        )
    return height, rpc.get_block_hash(height)


def used_end(rpc: RpcClient, wallet_name: str) -> int:
    """One past the highest address index the wallet has seen paid, over its ranged descriptors
    (``listdescriptors`` ``next_index``): bitcoind moves it past every index a transaction pays,
    so no output of the vault lies beyond it (addresses handed out but unpaid may)."""
    client = rpc.wallet(wallet_name)
    try:
        listed = client.call("listdescriptors")["descriptors"]
    finally:
        client.close()
    ends = [int(d.get("next_index", d.get("next", 0))) for d in listed if "range" in d]
    return max(ends, default=0)


def wallet_processed_height(rpc: RpcClient, wallet_name: str) -> int:
    """The height of the last block the wallet processed; refuses a wallet that is rescanning."""
    client = rpc.wallet(wallet_name)
    try:
        info = client.call("getwalletinfo")
    finally:
        client.close()
    if info.get("scanning"):
        raise InvalidInput(f"wallet {wallet_name} is rescanning; try again when the rescan ends")
    last = info.get("lastprocessedblock")
    if not isinstance(last, dict) or "height" not in last:
        raise InvalidInput(
            f"wallet {wallet_name}: the node does not say which block the wallet processed last "
            "(getwalletinfo has no lastprocessedblock; bitcoind 26 or newer is needed)"
        )
    return int(last["height"])


def confirmed_wallet_txs(rpc: RpcClient, wallet_name: str, height: int) -> tuple[ConfirmedTx, ...]:
    """The wallet's transactions in blocks of the best chain at heights <= ``height``, decoded.

    Three round trips: ``listtransactions``, ``getblockheader`` of their blocks (one batch) and
    ``gettransaction`` of those at or below ``height`` (one batch)."""
    states = [s for s in list_wallet_txs(rpc, wallet_name) if s.confirmed and s.block_hash]
    places = block_places(rpc, [s.block_hash for s in states if s.block_hash])
    wanted = {
        s.txid: places[s.block_hash]
        for s in states
        if s.block_hash and places[s.block_hash].in_best_chain and places[s.block_hash].height <= height
    }
    raw = wallet_transactions(rpc, [wallet_name], sorted(wanted))
    out = []
    for txid, place in sorted(wanted.items()):
        state = raw.get(txid)
        if state is None or not state.raw_hex:
            raise InvalidInput(f"wallet {wallet_name} lists transaction {txid} but cannot show it")
        tx = RawTx.from_hex(state.raw_hex)
        if tx.txid != txid:
            raise InvalidInput(f"wallet {wallet_name} returned transaction {tx.txid} when asked for {txid}")
        out.append(ConfirmedTx(tx, place.block_hash, place.height))
    return tuple(out)


def vault_outputs_at(
    rpc: RpcClient, wallet_name: str, paths: Mapping[bytes, tuple[int, int]], height: int
) -> tuple[tuple[OutputAt, ...], dict[str, RawTx]]:
    """The vault's unspent outputs at ``height`` and the transactions that created them.

    Raises :class:`WalletNotFound` when the wallet is not loaded, :class:`InvalidInput` when it
    has not processed block ``height`` yet."""
    processed = wallet_processed_height(rpc, wallet_name)
    if processed < height:
        raise InvalidInput(
            f"wallet {wallet_name} has processed blocks up to {processed} only, not {height}; "
            "wait for it to catch up with the node"
        )
    txs = confirmed_wallet_txs(rpc, wallet_name, height)
    found = outputs_at(txs, paths, height)
    by_id = {t.tx.txid: t.tx for t in txs}
    return found, {o.txid: by_id[o.txid] for o in found}


def merkle_proofs(rpc: RpcClient, txids_by_block: Mapping[str, Sequence[str]]) -> dict[str, str]:
    """``block hash -> gettxoutproof`` hex proving all of that block's ``txids``, one batch."""
    blocks = sorted(txids_by_block)
    calls = [("gettxoutproof", (sorted(set(txids_by_block[b])), b)) for b in blocks]
    proofs: dict[str, str] = {}
    for b, reply in zip(blocks, rpc.batch_results(calls), strict=True):
        if isinstance(reply, BlockNotAvailable):
            raise block_not_available(rpc, b, sorted(set(txids_by_block[b])), reply)
        if isinstance(reply, RpcError):
            raise reply
        proofs[b] = str(reply)
    return proofs


def raw_headers(rpc: RpcClient, start: int, end: int) -> tuple[str, ...]:
    """The raw 80-byte headers (hex) of heights ``start..end`` of the best chain, oldest first."""
    if start < 0 or end < start:
        raise InvalidInput(f"header range {start}..{end} is empty or negative")
    hashes = rpc.get_block_hashes(list(range(start, end + 1)))
    return tuple(str(h) for h in rpc.batch([("getblockheader", (h, False)) for h in hashes]))


# --- a whole attestation's chain facts ----------------------------------------------------------

TIP_ATTEMPTS = 3


@dataclass(frozen=True, slots=True)
class VaultSpec:
    """A vault to attest: its watch-only wallet and how far addresses were handed out."""

    name: str
    wallet_name: str
    descriptor: MultisigDescriptor
    issued_end: int = 0  # one past the highest index issued (the wallet's range is added)


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The chain at block ``height``: each vault's unspent outputs with their transactions
    (serialised without witness), one Merkle proof per block and the headers from the oldest
    such block (``header_start``) up to ``height``."""

    network: str
    height: int
    block_hash: str
    header_start: int
    headers: tuple[str, ...]
    outputs: Mapping[str, tuple[OutputAt, ...]]
    transactions: Mapping[str, str]
    proofs: Mapping[str, str]


def snapshot_at(rpc: RpcClient, vaults: Sequence[VaultSpec], height: int | None) -> Snapshot:
    """Read everything an attestation at ``height`` (``None``: the tip) needs from the node; read
    again when the block at that height changes meanwhile (a reorganisation)."""
    for _ in range(TIP_ATTEMPTS):
        snap = _snapshot_once(rpc, vaults, height)
        if rpc.get_block_hash(snap.height) == snap.block_hash:
            return snap
    raise InvalidInput(
        f"the node's chain kept reorganising at height {height} while it was read ({TIP_ATTEMPTS} "
        "tries); attest again when it is stable"
    )


def _snapshot_once(rpc: RpcClient, vaults: Sequence[VaultSpec], height: int | None) -> Snapshot:
    chain = rpc.get_blockchain_info().chain
    at, block_hash = block_at(rpc, height)
    outputs: dict[str, tuple[OutputAt, ...]] = {}
    txs: dict[str, RawTx] = {}
    for v in vaults:
        try:
            end = max(v.issued_end, used_end(rpc, v.wallet_name))
        except WalletNotFound as exc:
            exc.add_note(
                f"vault {v.name}'s watch-only wallet is not loaded: run `reserve vault watch {v.name}`"
            )
            raise
        found, raw = vault_outputs_at(rpc, v.wallet_name, script_paths(v.descriptor, end), at)
        outputs[v.name] = found
        txs.update(raw)
    by_block: dict[str, set[str]] = {}
    for found in outputs.values():
        for o in found:
            by_block.setdefault(o.block_hash, set()).add(o.txid)
    proofs = merkle_proofs(rpc, {b: sorted(t) for b, t in by_block.items()})
    start = min((o.height for found in outputs.values() for o in found), default=at)
    return Snapshot(
        network=chain,
        height=at,
        block_hash=block_hash,
        header_start=start,
        headers=raw_headers(rpc, start, at),
        outputs=outputs,
        transactions={t: tx.stripped.hex() for t, tx in sorted(txs.items())},
        proofs=proofs,
    )


# --- a node's view, for `attest verify --node` ------------------------------------------------


def best_chain_hashes(rpc: RpcClient, heights: Sequence[int]) -> dict[int, str]:
    """``height -> block hash`` of the node's best chain (heights above the tip left out)."""
    tip = rpc.get_block_count()
    within = [h for h in heights if 0 <= h <= tip]
    return dict(zip(within, rpc.get_block_hashes(within), strict=True))


def unspent_now(rpc: RpcClient, outpoints: Sequence[tuple[str, int]]) -> set[tuple[str, int]]:
    """Those of ``outpoints`` in the node's UTXO set at its tip (mempool spends ignored)."""
    replies = rpc.batch_results([("gettxout", (t, v, False)) for t, v in outpoints])
    out = set()
    for op, reply in zip(outpoints, replies, strict=True):
        if isinstance(reply, RpcError):
            raise reply
        if reply is not None:
            out.add(op)
    return out


def spends_after(
    rpc: RpcClient,
    height: int,
    outpoints: Iterable[tuple[str, int]],
    page: int = 100,
    scripts: Collection[bytes] = frozenset(),
) -> dict[tuple[str, int], tuple[str, int]]:
    """``outpoint -> (spending txid, height)`` for those of ``outpoints`` spent in the best chain's
    blocks ``height+1 .. tip`` (``getblock`` verbosity 2, in batches of ``page`` blocks). Costs
    a read of every block since ``height``: it is how a node without an address index shows
    that an output now spent was still unspent at ``height``.

    With ``scripts``, the blocks are read with their prevouts (verbosity 3, needs the blocks' undo
    data: not pruned) and every output paying one of ``scripts`` that was created at or below
    ``height`` and is spent after it is returned too, listed or not: an output unspent at
    ``height`` that an attestation may have left out."""
    wanted = set(outpoints)
    tip = rpc.get_block_count()
    verbosity = 3 if scripts else 2
    hexes = {s.hex() for s in scripts}
    reader = rpc.long_call_client()  # a page of full blocks: hundreds of MB of JSON on mainnet
    try:
        return _spends_in_blocks(reader, height, tip, page, verbosity, wanted, hexes)
    finally:
        reader.close()


def _spends_in_blocks(
    rpc: RpcClient,
    height: int,
    tip: int,
    page: int,
    verbosity: int,
    wanted: set[tuple[str, int]],
    hexes: set[str],
) -> dict[tuple[str, int], tuple[str, int]]:
    found: dict[tuple[str, int], tuple[str, int]] = {}
    for start in range(height + 1, tip + 1, page):
        if not hexes and len(found) == len(wanted):
            break
        heights = list(range(start, min(start + page, tip + 1)))
        hashes = rpc.get_block_hashes(heights)
        blocks = rpc.batch_results([("getblock", (h, verbosity)) for h in hashes])
        for block_hash, block in zip(hashes, blocks, strict=True):
            if isinstance(block, BlockNotAvailable):
                raise block_not_available(rpc, block_hash, ["the spends of the outputs checked"], block)
            if isinstance(block, RpcError):
                raise block
        for h, block in zip(heights, blocks, strict=True):
            for tx in block["tx"]:
                for vin in tx["vin"]:
                    op = (str(vin.get("txid", "")), int(vin.get("vout", -1)))
                    prevout = vin.get("prevout") or {}
                    ours = (
                        prevout.get("scriptPubKey", {}).get("hex") in hexes
                        and int(prevout.get("height", height + 1)) <= height
                    )
                    if op in wanted or ours:
                        found[op] = (str(tx["txid"]), h)
    return found


@dataclass(frozen=True, slots=True)
class NodeView:
    """What a node says about an attestation's blocks and outputs (``attest verify --node``).

    ``spent_after``: the listed outputs spent after the attested height, and (when the vaults'
    scripts were given) every output of theirs created at or below it and spent after it;
    ``vault_unspent``: the vaults' outputs in the node's UTXO set now, ``(txid, vout, script,
    height)`` (``scantxoutset`` over their descriptors)."""

    best_hashes: Mapping[int, str]
    unspent: frozenset[tuple[str, int]]
    spent_after: Mapping[tuple[str, int], tuple[str, int]]
    vault_unspent: tuple[tuple[str, int, bytes, int], ...] = ()


def node_view(
    rpc: RpcClient,
    heights: Sequence[int],
    outpoints: Sequence[tuple[str, int]],
    height: int,
    vaults: Sequence[tuple[MultisigDescriptor, int]] = (),
) -> NodeView:
    """The node's best-chain hashes at ``heights``, which ``outpoints`` are in its UTXO set, and
    which of the others blocks after ``height`` spend.

    With ``vaults`` (each descriptor with one past the highest index to search, both branches),
    also every output of theirs the node knows was unspent at ``height``: one ``scantxoutset``
    over the UTXO set (a full pass: minutes on mainnet) and the prevouts of the blocks after it."""
    unspent = unspent_now(rpc, outpoints)
    gone = [op for op in outpoints if op not in unspent]
    scripts: set[bytes] = set()
    found: tuple[tuple[str, int, bytes, int], ...] = ()
    if vaults:
        objects = [obj for d, end in vaults for obj in vault_scan_objects(d, max(end - 1, 0))]
        for d, end in vaults:
            scripts.update(script_paths(d, max(end, 1)))
        scan = scan_vaults(rpc, objects)
        found = tuple((o.txid, o.vout, o.script_pubkey, o.height) for o in scan.outputs)
    spends = spends_after(rpc, height, gone, scripts=scripts) if gone or scripts else {}
    return NodeView(best_chain_hashes(rpc, heights), frozenset(unspent), spends, found)


__all__ = [
    "ConfirmedTx",
    "NodeView",
    "OutputAt",
    "Snapshot",
    "VaultSpec",
    "WalletNotFound",
    "best_chain_hashes",
    "block_at",
    "confirmed_wallet_txs",
    "merkle_proofs",
    "node_view",
    "outputs_at",
    "raw_headers",
    "script_paths",
    "snapshot_at",
    "spends_after",
    "unspent_now",
    "used_end",
    "vault_outputs_at",
    "wallet_processed_height",
]
