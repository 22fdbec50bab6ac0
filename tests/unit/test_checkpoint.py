"""Signed checkpoints and the ledger's signing key file."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import stat
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ec import SECP256K1, generate_private_key
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
)

from ledger.errors import Conflict, InvalidInput, NotInitialised
from ledger.journal.checkpoint import (
    Checkpoint,
    create_signing_key,
    load_signing_key,
    parse_exported,
    public_key_pem,
    sign_checkpoint,
    verify_checkpoint,
)
from ledger.journal.keychain import judge_rotations, rotation_body
from ledger.journal.merkle import leaf_hash, root_of
from ledger.journal.records import Record, RecordKind
from ledger.verify_proof import ProofError, checkpoint_message, key_id

ROOT = root_of(leaf_hash(bytes([i])) for i in range(10))


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


# --- The key file ---------------------------------------------------------------------------


def test_created_key_file_is_0600_pkcs8_and_loads_back(tmp_path: Path) -> None:
    path = tmp_path / "keys" / "signing.pem"
    key = create_signing_key(path)
    assert _mode(path) == 0o600
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")
    loaded = load_signing_key(path)
    assert public_key_pem(loaded) == public_key_pem(key)


def test_key_file_is_0600_even_with_a_permissive_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        path = tmp_path / "signing.pem"
        create_signing_key(path)
    finally:
        os.umask(old)
    assert _mode(path) == 0o600


def test_existing_key_file_is_never_overwritten(tmp_path: Path) -> None:
    path = tmp_path / "signing.pem"
    create_signing_key(path)
    before = path.read_bytes()
    with pytest.raises(Conflict, match="already exists"):
        create_signing_key(path)
    assert path.read_bytes() == before


def test_missing_key_says_run_reserve_init(tmp_path: Path) -> None:
    with pytest.raises(NotInitialised, match="reserve init"):
        load_signing_key(tmp_path / "nope.pem")


@pytest.mark.parametrize("mode", [0o644, 0o640, 0o604, 0o660])
def test_key_readable_by_others_is_refused(tmp_path: Path, mode: int) -> None:
    path = tmp_path / "signing.pem"
    create_signing_key(path)
    path.chmod(mode)
    with pytest.raises(InvalidInput, match=f"mode {mode:04o}") as err:
        load_signing_key(path)
    assert f"chmod 600 {path}" in str(err.value)


def test_key_of_another_type_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "ec.pem"
    ec = generate_private_key(SECP256K1())
    path.write_bytes(ec.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    path.chmod(0o600)
    with pytest.raises(InvalidInput, match="not an Ed25519 key"):
        load_signing_key(path)


def test_junk_key_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "junk.pem"
    path.write_bytes(b"not a key")
    path.chmod(0o600)
    with pytest.raises(InvalidInput, match="not an unencrypted PEM private key"):
        load_signing_key(path)


# --- Signing and verifying ------------------------------------------------------------------


def test_signed_checkpoint_verifies() -> None:
    key = Ed25519PrivateKey.generate()
    cp = sign_checkpoint(key, 10, ROOT, 1_700_000_000)
    assert cp.key_id == key_id(public_key_pem(key))
    verify_checkpoint(public_key_pem(key), cp)
    key.public_key().verify(cp.signature, checkpoint_message(10, ROOT, 1_700_000_000))


def test_checkpoint_message_is_exact() -> None:
    assert checkpoint_message(10, bytes(32), 1_700_000_000) == (
        b"reserve-ledger checkpoint v1\n10\n" + b"0" * 64 + b"\n1700000000\n"
    )


def test_key_id_is_first_8_bytes_of_sha256_of_raw_key() -> None:
    key = Ed25519PrivateKey.generate()
    raw = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    assert key_id(public_key_pem(key)) == hashlib.sha256(raw).hexdigest()[:16]


@pytest.mark.parametrize(
    "change",
    [
        {"tree_size": 11},
        {"tree_size": 9},
        {"root": root_of(leaf_hash(bytes([i])) for i in range(9))},
        {"timestamp": 1_700_000_001},
        {"signature": bytes(64)},
    ],
)
def test_signature_over_changed_fields_fails(change: dict[str, Any]) -> None:
    key = Ed25519PrivateKey.generate()
    cp = sign_checkpoint(key, 10, ROOT, 1_700_000_000)
    tampered = dataclasses.replace(cp, **change)
    with pytest.raises(ProofError, match="does not verify"):
        verify_checkpoint(public_key_pem(key), tampered)


def test_another_key_fails() -> None:
    key, other = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
    cp = sign_checkpoint(key, 10, ROOT, 1_700_000_000)
    with pytest.raises(ProofError, match="given public key is"):
        verify_checkpoint(public_key_pem(other), cp)
    # Even when the key id is forged to match, the signature gives it away.
    forged = Checkpoint(10, ROOT, 1_700_000_000, key_id(public_key_pem(other)), cp.signature)
    with pytest.raises(ProofError, match="does not verify"):
        verify_checkpoint(public_key_pem(other), forged)


def test_public_key_of_another_type_fails() -> None:
    ec_pem = (
        generate_private_key(SECP256K1())
        .public_key()
        .public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    cp = sign_checkpoint(Ed25519PrivateKey.generate(), 10, ROOT, 1_700_000_000)
    with pytest.raises(ProofError, match="not an Ed25519 key"):
        verify_checkpoint(ec_pem, cp)
    with pytest.raises(ProofError, match="not a PEM public key"):
        verify_checkpoint(b"junk", cp)


# --- The Checkpoint value -------------------------------------------------------------------


def test_json_round_trip() -> None:
    cp = sign_checkpoint(Ed25519PrivateKey.generate(), 10, ROOT, 1_700_000_000)
    d = cp.to_json()
    assert d == {
        "tree_size": 10,
        "root": ROOT.hex(),
        "timestamp": 1_700_000_000,
        "key_id": cp.key_id,
        "signature": cp.signature.hex(),
    }
    assert Checkpoint.from_json(d) == cp


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"tree_size": -1}, "tree_size must be a non-negative integer"),
        ({"tree_size": True}, "tree_size must be a non-negative integer"),
        ({"timestamp": 1.5}, "timestamp must be a non-negative integer"),
        ({"root": bytes(31)}, "root must be 32 bytes"),
        ({"signature": bytes(63)}, "signature must be 64 bytes"),
        ({"key_id": "ABCDEF0123456789"}, "key_id must be 16 lowercase hex"),
        ({"key_id": "abc"}, "key_id must be 16 lowercase hex"),
    ],
)
def test_invariants_are_checked_on_construction(fields: dict[str, object], message: str) -> None:
    good: dict[str, object] = {
        "tree_size": 1,
        "root": ROOT,
        "timestamp": 0,
        "key_id": "0" * 16,
        "signature": bytes(64),
    }
    with pytest.raises(InvalidInput, match=message):
        Checkpoint(**{**good, **fields})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "change",
    [{"root": "zz"}, {"root": ROOT.hex().upper()}, {"extra": 1}, {"signature": None}],
)
def test_from_json_refuses_malformed_objects(change: dict[str, object]) -> None:
    d = sign_checkpoint(Ed25519PrivateKey.generate(), 10, ROOT, 1).to_json()
    with pytest.raises(InvalidInput):
        Checkpoint.from_json({**d, **change})


def test_checkpoint_is_immutable() -> None:
    cp = sign_checkpoint(Ed25519PrivateKey.generate(), 10, ROOT, 1)
    with pytest.raises(AttributeError):
        cp.tree_size = 11  # type: ignore[misc]


# --- Exported checkpoints ---------------------------------------------------------------------


def test_exported_checkpoint_round_trip() -> None:
    key = Ed25519PrivateKey.generate()
    cp = sign_checkpoint(key, 10, ROOT, 1_700_000_000)
    doc = cp.to_export(public_key_pem(key))
    assert parse_exported(doc) == (cp, public_key_pem(key))
    with pytest.raises(InvalidInput, match="signed by key"):
        cp.to_export(public_key_pem(Ed25519PrivateKey.generate()))


@pytest.mark.parametrize(
    "change",
    [
        {"format": "reserve-ledger-checkpoint/v0"},
        {"tree_size": 11},
        {"public_key": "junk"},
        {"public_key": None},
        {"extra": 1},
    ],
)
def test_parse_exported_refuses_bad_documents(change: dict[str, object]) -> None:
    key = Ed25519PrivateKey.generate()
    doc = sign_checkpoint(key, 10, ROOT, 1_700_000_000).to_export(public_key_pem(key))
    with pytest.raises(InvalidInput):
        parse_exported({**doc, **change})


# --- The key chain ----------------------------------------------------------------------------


def _rotation(seq: int, old: Ed25519PrivateKey, new: Ed25519PrivateKey) -> Record:
    body = rotation_body(old, public_key_pem(new), seq - 1, ROOT)
    return Record(seq=seq, kind=RecordKind.KEY_ROTATED, body=body)


def test_key_chain_follows_signed_handovers_both_ways() -> None:
    k0, k1, k2 = (Ed25519PrivateKey.generate() for _ in range(3))
    p0, p1, p2 = (public_key_pem(k) for k in (k0, k1, k2))
    chain = judge_rotations([_rotation(5, k0, k1), _rotation(9, k1, k2)])
    assert chain.problems == ()
    assert chain.predecessors(p2) == [p2, p1, p0]
    assert chain.successors(p0) == [p1, p2]
    assert chain.predecessors(p0) == [p0] and chain.successors(p2) == []
    retired = chain.retired(key_id(p0))
    assert retired is not None and retired.new_key_id == key_id(p1)
    assert chain.retired(key_id(p2)) is None


def test_key_chain_ignores_and_reports_bad_handovers() -> None:
    k0, k1, stranger = (Ed25519PrivateKey.generate() for _ in range(3))
    forged = _rotation(5, stranger, k1)
    forged.body["old_public_key"] = public_key_pem(k0).decode()
    forged.body["old_key_id"] = key_id(public_key_pem(k0))
    moved = _rotation(5, k0, k1)
    moved = Record(seq=7, kind=moved.kind, body=moved.body)
    chain = judge_rotations([forged, moved, Record(seq=8, kind=RecordKind.KEY_ROTATED, body={"x": 1})])
    assert chain.rotations == ()
    assert len(chain.problems) == 3
    assert "not signed by the old key" in chain.problems[0]
    assert "was copied or moved" in chain.problems[1]
    assert "entry 8" in chain.problems[2]
    assert chain.predecessors(public_key_pem(k1)) == [public_key_pem(k1)]


def test_rotation_to_the_same_key_is_refused() -> None:
    key = Ed25519PrivateKey.generate()
    with pytest.raises(InvalidInput, match="is the current key"):
        rotation_body(key, public_key_pem(key), 3, ROOT)
