# ruff: noqa: E501
"""custody.sighash: BIP-143's published sighash vectors, strict DER / low-S, and check_signature's reasons."""

from __future__ import annotations

import coincurve
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from custody.errors import InvalidInput
from custody.psbt import Psbt, TxOut, UnsignedTx
from custody.sighash import (
    SECP256K1_ORDER,
    SIGHASH_ALL,
    SIGHASH_ANYONECANPAY,
    SIGHASH_NONE,
    SIGHASH_SINGLE,
    check_signature,
    der_problem,
    hashtype_name,
    segwit_v0_sighash,
    verify_ecdsa,
)

# --- BIP-143 test vectors (bitcoin/bips bip-0143.mediawiki, "Example") ---------------------------
# scriptCode values are given without the BIP's length prefix; amounts in satoshis.

P2WPKH_TX = "0100000002fff7f7881a8099afa6940d42d1e7f6362bec38171ea3edf433541db4e4ad969f0000000000eeffffffef51e1b804cc89d182d279655c3aa89e815b1b309fe287d9b2b55d57b90ec68a0100000000ffffffff02202cb206000000001976a9148280b37df378db99f66f85c95a783a76ac7a6d5988ac9093510d000000001976a9143bde42dbee7e4dbe6a21b2d50ce2f0167faa815988ac11000000"
P2SH_P2WPKH_TX = "0100000001db6b1b20aa0fd7b23880be2ecbd4a98130974cf4748fb66092ac4d3ceb1a54770100000000feffffff02b8b4eb0b000000001976a914a457b684d7f0d539a46a45bbc043f35b59d0d96388ac0008af2f000000001976a914fd270b1ee6abcaea97fea7ad0402e8bd8ad6d77c88ac92040000"
P2WSH_TX_1 = "0100000002fe3dc9208094f3ffd12645477b3dc56f60ec4fa8e6f5d67c565d1c6b9216b36e0000000000ffffffff0815cf020f013ed6cf91d29f4202e8a58726b1ac6c79da47c23d1bee0a6925f80000000000ffffffff0100f2052a010000001976a914a30741f8145e5acadf23f751864167f32e0963f788ac00000000"
P2WSH_TX_2 = "0100000002e9b542c5176808107ff1df906f46bb1f2583b16112b95ee5380665ba7fcfc0010000000000ffffffff80e68831516392fcd100d186b3c2c7b95c80b53c77e77c35ba03a66b429a2a1b0000000000ffffffff0280969800000000001976a914de4b231626ef508c9a74a8517e6783c0546d6b2888ac80969800000000001976a9146648a8cd4531e1ec47f35916de8e259237294d1e88ac00000000"
P2SH_P2WSH_TX = "010000000136641869ca081e70f394c6948e8af409e18b619df2ed74aa106c1ca29787b96e0100000000ffffffff0200e9a435000000001976a914389ffce9cd9ae88dcc0631e88a821ffdbe9bfe2688acc0832f05000000001976a9147480a33f950689af511e6e84c138dbbd3c3ee41588ac00000000"
P2SH_P2WSH_SCRIPT = "56210307b8ae49ac90a048e9b53357a2354b3334e9c8bee813ecb98e99a7e07e8c3ba32103b28f0c28bfab54554ae8c658ac5c3e0ce6e79ad336331f78c428dd43eea8449b21034b8113d703413d57761b8b9781957b8c0ac1dfe69f492580ca4195f50376ba4a21033400f6afecb833092a9a21cfdf1ed1376e58c5d1f47de74683123987e967a8f42103a6d48b1131e94ba04d9737d61acdaa1322008af9602b3b14862c07a1789aac162102d8b661b0b3302ee2f162b09e07a55ad5dfbe673a9f01d9f0c19617681024306b56ae"

# (name, tx, input index, scriptCode, amount, hashtype, sigHash, public key, signature with hashtype)
VECTORS = (
    ("native P2WPKH", P2WPKH_TX, 1, "76a9141d0f172a0ecb48aee1be1f2687d2963ae33f71a188ac", 600_000_000, 0x01,
     "c37af31116d1b27caf68aae9e3ac82f1477929014d5b917657d0eb49478cb670", "025476c2e83188368da1ff3e292e7acafcdb3566bb0ad253f62fc70f07aeee6357",
     "304402203609e17b84f6a7d30c80bfa610b5b4542f32a8a0d5447a12fb1366d7f01cc44a0220573a954c4518331561406f90300e8f3358f51928d43c212a8caed02de67eebee01"),
    ("P2SH-P2WPKH", P2SH_P2WPKH_TX, 0, "76a91479091972186c449eb1ded22b78e40d009bdf008988ac", 1_000_000_000, 0x01,
     "64f3b0f4dd2bb3aa1ce8566d220cc74dda9df97d8490cc81d89d735c92e59fb6", "03ad1d8e89212f0b92c74d23bb710c00662ad1470198ac48c43f7d6f93a2a26873",
     "3044022047ac8e878352d3ebbde1c94ce3a10d057c24175747116f8288e5d794d12d482f0220217f36a485cae903c713331d877c1f64677e3622ad4010726870540656fe9dcb01"),
    ("native P2WSH, unexecuted OP_CODESEPARATOR kept, SINGLE out of range", P2WSH_TX_1, 1,
     "21026dccc749adc2a9d0d89497ac511f760f45c47dc5ed9cf352a58ac706453880aeadab210255a9626aebf5e29c0e6538428ba0d1dcf6ca98ffdf086aa8ced5e0d0215ea465ac", 4_900_000_000, 0x03,
     "82dde6e4f1e94d02c2b7ad03d2115d691f48d064e9d52f58194a6637e4194391", "026dccc749adc2a9d0d89497ac511f760f45c47dc5ed9cf352a58ac706453880ae",
     "3044022027dc95ad6b740fe5129e7e62a75dd00f291a2aeb1200b84b09d9e3789406b6c002201a9ecd315dd6a0e632ab20bbb98948bc0c6fb204f2c286963bb48517a7058e2703"),
    ("native P2WSH, after the executed OP_CODESEPARATOR", P2WSH_TX_1, 1,
     "210255a9626aebf5e29c0e6538428ba0d1dcf6ca98ffdf086aa8ced5e0d0215ea465ac", 4_900_000_000, 0x03,
     "fef7bd749cce710c5c052bd796df1af0d935e59cea63736268bcbe2d2134fc47", "0255a9626aebf5e29c0e6538428ba0d1dcf6ca98ffdf086aa8ced5e0d0215ea465",
     "304402200de66acf4527789bfda55fc5459e214fa6083f936b430a762c629656216805ac0220396f550692cd347171cbc1ef1f51e15282e837bb2b30860dc77c8f78bc8501e503"),
    ("native P2WSH, SINGLE|ANYONECANPAY, input 0", P2WSH_TX_2, 0,
     "0063ab68210392972e2eb617b2388771abe27235fd5ac44af8e61693261550447a4c3e39da98ac", 16_777_215, 0x83,
     "e9071e75e25b8a1e298a72f0d2e9f4f95a0f5cdf86a533cda597eb402ed13b3a", "0392972e2eb617b2388771abe27235fd5ac44af8e61693261550447a4c3e39da98",
     "3045022100f6a10b8604e6dc910194b79ccfc93e1bc0ec7c03453caaa8987f7d6c3413566002206216229ede9b4d6ec2d325be245c5b508ff0339bf1794078e20bfe0babc7ffe683"),
    ("native P2WSH, SINGLE|ANYONECANPAY, input 1", P2WSH_TX_2, 1,
     "68210392972e2eb617b2388771abe27235fd5ac44af8e61693261550447a4c3e39da98ac", 16_777_215, 0x83,
     "cd72f1f1a433ee9df816857fad88d8ebd97e09a75cd481583eb841c330275e54", "0392972e2eb617b2388771abe27235fd5ac44af8e61693261550447a4c3e39da98",
     "30440220032521802a76ad7bf74d0e2c218b72cf0cbc867066e2e53db905ba37f130397e02207709e2188ed7f08f4c952d9d13986da504502b8c3be59617e043552f506c46ff83"),
)  # fmt: skip

# P2SH-P2WSH 6-of-6, one signature per sighash type: (hashtype, sigHash, public key, signature)
SIX_OF_SIX = (
    (0x01, "185c0be5263dce5b4bb50a047973c1b6272bfbd0103a89444597dc40b248ee7c", "0307b8ae49ac90a048e9b53357a2354b3334e9c8bee813ecb98e99a7e07e8c3ba3", "304402206ac44d672dac41f9b00e28f4df20c52eeb087207e8d758d76d92c6fab3b73e2b0220367750dbbe19290069cba53d096f44530e4f98acaa594810388cf7409a1870ce01"),
    (0x02, "e9733bc60ea13c95c6527066bb975a2ff29a925e80aa14c213f686cbae5d2f36", "03b28f0c28bfab54554ae8c658ac5c3e0ce6e79ad336331f78c428dd43eea8449b", "3044022068c7946a43232757cbdf9176f009a928e1cd9a1a8c212f15c1e11ac9f2925d9002205b75f937ff2f9f3c1246e547e54f62e027f64eefa2695578cc6432cdabce271502"),
    (0x03, "1e1f1c303dc025bd664acb72e583e933fae4cff9148bf78c157d1e8f78530aea", "034b8113d703413d57761b8b9781957b8c0ac1dfe69f492580ca4195f50376ba4a", "3044022059ebf56d98010a932cf8ecfec54c48e6139ed6adb0728c09cbe1e4fa0915302e022007cd986c8fa870ff5d2b3a89139c9fe7e499259875357e20fcbb15571c76795403"),
    (0x81, "2a67f03e63a6a422125878b40b82da593be8d4efaafe88ee528af6e5a9955c6e", "033400f6afecb833092a9a21cfdf1ed1376e58c5d1f47de74683123987e967a8f4", "3045022100fbefd94bd0a488d50b79102b5dad4ab6ced30c4069f1eaa69a4b5a763414067e02203156c6a5c9cf88f91265f5a942e96213afae16d83321c8b31bb342142a14d16381"),
    (0x82, "781ba15f3779d5542ce8ecb5c18716733a5ee42a6f51488ec96154934e2c890a", "03a6d48b1131e94ba04d9737d61acdaa1322008af9602b3b14862c07a1789aac16", "3045022100a5263ea0553ba89221984bd7f0b13613db16e7a70c549a86de0cc0444141a407022005c360ef0ae5a5d4f9f2f87a56c1546cc8268cab08c73501d6b3be2e1e1a8a0882"),
    (0x83, "511e8e52ed574121fc1b654970395502128263f62662e076dc6baf05c2e6a99b", "02d8b661b0b3302ee2f162b09e07a55ad5dfbe673a9f01d9f0c19617681024306b", "30440220525406a1482936d5a21888260dc165497a90a15669636d8edca6b9fe490d309c022032af0c646a34a44d1f4576bf6a4a74b67940f8faa84c7df9abe12a01a11e2b4783"),
)  # fmt: skip
SIX_OF_SIX_AMOUNT = 987_654_321

# BIP-174's combined PSBT (two signers): input 1 is P2SH-P2WSH 2-of-2 with both signatures
BIP174_COMBINED = "cHNidP8BAJoCAAAAAljoeiG1ba8MI76OcHBFbDNvfLqlyHV5JPVFiHuyq911AAAAAAD/////g40EJ9DsZQpoqka7CwmK6kQiwHGyyng1Kgd5WdB86h0BAAAAAP////8CcKrwCAAAAAAWABTYXCtx0AYLCcmIauuBXlCZHdoSTQDh9QUAAAAAFgAUAK6pouXw+HaliN9VRuh0LR2HAI8AAAAAAAEAuwIAAAABqtc5MQGL0l+ErkALaISL4J23BurCrBgpi6vucatlb4sAAAAASEcwRAIgWPb8fGoz4bMVSNSByCbAFb0wE1qtQs1neQ2rZtKtJDsCIEoc7SYExnNbY5PltBaR3XiwDwxZQvufdRhW+qk4FX26Af7///8CgPD6AgAAAAAXqRQPuUY0IWlrgsgzryQceMF9295JNIfQ8gonAQAAABepFCnKdPigj4GZlCgYXJe12FLkBj9hh2UAAAAiAgKVg785rgpgl0etGZrd1jT6YQhVnWxc05tMIYPxq5bgf0cwRAIgdAGK1BgAl7hzMjwAFXILNoTMgSOJEEjn282bVa1nnJkCIHPTabdA4+tT3O+jOCPIBwUUylWn3ZVE8VfBZ5EyYRGMASICAtq2H/SaFNtqfQKwzR+7ePxLGDErW05U2uTbovv+9TbXSDBFAiEA9hA4swjcHahlo0hSdG8BV3KTQgjG0kRUOTzZm98iF3cCIAVuZ1pnWm0KArhbFOXikHTYolqbV2C+ooFvZhkQoAbqAQEDBAEAAAABBEdSIQKVg785rgpgl0etGZrd1jT6YQhVnWxc05tMIYPxq5bgfyEC2rYf9JoU22p9ArDNH7t4/EsYMStbTlTa5Nui+/71NtdSriIGApWDvzmuCmCXR60Zmt3WNPphCFWdbFzTm0whg/GrluB/ENkMak8AAACAAAAAgAAAAIAiBgLath/0mhTban0CsM0fu3j8SxgxK1tOVNrk26L7/vU21xDZDGpPAAAAgAAAAIABAACAAAEBIADC6wsAAAAAF6kUt/X69A49QKWkWbHbNTXyty+pIeiHIgIDCJ3BDHrG21T5EymvYXMz2ziM6tDCMfcjN50bmQMLAtxHMEQCIGLrelVhB6fHP0WsSrWh3d9vcHX7EnWWmn84Pv/3hLyyAiAMBdu3Rw2/LwhVfdNWxzJcHtMJE+mWzThAlF2xIijaXwEiAgI63ZBPPW3PWd25BrDe4jUpt/+57VDl6GFRkmhgIh8Oc0cwRAIgZfRbpZmLWaJ//hp77QFq8fH5DVSzqo90UKpfVqJRA70CIH9yRwOtHtuWaAsoS1bU/8uI9/t1nqu+CKow8puFE4PSAQEDBAEAAAABBCIAIIwjUxc3Q7WV37Sge3K6jkLjeX2nTof+fZ10l+OyAokDAQVHUiEDCJ3BDHrG21T5EymvYXMz2ziM6tDCMfcjN50bmQMLAtwhAjrdkE89bc9Z3bkGsN7iNSm3/7ntUOXoYVGSaGAiHw5zUq4iBgI63ZBPPW3PWd25BrDe4jUpt/+57VDl6GFRkmhgIh8OcxDZDGpPAAAAgAAAAIADAACAIgYDCJ3BDHrG21T5EymvYXMz2ziM6tDCMfcjN50bmQMLAtwQ2QxqTwAAAIAAAACAAgAAgAAiAgOppMN/WZbTqiXbrGtXCvBlA5RJKUJGCzVHU+2e7KWHcRDZDGpPAAAAgAAAAIAEAACAACICAn9jmXV9Lv9VoTatAsaEsYOLZVbl8bazQoKpS2tQBRCWENkMak8AAACAAAAAgAUAAIAA"


def _tx(hex_tx: str) -> UnsignedTx:
    return UnsignedTx.parse(bytes.fromhex(hex_tx))


@pytest.mark.parametrize("vector", VECTORS, ids=[v[0] for v in VECTORS])
def test_bip143_vectors(vector: tuple[str, str, int, str, int, int, str, str, str]) -> None:
    _name, hex_tx, index, script_code, amount, hashtype, digest, pubkey, sig = vector
    tx = _tx(hex_tx)
    got = segwit_v0_sighash(tx, index, bytes.fromhex(script_code), amount, hashtype)
    assert got.hex() == digest
    der = bytes.fromhex(sig)
    assert der[-1] == hashtype
    assert verify_ecdsa(bytes.fromhex(pubkey), der[:-1], got)
    assert not verify_ecdsa(
        bytes.fromhex(pubkey),
        der[:-1],
        segwit_v0_sighash(tx, index, bytes.fromhex(script_code), amount + 1, hashtype),
    )


@pytest.mark.parametrize("vector", SIX_OF_SIX, ids=[hashtype_name(v[0]) for v in SIX_OF_SIX])
def test_bip143_p2sh_p2wsh_six_sighash_types(vector: tuple[int, str, str, str]) -> None:
    hashtype, digest, pubkey, sig = vector
    tx = _tx(P2SH_P2WSH_TX)
    script = bytes.fromhex(P2SH_P2WSH_SCRIPT)
    assert segwit_v0_sighash(tx, 0, script, SIX_OF_SIX_AMOUNT, hashtype).hex() == digest
    key, signature = bytes.fromhex(pubkey), bytes.fromhex(sig)
    assert (
        check_signature(tx, 0, script, SIX_OF_SIX_AMOUNT, key, signature, allowed_hashtypes=(hashtype,))
        is None
    )
    if hashtype != SIGHASH_ALL:
        reason = check_signature(tx, 0, script, SIX_OF_SIX_AMOUNT, key, signature)
        assert reason == f"sighash type {hashtype_name(hashtype)} is not allowed (expected ALL)"


def test_bip174_combined_psbt_signatures_verify() -> None:
    psbt = Psbt.parse(BIP174_COMBINED)
    item = psbt.inputs[1]
    assert item.witness_script is not None and item.witness_utxo is not None and len(item.partial_sigs) == 2
    for pubkey, sig in item.partial_sigs:
        assert check_signature(psbt.tx, 1, item.witness_script, item.witness_utxo.value, pubkey, sig) is None
        # the same signature for another spent amount does not count
        assert "does not verify" in str(
            check_signature(psbt.tx, 1, item.witness_script, item.witness_utxo.value - 1, pubkey, sig)
        )


def test_check_signature_on_an_edited_transaction() -> None:
    psbt = Psbt.parse(BIP174_COMBINED)
    item = psbt.inputs[1]
    assert item.witness_script is not None and item.witness_utxo is not None
    pubkey, sig = item.partial_sigs[0]
    out = psbt.tx.outputs[0]
    edits = (
        psbt.tx.__class__(
            psbt.tx.version,
            psbt.tx.locktime,
            psbt.tx.inputs,
            (TxOut(out.value - 1, out.script_pubkey), *psbt.tx.outputs[1:]),
        ),
        psbt.tx.__class__(
            psbt.tx.version,
            psbt.tx.locktime,
            psbt.tx.inputs,
            (TxOut(out.value, b"\x00\x14" + bytes(20)), *psbt.tx.outputs[1:]),
        ),
        psbt.tx.__class__(psbt.tx.version, psbt.tx.locktime + 1, psbt.tx.inputs, psbt.tx.outputs),
        psbt.tx.__class__(psbt.tx.version, psbt.tx.locktime, psbt.tx.inputs, psbt.tx.outputs[:1]),
    )
    for tx in edits:
        reason = check_signature(tx, 1, item.witness_script, item.witness_utxo.value, pubkey, sig)
        assert reason is not None and "does not verify for input 1" in reason


# --- strict DER, low S and the reasons ------------------------------------------------------------


def _sign(secret: int, digest: bytes) -> bytes:
    return coincurve.PrivateKey.from_int(secret).sign(digest, hasher=None)


def _high_s(der: bytes) -> bytes:
    """The same signature with S replaced by n - S (valid ECDSA, refused by BIP-146)."""
    len_r = der[3]
    r = der[4 : 4 + len_r]
    s = int.from_bytes(der[6 + len_r :], "big")
    s_bytes = (SECP256K1_ORDER - s).to_bytes(33, "big").lstrip(b"\x00")
    if s_bytes[0] & 0x80:
        s_bytes = b"\x00" + s_bytes
    body = b"\x02" + bytes((len(r),)) + r + b"\x02" + bytes((len(s_bytes),)) + s_bytes
    return b"\x30" + bytes((len(body),)) + body


def _multisig_setup() -> tuple[UnsignedTx, bytes, bytes, int]:
    tx = _tx(P2SH_P2WSH_TX)
    pubkey = coincurve.PrivateKey.from_int(12345).public_key.format()
    other = coincurve.PrivateKey.from_int(54321).public_key.format()
    script = b"\x52\x21" + pubkey + b"\x21" + other + b"\x52\xae"
    return tx, script, pubkey, 50_000


def test_check_signature_reasons() -> None:
    tx, script, pubkey, amount = _multisig_setup()
    digest = segwit_v0_sighash(tx, 0, script, amount, SIGHASH_ALL)
    der = _sign(12345, digest)
    good = der + b"\x01"
    assert check_signature(tx, 0, script, amount, pubkey, good) is None
    assert "does not verify" in str(check_signature(tx, 0, script, amount + 1, pubkey, good))
    high = _high_s(der)
    assert "high S" in str(check_signature(tx, 0, script, amount, pubkey, high + b"\x01"))
    assert not verify_ecdsa(pubkey, high, digest)
    assert "not strict DER" in str(
        check_signature(tx, 0, script, amount, pubkey, b"\x31" + der[1:] + b"\x01")
    )
    assert check_signature(tx, 0, script, amount, pubkey, b"") == "the signature is empty"
    assert "SINGLE is not allowed" in str(check_signature(tx, 0, script, amount, pubkey, der + b"\x03"))
    assert "0x00 is not allowed" in str(check_signature(tx, 0, script, amount, pubkey, der + b"\x00"))
    uncompressed = coincurve.PrivateKey.from_int(12345).public_key.format(compressed=False)
    assert "not a 33-byte compressed key (65 bytes)" in str(
        check_signature(tx, 0, script, amount, uncompressed, good)
    )
    assert "not a valid secp256k1 point" in str(
        check_signature(tx, 0, script, amount, b"\x02" + bytes(32), good)
    )
    stranger = coincurve.PrivateKey.from_int(999).public_key.format()
    assert "is not in input 0's witness script" in str(check_signature(tx, 0, script, amount, stranger, good))
    with pytest.raises(InvalidInput, match="no input 1"):
        check_signature(tx, 1, script, amount, pubkey, good)
    with pytest.raises(InvalidInput, match="amount -1"):
        check_signature(tx, 0, script, -1, pubkey, good)


def test_another_keys_signature_does_not_verify() -> None:
    tx, script, pubkey, amount = _multisig_setup()
    digest = segwit_v0_sighash(tx, 0, script, amount, SIGHASH_ALL)
    other_sig = _sign(54321, digest) + b"\x01"
    assert "does not verify" in str(check_signature(tx, 0, script, amount, pubkey, other_sig))


@pytest.mark.parametrize(
    ("der", "reason"),
    [
        ("3006020101020101" + "00" * 70, "8 to 72"),
        ("30060201010201", "8 to 72"),
        ("3106020101020101", "not 0x30"),
        ("3007020101020101", "length byte says 7"),
        ("3006020501020101", "leaves no room for S"),
        ("3006020101020201", "do not add up"),
        ("3006030101020101", "R is not tagged"),
        ("3006020101030101", "S is not tagged"),
        ("3006020002020101", "R is empty"),
        ("3006020181020101", "R is negative"),
        ("3006020101020181", "S is negative"),
        ("300702020001020101", "R has an unnecessary leading zero"),
        ("300702010102020001", "S has an unnecessary leading zero"),
    ],
)
def test_strict_der(der: str, reason: str) -> None:
    problem = der_problem(bytes.fromhex(der))
    assert problem is not None and reason in problem, problem
    assert not verify_ecdsa(
        coincurve.PrivateKey.from_int(5).public_key.format(), bytes.fromhex(der), bytes(32)
    )


def test_der_minimal_encodings_accepted() -> None:
    assert der_problem(bytes.fromhex("3006020101020101")) is None
    assert der_problem(bytes.fromhex("300702020080020101")) is None  # 0x00 needed before 0x80


@settings(max_examples=60, deadline=None)
@given(st.integers(1, SECP256K1_ORDER - 1), st.binary(min_size=32, max_size=32))
def test_libsecp_signatures_verify_and_high_s_twins_do_not(secret: int, digest: bytes) -> None:
    der = _sign(secret, digest)
    pubkey = coincurve.PrivateKey.from_int(secret).public_key.format()
    assert der_problem(der) is None
    assert verify_ecdsa(pubkey, der, digest)
    assert not verify_ecdsa(pubkey, _high_s(der), digest)
    assert not verify_ecdsa(pubkey, der, bytes(a ^ 1 if i == 0 else a for i, a in enumerate(digest)))


def test_sighash_argument_checks_and_names() -> None:
    tx = _tx(P2WSH_TX_1)
    with pytest.raises(InvalidInput, match="no input 2"):
        segwit_v0_sighash(tx, 2, b"", 0, SIGHASH_ALL)
    with pytest.raises(InvalidInput, match="outside"):
        segwit_v0_sighash(tx, 0, b"", 21_000_000 * 100_000_000 + 1, SIGHASH_ALL)
    assert hashtype_name(SIGHASH_ALL) == "ALL"
    assert hashtype_name(SIGHASH_NONE | SIGHASH_ANYONECANPAY) == "NONE|ANYONECANPAY"
    assert hashtype_name(SIGHASH_SINGLE) == "SINGLE"
    assert hashtype_name(0x04) == "0x04"


def _der(r: int, s: int) -> bytes:
    def integer(x: int) -> bytes:
        b = x.to_bytes(33, "big").lstrip(b"\x00") or b"\x00"
        if b[0] & 0x80:
            b = b"\x00" + b
        return b"\x02" + bytes((len(b),)) + b

    body = integer(r) + integer(s)
    return b"\x30" + bytes((len(body),)) + body


@pytest.mark.parametrize(
    ("r", "s"), [(SECP256K1_ORDER, 1), (SECP256K1_ORDER + 5, 1), (1, 0), (0, 1), (1, SECP256K1_ORDER - 1)]
)
def test_out_of_range_r_and_s_never_verify(r: int, s: int) -> None:
    pubkey = coincurve.PrivateKey.from_int(5).public_key.format()
    assert der_problem(_der(r, s)) is None  # well-formed DER, but not a valid signature
    assert not verify_ecdsa(pubkey, _der(r, s), bytes(32))


def test_verify_ecdsa_refuses_malformed_arguments() -> None:
    secret, digest = 77, bytes(range(32))
    der = _sign(secret, digest)
    pubkey = coincurve.PrivateKey.from_int(secret).public_key.format()
    assert verify_ecdsa(pubkey, der, digest)
    assert verify_ecdsa(
        coincurve.PrivateKey.from_int(secret).public_key.format(compressed=False), der, digest
    )
    assert not verify_ecdsa(pubkey, der, digest[:31])
    assert not verify_ecdsa(pubkey[:32], der, digest)
    assert not verify_ecdsa(b"\x02" + bytes(32), der, digest)
    assert not verify_ecdsa(pubkey, der + b"\x01", digest)  # with a sighash byte it is not DER
