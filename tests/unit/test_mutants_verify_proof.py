"""The standalone verifier names the document, the field and the value in every refusal.

Mutation testing (``scripts/mutation``) found that the location in these messages (which
document, which checkpoint, which field) could be dropped or garbled without a test noticing; an
auditor reading ``FAIL: ...`` needs it to know what to look at.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from ledger.journal.checkpoint import sign_checkpoint
from ledger.journal.merkle import inclusion_proof, root_of
from ledger.verify_proof import (
    ProofError,
    key_id,
    keyring,
    main,
    rotation_message,
    verify_consistency,
    verify_document,
    verify_inclusion,
    verify_inclusion_document,
)
from tests.unit.test_verify_proof import (
    KEY,
    LEAVES,
    NEW_KEY,
    NEW_PEM,
    PEM,
    consistency_document,
    inclusion_document,
    rotation_document,
)

Doc = dict[str, Any]
KID = key_id(PEM)
H31 = "ab" * 31


def _without(doc: Doc, name: str) -> Doc:
    return {k: v for k, v in doc.items() if k != name}


def _cp(doc: Doc, name: str, value: Any) -> Doc:
    return {**doc, "checkpoint": {**doc["checkpoint"], name: value}}


def _cp_without(doc: Doc, name: str) -> Doc:
    return {**doc, "checkpoint": _without(doc["checkpoint"], name)}


INCLUSION_REFUSALS: dict[str, tuple[Callable[[Doc], Doc], str]] = {
    "seq as text": (
        lambda d: {**d, "seq": "5"},
        "inclusion proof field 'seq' must be a non-negative integer, got '5'",
    ),
    "no leaf_index": (lambda d: _without(d, "leaf_index"), "inclusion proof has no field 'leaf_index'"),
    "leaf_index of another entry": (
        lambda d: {**d, "leaf_index": 3},
        "leaf_index 3 does not belong to entry 5 (expected 4)",
    ),
    "entry_hex a number": (
        lambda d: {**d, "entry_hex": 5},
        "inclusion proof field 'entry_hex' must be a lowercase hex string, got 5",
    ),
    "short leaf_hash": (
        lambda d: {**d, "leaf_hash": H31},
        "inclusion proof field 'leaf_hash' must be 32 bytes (64 hex digits), got 31",
    ),
    "negative tree_size": (
        lambda d: {**d, "tree_size": -1},
        "inclusion proof field 'tree_size' must be a non-negative integer, got -1",
    ),
    "long root": (
        lambda d: {**d, "root": "ab" * 33},
        "inclusion proof field 'root' must be 32 bytes (64 hex digits), got 33",
    ),
    "spaced root": (
        lambda d: {**d, "root": "ab " * 32},
        f"inclusion proof field 'root' must be plain hex without spaces, got {'ab ' * 32!r}",
    ),
    "proof not a list": (
        lambda d: {**d, "proof": "ab"},
        "inclusion proof field 'proof' must be a list of hex hashes, got 'ab'",
    ),
    "short proof element": (
        lambda d: {**d, "proof": [H31, *d["proof"][1:]]},
        "inclusion proof proof element 0 must be 32 bytes (64 hex digits), got 31",
    ),
    "no checkpoint": (lambda d: _without(d, "checkpoint"), "inclusion proof has no field 'checkpoint'"),
    "no root": (lambda d: _without(d, "root"), "inclusion proof has no field 'root'"),
    "checkpoint not an object": (
        lambda d: {**d, "checkpoint": 5},
        "checkpoint must be a JSON object, got int",
    ),
    "checkpoint tree_size": (
        lambda d: _cp(d, "tree_size", "x"),
        "checkpoint field 'tree_size' must be a non-negative integer, got 'x'",
    ),
    "checkpoint root": (
        lambda d: _cp(d, "root", H31),
        "checkpoint field 'root' must be 32 bytes (64 hex digits), got 31",
    ),
    "checkpoint timestamp": (
        lambda d: _cp(d, "timestamp", True),
        "checkpoint field 'timestamp' must be a non-negative integer, got True",
    ),
    "checkpoint signature": (
        lambda d: _cp(d, "signature", "ab" * 63),
        "checkpoint field 'signature' must be 64 bytes (128 hex digits), got 63",
    ),
    "checkpoint key_id": (lambda d: _cp_without(d, "key_id"), "checkpoint has no field 'key_id'"),
    "checkpoint unknown key": (
        lambda d: _cp(d, "key_id", "k"),
        f"checkpoint says it was signed by key 'k', but the given public key is {KID}",
    ),
}


@pytest.mark.parametrize("case", sorted(INCLUSION_REFUSALS))
def test_inclusion_refusals_name_field_and_value(case: str) -> None:
    change, message = INCLUSION_REFUSALS[case]
    with pytest.raises(ProofError) as e:
        verify_document(change(inclusion_document()), PEM)
    assert str(e.value) == message


def test_several_given_keys_are_all_named() -> None:
    both = sorted([KID, key_id(NEW_PEM)])
    with pytest.raises(ProofError) as e:
        verify_document(_cp(inclusion_document(), "key_id", "k"), [PEM, NEW_PEM])
    assert str(e.value) == (
        f"checkpoint says it was signed by key 'k', but the given public keys are {both[0]}, {both[1]}"
    )


def test_document_shape_errors() -> None:
    with pytest.raises(ProofError, match=r"^proof document must be a JSON object, got list$"):
        verify_document([], PEM)
    with pytest.raises(ProofError, match=r"^proof document has no field 'format'$"):
        verify_inclusion_document(_without(inclusion_document(), "format"), PEM)
    with pytest.raises(ProofError, match=r"^no public key given$"):
        keyring([])


CONSISTENCY_REFUSALS: dict[str, tuple[Callable[[Doc], Doc], str]] = {
    "no old": (lambda d: _without(d, "old"), "consistency proof has no field 'old'"),
    "no new": (lambda d: _without(d, "new"), "consistency proof has no field 'new'"),
    "no proof": (lambda d: _without(d, "proof"), "consistency proof has no field 'proof'"),
    "proof element": (
        lambda d: {**d, "proof": ["zz"]},
        "consistency proof proof element 0 is not valid hex: 'zz'",
    ),
    "old size": (
        lambda d: {**d, "old": {**d["old"], "tree_size": -4}},
        "old checkpoint field 'tree_size' must be a non-negative integer, got -4",
    ),
}


@pytest.mark.parametrize("case", sorted(CONSISTENCY_REFUSALS))
def test_consistency_refusals_name_field_and_value(case: str) -> None:
    change, message = CONSISTENCY_REFUSALS[case]
    with pytest.raises(ProofError) as e:
        verify_document(change(consistency_document()), PEM)
    assert str(e.value) == message


def test_consistency_to_another_old_tree_names_both_roots() -> None:
    other_old = root_of(LEAVES[1:4])
    doc = consistency_document(3, 10)
    doc["old"] = sign_checkpoint(KEY, 3, other_old, 1_700_000_000).to_json()
    with pytest.raises(ProofError) as e:
        verify_document(doc, PEM)
    assert str(e.value) == (
        f"consistency proof leads to old root {root_of(LEAVES[:3]).hex()}, not {other_old.hex()} (size 3)"
    )


def test_summary_names_both_signers_after_a_rotation() -> None:
    doc = consistency_document(4, 10)
    doc["new"] = sign_checkpoint(NEW_KEY, 10, root_of(LEAVES), 1_700_003_600).to_json()
    a, b = sorted([KID, key_id(NEW_PEM)])
    assert verify_document(doc, [PEM, NEW_PEM]).endswith(f", checkpoints signed by keys {a} and {b}")
    same = verify_document(consistency_document(4, 10), PEM)
    assert same.endswith(f", both checkpoints signed by key {KID}")


EXPORT_REFUSALS: dict[str, tuple[Callable[[Doc], Doc], str]] = {
    "no public key": (lambda d: _without(d, "public_key"), "exported checkpoint has no field 'public_key'"),
    "public key not text": (
        lambda d: {**d, "public_key": 5},
        "exported checkpoint field 'public_key' must be a PEM public key as text, got 5",
    ),
    "no key id": (lambda d: _without(d, "key_id"), "exported checkpoint has no field 'key_id'"),
    "another key id": (
        lambda d: {**d, "key_id": "x"},
        f"exported checkpoint carries public key {KID} (key_id 'x'), which is not one of the given "
        f"public keys {KID}",
    ),
    "root": (
        lambda d: {**d, "root": H31},
        "exported checkpoint field 'root' must be 32 bytes (64 hex digits), got 31",
    ),
}


def _export() -> Doc:
    return sign_checkpoint(KEY, 10, root_of(LEAVES), 1_700_000_000).to_export(PEM)


@pytest.mark.parametrize("case", sorted(EXPORT_REFUSALS))
def test_export_refusals_name_field_and_value(case: str) -> None:
    change, message = EXPORT_REFUSALS[case]
    with pytest.raises(ProofError) as e:
        verify_document(change(_export()), PEM)
    assert str(e.value) == message


def test_export_by_another_key_names_every_given_key() -> None:
    doc = {**_export(), "key_id": "x"}
    with pytest.raises(ProofError) as e:
        verify_document(doc, [PEM, NEW_PEM])
    both = ", ".join(sorted([KID, key_id(NEW_PEM)]))
    assert str(e.value) == (
        f"exported checkpoint carries public key {KID} (key_id 'x'), which is not one of the given "
        f"public keys {both}"
    )


ROTATION_REFUSALS: dict[str, tuple[Callable[[Doc], Doc], str]] = {
    "old key": (lambda d: _without(d, "old_public_key"), "key rotation has no field 'old_public_key'"),
    "new key": (lambda d: _without(d, "new_public_key"), "key rotation has no field 'new_public_key'"),
    "old key id": (lambda d: _without(d, "old_key_id"), "key rotation has no field 'old_key_id'"),
    "tree size": (
        lambda d: {**d, "tree_size": "4"},
        "key rotation field 'tree_size' must be a non-negative integer, got '4'",
    ),
    "root": (
        lambda d: {**d, "root": H31},
        "key rotation field 'root' must be 32 bytes (64 hex digits), got 31",
    ),
    "signature": (
        lambda d: {**d, "signature": "ab" * 63},
        "key rotation field 'signature' must be 64 bytes (128 hex digits), got 63",
    ),
    "signed over another size": (
        lambda d: {**d, "tree_size": 5},
        f"key rotation from key {KID} to key {key_id(NEW_PEM)} at tree size 5 is not signed by the old key",
    ),
}


@pytest.mark.parametrize("case", sorted(ROTATION_REFUSALS))
def test_rotation_refusals_name_field_and_value(case: str) -> None:
    change, message = ROTATION_REFUSALS[case]
    with pytest.raises(ProofError) as e:
        verify_document(change(rotation_document()), PEM)
    assert str(e.value) == message


def test_rotation_from_an_untrusted_key_says_old_key() -> None:
    with pytest.raises(ProofError) as e:
        verify_document(rotation_document(), NEW_PEM)
    assert str(e.value) == (
        f"key rotation (old key) says it was signed by key {KID!r}, but the given public key is "
        f"{key_id(NEW_PEM)}"
    )


GOOD = LEAVES[0]


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (
            lambda: verify_inclusion(GOOD, True, 1, (), GOOD),
            "leaf index must be a non-negative integer, got True",
        ),
        (lambda: verify_inclusion(GOOD, 0, -1, (), GOOD), "tree size must be a non-negative integer, got -1"),
        (
            lambda: verify_inclusion(b"ab", 0, 1, (), GOOD),
            "leaf hash must be a 32-byte SHA-256 hash, got '6162'",
        ),
        (
            lambda: verify_inclusion(GOOD, 0, 1, (), "r"),  # type: ignore[arg-type]
            "root must be a 32-byte SHA-256 hash, got \"'r'\"",
        ),
        (
            lambda: verify_inclusion(GOOD, 0, 2, (b"",), GOOD),
            "inclusion proof element 0 must be a 32-byte SHA-256 hash, got ''",
        ),
        (
            lambda: verify_consistency(-1, 2, GOOD, GOOD, ()),
            "old tree size must be a non-negative integer, got -1",
        ),
        (
            lambda: verify_consistency(1, None, GOOD, GOOD, ()),  # type: ignore[arg-type]
            "new tree size must be a non-negative integer, got None",
        ),
        (lambda: verify_consistency(1, 2, b"", GOOD, ()), "old root must be a 32-byte SHA-256 hash, got ''"),
        (lambda: verify_consistency(1, 2, GOOD, b"", ()), "new root must be a 32-byte SHA-256 hash, got ''"),
        (
            lambda: verify_consistency(1, 2, GOOD, GOOD, (b"",)),
            "consistency proof element 0 must be a 32-byte SHA-256 hash, got ''",
        ),
        (
            lambda: rotation_message(PEM, NEW_PEM, -1, GOOD),
            "rotation tree size must be a non-negative integer, got -1",
        ),
        (
            lambda: rotation_message(PEM, NEW_PEM, 1, b""),
            "rotation root must be a 32-byte SHA-256 hash, got ''",
        ),
    ],
)
def test_bad_arguments_are_named(call: Callable[[], object], message: str) -> None:
    with pytest.raises(ProofError) as e:
        call()
    assert str(e.value) == message


def test_checkpoint_signature_arguments_are_named() -> None:
    from ledger.verify_proof import verify_checkpoint_signature

    sig = bytes(64)
    cases = [
        ((-1, GOOD, 0, sig), "checkpoint tree size must be a non-negative integer, got -1"),
        ((1, GOOD, -2, sig), "checkpoint timestamp must be a non-negative integer, got -2"),
        ((1, b"", 0, sig), "checkpoint root must be a 32-byte SHA-256 hash, got ''"),
        ((1, GOOD, 0, "ab"), "checkpoint signature must be 64 bytes, got 'ab'"),
        ((1, GOOD, 0, b"ab"), "checkpoint signature must be 64 bytes, got b'ab'"),
    ]
    for (size, root, timestamp, signature), message in cases:
        with pytest.raises(ProofError) as e:
            verify_checkpoint_signature(PEM, size, root, timestamp, signature)  # type: ignore[arg-type]
        assert str(e.value) == message


def test_an_rsa_key_is_named_as_such() -> None:
    from cryptography.hazmat.primitives.asymmetric import rsa
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    rsa_pem = (
        rsa.generate_private_key(65537, 1024)
        .public_key()
        .public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    with pytest.raises(ProofError, match=r"^public key is a _?RSAPublicKey, not an Ed25519 key"):
        key_id(rsa_pem)


def test_command_line_help_and_required_key(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    with pytest.raises(SystemExit) as e:
        main(["--help"])
    assert e.value.code == 0
    out = " ".join(capsys.readouterr().out.split())
    assert " Verify a reserve-ledger inclusion or consistency proof document. positional" in out
    assert " proof proof JSON document " in out
    assert out.endswith(" the ledger's Ed25519 public key (PEM); repeat for the keys of a rotation chain")
    with pytest.raises(SystemExit) as e:
        main([str(tmp_path / "proof.json")])
    assert e.value.code == 2
    assert "--pubkey" in capsys.readouterr().err


def test_inclusion_proof_from_the_last_leaf_of_an_odd_tree() -> None:
    leaves = LEAVES[:7]
    verify_inclusion(leaves[6], 6, 7, inclusion_proof(6, leaves), root_of(leaves))


def test_an_unknown_format_lists_the_known_ones() -> None:
    from ledger.verify_proof import CHECKPOINT_FORMAT, CONSISTENCY_FORMAT, INCLUSION_FORMAT, ROTATION_FORMAT

    with pytest.raises(ProofError) as e:
        verify_document({"format": "x"}, PEM)
    known = (INCLUSION_FORMAT, CONSISTENCY_FORMAT, CHECKPOINT_FORMAT, ROTATION_FORMAT)
    assert str(e.value) == f"unknown proof document format 'x'; expected one of {', '.join(map(repr, known))}"
