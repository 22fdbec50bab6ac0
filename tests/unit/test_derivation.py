"""Local BIP-32 public derivation (coincurve) and the BIP-173 encoder against vectors and bip-utils.

Vectors: BIP-32 test vector 1 (``m/0H`` → ``m/0H/1`` is the one public step the vector has), BIP-173
valid segwit addresses (P2WPKH and P2WSH on mainnet and testnet).
"""

from __future__ import annotations

import pytest
from bip_utils import Bip32Secp256k1, SegwitBech32Encoder
from hypothesis import given, settings
from hypothesis import strategies as st

from custody.descriptor import SECP256K1_ORDER, PublicNode, ckd_pub, segwit_v0_address
from custody.errors import InvalidInput
from custody.keys import HARDENED, ExtendedKey
from custody.network import Network

BIP32_V1_M_0H = (
    "xpub68Gmy5EdvgibQVfPdqkBBCHxA5htiqg55crXYuXoQRKfDBFA1WEjWgP6LH"
    "hwBZeNK1VTsfTFUHCdrfp1bgwQ9xv5ski8PX9rL2dZXvgGDnw"
)
BIP32_V1_M_0H_1 = (
    "xpub6ASuArnXKPbfEwhqN6e3mwBcDTgzisQN1wXN9BJcM47sSikHjJf3UFHKkNAWb"
    "WMiGj7Wf5uMash7SyYq527Hqck2AxYysAA7xmALppuCkwQ"
)


def test_bip32_vector_1_public_step() -> None:
    parent = PublicNode.of(ExtendedKey.parse(BIP32_V1_M_0H))
    expected = PublicNode.of(ExtendedKey.parse(BIP32_V1_M_0H_1))
    assert parent.child(1) == expected
    assert ckd_pub(parent.pubkey, parent.chain_code, 1) == (expected.pubkey, expected.chain_code)


@settings(max_examples=50, deadline=None)
@given(
    seed=st.binary(min_size=16, max_size=64),
    path=st.lists(st.integers(min_value=0, max_value=HARDENED - 1), min_size=1, max_size=3),
)
def test_ckd_pub_matches_bip_utils(seed: bytes, path: list[int]) -> None:
    bip = Bip32Secp256k1.FromSeed(seed)
    node = PublicNode(bytes(bip.PublicKey().RawCompressed().ToBytes()), bytes(bip.ChainCode().ToBytes()))
    for index in path:
        bip = bip.ChildKey(index)
        node = node.child(index)
    assert node.pubkey == bytes(bip.PublicKey().RawCompressed().ToBytes())
    assert node.chain_code == bytes(bip.ChainCode().ToBytes())


def test_hardened_and_invalid_inputs_are_refused() -> None:
    node = PublicNode.of(ExtendedKey.parse(BIP32_V1_M_0H))
    with pytest.raises(InvalidInput, match="only non-hardened"):
        node.child(HARDENED)
    with pytest.raises(InvalidInput, match="only non-hardened"):
        node.child(-1)
    with pytest.raises(InvalidInput, match="not a point on secp256k1"):
        PublicNode(b"\x02" + b"\xff" * 32, bytes(32))
    with pytest.raises(InvalidInput, match="chain code must be 32 bytes"):
        PublicNode(node.pubkey, bytes(31))


def test_curve_order_constant() -> None:
    order = int("FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141", 16)
    assert order == SECP256K1_ORDER


@pytest.mark.parametrize(
    ("network", "script_hex", "address"),
    [
        (
            Network.MAINNET,
            "0014751e76e8199196d454941c45d1b3a323f1433bd6",
            "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4",
        ),
        (
            Network.TESTNET,
            "00201863143c14c5166804bd19203356da136c985678cd4d27a1b8c6329604903262",
            "tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sl5k7",
        ),
        (
            Network.TESTNET,
            "0020000000c4a5cad46221b2a187905e5266362b99d5e91c6ce24d165dab93e86433",
            "tb1qqqqqp399et2xygdj5xreqhjjvcmzhxw4aywxecjdzew6hylgvsesrxh6hy",
        ),
    ],
)
def test_bip173_vectors(network: Network, script_hex: str, address: str) -> None:
    assert segwit_v0_address(bytes.fromhex(script_hex), network) == address


@given(program=st.one_of(st.binary(min_size=20, max_size=20), st.binary(min_size=32, max_size=32)))
def test_bech32_matches_bip_utils(program: bytes) -> None:
    script = bytes((0, len(program))) + program
    for network in (Network.MAINNET, Network.REGTEST):
        assert segwit_v0_address(script, network) == SegwitBech32Encoder.Encode(network.hrp, 0, program)


@pytest.mark.parametrize("script_hex", ["0015" + "00" * 21, "5120" + "00" * 32, "0020" + "00" * 31, ""])
def test_non_v0_scripts_have_no_v0_address(script_hex: str) -> None:
    with pytest.raises(InvalidInput, match="not a version-0 witness program"):
        segwit_v0_address(bytes.fromhex(script_hex), Network.REGTEST)
