"""BIP-173 bech32 addresses of version-0 witness outputs, against the BIP's vectors and bip-utils."""

from __future__ import annotations

import pytest
from bip_utils import SegwitBech32Decoder, SegwitBech32Encoder
from hypothesis import given
from hypothesis import strategies as st

from custody.bech32 import BECH32_CHARSET, segwit_v0_address
from custody.errors import InvalidInput
from custody.network import Network

PROGRAMS = st.one_of(st.binary(min_size=20, max_size=20), st.binary(min_size=32, max_size=32))


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


@given(program=PROGRAMS, network=st.sampled_from(Network))
def test_addresses_decode_back_to_their_program(program: bytes, network: Network) -> None:
    """Round trip through an independent decoder: the hrp, version 0 and the program come back."""
    address = segwit_v0_address(bytes((0, len(program))) + program, network)
    assert SegwitBech32Decoder.Decode(network.hrp, address) == (0, program)
    assert address == SegwitBech32Encoder.Encode(network.hrp, 0, program)
    hrp, _, data = address.rpartition("1")
    assert hrp == network.hrp and data[0] == "q" and set(data) <= set(BECH32_CHARSET)


@given(program=PROGRAMS, other=PROGRAMS)
def test_distinct_programs_have_distinct_addresses(program: bytes, other: bytes) -> None:
    network = Network.REGTEST
    same = segwit_v0_address(bytes((0, len(program))) + program, network) == segwit_v0_address(
        bytes((0, len(other))) + other, network
    )
    assert same == (program == other)


@pytest.mark.parametrize("script_hex", ["0015" + "00" * 21, "5120" + "00" * 32, "0020" + "00" * 31, ""])
def test_non_v0_scripts_have_no_v0_address(script_hex: str) -> None:
    with pytest.raises(InvalidInput, match="not a version-0 witness program"):
        segwit_v0_address(bytes.fromhex(script_hex), Network.REGTEST)
