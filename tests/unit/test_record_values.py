"""Values of log records checked when read (pure judges): issued indexes within 0..9,999, spend
inputs held to their proposal records, keys unique across vaults in any order."""

from __future__ import annotations

import json
import os

import pytest

from custody.chain import BlockPlace
from custody.descriptor import MultisigDescriptor
from custody.keygen import test_key_from_seed as key_from_seed  # not collected as a test
from custody.keys import ExtendedKey
from custody.network import Network
from custody.policy import Policy, check_vault_policy
from ledger.chain.audit_history import judge_past_audits, past_audit_findings
from ledger.chain.audit_report import PastAudit
from ledger.chain.issuance import MAX_ISSUE_INDEX, judge_issued
from ledger.chain.vaults import RecordedVaults, key_reuse_findings
from ledger.journal.records import KeyFields, Record, RecordKind, vault_added_body
from ledger.journal.table_records import judge_spend_inputs

R = Network.REGTEST


def issued(index: object, change: object = False, vault: object = "hot") -> str:
    return json.dumps({"vault": vault, "change": change, "index": index})


def test_issued_indexes_count_only_within_bounds() -> None:
    log = judge_issued(
        [
            (3, issued(7)),
            (4, issued(MAX_ISSUE_INDEX, True, "cold")),
            (5, issued(10**12)),
            (6, issued(-5)),
            (7, issued(MAX_ISSUE_INDEX + 1)),
            (8, issued(True)),
            (9, issued(3, "yes")),
            (10, issued(3, False, None)),
            (11, "[1]"),
            (12, "{"),
        ]
    )
    assert log.ranges == {"hot": 8, "cold": MAX_ISSUE_INDEX + 1}
    assert [f.split(" ", 3)[2] for f in log.findings] == [f"#{n}" for n in range(5, 13)]
    assert "index 1,000,000,000,000, outside 0..9,999" in log.findings[0]
    assert "index -5, outside 0..9,999" in log.findings[1]
    assert "index 10,000, outside" in log.findings[2]
    assert all("appended outside the service" in f for f in log.findings)


def test_spend_inputs_are_their_proposal_records_inputs() -> None:
    a, b, c = "aa" * 32 + ":0", "bb" * 32 + ":1", "cc" * 32 + ":2"
    proposals = {1: (10, frozenset({a, b})), 2: (12, frozenset({c})), 3: (14, None)}
    assert judge_spend_inputs({1: (10, frozenset({a}))}, {1: {a}}) == []
    findings = judge_spend_inputs(proposals, {1: {a, c}, 2: {c}, 9: {b}})
    assert findings == [
        f"spend_inputs: spend 1 holds coin {c}, which its proposal record #10 does not list: the row "
        "was inserted outside the service",
        f"spend_inputs: spend 1's proposal record #10 lists input {b}, but its row is missing: it was "
        "deleted outside the service (the coin looks free)",
        "spend 3: its proposal record #14 lists no inputs (txid:vout)",
        f"spend_inputs: spend 9 holds coin {b}, but no spend 9 was ever proposed (no proposal record): "
        "the row was inserted outside the service",
    ]


def _keys(n: int = 3) -> list[ExtendedKey]:
    return [key_from_seed(os.urandom(32), R) for _ in range(n)]


def _added(seq: int, name: str, keys: list[ExtendedKey]) -> Record:
    d = MultisigDescriptor.from_keys(2, tuple(keys))
    body = vault_added_body(
        vault=name,
        kind="wsh",
        threshold=2,
        descriptor=str(d),
        network="regtest",
        birthday=None,
        keys=[KeyFields(f"h{i}", str(k), k.xpub, None) for i, k in enumerate(keys)],
    )
    return Record(seq, RecordKind.VAULT_ADDED, body)


def _recorded(*records: Record) -> RecordedVaults:
    added: dict[str, list[Record]] = {}
    for r in records:
        added.setdefault(r.body["vault"], []).append(r)
    return RecordedVaults(added, {}, ())


def test_keys_are_unique_across_vaults_in_any_order() -> None:
    main, other = _keys(), _keys()
    assert key_reuse_findings(_recorded(_added(1, "main", main), _added(2, "other", other))) == []
    found = key_reuse_findings(_recorded(_added(1, "main", main), _added(5, "copy", main[::-1])))
    assert [v for v, _ in found] == ["copy"] * 3
    assert "key 1 " in found[0][1] and "is key 3 of vault 'main' (record #1)" in found[0][1]
    assert all("keys must be unique across vaults, in any order" in text for _, text in found)
    # one key given twice in one vault
    [(vault, text)] = key_reuse_findings(_recorded(_added(2, "twice", [*main[:2], main[0]])))
    assert vault == "twice" and "key 3 " in text and "its own key 1" in text


def test_a_key_with_other_header_fields_is_the_same_key() -> None:
    """Version, depth, parent fingerprint and child number change the xpub text, not the addresses."""
    main = _keys()
    from bip_utils import Base58Decoder, Base58Encoder

    raw = bytearray(Base58Decoder.CheckDecode(main[0].xpub))
    raw[4] = 0  # depth 0
    raw[5:13] = bytes(8)  # no parent, child 0
    disguised = ExtendedKey(Base58Encoder.CheckEncode(bytes(raw)))
    assert disguised.xpub != main[0].xpub and disguised.material == main[0].material
    findings = check_vault_policy(
        MultisigDescriptor.from_keys(2, (disguised, *_keys(2))),
        ("a", "b", "c"),
        R,
        Policy(),
        {main[0].xpub: "main"},
    )
    assert any("already used by active vault 'main'" in f for f in findings), findings
    [(vault, _)] = key_reuse_findings(
        _recorded(_added(1, "main", main), _added(2, "copy", [disguised, *_keys(2)]))
    )
    assert vault == "copy"


@pytest.mark.parametrize("listed", ["reversed", "missing"])
def test_a_records_key_list_must_be_its_descriptors_keys(listed: str) -> None:
    keys = _keys()
    record = _added(1, "main", keys)
    body = dict(record.body)
    body["keys"] = body["keys"][::-1] if listed == "reversed" else "nope"
    [(vault, text)] = key_reuse_findings(_recorded(Record(1, RecordKind.VAULT_ADDED, body)))
    assert vault == "main" and "are not its descriptor's keys in order" in text


def test_a_past_audit_must_name_a_block_the_node_knows_at_its_height() -> None:
    known, stale, forged, moved = "11" * 32, "22" * 32, "33" * 32, "44" * 32
    past = [
        PastAudit(5, 1, 101, known),
        PastAudit(9, 2, 150, stale),
        PastAudit(12, 3, 160, forged),
        PastAudit(14, 4, 170, moved),
        PastAudit(15, 5, 171, "55" * 32),  # not asked: no finding
    ]
    places = {
        known: BlockPlace(known, 101, 60),
        stale: BlockPlace(stale, 150, -1),  # reorganised away: not a finding
        forged: BlockPlace(forged, -1, -1),  # unknown to the node
        moved: BlockPlace(moved, 169, 3),
    }
    [(unknown, s1), (elsewhere, s2)] = judge_past_audits(past, places)
    assert (s1, s2) == (12, 14)
    assert (
        f"audit #3 (record #12) says it saw block {forged} at height 160, which the node does not know"
        in unknown
    )
    assert "at height 170, but that block is at height 169" in elsewhere
    [finding] = past_audit_findings(past[2:3], places)
    assert finding.code == "ledger-verification" and finding.seq == 12
