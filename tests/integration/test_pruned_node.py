"""A pruned node: what the commands say when a block they need is gone, and what they refuse.

The node runs with ``-prune=1`` (manual pruning) and ``-fastprune`` (64 KiB block files on
regtest, so ``pruneblockchain`` frees a file after a couple of hundred blocks rather than
thousands). Record, sync, audit and attest fail with an error naming the block (hash and
height) and the transaction, saying that the node is pruned and from which height it keeps
blocks; ``node status`` shows the pruning; ``vault add`` refuses a birthday below the prune
height. Nothing is written by a refusal. A node of this module only: pruning cannot be undone.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from typing import Any

import pytest

from custody.keygen import test_key_from_seed
from custody.network import Network
from custody.rpc import RpcClient
from regtest.node import NodeError, RegtestNode, find_bitcoind
from tests.fixtures.reserve import HOLDERS, Reserve
from tests.integration.test_address_issuance import book_state

BTC = 100_000_000
KEEP = 288
"""bitcoind never prunes a block within this many blocks of the tip (``MIN_BLOCKS_TO_KEEP``)."""


@pytest.fixture(scope="module")
def pruned_node() -> Iterator[RegtestNode]:
    try:
        bitcoind = find_bitcoind()
    except NodeError as e:
        pytest.fail(f"integration tests need a real bitcoind: {e}", pytrace=False)
    n = RegtestNode(bitcoind, txindex=False, extra_args=("-prune=1", "-fastprune"))
    n.start()
    try:
        n.ensure_mature_funds(10 * BTC)
        yield n
    finally:
        n.stop()
        n.cleanup()


@pytest.fixture
def node(pruned_node: RegtestNode) -> RegtestNode:
    """Every ``node``-based fixture of this module (``reserve``) runs on the pruned node."""
    pruned_node.check_alive()
    return pruned_node


def prune_past(node: RegtestNode, height: int, deadline_s: float = 120.0) -> int:
    """Mine and prune until the block at ``height`` is gone; returns the prune height (the lowest
    height still on disk). A block file is freed once every block in it is more than
    :data:`KEEP` blocks deep, so this mines about one file's worth of blocks past that."""
    rpc = node.rpc()
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        tip = rpc.get_block_count()
        if tip - KEEP > height:
            rpc.call("pruneblockchain", tip - KEEP)
            info = rpc.get_blockchain_info()
            if info.prune_height is not None and info.prune_height > height:
                return info.prune_height
        node.mine(max(tip - KEEP - height, 0) + 20)
    raise AssertionError(f"block {height} was not pruned within {deadline_s:.0f} s")


def block_of(rpc: RpcClient, wallet: str, txid: str) -> tuple[str, int]:
    t = rpc.wallet(wallet).call("gettransaction", txid)
    return str(t["blockhash"]), int(t["blockheight"])


def test_a_pruned_node_names_the_missing_block_and_the_height_it_would_need(
    reserve: Reserve, node: RegtestNode
) -> None:
    rpc = node.rpc()
    assert reserve.ok("node", "status", "--json").json()["pruned"] is True
    vault = reserve.add_vault("pruned")
    wallet = f"reserve-vault-{vault.name}"
    booked = node.fund(vault.address(), BTC)
    unbooked = node.fund(vault.address(), BTC // 2)
    reserve.ok("record", "deposit", "--vault", vault.name, "--txid", booked)
    block, height = block_of(rpc, wallet, unbooked)
    booked_block, booked_height = block_of(rpc, wallet, booked)
    prune_height = prune_past(node, height)

    status = reserve.ok("node", "status", "--json").json()
    assert (status["pruned"], status["prune_height"]) == (True, prune_height)
    text = reserve.ok("node", "status").out
    assert "pruned: yes" in text and f"prune_height: {prune_height}" in text, text

    before = book_state(reserve.db_url)

    def refused(*args: str) -> str:
        r = reserve.run(*args, "--json")
        assert r.code == 2, (args, r.out, r.err)
        error: dict[str, Any] = r.json()["error"]
        assert error["code"] == "block-not-available", error
        message = str(error["message"])
        assert "is pruned" in message and f"keeps blocks from height {prune_height} up" in message, message
        assert "Block not available" in message  # bitcoind's own words, kept at the end
        return message

    both = {unbooked: (block, height), booked: (booked_block, booked_height)}
    for args, wanted in [
        (("record", "deposit", "--vault", vault.name, "--txid", unbooked), [unbooked]),
        (("sync",), [unbooked]),  # the one transaction sync has to read
        (("audit",), [booked, unbooked]),  # the audit reads both: it names the first block missing
        (("attest",), [booked, unbooked]),
    ]:
        message = refused(*args)
        named = [t for t in wanted if t in message]
        assert len(named) == 1, (args, message)
        b, h = both[named[0]]
        assert f"block {b} at height {h}" in message, (args, message)
        assert f"needs a node that keeps blocks from height {h}" in message, (args, message)
    assert book_state(reserve.db_url) == before  # nothing written

    # a vault born below the prune height cannot be rescanned: refused with the numbers
    fresh = [f"{h}={test_key_from_seed(secrets.token_bytes(32), Network.REGTEST)}" for h in HOLDERS]
    key_args = [a for k in fresh for a in ("--key", k)]
    r = reserve.run("vault", "add", "late", "--threshold", "2", *key_args, "--birthday", str(height))
    assert (
        r.code == 2 and f"birthday height {height} is below the node's prune height {prune_height}" in r.err
    ), r.err
    assert "pruned" in r.err and f"birthday of {prune_height} or later" in r.err, r.err
    assert book_state(reserve.db_url) == before
