"""Vault definitions from command-line options and JSON files, and the BSMS 1.0 record."""

from __future__ import annotations

from typing import Any

import pytest

from custody.bsms import bsms_descriptor_record
from custody.checksum import split_checksum
from custody.descriptor import MultisigDescriptor
from custody.errors import InvalidInput as CustodyInvalidInput
from custody.keygen import test_key_from_seed
from custody.network import Network
from ledger.cli.vault_cmds import from_descriptor, from_document, from_keys
from ledger.errors import InvalidInput

R = Network.REGTEST
KEYS = tuple(test_key_from_seed(bytes([i]) * 32, R) for i in range(1, 4))
D = MultisigDescriptor.from_keys(2, KEYS)


def test_from_keys_and_from_descriptor_agree() -> None:
    texts = tuple(f"{h}={k}" for h, k in zip("abc", KEYS, strict=True))
    by_keys = from_keys("cold", 2, texts, 7)
    by_desc = from_descriptor("cold", str(D), ("a", "b", "c"), 7)
    assert by_keys == by_desc
    assert (by_keys.descriptor, by_keys.holders, by_keys.birthday) == (D, ("a", "b", "c"), 7)


def test_from_keys_needs_a_threshold() -> None:
    with pytest.raises(InvalidInput, match="--key needs --threshold"):
        from_keys("cold", None, (f"a={KEYS[0]}",), None)


def test_descriptor_needs_its_checksum() -> None:
    with pytest.raises(CustodyInvalidInput, match="has no #checksum"):
        from_descriptor("cold", str(D).split("#")[0], ("a", "b", "c"), None)


def _doc(**fields: Any) -> dict[str, Any]:
    return {
        "name": "cold",
        "threshold": 2,
        "keys": [{"holder": h, "key": str(k)} for h, k in zip("abc", KEYS, strict=True)],
    } | fields


def test_documents() -> None:
    assert from_document(_doc(), "f.json", None, None).descriptor == D
    assert from_document(_doc(birthday=9), "f.json", "cold", None).birthday == 9
    assert from_document(_doc(birthday=9), "f.json", None, 11).birthday == 11
    by_desc = {"descriptor": str(D), "holders": ["a", "b", "c"]}
    assert from_document(by_desc, "f.json", "warm", None).name == "warm"


@pytest.mark.parametrize(
    ("doc", "name", "message"),
    [
        ([], None, "expected a JSON object"),
        (_doc(colour="red"), None, "unknown field(s) colour"),
        (_doc(), "warm", "differs from 'cold'"),
        ({"descriptor": str(D), "holders": ["a", "b", "c"]}, None, "has no name"),
        (_doc(descriptor=str(D)), None, 'either "keys"'),
        (_doc(threshold="2"), None, "threshold must be an integer"),
        (_doc(keys=[{"holder": "a"}]), None, "keys must be a list"),
        (_doc(birthday=True), None, "birthday must be a block height"),
        ({"name": "x", "descriptor": str(D), "holders": "abc"}, None, "holders must be a list"),
    ],
)
def test_bad_documents(doc: Any, name: str | None, message: str) -> None:
    with pytest.raises(InvalidInput, match=message.replace("(", r"\(").replace(")", r"\)")):
        from_document(doc, "f.json", name, None)


def test_bsms_record() -> None:
    lines = bsms_descriptor_record(D, R).split("\n")
    assert lines[0] == "BSMS 1.0"
    template, checksum = split_checksum(lines[1], require=True)
    assert template == f"wsh(sortedmulti(2,{','.join(f'{k}/**' for k in KEYS)}))" and checksum
    assert lines[2] == "/0/*,/1/*"
    assert lines[3] == D.address(0, False, R)
    single = MultisigDescriptor.from_keys(2, KEYS, branches=(0,))
    with pytest.raises(CustodyInvalidInput, match="BSMS record describes receive and change"):
        bsms_descriptor_record(single, R)
