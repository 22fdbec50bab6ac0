"""The gate's facts from a real PSBT: signatures made here with coincurve private keys over an
independent BIP-143 sighash (python-bitcoinlib's), amounts from the "node", paths re-derived."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, replace

import pytest
from bip_utils import Bip32KeyNetVersions, Bip32Secp256k1
from bitcoin.core import CTransaction, CTxInWitness, CTxWitness
from bitcoin.core.script import SIGVERSION_WITNESS_V0, CScript, CScriptWitness, SignatureHash
from coincurve import PrivateKey

from custody.address import script_address
from custody.descriptor import MultisigDescriptor
from custody.errors import InvalidInput
from custody.keygen import bip48_path
from custody.keys import ExtendedKey, KeyOrigin, format_path
from custody.network import Network
from custody.psbt import Derivation, Psbt, PsbtInput, PsbtOutput, TxIn, TxOut, UnsignedTx
from custody.spend_facts import (
    attribute_signatures,
    derive_vault_scripts,
    estimate_vsize,
    gather_facts,
    input_script,
)
from custody.spend_gate import Destination, evaluate, violations
from custody.spend_policy import SpendLimits

NET = Network.REGTEST
SIGHASH_ALL = 1


@dataclass(frozen=True)
class Signer:
    """A BIP-48 account key with its private half, as a signing device holds it."""

    seed: bytes

    @property
    def node(self) -> Bip32Secp256k1:
        versions = Bip32KeyNetVersions(NET.xpub_version, NET.xprv_version)
        master = Bip32Secp256k1.FromSeed(self.seed, versions)
        return master.DerivePath("m/" + format_path(bip48_path(NET)).replace("h", "'"))

    @property
    def fingerprint(self) -> bytes:
        versions = Bip32KeyNetVersions(NET.xpub_version, NET.xprv_version)
        return bytes(Bip32Secp256k1.FromSeed(self.seed, versions).FingerPrint().ToBytes())

    @property
    def public(self) -> ExtendedKey:
        return ExtendedKey(self.node.PublicKey().ToExtended(), KeyOrigin(self.fingerprint, bip48_path(NET)))

    def child(self, branch: int, index: int) -> PrivateKey:
        return PrivateKey(bytes(self.node.ChildKey(branch).ChildKey(index).PrivateKey().Raw().ToBytes()))

    def pubkey(self, branch: int, index: int) -> bytes:
        return self.child(branch, index).public_key.format(compressed=True)

    def derivation(self, branch: int, index: int) -> Derivation:
        return Derivation(self.pubkey(branch, index), self.fingerprint, (*bip48_path(NET), branch, index))


ALICE1, ALICE2, BOB, CAROL = (Signer(bytes([n]) * 32) for n in (1, 2, 3, 4))
STRANGER = Signer(bytes([9]) * 32)
HOLDERS = ("alice", "alice", "bob", "carol")
# 2-of-4: alice holds two keys, so she alone is never a quorum
VAULT = MultisigDescriptor.from_keys(2, [ALICE1.public, ALICE2.public, BOB.public, CAROL.public])
OTHER = MultisigDescriptor.from_keys(2, [STRANGER.public, BOB.public, CAROL.public])

FUNDING = [hashlib.sha256(bytes([n])).hexdigest() for n in range(8)]


def sign(
    signer: Signer,
    tx: UnsignedTx,
    index: int,
    path: tuple[int, int],
    amount: int,
    *,
    descriptor: MultisigDescriptor = VAULT,
    hashtype: int = SIGHASH_ALL,
    key_path: tuple[int, int] | None = None,
) -> tuple[bytes, bytes]:
    """(pubkey, DER signature + hashtype) over BIP-143 as python-bitcoinlib computes it."""
    _, witness_script = input_script(descriptor, path)
    ctx = CTransaction.deserialize(tx.serialize())
    digest = SignatureHash(CScript(witness_script), ctx, index, hashtype, amount, SIGVERSION_WITNESS_V0)
    key = signer.child(*(key_path or path))
    return key.public_key.format(compressed=True), key.sign(digest, hasher=None) + bytes([hashtype])


def spend_tx(n_inputs: int, outputs: Sequence[TxOut]) -> UnsignedTx:
    inputs = tuple(TxIn(FUNDING[n], n, 0xFFFFFFFD) for n in range(n_inputs))
    return UnsignedTx(2, 0, inputs, tuple(outputs))


def empty_input(**kw: object) -> PsbtInput:
    return PsbtInput(**kw)  # type: ignore[arg-type]


def make_psbt(tx: UnsignedTx, inputs: Sequence[PsbtInput] | None = None) -> Psbt:
    psbt_inputs = tuple(inputs) if inputs is not None else tuple(PsbtInput() for _ in tx.inputs)
    return Psbt(tx, inputs=psbt_inputs, outputs=tuple(PsbtOutput() for _ in tx.outputs))


def signed(psbt: Psbt, index: int, sigs: Sequence[tuple[bytes, bytes]]) -> Psbt:
    return psbt.with_partial_sigs(index, sorted(sigs))


PAY = TxOut(40_000_000, bytes.fromhex("0014") + bytes(20))
AMOUNT = 100_000_000
PATH = (0, 3)


def one_input_psbt() -> Psbt:
    return make_psbt(spend_tx(1, [PAY]))


# --- attribute_signatures ---


def test_two_distinct_holders_sign_and_are_named_in_key_order() -> None:
    psbt = one_input_psbt()
    psbt = signed(psbt, 0, [sign(CAROL, psbt.tx, 0, PATH, AMOUNT), sign(ALICE2, psbt.tx, 0, PATH, AMOUNT)])
    assert attribute_signatures(psbt, 0, VAULT, HOLDERS, PATH, AMOUNT) == (("alice", "carol"), ())


def test_one_holders_two_keys_count_once() -> None:
    psbt = one_input_psbt()
    psbt = signed(psbt, 0, [sign(ALICE1, psbt.tx, 0, PATH, AMOUNT), sign(ALICE2, psbt.tx, 0, PATH, AMOUNT)])
    signers, refusals = attribute_signatures(psbt, 0, VAULT, HOLDERS, PATH, AMOUNT)
    assert signers == ("alice",) and refusals == ()


def test_a_signature_by_another_vaults_key_is_refused_as_another_key_entirely() -> None:
    psbt = one_input_psbt()
    foreign = sign(STRANGER, psbt.tx, 0, PATH, AMOUNT, descriptor=OTHER)
    psbt = signed(psbt, 0, [foreign, sign(BOB, psbt.tx, 0, PATH, AMOUNT)])
    signers, refusals = attribute_signatures(psbt, 0, VAULT, HOLDERS, PATH, AMOUNT)
    assert signers == ("bob",)
    (refusal,) = refusals
    assert "another key entirely" in refusal and foreign[0].hex()[:16] in refusal


def test_a_foreign_key_with_its_claimed_derivation_names_the_foreign_fingerprint() -> None:
    tx = spend_tx(1, [PAY])
    psbt = make_psbt(tx, [empty_input(derivations=(STRANGER.derivation(*PATH),))])
    psbt = signed(psbt, 0, [sign(STRANGER, tx, 0, PATH, AMOUNT, descriptor=OTHER)])
    _, (refusal,) = attribute_signatures(psbt, 0, VAULT, HOLDERS, PATH, AMOUNT)
    assert f"master fingerprint {STRANGER.fingerprint.hex()}, which is none of this vault's keys" in refusal


def test_a_vault_key_at_another_path_is_refused_naming_whose_and_where() -> None:
    tx = spend_tx(1, [PAY])
    psbt = make_psbt(tx, [empty_input(derivations=(BOB.derivation(1, 7),))])
    psbt = signed(psbt, 0, [sign(BOB, tx, 0, PATH, AMOUNT, key_path=(1, 7))])
    signers, (refusal,) = attribute_signatures(psbt, 0, VAULT, HOLDERS, PATH, AMOUNT)
    assert signers == ()
    assert "bob's key at 1/7, not at this input's path 0/3" in refusal


def test_a_signature_over_another_amount_does_not_verify() -> None:
    psbt = one_input_psbt()
    psbt = signed(psbt, 0, [sign(BOB, psbt.tx, 0, PATH, AMOUNT + 1)])
    signers, (refusal,) = attribute_signatures(psbt, 0, VAULT, HOLDERS, PATH, AMOUNT)
    assert signers == () and "bob's signature" in refusal and "does not verify over 1.00000000 BTC" in refusal


def test_a_psbt_edited_after_signing_no_longer_verifies() -> None:
    psbt = one_input_psbt()
    sig = sign(BOB, psbt.tx, 0, PATH, AMOUNT)
    edited_tx = replace(psbt.tx, outputs=(TxOut(PAY.value + 1, PAY.script_pubkey),))
    edited = signed(make_psbt(edited_tx), 0, [sig])
    signers, (refusal,) = attribute_signatures(edited, 0, VAULT, HOLDERS, PATH, AMOUNT)
    assert signers == () and "does not verify" in refusal


def test_a_signature_with_another_sighash_type_is_refused() -> None:
    psbt = one_input_psbt()
    psbt = signed(psbt, 0, [sign(BOB, psbt.tx, 0, PATH, AMOUNT, hashtype=2)])  # SIGHASH_NONE
    signers, (refusal,) = attribute_signatures(psbt, 0, VAULT, HOLDERS, PATH, AMOUNT)
    assert signers == () and "sighash type 0x02" in refusal and "only ALL" in refusal


def test_a_psbt_asking_for_another_sighash_type_is_refused() -> None:
    psbt = make_psbt(spend_tx(1, [PAY]), [empty_input(sighash_type=0x83)])
    _, (refusal,) = attribute_signatures(psbt, 0, VAULT, HOLDERS, PATH, AMOUNT)
    assert "sighash type 0x83" in refusal


def test_holders_must_match_the_keys_and_the_input_must_exist() -> None:
    psbt = one_input_psbt()
    with pytest.raises(InvalidInput, match="3 holders for 4"):
        attribute_signatures(psbt, 0, VAULT, HOLDERS[:3], PATH, AMOUNT)
    with pytest.raises(InvalidInput, match="input 1 does not exist"):
        attribute_signatures(psbt, 1, VAULT, HOLDERS, PATH, AMOUNT)
    with pytest.raises(InvalidInput, match="branch 2"):
        attribute_signatures(psbt, 0, VAULT, HOLDERS, (2, 0), AMOUNT)


# --- estimate_vsize ---


def final_vsize(tx: UnsignedTx, descriptor: MultisigDescriptor, sig_len: int) -> int:
    """vsize of ``tx`` with every input's witness filled with ``sig_len``-byte signatures."""
    _, witness_script = input_script(descriptor, PATH)
    items = [b"", *([b"\x30" * sig_len] * descriptor.threshold), witness_script]
    ctx = CTransaction.deserialize(tx.serialize())
    wit = CTxWitness([CTxInWitness(CScriptWitness(items)) for _ in tx.inputs])
    full = CTransaction(ctx.vin, ctx.vout, ctx.nLockTime, ctx.nVersion, wit)
    weight = 3 * len(tx.serialize()) + len(full.serialize())
    return -(-weight // 4)


@pytest.mark.parametrize(("n_inputs", "n_outputs"), [(1, 1), (3, 2), (200, 2), (300, 260)])
def test_estimate_vsize_is_the_final_size_with_worst_case_signatures(n_inputs: int, n_outputs: int) -> None:
    tx = spend_tx(min(n_inputs, 8), [PAY] * n_outputs)
    tx = replace(tx, inputs=tuple(TxIn(FUNDING[n % 8], n, 0) for n in range(n_inputs)))
    for descriptor in (VAULT, OTHER):
        estimate = estimate_vsize(tx, descriptor.threshold, len(descriptor.keys))
        assert estimate == final_vsize(tx, descriptor, 73)  # 72 bytes + the sighash byte
        assert estimate >= final_vsize(tx, descriptor, 72)


def test_estimate_vsize_of_a_2_of_3_one_input_two_outputs() -> None:
    # 2-of-3 P2WSH input: 41 bytes base; witness 1 (count) + 1 (empty) + 2 x (1 + 72 + 1) + 1 + 105
    # (script) = 256 bytes; P2WPKH outputs 31 bytes each; 10 bytes version, counts, locktime
    tx = spend_tx(1, [PAY, PAY])
    assert estimate_vsize(tx, 2, 3) == -(-(4 * (10 + 41 + 62) + 2 + 256) // 4) == 178


# --- gather_facts ---


HOT = MultisigDescriptor.from_keys(1, [STRANGER.public])  # another vault of the reserve


def scenario(psbt_inputs: Sequence[PsbtInput] | None = None) -> tuple[UnsignedTx, dict[str, object]]:
    """Four inputs (vault receive 0/3, vault change 1/0, a foreign coin, a coin the node lacks) and
    six outputs (change, the hot vault, an allowlisted exchange, a pending entry, an unknown
    address, and the vault's own receive address, which is not change)."""
    scripts = derive_vault_scripts(VAULT, 10)
    change = VAULT.script_pubkey(2, True)
    outputs = [
        TxOut(10_000_000, change),
        TxOut(20_000_000, HOT.script_pubkey(0, False)),
        TxOut(30_000_000, OTHER.script_pubkey(0, False)),
        TxOut(1_000, OTHER.script_pubkey(1, False)),
        TxOut(2_000, OTHER.script_pubkey(2, False)),
        TxOut(3_000, VAULT.script_pubkey(4, False)),
    ]
    tx = spend_tx(4, outputs)
    prevouts = {
        (FUNDING[0], 0): (AMOUNT, VAULT.script_pubkey(3, False)),
        (FUNDING[1], 1): (50_000_000, VAULT.script_pubkey(0, True)),
        (FUNDING[2], 2): (7_000, OTHER.script_pubkey(5, False)),
    }
    args: dict[str, object] = {
        "vault": "cold",
        "descriptor": VAULT,
        "holders": HOLDERS,
        "network": NET,
        "prevouts": prevouts,
        "vault_scripts": scripts,
        "other_vaults": {HOT.script_pubkey(0, False): "hot"},
        "allowlist": {OTHER.script_pubkey(0, False): "exchange"},
        "pending": {OTHER.script_pubkey(1, False): ("newco", 700)},
        "locks": {(FUNDING[0], 0): 5, (FUNDING[1], 1): 6},
        "velocity_used": 123,
        "tip_height": 600,
        "quorum_height": 590,
        "spend": 5,
    }
    return tx, args


def test_gather_facts_establishes_inputs_outputs_and_fee_from_the_node_and_descriptor() -> None:
    tx, args = scenario()
    psbt = make_psbt(tx)
    psbt = signed(psbt, 0, [sign(ALICE1, tx, 0, (0, 3), AMOUNT), sign(BOB, tx, 0, (0, 3), AMOUNT)])
    psbt = signed(psbt, 1, [sign(CAROL, tx, 1, (1, 0), 50_000_000)])
    facts = gather_facts(psbt, **args)  # type: ignore[arg-type]

    assert facts.vault == "cold" and facts.threshold == 2 and facts.holders == ("alice", "bob", "carol")
    i0, i1, i2, i3 = facts.inputs
    assert (i0.outpoint, i0.amount, i0.path, i0.signers, i0.locked_by) == (
        f"{FUNDING[0]}:0",
        AMOUNT,
        (0, 3),
        ("alice", "bob"),
        None,  # locked by this very spend
    )
    assert (i1.amount, i1.path, i1.signers, i1.locked_by) == (50_000_000, (1, 0), ("carol",), 6)
    assert (i2.amount, i2.path, i2.signers) == (7_000, None, ())
    assert (i3.amount, i3.path) == (None, None)
    assert all(i.refusals == () for i in facts.inputs)

    kinds = [(o.destination, o.name, o.active_at) for o in facts.outputs]
    assert kinds == [
        (Destination.CHANGE, None, None),
        (Destination.VAULT, "hot", None),
        (Destination.ALLOWLIST, "exchange", None),
        (Destination.PENDING_ALLOWLIST, "newco", 700),
        (Destination.UNKNOWN, None, None),
        (Destination.UNKNOWN, None, None),  # the vault's receive address is not change
    ]
    assert facts.outputs[1].address == script_address(HOT.script_pubkey(0, False), NET)
    assert facts.outgoing == 20_000_000 + 30_000_000 + 6_000
    assert facts.fee == AMOUNT + 50_000_000 + 7_000 - 60_006_000
    assert not facts.fee_known  # the fourth input's amount is unknown
    assert facts.vsize == estimate_vsize(tx, 2, 4)
    assert (facts.velocity_used, facts.tip_height, facts.quorum_height) == (123, 600, 590)

    failed = {v.split(":")[0] for v in violations(evaluate(facts, SpendLimits()))}
    assert failed == {"inputs", "outputs", "locks", "approvals", "max-fee-rate", "max-fee"}


def test_gather_facts_never_trusts_the_psbts_amounts_or_scripts() -> None:
    tx, args = scenario()
    lying = empty_input(
        witness_utxo=TxOut(1, VAULT.script_pubkey(3, False)),
        witness_script=input_script(VAULT, (0, 9))[1],
        derivations=(BOB.derivation(0, 9),),
    )
    psbt = make_psbt(tx, [lying, *(empty_input() for _ in range(3))])
    psbt = signed(psbt, 0, [sign(BOB, tx, 0, (0, 3), AMOUNT), sign(CAROL, tx, 0, (0, 3), 1)])
    facts = gather_facts(psbt, **args)  # type: ignore[arg-type]
    i0 = facts.inputs[0]
    assert i0.amount == AMOUNT and i0.path == (0, 3) and i0.signers == ("bob",)
    claims = "\n".join(i0.refusals)
    assert "the PSBT claims 0.00000001 BTC for this input but the node has 1.00000000 BTC" in claims
    assert "witness script for this input is not the one re-derived" in claims
    assert "carol's signature" in claims and "does not verify" in claims


def test_a_wrong_scripts_map_does_not_make_a_path() -> None:
    tx, args = scenario()
    args["vault_scripts"] = {VAULT.script_pubkey(3, False): (0, 4)}  # a lie: 0/3's script as 0/4
    facts = gather_facts(make_psbt(tx), **args)  # type: ignore[arg-type]
    assert facts.inputs[0].path is None


def test_a_clean_spend_passes_the_gate() -> None:
    change = VAULT.script_pubkey(0, True)
    exchange = OTHER.script_pubkey(0, False)
    tx = spend_tx(2, [TxOut(60_000_000, exchange), TxOut(89_990_000, change)])
    psbt = make_psbt(tx)
    amounts = (AMOUNT, 50_000_000)
    paths = ((0, 3), (0, 4))
    for n in range(2):
        psbt = signed(psbt, n, [sign(s, tx, n, paths[n], amounts[n]) for s in (ALICE1, ALICE2, CAROL)])
    facts = gather_facts(
        psbt,
        vault="cold",
        descriptor=VAULT,
        holders=HOLDERS,
        network=NET,
        prevouts={(FUNDING[n], n): (amounts[n], VAULT.script_pubkey(3 + n, False)) for n in range(2)},
        vault_scripts=derive_vault_scripts(VAULT, 5),
        other_vaults={},
        allowlist={exchange: "exchange"},
        pending={},
        locks={},
        velocity_used=0,
        tip_height=100,
        quorum_height=None,
    )
    assert [i.signers for i in facts.inputs] == [("alice", "carol")] * 2
    assert facts.fee == 10_000
    results = evaluate(facts, SpendLimits(max_per_spend=60_000_000, required_holders=("carol",)))
    assert violations(results) == ()
    tight = evaluate(facts, SpendLimits(required_holders=("bob",)))
    assert violations(tight) == ("required-holders: required holder bob has not signed every input",)


def test_derive_vault_scripts_covers_both_branches() -> None:
    scripts = derive_vault_scripts(VAULT, 3)
    assert len(scripts) == 6
    assert scripts[VAULT.script_pubkey(2, True)] == (1, 2)
    assert scripts[VAULT.script_pubkey(0, False)] == (0, 0)


def test_an_output_to_a_retired_vault_is_refused_as_retired() -> None:
    """The unknown address of the scenario is a retired vault's: the gate says so (not "unknown")."""
    tx, args = scenario()
    args["retired_vaults"] = {OTHER.script_pubkey(2, False): "old-cold"}
    facts = gather_facts(make_psbt(tx), **args)  # type: ignore[arg-type]
    assert (facts.outputs[4].destination, facts.outputs[4].name) == (Destination.RETIRED_VAULT, "old-cold")
    [outputs] = [r for r in evaluate(facts, SpendLimits()) if r.rule == "outputs"]
    assert not outputs.ok and "pays vault old-cold, which is retired" in outputs.detail, outputs.detail
    assert "#4 0.00002000 BTC to" in outputs.detail and "(retired-vault old-cold)" in outputs.detail
