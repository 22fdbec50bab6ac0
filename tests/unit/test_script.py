"""The sortedmulti witness script and its P2WSH output, against Bitcoin Core's descriptor vectors.

Vectors: Bitcoin Core ``descriptor_tests.cpp`` sortedmulti scripts
(``sortedmulti(2,xpub6ERA.../*,xpub68NZ.../0/0/*)``, indices 0-2).
"""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from custody.errors import InvalidInput
from custody.keys import ExtendedKey
from custody.script import MAX_MULTISIG_KEYS, p2wsh_script_pubkey, sortedmulti_witness_script

CORE_XPUB_A = (
    "xpub6ERApfZwUNrhLCkDtcHTcxd75RbzS1ed54G1LkBUHQVHQKqhMkhgbmJbZR"
    "krgZw4koxb5JaHWkY4ALHY2grBGRjaDMzQLcgJvLJuZZvRcEL"
)
CORE_XPUB_B = (
    "xpub68NZiKmJWnxxS6aaHmn81bvJeTESw724CRDs6HbuccFQN9Ku14VQrADWgq"
    "bhhTHBaohPX4CjNLf9fq9MYo6oDaPPLPxSb7gwQN3ih19Zm4Y"
)
CORE_SORTEDMULTI_SCRIPTS = [  # OP_2 <33-byte key> <33-byte key> OP_2 OP_CHECKMULTISIG
    "5221025d5fc65ebb8d44a5274b53bac21ff8307fec2334a32df05553459f8b1f7fe1b6"
    "2102fbd47cc8034098f0e6a94c6aeee8528abf0a2153a5d8e46d325b7284c046784652ae",
    "52210264fd4d1f5dea8ded94c61e9641309349b62f27fbffe807291f664e286bfbe647"
    "2103f4ece6dfccfa37b211eb3d0af4d0c61dba9ef698622dc17eecdf764beeb005a652ae",
    "5221022ccabda84c30bad578b13c89eb3b9544ce149787e5b538175b1d1ba259cbb833"
    "21024d902e1a2fc7a8755ab5b694c575fce742c48d9ff192e63df5193e4c7afe1f9c52ae",
]


def test_core_sortedmulti_witness_scripts() -> None:
    a, b = ExtendedKey(CORE_XPUB_A), ExtendedKey(CORE_XPUB_B)
    for i, expected in enumerate(CORE_SORTEDMULTI_SCRIPTS):
        pubkeys = [a.derive_pubkey((i,)), b.derive_pubkey((0, 0, i))]
        assert sortedmulti_witness_script(2, pubkeys).hex() == expected
        assert sortedmulti_witness_script(2, pubkeys[::-1]).hex() == expected


@pytest.mark.parametrize(("m", "n"), [(3, 2), (0, 2), (1, 0), (1, MAX_MULTISIG_KEYS + 1)])
def test_impossible_multisig_is_refused(m: int, n: int) -> None:
    with pytest.raises(InvalidInput, match=f"{m}-of-{n} is impossible"):
        sortedmulti_witness_script(m, [bytes([2, i]) + bytes(31) for i in range(n)])


@given(st.permutations([bytes([2, i]) + bytes(31) for i in range(17)]))
def test_key_order_does_not_matter_beyond_16_keys(keys: list[bytes]) -> None:
    script = sortedmulti_witness_script(2, keys)
    assert script == sortedmulti_witness_script(2, sorted(keys))
    assert script[-1] == 0xAE  # OP_CHECKMULTISIG


def test_p2wsh_commits_to_the_witness_script() -> None:
    script = bytes.fromhex(CORE_SORTEDMULTI_SCRIPTS[0])
    assert p2wsh_script_pubkey(script) == b"\x00\x20" + hashlib.sha256(script).digest()
