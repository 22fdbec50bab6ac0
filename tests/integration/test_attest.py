"""``reserve attest`` against a real regtest node (with and without -txindex), on SQLite and
PostgreSQL: the document verifies offline and against the node; every field class tampered is
refused naming its check; an attestation for another block is refused; an attestation at a past
height after later spends lists the outputs unspent then."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine, text

from custody.wallet import vault_wallet_name
from ledger.attest.document import sign_document
from ledger.attest.verify_doc import verify_attestation
from ledger.journal.checkpoint import load_signing_key, public_key_pem
from ledger.store.db import drop_append_only_ddl
from regtest.node import RegtestNode
from tests.fixtures.db import snapshot
from tests.fixtures.reserve import Reserve, TestVault
from tests.integration.test_tx_shapes import spend


@pytest.fixture
def node(chain_node: RegtestNode) -> RegtestNode:
    """Attestations on a node with -txindex and on one without (gettxoutproof gets the block)."""
    return chain_node


@pytest.fixture
def db(reserve: Reserve) -> Iterator[Engine]:
    engine = reserve.engine()
    yield engine
    engine.dispose()


def funded(reserve: Reserve, node: RegtestNode) -> tuple[TestVault, TestVault]:
    """Two vaults: one with three deposits in two blocks, one with a deposit; all booked by sync."""
    a, b = reserve.add_vault("cold"), reserve.add_vault("warm")
    node.fund(a.address(), 120_000_000)
    node.fund(a.address(), 30_000_000, confirm=False)
    node.fund(a.address(), 4_500, confirm=False)
    node.fund(b.address(), 7_000_000)
    reserve.ok("sync")
    return a, b


def attest_to(reserve: Reserve, path: Path, *args: str) -> dict[str, Any]:
    reserve.ok("attest", *args, "--out", str(path), "--json")
    doc: dict[str, Any] = json.loads(path.read_text())
    return doc


def keys(reserve: Reserve) -> tuple[Ed25519PrivateKey, list[bytes]]:
    key = load_signing_key(reserve.key_path)
    return key, [public_key_pem(key)]


def test_attest_verifies_offline_and_on_the_node(reserve: Reserve, node: RegtestNode, tmp_path: Path) -> None:
    a, b = funded(reserve, node)
    doc = attest_to(reserve, tmp_path / "att.json")
    tip = node.rpc().get_blockchain_info()
    assert (doc["height"], doc["block_hash"]) == (tip.blocks, tip.best_block_hash)
    vaults = {v["name"]: v for v in doc["vaults"]}
    assert sorted(o["amount"] for o in vaults[a.name]["outputs"]) == [4_500, 30_000_000, 120_000_000]
    assert [o["amount"] for o in vaults[b.name]["outputs"]] == [7_000_000]
    assert vaults[a.name]["chain_amount"] == vaults[a.name]["ledger_amount"] == 150_004_500
    assert doc["totals"] == {"chain": 157_004_500, "ledger": 157_004_500, "difference": 0}
    assert len(doc["proofs"]) == 2  # one gettxoutproof per block, for all of its txids

    r = reserve.run("attest", "verify", str(tmp_path / "att.json"), "--node")
    assert r.code == 0, r.out
    assert "OK: the attestation verifies" in r.out and "ok    node:" in r.out
    listed = reserve.ok("attest", "list", "--json").json()
    assert [x["height"] for x in listed["attestations"]] == [doc["height"]]
    assert listed["attestations"][0]["findings"] == [] and listed["problems"] == []


def test_attest_at_a_past_height_after_later_spends(
    reserve: Reserve, node: RegtestNode, tmp_path: Path
) -> None:
    a, _ = funded(reserve, node)
    before = node.rpc().get_block_count()
    at_before = attest_to(reserve, tmp_path / "before.json")
    payee = str(node.miner().call("getnewaddress"))
    spend(node, a, {payee: 125_000_000})  # spends the 1.2 BTC output at least, change back
    node.mine(1)
    reserve.ok("sync")
    now = attest_to(reserve, tmp_path / "now.json")
    past = attest_to(reserve, tmp_path / "past.json", "--height", str(before))

    def outpoints(d: dict[str, Any]) -> set[str]:
        return {f"{o['txid']}:{o['vout']}" for v in d["vaults"] for o in v["outputs"]}

    assert past["height"] == before and outpoints(past) == outpoints(at_before)
    assert outpoints(now) != outpoints(past)
    # the books moved on: the past attestation shows the later spend as a difference
    assert past["totals"]["chain"] == at_before["totals"]["chain"]
    assert past["totals"]["ledger"] == now["totals"]["ledger"] == now["totals"]["chain"]
    for name in ("past.json", "now.json"):
        r = reserve.run("attest", "verify", str(tmp_path / name), "--node")
        assert r.code == 0, r.out
    # an output of the present spent before the past height? no: the past outputs were unspent then
    assert reserve.run("attest", "verify", str(tmp_path / "before.json"), "--node").code == 0


def test_a_mining_reward_and_an_empty_vault(reserve: Reserve, node: RegtestNode, tmp_path: Path) -> None:
    """An immature coinbase output is attested (flagged) and proven; a vault without outputs is
    listed with nothing; an empty reserve attests too (headers: block H alone)."""
    empty = attest_to(reserve, tmp_path / "empty.json")
    assert empty["vaults"] == [] and empty["headers"]["start"] == empty["height"]
    assert reserve.run("attest", "verify", str(tmp_path / "empty.json"), "--node").code == 0
    a, idle = reserve.add_vault("miner"), reserve.add_vault("idle")
    [block] = node.mine(1, a.address())
    reserve.ok("sync")
    doc = attest_to(reserve, tmp_path / "att.json")
    vaults = {v["name"]: v for v in doc["vaults"]}
    [reward] = vaults[a.name]["outputs"]
    assert reward["coinbase"] and reward["block_hash"] == block and vaults[idle.name]["outputs"] == []
    assert doc["totals"]["difference"] == 0
    r = reserve.run("attest", "verify", str(tmp_path / "att.json"), "--node")
    assert r.code == 0, r.out


def test_a_height_above_the_tip_is_bad_input(reserve: Reserve, node: RegtestNode, db: Engine) -> None:
    funded(reserve, node)
    before = snapshot(db)
    r = reserve.run("attest", "--height", str(node.rpc().get_block_count() + 5))
    assert r.code == 2 and "not on the node's best chain" in r.err
    assert snapshot(db) == before


def test_an_unloaded_vault_wallet_stops_the_attestation(
    reserve: Reserve, node: RegtestNode, db: Engine
) -> None:
    a, _ = funded(reserve, node)
    node.rpc().call("unloadwallet", vault_wallet_name(a.name))
    before = snapshot(db)
    try:
        r = reserve.run("attest", "--json")
    finally:
        node.rpc().loadwallet(vault_wallet_name(a.name))
    assert r.code == 2 and json.loads(r.out)["error"]["code"] == "wallet-not-found", r.out
    assert f"reserve vault watch {a.name}" in r.out
    assert snapshot(db) == before  # gathered before writing: no checkpoint, no record


# --- tampering: every field class, refused naming what ---------------------------------------------


def _first_output(d: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = d["vaults"][0]["outputs"][0]
    return out


def _flip(hex_text: str, at: int) -> str:
    return hex_text[:at] + ("0" if hex_text[at] != "0" else "1") + hex_text[at + 1 :]


TAMPERS: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "amount": (lambda d: _first_output(d).__setitem__("amount", _first_output(d)["amount"] + 1), "outputs"),
    "txid": (lambda d: _first_output(d).__setitem__("txid", _flip(_first_output(d)["txid"], 10)), "outputs"),
    "transaction": (
        lambda d: d["transactions"].__setitem__(
            next(iter(d["transactions"])), _flip(next(iter(d["transactions"].values())), 20)
        ),
        "transactions",
    ),
    "proof": (
        lambda d: d["proofs"].__setitem__(
            next(iter(d["proofs"])), _flip(next(iter(d["proofs"].values())), 200)
        ),
        "proofs",
    ),
    "header": (lambda d: d["headers"]["hex"].__setitem__(0, _flip(d["headers"]["hex"][0], 80)), "headers"),
    "block hash": (lambda d: d.__setitem__("block_hash", _flip(d["block_hash"], 5)), "headers"),
    "checkpoint": (
        lambda d: d["ledger"]["checkpoint"].__setitem__(
            "timestamp", d["ledger"]["checkpoint"]["timestamp"] + 1
        ),
        "checkpoint",
    ),
    "ledger entries": (lambda d: d["ledger"]["entries"].pop(), "checkpoint"),
    "balances": (
        lambda d: d["ledger"]["balances"].__setitem__(d["vaults"][0]["account"], 1),
        "balances",
    ),
    "sums": (lambda d: d["totals"].__setitem__("chain", d["totals"]["chain"] + 1), "sums"),
    "difference": (lambda d: d["vaults"][0].__setitem__("difference", 5), "sums"),
    "descriptor": (
        lambda d: d["vaults"].__setitem__(0, {**d["vaults"][0], "descriptor": d["vaults"][1]["descriptor"]}),
        "outputs",
    ),
}


def test_every_tampered_field_class_is_refused_naming_it(
    reserve: Reserve, node: RegtestNode, tmp_path: Path
) -> None:
    funded(reserve, node)
    doc = attest_to(reserve, tmp_path / "att.json")
    key, pems = keys(reserve)
    assert verify_attestation(doc, pems).ok
    for what, (tamper, check) in TAMPERS.items():
        changed = copy.deepcopy(doc)
        tamper(changed)
        # as found: the ledger's signature no longer covers it
        result = verify_attestation(changed, pems)
        assert "signature" in result.failed, (what, result.lines())
        # re-signed by the ledger's own key (a lying operator): the named check still refuses it
        resigned = verify_attestation(sign_document(changed, key), pems)
        assert check in resigned.failed, (what, resigned.lines())
        assert "signature" not in resigned.failed, what
        path = tmp_path / f"tampered-{what.replace(' ', '-')}.json"
        path.write_text(json.dumps(sign_document(changed, key)))
        r = reserve.run("attest", "verify", str(path))
        assert r.code == 1 and f"FAIL  {check}:" in r.out, (what, r.out)
    # the signature itself
    forged = copy.deepcopy(doc)
    forged["signature"]["signature"] = _flip(forged["signature"]["signature"], 3)
    assert verify_attestation(forged, pems).failed == ("signature",)
    other = Ed25519PrivateKey.generate()
    assert "signature" in verify_attestation(sign_document(doc, other), pems).failed


def test_an_attestation_for_another_block_is_refused(
    reserve: Reserve, node: RegtestNode, tmp_path: Path
) -> None:
    funded(reserve, node)
    doc = attest_to(reserve, tmp_path / "att.json")
    node.mine(2)
    later = attest_to(reserve, tmp_path / "later.json")
    key, pems = keys(reserve)
    # the old document presented as the later block: the headers end elsewhere
    moved = copy.deepcopy(doc)
    moved["height"], moved["block_hash"] = later["height"], later["block_hash"]
    assert "headers" in verify_attestation(sign_document(moved, key), pems).failed
    # the later document's height and headers with the earlier block's hash
    back = copy.deepcopy(later)
    back["block_hash"] = doc["block_hash"]
    assert "headers" in verify_attestation(sign_document(back, key), pems).failed
    # a block no longer on the node's best chain: offline still valid, --node refuses it
    tip = later["block_hash"]
    node.rpc().call("invalidateblock", tip)
    try:
        node.mine(2)
        r = reserve.run("attest", "verify", str(tmp_path / "later.json"), "--node")
    finally:
        node.rpc().call("reconsiderblock", tip)  # a shorter branch: the best chain stays
    assert r.code == 1 and f"block {tip} at height {later['height']} is not on the node's best chain" in r.out


def test_a_changed_stored_attestation_is_reported(reserve: Reserve, node: RegtestNode, db: Engine) -> None:
    funded(reserve, node)
    reserve.ok("attest")
    assert reserve.ok("attest", "list").code == 0
    with db.begin() as c:  # a tamperer with the owner's rights
        for statement in drop_append_only_ddl(db.dialect.name, "attestations"):
            c.execute(text(statement))
        c.execute(text("UPDATE attestations SET height = height - 1"))
    r = reserve.run("attest", "list")
    assert r.code == 1 and "differs from its log record" in r.out, r.out
