"""BIP-380 checksums and wsh(sortedmulti) vault descriptors.

Vectors: BIP-380 checksum examples; Bitcoin Core ``descriptor_tests.cpp`` sortedmulti scripts
(``sortedmulti(2,xpub6ERA.../*,xpub68NZ.../0/0/*)``, indices 0-2); a 2-of-3 ``/<0;1>/*`` tpub
descriptor with its checksum and first receive address from the Keeper wallet's test suite.
"""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from custody.descriptor import (
    CHECKSUM_CHARSET,
    INPUT_CHARSET,
    MultisigDescriptor,
    add_checksum,
    descriptor_checksum,
    p2wsh_script_pubkey,
    segwit_v0_address,
    sortedmulti_witness_script,
    split_checksum,
)
from custody.errors import InvalidInput
from custody.keygen import test_key_from_seed
from custody.keys import ExtendedKey
from custody.network import Network

CORE_XPUB_A = "xpub6ERApfZwUNrhLCkDtcHTcxd75RbzS1ed54G1LkBUHQVHQKqhMkhgbmJbZRkrgZw4koxb5JaHWkY4ALHY2grBGRjaDMzQLcgJvLJuZZvRcEL"
CORE_XPUB_B = "xpub68NZiKmJWnxxS6aaHmn81bvJeTESw724CRDs6HbuccFQN9Ku14VQrADWgqbhhTHBaohPX4CjNLf9fq9MYo6oDaPPLPxSb7gwQN3ih19Zm4Y"
CORE_SORTEDMULTI_SCRIPTS = [
    "5221025d5fc65ebb8d44a5274b53bac21ff8307fec2334a32df05553459f8b1f7fe1b62102fbd47cc8034098f0e6a94c6aeee8528abf0a2153a5d8e46d325b7284c046784652ae",
    "52210264fd4d1f5dea8ded94c61e9641309349b62f27fbffe807291f664e286bfbe6472103f4ece6dfccfa37b211eb3d0af4d0c61dba9ef698622dc17eecdf764beeb005a652ae",
    "5221022ccabda84c30bad578b13c89eb3b9544ce149787e5b538175b1d1ba259cbb83321024d902e1a2fc7a8755ab5b694c575fce742c48d9ff192e63df5193e4c7afe1f9c52ae",
]
KEEPER_2OF3 = (
    "wsh(sortedmulti(2,"
    "[4192760B/48h/1h/0h/2h]tpubDFCfoi7h1QdAuVVCCBQ8hMdeqcxztV53EB9Qd6cRZ5Tdh94jCPknyhU1mcpCWPzLz2mAVHFdnK1uLKserS1h2sVSJrZvQyghGugQrUpnSrW/<0;1>/*,"
    "[AE6E3031/48h/1h/0h/2h]tpubDEbEY1b4Rkaieyi2xUstuVy9ur1be16edv8DrpXqGke2ABqjxoUvxJDLqcdUQmEHyBvgutLwBJ9ciiUijg7cC1A1jKEcxN43xk2W9pMGaCJ/<0;1>/*,"
    "[C7D9EAF5/48h/1h/0h/2h]tpubDEFf521xjx9TGwajRXBca5bBRNmr9iqa4xLAAytgZ6weCNKKgErF8qgXFGifgYJGF9zLHvPHK6hZHWxeJd4kMkmqcbBMQmCSfnJmUgeNqJ8/<0;1>/*"
    "))"
)
KEEPER_CHECKSUM = "g47ywxzw"
KEEPER_FIRST_RECEIVE = "tb1qfkv399k9knrjysqvfjt0s352c6pun9v4nmh9uxvacsz57m86cyfsz0runl"

KEYS = tuple(test_key_from_seed(bytes([i]) * 32, Network.REGTEST) for i in range(1, 4))


# --- BIP-380 checksum vectors ---


def test_bip380_valid_checksum() -> None:
    assert descriptor_checksum("raw(deadbeef)") == "89f8spxm"
    assert add_checksum("raw(deadbeef)") == "raw(deadbeef)#89f8spxm"
    assert split_checksum("raw(deadbeef)#89f8spxm") == ("raw(deadbeef)", "89f8spxm")
    assert split_checksum("raw(deadbeef)") == ("raw(deadbeef)", None)
    assert descriptor_checksum(KEEPER_2OF3) == KEEPER_CHECKSUM


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("raw(deadbeef)#", "has 0 characters"),
        ("raw(deadbeef)#89f8spxmx", "has 9 characters"),
        ("raw(deadbeef)#89f8spx", "has 7 characters"),
        ("raw(deedbeef)#89f8spxm", "bad descriptor checksum: got 89f8spxm, expected"),
        ("raw(deedbeef)##9f8spxm", "more than one '#'"),
        ("raw(Ü)#00000000", "outside the BIP-380 character set"),
    ],
)
def test_bip380_invalid_checksums(text: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        split_checksum(text)


def test_checksum_can_be_required() -> None:
    with pytest.raises(InvalidInput, match="has no #checksum"):
        split_checksum("raw(deadbeef)", require=True)


# --- scripts: Bitcoin Core sortedmulti vector ---


def test_core_sortedmulti_witness_scripts() -> None:
    a, b = ExtendedKey(CORE_XPUB_A), ExtendedKey(CORE_XPUB_B)
    for i, expected in enumerate(CORE_SORTEDMULTI_SCRIPTS):
        pubkeys = [a.derive_pubkey((i,)), b.derive_pubkey((0, 0, i))]
        assert sortedmulti_witness_script(2, pubkeys).hex() == expected
        assert sortedmulti_witness_script(2, pubkeys[::-1]).hex() == expected


def test_sortedmulti_refuses_impossible_thresholds() -> None:
    with pytest.raises(InvalidInput, match="3-of-2 is impossible"):
        sortedmulti_witness_script(3, [b"\x02" * 33, b"\x03" * 33])


# --- vault descriptors ---


def test_keeper_vector_checksum_and_first_receive_address() -> None:
    d = MultisigDescriptor.parse(f"{KEEPER_2OF3}#{KEEPER_CHECKSUM}")
    assert d.threshold == 2 and len(d.keys) == 3 and d.is_multipath
    assert d.address(0, False, Network.TESTNET) == KEEPER_FIRST_RECEIVE
    # fingerprints are printed in lowercase, as Bitcoin Core does; the checksum follows
    lowercase = KEEPER_2OF3
    for fingerprint in ("4192760B", "AE6E3031", "C7D9EAF5"):
        lowercase = lowercase.replace(fingerprint, fingerprint.lower())
    assert str(d) == add_checksum(lowercase)


def test_multipath_round_trip_and_single_branch_descriptors() -> None:
    d = MultisigDescriptor.from_keys(2, KEYS)
    text = str(d)
    assert "/<0;1>/*" in text and text == add_checksum(split_checksum(text)[0])
    assert MultisigDescriptor.parse(text) == d
    assert MultisigDescriptor.parse(split_checksum(text)[0]) == d  # checksum optional on input
    receive, change = d.receive(), d.change()
    assert receive == add_checksum(split_checksum(text)[0].replace("<0;1>", "0"))
    assert "/1/*" in change and "/0/*" not in change
    assert MultisigDescriptor.from_pair(receive, change) == d
    single = MultisigDescriptor.parse(receive)
    assert single.branches == (0,) and str(single) == receive == single.receive()
    with pytest.raises(InvalidInput, match="only the /0/\\* branch"):
        single.change()
    with pytest.raises(InvalidInput, match="only the /0/\\* branch"):
        single.address(0, True, Network.REGTEST)


def test_addresses_are_the_same_per_branch_whichever_form() -> None:
    d = MultisigDescriptor.from_keys(2, KEYS)
    receive = MultisigDescriptor.parse(d.receive())
    change = MultisigDescriptor.parse(d.change())
    assert d.addresses(0, 5, False, Network.REGTEST) == receive.addresses(0, 5, False, Network.REGTEST)
    assert d.addresses(3, 2, True, Network.REGTEST) == change.addresses(3, 2, False, Network.REGTEST)
    assert d.addresses(0, 1, False, Network.REGTEST) != d.addresses(0, 1, True, Network.REGTEST)
    assert d.addresses(7, 1, True, Network.REGTEST) == [d.address(7, True, Network.REGTEST)]
    assert d.address(0, False, Network.REGTEST).startswith("bcrt1q")
    assert d.address(0, False, Network.SIGNET).startswith("tb1q")
    spk = d.script_pubkey(4, False)
    assert spk == p2wsh_script_pubkey(d.witness_script(4, False))
    assert spk[:2] == b"\x00\x20" and len(spk) == 34
    assert segwit_v0_address(spk, Network.REGTEST) == d.address(4, False, Network.REGTEST)


def test_key_order_changes_text_not_scripts() -> None:
    d = MultisigDescriptor.from_keys(2, KEYS)
    r = MultisigDescriptor.from_keys(2, KEYS[::-1])
    assert str(d) != str(r)
    assert d.addresses(0, 3, False, Network.REGTEST) == r.addresses(0, 3, False, Network.REGTEST)


def test_network_checks() -> None:
    d = MultisigDescriptor.from_keys(2, KEYS)
    assert d.network_kind == "test"
    with pytest.raises(InvalidInput, match="is a test-network tpub but the node is on main"):
        d.address(0, False, Network.MAINNET)
    main = MultisigDescriptor.from_keys(1, [test_key_from_seed(b"\x09" * 32, Network.MAINNET)])
    assert main.network_kind == "mainnet"
    assert main.address(0, False, Network.MAINNET).startswith("bc1q")
    with pytest.raises(InvalidInput, match="mixes mainnet xpubs and test-network tpubs"):
        MultisigDescriptor.from_keys(2, [*KEYS[:1], *main.keys])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("wsh(multi(2,{a}/0/*,{b}/0/*))", "is not wsh\\(sortedmulti"),
        ("tr(50929b74c1a04954b78b4b6035e97a5e078a5a0f28ec96d547bfee9ace803ac0)", "is not wsh"),
        ("wsh(sortedmulti(2,{a}/0/*,{b}/1/*))", "different branches"),
        ("wsh(sortedmulti(2,{a}/0/*,{b}))", "must end in /<0;1>/\\* or /N/\\*"),
        ("wsh(sortedmulti(2,{a}/0/*h,{b}/0/*h))", "must end in"),
        ("wsh(sortedmulti(2,{a}/0/0/*,{b}/0/0/*))", "must end in"),
        ("wsh(sortedmulti(x,{a}/0/*,{b}/0/*))", "threshold 'x' is not a whole number"),
        ("wsh(sortedmulti(3,{a}/0/*,{b}/0/*))", "is impossible"),
        ("wsh(sortedmulti(0,{a}/0/*,{b}/0/*))", "is impossible"),
        ("wsh(sortedmulti(2,{a}/<0;0>/*,{b}/<0;0>/*))", "distinct"),
        ("wsh(sortedmulti(2,{a}/0/*,{b}/0/*))#aaaaaaaa", "bad descriptor checksum"),
    ],
)
def test_bad_descriptors_are_refused(text: str, message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        MultisigDescriptor.parse(text.format(a=KEYS[0], b=KEYS[1]))


def test_index_range() -> None:
    d = MultisigDescriptor.from_keys(2, KEYS)
    with pytest.raises(InvalidInput, match="address index"):
        d.script_pubkey(2**31, False)
    with pytest.raises(InvalidInput, match="address index"):
        d.script_pubkey(-1, False)
    with pytest.raises(InvalidInput, match="must not be negative"):
        d.addresses(0, -1, False, Network.REGTEST)


# --- properties ---


@given(
    m=st.integers(1, 3),
    n_keys=st.integers(1, 3),
    branches=st.sampled_from([(0, 1), (0,), (1,), (2, 3)]),
    reverse=st.booleans(),
)
def test_parse_str_round_trip(m: int, n_keys: int, branches: tuple[int, ...], reverse: bool) -> None:
    keys = KEYS[:n_keys][::-1] if reverse else KEYS[:n_keys]
    d = MultisigDescriptor("wsh", min(m, n_keys), keys, branches)
    assert MultisigDescriptor.parse(str(d)) == d
    assert str(MultisigDescriptor.parse(str(d))) == str(d)


ROUND_TRIP_TEXT = str(MultisigDescriptor.from_keys(2, KEYS))


@given(position=st.integers(0, len(ROUND_TRIP_TEXT) - 1), replacement=st.sampled_from(INPUT_CHARSET))
def test_any_single_character_change_is_detected(position: int, replacement: str) -> None:
    original = ROUND_TRIP_TEXT
    assume(replacement != original[position] and "#" not in (replacement, original[position]))
    mutated = original[:position] + replacement + original[position + 1 :]
    with pytest.raises(InvalidInput):
        split_checksum(mutated)


@given(st.text(alphabet=INPUT_CHARSET.replace("#", ""), max_size=200))
def test_added_checksum_always_verifies(body: str) -> None:
    text = add_checksum(body)
    assert split_checksum(text) == (body, text[-8:])
    assert all(c in CHECKSUM_CHARSET for c in text[-8:])


def test_apostrophe_hardened_markers_are_normalised() -> None:
    d = MultisigDescriptor.from_keys(2, KEYS)
    body = split_checksum(str(d))[0]
    assert MultisigDescriptor.parse(body.replace("h/", "'/").replace("h]", "']")) == d
    assert hash(d) == hash(MultisigDescriptor.parse(str(d)))
