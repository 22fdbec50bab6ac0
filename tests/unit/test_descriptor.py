"""wsh(sortedmulti) vault descriptors: parse, print, derive, and refuse what Bitcoin Core refuses.

Vectors: a 2-of-3 ``/<0;1>/*`` tpub descriptor with its checksum and first receive address from the
Keeper wallet's test suite. The checksum, scripts and bech32 have their own tests
(``test_checksum.py``, ``test_script.py``, ``test_bech32.py``).
"""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from custody.bech32 import segwit_v0_address
from custody.checksum import INPUT_CHARSET, add_checksum, descriptor_checksum, split_checksum
from custody.descriptor import MultisigDescriptor
from custody.errors import InvalidInput
from custody.keygen import test_key_from_seed
from custody.network import Network
from custody.script import p2wsh_script_pubkey

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


def test_keeper_vector_checksum_and_first_receive_address() -> None:
    assert descriptor_checksum(KEEPER_2OF3) == KEEPER_CHECKSUM
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
    assert MultisigDescriptor.parse(f"\n  {text}\n") == d  # a pasted line: surrounding space is fine
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


# --- as strict as Bitcoin Core, and stricter where signers need it ---

GOOD = split_checksum(str(MultisigDescriptor.from_keys(2, KEYS)))[0]


@pytest.mark.parametrize(
    ("body", "shown"),
    [
        (GOOD.replace(",[", ", ["), "' '"),  # a space after a comma
        (GOOD.replace("(2,", "(2,\n"), "'\\\\n'"),  # a line break where the text was wrapped
        (GOOD.replace("]tpub", "]\ttpub", 1), "'\\\\t'"),  # a tab between origin and key
        (GOOD.replace("/<0;1>/*))", "/<0;1>/* ))"), "' '"),  # a space before the closing brackets
        (GOOD.replace(",[", ",\u00a0[", 1), "'\\\\xa0'"),  # a no-break space from a web page
    ],
)
def test_whitespace_inside_a_descriptor_is_refused(body: str, shown: str) -> None:
    """Core refuses these; the checksum covers the space, so only the parser can catch it."""
    checksummed = [add_checksum(body)] if set(body) <= set(INPUT_CHARSET) else []  # ' ' is in it
    for text in [body, *checksummed]:
        with pytest.raises(InvalidInput, match=f"has whitespace \\({shown}\\) at position [0-9]+"):
            MultisigDescriptor.parse(text)


@pytest.mark.parametrize(
    ("branches", "message"),
    [
        ("<1;0>", "branches are swapped \\(receive 1, change 0"),
        ("<2;3>", "branches /<2;3>/\\* are not receive 0 and change 1"),
        ("<0;2>", "branches /<0;2>/\\* are not receive 0 and change 1"),
    ],
)
def test_multipath_must_be_receive_0_and_change_1(branches: str, message: str) -> None:
    text = add_checksum(GOOD.replace("<0;1>", branches))
    with pytest.raises(InvalidInput, match=message) as info:
        MultisigDescriptor.parse(text)
    assert "write /<0;1>/*" in str(info.value)
    with pytest.raises(InvalidInput, match=message):
        MultisigDescriptor.from_keys(2, KEYS, tuple(int(b) for b in branches[1:-1].split(";")))


def test_receive_and_change_descriptors_given_the_wrong_way_round_are_refused() -> None:
    d = MultisigDescriptor.from_keys(2, KEYS)
    with pytest.raises(InvalidInput, match="branches are swapped") as info:
        MultisigDescriptor.from_pair(d.change(), d.receive())
    assert "/0/* descriptor as receive" in str(info.value)


def test_a_key_whose_origin_disagrees_with_it_is_refused_in_a_descriptor() -> None:
    wrong_step = GOOD.replace("/2h]", "/3h]", 1)  # the first key is child 2h, not 3h
    with pytest.raises(InvalidInput, match=r"ends in step 3h but key .* is child 2h"):
        MultisigDescriptor.parse(wrong_step)
    short = GOOD.replace("/48h/1h/0h/2h]", "/1h/0h/2h]", 1)
    with pytest.raises(InvalidInput, match=r"has 3 derivation step\(s\) but key .* is at depth 4"):
        MultisigDescriptor.parse(short)


def test_capital_h_hardened_marker_is_refused_in_a_descriptor() -> None:
    with pytest.raises(InvalidInput, match=r"derivation step '2H' .* marks hardened with 'H'.*write 2h"):
        MultisigDescriptor.parse(GOOD.replace("/2h]", "/2H]", 1))


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
    branches=st.sampled_from([(0, 1), (0,), (1,), (2,)]),
    reverse=st.booleans(),
)
def test_parse_str_round_trip(m: int, n_keys: int, branches: tuple[int, ...], reverse: bool) -> None:
    keys = KEYS[:n_keys][::-1] if reverse else KEYS[:n_keys]
    d = MultisigDescriptor("wsh", min(m, n_keys), keys, branches)
    assert MultisigDescriptor.parse(str(d)) == d
    assert str(MultisigDescriptor.parse(str(d))) == str(d)


def test_apostrophe_hardened_markers_are_normalised() -> None:
    d = MultisigDescriptor.from_keys(2, KEYS)
    body = split_checksum(str(d))[0]
    assert MultisigDescriptor.parse(body.replace("h/", "'/").replace("h]", "']")) == d
    assert hash(d) == hash(MultisigDescriptor.parse(str(d)))
