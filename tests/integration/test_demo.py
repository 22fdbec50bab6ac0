"""The regtest demo end to end, and the demo signers' spends, against a real bitcoind."""

from __future__ import annotations

import re
import secrets
from pathlib import Path

import pytest

from custody.descriptor import MultisigDescriptor
from custody.keygen import test_key_from_seed
from custody.network import Network
from ledger.cli.demo import run_demo
from ledger.cli.main import main
from regtest.node import RegtestNode
from regtest.signers import DemoSigner, SigningError, spend_from_vault


def test_demo_signer_key_is_the_keygen_public_key() -> None:
    seed = bytes(range(32))
    for account in (0, 1):
        signer = DemoSigner("ministry", seed, network=Network.REGTEST, account=account)
        assert signer.public_key == test_key_from_seed(seed, Network.REGTEST, account)
        assert "tprv" in signer.private_expression()
        assert "tprv" not in repr(signer)


def _vault(node: RegtestNode, name: str) -> tuple[list[DemoSigner], MultisigDescriptor]:
    signers = [DemoSigner(h, secrets.token_bytes(32)) for h in ("a", "b", "c")]
    keys = [s.public_key for s in signers]
    descriptor = MultisigDescriptor.from_keys(2, keys)
    rpc = node.rpc()
    rpc.createwallet(name)
    imports = [
        {"desc": d, "range": [0, 99], "timestamp": "now", "active": True, "internal": internal}
        for d, internal in ((descriptor.receive(), False), (descriptor.change(), True))
    ]
    assert all(r["success"] for r in rpc.wallet(name).call("importdescriptors", imports))
    for s in signers:
        s.import_vault(rpc, 2, keys)
    node.fund(descriptor.address(0, False, Network.REGTEST), 100_000_000)
    return signers, descriptor


def test_spend_from_vault_needs_two_of_three_signers(node: RegtestNode) -> None:
    name = f"demo-test-vault-{secrets.token_hex(4)}"
    signers, _ = _vault(node, name)
    rpc = node.rpc()
    payee = str(node.miner().call("getnewaddress"))

    with pytest.raises(SigningError, match=r"not fully signed: 1 signer\(s\) \(a\)"):
        spend_from_vault(rpc, name, signers[:1], {payee: 30_000_000})

    txid = spend_from_vault(rpc, name, signers[1:], {payee: 30_000_000})
    assert txid in rpc.call("getrawmempool")
    for s in signers:
        s.unload(rpc)


def test_demo_runs_clean_then_catches_the_unrecorded_deposit(node: RegtestNode, tmp_path: Path) -> None:
    transcript: list[str] = []
    node_args = ["--rpc-url", node.rpc_url, "--rpc-cookie", str(node.cookie_path)]

    code = run_demo(node.rpc(), tmp_path / "demo", transcript.append, cli=main, node_args=node_args)

    text = "\n".join(transcript)
    assert code == 0, text
    assert "[unrecorded]" in text
    assert "OK: the books reconcile with the chain" in text
    assert (tmp_path / "demo" / "reserve.db").exists()
    # amounts are printed as 8-decimal BTC, never in Decimal's exponent form ("0E-8")
    # (a standalone number with an exponent; base58 keys and hex hashes may hold "6E9" inside them)
    exponent = re.compile(r"(?<![0-9A-Za-z.])\d+(\.\d+)?E[-+]\d+(?![0-9A-Za-z])")
    assert exponent.search(text) is None, exponent.search(text)
    assert exponent.search("The miner wallet has 0E-8 BTC;") is not None
