"""Chain-verified recording, sync and audit against real regtest nodes (with and without
-txindex), on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, text

from custody.amount import format_btc
from ledger.store.db import drop_append_only_ddl
from regtest.node import RegtestNode
from tests.fixtures.db import snapshot
from tests.fixtures.reserve import Reserve


@pytest.fixture
def node(chain_node: RegtestNode) -> RegtestNode:
    """Recording, sync and audit on a node with -txindex and on one without."""
    return chain_node


@pytest.fixture
def db(reserve: Reserve) -> Iterator[Engine]:
    engine = reserve.engine()
    yield engine
    engine.dispose()


def coinbase_value(node: RegtestNode, block_hash: str) -> tuple[str, int]:
    block = node.rpc().call("getblock", block_hash, 2)
    cb = block["tx"][0]
    return cb["txid"], sum(
        int(o["value"] * 100_000_000) for o in cb["vout"] if o["scriptPubKey"].get("address")
    )


def test_record_sync_and_a_clean_audit(reserve: Reserve, node: RegtestNode) -> None:
    vault = reserve.add_vault("treasury")
    reserve.ok("account", "add", "exchange-a", "--type", "counterparty")
    t1 = node.fund(vault.address(), 250_000_000)
    t2 = node.fund(vault.address(), 12_345)
    [block] = node.mine(1, vault.address())
    cb_txid, reward = coinbase_value(node, block)

    r = reserve.ok(
        "record",
        "deposit",
        "--vault",
        vault.name,
        "--txid",
        t1,
        "--from",
        "exchange-a",
        "--amount",
        "2.5",
        "--json",
    )
    entry = r.json()
    assert entry["kind"] == "deposit" and entry["txid"] == t1
    assert {p["account"]: p["amount_sat"] for p in entry["postings"]} == {
        vault.name: 250_000_000,
        "exchange-a": -250_000_000,
    }
    assert entry["block_height"] is not None and len(entry["block_hash"]) == 64

    r = reserve.ok("record", "mining", "--vault", vault.name, "--txid", cb_txid, "--json")
    assert r.json()["kind"] == "mining"

    dry = reserve.ok("sync", "--dry-run", "--json").json()
    assert [m["txid"] for m in dry["movements"]] == [t2]
    assert all(m["seq"] is None for m in dry["movements"])
    done = reserve.ok("sync", "--json").json()
    assert [(m["kind"], m["txid"], m["amount_sat"]) for m in done["movements"]] == [("deposit", t2, 12_345)]
    assert reserve.ok("sync", "--json").json()["movements"] == []  # idempotent

    audit = reserve.run("audit", "--json")
    report = audit.json()
    assert audit.code == 0, report["findings"]
    assert report["schema"] == "reserve-ledger-audit/v2" and report["ok"] is True
    [v] = report["vaults"]
    assert v["ledger"] == 250_000_000 + 12_345 + reward
    assert v["scan_immature"] == reward  # a fresh coinbase: immature, neither missing nor spendable
    assert v["wallet_immature"] == reward
    assert v["scan_confirmed"] == 250_000_000 + 12_345
    assert {e["txid"]: e["status"] for e in report["entries"]} == {t1: "ok", t2: "ok", cb_txid: "ok"}
    last_seq = done["movements"][-1]["seq"]
    assert report["checkpoint_id"] is not None and report["tree_size"] == last_seq
    assert report["pending"] == [] and report["undefined_accounts"] == []
    assert report["totals"]["ledger"] == reserve.ok("balance", "--json").json()["reserve_sat"]

    table = reserve.run("audit")
    assert table.code == 0
    assert "OK: the books reconcile" in table.out and format_btc(v["ledger"]) in table.out

    # the mining reward matures after 100 blocks and stays reconciled
    node.mine(100)
    report = reserve.run("audit", "--json").json()
    assert report["ok"] and report["vaults"][0]["scan_immature"] == 0


def test_an_unrecorded_deposit_is_a_finding(reserve: Reserve, node: RegtestNode) -> None:
    vault = reserve.add_vault("cold")
    txid = node.fund(vault.address(), 70_000_000)
    r = reserve.run("audit", "--json")
    assert r.code == 1
    findings = r.json()["findings"]
    assert [f["txid"] for f in findings if f["code"] == "unrecorded"] == [txid]
    assert any(f["code"] == "balance-mismatch" and f["vault"] == vault.name for f in findings)
    table = reserve.run("audit")
    assert table.code == 1 and "unrecorded movement" in table.out and txid in table.out
    reserve.ok("sync")
    assert reserve.run("audit").code == 0


def test_refusals_write_nothing(reserve: Reserve, node: RegtestNode, db: Engine) -> None:
    a = reserve.add_vault("alpha")
    b = reserve.add_vault("beta")
    t = node.fund(a.address(), 1_000_000)
    outside = node.fund(node.miner().call("getnewaddress"), 3_000_000)
    unconfirmed = node.fund(a.address(), 2_000_000, confirm=False)
    seq = reserve.ok("record", "deposit", "--vault", a.name, "--txid", t, "--json").json()["seq"]
    before = snapshot(db)
    cases = [
        (["record", "deposit", "--vault", b.name, "--txid", t], f"not a deposit of vault {b.name}"),
        (["record", "deposit", "--vault", a.name, "--txid", "ab" * 32], "not known to the node"),
        (["record", "deposit", "--vault", a.name, "--txid", "xyz"], "64 hex"),
        (["record", "deposit", "--vault", a.name, "--txid", t], f"already recorded as entry #{seq}"),
        (["record", "deposit", "--vault", "nope", "--txid", t], "unknown vault 'nope'"),
        (["record", "deposit", "--vault", a.name, "--txid", unconfirmed], "unconfirmed"),
        (
            ["record", "deposit", "--vault", a.name, "--txid", outside],
            # without -txindex a transaction no vault wallet knows cannot be found at all
            "neither pays nor spends" if node.txindex else "not known to the node",
        ),
        (
            ["record", "withdrawal", "--vault", a.name, "--txid", t, "--to", "unattributed"],
            "not a withdrawal",
        ),
        (["record", "deposit", "--vault", a.name, "--txid", t, "--from", "ghost"], "ghost"),
        (["record", "deposit", "--vault", a.name, "--txid", t, "--amount", "0.000000001"], "decimals"),
        (["record", "deposit", "--vault", a.name, "--txid", t, "--amount", "-1"], "negative"),
        (["record", "deposit", "--vault", a.name, "--txid", t, "--amount", "21000001"], "21,000,000"),
        (["sync", "--vault", "nope"], "unknown vault"),
    ]
    for argv, message in cases:
        r = reserve.run(*argv)
        assert r.code == 2, (argv, r.out, r.err)
        assert message in r.err, (argv, r.err)
        assert snapshot(db) == before, argv
    node.mine(1)
    r = reserve.run("record", "deposit", "--vault", a.name, "--txid", unconfirmed, "--amount", "0.03")
    assert r.code == 2 and "amount mismatch: you said 0.03000000 BTC" in r.err and "0.02000000" in r.err
    assert snapshot(db) == before


def test_unreachable_node_changes_nothing(reserve: Reserve, node: RegtestNode, db: Engine) -> None:
    a = reserve.add_vault("gamma")
    t = node.fund(a.address(), 1_000_000)
    before = snapshot(db)
    from ledger.cli.main import main

    reserve.capsys.readouterr()
    code = main(
        [
            "--signing-key",
            str(reserve.key_path),
            "--rpc-url",
            "http://127.0.0.1:1",
            "--rpc-cookie",
            str(node.cookie_path),
            "record",
            "deposit",
            "--vault",
            a.name,
            "--txid",
            t,
        ]
    )
    assert code == 2 and "cannot reach bitcoind" in reserve.capsys.readouterr().err
    assert snapshot(db) == before


def test_a_tampered_journal_is_an_audit_finding(reserve: Reserve, node: RegtestNode, db: Engine) -> None:
    a = reserve.add_vault("delta")
    t = node.fund(a.address(), 5_000_000)
    seq = reserve.ok("record", "deposit", "--vault", a.name, "--txid", t, "--json").json()["seq"]
    assert reserve.run("audit").code == 0
    with db.begin() as c:  # behind the application's back: drop the guard, then edit a memo
        for statement in drop_append_only_ddl(db.dialect.name, "entries"):
            c.execute(text(statement))
        c.execute(text("UPDATE entries SET memo = 'nothing to see' WHERE seq = :seq"), {"seq": seq})
    r = reserve.run("audit", "--json")
    assert r.code == 1
    f = next(f for f in r.json()["findings"] if f["code"] == "ledger-verification" and f["seq"] == seq)
    assert "restore the database from a backup" in f["advice"]
    assert r.json()["checkpoint_id"] is None  # the audit is kept, but never signs a tampered journal


def test_transfer_and_withdrawal_with_fees(reserve: Reserve, node: RegtestNode) -> None:
    from custody.wallet import vault_wallet_name
    from regtest.signers import DemoSigner, spend_from_vault

    treasury = reserve.add_vault("treasury2")
    cold = reserve.add_vault("cold2")
    reserve.ok("account", "add", "buyer", "--type", "counterparty")
    funding = node.fund(treasury.address(), 300_000_000)
    reserve.ok("record", "deposit", "--vault", treasury.name, "--txid", funding)
    keys = tuple(treasury.keys.values())
    signers = []
    for holder in ("ministry", "regulator"):
        s = DemoSigner(holder, treasury.seeds[holder])
        s.import_vault(node.rpc(), 2, keys)
        signers.append(s)
    rpc = node.rpc()

    transfer = spend_from_vault(rpc, vault_wallet_name(treasury.name), signers, {cold.address(): 100_000_000})
    node.mine(1)
    r = reserve.ok(
        "record",
        "transfer",
        "--from-vault",
        treasury.name,
        "--to-vault",
        cold.name,
        "--txid",
        transfer,
        "--json",
    )
    legs = {p["account"]: p["amount_sat"] for p in r.json()["postings"]}
    fee = legs["network-fees"]
    assert fee > 0 and legs[cold.name] == 100_000_000 and legs[treasury.name] == -(100_000_000 + fee)

    outside = node.miner().call("getnewaddress")
    withdrawal = spend_from_vault(rpc, vault_wallet_name(treasury.name), signers, {outside: 50_000_000})
    node.mine(1)
    wrong = reserve.run("record", "withdrawal", "--vault", cold.name, "--txid", withdrawal, "--to", "buyer")
    assert wrong.code == 2 and f"not a withdrawal of vault {cold.name}" in wrong.err
    r = reserve.ok(
        "record", "withdrawal", "--vault", treasury.name, "--txid", withdrawal, "--to", "buyer", "--json"
    )
    legs = {p["account"]: p["amount_sat"] for p in r.json()["postings"]}
    assert legs["buyer"] == 50_000_000 and legs["network-fees"] > 0
    assert legs[treasury.name] == -(50_000_000 + legs["network-fees"])

    report = reserve.run("audit", "--json").json()
    # the books reconcile; the two sends of the holders themselves never passed the gate
    assert {(f["code"], f["txid"]) for f in report["findings"]} == {
        ("ungated-spend", transfer),
        ("ungated-spend", withdrawal),
    }, report["findings"]
    by_vault = {v["vault"]: v for v in report["vaults"]}
    assert by_vault[cold.name]["ledger"] == by_vault[cold.name]["scan_confirmed"] == 100_000_000
    assert by_vault[treasury.name]["ledger"] == by_vault[treasury.name]["scan_confirmed"]
