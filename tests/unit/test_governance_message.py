"""The bytes a governed change commits to, the message holders sign, and the offline document's
format checks (pure)."""

from __future__ import annotations

import hashlib
import json

import pytest

from custody.errors import InvalidInput
from ledger.governance import message as gm
from ledger.governance.verify_approval import check_document, strict_loads

BODY = {
    "vault": "hot",
    "network": "regtest",
    "action": "destination-add",
    "params": {"destination": "cold"},
    "requested_height": 812,
}


def test_the_canonical_bytes_add_format_and_number_sorted_and_compact() -> None:
    raw = gm.change_bytes(57, BODY)
    assert raw == (
        b'{"action":"destination-add","change":57,"format":"reserve-ledger-change/v1","network":"regtest",'
        b'"params":{"destination":"cold"},"requested_height":812,"vault":"hot"}'
    )
    assert gm.change_digest(57, BODY) == hashlib.sha256(raw).hexdigest()
    assert gm.change_digest(58, BODY) != gm.change_digest(57, BODY)  # a number is one change


def test_the_message_is_four_ascii_lines() -> None:
    digest = gm.change_digest(57, BODY)
    assert gm.message_of(57, BODY) == (
        f"reserve-ledger governance v1\nnetwork: regtest\nvault: hot\nchange: 57 {digest}".encode()
    )


@pytest.mark.parametrize(
    "body",
    [
        {**BODY, "extra": 1},
        {k: v for k, v in BODY.items() if k != "params"},
        {**BODY, "vault": "two words"},
    ],
)
def test_malformed_changes_are_refused(body: dict[str, object]) -> None:
    with pytest.raises(InvalidInput):
        gm.message_of(57, body)


def test_change_numbers_start_at_one() -> None:
    for number in (0, -1, True):
        with pytest.raises(InvalidInput):
            gm.change_bytes(number, BODY)


def test_the_document_refuses_duplicate_keys_and_unknown_fields() -> None:
    with pytest.raises(ValueError, match="repeats the key"):
        strict_loads('{"a": 1, "a": 2}')
    with pytest.raises(ValueError):
        strict_loads('{"a": NaN}')
    findings, _ = check_document({"format": "reserve-ledger-approvals/v1", "extra": 1})
    assert findings and findings[0].startswith("format:")
    memo = json.dumps(BODY, sort_keys=True, separators=(",", ":"))
    doc: dict[str, object] = {
        "format": "reserve-ledger-approvals/v1",
        "vault": {"seq": 1, "memo": '{"vault":"hot"}'},
        "change": {"seq": 57, "memo": memo + " "},  # not canonical
        "approvals": [],
        "applied": None,
    }
    findings, _ = check_document(doc)
    assert findings and "canonical" in findings[0]
