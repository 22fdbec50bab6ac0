"""Log records (:mod:`ledger.journal.records`) and migration 0004, on SQLite and PostgreSQL.

- An old database (migrated to 0003, with entries, postings, checkpoints, vaults, a retirement
  and a stored audit in it) upgrades to head keeping every row and every leaf hash; the records
  of its vaults, retirement and audit are appended after the old entries, so every old checkpoint
  still verifies, and the rebuilt ``entries`` table keeps its triggers and foreign keys.
- Adding and retiring a vault appends its records in the same transaction; a failure writes
  neither the rows nor the record.
- A record's inclusion in a signed checkpoint is proven by the auditor's standalone verifier
  exactly as a money entry's.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.orm import Session

from custody.descriptor import MultisigDescriptor
from custody.errors import PolicyViolation
from custody.keygen import test_key_from_seed
from custody.network import Network
from custody.policy import Policy
from ledger import verify_proof
from ledger.chain.vaults import add_vault, get_vault, list_vaults, retire_vault
from ledger.errors import InvalidInput
from ledger.journal.accounts import add_account
from ledger.journal.book import append_many, get_entry, iter_leaf_hashes, last_seq
from ledger.journal.checkpoint import public_key_pem, sign_checkpoint
from ledger.journal.entry import EntryDraft, Posting
from ledger.journal.heads import Sealer, sealing
from ledger.journal.merkle import root_of
from ledger.journal.proofs import inclusion_document, make_checkpoint, seal_existing
from ledger.journal.records import KeyFields, RecordKind, audit_body, records, vault_added_body
from ledger.journal.verify import stored_checkpoints, verify_ledger
from ledger.store.audit_models import AuditRow
from ledger.store.db import make_engine
from ledger.store.migrate import current_revision, upgrade
from ledger.store.models import APPEND_ONLY_TABLES, CheckpointRow
from ledger.store.vault_models import VAULT_TABLES, VaultKeyRow, VaultRetirementRow, VaultRow
from ledger.verify_proof import verify_inclusion_document
from tests.fixtures.db import snapshot

R = Network.REGTEST
HOLDERS = ("alice", "bob", "carol")
TABLES = (*(t for t in APPEND_ONLY_TABLES if t != "tree_heads"), *VAULT_TABLES, "audits")
ORDER = {
    "accounts": "id",
    "entries": "seq",
    "postings": "entry_seq, idx",
    "checkpoints": "id",
    "vaults": "id",
    "vault_keys": "vault_id, position",
    "vault_retirements": "id",
    "audits": "id",
}


def _descriptor() -> MultisigDescriptor:
    return MultisigDescriptor.from_keys(2, [test_key_from_seed(os.urandom(32), R) for _ in range(3)])


def dump(engine: Engine) -> dict[str, list[dict[str, Any]]]:
    """Every row of every table, in key order, as plain values."""
    with engine.connect() as c:
        return {
            t: [
                {k: bytes(v) if isinstance(v, memoryview) else v for k, v in r._mapping.items()}
                for r in c.execute(text(f"SELECT * FROM {t} ORDER BY {ORDER[t]}"))
            ]
            for t in TABLES
        }


def _old_vault(s: Session, name: str, descriptor: MultisigDescriptor, birthday: int | None) -> int:
    """A vault as the code before 0004 stored it: rows only, no record."""
    account = add_account(s, name, "vault", vault_definition=True)
    row = VaultRow(
        name=name,
        account_id=account.id,
        kind="wsh",
        threshold=descriptor.threshold,
        descriptor=str(descriptor),
        network=R.chain,
        birthday_height=birthday,
    )
    s.add(row)
    s.flush()
    for position, (holder, key) in enumerate(zip(HOLDERS, descriptor.keys, strict=True)):
        fingerprint = None if key.origin is None else key.origin.fingerprint.hex()
        s.add(
            VaultKeyRow(
                vault_id=row.id,
                position=position,
                holder=holder,
                key=str(key),
                xpub=key.xpub,
                fingerprint=fingerprint,
            )
        )
    s.flush()
    return row.id


def _deposit(i: int) -> EntryDraft:
    return EntryDraft(kind="deposit", memo=f"deposit {i}", postings=(Posting("bank", i), Posting("acme", -i)))


@pytest.fixture
def old_engine(db_url: str) -> Engine:
    eng = make_engine(db_url)
    upgrade(eng, "0003_audits")
    return eng


def _old_checkpoint(s: Session, key: Ed25519PrivateKey) -> None:
    """A checkpoint as a release before tree heads signed it (over the journal as it is)."""
    leaves = [h for _, h in iter_leaf_hashes(s)]
    cp = sign_checkpoint(key, len(leaves), root_of(leaves), 1_700_000_000 + len(leaves))
    s.add(
        CheckpointRow(
            tree_size=cp.tree_size,
            root=cp.root,
            timestamp=cp.timestamp,
            key_id=cp.key_id,
            signature=cp.signature,
        )
    )
    s.flush()


def test_upgrade_from_0003_keeps_history_and_appends_records(
    old_engine: Engine, signing_key: Ed25519PrivateKey
) -> None:
    cold, hot = _descriptor(), _descriptor()
    with Session(old_engine) as s, s.begin():
        add_account(s, "bank", "custodian")
        add_account(s, "acme", "counterparty")
        append_many(s, [_deposit(i) for i in range(1, 6)])
        _old_checkpoint(s, signing_key)
        cold_id = _old_vault(s, "cold", cold, 7)
        hot_id = _old_vault(s, "hot", hot, None)
        s.add(VaultRetirementRow(vault_id=hot_id, reason="keys rotated"))
        append_many(s, [_deposit(i) for i in range(6, 9)])
        _old_checkpoint(s, signing_key)
        s.add(
            AuditRow(
                tree_size=8,
                root=root_of(h for _, h in iter_leaf_hashes(s)),
                checkpoint_id=2,
                min_conf=1,
                height=120,
                best_block="cd" * 32,
                findings=1,
                ok=False,
                report='{"findings": ["x"]}',
            )
        )
    assert cold_id < hot_id
    before = dump(old_engine)

    upgrade(old_engine)

    assert current_revision(old_engine) not in (None, "0003_audits")
    after = dump(old_engine)
    for table in TABLES:
        if table != "entries":
            assert after[table] == before[table], table
    assert after["entries"][:8] == before["entries"]  # every old row and leaf hash as it was
    with Session(old_engine) as s, s.begin():
        report = verify_ledger(s, public_key_pem(signing_key))
        assert report.findings == (
            "entries 1..12 are not covered by a head signed by the ledger key (written outside the service)",
        )
        seal_existing(s, signing_key)  # what `reserve init` does after migrating, with the key
    old_engine = sealing(old_engine, Sealer(signing_key))
    with Session(old_engine) as s, s.begin():
        report = verify_ledger(s, public_key_pem(signing_key))
        assert report.ok, report.findings
        assert report.entries == 12 and report.checkpoints == 2
        assert [(r.seq, r.kind) for r in records(s)] == [
            (9, RecordKind.VAULT_ADDED),
            (10, RecordKind.VAULT_ADDED),
            (11, RecordKind.VAULT_RETIRED),
            (12, RecordKind.AUDIT),
        ]
        assert records(s)[0].body == vault_added_body(
            vault="cold",
            kind="wsh",
            threshold=2,
            descriptor=str(cold),
            network="regtest",
            birthday=7,
            keys=_key_fields(cold),
        )
        audit = records(s, RecordKind.AUDIT)[0].body
        assert audit == audit_body(
            audit_id=1,
            tree_size=8,
            root=bytes.fromhex(audit["root"]),
            checkpoint_id=2,
            height=120,
            best_block="cd" * 32,
            min_conf=1,
            findings=1,
            ok=False,
            report='{"findings": ["x"]}',
        )
        assert get_vault(s, "cold").descriptor == cold and get_vault(s, "hot").retired
        assert get_entry(s, 9).postings == ()
        make_checkpoint(s, signing_key)  # the old key goes on signing over old and new history
    with Session(old_engine) as s, s.begin():
        add_vault(s, "warm", _descriptor(), HOLDERS, R, Policy())
        assert [v.name for v in list_vaults(s)] == ["cold", "warm"]
        assert verify_ledger(s, public_key_pem(signing_key)).ok

    # The rebuilt table is still append-only, and its foreign keys still hold.
    saved = snapshot(old_engine)
    for statement in ("UPDATE entries SET memo = 'x'", "DELETE FROM entries"):
        with pytest.raises(DBAPIError, match="append-only"), old_engine.begin() as c:
            c.execute(text(statement))
    with pytest.raises(IntegrityError), old_engine.begin() as c:
        c.execute(text("INSERT INTO postings (entry_seq, idx, account_id, amount) VALUES (999, 0, 1, 5)"))
    with pytest.raises(IntegrityError), old_engine.begin() as c:
        c.execute(
            text(
                "INSERT INTO entries (seq, kind, date, memo, content_hash, leaf_hash) "
                "VALUES (99, 'gift', '2026-01-01', 'm', :h, :h)"
            ),
            {"h": b"\0" * 32},
        )
    if old_engine.dialect.name == "sqlite":
        with old_engine.connect() as c:
            assert c.exec_driver_sql("PRAGMA foreign_key_check").all() == []
    assert snapshot(old_engine) == saved


def _key_fields(d: MultisigDescriptor) -> list[KeyFields]:
    return [
        KeyFields(h, str(k), k.xpub, None if k.origin is None else k.origin.fingerprint.hex())
        for h, k in zip(HOLDERS, d.keys, strict=True)
    ]


def test_upgrade_of_an_empty_0003_database_appends_nothing(old_engine: Engine) -> None:
    upgrade(old_engine)
    with Session(old_engine) as s:
        assert last_seq(s) == 0


def test_vault_records_are_written_with_the_rows(engine: Engine, signing_key: Ed25519PrivateKey) -> None:
    d = _descriptor()
    with Session(engine) as s, s.begin():
        add_vault(s, "cold", d, HOLDERS, R, Policy(), birthday_height=3)
        retire_vault(s, "cold", "moved to new keys")
    with Session(engine) as s:
        assert [(r.seq, r.kind, r.body.get("vault")) for r in records(s)] == [
            (1, RecordKind.VAULT_ADDED, "cold"),
            (2, RecordKind.VAULT_RETIRED, "cold"),
        ]
        assert records(s, RecordKind.VAULT_RETIRED)[0].body == {
            "vault": "cold",
            "reason": "moved to new keys",
        }
        assert records(s)[0].body["keys"][1]["holder"] == "bob"
        assert records(s)[0].body["descriptor"] == str(d) and records(s)[0].body["birthday"] == 3
    before = snapshot(engine)
    with pytest.raises(PolicyViolation), Session(engine) as s, s.begin():
        add_vault(s, "weak", _descriptor(), ("a", "a", "a"), R, Policy())
    holder = r"key holder contains the control character U\+001B"
    with pytest.raises(InvalidInput, match=holder), Session(engine) as s, s.begin():
        add_vault(s, "ansi", _descriptor(), ("alice", "bob\x1b[2J", "carol"), R, Policy())
    assert snapshot(engine) == before
    with Session(engine) as s, s.begin():
        add_vault(s, "warm", _descriptor(), HOLDERS, R, Policy())
    before = snapshot(engine)
    reason = r"retirement reason contains the control character U\+202E"
    with pytest.raises(InvalidInput, match=reason), Session(engine) as s, s.begin():
        retire_vault(s, "warm", "rotated \u202edlo")
    assert snapshot(engine) == before


def test_record_inclusion_verifies_standalone(
    engine: Engine, signing_key: Ed25519PrivateKey, tmp_path: Path
) -> None:
    """The auditor's verifier (ledger/verify_proof.py) works on leaf hashes: a record's inclusion
    in a signed checkpoint is proven like any entry's."""
    with Session(engine) as s, s.begin():
        add_account(s, "bank", "custodian")
        add_account(s, "acme", "counterparty")
        append_many(s, [_deposit(1), _deposit(2)])
        add_vault(s, "cold", _descriptor(), HOLDERS, R, Policy())
        append_many(s, [_deposit(3)])
        make_checkpoint(s, signing_key)
        document = inclusion_document(s, 3)
        assert stored_checkpoints(s)[-1][0] == 1
    assert b"vault-added" in bytes.fromhex(document["entry_hex"])
    verify_inclusion_document(document, public_key_pem(signing_key))
    # and as the auditor runs it: the one file, copied away from the package
    verifier = tmp_path / "verify_proof.py"
    verifier.write_bytes(Path(verify_proof.__file__).read_bytes())
    (tmp_path / "proof.json").write_text(json.dumps(document))
    (tmp_path / "pub.pem").write_bytes(public_key_pem(signing_key))
    done = subprocess.run(
        [sys.executable, str(verifier), "proof.json", "--pubkey", "pub.pem"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0 and done.stdout.startswith("OK"), done.stdout + done.stderr
