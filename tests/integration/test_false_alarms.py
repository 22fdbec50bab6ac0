"""No false alarms, no wrong advice: the audit and sync on states that are not problems.

- coins an open spend holds (locked in the vault's wallet, so ``listunspent`` leaves them out)
  are in the wallet, not a ``wallet-scan-mismatch`` with the advice to rescan;
- a deposit replaced (RBF) by a transaction that pays elsewhere, and a mining reward whose block
  left the chain, can never confirm: they are not "pending" in the audit or in sync, and sync
  does not print them again on every run (one count; ``--json`` lists each);
- a retired vault as a spend's destination is refused as retired, not as an unknown address;
- the first audit after an address far out is handed out finds the wallet already topped up, and
  its long calls go out on the long-call client.

Against the session's regtest node, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from custody.amount import btc_decimal
from custody.rpc import LONG_CALL_TIMEOUT_S, RpcClient
from custody.wallet import vault_wallet_name
from regtest.node import RegtestNode
from tests.fixtures.governance import retire
from tests.fixtures.reserve import Reserve
from tests.integration.test_spend_lifecycle import create, funded_vault, outside_address

BTC = 100_000_000


def audit(reserve: Reserve) -> tuple[int, dict[str, Any]]:
    r = reserve.run("audit", "--json")
    assert r.code in (0, 1), (r.code, r.err, r.out)
    return r.code, r.json()


def test_an_open_spend_holds_its_coins_without_a_mismatch_and_a_retired_vault_is_said_retired(
    reserve: Reserve, node: RegtestNode, tmp_path: Path
) -> None:
    setup = funded_vault(reserve, node)
    wallet = node.rpc().wallet(vault_wallet_name(setup.vault.name))
    created = create(reserve, tmp_path, setup.vault, "--pay", "exchange=0.5", "--memo", "payout")
    locked = {(str(o["txid"]), int(o["vout"])) for o in wallet.call("listlockunspent")}
    listed = {(str(u["txid"]), int(u["vout"])) for u in wallet.call("listunspent", 0)}
    assert locked and not locked & listed  # the spend's coins are locked: listunspent omits them

    code, report = audit(reserve)
    assert code == 0, report["findings"]
    assert "rescan" not in " ".join(f["advice"] for f in report["findings"])
    [row] = [v for v in report["vaults"] if v["vault"] == setup.vault.name]
    assert row["wallet_confirmed"] == row["ledger"] == 2 * BTC  # the locked coins count too
    shown = reserve.ok("spend", "show", str(created["spend"]), "--json").json()
    assert shown["state"] == "proposed"  # the audit did not touch the open spend

    # a retired vault is no destination, and the refusal says why
    cold = setup.other
    retire(reserve, cold, "keys rotated")
    for dest in (cold.name, cold.address(5)):
        r = reserve.run(
            "spend",
            "create",
            "--vault",
            setup.vault.name,
            "--out",
            str(tmp_path),
            "--pay",
            f"{dest}=0.1",
            "--memo",
            "m",
        )
        assert r.code != 0 and f"vault {cold.name}" in r.err and "retired" in r.err, r.err
        assert "keys rotated" in r.err and "not on vault" not in r.err and "not a vault" not in r.err, r.err


def test_a_replaced_deposit_and_an_orphaned_coinbase_are_not_pending_nor_reprinted(
    reserve: Reserve, node: RegtestNode
) -> None:
    vault = reserve.add_vault("gone")
    miner = node.miner()
    node.ensure_mature_funds(2 * BTC)
    deposit = str(
        miner.call_named(
            "sendtoaddress", address=vault.address(), amount=btc_decimal(BTC // 10), replaceable=True
        )
    )
    node.sync_wallets()
    code, report = audit(reserve)
    assert code == 0 and [p["txid"] for p in report["pending"]] == [deposit]  # pending, for now

    # the sender replaces it with a transaction paying itself (a higher fee, no vault output)
    elsewhere = outside_address(node)
    replacement = str(
        miner.call_named("bumpfee", txid=deposit, options={"outputs": [{elsewhere: btc_decimal(BTC // 10)}]})[
            "txid"
        ]
    )
    node.sync_wallets()
    vault_wallet = node.rpc().wallet(vault_wallet_name(vault.name))
    seen = vault_wallet.call("gettransaction", deposit)
    assert seen["confirmations"] == 0 and seen["mempoolconflicts"] == [replacement]

    # a mining reward to the vault whose block leaves the best chain (blocks of no transaction:
    # the replacement stays in the mempool)
    rpc = node.rpc()
    block = str(rpc.call("generateblock", vault.address(), [])["hash"])
    coinbase = str(rpc.call("getblock", block)["tx"][0])
    rpc.call("invalidateblock", block)
    for _ in range(2):
        rpc.call("generateblock", elsewhere, [])
    node.sync_wallets()
    assert vault_wallet.call("gettransaction", coinbase)["confirmations"] == 0

    code, report = audit(reserve)
    assert code == 0, report["findings"]
    assert report["pending"] == [] and report["totals"]["pending_in"] == 0, report["pending"]

    for _ in range(2):  # sync, and sync again: the same items, never as lines of their own
        synced = reserve.ok("sync", "--json").json()
        assert synced["pending"] == [] and synced["movements"] == [], synced
        final = {s["txid"]: s["reason"] for s in synced["skipped"] if s["final"]}
        assert set(final) == {deposit, coinbase}, synced["skipped"]
        assert replacement in final[deposit] and "can never confirm" in final[coinbase]
        text = reserve.ok("sync").out
        assert deposit not in text and coinbase not in text and "pending:" not in text, text
        assert "skipped: 2 transaction(s)" in text and "`reserve sync --json` lists them" in text, text
        assert "0 pending" in text, text

    r = reserve.run("record", "deposit", "--vault", vault.name, "--txid", deposit)
    assert r.code == 2 and "can never confirm" in r.err and replacement in r.err, r.err
    assert "after it confirms" not in r.err, r.err

    # once the replacement is mined the wallet no longer lists the deposit at all
    node.mine(1)
    code, report = audit(reserve)
    assert code == 0 and report["pending"] == [], report
    synced = reserve.ok("sync", "--json").json()
    assert synced["pending"] == [] and [s["txid"] for s in synced["skipped"]] == [coinbase], synced


LONG_CALLS = {"scantxoutset", "importdescriptors", "keypoolrefill", "rescanblockchain", "listtransactions"}


def test_the_first_audit_after_a_high_index_is_handed_out_needs_no_top_up_and_no_short_timeout(
    reserve: Reserve, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``vault address --index 4321`` tops the wallet up as it hands the address out; the audit
    that follows grows nothing, and each of its calls that may take long (the UTXO scan over both
    branches to 5,321, the wallet's whole history) goes out on the long-call client, never on the
    30 s one. Every request the commands send is seen on its way to the real node."""
    hot = reserve.add_vault("far")
    sent: list[tuple[str, float]] = []
    post = RpcClient._post

    def seen(self: RpcClient, payload: Any) -> Any:
        for call in payload if isinstance(payload, list) else [payload]:
            sent.append((str(call["method"]), self.timeout))
        return post(self, payload)

    monkeypatch.setattr(RpcClient, "_post", seen)
    reserve.ok("vault", "address", hot.name, "--index", "4321")
    assert ("keypoolrefill", LONG_CALL_TIMEOUT_S) in sent  # topped up now, on the long client
    listed = reserve.node.rpc().wallet(vault_wallet_name(hot.name)).call("listdescriptors")["descriptors"]
    assert sorted(int(d["range"][1]) for d in listed) == [4321 + 1000, 4321 + 1000]  # both branches

    sent.clear()
    started = time.monotonic()
    code, report = audit(reserve)
    took = time.monotonic() - started
    assert code == 0, report["findings"]
    assert report["vaults"][0]["scanned_range"] == 4321 + 1001
    methods = {m for m, _ in sent}
    assert not methods & {"keypoolrefill", "importdescriptors", "rescanblockchain"}, methods  # nothing grows
    assert {"scantxoutset", "listtransactions"} <= methods
    short = sorted({m for m, timeout in sent if m in LONG_CALLS and timeout < LONG_CALL_TIMEOUT_S})
    assert short == [], short
    print(f"audit after index 4321: {took:.1f} s")
