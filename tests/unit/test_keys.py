"""Extended keys with origin, networks and the test key generator.

Vectors: BIP-32 test vector 1 (seed 000102030405060708090a0b0c0d0e0f), public derivation of its
non-hardened children; BIP-380 key-expression examples.
"""

from __future__ import annotations

import re

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
from regtest.signers import DemoSigner

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
V1_MASTER = "xpub661MyMwAqRbcFtXgS5sYJABqqG9YLmC4Q1Rdap9gSE8NqtwybGhePY2gZ29ESFjqJoCu1Rupje8YtGqsefD265TMg7usUDFdp6W1EGMcet8"
# Bitcoin Core descriptor_tests.cpp: a depth-1 key, child 0h of a master with fingerprint 41d63b50
CORE_XPUB_B = "xpub68NZiKmJWnxxS6aaHmn81bvJeTESw724CRDs6HbuccFQN9Ku14VQrADWgqbhhTHBaohPX4CjNLf9fq9MYo6oDaPPLPxSb7gwQN3ih19Zm4Y"
CORE_B_PARENT = "41d63b50"
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
        (f"[3442193e/0h/1/2h]{V1_M_0H_1_2H}", f"[3442193e/0h/1/2h]{V1_M_0H_1_2H}"),
        (f"[3442193e/0'/1/2']{V1_M_0H_1_2H}", f"[3442193e/0h/1/2h]{V1_M_0H_1_2H}"),
        (f"[3442193E/0'/1/2h]{V1_M_0H_1_2H}", f"[3442193e/0h/1/2h]{V1_M_0H_1_2H}"),
        (f"  [3442193e]{V1_MASTER}\n", f"[3442193e]{V1_MASTER}"),
        (f"[{CORE_B_PARENT}/0h]{CORE_XPUB_B}", f"[{CORE_B_PARENT}/0h]{CORE_XPUB_B}"),
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
    assert format_path(parse_path("48'/1h/0h/2/7")) == "48h/1h/0h/2/7"
    with pytest.raises(InvalidInput):
        KeyOrigin(b"\x00" * 3, ())


# --- as strict as Bitcoin Core (src/script/descriptor.cpp, util/bip32.cpp ParseKeyPathElement) ---


@pytest.mark.parametrize("path", ["48h/1h/0H/2h", "2H", "48'/1'/0'/2H"])
def test_capital_h_hardened_marker_is_refused_as_core_does(path: str) -> None:
    step = next(s for s in path.split("/") if s.endswith("H"))
    expected = f"step '{step}' in {path!r} marks hardened with 'H', which Bitcoin Core refuses"
    with pytest.raises(InvalidInput, match=re.escape(expected)) as info:
        parse_path(path)
    assert str(info.value).endswith(f"write {step[:-1]}h")


def test_capital_h_in_a_key_origin_is_refused() -> None:
    with pytest.raises(InvalidInput, match="marks hardened with 'H'"):
        ExtendedKey.parse(f"[3442193e/0h/1/2H]{V1_M_0H_1_2H}")


@pytest.mark.parametrize("step", ["2h\n", "2 ", " 2", "+2", "2hh", "٢h"])
def test_steps_are_plain_ascii_digits_and_one_marker(step: str) -> None:
    with pytest.raises(InvalidInput, match="is not a number with an optional hardened marker"):
        parse_path(f"48h/{step}")


@pytest.mark.parametrize(
    "text",
    [
        f"[3442193e/0h/1/2h] {V1_M_0H_1_2H}",
        f"[3442193e/0h/1 /2h]{V1_M_0H_1_2H}",
        f"[3442193e /0h/1/2h]{V1_M_0H_1_2H}",
        f"[3442193e/0h/1/2h]{V1_M_0H_1_2H[:40]}\n{V1_M_0H_1_2H[40:]}",
        f"{BIP380_XPUB[:50]} {BIP380_XPUB[50:]}",
    ],
)
def test_whitespace_inside_a_key_is_refused(text: str) -> None:
    with pytest.raises(InvalidInput, match=r"has whitespace .* at position [0-9]+.*remove it"):
        ExtendedKey.parse(text)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # BIP-380's own example key is at depth 4, child 2^31-2: its example origin does not fit it
        (f"[deadbeef/0h/1h/2h]{BIP380_XPUB}", "has 3 derivation step\\(s\\) but key .* is at depth 4"),
        (f"[3442193e/0h/1/2h/2]{V1_M_0H_1_2H}", "has 4 derivation step\\(s\\) but key .* is at depth 3"),
        (f"[d34db33f]{BIP380_XPUB}", "has 0 derivation step\\(s\\) but key .* is at depth 4"),
        (f"[3442193e/0h/1/2]{V1_M_0H_1_2H}", "ends in step 2 but key .* is child 2h of its parent"),
        (f"[3442193e/0h/1/3h]{V1_M_0H_1_2H}", "ends in step 3h but key .* is child 2h"),
        (
            f"[deadbeef/0h]{CORE_XPUB_B}",
            "names master fingerprint deadbeef but key .* derived from master 41d63b50",
        ),
        (f"[{CORE_B_PARENT}/0]{CORE_XPUB_B}", "ends in step 0 but key .* is child 0h"),
        (f"[d34db33f]{V1_MASTER}", "master key with fingerprint 3442193e; write \\[3442193e\\]"),
    ],
)
def test_an_origin_that_disagrees_with_its_key_is_refused(text: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message) as info:
        ExtendedKey.parse(text)
    assert "export the key and its origin together again" in str(info.value)


def test_origin_is_checked_on_construction_too() -> None:
    with pytest.raises(InvalidInput, match=r"ends in step 1h but key .* is child 2h"):
        ExtendedKey(REGTEST_TPUB, KeyOrigin(bytes(4), parse_path("48h/1h/0h/1h")))
    assert ExtendedKey(REGTEST_TPUB, KeyOrigin(bytes(4), parse_path("48h/1h/0h/2h"))).origin is not None


@pytest.mark.parametrize("network", list(Network))
@pytest.mark.parametrize("account", [0, 1, 2**31 - 1])
def test_project_test_keys_have_origins_that_agree_with_them(network: Network, account: int) -> None:
    key = test_key_from_seed(bytes([account % 251]) * 32, network, account)
    assert ExtendedKey.parse(str(key)) == key
    signer = DemoSigner("alice", bytes([account % 251]) * 32, network=network, account=account)
    assert signer.public_key == key
