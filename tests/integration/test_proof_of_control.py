"""Proof of control on a real regtest node: a 2-of-3 vault proves its coins by BIP-322.

The holders are :class:`~regtest.signers.DemoSigner` wallets (one private key each) that sign the
prepared PSBT files with ``walletprocesspsbt``, as they sign a spend. Every finished proof is
judged three times: by our verifier (:func:`ledger.attest.control.verify_control`), by an
implementation that is not ours (bip322-core's ``verify_message``, its ``pof`` encoding), and by
Bitcoin Core itself (``finalizepsbt`` runs Core's script interpreter on every input and must build
byte for byte the same ``to_sign``). The virtual ``to_sign`` is refused by the node's mempool.
"""

from __future__ import annotations

import base64
import dataclasses
import hashlib
from pathlib import Path
from typing import Any

import pytest
from bip322core.verify import State, verify_message

from custody import bip322
from custody.descriptor import MultisigDescriptor
from custody.errors import PolicyViolation
from custody.network import Network
from custody.psbt import Psbt
from custody.wallet import scan_vaults
from ledger.attest import control
from ledger.chain.vaults import Vault
from regtest.node import RegtestNode
from regtest.signers import DemoSigner

HOLDERS = ("ministry", "central-bank", "auditor")
ROOT = hashlib.sha256(b"ledger root of the test").hexdigest()


@dataclasses.dataclass
class Setup:
    vault: Vault
    signers: dict[str, DemoSigner]
    outputs: list[control.Output]
    block: dict[str, Any]
    message: bytes


@pytest.fixture
def setup(node: RegtestNode, request: pytest.FixtureRequest) -> Setup:
    rpc = node.rpc()
    tag = hashlib.sha256(request.node.nodeid.encode()).hexdigest()[:8]
    signers = {h: DemoSigner(h, hashlib.sha256(f"{tag} {h}".encode()).digest()) for h in HOLDERS}
    keys = [s.public_key for s in signers.values()]
    descriptor = MultisigDescriptor.from_keys(2, keys)
    vault = Vault(f"vault-{tag}", f"vault-{tag}", descriptor, HOLDERS, Network.REGTEST, None, False, "none")
    for s in signers.values():
        s.import_vault(rpc, 2, keys)
    paths = {descriptor.script_pubkey(0, False): (0, 0), descriptor.script_pubkey(2, True): (1, 2)}
    node.fund(descriptor.address(0, False, Network.REGTEST), 150_000, confirm=False)
    node.fund(descriptor.address(0, False, Network.REGTEST), 2_000_000, confirm=False)
    node.fund(descriptor.address(2, True, Network.REGTEST), 31_000_000)
    scan = scan_vaults(rpc, [(descriptor.receive(), 5), (descriptor.change(), 5)])
    outputs = [(o.txid, o.vout, o.amount, o.script_pubkey, *paths[o.script_pubkey]) for o in scan.outputs]
    assert len(outputs) == 3
    block: dict[str, Any] = {
        "network": "regtest",
        "height": scan.height,
        "block_hash": scan.best_block,
        "tree_size": 12,
        "root": ROOT,
    }
    message = control.control_message(**block, vault=vault.name)
    return Setup(vault, signers, outputs, block, message)


def _sign_files(node: RegtestNode, setup: Setup, holders: tuple[str, ...], tmp: Path) -> list[str]:
    """The file exchange: one PSBT file per address out, one signed file per holder and address back."""
    signed = []
    for n, (_, text) in enumerate(control.prepare_control(setup.vault, setup.outputs, setup.message)):
        path = tmp / f"{setup.vault.name}-{n}.psbt"
        path.write_text(text)
        for holder in holders:
            # what each holder checks before signing: a proof over the attested message, not a spend
            assert bip322.check_proof_psbt(Psbt.parse(path.read_text()), setup.message) == ()
            back = tmp / f"{setup.vault.name}-{n}-{holder}.psbt"
            back.write_text(setup.signers[holder].sign(node.rpc(), path.read_text()))
            signed.append(back.read_text())
    return signed


def _checked(setup: Setup) -> list[control.CheckedOutput]:
    d = setup.vault.descriptor
    return [(t, v, a, s, d.witness_script(i, b == 1)) for t, v, a, s, b, i in setup.outputs]


def _verify(setup: Setup, result: dict[str, Any], **block: Any) -> list[str]:
    return control.verify_control(
        result,
        **{**setup.block, **block},
        vault=setup.vault.name,
        threshold=2,
        outputs=_checked(setup),
        descriptor=str(setup.vault.descriptor),
        holders=setup.vault.holders,
    )


def _pof(setup: Setup, proof: dict[str, Any]) -> str:
    """The delivered proof in bip322-core's ``pof`` encoding: our PSBT with the proof's witnesses."""
    signed = bip322.decode_proof(proof["proof"])
    [psbt] = [p for _, p in control.prepare(setup.vault, setup.outputs, setup.message) if p.tx == signed.tx]
    inputs = tuple(
        dataclasses.replace(i, final_script_witness=w, partial_sigs=(), witness_script=None, derivations=())
        for i, w in zip(psbt.inputs, signed.witnesses, strict=True)
    )
    return "pof" + base64.b64encode(dataclasses.replace(psbt, inputs=inputs).serialize()).decode()


def test_holders_prove_control_and_three_verifiers_agree(
    node: RegtestNode, setup: Setup, tmp_path: Path
) -> None:
    signed = _sign_files(node, setup, ("ministry", "auditor"), tmp_path)
    result = control.finish_control(setup.vault, setup.outputs, setup.message, signed)
    proofs = result["proofs"]
    assert len(proofs) == 2
    assert sum(u["amount"] for p in proofs for u in p["utxos"]) == 150_000 + 2_000_000 + 31_000_000
    assert all(p["signers"] == ["ministry", "auditor"] for p in proofs)

    assert _verify(setup, result) == []
    for proof in proofs:
        independent = verify_message(proof["address"], _pof(setup, proof), setup.message)
        assert independent.state is State.VALID, independent.reason

    # Bitcoin Core finalizes the holders' PSBTs itself (its interpreter, standard flags) into the
    # same to_sign byte for byte; its mempool refuses it (version 0 is non-standard, and to_spend,
    # which spends the null outpoint without being a coinbase, can never exist)
    rpc = node.rpc()
    by_tx: dict[str, list[str]] = {}
    for text in signed:
        by_tx.setdefault(Psbt.parse(text).tx.txid, []).append(text)
    for proof in proofs:
        final = rpc.call("finalizepsbt", rpc.call("combinepsbt", by_tx[proof["to_sign_txid"]]), True)
        assert final["complete"] is True
        assert bytes.fromhex(final["hex"]) == base64.b64decode(proof["proof"])
        [verdict] = rpc.call("testmempoolaccept", [final["hex"]])
        assert verdict["allowed"] is False and verdict["reject-reason"] in ("version", "missing-inputs")


def test_one_signature_short_is_refused(node: RegtestNode, setup: Setup, tmp_path: Path) -> None:
    signed = _sign_files(node, setup, ("central-bank",), tmp_path)
    with pytest.raises(PolicyViolation) as refused:
        control.finish_control(setup.vault, setup.outputs, setup.message, signed)
    assert len(refused.value.findings) == 2 and all("1 signature(s)" in f for f in refused.value.findings)
    # Core agrees: one key cannot complete a 2-of-3 witness
    assert node.rpc().call("finalizepsbt", signed[0], True)["complete"] is False
    # a proof forged from the one signature fails every verifier
    good = control.finish_control(
        setup.vault,
        setup.outputs,
        setup.message,
        [*signed, *_sign_files(node, setup, ("auditor",), tmp_path)],
    )
    forged = []
    for proof in good["proofs"]:
        tx = bip322.decode_proof(proof["proof"])
        short = tuple((w[0], w[1], w[-1]) for w in tx.witnesses)
        forged.append({**proof, "proof": bip322.SignedTx(tx.tx, short).to_base64()})
    findings = _verify(setup, {**good, "proofs": forged})
    # every input of both proofs: each to_spend input and the three outputs
    assert len(findings) == 2 + 3 and all("CLEANSTACK" in f for f in findings)
    for proof in forged:
        assert verify_message(proof["address"], _pof(setup, proof), setup.message).state is State.INVALID


def test_proof_for_another_block_is_refused(node: RegtestNode, setup: Setup, tmp_path: Path) -> None:
    result = control.finish_control(
        setup.vault,
        setup.outputs,
        setup.message,
        _sign_files(node, setup, ("ministry", "central-bank"), tmp_path),
    )
    [later] = node.mine(1)
    findings = _verify(setup, result, height=setup.block["height"] + 1, block_hash=later)
    assert findings[0].startswith("its message is not")
    assert all("another message, block or address" in f for f in findings[1:]) and len(findings) == 3
    other_root = _verify(setup, result, root=hashlib.sha256(b"other books").hexdigest())
    assert len(other_root) == 3
    later_message = control.control_message(
        **{**setup.block, "height": setup.block["height"] + 1, "block_hash": later}, vault=setup.vault.name
    )
    proof = result["proofs"][0]
    assert verify_message(proof["address"], _pof(setup, proof), later_message).state is State.INVALID


def test_tampered_witness_is_refused(node: RegtestNode, setup: Setup, tmp_path: Path) -> None:
    result = control.finish_control(
        setup.vault, setup.outputs, setup.message, _sign_files(node, setup, ("ministry", "auditor"), tmp_path)
    )
    proof = result["proofs"][-1]
    tx = bip322.decode_proof(proof["proof"])
    witnesses = list(tx.witnesses)
    sig = bytearray(witnesses[1][2])
    sig[-5] ^= 0x01  # inside s: still strict DER, no longer a signature of this transaction
    witnesses[1] = (witnesses[1][0], witnesses[1][1], bytes(sig), witnesses[1][3])
    tampered = {**proof, "proof": bip322.SignedTx(tx.tx, tuple(witnesses)).to_base64()}
    findings = _verify(setup, {**result, "proofs": [*result["proofs"][:-1], tampered]})
    assert len(findings) == 1 and "input 1: signature 2 of 2" in findings[0]
    assert verify_message(proof["address"], _pof(setup, tampered), setup.message).state is State.INVALID
