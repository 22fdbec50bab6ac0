"""Descriptor, script and key-derivation edges that mutation testing found untested
(``scripts/mutation``): address range bounds, the exact refusals, sortedmulti with 17 to 20 keys."""

from __future__ import annotations

import pytest
from bitcoin.core.script import OP_CHECKMULTISIG, CScript

from custody.bip32 import PublicNode
from custody.bsms import bsms_descriptor_record
from custody.descriptor import MultisigDescriptor
from custody.errors import InvalidInput
from custody.keygen import test_key_from_seed
from custody.keys import HARDENED, shorten
from custody.network import Network
from custody.script import MAX_MULTISIG_KEYS, sortedmulti_witness_script

KEYS = tuple(test_key_from_seed(bytes([i]) * 32, Network.REGTEST) for i in range(1, 4))
VAULT = MultisigDescriptor.from_keys(2, KEYS)
RECEIVE_ONLY = MultisigDescriptor.parse(VAULT.receive())


def test_address_ranges_end_at_the_last_non_hardened_index() -> None:
    assert VAULT.addresses(0, 0, False, Network.REGTEST) == []
    last_two = VAULT.addresses(HARDENED - 2, 2, False, Network.REGTEST)
    assert last_two == [
        VAULT.address(HARDENED - 2, False, Network.REGTEST),
        VAULT.address(HARDENED - 1, False, Network.REGTEST),
    ]
    with pytest.raises(InvalidInput) as e:
        VAULT.addresses(HARDENED - 1, 2, False, Network.REGTEST)
    assert str(e.value) == "address range 2147483647..2147483648 must lie in 0..2^31-1"


@pytest.mark.parametrize(
    ("start", "count", "message"),
    [
        (-1, 2, "address range -1..0 must lie in 0..2^31-1"),
        (True, 1, "address range True..1 must lie in 0..2^31-1"),
        (0, -1, "address count -1 must not be negative"),
    ],
)
def test_bad_address_ranges_are_named(start: int, count: int, message: str) -> None:
    with pytest.raises(InvalidInput) as e:
        VAULT.addresses(start, count, False, Network.REGTEST)
    assert str(e.value) == message


def test_a_single_branch_descriptor_has_no_change_branch() -> None:
    with pytest.raises(InvalidInput) as e:
        RECEIVE_ONLY.change()
    assert str(e.value) == (
        f"descriptor {shorten(str(RECEIVE_ONLY), 48)!r} has only the /0/* branch; "
        "give the /<0;1>/* multipath form or join receive and change with from_pair"
    )
    assert shorten(str(RECEIVE_ONLY), 48) != shorten(str(RECEIVE_ONLY), 49)


def test_from_pair_needs_two_single_branch_halves() -> None:
    message = (
        "receive and change descriptors must be single-branch descriptors with the same "
        "threshold and keys in the same order; export both from the same wallet"
    )
    for receive, change in ((str(VAULT), VAULT.change()), (VAULT.receive(), str(VAULT))):
        with pytest.raises(InvalidInput) as e:
            MultisigDescriptor.from_pair(receive, change)
        assert str(e.value) == message
    assert MultisigDescriptor.from_pair(VAULT.receive(), VAULT.change()) == VAULT


def test_a_bsms_record_needs_both_branches() -> None:
    with pytest.raises(InvalidInput) as e:
        bsms_descriptor_record(RECEIVE_ONLY, Network.REGTEST)
    assert str(e.value) == "a BSMS record describes receive and change: give the /<0;1>/* form"


def test_a_public_key_cannot_derive_a_hardened_child() -> None:
    generator = bytes.fromhex("0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798")
    node = PublicNode(generator, bytes(32))
    with pytest.raises(InvalidInput) as e:
        node.child_pubkey(HARDENED)
    assert str(e.value) == (
        f"cannot derive child {HARDENED} from a public key: only non-hardened indices "
        "0..2^31-1 can be; hardened steps belong in the key origin"
    )


@pytest.mark.parametrize("n", [1, 2, 15, 16, 17, 20])
@pytest.mark.parametrize("size", [33, 34, 65])
def test_sortedmulti_script_is_the_generic_script_encoding(n: int, size: int) -> None:
    keys = [bytes([2 + i % 2]) + bytes([i]) * (size - 1) for i in range(n)]
    expected = bytes(CScript([1, *sorted(keys), n, OP_CHECKMULTISIG]))
    assert sortedmulti_witness_script(1, keys) == expected
    assert n <= MAX_MULTISIG_KEYS == 20


K1, K2 = (str(k) for k in KEYS[:2])


def _wsh(*keys: str) -> str:
    return f"wsh(sortedmulti(1,{','.join(keys)}))"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "sh" + _wsh(f"{K1}/<0;1>/*")[3:],
            f"descriptor {shorten('sh' + _wsh(f'{K1}/<0;1>/*')[3:], 48)!r} is not "
            "wsh(sortedmulti(m,KEY,...)); vaults are P2WSH sortedmulti over xpubs/tpubs with origin, "
            "e.g. wsh(sortedmulti(2,[fp/48h/1h/0h/2h]tpub.../<0;1>/*,...))",
        ),
        (
            _wsh(f"{K1}/<0;1>/*", f"{K2}/0/*"),
            "descriptor keys use different branches (/0/*, /<0;1>/*); every key of a vault must use "
            "the same suffix, e.g. /<0;1>/*",
        ),
        (
            _wsh(f"{K1}/0/1/*"),
            f"key expression {shorten(f'{K1}/0/1/*', 40)!r} must end in /<0;1>/* or /N/* (an account "
            "xpub followed by its receive/change branch); hardened or deeper paths are not "
            "supported for vault keys",
        ),
        (
            _wsh(f"{K1}/0/*") + "#abc#defghijk",
            f"descriptor {shorten(_wsh(f'{K1}/0/*') + '#abc#defghijk', 40)!r} has more than one '#'",
        ),
        (
            _wsh(f"{K1}/0/*") + "#abc",
            "descriptor checksum 'abc' has 3 characters, not 8; copy the whole descriptor again",
        ),
    ],
)
def test_descriptor_refusals_in_full(text: str, message: str) -> None:
    with pytest.raises(InvalidInput) as e:
        MultisigDescriptor.parse(text)
    assert str(e.value) == message


def test_a_mistyped_checksum_says_copy_it_again() -> None:
    text = VAULT.receive()
    body, checksum = text.split("#")
    wrong = ("a" if checksum[0] != "a" else "b") + checksum[1:]
    with pytest.raises(InvalidInput) as e:
        MultisigDescriptor.parse(f"{body}#{wrong}")
    assert str(e.value) == (
        f"bad descriptor checksum: got {wrong}, expected {checksum}; the descriptor was "
        "altered or mistyped, copy it again from its source rather than fixing the checksum"
    )


def test_whitespace_inside_names_the_descriptor() -> None:
    text = VAULT.receive().replace(",", ", ", 1)
    with pytest.raises(InvalidInput) as e:
        MultisigDescriptor.parse(text)
    assert str(e.value).startswith(f"descriptor {shorten(text, 48)!r} has whitespace (' ')")
    assert shorten(text, 48) != shorten(text, 49)
