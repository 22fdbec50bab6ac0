"""BIP-380 descriptor checksums: the BIP's vectors and properties of the code.

Vectors: BIP-380's ``raw(deadbeef)#89f8spxm`` and its invalid examples (a whole vault descriptor
with its checksum is in ``test_descriptor.py``).
"""

from __future__ import annotations

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from custody.checksum import (
    CHECKSUM_CHARSET,
    INPUT_CHARSET,
    add_checksum,
    descriptor_checksum,
    split_checksum,
)
from custody.errors import InvalidInput

BODY = st.text(alphabet=INPUT_CHARSET.replace("#", ""), max_size=200)


def test_bip380_valid_checksum() -> None:
    assert descriptor_checksum("raw(deadbeef)") == "89f8spxm"
    assert add_checksum("raw(deadbeef)") == "raw(deadbeef)#89f8spxm"
    assert split_checksum("raw(deadbeef)#89f8spxm") == ("raw(deadbeef)", "89f8spxm")
    assert split_checksum("raw(deadbeef)") == ("raw(deadbeef)", None)


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


@given(BODY)
def test_added_checksum_round_trips(body: str) -> None:
    text = add_checksum(body)
    assert split_checksum(text) == (body, text[-8:])
    assert split_checksum(text, require=True)[0] == body
    assert len(text) == len(body) + 9 and all(c in CHECKSUM_CHARSET for c in text[-8:])


@given(body=BODY, data=st.data())
def test_any_single_character_change_is_detected(body: str, data: st.DataObject) -> None:
    """BIP-380: every error of one symbol is detected, whatever the position and the new character."""
    text = add_checksum(body)
    position = data.draw(st.integers(0, len(text) - 1), label="position")
    replacement = data.draw(st.sampled_from(INPUT_CHARSET), label="replacement")
    assume(replacement != text[position] and "#" not in (replacement, text[position]))
    with pytest.raises(InvalidInput):
        split_checksum(text[:position] + replacement + text[position + 1 :])
