"""Addresses to output scripts: BIP-173/BIP-350 and Bitcoin Core's key_io vectors, refusals, round
trips against bip-utils' independent decoders."""

from __future__ import annotations

import pytest
from bip_utils import P2PKHAddrDecoder, P2SHAddrDecoder, SegwitBech32Decoder
from hypothesis import given
from hypothesis import strategies as st

from custody.address import (
    CHARSET,
    Encoding,
    address_script,
    bech32_decode,
    script_address,
    script_kind,
)
from custody.errors import InvalidInput
from custody.network import Network

# BIP-350 "Test vectors for v0-v16 native segregated witness addresses" (valid).
SEGWIT_VALID = [
    ("BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4", "0014751e76e8199196d454941c45d1b3a323f1433bd6"),
    (
        "tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sl5k7",
        "00201863143c14c5166804bd19203356da136c985678cd4d27a1b8c6329604903262",
    ),
    (
        "bc1pw508d6qejxtdg4y5r3zarvary0c5xw7kw508d6qejxtdg4y5r3zarvary0c5xw7kt5nd6y",
        "5128751e76e8199196d454941c45d1b3a323f1433bd6751e76e8199196d454941c45d1b3a323f1433bd6",
    ),
    ("BC1SW50QGDZ25J", "6002751e"),
    ("bc1zw508d6qejxtdg4y5r3zarvaryvaxxpcs", "5210751e76e8199196d454941c45d1b3a323"),
    (
        "tb1qqqqqp399et2xygdj5xreqhjjvcmzhxw4aywxecjdzew6hylgvsesrxh6hy",
        "0020000000c4a5cad46221b2a187905e5266362b99d5e91c6ce24d165dab93e86433",
    ),
    (
        "tb1pqqqqp399et2xygdj5xreqhjjvcmzhxw4aywxecjdzew6hylgvsesf3hn0c",
        "5120000000c4a5cad46221b2a187905e5266362b99d5e91c6ce24d165dab93e86433",
    ),
    (
        "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0",
        "512079be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798",
    ),
]

# BIP-350 invalid addresses, each with a word the refusal must contain.
SEGWIT_INVALID = [
    ("tc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vq5zuyut", "prefix tc1"),
    ("bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqh2y7hd", "bech32 checksum"),
    ("tb1z0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqglt7rf", "bech32 checksum"),
    ("BC1S0XLXVLHEMJA6C4DQV22UAPCTQUPFHLXM9H8Z3K2E72Q4K9HCZ7VQ54WELL", "bech32 checksum"),
    ("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kemeawh", "bech32m checksum"),
    ("tb1q0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vq24jc47", "bech32m checksum"),
    ("bc1p38j9r5y49hruaue7wxjce0updqjuyyx0kh56v8s25huc6995vvpql3jow4", "not a bech32 character"),
    ("BC130XLXVLHEMJA6C4DQV22UAPCTQUPFHLXM9H8Z3K2E72Q4K9HCZ7VQ7ZWS8R", "witness version 17"),
    ("bc1pw5dgrnzv", "1-byte witness program"),
    ("bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7v8n0nx0muaewav253zgeav", "41-byte"),
    ("BC1QR508D6QEJXTDG4Y5R3ZARVARYV98GJ9P", "16-byte program"),
    ("tb1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vq47Zagq", "mixes upper and lower case"),
    ("bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7v07qwwzcrf", "padding"),
    ("tb1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vpggkg4j", "padding"),
    ("bc1gmk9yu", "no witness version"),
]

# BIP-173 / BIP-350 checksum-level vectors (strings, not addresses).
BECH32_VALID = [
    "A12UEL5L",
    "a12uel5l",
    "an83characterlonghumanreadablepartthatcontainsthenumber1andtheexcludedcharactersbio1tt5tgs",
    "abcdef1qpzry9x8gf2tvdw0s3jn54khce6mua7lmqqqxw",
    "11qqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqqc8247j",
    "split1checkupstagehandshakeupstreamerranterredcaperred2y9e3w",
    "?1ezyfcl",
]
BECH32M_VALID = [
    "A1LQFN3A",
    "a1lqfn3a",
    "an83characterlonghumanreadablepartthatcontainsthetheexcludedcharactersbioandnumber11sg7hg6",
    "abcdef1l7aum6echk45nj3s0wdvt2fg8x9yrzpqzd3ryx",
    "11llllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllllludsr8",
    "split1checkupstagehandshakeupstreamerranterredcaperredlc445v",
    "?1v759aa",
]
BECH32_INVALID = [
    " 1nwldj5",
    "\x7f1axkwrx",
    "\x801eym55h",
    "an84characterslonghumanreadablepartthatcontainsthenumber1andtheexcludedcharactersbio1569pvx",
    "pzry9x0s0muk",
    "1pzry9x0s0muk",
    "x1b4n0q5v",
    "li1dgmt3",
    "de1lg7wt\xff",
    "A1G7SGD8",
    "10a06t8",
    "1qzzfhee",
    " 1xj0phk",
    "\x7f1g6xzxy",
    "\x801vctc34",
    "an84characterslonghumanreadablepartthatcontainsthetheexcludedcharactersbioandnumber11d6pts4",
    "qyrz8wqd2c9m",
    "1qyrz8wqd2c9m",
    "y1b0jsk6g",
    "lt1igcx5c0",
    "in1muywd",
    "mm1crxm3i",
    "au1s5cgom",
    "M1VUXWEZ",
    "16plkw9",
    "1p2gdwpf",
]

# Bitcoin Core src/test/data/key_io_valid.json: base58 addresses with their scripts and chain.
BASE58_VALID = [
    ("1FsSia9rv4NeEwvJ2GvXrX7LyxYspbN2mo", "76a914a31c06bd463e3923bc1aadbde48b16976c08071788ac", "main"),
    ("36j4NfKv6Akva9amjWrLG6MuSQym1GuEmm", "a914373b819a068f32b7a6b38b6b38729647cfde01c287", "main"),
    ("mzK2FFDEhxqHcmrJw1ysqFkVyhUULo45hZ", "76a914ce28b26c57472737f5c3561a1761185bd8589a4388ac", "test"),
    ("2NC2hEhe28ULKAJkW5MjZ3jtTMJdvXmByvK", "a914ce0bba75891ff9ec60148d4bd4a09ee2dc5c933187", "test"),
    ("mww4LvqtTMKvmeQvizPz2EQv26xTneWrbg", "76a914b4110ba93ac54afc14da3bdd19614774a2d55d2988ac", "signet"),
    ("2N1r7aC69VHeE7yQJPDLi9T1PYq4wnwvjuT", "a9145e5a35ab44b3efaea5129ba22b88ba3e2976614587", "signet"),
    ("n4fajahJrAuKbN7uNsKjLjQkz9Qn5ewJXQ", "76a914fdeca3b08e38af53d7c4c60e3ad208ce5066441088ac", "regtest"),
    ("2MxFajLApXpYk4VodBSZSt7rw8y4ryABkfA", "a91436e9f191e0b75036a77f65e2eaa4752443233fbe87", "regtest"),
]


def _network(address: str) -> Network:
    return Network.MAINNET if address.lower().startswith("bc1") else Network.TESTNET


@pytest.mark.parametrize(("address", "script_hex"), SEGWIT_VALID)
def test_bip350_valid_addresses(address: str, script_hex: str) -> None:
    network = _network(address)
    script = address_script(address, network)
    assert script.hex() == script_hex
    assert script_address(script, network) == address.lower()


@pytest.mark.parametrize(("address", "reason"), SEGWIT_INVALID)
def test_bip350_invalid_addresses(address: str, reason: str) -> None:
    for network in Network:
        with pytest.raises(InvalidInput):
            address_script(address, network)
    if "prefix" not in reason:  # on the address's own network the refusal is the defect itself
        with pytest.raises(InvalidInput, match=reason):
            address_script(address, _network(address))


@pytest.mark.parametrize("text", BECH32_VALID + BECH32M_VALID)
def test_bech32_checksum_vectors(text: str) -> None:
    hrp, _, encoding = bech32_decode(text)
    assert hrp == text.lower()[: text.lower().rfind("1")]
    assert encoding is (Encoding.BECH32 if text in BECH32_VALID else Encoding.BECH32M)
    separator = text.rfind("1")
    flipped = text[: separator + 1] + chr(ord(text[separator + 1]) ^ 1) + text[separator + 2 :]
    with pytest.raises(InvalidInput):
        bech32_decode(flipped)


@pytest.mark.parametrize("text", BECH32_INVALID)
def test_bech32_invalid_strings(text: str) -> None:
    with pytest.raises(InvalidInput):
        bech32_decode(text)


@pytest.mark.parametrize(("address", "script_hex", "chain"), BASE58_VALID)
def test_core_base58_vectors(address: str, script_hex: str, chain: str) -> None:
    network = Network.from_chain(chain)
    assert address_script(address, network).hex() == script_hex
    assert script_address(bytes.fromhex(script_hex), network) == address
    if network is not Network.MAINNET:  # every test network shares testnet's version bytes
        assert address_script(address, Network.REGTEST).hex() == script_hex


def test_regtest_segwit_address() -> None:
    script = bytes.fromhex("0014751e76e8199196d454941c45d1b3a323f1433bd6")
    address = script_address(script, Network.REGTEST)
    assert address.startswith("bcrt1q")
    assert address_script(address, Network.REGTEST) == script


@pytest.mark.parametrize(
    ("address", "network", "expected"),
    [
        ("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4", Network.REGTEST, "is for mainnet, prefix bc1"),
        (
            "tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sl5k7",
            Network.REGTEST,
            "is for a test network",
        ),
        ("1FsSia9rv4NeEwvJ2GvXrX7LyxYspbN2mo", Network.REGTEST, "mainnet, version byte 0x00"),
        ("2NC2hEhe28ULKAJkW5MjZ3jtTMJdvXmByvK", Network.MAINNET, "test network, version byte 0xc4"),
        ("mzK2FFDEhxqHcmrJw1ysqFkVyhUULo45hZ", Network.MAINNET, "test network, version byte 0x6f"),
    ],
)
def test_wrong_network_names_the_value_and_what_was_expected(
    address: str, network: Network, expected: str
) -> None:
    with pytest.raises(InvalidInput) as refused:
        address_script(address, network)
    message = str(refused.value)
    assert expected in message
    assert address[:16] in message
    assert f"{network.hrp}1" in message  # what to give instead


@pytest.mark.parametrize(
    ("address", "expected"),
    [
        ("1FsSia9rv4NeEwvJ2GvXrX7LyxYspbN2mp", "bad checksum"),
        ("1FsSia0rv4NeEwvJ2GvXrX7LyxYspbN2mo", "'0' at position 6"),
        ("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t5", "bad checksum"),
        ("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4\x1b[2J", "control character '\\x1b' at position 42"),
        ("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4 ", "character ' ' at position 42"),
        ("\u202ebc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4", "position 0"),
        ("bc1qw508d6qejxtdg4y5r3zarvary0c5xW7kv8f3t4", "mixes upper and lower case"),
        ("", "empty"),
        ("1" * 91, "91 characters"),
        ("11111111111111111111", "bad checksum"),
    ],
)
def test_malformed_addresses(address: str, expected: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        address_script(address, Network.MAINNET)
    assert expected in str(refused.value)


def test_script_kinds() -> None:
    assert script_kind(bytes.fromhex("76a914" + "00" * 20 + "88ac")) == "p2pkh"
    assert script_kind(bytes.fromhex("a914" + "00" * 20 + "87")) == "p2sh"
    assert script_kind(bytes.fromhex("0014" + "00" * 20)) == "p2wpkh"
    assert script_kind(bytes.fromhex("0020" + "00" * 32)) == "p2wsh"
    assert script_kind(bytes.fromhex("5120" + "00" * 32)) == "p2tr"
    assert script_kind(bytes.fromhex("6002751e")) is None  # witness v16: decodes, unspendable today
    assert script_kind(bytes.fromhex("6a04deadbeef")) is None
    with pytest.raises(InvalidInput, match="has no address"):
        script_address(bytes.fromhex("6a04deadbeef"), Network.MAINNET)


PROGRAMS = st.one_of(st.binary(min_size=20, max_size=20), st.binary(min_size=32, max_size=32))


@given(program=PROGRAMS, network=st.sampled_from(Network))
def test_v0_round_trip_against_bip_utils(program: bytes, network: Network) -> None:
    script = bytes((0, len(program))) + program
    address = script_address(script, network)
    assert SegwitBech32Decoder.Decode(network.hrp, address) == (0, program)
    assert address_script(address, network) == script
    assert address_script(address.upper(), network) == script


@given(program=st.binary(min_size=32, max_size=32), network=st.sampled_from(Network))
def test_taproot_round_trip(program: bytes, network: Network) -> None:
    script = b"\x51\x20" + program
    address = script_address(script, network)
    assert SegwitBech32Decoder.Decode(network.hrp, address) == (1, program)
    assert address_script(address, network) == script
    assert set(address[len(network.hrp) + 1 :]) <= set(CHARSET)


@given(digest=st.binary(min_size=20, max_size=20), network=st.sampled_from(Network), p2sh=st.booleans())
def test_base58_round_trip_against_bip_utils(digest: bytes, network: Network, p2sh: bool) -> None:
    if p2sh:
        script = bytes.fromhex("a914") + digest + b"\x87"
        version = b"\x05" if network is Network.MAINNET else b"\xc4"
        decoder = P2SHAddrDecoder
    else:
        script = bytes.fromhex("76a914") + digest + bytes.fromhex("88ac")
        version = b"\x00" if network is Network.MAINNET else b"\x6f"
        decoder = P2PKHAddrDecoder
    address = script_address(script, network)
    assert decoder.DecodeAddr(address, net_ver=version) == digest
    assert address_script(address, network) == script


@given(text=st.text(max_size=100))
def test_any_text_decodes_or_is_invalid_input(text: str) -> None:
    for network in (Network.MAINNET, Network.REGTEST):
        try:
            script = address_script(text, network)
        except InvalidInput:
            continue
        assert script_address(script, network).lower() == text.lower()
