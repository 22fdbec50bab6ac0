"""Extended keys with origin, networks and the test key generator.

Vectors: BIP-32 test vector 1 (seed 000102030405060708090a0b0c0d0e0f), public derivation of its
non-hardened children; BIP-380 key-expression examples.
"""

from __future__ import annotations

import pytest

from custody.errors import InvalidInput
from custody.keygen import bip48_path, test_key_from_seed
from custody.keys import (
    HARDENED,
    ExtendedKey,
    HeldKey,
    KeyOrigin,
    format_path,
    parse_held_key,
    parse_path,
)
from custody.network import Network

# BIP-32 test vector 1
V1_SEED = bytes.fromhex("000102030405060708090a0b0c0d0e0f")
V1_MASTER_FINGERPRINT = "3442193e"
V1_M_0H_1_2H = "xpub6D4BDPcP2GT577Vvch3R8wDkScZWzQzMMUm3PWbmWvVJrZwQY4VUNgqFJPMM3No2dFDFGTsxxpG5uJh7n7epu4trkrX7x7DogT5Uv6fcLW5"
V1_M_0H_1_2H_2 = "xpub6FHa3pjLCk84BayeJxFW2SP4XRrFd1JYnxeLeU8EqN3vDfZmbqBqaGJAyiLjTAwm6ZLRQUMv1ZACTj37sR62cfN7fe5JnJ7dh8zL4fiyLHV"
V1_M_0H_1_2H_2_1000000000 = "xpub6H1LXWLaKsWFhvm6RVpEL9P4KfRZSW7abD2ttkWP3SSQvnyA8FSVqNTEcYFgJS2UaFcxupHiYkro49S8yGasTvXEYBVPamhGW6cFJodrTHy"
V1_M_0H_1_2H_2_PRIV = "xprvA2JDeKCSNNZky6uBCviVfJSKyQ1mDYahRjijr5idH2WwLsEd4Hsb2Tyh8RfQMuPh7f7RtyzTtdrbdqqsunu5Mm3wDvUAKRHSC34sJ7in334"
# BIP-380 key expressions
BIP380_XPUB = "xpub6ERApfZwUNrhLCkDtcHTcxd75RbzS1ed54G1LkBUHQVHQKqhMkhgbmJbZRkrgZw4koxb5JaHWkY4ALHY2grBGRjaDMzQLcgJvLJuZZvRcEL"
BIP380_XPRV = "xprvA1RpRA33e1JQ7ifknakTFpgNXPmW2YvmhqLQYMmrj4xJXXWYpDPS3xz7iAxn8L39njGVyuoseXzU6rcxFLJ8HFsTjSyQbLYnMpCqE2VbFWc"
REGTEST_TPUB = str(test_key_from_seed(bytes(32), Network.REGTEST).xpub)


def test_bip32_vector1_public_derivation_of_non_hardened_children() -> None:
    parent = ExtendedKey.parse(f"[{V1_MASTER_FINGERPRINT}/0h/1/2h]{V1_M_0H_1_2H}")
    assert parent.derive_pubkey((2,)) == ExtendedKey(V1_M_0H_1_2H_2).pubkey
    assert parent.derive_pubkey((2, 1_000_000_000)) == ExtendedKey(V1_M_0H_1_2H_2_1000000000).pubkey


def test_hardened_child_of_public_key_is_refused() -> None:
    with pytest.raises(InvalidInput, match="hardened step 2h"):
        ExtendedKey(V1_M_0H_1_2H).derive_pubkey((2 | HARDENED,))


def test_keygen_master_fingerprint_matches_bip32_vector1() -> None:
    key = test_key_from_seed(V1_SEED, Network.MAINNET)
    assert key.origin is not None
    assert key.origin.fingerprint.hex() == V1_MASTER_FINGERPRINT
    assert str(key).startswith(f"[{V1_MASTER_FINGERPRINT}/48h/0h/0h/2h]xpub")


def test_keygen_uses_bip48_p2wsh_path_with_account_and_tpub_on_test_networks() -> None:
    key = test_key_from_seed(b"\x01" * 32, Network.REGTEST, account=7)
    assert key.origin is not None and format_path(key.origin.path) == "48h/1h/7h/2h"
    assert key.xpub.startswith("tpub") and not key.is_mainnet
    assert bip48_path(Network.MAINNET, 3) == tuple(i | HARDENED for i in (48, 0, 3, 2))
    assert test_key_from_seed(b"\x01" * 32, Network.REGTEST, 8) != key
    with pytest.raises(InvalidInput, match="account index"):
        bip48_path(Network.REGTEST, HARDENED)


@pytest.mark.parametrize(
    ("text", "canonical"),
    [
        (BIP380_XPUB, BIP380_XPUB),
        (f"[deadbeef/0h/1h/2h]{BIP380_XPUB}", f"[deadbeef/0h/1h/2h]{BIP380_XPUB}"),
        (f"[deadbeef/0'/1'/2]{BIP380_XPUB}", f"[deadbeef/0h/1h/2]{BIP380_XPUB}"),
        (f"[DEADBEEF/0'/1h/2H]{BIP380_XPUB}", f"[deadbeef/0h/1h/2h]{BIP380_XPUB}"),
        (f"[d34db33f]{BIP380_XPUB}", f"[d34db33f]{BIP380_XPUB}"),
    ],
)
def test_parse_and_str_normalise_hardened_marker(text: str, canonical: str) -> None:
    key = ExtendedKey.parse(text)
    assert str(key) == canonical
    assert ExtendedKey.parse(str(key)) == key


def test_origin_fields() -> None:
    key = ExtendedKey.parse(f"[d34db33f/48h/1h/0h/2h]{REGTEST_TPUB}")
    assert key.origin == KeyOrigin(bytes.fromhex("d34db33f"), parse_path("48h/1h/0h/2h"))
    assert key.origin.path == (48 | HARDENED, 1 | HARDENED, HARDENED, 2 | HARDENED)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (BIP380_XPRV, "PRIVATE key"),
        (f"[deadbeef/0h]{V1_M_0H_1_2H_2_PRIV}", "PRIVATE key"),
        (BIP380_XPUB[:-1] + "F", "not valid Base58Check"),
        (BIP380_XPUB[:-4], "not valid Base58Check"),
        ("xpub", "not valid Base58Check"),
        (f"[deadbef/0h]{BIP380_XPUB}", "not 8 hex digits"),
        (f"[deadbeeg/0h]{BIP380_XPUB}", "not 8 hex digits"),
        (f"[deadbeef/0h/0h/0h/]{BIP380_XPUB}", "trailing slash"),
        (f"[deadbeef/0h/*]{BIP380_XPUB}", "not a number"),
        (f"[deadbeef/2147483648]{BIP380_XPUB}", "out of range"),
        (f"[aaaaaaaa][aaaaaaaa]{BIP380_XPUB}", "unterminated or repeated"),
        ("[deadbeef/0h]", "not followed by an xpub"),
    ],
)
def test_bad_keys_are_refused_with_a_reason(text: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        ExtendedKey.parse(text)


def test_error_truncates_the_offending_key() -> None:
    with pytest.raises(InvalidInput) as info:
        ExtendedKey.parse(BIP380_XPUB[:-1] + "F")
    assert BIP380_XPUB[:-1] not in str(info.value)
    assert "copy the xpub/tpub again" in str(info.value)


def test_network_flavour_of_keys() -> None:
    xpub = ExtendedKey(BIP380_XPUB)
    tpub = ExtendedKey(REGTEST_TPUB)
    assert xpub.is_mainnet and xpub.network_kind == "mainnet"
    assert not tpub.is_mainnet and tpub.network_kind == "test"
    xpub.check_network(Network.MAINNET)
    for network in (Network.TESTNET, Network.TESTNET4, Network.SIGNET, Network.REGTEST):
        tpub.check_network(network)
    with pytest.raises(InvalidInput, match="is a mainnet xpub but the node is on regtest"):
        xpub.check_network(Network.REGTEST)
    with pytest.raises(InvalidInput, match="is a test-network tpub but the node is on main"):
        tpub.check_network(Network.MAINNET)


def test_network_from_chain() -> None:
    assert Network.from_chain("main") is Network.MAINNET
    assert Network.from_chain("test") is Network.TESTNET
    assert Network.from_chain("testnet4") is Network.TESTNET4
    assert Network.from_chain("signet").hrp == "tb"
    assert Network.from_chain("regtest").hrp == "bcrt"
    assert Network.MAINNET.xpub_version.hex() == "0488b21e"
    assert Network.REGTEST.xpub_version.hex() == "043587cf"
    with pytest.raises(InvalidInput, match="unknown bitcoind chain 'mainnet'"):
        Network.from_chain("mainnet")


def test_held_key() -> None:
    held = parse_held_key(f"alice=[d34db33f/48h/1h/0h/2h]{REGTEST_TPUB}")
    assert held == HeldKey("alice", ExtendedKey.parse(f"[d34db33f/48h/1h/0h/2h]{REGTEST_TPUB}"))
    assert str(held) == f"alice=[d34db33f/48h/1h/0h/2h]{REGTEST_TPUB}"
    with pytest.raises(InvalidInput, match="has no holder"):
        parse_held_key(REGTEST_TPUB)
    with pytest.raises(InvalidInput, match="holder name"):
        parse_held_key(f"={REGTEST_TPUB}")


def test_paths() -> None:
    assert parse_path("") == ()
    assert format_path(parse_path("48'/1h/0H/2/7")) == "48h/1h/0h/2/7"
    with pytest.raises(InvalidInput):
        KeyOrigin(b"\x00" * 3, ())
