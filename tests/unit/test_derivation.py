"""Local BIP-32 public derivation (coincurve) against the BIP's vectors and bip-utils.

Vectors: BIP-32 test vector 1 (``m/0H`` → ``m/0H/1`` is the one public step the vector has).
The bech32 encoder that used to be tested here is in ``test_bech32.py``.
"""

from __future__ import annotations

import pytest
from bip_utils import Bip32Secp256k1
from hypothesis import given, settings
from hypothesis import strategies as st

from custody.bip32 import SECP256K1_ORDER, PublicNode, ckd_pub
from custody.errors import InvalidInput
from custody.keys import HARDENED, ExtendedKey

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
