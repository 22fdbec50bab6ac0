"""``reserve policy show|set`` and ``policy allow add|remove`` end to end: a real regtest node,
SQLite and PostgreSQL (runtime role), vaults set up through the CLI.

Tightening is in force at once, loosening after the loosen delay (blocks are mined and ``policy
show`` polled with a deadline); allowlist entries are pending, then active; bad input changes
nothing (row counts and Merkle root compared); the database refuses to edit a change, and a change
edited behind its back (triggers dropped) is reported as tampering."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any

import pytest
from sqlalchemy import text

from custody.address import address_script, b58encode_check
from custody.keygen import test_key_from_seed
from custody.network import Network
from custody.rpc import RpcClient
from ledger.store.db import drop_append_only_ddl
from regtest.node import RegtestNode
from tests.fixtures.governance import approve, governed, propose, retire
from tests.fixtures.reserve import Reserve
from tests.fixtures.reserve import TestVault as Vault
from tests.integration.test_address_issuance import book_state

R = Network.REGTEST
DEADLINE = 30.0


def show(reserve: Reserve, vault: str, *flags: str) -> dict[str, Any]:
    data: dict[str, Any] = reserve.ok("policy", "show", vault, "--json", *flags).json()
    return data


def poll(what: str, check: Callable[[], bool]) -> None:
    """Poll ``check`` until it holds; fail after DEADLINE seconds naming ``what``."""
    deadline = time.monotonic() + DEADLINE
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"{what} did not happen within {DEADLINE:.0f} s")
        time.sleep(0.05)


def mine_to(node: RegtestNode, height: int) -> None:
    missing = height - node.rpc().get_block_count()
    if missing > 0:
        node.mine(missing)


def short_delay(reserve: Reserve, node: RegtestNode, vault: Vault, blocks: int = 2) -> None:
    """Shorten the vault's loosen delay (itself a loosening: approved by the holders, it waits the
    default 144 blocks)."""
    change = governed(reserve, vault, "policy", "set", vault.name, "--loosen-delay", str(blocks))
    assert change["status"] == "applied" and change["effective_height"] == change["applied_height"] + 144
    mine_to(node, change["effective_height"])
    poll(
        "the shorter loosen delay",
        lambda: show(reserve, vault.name)["limits"]["loosen_delay_blocks"] == blocks,
    )


def test_defaults_then_tighten_at_once_and_loosen_after_the_delay(
    reserve: Reserve, node: RegtestNode
) -> None:
    v = reserve.add_vault("pol")
    data = show(reserve, v.name)
    assert data["limits"] == {
        "max_per_spend_sat": None,
        "velocity_limit_sat": None,
        "velocity_window_blocks": 144,
        "max_fee_rate_sat_per_kvb": 100_000,
        "max_fee_sat": 1_000_000,
        "delay_above_sat": None,
        "delay_blocks": 0,
        "required_holders": [],
        "loosen_delay_blocks": 144,
    }
    assert data["changes"] == [] and data["allowlist"] == []

    # a cap where there was none, a lower fee rate and a required holder: all tighten, at once
    tip = node.rpc().get_block_count()
    r = reserve.ok(
        "policy", "set", v.name, "--max-per-spend", "1", "--max-fee-rate", "12.5",
        "--require-holder", "central-bank", "--json",
    )  # fmt: skip
    (change,) = r.json()["changes"]
    assert change["loosens"] is False
    assert change["requested_height"] == change["effective_height"] == tip
    assert change["status"] == "active"
    limits = show(reserve, v.name)["limits"]
    assert limits["max_per_spend_sat"] == 100_000_000
    assert limits["max_fee_rate_sat_per_kvb"] == 12_500
    assert limits["required_holders"] == ["central-bank"]

    short_delay(reserve, node, v, 3)

    # one set that loosens one field and tightens another: the tightening is stored at once, the
    # loosening proposed to the holders
    out = str(reserve.key_path.parent)
    r = reserve.ok(
        "policy", "set", v.name, "--max-per-spend", "5", "--max-fee", "0.001", "--out", out, "--json"
    )
    (tight,) = r.json()["changes"]
    assert tight["fields"] == {"max_fee_sat": 100_000} and tight["status"] == "active"
    assert r.json()["proposed"]["params"] == {"fields": {"max-per-spend": 500_000_000}}
    assert show(reserve, v.name)["limits"]["max_per_spend_sat"] == 100_000_000  # not before approval
    approved = approve(reserve, v, r.json()["proposed"])
    tip = approved["applied_height"]
    assert approved["effective_height"] == tip + 3
    data = show(reserve, v.name)
    assert data["limits"]["max_fee_sat"] == 100_000
    assert data["limits"]["max_per_spend_sat"] == 100_000_000  # still the old cap
    assert [c["status"] for c in data["changes"]][-2:] == ["active", "pending"]

    text_out = reserve.ok("policy", "show", v.name).out
    assert "max-per-spend    : 1.00000000 BTC" in text_out and "pending" in text_out

    mine_to(node, tip + 3)
    poll(
        "the higher max-per-spend to be in force",
        lambda: show(reserve, v.name)["limits"]["max_per_spend_sat"] == 500_000_000,
    )
    assert show(reserve, v.name)["changes"][-1]["status"] == "active"


def test_a_later_tightening_supersedes_a_pending_loosening(reserve: Reserve, node: RegtestNode) -> None:
    v = reserve.add_vault("sup")
    reserve.ok("policy", "set", v.name, "--velocity-limit", "2", "--velocity-window", "200")
    loose = governed(reserve, v, "policy", "set", v.name, "--velocity-limit", "none")
    assert loose["effective_height"] == loose["applied_height"] + 144
    reserve.ok("policy", "set", v.name, "--velocity-limit", "2")  # the same value: cancels it
    mine_to(node, loose["effective_height"])
    poll(
        "the node to reach the loosening's height",
        lambda: show(reserve, v.name)["height"] >= loose["effective_height"],
    )
    data = show(reserve, v.name)
    assert data["limits"]["velocity_limit_sat"] == 200_000_000
    assert data["limits"]["velocity_window_blocks"] == 200
    assert [c["status"] for c in data["changes"]] == ["active", "superseded", "active"]


def test_allowlist_entry_pending_then_active_then_removed(
    reserve: Reserve, node: RegtestNode, rpc: RpcClient
) -> None:
    v = reserve.add_vault("allow")
    short_delay(reserve, node, v, 2)
    address = str(node.miner().call("getnewaddress", "", "bech32"))
    proposed = propose(reserve, "policy", "allow", "add", v.name, "exchange", "--address", address)
    assert show(reserve, v.name)["allowlist"] == []  # not before the holders approve
    r = approve(reserve, v, proposed)
    tip = r["applied_height"]
    assert r["status"] == "applied" and r["effective_height"] == tip + 2
    (entry,) = show(reserve, v.name, "--scripts")["allowlist"]
    assert entry["name"] == "exchange" and entry["status"] == "pending"
    assert entry["scripts"] == [address_script(address, R).hex()]
    assert entry["scripts"] == [rpc.call("validateaddress", address)["scriptPubKey"]]  # the node agrees

    # the same name again, or the same destination under another name: refused
    assert reserve.run("policy", "allow", "add", v.name, "exchange", "--address", address).code == 2
    again = reserve.run("policy", "allow", "add", v.name, "exchange2", "--address", address)
    assert again.code == 2 and "already stands for the script" in again.err

    mine_to(node, tip + 2)
    poll(
        "the allowlist entry to be active",
        lambda: show(reserve, v.name)["allowlist"][0]["status"] == "active",
    )
    assert "exchange" in reserve.ok("policy", "show", v.name).out

    r = reserve.ok("policy", "allow", "remove", v.name, "exchange", "--json").json()
    assert r["change"]["loosens"] is False and r["change"]["status"] == "active"
    assert show(reserve, v.name)["allowlist"] == []
    gone = reserve.run("policy", "allow", "remove", v.name, "exchange")
    assert gone.code == 2 and "not on vault" in gone.err


def test_descriptor_target_derives_through_the_node(reserve: Reserve, rpc: RpcClient) -> None:
    v = reserve.add_vault("desc")
    key = test_key_from_seed(secrets.token_bytes(32), R)
    descriptor = f"wpkh({key}/0/*)"
    r = governed(reserve, v, "policy", "allow", "add", v.name, "payroll", "--descriptor", descriptor)
    assert r["params"]["kind"] == "descriptor" and len(r["params"]["scripts"]) == 1000
    (entry,) = show(reserve, v.name, "--scripts")["allowlist"]
    assert entry["script_count"] == 1000
    normalised = rpc.call("getdescriptorinfo", descriptor)["descriptor"]
    assert entry["target"] == normalised
    first, last = rpc.call("deriveaddresses", normalised, [0, 999])[0::999]
    assert entry["scripts"][0] == address_script(first, R).hex()
    assert entry["scripts"][999] == address_script(last, R).hex()
    assert "scripts" not in show(reserve, v.name)["allowlist"][0]  # only with --scripts

    # a multipath descriptor: both branches, kept as given (bitcoind's "descriptor" is branch 0)
    other = test_key_from_seed(secrets.token_bytes(32), R)
    multipath = f"wpkh({other}/<0;1>/*)"
    r = governed(reserve, v, "policy", "allow", "add", v.name, "treasury", "--descriptor", multipath)
    assert len(r["params"]["scripts"]) == 2000
    entries = {e["name"]: e for e in show(reserve, v.name, "--scripts")["allowlist"]}
    info = rpc.call("getdescriptorinfo", multipath)
    assert entries["treasury"]["target"] == f"{multipath}#{info['checksum']}"
    change_branch = rpc.call("deriveaddresses", info["multipath_expansion"][1], [0, 0])[0]
    assert entries["treasury"]["scripts"][1000] == address_script(change_branch, R).hex()

    single = str(rpc.call("getdescriptorinfo", f"addr({first})")["descriptor"])
    clash = reserve.run("policy", "allow", "add", v.name, "other", "--descriptor", single)
    assert clash.code == 2 and "payroll" in clash.err  # one destination, one name


def _wif(secret: bytes) -> str:
    return b58encode_check(b"\xef" + secret + b"\x01")


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (
            ("allow", "add", "{v}", "x1", "--address", "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"),
            "is for mainnet",
        ),
        (
            (
                "allow",
                "add",
                "{v}",
                "x1",
                "--address",
                "tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sl5k7",
            ),
            "test network",
        ),
        (
            ("allow", "add", "{v}", "x1", "--address", "1FsSia9rv4NeEwvJ2GvXrX7LyxYspbN2mo"),
            "version byte 0x00",
        ),
        (
            ("allow", "add", "{v}", "x1", "--address", "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t5"),
            "bad checksum",
        ),
        (("allow", "add", "{v}", "x1", "--address", "bcrt1q\x1b[31m"), "control character"),
        (("allow", "add", "{v}", "x1", "--descriptor", "wpkh({wif})"), "private key"),
        (("allow", "add", "{v}", "x1", "--descriptor", "wpkh(nonsense)"), "refused by bitcoind"),
        (("allow", "add", "{v}", "{v}", "--address", "{a}"), "is a vault of the reserve"),
        (("allow", "add", "{v}", "network-fees", "--address", "{a}"), "system account"),
        (("allow", "add", "{v}", "bad name!", "--address", "{a}"), "account name"),
        (("allow", "add", "{v}", "x1"), "exactly one of --address"),
        (("allow", "add", "nowhere", "x1", "--address", "{a}"), "unknown vault"),
        (("allow", "remove", "{v}", "x1"), "not on vault"),
        (("set", "{v}"), "nothing to set"),
        (("set", "{v}", "--max-per-spend", "1.123456789"), "9 decimals"),
        (("set", "{v}", "--max-per-spend", "-1"), "--max-per-spend"),
        (("set", "{v}", "--max-fee-rate", "1.2345"), "at most 3 decimals"),
        (("set", "{v}", "--max-fee", "none"), "--max-fee"),
        (("set", "{v}", "--velocity-window", "0"), "velocity-window 0 is out of range"),
        (("set", "{v}", "--delay-blocks", "ten"), "not a whole number"),
        (("set", "{v}", "--require-holder", "mallory"), "holds no key of vault"),
        (("set", "{v}", "--require-holder", "none", "--require-holder", "ministry"), "clears the list"),
        (("set", "nowhere", "--max-fee", "0.1"), "unknown vault"),
        (("allow", "add", "{v}", "x1", "--descriptor", "wpkh({xpub}/0/*)"), "refused by bitcoind"),
        (
            ("allow", "add", "{v}", "x1", "--descriptor", "addr(bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4)"),
            "refused",
        ),
        (("allow", "add", "{v}", "income", "--address", "{a}"), "has type income"),
    ],
)
def test_bad_input_changes_nothing(
    reserve: Reserve, node: RegtestNode, args: tuple[str, ...], expected: str
) -> None:
    v = reserve.add_vault("bad")
    address = str(node.miner().call("getnewaddress", "", "bech32"))
    wif = _wif(secrets.token_bytes(31) + b"\x01")
    xpub = test_key_from_seed(secrets.token_bytes(32), Network.MAINNET)  # a mainnet key on regtest
    reserve.ok("account", "add", "income", "--type", "income")
    before = book_state(reserve.db_url)
    filled = [a.format(v=v.name, a=address, wif=wif, xpub=xpub) for a in args]
    r = reserve.run("policy", *filled)
    assert r.code == 2, r.out
    assert expected in r.err
    assert wif not in r.err and wif not in r.out  # a private key is never echoed
    assert book_state(reserve.db_url) == before


def test_an_existing_counterparty_account_may_be_listed(reserve: Reserve, node: RegtestNode) -> None:
    v = reserve.add_vault("cp")
    reserve.ok("account", "add", "exchange", "--type", "counterparty")
    address = str(node.miner().call("getnewaddress", "", "p2sh-segwit"))  # base58 P2SH on regtest
    governed(reserve, v, "policy", "allow", "add", v.name, "exchange", "--address", address)
    (entry,) = show(reserve, v.name)["allowlist"]
    assert entry["target"] == address and entry["script_count"] == 1


def test_json_errors_and_retired_vault(reserve: Reserve) -> None:
    v = reserve.add_vault("old")
    retire(reserve, v)
    before = book_state(reserve.db_url)
    r = reserve.run("policy", "set", v.name, "--max-fee", "0.1", "--json")
    assert r.code == 2 and r.json()["error"]["code"] == "conflict"
    assert "retired" in r.json()["error"]["message"]
    assert book_state(reserve.db_url) == before
    assert show(reserve, v.name)["changes"] == []  # still readable


def test_database_refuses_edits_and_tampering_is_detected(reserve: Reserve) -> None:
    v = reserve.add_vault("tamper")
    reserve.ok("policy", "set", v.name, "--max-per-spend", "1")
    engine = reserve.engine()  # the owner: full rights, as an intruder with the file
    try:
        for statement in (
            "UPDATE policy_changes SET effective_height = 0, loosens = false",
            "UPDATE policy_changes SET body = '{}'",
            "DELETE FROM policy_changes",
        ):
            with pytest.raises(Exception, match="append-only"), engine.begin() as c:
                c.execute(text(statement))
        before = book_state(reserve.db_url)
        assert before[0]["policy_changes"] == 1

        with engine.begin() as c:  # an intruder who drops the triggers first
            for statement in drop_append_only_ddl(engine.dialect.name, "policy_changes"):
                c.execute(text(statement))
            c.execute(text("UPDATE policy_changes SET body = :b"), {"b": '{"fields":{"max-per-spend":null}}'})
    finally:
        engine.dispose()
    r = reserve.run("policy", "show", v.name, "--json")
    assert r.code == 2 and r.json()["error"]["code"] == "tamper-detected"
    assert "differs from its policy-changed record" in r.json()["error"]["message"]
    assert reserve.run("policy", "set", v.name, "--max-fee", "0.1").code == 2


def test_a_copied_row_is_tamper_detected(reserve: Reserve) -> None:
    """The runtime role may INSERT: a copy of an old tightening, appended after a later change,
    would otherwise decide the field again. Rows must follow their records' order."""
    v = reserve.add_vault("copy")
    reserve.ok("policy", "set", v.name, "--max-per-spend", "1")
    reserve.ok("policy", "set", v.name, "--max-per-spend", "0.5")
    engine = reserve.engine(runtime=True)
    columns = "vault, change, body, loosens, requested_height, effective_height, record_seq"
    try:
        with engine.begin() as c:
            c.execute(
                text(
                    f"INSERT INTO policy_changes ({columns}) SELECT {columns} FROM policy_changes "
                    "WHERE id = (SELECT min(id) FROM policy_changes WHERE vault = :v)"
                ),
                {"v": v.name},
            )
    finally:
        engine.dispose()
    r = reserve.run("policy", "show", v.name, "--json")
    assert r.code == 2 and r.json()["error"]["code"] == "tamper-detected"
    assert "copied or inserted" in r.json()["error"]["message"]
