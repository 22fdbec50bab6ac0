"""The gate glue's derivation and signature checks, on keys made here (no node).

A path counts only when the descriptor derives the very script at it: a PSBT's BIP-32 derivations
are hints where to look first, and a lying hint changes nothing. Signatures are made with
coincurve over the BIP-143 digest, as a signing device would.
"""

from __future__ import annotations

import hashlib

from bip_utils import Bip32KeyNetVersions, Bip32Secp256k1
from coincurve import PrivateKey

from custody.descriptor import MultisigDescriptor
from custody.keygen import bip48_path
from custody.keys import ExtendedKey, KeyOrigin, format_path
from custody.network import Network
from custody.psbt import Derivation, Psbt, PsbtInput, PsbtOutput, TxIn, TxOut, UnsignedTx
from custody.sighash import SIGHASH_ALL, segwit_v0_sighash
from custody.wallet import vault_wallet_name
from ledger.chain.vaults import Vault
from ledger.spend.gate import check_input_signatures, find_path, signers_of

NET = Network.REGTEST
VERSIONS = Bip32KeyNetVersions(NET.xpub_version, NET.xprv_version)


def _account(seed: bytes) -> tuple[ExtendedKey, Bip32Secp256k1]:
    master = Bip32Secp256k1.FromSeed(seed, VERSIONS)
    path = bip48_path(NET, 0)
    node = master.DerivePath("m/" + format_path(path).replace("h", "'"))
    origin = KeyOrigin(bytes(master.FingerPrint().ToBytes()), path)
    return ExtendedKey(node.PublicKey().ToExtended(), origin), node


def _vault(name: str, holders: tuple[str, ...], tag: bytes) -> tuple[Vault, list[Bip32Secp256k1]]:
    made = [_account(hashlib.sha256(tag + bytes([i])).digest()) for i in range(len(holders))]
    descriptor = MultisigDescriptor.from_keys(2, tuple(k for k, _ in made))
    vault = Vault(name, name, descriptor, holders, NET, None, False, vault_wallet_name(name))
    return vault, [n for _, n in made]


HOT, HOT_KEYS = _vault("hot", ("ministry", "central-bank", "ministry"), b"hot")
COLD, COLD_KEYS = _vault("cold", ("a", "b", "c"), b"cold")


def test_a_script_is_found_at_its_path_and_a_lying_hint_changes_nothing() -> None:
    script = HOT.descriptor.script_pubkey(7, True)
    assert find_path(HOT, script) == (1, 7)
    key = HOT.descriptor.keys[0]
    assert key.origin is not None
    pub = HOT.descriptor.pubkeys(7, True)[0]
    right = Derivation(pub, key.origin.fingerprint, (*key.origin.path, 1, 7))
    lying = Derivation(pub, key.origin.fingerprint, (*key.origin.path, 0, 3))
    assert find_path(HOT, script, [lying, right]) == (1, 7)
    assert find_path(HOT, script, [lying]) == (1, 7)  # found by the search, not the hint
    far = HOT.descriptor.script_pubkey(5000, False)
    assert find_path(HOT, far) is None  # beyond the searched range ...
    hint = Derivation(pub, key.origin.fingerprint, (*key.origin.path, 0, 5000))
    assert find_path(HOT, far, [hint]) == (0, 5000)  # ... found where the PSBT says, checked
    assert find_path(HOT, COLD.descriptor.script_pubkey(7, True)) is None


def _psbt(vault: Vault, index: int, amount: int) -> Psbt:
    tx = UnsignedTx(2, 0, (TxIn("11" * 32, 0, 0xFFFFFFFD),), (TxOut(amount - 1000, b"\x00\x14" + bytes(20)),))
    script = vault.descriptor.script_pubkey(index, False)
    return Psbt(tx, (), (PsbtInput(witness_utxo=TxOut(amount, script)),), (PsbtOutput(),))


def _sign(psbt: Psbt, vault: Vault, key: Bip32Secp256k1, index: int, amount: int) -> tuple[bytes, bytes]:
    child = key.ChildKey(0).ChildKey(index)
    digest = segwit_v0_sighash(psbt.tx, 0, vault.descriptor.witness_script(index, False), amount, SIGHASH_ALL)
    sig = PrivateKey(bytes(child.PrivateKey().Raw().ToBytes())).sign(digest, hasher=None)
    return bytes(child.PublicKey().RawCompressed().ToBytes()), sig + bytes([SIGHASH_ALL])


def test_signatures_are_verified_attributed_and_one_holder_counts_once() -> None:
    amount = 250_000
    psbt = _psbt(HOT, 4, amount)
    sigs = [_sign(psbt, HOT, k, 4, amount) for k in HOT_KEYS]
    checks = check_input_signatures(psbt, 0, sigs, HOT, (0, 4), amount)
    assert [c.reason for c in checks] == [None, None, None]
    assert [c.holder for c in checks] == ["ministry", "central-bank", "ministry"]
    assert signers_of(checks) == ("ministry", "central-bank")
    assert signers_of(check_input_signatures(psbt, 0, [sigs[0], sigs[2]], HOT, (0, 4), amount)) == (
        "ministry",
    )


def test_wrong_amount_other_vault_and_unknown_path_are_refused() -> None:
    amount = 250_000
    psbt = _psbt(HOT, 4, amount)
    good = _sign(psbt, HOT, HOT_KEYS[1], 4, amount)
    [wrong] = check_input_signatures(psbt, 0, [good], HOT, (0, 4), amount + 1)
    assert wrong.holder == "central-bank" and wrong.reason is not None and "does not verify" in wrong.reason
    foreign = _sign(psbt, HOT, COLD_KEYS[0], 4, amount)
    [other] = check_input_signatures(psbt, 0, [foreign], HOT, (0, 4), amount)
    assert other.holder is None and other.reason == f"key {foreign[0].hex()} is not a key of vault hot"
    [nowhere] = check_input_signatures(psbt, 0, [good], HOT, None, amount)
    assert nowhere.reason is not None and "does not re-derive" in nowhere.reason
    [spent] = check_input_signatures(psbt, 0, [good], HOT, (0, 4), None)
    assert spent.reason is not None and "not an unspent output" in spent.reason
