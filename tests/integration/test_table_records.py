"""Rows of the spending and attestation tables are held to their log records by ``ledger
verify``: a row changed, inserted or deleted behind the application's back, or a PSBT or document
replaced, is a finding; untouched rows verify clean. On SQLite and PostgreSQL."""

from __future__ import annotations

import hashlib
import re

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from ledger.journal.checkpoint import public_key_pem
from ledger.journal.records import RecordKind, append_record, canonical_json
from ledger.journal.verify import verify_ledger
from ledger.store.db import drop_append_only_ddl
from ledger.store.spend_models import (
    SPEND_TABLES,
    AttestationRow,
    PolicyChangeRow,
    SpendEventRow,
    SpendInputRow,
)

PSBT = "cHNidP8BAAoCAAAAAAAAAAAAAA=="
DOCUMENT = '{"height":101}'
INPUT = "ef" * 32 + ":0"


def _sha(text_: str) -> str:
    return hashlib.sha256(text_.encode()).hexdigest()


def _write(engine: Engine) -> None:
    with Session(engine) as s, s.begin():
        body = '{"max_fee":1000}'
        rec = append_record(
            s,
            RecordKind.POLICY_CHANGED,
            {
                "vault": "cold",
                "change": "set",
                "body": {"max_fee": 1000},
                "loosens": False,
                "requested_height": 101,
                "effective_height": 101,
            },
        )
        s.add(
            PolicyChangeRow(
                vault="cold",
                change="set",
                body=body,
                loosens=False,
                requested_height=101,
                effective_height=101,
                record_seq=rec.seq,
            )
        )
        rec = append_record(
            s,
            RecordKind.SPEND,
            {
                "spend": 1,
                "step": 0,
                "state": "proposed",
                "vault": "cold",
                "txid": "ab" * 32,
                "psbt_sha256": _sha(PSBT),
                "amount": 5000,
                "height": 101,
                "detail": {"inputs": [INPUT]},
            },
        )
        s.add(
            SpendEventRow(
                spend=1,
                step=0,
                state="proposed",
                vault="cold",
                txid="ab" * 32,
                psbt=PSBT,
                psbt_sha256=_sha(PSBT),
                amount=5000,
                height=101,
                detail=canonical_json({"inputs": [INPUT]}),
                record_seq=rec.seq,
            )
        )
        s.add(SpendInputRow(spend=1, txid="ef" * 32, vout=0))  # the proposal's INPUT
        rec = append_record(
            s, RecordKind.ATTESTATION, {"height": 101, "block_hash": "cd" * 32, "sha256": _sha(DOCUMENT)}
        )
        s.add(
            AttestationRow(
                height=101, block_hash="cd" * 32, document=DOCUMENT, sha256=_sha(DOCUMENT), record_seq=rec.seq
            )
        )


def _findings(engine: Engine, key: Ed25519PrivateKey) -> tuple[str, ...]:
    with Session(engine) as s, s.begin():
        return verify_ledger(s, public_key_pem(key)).findings


@pytest.fixture
def written(engine: Engine, signing_key: Ed25519PrivateKey) -> Engine:
    _write(engine)
    assert _findings(engine, signing_key) == ()
    with engine.begin() as c:  # what a tamperer with the owner's access does first
        for table in SPEND_TABLES:
            for statement in drop_append_only_ddl(engine.dialect.name, table):
                c.exec_driver_sql(statement)
    return engine


@pytest.mark.parametrize(
    ("statement", "expected"),
    [
        ("UPDATE policy_changes SET effective_height = 150", "policy_changes: .*effective_height"),
        ("UPDATE policy_changes SET loosens = TRUE", "policy_changes: .*loosens"),
        ("UPDATE spend_events SET amount = 1", "spend_events: .*amount"),
        ("UPDATE spend_events SET detail = '{\"quorum_height\": 1}'", "spend_events: .*detail"),
        ("UPDATE spend_events SET state = 'broadcast'", "spend_events: .*state"),
        ("UPDATE spend_events SET psbt = 'cHNidP8A'", "spend_events: .*PSBT no longer hashes"),
        ("UPDATE attestations SET document = '{}'", "attestations: .*document no longer hashes"),
        ("UPDATE attestations SET block_hash = 'ee'", "attestations: .*block_hash"),
        ("DELETE FROM spend_events", "spend_events: log record #2 .*has no row"),
        ("DELETE FROM policy_changes", "policy_changes: log record #1 .*has no row"),
        ("UPDATE attestations SET record_seq = 1", "attestations: .*not a attestation record"),
        (
            "DELETE FROM spend_inputs",
            f"spend_inputs: spend 1's proposal record #2 lists input {INPUT}, but its row is missing",
        ),
        (
            f"INSERT INTO spend_inputs (spend, txid, vout) VALUES (1, '{'aa' * 32}', 3)",
            f"spend_inputs: spend 1 holds coin {'aa' * 32}:3, which its proposal record #2 does not list",
        ),
        (
            f"INSERT INTO spend_inputs (spend, txid, vout) VALUES (7, '{'aa' * 32}', 3)",
            "spend_inputs: spend 7 holds coin .*no spend 7 was ever proposed",
        ),
    ],
)
def test_a_row_edited_behind_the_back_is_found(
    written: Engine, signing_key: Ed25519PrivateKey, statement: str, expected: str
) -> None:
    with written.begin() as c:
        c.execute(text(statement))
    findings = _findings(written, signing_key)
    assert findings, statement
    assert any(re.search(expected, f) for f in findings), findings


def test_the_tables_are_append_only(engine: Engine) -> None:
    _write(engine)
    for table in SPEND_TABLES:
        with pytest.raises(Exception, match="append-only"), engine.begin() as c:
            c.execute(text(f"DELETE FROM {table}"))
