"""Every bad case of a spend (issue 10 §5) is refused with its reason, and nothing is recorded or
broadcast: journal and spend row counts, the Merkle root, the node's mempool and the vault wallet's
locked coins are the same before and after. SQLite and PostgreSQL, the session's regtest node."""

from __future__ import annotations

import base64
import dataclasses
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from bip_utils import Bip32KeyNetVersions, Bip32Secp256k1
from coincurve import PrivateKey
from sqlalchemy import Engine

from custody.address import b58decode_check
from custody.network import Network
from custody.psbt import GlobalXpub, Psbt, TxOut
from custody.sighash import SIGHASH_ALL, segwit_v0_sighash
from custody.wallet import vault_wallet_name
from regtest.node import RegtestNode
from regtest.signers import DemoSigner
from tests.fixtures.db import snapshot
from tests.fixtures.governance import approve, governed, propose
from tests.fixtures.reserve import Reserve
from tests.integration.test_spend_lifecycle import (
    Setup,
    count,
    create,
    funded_vault,
    mempool,
    outside_address,
    signed_by,
)

BTC = 100_000_000


@pytest.fixture
def db(reserve: Reserve) -> Iterator[Engine]:
    engine = reserve.engine()
    yield engine
    engine.dispose()


def state(reserve: Reserve, db: Engine, node: RegtestNode, setup: Setup) -> tuple[Any, ...]:
    wallet = node.rpc().wallet(vault_wallet_name(setup.vault.name))
    locked = sorted((str(o["txid"]), int(o["vout"])) for o in wallet.call("listlockunspent"))
    return (snapshot(db), count(db, "spend_events"), count(db, "spend_inputs"), mempool(node), locked)


def refused(reserve: Reserve, db: Engine, node: RegtestNode, setup: Setup, *argv: str, code: int = 2) -> str:
    """Run a command that must be refused with exit ``code`` and change nothing; its message."""
    before = state(reserve, db, node, setup)
    r = reserve.run(*argv)
    assert r.code == code, (argv, r.code, r.out, r.err)
    assert state(reserve, db, node, setup) == before, argv
    return r.err + r.out


def proposal(reserve: Reserve, tmp_path: Path, setup: Setup, *pay: str) -> tuple[int, Path]:
    pays = pay or ("--pay", "exchange=0.5")
    created = create(reserve, tmp_path, setup.vault, *pays, "--fee-rate", "2", "--memo", "m")
    return int(str(created["spend"])), Path(str(created["psbt_file"]))


def edited(psbt_file: Path, out: Path, edit: Any) -> Path:
    psbt = Psbt.parse(psbt_file.read_text())
    out.write_text(edit(psbt).to_base64())
    return out


# --- at create ----------------------------------------------------------------------------------------


def test_create_refuses_destinations_fees_limits_and_held_coins(
    reserve: Reserve, node: RegtestNode, db: Engine, tmp_path: Path
) -> None:
    setup = funded_vault(reserve, node)
    v = setup.vault.name
    out = str(tmp_path)

    stranger = outside_address(node)
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
        f"{stranger}=0.1",
        "--memo",
        "m",
        "--out",
        out,
    )
    assert stranger in why and "not on vault" in why and "allowlist" in why

    later = outside_address(node)
    governed(reserve, setup.vault, "policy", "allow", "add", v, "later", "--address", later)
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
        "later=0.1",
        "--memo",
        "m",
        "--out",
        out,
    )
    assert "still in its delay" in why and "becomes active at height" in why
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
        f"{later}=0.1",
        "--memo",
        "m",
        "--out",
        out,
    )
    assert "still in its delay" in why

    reserve.ok("policy", "set", v, "--max-fee-rate", "5", "--max-fee", "0.00005")
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
        "exchange=0.1",
        "--fee-rate",
        "50",
        "--memo",
        "m",
        "--out",
        out,
    )
    assert "max-fee-rate" in why and "max-fee:" in why

    reserve.ok("policy", "set", v, "--velocity-limit", "0.4", "--max-per-spend", "0.3")
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
        "exchange=0.5",
        "--memo",
        "m",
        "--out",
        out,
    )
    assert "velocity" in why and "max-per-spend" in why

    number, psbt_file = proposal(reserve, tmp_path, setup, "--pay", "exchange=0.2")
    coin = Psbt.parse(psbt_file.read_text()).tx.inputs[0]
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
        "--memo",
        "m",
        "--out",
        out,
    )
    assert f"held by open spend #{number}" in why
    # the velocity counts what was booked and broadcast: a second 0.2 after a broadcast 0.2 is over 0.4? no:
    # 0.2 + 0.2 = 0.4 is at the limit; 0.25 more is over it once the first is on the network
    files = signed_by(node, setup, psbt_file, tmp_path, "ministry", "regulator")
    reserve.ok("spend", "sign", str(number), *map(str, files))
    reserve.ok("spend", "broadcast", str(number))
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
        "exchange=0.25",
        "--memo",
        "m",
        "--out",
        out,
    )
    assert "velocity" in why
    # once mined and booked, the withdrawal still counts within the window
    node.mine(1)
    reserve.ok("sync")
    assert reserve.ok("spend", "show", str(number), "--json").json()["state"] == "confirmed"
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
        "exchange=0.25",
        "--memo",
        "m",
        "--out",
        out,
    )
    assert "velocity" in why and "left vault" in why


# --- files handed back ---------------------------------------------------------------------------------


def test_sign_refuses_bad_files_edits_networks_and_foreign_signatures(
    reserve: Reserve, node: RegtestNode, db: Engine, tmp_path: Path
) -> None:
    setup = funded_vault(reserve, node)
    number, psbt_file = proposal(reserve, tmp_path, setup)
    [good] = signed_by(node, setup, psbt_file, tmp_path, "ministry")
    n = str(number)

    truncated = tmp_path / "truncated.psbt"
    truncated.write_bytes(base64.b64decode(good.read_text())[:-7])
    why = refused(reserve, db, node, setup, "spend", "sign", n, str(truncated))
    assert "truncated.psbt" in why and "PSBT" in why
    garbage = tmp_path / "garbage.psbt"
    garbage.write_text("not a psbt at all")
    assert "garbage.psbt" in refused(reserve, db, node, setup, "spend", "sign", n, str(garbage))
    # one bad file among good ones: nothing of the good one is taken either
    assert "truncated.psbt" in refused(
        reserve, db, node, setup, "spend", "sign", n, str(good), str(truncated)
    )

    def amount(p: Psbt) -> Psbt:
        outs = list(p.tx.outputs)
        outs[0] = TxOut(outs[0].value - 1000, outs[0].script_pubkey)
        return dataclasses.replace(p, tx=dataclasses.replace(p.tx, outputs=tuple(outs)))

    def script(p: Psbt) -> Psbt:
        outs = list(p.tx.outputs)
        outs[0] = TxOut(outs[0].value, b"\x00\x14" + bytes(20))
        return dataclasses.replace(p, tx=dataclasses.replace(p.tx, outputs=tuple(outs)))

    why = refused(
        reserve, db, node, setup, "spend", "sign", n, str(edited(good, tmp_path / "a.psbt", amount))
    )
    assert "differs from spend proposal" in why and "output 0 amount" in why
    why = refused(
        reserve, db, node, setup, "spend", "sign", n, str(edited(good, tmp_path / "s.psbt", script))
    )
    assert "output 0 pays script" in why

    def fee(p: Psbt) -> Psbt:  # less change: a higher fee, signed over by the holder
        outs = list(p.tx.outputs)
        n = len(outs) - 1
        outs[n] = TxOut(outs[n].value - 50_000, outs[n].script_pubkey)
        return dataclasses.replace(p, tx=dataclasses.replace(p.tx, outputs=tuple(outs)))

    why = refused(reserve, db, node, setup, "spend", "sign", n, str(edited(good, tmp_path / "f.psbt", fee)))
    assert "differs from spend proposal" in why and "amount" in why

    raw = b58decode_check(setup.vault.keys["ministry"].xpub)
    mainnet_xpub = GlobalXpub(Network.MAINNET.xpub_version + raw[4:], b"\x01\x02\x03\x04", ())

    def network(p: Psbt) -> Psbt:
        return dataclasses.replace(p, xpubs=(*p.xpubs, mainnet_xpub))

    why = refused(
        reserve, db, node, setup, "spend", "sign", n, str(edited(good, tmp_path / "n.psbt", network))
    )
    assert "another network" in why

    def broken(p: Psbt) -> Psbt:
        [(pk, sig)] = [s for i in p.inputs for s in i.partial_sigs][:1]
        bad = sig[:-2] + bytes([sig[-2] ^ 1]) + sig[-1:]
        inputs = list(p.inputs)
        inputs[0] = dataclasses.replace(inputs[0], partial_sigs=((pk, bad),))
        return dataclasses.replace(p, inputs=tuple(inputs))

    why = refused(
        reserve, db, node, setup, "spend", "sign", n, str(edited(good, tmp_path / "b.psbt", broken))
    )
    assert "does not verify" in why or "DER" in why

    # a key holder of the other vault signs this spend with its own key
    other = setup.other
    thief = DemoSigner("regulator", other.seeds["regulator"])
    foreign = tmp_path / "foreign.psbt"
    foreign.write_text(foreign_signature(psbt_file, thief, setup).to_base64())
    why = refused(reserve, db, node, setup, "spend", "sign", n, str(foreign))
    assert f"regulator's key of vault {other.name}" in why

    # one signature short, and the good file alone is fine
    reserve.ok("spend", "sign", n, str(good))
    why = refused(reserve, db, node, setup, "spend", "broadcast", n, code=1)
    assert "approvals" in why and "1 more signature" in why


def foreign_signature(psbt_file: Path, thief: DemoSigner, setup: Setup) -> Psbt:
    """The proposal with a valid ECDSA signature by ``thief``'s key at the input's path (a key of
    another vault), as a key holder of that vault could make it."""
    psbt = Psbt.parse(psbt_file.read_text())
    d = next(x for x in psbt.inputs[0].derivations)
    branch, index = d.path[-2:]
    versions = Bip32KeyNetVersions(Network.REGTEST.xpub_version, Network.REGTEST.xprv_version)
    account = Bip32Secp256k1.FromExtendedKey(thief.private_expression().split("]")[1], versions)
    child = account.ChildKey(branch).ChildKey(index)
    secret = bytes(child.PrivateKey().Raw().ToBytes())
    pubkey = bytes(child.PublicKey().RawCompressed().ToBytes())
    utxo = psbt.input_utxo(0)
    assert utxo is not None and psbt.inputs[0].witness_script is not None
    digest = segwit_v0_sighash(psbt.tx, 0, psbt.inputs[0].witness_script, utxo.value, SIGHASH_ALL)
    sig = PrivateKey(secret).sign(digest, hasher=None) + bytes([SIGHASH_ALL])
    return psbt.with_partial_sigs(0, [(pubkey, sig)])


# --- at broadcast ---------------------------------------------------------------------------------------


def test_broadcast_waits_out_the_delay_after_quorum(
    reserve: Reserve, node: RegtestNode, db: Engine, tmp_path: Path
) -> None:
    setup = funded_vault(reserve, node)
    reserve.ok("policy", "set", setup.vault.name, "--delay-above", "0.1", "--delay-blocks", "3")
    number, psbt_file = proposal(reserve, tmp_path, setup)
    files = signed_by(node, setup, psbt_file, tmp_path, "central-bank", "regulator")
    reserve.ok("spend", "sign", str(number), *map(str, files))
    why = refused(reserve, db, node, setup, "spend", "broadcast", str(number), code=1)
    assert "delay" in why and "3 block(s) to go" in why
    node.mine(2)
    assert "1 block(s) to go" in refused(reserve, db, node, setup, "spend", "broadcast", str(number), code=1)
    node.mine(1)
    reserve.ok("spend", "broadcast", str(number))


def test_a_required_holder_must_sign(reserve: Reserve, node: RegtestNode, db: Engine, tmp_path: Path) -> None:
    setup = funded_vault(reserve, node)
    reserve.ok("policy", "set", setup.vault.name, "--require-holder", "central-bank")
    number, psbt_file = proposal(reserve, tmp_path, setup)
    files = signed_by(node, setup, psbt_file, tmp_path, "ministry", "regulator")
    reserve.ok("spend", "sign", str(number), *map(str, files))
    why = refused(reserve, db, node, setup, "spend", "broadcast", str(number), code=1)
    assert "required-holders" in why and "central-bank has not signed" in why
    offline = reserve.run("--rpc-url", "http://127.0.0.1:1", "spend", "show", str(number), "--json")
    assert offline.code == 0 and offline.json()["rules"] is None
    assert "cannot reach bitcoind" in offline.json()["unjudged"]
    [central] = signed_by(node, setup, psbt_file, tmp_path, "central-bank")
    reserve.ok("spend", "sign", str(number), str(central))
    reserve.ok("spend", "broadcast", str(number))


def test_cancel_unlocks_and_a_spent_coin_conflicts(
    reserve: Reserve, node: RegtestNode, db: Engine, tmp_path: Path
) -> None:
    setup = funded_vault(reserve, node)
    wallet = node.rpc().wallet(vault_wallet_name(setup.vault.name))
    number, psbt_file = proposal(reserve, tmp_path, setup)
    coins = [(i.txid, i.vout) for i in Psbt.parse(psbt_file.read_text()).tx.inputs]
    assert set(coins) <= {(str(o["txid"]), int(o["vout"])) for o in wallet.call("listlockunspent")}
    reserve.ok("spend", "cancel", str(number), "--reason", "wrong amount")
    assert not {(str(o["txid"]), int(o["vout"])) for o in wallet.call("listlockunspent")} & set(coins)
    assert reserve.ok("spend", "show", str(number), "--json").json()["state"] == "cancelled"
    assert "cancelled" in refused(reserve, db, node, setup, "spend", "broadcast", str(number))

    # a proposal whose coin someone spends another way ends conflicted at the next sync
    number2, psbt2 = proposal(reserve, tmp_path, setup)
    coin = Psbt.parse(psbt2.read_text()).tx.inputs[0]
    wallet.call("lockunspent", True, [{"txid": coin.txid, "vout": coin.vout}])
    funded = wallet.call_named(
        "walletcreatefundedpsbt",
        inputs=[{"txid": coin.txid, "vout": coin.vout}],
        outputs=[{setup.exchange: "0.1"}],
        options={"includeWatching": True, "fee_rate": 2},
    )
    signed = [setup.signers[h].sign(node.rpc(), funded["psbt"]) for h in ("ministry", "regulator")]
    final = node.rpc().call("finalizepsbt", node.rpc().call("combinepsbt", signed))
    node.rpc().call("sendrawtransaction", final["hex"])
    node.mine(1)
    reserve.ok("sync")
    shown = reserve.ok("spend", "show", str(number2), "--json").json()
    assert shown["state"] == "conflicted"
    assert "spent by another transaction" in shown["history"][-1]["detail"]["reason"]
    listed = {s["spend"]: s["state"] for s in reserve.ok("spend", "list", "--json").json()["spends"]}
    assert listed == {number: "cancelled", number2: "conflicted"}


# --- a vault wallet tampered with, and one holder's two keys ---------------------------------------------


def test_a_tampered_vault_wallet_cannot_spend_foreign_coins_or_send_change_away(
    reserve: Reserve, node: RegtestNode, db: Engine, tmp_path: Path
) -> None:
    setup = funded_vault(reserve, node)
    v = setup.vault.name
    wallet = node.rpc().wallet(vault_wallet_name(v))
    miner = node.miner()
    # someone slips a coin of theirs into the vault's watch-only wallet
    address = str(miner.call("getnewaddress"))
    desc = str(miner.call("getaddressinfo", address)["desc"])
    assert wallet.call("importdescriptors", [{"desc": desc, "timestamp": "now"}])[0]["success"]
    txid = node.fund(address, 30_000_000)
    vout = next(
        o["n"]
        for o in node.rpc().call("getrawtransaction", txid, True)["vout"]
        if o["scriptPubKey"].get("address") == address
    )
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
        "exchange=0.1",
        "--input",
        f"{txid}:{vout}",
        "--fee-rate",
        "2",
        "--memo",
        "m",
        "--out",
        str(tmp_path),
    )
    assert f"input {txid}:{vout}" in why and "not an output of vault" in why

    # and makes the wallet's change go to a key of theirs
    internal = next(
        d["desc"]
        for d in miner.call("listdescriptors")["descriptors"]
        if d["internal"] and d["desc"].startswith("wpkh(")
    )
    result = wallet.call(
        "importdescriptors",
        [{"desc": internal, "active": True, "internal": True, "timestamp": "now", "range": [0, 10]}],
    )
    assert result[0]["success"], result
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
        "exchange=0.1",
        "--fee-rate",
        "2",
        "--memo",
        "m",
        "--out",
        str(tmp_path),
    )
    assert "outputs:" in why and "not change of vault" in why


def test_two_keys_of_one_holder_count_once(
    reserve: Reserve, node: RegtestNode, db: Engine, tmp_path: Path
) -> None:
    import secrets

    from custody.descriptor import MultisigDescriptor
    from custody.keygen import test_key_from_seed
    from tests.fixtures.reserve import TestVault

    holders = ("ministry", "ministry", "central-bank", "regulator")
    seeds = [secrets.token_bytes(32) for _ in holders]
    keys = [test_key_from_seed(s, Network.REGTEST) for s in seeds]
    name = f"twokeys-{secrets.token_hex(3)}"
    args = ["vault", "add", name, "--threshold", "3"]
    for h, k in zip(holders, keys, strict=True):
        args += ["--key", f"{h}={k}"]
    reserve.ok(*args)
    reserve.ok("vault", "watch", name)
    descriptor = MultisigDescriptor.from_keys(3, tuple(keys))
    signers = ("ministry", "ministry-2", "central-bank", "regulator")  # one signing wallet per key
    vault = TestVault(
        name, dict(zip(signers, seeds, strict=True)), dict(zip(signers, keys, strict=True)), descriptor
    )
    node.fund(vault.address(), BTC)
    reserve.ok("sync")
    exchange = outside_address(node)
    proposed = propose(reserve, "policy", "allow", "add", name, "exchange", "--address", exchange)
    approve(reserve, vault, proposed, ("ministry", "central-bank", "regulator"))
    node.mine(144)
    other = reserve.add_vault("other")
    setup = Setup(vault, other, exchange, {})
    created = create(reserve, tmp_path, vault, "--pay", "exchange=0.2", "--fee-rate", "2", "--memo", "m")
    number, psbt_file = int(str(created["spend"])), Path(str(created["psbt_file"]))
    files = []
    for i, (holder, seed) in enumerate(zip(holders[:3], seeds[:3], strict=True)):
        s = DemoSigner(holder, seed)
        s.import_vault(node.rpc(), 3, tuple(keys))
        out = tmp_path / f"signed-{i}.psbt"
        out.write_text(s.sign(node.rpc(), psbt_file.read_text().strip()))
        files.append(str(out))
    reserve.ok("spend", "sign", str(number), *files)
    why = refused(reserve, db, node, setup, "spend", "broadcast", str(number), code=1)
    assert "approvals" in why and "2 distinct holder(s), 3 needed" in why


def test_a_broadcast_spend_replaced_by_a_fee_bump_ends_conflicted(
    reserve: Reserve, node: RegtestNode, db: Engine, tmp_path: Path
) -> None:
    setup = funded_vault(reserve, node)
    number, psbt_file = proposal(reserve, tmp_path, setup)
    files = signed_by(node, setup, psbt_file, tmp_path, "ministry", "regulator")
    reserve.ok("spend", "sign", str(number), *map(str, files))
    txid = reserve.ok("spend", "broadcast", str(number), "--json").json()["txid"]
    # the holders bump its fee outside the service (a replacement the gate never saw)
    wallet = node.rpc().wallet(vault_wallet_name(setup.vault.name))
    bumped = wallet.call("psbtbumpfee", txid, {"fee_rate": 20})["psbt"]
    signed = [setup.signers[h].sign(node.rpc(), bumped) for h in ("ministry", "regulator")]
    final = node.rpc().call("finalizepsbt", node.rpc().call("combinepsbt", signed))
    replacement = str(node.rpc().call("sendrawtransaction", final["hex"]))
    node.mine(1)
    reserve.ok("sync")
    shown = reserve.ok("spend", "show", str(number), "--json").json()
    assert shown["state"] == "conflicted"
    assert shown["history"][-1]["detail"]["by"] == replacement
