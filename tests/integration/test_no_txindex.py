"""A node without ``-txindex``: transactions and the prevouts of vault spends are found through the
vaults' watch-only wallets; wallet transaction states are typed; record and sync work."""

from __future__ import annotations

import pytest

from custody.chain import fetch_transactions, has_txindex
from custody.wallet import vault_wallet_name
from custody.wallet_txs import wallet_tx_states
from regtest.node import MINER_WALLET, RegtestNode
from tests.fixtures.reserve import Reserve
from tests.integration.test_tx_shapes import spend, wallet_fee

BTC = 100_000_000


@pytest.fixture
def node(node_no_txindex: RegtestNode) -> RegtestNode:
    return node_no_txindex


def test_the_fixture_node_has_no_txindex(node: RegtestNode, rpc_no_txindex: object) -> None:
    assert not node.txindex and not has_txindex(node.rpc())


def test_transactions_and_vault_prevouts_through_the_wallets(reserve: Reserve, node: RegtestNode) -> None:
    a = reserve.add_vault("notx")
    wallet = vault_wallet_name(a.name)
    rpc = node.rpc()
    deposit = node.fund(a.address(), 2 * BTC)
    assert fetch_transactions(rpc, [deposit]) == {}  # getrawtransaction alone cannot find it

    [tx] = fetch_transactions(rpc, [deposit], [wallet]).values()
    assert tx.block is not None and tx.block.in_best_chain and tx.confirmations == 1
    assert tx.block.block_hash == rpc.call("getbestblockhash")
    assert 2 * BTC in [o.value for o in tx.outputs]
    assert tx.fee is None  # the sender's previous outputs are in no vault wallet
    with_miner = fetch_transactions(rpc, [deposit], [wallet, MINER_WALLET])[deposit]
    assert all(i.prevout is not None for i in with_miner.inputs)  # any wallet can show prevouts
    assert with_miner.fee is not None and with_miner.fee > 0

    outside = str(node.miner().call("getnewaddress"))
    pending = spend(node, a, {outside: BTC})
    [unconfirmed] = fetch_transactions(rpc, [pending], [wallet]).values()  # from the mempool
    assert unconfirmed.block is None
    node.mine(1)
    [spent] = fetch_transactions(rpc, [pending], [wallet]).values()
    assert spent.block is not None and spent.fee == wallet_fee(node, a, pending)
    assert all(i.prevout is not None for i in spent.inputs)


def test_wallet_transaction_states(reserve: Reserve, node: RegtestNode) -> None:
    a = reserve.add_vault("states")
    wallet = vault_wallet_name(a.name)
    confirmed = node.fund(a.address(), BTC)
    block = node.rpc().call("getbestblockhash")
    states = wallet_tx_states(node.rpc(), [wallet], [confirmed, "ab" * 32])
    assert set(states) == {confirmed}
    assert states[confirmed].confirmed and states[confirmed].block_hash == block

    node.rpc().call("invalidateblock", block)
    replacement = str(node.miner().call("bumpfee", confirmed)["txid"])
    node.mine(1)
    gone = wallet_tx_states(node.rpc(), [wallet], [confirmed])[confirmed]
    assert gone.conflicted and gone.confirmations < 0 and gone.replaced_by == replacement
    assert replacement in gone.conflicts

    pending = node.fund(a.address(), BTC, confirm=False)
    state = wallet_tx_states(node.rpc(), [wallet], [pending])[pending]
    assert state.pending and state.block_hash is None and not state.conflicted


def test_record_and_sync_round_trip(reserve: Reserve, node: RegtestNode) -> None:
    a = reserve.add_vault("roundtrip")
    b = reserve.add_vault("roundtrip2")
    reserve.ok("account", "add", "acme", "--type", "counterparty")
    deposit = node.fund(a.address(), 3 * BTC)
    r = reserve.ok(
        "record", "deposit", "--vault", a.name, "--txid", deposit, "--from", "acme", "--json"
    ).json()
    assert r["block_height"] == node.rpc().get_block_count()
    t = spend(node, a, {b.address(): BTC})
    node.mine(1)
    fee = wallet_fee(node, a, t)
    r = reserve.ok(
        "record", "transfer", "--from-vault", a.name, "--to-vault", b.name, "--txid", t, "--json"
    ).json()
    assert {p["account"]: p["amount_sat"] for p in r["postings"]} == {
        a.name: -(BTC + fee),
        b.name: BTC,
        "network-fees": fee,
    }
    later = node.fund(b.address(), 5_000)
    [m] = reserve.ok("sync", "--json").json()["movements"]
    assert (m["txid"], m["flows_sat"]) == (later, {b.name: 5_000})
