"""Governed changes, attack style: a loosening takes effect only with the vault's threshold of
distinct holders' approvals (BIP-322 signatures through the PSBT flow) and after the loosen delay
counted from their quorum; tightening is immediate; approvals verify offline; bad input changes
nothing. On SQLite and PostgreSQL against the session's regtest node, holders as DemoSigners.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
from pathlib import Path
from typing import Any

from sqlalchemy.orm import Session

from custody.descriptor import MultisigDescriptor
from custody.keygen import test_key_from_seed
from custody.network import Network
from custody.psbt import Psbt
from ledger.governance import verify_approval
from ledger.governance.changes import acknowledged
from ledger.journal.records import RecordKind, append_record
from ledger.store.db import make_engine
from regtest.node import RegtestNode
from tests.fixtures.governance import approve, propose, sign_change
from tests.fixtures.reserve import Reserve
from tests.fixtures.reserve import TestVault as Vault
from tests.integration.test_address_issuance import book_state

LOOSEN_DELAY = 144


def limits(reserve: Reserve, vault: Vault) -> dict[str, Any]:
    shown: dict[str, Any] = reserve.ok("policy", "show", vault.name, "--json").json()["limits"]
    return shown


def import_files(reserve: Reserve, change: int, *files: Path) -> Any:
    return reserve.run("approve", "sign", str(change), *map(str, files), "--json")


def test_a_loosening_needs_the_threshold_of_distinct_holders_then_waits_the_delay(
    reserve: Reserve, node: RegtestNode
) -> None:
    v = reserve.add_vault("gov")
    other = reserve.add_vault("stranger")
    proposed = propose(reserve, "policy", "set", v.name, "--max-fee", "0.02")  # default 0.01: loosens
    number = proposed["change"]
    assert proposed["status"] == "pending" and proposed["threshold"] == 2
    assert proposed["message"].startswith("reserve-ledger governance v1\nnetwork: regtest\n")
    assert limits(reserve, v)["max_fee_sat"] == 1_000_000
    shown = reserve.ok("policy", "show", v.name, "--json").json()
    assert [c["change"] for c in shown["awaiting_approval"]] == [number]
    assert f"awaiting approval: change {number}: loosen max-fee" in reserve.ok("policy", "show", v.name).out

    # one holder: recorded, nothing applied; the same holder again counts once
    (first,) = sign_change(reserve.node, v, Path(proposed["psbt_file"]), "ministry")
    r = import_files(reserve, number, first).json()
    assert r["added"] == ["ministry"] and r["status"] == "pending"
    again = import_files(reserve, number, first, first).json()
    assert again["added"] == [] and again["already"] == ["ministry"] and again["status"] == "pending"
    assert limits(reserve, v)["max_fee_sat"] == 1_000_000

    before = book_state(reserve.db_url)
    # a signature over another change's bytes: the PSBT is another transaction
    decoy = propose(reserve, "policy", "set", v.name, "--max-fee", "0.03")
    before = book_state(reserve.db_url)
    (other_bytes,) = sign_change(reserve.node, v, Path(decoy["psbt_file"]), "central-bank")
    r = import_files(reserve, number, other_bytes)
    assert r.code == 2 and "not change" in r.json()["error"]["message"]
    # another vault's key: its signature pasted into this change's PSBT
    theirs = propose(reserve, "policy", "set", other.name, "--max-fee", "0.02")
    (foreign,) = sign_change(reserve.node, other, Path(theirs["psbt_file"]), "central-bank")
    before = book_state(reserve.db_url)
    pasted = Psbt.parse(Path(proposed["psbt_file"]).read_text()).with_partial_sigs(
        0, Psbt.parse(foreign.read_text()).inputs[0].partial_sigs
    )
    forged = reserve.key_path.parent / "forged.psbt"
    forged.write_text(pasted.to_base64())
    r = import_files(reserve, number, forged)
    assert r.code == 2 and r.json()["error"]["code"] == "policy-violation"
    assert "not one of the script's keys" in r.json()["error"]["message"]
    # a signature of the right key over other bytes (a corrupted signature)
    (good,) = sign_change(reserve.node, v, Path(proposed["psbt_file"]), "central-bank")
    psbt = Psbt.parse(good.read_text())
    ((key, sig),) = [(k, s) for k, s in psbt.inputs[0].partial_sigs]
    bad_sig = sig[:10] + bytes([sig[10] ^ 1]) + sig[11:]
    corrupted = psbt.with_partial_sigs(0, ())
    corrupted = dataclasses.replace(
        corrupted, inputs=(dataclasses.replace(corrupted.inputs[0], partial_sigs=((key, bad_sig),)),)
    )
    forged.write_text(corrupted.to_base64())
    assert import_files(reserve, number, forged).code == 2
    assert reserve.run("approve", "sign", "999999", str(good)).code == 2
    assert book_state(reserve.db_url) == before  # nothing written by any refusal

    # the second distinct holder: quorum; in force the loosen delay after it
    r = import_files(reserve, number, good).json()
    assert r["added"] == ["central-bank"] and r["status"] == "applied"
    assert r["effective_height"] == r["applied_height"] + LOOSEN_DELAY
    assert limits(reserve, v)["max_fee_sat"] == 1_000_000
    # a stale change: once applied, it takes no more approvals
    (late,) = sign_change(reserve.node, v, Path(proposed["psbt_file"]), "regulator")
    before = book_state(reserve.db_url)
    r = import_files(reserve, number, late)
    assert r.code == 2 and "takes no more approvals" in r.json()["error"]["message"]
    assert book_state(reserve.db_url) == before
    # tightening: at once, no approval
    tight = reserve.ok("policy", "set", v.name, "--max-per-spend", "1", "--json").json()
    assert tight["proposed"] is None and limits(reserve, v)["max_per_spend_sat"] == 100_000_000
    node.mine(LOOSEN_DELAY)
    assert limits(reserve, v)["max_fee_sat"] == 2_000_000

    # the approvals verify offline; a changed document does not
    doc = reserve.key_path.parent / "approvals.json"
    reserve.ok("approve", "show", str(number), "--export", str(doc))
    assert verify_approval.main([str(doc)]) == 0
    data = json.loads(doc.read_text())
    change = json.loads(data["change"]["memo"])
    change["params"]["fields"]["max-fee"] = 100_000_000
    data["change"]["memo"] = json.dumps(change, sort_keys=True, separators=(",", ":"))
    doc.write_text(json.dumps(data))
    assert verify_approval.main([str(doc)]) == 1
    data = json.loads(doc.read_text())
    data["approvals"] = data["approvals"][:1]
    doc.write_text(json.dumps(data))
    assert verify_approval.main([str(doc)]) == 1
    doc.write_text(doc.read_text().replace('"format"', '"format": "x", "format"', 1))
    assert verify_approval.main([str(doc)]) == 1  # a duplicated key


def test_a_holder_with_two_keys_counts_once(reserve: Reserve, node: RegtestNode) -> None:
    """A 3-of-4 whose ministry holds two keys: ministry's two signatures and central-bank's are two
    holders, not the three needed."""
    holders = ("ministry", "ministry", "central-bank", "regulator")
    seeds = [secrets.token_bytes(32) for _ in holders]
    keys = [test_key_from_seed(s, Network.REGTEST) for s in seeds]
    name = f"twokeys-{secrets.token_hex(3)}"
    reserve.ok(
        "vault",
        "add",
        name,
        "--threshold",
        "3",
        *(f"--key={h}={k}" for h, k in zip(holders, keys, strict=True)),
    )
    signers = ("ministry", "ministry-2", "central-bank", "regulator")  # one signing wallet per key
    v = Vault(
        name,
        dict(zip(signers, seeds, strict=True)),
        dict(zip(signers, keys, strict=True)),
        MultisigDescriptor.from_keys(3, tuple(keys)),
    )
    address = str(node.miner().call("getnewaddress"))
    proposed = propose(reserve, "policy", "allow", "add", name, "exchange", "--address", address)
    files = sign_change(
        reserve.node, v, Path(proposed["psbt_file"]), "ministry", "ministry-2", "central-bank"
    )
    r = import_files(reserve, proposed["change"], *files).json()
    assert r["added"] == ["ministry", "central-bank"] and r["status"] == "pending"
    assert approve(reserve, v, proposed, ("regulator",))["status"] == "applied"


def test_a_forged_approval_record_is_tamper_detected(reserve: Reserve) -> None:
    """A role that can INSERT appends an approval record: read, its signature does not verify."""
    v = reserve.add_vault("forge")
    proposed = propose(reserve, "policy", "set", v.name, "--max-fee", "0.02")
    engine = make_engine(reserve.runtime_url)
    try:
        with Session(engine) as s, s.begin():
            for name in ("ministry", "regulator"):
                body = {
                    "change": proposed["change"],
                    "vault": v.name,
                    "digest": proposed["digest"],
                    "holder": name,
                    "key": "02" + "11" * 32,
                    "signature": "30" * 8,
                }
                append_record(s, RecordKind.APPROVAL, body)
    finally:
        engine.dispose()
    r = reserve.run("approve", "list", "--json")
    assert r.code == 2 and r.json()["error"]["code"] == "tamper-detected"
    r = reserve.run("ledger", "verify")
    assert r.code == 1 and "does not verify" in r.out + r.err


def test_a_new_vault_is_no_destination_until_the_paying_vaults_holders_approve(
    reserve: Reserve, node: RegtestNode, tmp_path: Path
) -> None:
    payer = reserve.add_vault("payer")
    new = reserve.add_vault("new")  # two made-up holders would do: it can receive at once
    node.fund(payer.address(), 100_000_000)
    reserve.ok("sync")

    def create(dest: str) -> Any:
        pay = ("--pay", f"{dest}=0.1", "--memo", "m", "--out", str(tmp_path))
        return reserve.run("spend", "create", "--vault", payer.name, *pay)

    before = book_state(reserve.db_url)
    for dest in (new.name, new.address(7)):
        r = create(dest)
        assert (
            r.code == 2 and f"vault {new.name} is not an approved destination of vault {payer.name}" in r.err
        )
    assert book_state(reserve.db_url) == before
    # the new vault's own holders cannot make it a destination of the payer
    r = reserve.run("policy", "destination", "add", new.name, payer.name, "--out", str(tmp_path), "--json")
    theirs = r.json()["proposed"]
    assert approve(reserve, new, theirs)["status"] == "applied"
    assert create(new.name).code == 2

    proposed = propose(reserve, "policy", "destination", "add", payer.name, new.name)
    assert approve(reserve, payer, proposed, ("ministry",))["status"] == "pending"
    assert create(new.name).code == 2
    done = approve(reserve, payer, proposed, ("regulator",))
    assert done["status"] == "applied" and done["effective_height"] == done["applied_height"] + LOOSEN_DELAY
    r = create(new.name)
    assert r.code == 2 and f"still in its delay until height {done['effective_height']}" in r.err
    node.mine(LOOSEN_DELAY)
    created = reserve.ok(
        "spend", "create", "--vault", payer.name, "--pay", f"{new.name}=0.1", "--memo", "m",
        "--out", str(tmp_path), "--json",
    ).json()  # fmt: skip
    assert [d["kind"] for d in created["destinations"]] == ["vault"]

    # removed: at once, no approval; the open spend no longer passes the gate
    reserve.ok("policy", "destination", "remove", payer.name, new.name)
    shown = reserve.ok("spend", "show", str(created["spend"]), "--json").json()
    outputs = next(r for r in shown["rules"] if r["rule"] == "outputs")
    assert not outputs["ok"] and "not an approved destination" in outputs["detail"]
    assert "destination" in reserve.ok("approve", "list", "--all").out


def test_retirement_and_acknowledgement_wait_for_the_holders(reserve: Reserve, node: RegtestNode) -> None:
    v = reserve.add_vault("old")
    other = reserve.add_vault("next")
    pending = propose(reserve, "policy", "destination", "add", v.name, other.name)
    txid = "ab" * 32
    before = book_state(reserve.db_url)
    for bad in (("zz" * 32, "r"), (txid, " "), (txid, "a\x1bb")):
        r = reserve.run("approve", "acknowledge", v.name, bad[0], "--reason", bad[1])
        assert r.code == 2, r.out
    assert book_state(reserve.db_url) == before
    ack = propose(
        reserve, "approve", "acknowledge", v.name, txid.upper(), "--reason", "the holders' own sweep"
    )
    assert ack["params"] == {"txid": txid, "reason": "the holders' own sweep"}
    engine = make_engine(reserve.db_url)
    try:
        with Session(engine) as s:
            assert acknowledged(s) == frozenset()
        assert approve(reserve, v, ack)["status"] == "applied"
        with Session(engine) as s:
            assert acknowledged(s) == {(v.name, txid)}
    finally:
        engine.dispose()

    retiring = propose(reserve, "vault", "retire", v.name, "--reason", "keys rotated")
    assert approve(reserve, v, retiring, ("ministry",))["status"] == "pending"
    assert v.name in {x["name"] for x in reserve.ok("vault", "list", "--json").json()}
    assert approve(reserve, v, retiring, ("central-bank",))["status"] == "applied"
    assert v.name not in {x["name"] for x in reserve.ok("vault", "list", "--json").json()}
    # a retired vault's pending changes take no more approvals
    (late,) = sign_change(reserve.node, v, Path(pending["psbt_file"]), "regulator")
    r = import_files(reserve, pending["change"], late)
    assert r.code == 2 and "retired" in r.json()["error"]["message"]


def test_a_0006_database_upgrades_in_place_and_takes_governance_records(db_url: str) -> None:
    from ledger.store.migrate import current_revision, upgrade
    from tests.fixtures.db import snapshot

    engine = make_engine(db_url)
    try:
        upgrade(engine, "0006_tree_heads")
        with Session(engine) as s, s.begin():
            append_record(s, RecordKind.POLICY_CHANGED, {"vault": "v", "change": "set"})
        before = snapshot(engine)
        upgrade(engine)
        assert current_revision(engine) == "0007_governance"
        assert snapshot(engine) == before  # every row as it was
        with Session(engine) as s, s.begin():
            entry = append_record(s, RecordKind.APPROVAL, {"change": 1, "vault": "v"})
        assert entry.seq == 2
    finally:
        engine.dispose()
