"""Reorgs: a recorded deposit whose block leaves the best chain is reported, and reconciles again
once the transaction is mined into a new block."""

from __future__ import annotations

from decimal import Decimal

import pytest

from regtest.node import RegtestNode
from tests.fixtures.reserve import Reserve


@pytest.fixture
def node(chain_node: RegtestNode) -> RegtestNode:
    """Reorgs on a node with -txindex and on one without."""
    return chain_node


@pytest.mark.parametrize("depth", [1, 6])
def test_reorg_of_a_recorded_deposit(reserve: Reserve, node: RegtestNode, depth: int) -> None:
    vault = reserve.add_vault(f"reorg{depth}")
    txid = node.fund(vault.address(), 40_000_000)
    reserve.ok("record", "deposit", "--vault", vault.name, "--txid", txid)
    recorded_block = node.rpc().call("getblockhash", node.rpc().get_block_count())
    assert txid in node.rpc().call("getblock", recorded_block)["tx"]
    node.mine(depth - 1)
    clean = reserve.run("audit", "--json").json()
    assert clean["ok"], clean["findings"]
    [entry] = clean["entries"]
    assert entry["confirmations"] == depth and entry["status"] == "ok"

    node.rpc().call("invalidateblock", recorded_block)
    node.sync_wallets()
    r = reserve.run("audit", "--json")
    assert r.code == 1
    report = r.json()
    [entry] = report["entries"]
    assert entry["status"] == "not-in-best-chain"
    assert entry["recorded_block"] == recorded_block
    assert entry["recorded_block_in_best_chain"] is False
    assert entry["confirmations"] == 0
    codes = {f["code"] for f in report["findings"]}
    assert codes == {"not-in-best-chain", "balance-mismatch"}
    for f in report["findings"]:  # the deposit waits in the mempool: the advice is to wait
        assert "mined again" in f["advice"], f
    table = reserve.run("audit")
    assert table.code == 1 and "no longer confirmed" in table.out and "off the best chain" in table.out

    [new_block] = node.mine(1)
    assert txid in node.rpc().call("getblock", new_block)["tx"]
    r = reserve.run("audit", "--json")
    report = r.json()
    assert r.code == 0, report["findings"]
    [entry] = report["entries"]
    assert entry["status"] == "moved"
    assert entry["current_block"] == new_block and entry["recorded_block"] == recorded_block
    table = reserve.run("audit")
    assert table.code == 0 and f"it is now in block {new_block}" in table.out


def test_a_recorded_deposit_replaced_after_a_reorg(reserve: Reserve, node: RegtestNode) -> None:
    """The sender double-spends a recorded deposit (a fee bump) while its block is off the chain:
    the audit reports the entry conflicted, naming the replacement, and says to reverse it (not
    to wait for a confirmation that can never come); reversing and syncing reconciles."""
    vault = reserve.add_vault("replaced")
    txid = node.fund(vault.address(), 30_000_000)
    seq = reserve.ok("record", "deposit", "--vault", vault.name, "--txid", txid, "--json").json()["seq"]
    block = node.rpc().call("getblockhash", node.rpc().get_block_count())
    assert txid in node.rpc().call("getblock", block)["tx"]
    node.rpc().call("invalidateblock", block)
    node.sync_wallets()
    replacement = node.miner().call("bumpfee", txid)["txid"]
    node.mine(1)
    r = reserve.run("audit", "--json")
    assert r.code == 1
    report = r.json()
    by_code = {(f["code"], f["txid"]) for f in report["findings"]}
    assert ("conflicted", txid) in by_code and ("unrecorded", replacement) in by_code
    assert ("not-in-best-chain", txid) not in by_code and ("missing-transaction", txid) not in by_code
    [conflicted] = [f for f in report["findings"] if f["code"] == "conflicted"]
    assert replacement in conflicted["message"] and conflicted["seq"] == seq
    assert f"reserve reverse {seq}" in conflicted["advice"]
    assert "no longer confirmed" not in conflicted["message"]
    [entry] = report["entries"]
    assert (entry["status"], entry["replaced_by"]) == ("conflicted", replacement)
    table = reserve.run("audit")
    assert table.code == 1 and f"fix: reverse the entry: `reserve reverse {seq}" in table.out

    reserve.ok("reverse", str(seq), "--memo", "double-spent in a reorg")
    reserve.ok("sync")
    r = reserve.run("audit", "--json")
    assert r.code == 0, r.json()["findings"]


def test_a_recorded_deposit_double_spent_away_in_a_reorg(reserve: Reserve, node: RegtestNode) -> None:
    """While its block is off the chain, the sender spends the deposit's inputs back to itself:
    nothing pays the vault any more. The vault's wallet marks the deposit conflicted; the audit
    says so and says to reverse it, never to wait."""
    vault = reserve.add_vault("doublespent")
    txid = node.fund(vault.address(), 25_000_000)
    seq = reserve.ok("record", "deposit", "--vault", vault.name, "--txid", txid, "--json").json()["seq"]
    node.rpc().call("invalidateblock", node.rpc().call("getblockhash", node.rpc().get_block_count()))
    node.sync_wallets()
    miner = node.miner()
    original = miner.call("gettransaction", txid, True, True)["decoded"]
    spent = [(i["txid"], i["vout"]) for i in original["vin"]]
    value = sum(miner.call("gettransaction", t, True, True)["decoded"]["vout"][n]["value"] for t, n in spent)
    raw = miner.call(
        "createrawtransaction",
        [{"txid": t, "vout": n} for t, n in spent],
        [{miner.call("getnewaddress"): value - Decimal("0.001")}],
    )
    signed = miner.call("signrawtransactionwithwallet", raw)["hex"]
    double_spend = node.rpc().call("sendrawtransaction", signed)
    node.mine(1)
    r = reserve.run("audit", "--json")
    assert r.code == 1
    report = r.json()
    codes = {(f["code"], f["txid"]) for f in report["findings"]}
    assert ("conflicted", txid) in codes and ("not-in-best-chain", txid) not in codes
    assert ("unrecorded", double_spend) not in codes  # it pays no vault
    [conflicted] = [f for f in report["findings"] if f["code"] == "conflicted"]
    assert f"reserve reverse {seq}" in conflicted["advice"] and "wait" not in conflicted["advice"]
    reserve.ok("reverse", str(seq), "--memo", "double-spent away in a reorg")
    r = reserve.run("audit", "--json")
    assert r.code == 0, r.json()["findings"]
