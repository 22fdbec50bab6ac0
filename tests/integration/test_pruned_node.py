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
from collections.abc import Iterator
from typing import Any

import pytest

from custody.keygen import test_key_from_seed
from custody.network import Network
from regtest.node import NodeError, RegtestNode, find_bitcoind
from tests.fixtures.reserve import HOLDERS, Reserve
from tests.integration.test_address_issuance import book_state

KEEP = 288
"""bitcoind never prunes a block within this many blocks of the tip (``MIN_BLOCKS_TO_KEEP``)."""
NOBODY = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080"  # BIP-173's example: no wallet's address


@pytest.fixture
def pruned_node() -> Iterator[RegtestNode]:
    """A fresh node per test (a second of start-up): on regtest every block is recent, so once
    some are pruned a new watch-only wallet cannot even import ("now" rescans the last two hours
    of blocks), as no mainnet node would ever see (it keeps two days of blocks at least)."""
    try:
        bitcoind = find_bitcoind()
    except NodeError as e:
        pytest.fail(f"integration tests need a real bitcoind: {e}", pytrace=False)
    n = RegtestNode(bitcoind, txindex=False, extra_args=("-prune=1", "-fastprune"))
    n.start()
    try:
        yield n
    finally:
        n.stop()
        n.cleanup()


@pytest.fixture
def node(pruned_node: RegtestNode) -> RegtestNode:
    """Every ``node``-based fixture of this module (``reserve``) runs on the pruned node."""
    pruned_node.check_alive()
    return pruned_node


def prune_below(node: RegtestNode, height: int) -> int:
    """Prune every block up to ``height`` with as few blocks as bitcoind allows; returns the
    prune height (the lowest height still on disk).

    A block file is freed only when every block in it is more than :data:`KEEP` blocks deep, so
    the file holding ``height`` is closed first: a block whose coinbase carries ~64 KB of
    OP_RETURN data does not fit in -fastprune's 64 KiB file and starts the next one. Then
    :data:`KEEP` empty blocks (no wallet of the node pays for them: mined to an address of none)."""
    rpc = node.rpc()
    assert rpc.get_block_count() == height, "the blocks to prune must be the last ones"
    rpc.call("generateblock", "raw(6a4d84fd" + "00" * 64_900 + ")", [])  # OP_RETURN, 64,900 bytes
    rpc.call("generatetoaddress", KEEP + 1, NOBODY)
    node.sync_wallets()
    rpc.call("pruneblockchain", rpc.get_block_count() - KEEP)
    pruned = rpc.get_blockchain_info().prune_height
    assert pruned is not None and pruned > height, pruned
    return pruned


def test_a_pruned_node_names_the_missing_block_and_the_height_it_would_need(
    reserve: Reserve, node: RegtestNode
) -> None:
    rpc = node.rpc()
    assert reserve.ok("node", "status", "--json").json()["pruned"] is True
    vault = reserve.add_vault("pruned")
    # two mining rewards to the vault (no coins needed): one booked, one not
    [booked_block, block] = [str(rpc.call("generateblock", vault.address(), [])["hash"]) for _ in range(2)]
    node.sync_wallets()
    booked, unbooked = (str(rpc.call("getblock", b)["tx"][0]) for b in (booked_block, block))
    reserve.ok("record", "mining", "--vault", vault.name, "--txid", booked)
    booked_height, height = (int(rpc.call("getblockheader", b)["height"]) for b in (booked_block, block))
    prune_height = prune_below(node, height)

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
        (("record", "mining", "--vault", vault.name, "--txid", unbooked), [unbooked]),
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
    r = reserve.run("vault", "watch", vault.name, "--birthday", str(height))  # nor rescanned from there
    assert r.code == 2 and f"is below the node's prune height {prune_height}" in r.err, r.err
    assert book_state(reserve.db_url) == before
