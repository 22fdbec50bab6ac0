"""BIP-322 proof of funds (custody.bip322) and proof of control (ledger.attest.control), pure.

Our proofs are also judged by an implementation that is not this project's: bip322-core's
verifier (``bip322core.verify.verify_message``, btclib's script interpreter under the BIP's
required rules), given the same proof as its ``pof`` encoding (the finalized PSBT).
"""

from __future__ import annotations

import base64
import contextlib
import dataclasses
import hashlib
import re
import subprocess
import sys
from typing import Any

import pytest
from bip322core.verify import State, verify_message
from bip_utils import Bip32KeyNetVersions, Bip32Secp256k1
from coincurve import PrivateKey
from hypothesis import given
from hypothesis import strategies as st

from custody import bip322
from custody.address import address_script
from custody.descriptor import MultisigDescriptor
from custody.errors import InvalidInput, PolicyViolation
from custody.keygen import bip48_path, test_key_from_seed
from custody.keys import format_path
from custody.network import Network
from custody.psbt import Psbt, TxIn, TxOut, UnsignedTx
from custody.sighash import segwit_v0_sighash
from ledger.attest import control, wsh_descriptor
from ledger.chain.vaults import Vault

NET = Network.REGTEST
SEEDS = {name: hashlib.sha256(f"bip322 unit {name}".encode()).digest() for name in ("ann", "bob", "cat")}
BLOCK: dict[str, Any] = {
    "network": "regtest",
    "height": 120,
    "block_hash": "11" * 32,
    "tree_size": 57,
    "root": "22" * 32,
}
MESSAGE = control.control_message(**BLOCK, vault="treasury")


# --- BIP-322 test vectors ---


def test_message_hash_vectors() -> None:
    assert (
        bip322.message_hash(b"").hex() == "c90c269c4f8fcbe6880f72a721ddfbf1914268a794cbb21cfafee13770ae19f1"
    )
    assert (
        bip322.message_hash(b"Hello World").hex()
        == "f0eb03b1a75ac6d9847f55c624a99169b5dccba2a31f5b23bea77ba270de0a7a"
    )


@pytest.mark.parametrize(
    ("message", "to_spend", "to_sign"),
    [
        (
            b"",
            "c5680aa69bb8d860bf82d4e9cd3504b55dde018de765a91bb566283c545a99a7",
            "1e9654e951a5ba44c8604c4de6c67fd78a27e81dcadcfe1edf638ba3aaebaed6",
        ),
        (
            b"Hello World",
            "b79d196740ad5217771c1098fc4a4b51e0535c32236c71f1ea4d61a2d603352b",
            "88737ae86f2077145f93cc4b153ae9a1cb8d56afa511988c149c5c8c9d93bddf",
        ),
    ],
)
def test_transaction_hash_vectors(message: bytes, to_spend: str, to_sign: str) -> None:
    challenge = address_script("bc1q9vza2e8x573nczrlzms0wvx3gsqjx7vavgkx0l", Network.MAINNET)
    assert bip322.to_spend_txid(message, challenge) == to_spend
    tx = bip322.to_sign(message, challenge)
    assert tx.txid == to_sign
    assert (tx.version, tx.locktime, tx.inputs[0].sequence) == (0, 0, 0)
    assert [(o.value, o.script_pubkey) for o in tx.outputs] == [(0, b"\x6a")]


def test_to_spend_spends_the_null_outpoint() -> None:
    raw = bip322.to_spend_bytes(b"m", b"\x00\x20" + bytes(32))
    assert raw[5:41] == bytes(32) + b"\xff\xff\xff\xff"
    assert raw[41:76] == b"\x22\x00\x20" + bip322.message_hash(b"m")


# --- a 2-of-3 vault whose private keys the test holds ---


def _account(name: str) -> Any:
    versions = Bip32KeyNetVersions(NET.xpub_version, NET.xprv_version)
    master = Bip32Secp256k1.FromSeed(SEEDS[name], versions)
    return master.DerivePath("m/" + format_path(bip48_path(NET, 0)).replace("h", "'"))


def _vault() -> Vault:
    keys = [test_key_from_seed(SEEDS[n], NET) for n in SEEDS]
    descriptor = MultisigDescriptor.from_keys(2, keys)
    return Vault("treasury", "treasury", descriptor, tuple(SEEDS), NET, None, False, "w")


def _secret(name: str, branch: int, index: int) -> PrivateKey:
    node = _account(name).ChildKey(branch).ChildKey(index)
    return PrivateKey(bytes(node.PrivateKey().Raw().ToBytes()))


def _outs(vault: Vault, index: int = 3, change: bool = False) -> list[control.Output]:
    script = vault.descriptor.script_pubkey(index, change)
    branch = 1 if change else 0
    return [
        ("ab" * 32, 1, 150_000, script, branch, index),
        ("0c" * 32, 0, 2_500_000_000, script, branch, index),
    ]


def _sign(psbt: Psbt, name: str, sighash: int = 1, high_s: bool = False) -> Psbt:
    """A holder's signatures on every input, as walletprocesspsbt would add them."""
    for index, inp in enumerate(psbt.inputs):
        assert inp.witness_script is not None and inp.witness_utxo is not None
        branch, child = inp.derivations[0].path[-2:]
        key = _secret(name, branch, child)
        digest = segwit_v0_sighash(psbt.tx, index, inp.witness_script, inp.witness_utxo.value, sighash)
        der = key.sign(digest, hasher=None)
        if high_s:
            der = _flip_s(der)
        psbt = psbt.with_partial_sigs(index, [(key.public_key.format(), der + bytes((sighash,)))])
    return psbt


def _flip_s(der: bytes) -> bytes:
    order = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
    r_len = der[3]
    r = der[4 : 4 + r_len]
    s = int.from_bytes(der[6 + r_len :], "big")
    s_bytes = (order - s).to_bytes(33, "big").lstrip(b"\x00")
    if s_bytes[0] & 0x80:
        s_bytes = b"\x00" + s_bytes
    body = b"\x02" + bytes((len(r),)) + r + b"\x02" + bytes((len(s_bytes),)) + s_bytes
    return b"\x30" + bytes((len(body),)) + body


def _signed_psbt(names: tuple[str, ...] = ("ann", "cat"), **kwargs: Any) -> tuple[Vault, Psbt]:
    vault = _vault()
    [(_, proposal)] = control.prepare(vault, _outs(vault), MESSAGE)
    for name in names:
        proposal = control.add_signed(proposal, _sign(proposal, name, **kwargs))
    return vault, proposal


def _independent(address: str, psbt: Psbt, message: bytes) -> State:
    """bip322-core's verdict on our finalized PSBT (its ``pof`` encoding of a proof of funds)."""
    finalized = bip322.finalize_psbt(psbt)
    result = verify_message(address, "pof" + base64.b64encode(finalized.serialize()).decode(), message)
    return result.state


# --- the proof: build, sign, finalize, verify ---


def test_prepare_builds_a_psbt_signers_recognise() -> None:
    vault = _vault()
    [(address, psbt)] = control.prepare(vault, _outs(vault), MESSAGE)
    assert address == vault.descriptor.address(3, False, NET)
    first = psbt.inputs[0]
    challenge = vault.descriptor.script_pubkey(3, False)
    assert first.witness_utxo is not None and first.witness_utxo.value == 0
    assert first.witness_utxo.script_pubkey == challenge
    assert first.non_witness_utxo == bip322.to_spend_bytes(MESSAGE, challenge)
    assert psbt.tx.inputs[0] == TxIn(bip322.to_spend_txid(MESSAGE, challenge), 0, 0)
    assert [(i.txid, i.vout) for i in psbt.tx.inputs[1:]] == [("0c" * 32, 0), ("ab" * 32, 1)]
    assert all(len(i.derivations) == 3 and i.sighash_type == 1 for i in psbt.inputs)
    assert len(psbt.xpubs) == 3
    assert Psbt.parse(psbt.to_base64()) == psbt


def test_signed_proof_verifies_here_and_independently() -> None:
    vault, psbt = _signed_psbt()
    proof = control.finalize(psbt, vault, MESSAGE)
    assert proof["signers"] == ["ann", "cat"]
    assert proof["utxos"][0]["amount"] == 2_500_000_000
    assert control.verify(proof, str(vault.descriptor), MESSAGE, vault.holders) == ()
    assert control.verify(proof, str(vault.descriptor), MESSAGE) == ()
    assert _independent(proof["address"], psbt, MESSAGE) is State.VALID


def test_change_address_and_single_input_full_format_independently() -> None:
    """A proof with no additional inputs is BIP-322's plain full format; bip322-core reads it as ``ful``."""
    vault = _vault()
    info = control.spend_info(vault.descriptor, True, 7)
    psbt = bip322.proof_psbt(b"Hello World", info, ())
    for name in ("bob", "cat"):
        psbt = _sign(psbt, name)
    signed = bip322.signed_tx(bip322.finalize_psbt(psbt))
    address = vault.descriptor.address(7, True, NET)
    assert verify_message(address, "ful" + signed.to_base64(), b"Hello World").state is State.VALID
    check = bip322.verify_proof(b"Hello World", info.script_pubkey, signed.to_base64(), ())
    assert check.ok and len(check.signers[0]) == 2


def test_one_signature_short_is_refused() -> None:
    vault, psbt = _signed_psbt(("bob",))
    with pytest.raises(PolicyViolation, match="1 signature"):
        control.finalize(psbt, vault, MESSAGE)
    # a witness assembled by hand with one signature fails here and independently
    first = psbt.inputs[0]
    assert first.witness_script is not None
    script = first.witness_script
    short = tuple(
        dataclasses.replace(i, final_script_witness=(b"", i.partial_sigs[0][1], script)) for i in psbt.inputs
    )
    forged = dataclasses.replace(psbt, inputs=short)
    text = bip322.signed_tx(forged).to_base64()
    check = bip322.verify_proof(
        MESSAGE, first.witness_utxo.script_pubkey if first.witness_utxo else b"", text, _prevouts(psbt)
    )
    assert any("CLEANSTACK" in f for f in check.findings)
    address = vault.descriptor.address(3, False, NET)
    result = verify_message(address, "pof" + base64.b64encode(forged.serialize()).decode(), MESSAGE)
    assert result.state is State.INVALID


def _prevouts(psbt: Psbt) -> list[bip322.Prevout]:
    return [
        bip322.Prevout(t.txid, t.vout, *bip322.input_prevout(psbt, i))
        for i, t in enumerate(psbt.tx.inputs)
        if i
    ]


def test_proof_for_another_message_or_block_is_refused() -> None:
    vault, psbt = _signed_psbt()
    proof = control.finalize(psbt, vault, MESSAGE)
    other = control.control_message(**{**BLOCK, "block_hash": "33" * 32, "height": 121}, vault="treasury")
    findings = control.verify(proof, str(vault.descriptor), other)
    assert findings and "another message, block or address" in findings[0]
    assert _independent(proof["address"], psbt, other) is State.INVALID


def test_tampered_witness_is_refused() -> None:
    vault, psbt = _signed_psbt()
    proof = control.finalize(psbt, vault, MESSAGE)
    raw = bytearray(base64.b64decode(proof["proof"]))
    sig_at = raw.find(bytes.fromhex(psbt.inputs[1].partial_sigs[0][1].hex()))
    raw[sig_at + 10] ^= 1
    findings = control.verify(
        {**proof, "proof": base64.b64encode(bytes(raw)).decode()}, str(vault.descriptor), MESSAGE
    )
    assert findings and "signature" in findings[0]


@pytest.mark.parametrize(
    ("field", "value", "expected"),
    [
        ("index", 4, "not the descriptor's"),
        ("branch", 1, "not the descriptor's"),
        ("address", "bcrt1qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqsh7m0sy", "address"),
        ("format", "other/v1", "format"),
        ("proof", "not base64!", "does not decode"),
    ],
)
def test_tampered_fields_are_refused(field: str, value: object, expected: str) -> None:
    vault, psbt = _signed_psbt()
    proof = control.finalize(psbt, vault, MESSAGE)
    findings = control.verify({**proof, field: value}, str(vault.descriptor), MESSAGE)
    assert findings and expected in findings[0]


def test_claimed_outputs_must_be_exactly_the_signed_ones() -> None:
    vault, psbt = _signed_psbt()
    proof = control.finalize(psbt, vault, MESSAGE)
    descriptor = str(vault.descriptor)
    more = {**proof, "amount_note": 1, "utxos": [*proof["utxos"], {**proof["utxos"][0], "vout": 9}]}
    assert "not proven" in control.verify(more, descriptor, MESSAGE)[0]
    fewer = {**proof, "utxos": proof["utxos"][:1]}
    assert "not claimed" in control.verify(fewer, descriptor, MESSAGE)[0]
    inflated = {**proof, "utxos": [{**proof["utxos"][0], "amount": 2_600_000_000}, proof["utxos"][1]]}
    assert "does not verify" in control.verify(inflated, descriptor, MESSAGE)[0]
    swapped = {**proof, "signers": ["ann", "bob"]}
    assert "signers listed" in control.verify(swapped, descriptor, MESSAGE, vault.holders)[0]


def test_another_vaults_descriptor_is_refused() -> None:
    vault, psbt = _signed_psbt()
    proof = control.finalize(psbt, vault, MESSAGE)
    other = MultisigDescriptor.from_keys(2, [test_key_from_seed(bytes([i]) * 32, NET) for i in (1, 2, 3)])
    assert "not the descriptor's" in control.verify(proof, str(other), MESSAGE)[0]


def test_add_signed_refuses_bad_signatures_and_other_transactions() -> None:
    vault = _vault()
    [(_, proposal)] = control.prepare(vault, _outs(vault), MESSAGE)
    with pytest.raises(PolicyViolation, match="high S"):
        control.add_signed(proposal, _sign(proposal, "ann", high_s=True))
    with pytest.raises(PolicyViolation, match="sighash type"):
        control.add_signed(proposal, _sign(proposal, "ann", sighash=0x81))
    [(_, other)] = control.prepare(vault, _outs(vault, index=4), MESSAGE)
    with pytest.raises(InvalidInput, match="not this proof's"):
        control.add_signed(proposal, _sign(other, "ann"))
    # a stranger's key, even with a valid signature over the same transaction
    stranger = PrivateKey(hashlib.sha256(b"stranger").digest())
    inp = proposal.inputs[0]
    assert inp.witness_script is not None
    digest = segwit_v0_sighash(proposal.tx, 0, inp.witness_script, 0, 1)
    forged = proposal.with_partial_sigs(
        0, [(stranger.public_key.format(), stranger.sign(digest, hasher=None) + b"\x01")]
    )
    with pytest.raises(PolicyViolation, match="not one of the script's keys"):
        control.add_signed(proposal, forged)


def test_prepare_refuses_foreign_outputs() -> None:
    vault = _vault()
    foreign = ("ab" * 32, 0, 1000, b"\x00\x20" + bytes(32), 0, 3)
    with pytest.raises(InvalidInput, match="only the vault's own outputs"):
        control.prepare(vault, [foreign], MESSAGE)
    with pytest.raises(InvalidInput, match="branch 7"):
        control.prepare(vault, [(*_outs(vault)[0][:4], 7, 3)], MESSAGE)
    with pytest.raises(InvalidInput, match="twice"):
        control.prepare(vault, [_outs(vault)[0], _outs(vault)[0]], MESSAGE)
    with pytest.raises(InvalidInput, match="no outputs"):
        control.prepare(vault, [], MESSAGE)


def _two_addresses(vault: Vault) -> list[control.Output]:
    change_script = vault.descriptor.script_pubkey(7, True)
    return [*_outs(vault), ("dd" * 32, 5, 42_000, change_script, 1, 7)]


def _checked(vault: Vault, outputs: list[control.Output]) -> list[control.CheckedOutput]:
    return [(t, v, a, s, vault.descriptor.witness_script(i, b == 1)) for t, v, a, s, b, i in outputs]


def test_finish_and_verify_control_over_two_addresses() -> None:
    vault = _vault()
    outputs = _two_addresses(vault)
    texts = control.prepare_control(vault, outputs, MESSAGE)
    assert [a for a, _ in texts] == sorted(
        [vault.descriptor.address(3, False, NET), vault.descriptor.address(7, True, NET)]
    )
    signed = [_sign(Psbt.parse(t), name).to_base64() for _, t in texts for name in ("cat", "bob")]
    result = control.finish_control(vault, outputs, MESSAGE, signed)
    assert result["message"] == MESSAGE.decode()
    assert [p["signers"] for p in result["proofs"]] == [["bob", "cat"], ["bob", "cat"]]
    checked = _checked(vault, outputs)
    common = {**BLOCK, "vault": "treasury", "threshold": 2}
    assert control.verify_control(result, **common, outputs=checked) == []
    full: dict[str, Any] = {"descriptor": str(vault.descriptor), "holders": vault.holders}
    assert control.verify_control(result, **common, outputs=checked, **full) == []

    extra = [*checked, ("ee" * 32, 0, 1, checked[0][3], checked[0][4])]
    assert any(
        "not proven: " + "ee" * 32 in f for f in control.verify_control(result, **common, outputs=extra)
    )
    assert any(
        "not 3-of-n" in f
        for f in control.verify_control(result, **{**common, "threshold": 3}, outputs=checked)
    )
    later = {**common, "height": 121, "block_hash": "44" * 32}
    findings = control.verify_control(result, **later, outputs=checked)
    assert "message is not" in findings[0] and "another message, block or address" in findings[1]
    shifted = {**result, "proofs": result["proofs"][:1]}
    assert "not proven" in control.verify_control(shifted, **common, outputs=checked)[-1]
    doubled = {**result, "proofs": [*result["proofs"], result["proofs"][0]]}
    assert "proven twice" in control.verify_control(doubled, **common, outputs=checked)[-1]
    assert control.verify_control({"format": "x"}, **common, outputs=checked)
    assert control.verify_control({**result, "proofs": [7]}, **common, outputs=checked)


def test_finish_control_refuses_too_few_signatures_and_foreign_psbts() -> None:
    vault = _vault()
    outputs = _two_addresses(vault)
    texts = control.prepare_control(vault, outputs, MESSAGE)
    one_each = [_sign(Psbt.parse(t), "ann").to_base64() for _, t in texts]
    with pytest.raises(PolicyViolation) as refused:
        control.finish_control(vault, outputs, MESSAGE, one_each)
    assert len(refused.value.findings) == 2 and all("1 signature" in f for f in refused.value.findings)
    high_s = [_sign(Psbt.parse(texts[1][1]), "bob", high_s=True).to_base64()]
    with pytest.raises(PolicyViolation, match=f"vault treasury, address {texts[1][0]}: input 0: .*high S"):
        control.finish_control(vault, outputs, MESSAGE, high_s)
    other = control.control_message(**{**BLOCK, "tree_size": 58}, vault="treasury")
    [(_, foreign), *_] = control.prepare_control(vault, outputs, other)
    with pytest.raises(InvalidInput, match="none of vault treasury's proofs"):
        control.finish_control(vault, outputs, MESSAGE, [_sign(Psbt.parse(foreign), "ann").to_base64()])


# --- verify_proof: each rule on its own ---


def _proof_parts() -> tuple[bytes, Psbt, bip322.SignedTx, list[bip322.Prevout]]:
    _, psbt = _signed_psbt()
    challenge = bip322.input_prevout(psbt, 0)[1]
    return challenge, psbt, bip322.signed_tx(bip322.finalize_psbt(psbt)), _prevouts(psbt)


def _with_witness(signed: bip322.SignedTx, index: int, witness: tuple[bytes, ...]) -> str:
    witnesses = list(signed.witnesses)
    witnesses[index] = witness
    return bip322.SignedTx(signed.tx, tuple(witnesses)).to_base64()


def test_witness_rules() -> None:
    challenge, _, signed, prevouts = _proof_parts()
    dummy, sig1, sig2, script = signed.witnesses[1]

    def finding(witness: tuple[bytes, ...]) -> str:
        check = bip322.verify_proof(MESSAGE, challenge, _with_witness(signed, 1, witness), prevouts)
        assert not check.ok
        return check.findings[0]

    assert "NULLDUMMY" in finding((b"\x01", sig1, sig2, script))
    assert "script order" in finding((dummy, sig2, sig1, script))
    assert "script order" in finding((dummy, sig1, sig1, script))
    assert "CLEANSTACK" in finding((dummy, sig1, sig2, sig2, script))
    assert "does not hash" in finding((dummy, sig1, sig2, script + b"\x00"))
    assert "no witness" in finding(())


def test_framing_rules() -> None:
    challenge, _, signed, prevouts = _proof_parts()

    def finding(**changes: Any) -> str:
        tx = dataclasses.replace(signed.tx, **changes)
        text = bip322.SignedTx(tx, signed.witnesses).to_base64()
        check = bip322.verify_proof(MESSAGE, challenge, text, prevouts)
        assert not check.ok
        return check.findings[0]

    assert "version" in finding(version=2)
    assert "time-locked" in finding(locktime=500)
    two_outputs = (*signed.tx.outputs, signed.tx.outputs[0])
    assert "exactly one output" in finding(outputs=two_outputs)
    paying = (dataclasses.replace(signed.tx.outputs[0], value=1),)
    assert "exactly one output" in finding(outputs=paying)
    again = (*signed.tx.inputs, signed.tx.inputs[1])
    assert (
        "twice"
        in bip322.verify_proof(
            MESSAGE,
            challenge,
            bip322.SignedTx(
                dataclasses.replace(signed.tx, inputs=again), (*signed.witnesses, signed.witnesses[1])
            ).to_base64(),
            [*prevouts, prevouts[0]],
        ).findings[-1]
    )


def test_encoding_is_strict() -> None:
    challenge, _, signed, prevouts = _proof_parts()
    raw = signed.serialize()
    assert bip322.parse_signed(raw) == signed
    for bad in (raw + b"\x00", raw[:-1], raw[:4] + raw[6:]):
        assert not bip322.verify_proof(MESSAGE, challenge, base64.b64encode(bad).decode(), prevouts).ok
    text = signed.to_base64()
    assert bip322.verify_proof(MESSAGE, challenge, f"  {text}\n", prevouts).ok
    non_canonical = text[:-2] + ("B" if text[-2] == "A" else "A") + text[-1:] if text.endswith("=") else None
    if non_canonical is not None:
        assert not bip322.verify_proof(MESSAGE, challenge, non_canonical, prevouts).ok


def test_multisig_keys_refuses_other_scripts() -> None:
    with pytest.raises(InvalidInput):
        bip322.multisig_keys(b"\x51\x21" + b"\x02" * 33 + b"\x51\xac")
    with pytest.raises(InvalidInput):
        bip322.multisig_keys(b"\x53\x21" + b"\x02" * 33 + b"\x51\xae")
    m, keys = bip322.multisig_keys(_vault().descriptor.witness_script(0, False))
    assert (m, len(keys)) == (2, 3)


# --- the offline pieces ---


def test_offline_descriptor_reader_equals_the_service_descriptor() -> None:
    vault = _vault()
    offline = wsh_descriptor.parse(str(vault.descriptor))
    for change, index in ((False, 0), (True, 0), (False, 41), (True, 999)):
        branch = 1 if change else 0
        assert offline.witness_script(branch, index) == vault.descriptor.witness_script(index, change)
        assert offline.pubkeys(branch, index) == vault.descriptor.pubkeys(index, change)
    receive = wsh_descriptor.parse(vault.descriptor.receive())
    assert receive.branches == (0,)
    with pytest.raises(InvalidInput, match="checksum"):
        wsh_descriptor.parse(str(vault.descriptor)[:-1] + ("q" if str(vault.descriptor)[-1] != "q" else "p"))
    with pytest.raises(InvalidInput):
        wsh_descriptor.parse(str(vault.descriptor).partition("#")[0])


def test_offline_descriptor_reader_on_mainnet_keys_and_apostrophes() -> None:
    keys = [test_key_from_seed(bytes([i]) * 32, Network.MAINNET) for i in (4, 5, 6, 7)]
    descriptor = MultisigDescriptor.from_keys(3, keys)
    origins = re.compile(r"\[[^]]*\]")
    body = origins.sub(lambda m: m[0].replace("h", "'"), str(descriptor).partition("#")[0])
    offline = wsh_descriptor.parse(f"{body}#{wsh_descriptor.descriptor_checksum(body)}")
    assert offline.mainnet and offline.threshold == 3
    assert offline.witness_script(1, 12) == descriptor.witness_script(12, True)
    assert wsh_descriptor.descriptor_checksum(str(descriptor).partition("#")[0]) == str(descriptor)[-8:]


def test_control_message() -> None:
    assert MESSAGE.decode() == (
        "reserve-ledger proof of control v1\nnetwork: regtest\nvault: treasury\n"
        f"block: 120 {'11' * 32}\nledger: 57 {'22' * 32}"
    )
    for bad in ({"block_hash": "XX" * 32}, {"height": -1}, {"tree_size": True}, {"network": "a b"}):
        with pytest.raises(InvalidInput):
            control.control_message(**{**BLOCK, "vault": "v", **bad})
    with pytest.raises(InvalidInput):
        control.control_message(**BLOCK, vault="two words")


def test_verifier_imports_only_stdlib_cryptography_and_coincurve() -> None:
    code = (
        "import sys; import ledger.attest.control, custody.bip322;"
        "heavy = {'bip_utils', 'bitcoin', 'sqlalchemy', 'alembic', 'click', 'rich', 'embit', 'btclib'};"
        "print(sorted(heavy & {m.split('.')[0] for m in sys.modules}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"


def test_holders_can_check_a_psbt_is_a_proof_not_a_spend() -> None:
    vault = _vault()
    [(_, psbt)] = control.prepare(vault, _outs(vault), MESSAGE)
    assert bip322.check_proof_psbt(psbt, MESSAGE) == ()
    assert bip322.check_proof_psbt(Psbt.parse(psbt.to_base64()), MESSAGE) == ()
    assert "not to_spend of this message" in bip322.check_proof_psbt(psbt, b"another message")[0]
    # a coordinator swapping input 0 for a real output would have the holders burn every input to fees
    real = dataclasses.replace(psbt.tx, inputs=(TxIn("ab" * 32, 7, 0), *psbt.tx.inputs[1:]))
    first = dataclasses.replace(psbt.inputs[0], non_witness_utxo=None)
    spend = dataclasses.replace(psbt, tx=real, inputs=(first, *psbt.inputs[1:]))
    assert "not to_spend" in bip322.check_proof_psbt(spend, MESSAGE)[0]
    paying = dataclasses.replace(psbt.tx, outputs=(dataclasses.replace(psbt.tx.outputs[0], value=1000),))
    assert "outputs other than" in bip322.check_proof_psbt(dataclasses.replace(psbt, tx=paying), MESSAGE)[-1]
    anyone = dataclasses.replace(psbt.inputs[1], sighash_type=0x81)
    loose = dataclasses.replace(psbt, inputs=(psbt.inputs[0], anyone, *psbt.inputs[2:]))
    assert "not ALL" in bip322.check_proof_psbt(loose, MESSAGE)[0]


# --- property tests: the strict parser ---

_txin = st.builds(
    TxIn,
    st.binary(min_size=32, max_size=32).map(bytes.hex),
    st.integers(0, 2**32 - 2),
    st.integers(0, 2**32 - 1),
)
_stack = st.lists(st.binary(max_size=80), max_size=5).map(tuple)


@st.composite
def _signed_txs(draw: st.DrawFn) -> bip322.SignedTx:
    inputs = tuple(draw(st.lists(_txin, min_size=1, max_size=4)))
    outputs = tuple(
        draw(st.lists(st.builds(TxOut, st.integers(0, 21 * 10**14), st.binary(max_size=40)), max_size=3))
    )
    tx = UnsignedTx(draw(st.integers(0, 2**31)), draw(st.integers(0, 2**32 - 1)), inputs, outputs)
    return bip322.SignedTx(tx, tuple(draw(_stack) for _ in inputs))


@given(_signed_txs())
def test_signed_transactions_round_trip(signed: bip322.SignedTx) -> None:
    raw = signed.serialize()
    assert bip322.parse_signed(raw) == signed
    assert bip322.decode_proof(signed.to_base64()) == signed


@given(st.binary(max_size=300))
def test_any_bytes_give_findings_never_an_exception(raw: bytes) -> None:
    check = bip322.verify_proof(MESSAGE, b"\x00\x20" + bytes(32), base64.b64encode(raw).decode(), [])
    assert not check.ok


@given(_signed_txs(), st.data())
def test_one_flipped_byte_never_parses_to_the_same_transaction(
    signed: bip322.SignedTx, data: st.DataObject
) -> None:
    raw = bytearray(signed.serialize())
    at = data.draw(st.integers(0, len(raw) - 1))
    raw[at] ^= data.draw(st.integers(1, 255))
    with contextlib.suppress(InvalidInput):
        assert bip322.parse_signed(bytes(raw)) != signed


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=6,
)


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every key path inside a JSON value (the value itself included)."""
    out = [prefix]
    if isinstance(value, dict):
        for key, item in value.items():
            out += _paths(item, (*prefix, key))
    elif isinstance(value, list):
        for i, item in enumerate(value):
            out += _paths(item, (*prefix, i))
    return out


def _replaced(value: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    copy = dict(value) if isinstance(value, dict) else list(value)
    copy[path[0]] = _replaced(value[path[0]], path[1:], new)
    return copy


_VALID: dict[str, Any] = {}


def _valid_control() -> tuple[dict[str, Any], list[control.CheckedOutput], Vault]:
    if not _VALID:
        vault = _vault()
        outputs = _two_addresses(vault)
        texts = control.prepare_control(vault, outputs, MESSAGE)
        signed = [_sign(Psbt.parse(t), name).to_base64() for _, t in texts for name in ("ann", "bob")]
        _VALID.update(control=control.finish_control(vault, outputs, MESSAGE, signed), vault=vault)
        _VALID["checked"] = _checked(vault, outputs)
    return _VALID["control"], _VALID["checked"], _VALID["vault"]


@given(st.data(), _json)
def test_any_changed_field_is_a_finding_never_an_exception(data: st.DataObject, new: Any) -> None:
    """Each field of the control object, replaced by any JSON value, is refused (or is the same)."""
    valid, checked, vault = _valid_control()
    path = data.draw(st.sampled_from(_paths(valid)))
    changed = _replaced(valid, path, new)
    full: dict[str, Any] = {"descriptor": str(vault.descriptor), "holders": vault.holders}
    findings = control.verify_control(
        changed, **BLOCK, vault="treasury", threshold=2, outputs=checked, **full
    )
    assert isinstance(findings, list)
    if changed != valid:
        assert findings, path
