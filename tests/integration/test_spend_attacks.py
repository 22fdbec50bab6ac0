"""Spends attacked as a real chain, a careless user and a hostile one would: rows edited behind the
application's back, signed files replayed or signed with other sighash types, proposals racing for
one coin, a spend's block reorganised away, limits spread over several spends, bad numbers and
text. Each is refused with its reason or settles once. SQLite and PostgreSQL, the session's
regtest node; waits poll the node with a deadline."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bip_utils import Bip32KeyNetVersions, Bip32Secp256k1
from coincurve import PrivateKey
from sqlalchemy import Engine, text

from custody.network import Network
from custody.psbt import Psbt
from custody.rpc import RpcClient
from custody.sighash import SECP256K1_ORDER, SIGHASH_ALL, segwit_v0_sighash, verify_ecdsa
from custody.wallet import vault_wallet_name
from regtest.node import RegtestNode
from regtest.signers import DemoSigner
from tests.fixtures.governance import approve, governed, propose, retire
from tests.fixtures.reserve import Reserve
from tests.integration.test_spend_lifecycle import Setup, count, funded_vault, mempool, signed_by
from tests.integration.test_spend_refusals import proposal, refused

BTC = 100_000_000


@pytest.fixture
def db(reserve: Reserve) -> Iterator[Engine]:
    engine = reserve.engine()
    yield engine
    engine.dispose()


def show(reserve: Reserve, number: int) -> dict[str, Any]:
    shown: dict[str, Any] = reserve.ok("spend", "show", str(number), "--json").json()
    return shown


def signed_spend(reserve: Reserve, node: RegtestNode, tmp_path: Path, setup: Setup, *pay: str) -> int:
    """A proposal signed by two holders (quorum)."""
    number, psbt_file = proposal(reserve, tmp_path, setup, *pay)
    files = signed_by(node, setup, psbt_file, tmp_path, "ministry", "regulator")
    reserve.ok("spend", "sign", str(number), *map(str, files))
    return number


def event_row(db: Engine, number: int, state: str) -> dict[str, Any]:
    with db.connect() as c:
        row = c.execute(
            text("SELECT * FROM spend_events WHERE spend = :n AND state = :s ORDER BY step DESC"),
            {"n": number, "s": state},
        ).first()
    assert row is not None, (number, state)
    return dict(row._mapping)


def protection_off(db: Engine) -> None:
    """What a tamperer with the owner's access does first, to the spending tables too."""
    from ledger.store.db import drop_append_only_ddl
    from ledger.store.spend_models import SPEND_TABLES

    with db.begin() as c:
        for table in SPEND_TABLES:
            if db.dialect.name == "postgresql":
                c.exec_driver_sql(f"ALTER TABLE {table} DISABLE TRIGGER USER")
            else:
                for statement in drop_append_only_ddl("sqlite", table):
                    c.exec_driver_sql(statement)


def execute(db: Engine, sql: str, **params: Any) -> None:
    with db.begin() as c:
        c.execute(text(sql), params)


# --- rows edited behind the application's back ------------------------------------------------------


def test_spend_rows_edited_behind_the_applications_back_stop_the_gate(
    reserve: Reserve, node: RegtestNode, db: Engine, tmp_path: Path
) -> None:
    setup = funded_vault(reserve, node)
    v = setup.vault.name
    reserve.ok("policy", "set", v, "--delay-above", "0.1", "--delay-blocks", "20")
    number = signed_spend(reserve, node, tmp_path, setup)
    why = refused(reserve, db, node, setup, "spend", "broadcast", str(number), code=1)
    assert "delay" in why
    protection_off(db)

    # 1. the quorum height moved back past the delay: the broadcast must not believe it
    signed = event_row(db, number, "signed")
    detail = json.loads(signed["detail"])
    detail["quorum_height"] -= 50
    execute(
        db,
        "UPDATE spend_events SET detail = :d WHERE id = :i",
        d=json.dumps(detail, sort_keys=True, separators=(",", ":")),
        i=signed["id"],
    )
    why = refused(reserve, db, node, setup, "spend", "broadcast", str(number))
    assert "tamper" in why and f"spend {number}" in why and "detail" in why, why
    execute(db, "UPDATE spend_events SET detail = :d WHERE id = :i", d=signed["detail"], i=signed["id"])

    # 2. the stored PSBT replaced (the proposal's, without its signatures) with its digest
    proposed = event_row(db, number, "proposed")
    execute(
        db,
        "UPDATE spend_events SET psbt = :p WHERE id = :i",
        p=proposed["psbt"],
        i=signed["id"],
    )
    why = refused(reserve, db, node, setup, "spend", "broadcast", str(number))
    assert "tamper" in why and "PSBT" in why, why
    execute(
        db,
        "UPDATE spend_events SET psbt = :p, psbt_sha256 = :h WHERE id = :i",
        p=proposed["psbt"],
        h=proposed["psbt_sha256"],
        i=signed["id"],
    )
    why = refused(reserve, db, node, setup, "spend", "broadcast", str(number))
    assert "tamper" in why, why
    execute(
        db,
        "UPDATE spend_events SET psbt = :p, psbt_sha256 = :h WHERE id = :i",
        p=signed["psbt"],
        h=signed["psbt_sha256"],
        i=signed["id"],
    )

    # 3. a coin of the open spend freed by deleting its spend_inputs row: no proposal may take it
    coin = Psbt.parse(proposed["psbt"]).tx.inputs[0]
    execute(db, "DELETE FROM spend_inputs WHERE spend = :n AND txid = :t", n=number, t=coin.txid)
    why = refused(
        reserve,
        db,
        node,
        setup,
        "spend",
        "create",
        "--vault",
        v,
        "--pay",
        "exchange=0.05",
        "--input",
        coin.outpoint,
        "--fee-rate",
        "2",
        "--memo",
        "m",
        "--out",
        str(tmp_path),
    )
    assert "tamper" in why and coin.outpoint in why, why
    execute(
        db,
        "INSERT INTO spend_inputs (spend, txid, vout) VALUES (:n, :t, :o)",
        n=number,
        t=coin.txid,
        o=coin.vout,
    )

    # 4. a broadcast spend's event deleted (its amount would leave the velocity count)
    node.mine(20)  # the delay, really waited out
    reserve.ok("spend", "broadcast", str(number))
    broadcast = event_row(db, number, "broadcast")
    execute(db, "DELETE FROM spend_events WHERE id = :i", i=broadcast["id"])
    why = refused(
        reserve,
        db,
        node,
        setup,
        "spend",
        "create",
        "--vault",
        v,
        "--pay",
        "exchange=0.05",
        "--fee-rate",
        "2",
        "--memo",
        "m",
        "--out",
        str(tmp_path),
    )
    assert "tamper" in why and "deleted" in why, why
    assert count(db, "spend_events") == 2


# --- signed files replayed, re-signed, mixed up, or signed with another sighash type ----------------


def holder_signature(psbt: Psbt, signer: DemoSigner, nonce: int) -> tuple[bytes, bytes]:
    """(pubkey, signature) of ``signer`` on input 0 of ``psbt``, SIGHASH_ALL, with its own nonce:
    a second valid signature of the same key (bitcoind's are deterministic)."""
    d = psbt.inputs[0].derivations[0]
    branch, index = d.path[-2:]
    versions = Bip32KeyNetVersions(Network.REGTEST.xpub_version, Network.REGTEST.xprv_version)
    account = Bip32Secp256k1.FromExtendedKey(signer.private_expression().split("]")[1], versions)
    child = account.ChildKey(branch).ChildKey(index)
    key = PrivateKey(bytes(child.PrivateKey().Raw().ToBytes()))
    utxo = psbt.input_utxo(0)
    assert utxo is not None and psbt.inputs[0].witness_script is not None
    digest = segwit_v0_sighash(psbt.tx, 0, psbt.inputs[0].witness_script, utxo.value, SIGHASH_ALL)
    pubkey, der = bytes(key.public_key.format()), ecdsa_der(key.secret, digest, nonce)
    assert verify_ecdsa(pubkey, der, digest)
    return pubkey, der + bytes([SIGHASH_ALL])


def ecdsa_der(secret: bytes, digest: bytes, nonce: int) -> bytes:
    """An ECDSA signature (low S, strict DER) with the nonce ``nonce`` (test only)."""
    r = int.from_bytes(PrivateKey.from_int(nonce).public_key.format(compressed=False)[1:33], "big")
    r %= SECP256K1_ORDER
    s = pow(nonce, -1, SECP256K1_ORDER) * (int.from_bytes(digest, "big") + r * int.from_bytes(secret, "big"))
    s %= SECP256K1_ORDER
    s = min(s, SECP256K1_ORDER - s)

    def integer(n: int) -> bytes:
        raw = n.to_bytes(33, "big").lstrip(b"\0")
        raw = b"\0" + raw if raw[0] & 0x80 else raw
        return bytes([2, len(raw)]) + raw

    body = integer(r) + integer(s)
    return bytes([0x30, len(body)]) + body


def test_signed_files_replayed_mixed_up_or_with_other_sighash_types(
    reserve: Reserve, node: RegtestNode, db: Engine, tmp_path: Path
) -> None:
    setup = funded_vault(reserve, node)
    one, file1 = proposal(reserve, tmp_path, setup, "--pay", "exchange=0.3")
    two, file2 = proposal(reserve, tmp_path, setup, "--pay", "exchange=0.4")
    n1 = str(one)

    # other sighash types: never counted, the whole file refused
    for kind in ("NONE", "SINGLE", "ALL|ANYONECANPAY", "NONE|ANYONECANPAY", "SINGLE|ANYONECANPAY"):
        wallet = setup.signers["ministry"].wallet(node.rpc())
        signed = wallet.call("walletprocesspsbt", file1.read_text().strip(), True, kind, True, False)
        odd = tmp_path / f"odd-{kind.replace('|', '-')}.psbt"
        odd.write_text(signed["psbt"])
        assert Psbt.parse(odd.read_text()).inputs[0].partial_sigs, kind
        why = refused(reserve, db, node, setup, "spend", "sign", n1, str(odd))
        assert "sighash type" in why, (kind, why)

    # spend #1's file into spend #2: another transaction
    [m1] = signed_by(node, setup, file1, tmp_path, "ministry")
    why = refused(reserve, db, node, setup, "spend", "sign", str(two), str(m1))
    assert "differs from spend proposal" in why

    # the same file twice, at once and later: one signature, one event
    added = reserve.ok("spend", "sign", n1, str(m1), str(m1), "--json").json()["added"]
    assert [a["holder"] for a in added] == ["ministry"]
    events = count(db, "spend_events")
    assert "no new signature" in reserve.ok("spend", "sign", n1, str(m1)).out
    assert count(db, "spend_events") == events

    # the holder signs again with another valid signature: the first one stays, it counts once
    psbt = Psbt.parse(file1.read_text())
    again = psbt.with_partial_sigs(0, [holder_signature(psbt, setup.signers["ministry"], 0x7777)])
    [(_, other_sig)] = again.inputs[0].partial_sigs
    [(_, first_sig)] = Psbt.parse(m1.read_text()).inputs[0].partial_sigs
    assert other_sig != first_sig
    resigned = tmp_path / "resigned.psbt"
    resigned.write_text(again.to_base64())
    assert "no new signature" in reserve.ok("spend", "sign", n1, str(resigned)).out
    assert count(db, "spend_events") == events
    why = refused(reserve, db, node, setup, "spend", "broadcast", n1, code=1)
    assert "approvals" in why and "1 more signature" in why

    # quorum, broadcast; then everything after it is refused
    [r1] = signed_by(node, setup, file1, tmp_path, "regulator")
    reserve.ok("spend", "sign", n1, str(r1))
    reserve.ok("spend", "broadcast", n1)
    assert "broadcast already" in refused(reserve, db, node, setup, "spend", "broadcast", n1)
    assert "on the network" in refused(reserve, db, node, setup, "spend", "cancel", n1, "--reason", "r")
    [c1] = signed_by(node, setup, file1, tmp_path, "central-bank")
    assert "on the network" in refused(reserve, db, node, setup, "spend", "sign", n1, str(c1))

    # a cancelled spend takes no signature and is never broadcast
    reserve.ok("spend", "cancel", str(two), "--reason", "not needed")
    files = signed_by(node, setup, file2, tmp_path, "ministry", "regulator")
    assert "cancelled" in refused(reserve, db, node, setup, "spend", "sign", str(two), *map(str, files))
    assert "cancelled" in refused(reserve, db, node, setup, "spend", "broadcast", str(two))
    assert "cancelled already" in refused(
        reserve, db, node, setup, "spend", "cancel", str(two), "--reason", "r"
    )


# --- proposals racing for the same coins ----------------------------------------------------------------


def run_cli(node: RegtestNode, key_path: Path, *args: str) -> subprocess.Popen[str]:
    """``reserve ARGS`` in a process of its own (the database URLs from the environment)."""
    argv = [
        str(Path(sys.executable).with_name("reserve")),
        "--signing-key",
        str(key_path),
        "--rpc-url",
        node.rpc_url,
        "--rpc-cookie",
        str(node.cookie_path),
        *args,
    ]
    return subprocess.Popen(
        argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=dict(os.environ)
    )


def open_holds(db: Engine) -> list[tuple[str, int]]:
    with db.connect() as c:
        rows = c.execute(
            text(
                "SELECT i.txid, i.vout FROM spend_inputs i WHERE NOT EXISTS (SELECT 1 FROM spend_events e "
                "WHERE e.spend = i.spend AND e.state IN ('cancelled', 'confirmed', 'conflicted'))"
            )
        ).all()
    return [(str(t), int(v)) for t, v in rows]


@pytest.mark.parametrize("coin_control", [True, False])
def test_concurrent_proposals_never_share_a_coin(
    reserve: Reserve, node: RegtestNode, db: Engine, tmp_path: Path, coin_control: bool
) -> None:
    setup = funded_vault(reserve, node)
    wallet = node.rpc().wallet(vault_wallet_name(setup.vault.name))
    coins = [(str(u["txid"]), int(u["vout"])) for u in wallet.call("listunspent")]
    assert len(coins) == 2
    # each needs both coins (1.5 BTC), or names the first one
    pay = (
        ["--pay", "exchange=0.5", "--input", f"{coins[0][0]}:{coins[0][1]}"]
        if coin_control
        else [
            "--pay",
            "exchange=1.5",
        ]
    )
    procs = [
        run_cli(
            node,
            reserve.key_path,
            "spend",
            "create",
            "--vault",
            setup.vault.name,
            *pay,
            "--fee-rate",
            "2",
            "--memo",
            f"race {n}",
            "--out",
            str(tmp_path),
        )
        for n in range(4)
    ]
    results = [(p.wait(timeout=120), *p.communicate()) for p in procs]
    won = [r for r in results if r[0] == 0]
    assert len(won) == 1, results
    for code, out, err in results:
        if code:
            assert code == 2 and (
                "taken by another proposal" in err
                or "held by open spend" in err
                or "cannot be locked" in err
                or "cannot pay" in err
            ), (code, out, err)
    held = open_holds(db)
    assert len(held) == len(set(held)), held
    assert count(db, "spend_events") == 1
    locked = {(str(o["txid"]), int(o["vout"])) for o in wallet.call("listlockunspent")}
    assert set(held) <= locked, (held, locked)
    [spend] = reserve.ok("spend", "list", "--json").json()["spends"]
    assert spend["state"] == "proposed"


# --- the chain: reorganisations, no -txindex ------------------------------------------------------------


@pytest.fixture
def node(request: pytest.FixtureRequest, node_with_txindex: RegtestNode) -> RegtestNode:
    """The session's node with ``-txindex``, or (``indirect`` parameter ``no-txindex``) without."""
    if getattr(request, "param", "txindex") == "no-txindex":
        chosen: RegtestNode = request.getfixturevalue("node_no_txindex")
        chosen.check_alive()
        return chosen
    return node_with_txindex


def wait_for(what: str, done: Any, timeout: float = 30.0) -> None:
    """Poll ``done()`` until true, failing with ``what`` after ``timeout`` seconds."""
    import time

    deadline = time.monotonic() + timeout
    while not done():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)  # a poll interval under a deadline, not a wait for something to happen


def entries_of(db: Engine, txid: str) -> list[int]:
    with db.connect() as c:
        return [
            int(s) for s in c.execute(text("SELECT seq FROM entries WHERE txid = :t"), {"t": txid}).scalars()
        ]


@pytest.mark.parametrize("node", ["txindex", "no-txindex"], indirect=True)
def test_a_spend_reorganised_out_and_mined_again_is_booked_and_settled_once(
    reserve: Reserve, node: RegtestNode, db: Engine, tmp_path: Path
) -> None:
    setup = funded_vault(reserve, node)
    number = signed_spend(reserve, node, tmp_path, setup)
    txid = reserve.ok("spend", "broadcast", str(number), "--json").json()["txid"]
    [block] = node.mine(1)
    reserve.ok("sync")
    assert show(reserve, number)["state"] == "confirmed"
    [seq] = entries_of(db, txid)

    # the block leaves the best chain: the transaction goes back to the mempool
    node.rpc().call("invalidateblock", block)
    wait_for("the spend back in the mempool", lambda: txid in mempool(node))
    reserve.ok("sync")
    assert entries_of(db, txid) == [seq]
    # ... and is mined in another block
    node.mine(2)
    wait_for("the spend mined again", lambda: txid not in mempool(node))
    reserve.ok("sync")
    reserve.ok("sync")
    assert entries_of(db, txid) == [seq]
    states = [e["state"] for e in show(reserve, number)["history"]]
    assert states.count("confirmed") == 1 and states[-1] == "confirmed", states

    # a second spend reorganised out before any sync settles once, when it is mined again
    two = signed_spend(reserve, node, tmp_path, setup, "--pay", "exchange=0.1")
    txid2 = reserve.ok("spend", "broadcast", str(two), "--json").json()["txid"]
    [block2] = node.mine(1)
    node.rpc().call("invalidateblock", block2)
    wait_for("the second spend back in the mempool", lambda: txid2 in mempool(node))
    reserve.ok("sync")
    assert show(reserve, two)["state"] == "broadcast" and entries_of(db, txid2) == []
    node.mine(1)
    reserve.ok("sync")
    reserve.ok("sync")
    assert len(entries_of(db, txid2)) == 1
    states = [e["state"] for e in show(reserve, two)["history"]]
    assert states.count("confirmed") == 1 and states[-1] == "confirmed", states


# --- limits spread over several spends, and policy changing under a proposal ----------------------------


def test_two_spends_broadcast_together_are_held_to_the_velocity_limit(
    reserve: Reserve, node: RegtestNode, db: Engine, tmp_path: Path
) -> None:
    setup = funded_vault(reserve, node)
    reserve.ok("policy", "set", setup.vault.name, "--velocity-limit", "0.5")
    one = signed_spend(reserve, node, tmp_path, setup, "--pay", "exchange=0.3")
    two = signed_spend(reserve, node, tmp_path, setup, "--pay", "exchange=0.3")
    reserve.ok("spend", "broadcast", str(one))
    why = refused(reserve, db, node, setup, "spend", "broadcast", str(two), code=1)
    assert "velocity" in why
    node.mine(1)
    reserve.ok("sync")  # booked: it still counts within the window
    why = refused(reserve, db, node, setup, "spend", "broadcast", str(two), code=1)
    assert "velocity" in why


def test_two_broadcasts_at_once_cannot_pass_the_velocity_limit_together(
    reserve: Reserve, node: RegtestNode, db: Engine, tmp_path: Path
) -> None:
    setup = funded_vault(reserve, node)
    reserve.ok("policy", "set", setup.vault.name, "--velocity-limit", "0.5")
    one = signed_spend(reserve, node, tmp_path, setup, "--pay", "exchange=0.3")
    two = signed_spend(reserve, node, tmp_path, setup, "--pay", "exchange=0.3")
    before = mempool(node)
    procs = [run_cli(node, reserve.key_path, "spend", "broadcast", str(n)) for n in (one, two)]
    results = [(p.wait(timeout=120), *p.communicate()) for p in procs]
    assert sorted(r[0] for r in results) == [0, 1], results
    [(_, _, why)] = [r for r in results if r[0] == 1]
    assert "velocity" in why, why
    assert len(mempool(node) - before) == 1
    states = sorted(x["state"] for x in reserve.ok("spend", "list", "--json").json()["spends"])
    assert states == ["broadcast", "signed"], states


def test_policy_changes_after_a_proposal_bind_its_broadcast(
    reserve: Reserve, node: RegtestNode, db: Engine, tmp_path: Path
) -> None:
    setup = funded_vault(reserve, node)
    v = setup.vault.name
    reserve.ok("policy", "set", v, "--max-per-spend", "0.6")
    number = signed_spend(reserve, node, tmp_path, setup)  # 0.5 to exchange
    # the allowlist entry removed (a tightening, at once): the broadcast is refused
    reserve.ok("policy", "allow", "remove", v, "exchange")
    why = refused(reserve, db, node, setup, "spend", "broadcast", str(number), code=1)
    assert "outputs" in why and setup.exchange in why
    reserve.ok("spend", "cancel", str(number), "--reason", "exchange removed")

    # a lower limit applies at once, a higher one only after the loosen delay
    governed(reserve, setup.vault, "policy", "allow", "add", v, "exchange2", "--address", setup.exchange)
    node.mine(144)
    two = signed_spend(reserve, node, tmp_path, setup, "--pay", "exchange2=0.5")
    reserve.ok("policy", "set", v, "--max-per-spend", "0.3")
    why = refused(reserve, db, node, setup, "spend", "broadcast", str(two), code=1)
    assert "max-per-spend" in why
    proposed = propose(reserve, "policy", "set", v, "--max-per-spend", "0.6")  # loosening: governed
    why = refused(reserve, db, node, setup, "spend", "broadcast", str(two), code=1)
    assert "max-per-spend" in why
    node.mine(144)  # no approval yet: still refused
    why = refused(reserve, db, node, setup, "spend", "broadcast", str(two), code=1)
    assert "max-per-spend" in why
    approve(reserve, setup.vault, proposed)
    why = refused(reserve, db, node, setup, "spend", "broadcast", str(two), code=1)
    assert "max-per-spend" in why  # approved: waits the loosen delay from the quorum
    node.mine(144)
    reserve.ok("spend", "broadcast", str(two))


# --- bad numbers and text, unknown and retired vaults ------------------------------------------------------


def test_bad_amounts_text_and_vaults_are_refused(
    reserve: Reserve, node: RegtestNode, db: Engine, tmp_path: Path
) -> None:
    setup = funded_vault(reserve, node)
    v = setup.vault.name
    out = str(tmp_path)

    def create_refused(*args: str, code: int = 2) -> str:
        return refused(
            reserve, db, node, setup, "spend", "create", "--fee-rate", "2", "--out", out, *args, code=code
        )

    for amount in ("-0.1", "0", "0.000000001", "21000000.00000001", "1e3", "9" * 40, "nan", "0x10", ""):
        why = create_refused("--vault", v, "--pay", f"exchange={amount}", "--memo", "m")
        assert "amount" in why.lower() or "DEST=AMOUNT" in why, (amount, why)
    why = create_refused("--vault", v, "--pay", "exchange=20000000", "--memo", "m")
    assert "cannot pay" in why, why
    for memo in ("a\x1b[31mred", "line\nbreak", "nul\x00", "   "):
        why = create_refused("--vault", v, "--pay", "exchange=0.1", "--memo", memo)
        assert "memo" in why, (memo, why)
    for rate in ("0", "-1", "1.0001", "1e2", "inf", "100000000"):
        why = create_refused("--vault", v, "--pay", "exchange=0.1", "--fee-rate", rate, "--memo", "m")
        assert "fee-rate" in why, (rate, why)
    assert "unknown vault" in create_refused("--vault", "nosuch", "--pay", "exchange=0.1", "--memo", "m")
    why = create_refused("--vault", v, "--pay", f"{v}=0.1", "--memo", "m")
    assert "does not pay itself" in why

    number, _ = proposal(reserve, tmp_path, setup)
    for reason in ("x\x07bell", "\x1b]0;title\x07", ""):
        why = refused(reserve, db, node, setup, "spend", "cancel", str(number), "--reason", reason)
        assert "reason" in why, (reason, why)
    for n in ("0", "-1", "99999", "99999999999999999999"):
        assert refused(reserve, db, node, setup, "spend", "show", n).strip(), n

    # a retired vault neither pays nor is paid
    other = setup.other.name
    other_address = setup.other.address()
    retire(reserve, setup.other)
    why = create_refused("--vault", other, "--pay", "exchange=0.1", "--memo", "m")
    assert "retired" in why
    why = create_refused("--vault", v, "--pay", f"{other}=0.1", "--memo", "m")
    assert other in why
    why = create_refused("--vault", v, "--pay", f"{other_address}=0.1", "--memo", "m")
    assert other_address in why and "retired" in why  # said retired (issue 15, point 5)


def test_a_spend_the_holders_broadcast_themselves_is_booked_as_passing_no_gate(
    reserve: Reserve, node: RegtestNode, db: Engine, tmp_path: Path
) -> None:
    setup = funded_vault(reserve, node)
    reserve.ok("policy", "set", setup.vault.name, "--delay-above", "0.1", "--delay-blocks", "50")
    number, psbt_file = proposal(reserve, tmp_path, setup)
    files = signed_by(node, setup, psbt_file, tmp_path, "ministry", "regulator")
    reserve.ok("spend", "sign", str(number), *map(str, files))
    assert "delay" in refused(reserve, db, node, setup, "spend", "broadcast", str(number), code=1)
    # two holders combine their files and send the transaction themselves, inside the delay
    rpc = node.rpc()
    final = rpc.call("finalizepsbt", rpc.call("combinepsbt", [f.read_text().strip() for f in files]))
    txid = str(rpc.call("sendrawtransaction", final["hex"]))
    node.mine(1)
    reserve.ok("sync")
    shown = show(reserve, number)
    assert shown["state"] == "confirmed" and shown["txid"] == txid
    last = shown["history"][-1]["detail"]
    assert last["outside_gate"] is True, last
    text_out = reserve.ok("spend", "show", str(number)).out
    assert "never passed the gate" in text_out, text_out


def test_a_spend_stored_as_broadcast_but_never_sent_can_be_cancelled(
    reserve: Reserve, node: RegtestNode, db: Engine, tmp_path: Path
) -> None:
    from sqlalchemy.orm import Session

    from ledger.spend.events import BROADCAST, append_event, get_spend
    from ledger.store.db import lock_journal

    setup = funded_vault(reserve, node)
    number = signed_spend(reserve, node, tmp_path, setup)
    # `spend broadcast` stores its claim, then stops before it sends (killed, the node went away)
    runtime = reserve.engine(runtime=True)
    with Session(runtime) as s, s.begin():
        lock_journal(s)
        spend = get_spend(s, number)
        append_event(
            s,
            spend=number,
            state=BROADCAST,
            vault=spend.vault,
            txid=spend.txid,
            psbt=spend.psbt,
            amount=spend.amount,
            height=node.rpc().get_block_count(),
            detail={"fee": 1, "vsize": 1},
        )
    runtime.dispose()
    assert spend.txid not in mempool(node)
    assert "broadcast already" in refused(reserve, db, node, setup, "spend", "broadcast", str(number))
    done = reserve.ok("spend", "cancel", str(number), "--reason", "never sent", "--json").json()
    assert done["state"] == "cancelled" and len(done["unlocked"]) == len(spend.inputs)
    # the coins are free again: a new proposal may use them
    again = signed_spend(reserve, node, tmp_path, setup, "--pay", "exchange=1.5")
    reserve.ok("spend", "broadcast", str(again))


def test_a_vault_retired_after_a_transfer_to_it_was_proposed_is_no_destination(
    reserve: Reserve, node: RegtestNode, db: Engine, tmp_path: Path
) -> None:
    setup = funded_vault(reserve, node)
    other = setup.other.name
    number = signed_spend(reserve, node, tmp_path, setup, "--pay", f"{other}=0.2")
    retire(reserve, setup.other)
    why = refused(reserve, db, node, setup, "spend", "broadcast", str(number), code=1)
    assert "outputs" in why and "which is retired" in why, why


class _Racing(RpcClient):
    """The reserve's client of the real node, with a real event on the chain at the worst moment:
    ``before_send`` runs just before ``sendrawtransaction`` goes out (after the gate passed)."""

    before_send: Any = None

    def clone(self, *, wallet: str | None = None, timeout: float = 30.0) -> RpcClient:
        c = _Racing(self.url, cookie_path=self._cookie_path, timeout=timeout, wallet=wallet)
        c.before_send = self.before_send
        return c

    def call(self, method: str, *params: Any) -> Any:
        if method == "sendrawtransaction" and self.before_send is not None:
            hook, self.before_send = self.before_send, None
            hook()
        return super().call(method, *params)


def test_a_send_the_node_refuses_after_the_gate_passed_leaves_the_spend_open(
    reserve: Reserve, node: RegtestNode, db: Engine, tmp_path: Path
) -> None:
    from contextlib import contextmanager

    from sqlalchemy.orm import Session

    from custody.errors import RpcError
    from ledger.spend.broadcast import broadcast_spend
    from ledger.spend.events import velocity_used
    from ledger.store.db import read_only

    setup = funded_vault(reserve, node)
    number, psbt_file = proposal(reserve, tmp_path, setup)
    files = signed_by(node, setup, psbt_file, tmp_path, "ministry", "regulator")
    reserve.ok("spend", "sign", str(number), *map(str, files))
    coin = Psbt.parse(psbt_file.read_text()).tx.inputs[0]

    def holders_spend_the_coin_elsewhere() -> None:
        wallet = node.rpc().wallet(vault_wallet_name(setup.vault.name))
        wallet.call("lockunspent", True, [{"txid": coin.txid, "vout": coin.vout}])
        funded = wallet.call_named(
            "walletcreatefundedpsbt",
            inputs=[{"txid": coin.txid, "vout": coin.vout}],
            outputs=[{setup.exchange: "0.1"}],
            options={"includeWatching": True, "fee_rate": 50},
        )
        signed = [setup.signers[h].sign(node.rpc(), funded["psbt"]) for h in ("ministry", "regulator")]
        final = node.rpc().call("finalizepsbt", node.rpc().call("combinepsbt", signed))
        node.rpc().call("sendrawtransaction", final["hex"])

    engine = reserve.engine(runtime=True)

    @contextmanager
    def read() -> Iterator[Session]:
        with Session(read_only(engine)) as s, s.begin():
            yield s

    @contextmanager
    def write() -> Iterator[Session]:
        with Session(engine) as s, s.begin():
            yield s

    rpc = _Racing(node.rpc_url, cookie_path=node.cookie_path)
    rpc.before_send = holders_spend_the_coin_elsewhere
    try:
        with pytest.raises(RpcError):
            broadcast_spend(read, write, rpc, number)
        shown = show(reserve, number)
        assert [e["state"] for e in shown["history"]][-2:] == ["broadcast", "signed"], shown["history"]
        assert "not_sent" in shown["history"][-1]["detail"]
        with read() as s:
            assert velocity_used(s, setup.vault.name, node.rpc().get_block_count(), 144) == 0
    finally:
        engine.dispose()
    why = refused(reserve, db, node, setup, "spend", "broadcast", str(number), code=1)
    assert "inputs" in why  # its coin is spent now; cancel or let sync find it conflicted
    reserve.ok("spend", "cancel", str(number), "--reason", "coin spent elsewhere")
