"""custody.psbt and custody.sighash against Bitcoin Core on regtest.

A 2-of-3 vault's watch-only wallet builds the PSBT (``walletcreatefundedpsbt``, watch-only inputs,
BIP-32 derivations), two key holders (:class:`regtest.signers.DemoSigner`, a bitcoind wallet with one
private key each) sign it. Our parser reads every stage; the node decodes our re-serialization exactly
as it decodes its own; every partial signature verifies locally with the witness script and amount,
and the node agrees (the finalized transaction is accepted by ``testmempoolaccept``). Editing an
output amount or the fee makes every signature fail here, and the node cannot finalize it either.
"""

from __future__ import annotations

import secrets
from dataclasses import replace
from typing import Any

import pytest

from custody.amount import btc_decimal, sat_from_rpc
from custody.descriptor import MultisigDescriptor
from custody.errors import InvalidInput
from custody.keygen import test_key_from_seed
from custody.network import Network
from custody.psbt import Psbt, TxOut
from custody.rpc import RpcClient
from custody.sighash import check_signature
from custody.wallet import ensure_watch_wallet
from regtest.node import RegtestNode
from regtest.signers import DemoSigner

BTC = 100_000_000
HOLDERS = ("ministry", "central-bank", "regulator")


class Vault:
    """A 2-of-3 vault watched by its own wallet, with demo signers for its holders."""

    def __init__(self, node: RegtestNode) -> None:
        self.seeds = {h: secrets.token_bytes(32) for h in HOLDERS}
        self.keys = {h: test_key_from_seed(s, Network.REGTEST) for h, s in self.seeds.items()}
        self.descriptor = MultisigDescriptor.from_keys(2, tuple(self.keys.values()))
        self.wallet_name = f"psbt-vault-{secrets.token_hex(4)}"
        ensure_watch_wallet(node.rpc(), self.wallet_name, self.descriptor)
        self.node = node

    @property
    def wallet(self) -> RpcClient:
        return self.node.rpc().wallet(self.wallet_name)

    def signer(self, holder: str) -> DemoSigner:
        s = DemoSigner(holder, self.seeds[holder])
        s.import_vault(self.node.rpc(), 2, tuple(self.keys.values()))
        return s


@pytest.fixture
def vault(node: RegtestNode) -> Vault:
    v = Vault(node)
    for index in range(3):  # three coins, so a spend needs more than one input
        node.fund(v.descriptor.address(index, False, Network.REGTEST), BTC, confirm=False)
    node.mine(1)
    return v


def _payee(node: RegtestNode) -> str:
    return str(node.miner().call("getnewaddress", "", "bech32"))


def _funded(vault: Vault, payee: str, sat: int) -> str:
    result = vault.wallet.call(
        "walletcreatefundedpsbt",
        [],
        [{payee: btc_decimal(sat)}],
        0,
        {"includeWatching": True, "fee_rate": 2},
        True,  # bip32derivs
    )
    return str(result["psbt"])


def _decode(rpc: RpcClient, psbt: str) -> Any:
    return rpc.call("decodepsbt", psbt)


def _check_all(psbt: Psbt) -> list[str | None]:
    results = []
    for index, item in enumerate(psbt.inputs):
        assert item.witness_script is not None and item.witness_utxo is not None
        for pubkey, sig in item.partial_sigs:
            results.append(
                check_signature(psbt.tx, index, item.witness_script, item.witness_utxo.value, pubkey, sig)
            )
    return results


def test_node_psbt_parses_and_reserializes_as_the_node_decodes_it(node: RegtestNode, vault: Vault) -> None:
    rpc = node.rpc()
    payee = _payee(node)
    unsigned_b64 = _funded(vault, payee, 2 * BTC + 50_000_000)
    ministry = vault.signer("ministry")
    regulator = vault.signer("regulator")
    once = ministry.sign(rpc, unsigned_b64)
    twice = regulator.sign(rpc, once)
    for b64 in (unsigned_b64, once, twice):
        psbt = Psbt.parse(b64)
        assert _decode(rpc, psbt.to_base64()) == _decode(rpc, b64)
        assert Psbt.parse(psbt.serialize()) == psbt
    psbt = Psbt.parse(twice)
    decoded = _decode(rpc, twice)
    assert psbt.tx.txid == decoded["tx"]["txid"]
    assert len(psbt.inputs) >= 3
    assert psbt.networks() <= frozenset({"test"})
    fingerprints = {k.origin.fingerprint for k in vault.keys.values() if k.origin is not None}
    assert len(fingerprints) == 3
    for index, item in enumerate(psbt.inputs):
        # what the PSBT says about each input matches the vault's own descriptor and the node
        assert item.witness_utxo is not None and item.witness_script is not None
        assert item.witness_utxo.value == sat_from_rpc(decoded["inputs"][index]["witness_utxo"]["amount"])
        assert len(item.derivations) == 3
        assert {d.fingerprint for d in item.derivations} == fingerprints
        branch, child = item.derivations[0].path[-2:]
        assert item.witness_script == vault.descriptor.witness_script(child, branch == 1)
        assert item.witness_utxo.script_pubkey == vault.descriptor.script_pubkey(child, branch == 1)
        assert len(item.partial_sigs) == 2
        held = {
            vault.descriptor.pubkeys(child, branch == 1)[i]
            for i, h in enumerate(HOLDERS)
            if h in ("ministry", "regulator")
        }
        assert {pubkey for pubkey, _ in item.partial_sigs} == held
    assert _check_all(psbt) == [None] * (2 * len(psbt.inputs))
    # the node agrees: it finalizes our re-serialization and would accept the transaction
    final = rpc.call("finalizepsbt", psbt.to_base64(), True)
    assert final["complete"]
    accepted = rpc.call("testmempoolaccept", [final["hex"]])[0]
    assert accepted["allowed"], accepted


def test_with_partial_sigs_combines_as_combinepsbt(node: RegtestNode, vault: Vault) -> None:
    rpc = node.rpc()
    unsigned_b64 = _funded(vault, _payee(node), 150_000_000)
    signed = [vault.signer(h).sign(rpc, unsigned_b64) for h in ("central-bank", "regulator")]
    merged = Psbt.parse(unsigned_b64)
    for b64 in signed:
        for index, item in enumerate(Psbt.parse(b64).inputs):
            merged = merged.with_partial_sigs(index, item.partial_sigs)
    combined = rpc.call("combinepsbt", signed)
    assert _decode(rpc, merged.to_base64()) == _decode(rpc, combined)
    assert _check_all(merged) == [None] * (2 * len(merged.inputs))


def _edited_tx(psbt: Psbt, output: int, delta: int) -> Psbt:
    outputs = list(psbt.tx.outputs)
    out = outputs[output]
    outputs[output] = TxOut(out.value + delta, out.script_pubkey)
    return replace(psbt, tx=replace(psbt.tx, outputs=tuple(outputs)))


def test_editing_an_amount_or_the_fee_breaks_every_signature(node: RegtestNode, vault: Vault) -> None:
    rpc = node.rpc()
    payee = _payee(node)
    unsigned_b64 = _funded(vault, payee, 2 * BTC + 50_000_000)
    signed_b64 = vault.signer("ministry").sign(rpc, unsigned_b64)
    signed_b64 = vault.signer("central-bank").sign(rpc, signed_b64)
    psbt = Psbt.parse(signed_b64)
    assert _check_all(psbt) == [None] * (2 * len(psbt.inputs))
    decoded = _decode(rpc, signed_b64)
    payee_index = next(
        i for i, o in enumerate(decoded["tx"]["vout"]) if o["scriptPubKey"].get("address") == payee
    )
    change_index = 1 - payee_index
    edits = {
        "payee gets 1 sat more (fee 1 sat less)": _edited_tx(psbt, payee_index, 1),
        "payee gets 1000 sat less (fee 1000 sat more)": _edited_tx(psbt, payee_index, -1000),
        "change 5000 sat less (fee 5000 sat more)": _edited_tx(psbt, change_index, -5000),
    }
    # an output swapped for another address of the same amount
    other = _edited_tx(psbt, payee_index, 0)
    out = other.tx.outputs[payee_index]
    swapped = list(other.tx.outputs)
    swapped[payee_index] = TxOut(out.value, b"\x00\x14" + bytes(20))
    edits["payee address replaced"] = replace(other, tx=replace(other.tx, outputs=tuple(swapped)))
    for what, edited in edits.items():
        reasons = _check_all(edited)
        assert reasons and all(r is not None and "does not verify" in r for r in reasons), what
        # the node agrees: finalizepsbt checks each signature and cannot complete the edited one
        final = rpc.call("finalizepsbt", edited.to_base64(), True)
        assert not final["complete"], what
    # the amount the signature commits to is the spent output's: a PSBT lying about it fails too
    first = psbt.inputs[0]
    assert first.witness_utxo is not None and first.witness_script is not None
    pubkey, sig = first.partial_sigs[0]
    lie = first.witness_utxo.value + 1
    assert "does not verify" in str(check_signature(psbt.tx, 0, first.witness_script, lie, pubkey, sig))


def test_every_truncation_of_a_node_psbt_is_invalid_input(node: RegtestNode, vault: Vault) -> None:
    rpc = node.rpc()
    signed_b64 = vault.signer("regulator").sign(rpc, _funded(vault, _payee(node), 50_000_000))
    raw = Psbt.parse(signed_b64).serialize()
    for cut in range(len(raw)):
        with pytest.raises(InvalidInput):
            Psbt.parse(raw[:cut])
    # the node refuses the same truncations (spot check) — neither side accepts half a PSBT
    for cut in (len(raw) // 3, len(raw) - 1):
        import base64

        with pytest.raises(Exception, match="TX decode failed"):
            rpc.call("decodepsbt", base64.b64encode(raw[:cut]).decode())
