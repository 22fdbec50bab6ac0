"""The standalone auditor's verifier: real documents, every tampered field, and a run of the
copied file in isolation."""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

import ledger.verify_proof as verify_proof_module
from ledger.journal.checkpoint import public_key_pem, sign_checkpoint
from ledger.journal.merkle import consistency_proof, inclusion_proof, leaf_hash, root_of
from ledger.verify_proof import (
    CHECKPOINT_FORMAT,
    CONSISTENCY_FORMAT,
    INCLUSION_FORMAT,
    ROTATION_FORMAT,
    ProofError,
    key_id,
    main,
    rotation_message,
    strict_json_loads,
    verify_consistency_document,
    verify_document,
    verify_exported_checkpoint,
    verify_inclusion_document,
    verify_rotation_document,
)

ENTRIES = [f'{{"seq":{i + 1},"memo":"entry {i + 1}"}}'.encode() for i in range(10)]
LEAVES = [leaf_hash(e) for e in ENTRIES]
KEY = Ed25519PrivateKey.generate()
PEM = public_key_pem(KEY)


def inclusion_document(seq: int = 5, size: int = 10) -> dict[str, Any]:
    leaves = LEAVES[:size]
    root = root_of(leaves)
    index = seq - 1
    return {
        "format": INCLUSION_FORMAT,
        "seq": seq,
        "leaf_index": index,
        "entry_hex": ENTRIES[index].hex(),
        "leaf_hash": leaves[index].hex(),
        "tree_size": size,
        "root": root.hex(),
        "proof": [p.hex() for p in inclusion_proof(index, leaves)],
        "checkpoint": sign_checkpoint(KEY, size, root, 1_700_000_000).to_json(),
    }


def consistency_document(old: int = 4, new: int = 10) -> dict[str, Any]:
    return {
        "format": CONSISTENCY_FORMAT,
        "old": sign_checkpoint(KEY, old, root_of(LEAVES[:old]), 1_700_000_000).to_json(),
        "new": sign_checkpoint(KEY, new, root_of(LEAVES[:new]), 1_700_003_600).to_json(),
        "proof": [p.hex() for p in consistency_proof(old, LEAVES[:new])],
    }


def run(tmp_path: Path, doc: Any, pem: bytes = PEM) -> int:
    proof_file = tmp_path / "proof.json"
    proof_file.write_text(json.dumps(doc))
    key_file = tmp_path / "pub.pem"
    key_file.write_bytes(pem)
    return main([str(proof_file), "--pubkey", str(key_file)])


def _flip(hex_text: str, at: int = 0) -> str:
    raw = bytearray(bytes.fromhex(hex_text))
    raw[at] ^= 1
    return raw.hex()


# --- Inclusion documents --------------------------------------------------------------------


def test_valid_inclusion_document_passes(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    doc = inclusion_document()
    assert run(tmp_path, doc) == 0
    assert capsys.readouterr().out == (
        f"OK: entry 5 is included in the tree of size 10 with root {doc['root']}, "
        f"checkpoint signed by key {key_id(PEM)}\n"
    )


@pytest.mark.parametrize(("seq", "size"), [(1, 1), (1, 10), (10, 10), (3, 7), (8, 8)])
def test_every_position_verifies(tmp_path: Path, seq: int, size: int) -> None:
    assert run(tmp_path, inclusion_document(seq, size)) == 0


def _tamper_checkpoint(doc: dict[str, Any], **changes: Any) -> dict[str, Any]:
    return {**doc, "checkpoint": {**doc["checkpoint"], **changes}}


INCLUSION_TAMPERS: dict[str, tuple[Any, str]] = {
    # name: (function of the document -> tampered document, expected words in the FAIL line)
    "entry_hex": (lambda d: {**d, "entry_hex": _flip(d["entry_hex"], 3)}, "entry bytes were changed"),
    "entry_hex appended": (lambda d: {**d, "entry_hex": d["entry_hex"] + "00"}, "entry bytes"),
    "leaf_hash": (lambda d: {**d, "leaf_hash": _flip(d["leaf_hash"])}, "not the hash of entry_hex"),
    "proof element 0": (
        lambda d: {**d, "proof": [_flip(d["proof"][0]), *d["proof"][1:]]},
        "leads to root",
    ),
    "proof element last": (
        lambda d: {**d, "proof": [*d["proof"][:-1], _flip(d["proof"][-1], 31)]},
        "leads to root",
    ),
    "proof dropped": (lambda d: {**d, "proof": d["proof"][:-1]}, "too short"),
    "proof extended": (lambda d: {**d, "proof": [*d["proof"], d["root"]]}, "too long"),
    "proof non-hex": (lambda d: {**d, "proof": ["zz", *d["proof"][1:]]}, "proof element 0"),
    "root": (lambda d: {**d, "root": _flip(d["root"])}, "leads to root"),
    "root and checkpoint root": (
        lambda d: _tamper_checkpoint({**d, "root": _flip(d["root"])}, root=_flip(d["root"])),
        "leads to root",
    ),
    "tree_size": (lambda d: {**d, "tree_size": 11}, "checkpoint is for size 10"),
    # Leaf 4's path in a tree of 10 also fits a tree of 16: only the signed checkpoint binds it.
    "tree_size bigger": (lambda d: {**d, "tree_size": 16}, "checkpoint is for size 10"),
    "tree_size smaller": (lambda d: {**d, "tree_size": 5}, "too long"),
    "leaf_index": (lambda d: {**d, "leaf_index": 5}, "does not belong to entry 5"),
    "seq and leaf_index": (lambda d: {**d, "seq": 6, "leaf_index": 5}, "leads to root"),
    "checkpoint signature": (
        lambda d: _tamper_checkpoint(d, signature=_flip(d["checkpoint"]["signature"])),
        "does not verify",
    ),
    "checkpoint timestamp": (
        lambda d: _tamper_checkpoint(d, timestamp=d["checkpoint"]["timestamp"] + 1),
        "does not verify",
    ),
    "checkpoint tree_size": (lambda d: _tamper_checkpoint(d, tree_size=11), "does not verify"),
    "checkpoint root": (
        lambda d: _tamper_checkpoint(d, root=_flip(d["checkpoint"]["root"])),
        "does not verify",
    ),
    "checkpoint key_id": (lambda d: _tamper_checkpoint(d, key_id="00" * 8), "given public key"),
    "checkpoint missing": (
        lambda d: {k: v for k, v in d.items() if k != "checkpoint"},
        "no field 'checkpoint'",
    ),
    "format": (lambda d: {**d, "format": "something/v2"}, "unknown proof document format"),
    "uppercase hex": (lambda d: {**d, "root": d["root"].upper()}, "lowercase hex"),
    "float size": (lambda d: {**d, "tree_size": 10.0}, "not an integer"),
    "not an object": (lambda d: [d], "must be a JSON object"),
}


@pytest.mark.parametrize("name", list(INCLUSION_TAMPERS))
def test_tampered_inclusion_document_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    tamper, words = INCLUSION_TAMPERS[name]
    assert run(tmp_path, tamper(inclusion_document())) == 1
    out = capsys.readouterr().out
    assert out.startswith("FAIL: ")
    assert words in out


def test_checkpoint_for_another_tree_fails() -> None:
    doc = inclusion_document(seq=3, size=10)
    # A correct proof against size 8, presented with the (genuine) checkpoint of size 10.
    other = inclusion_document(seq=3, size=8)
    with pytest.raises(ProofError, match="checkpoint is for size 10"):
        verify_inclusion_document({**other, "checkpoint": doc["checkpoint"]}, PEM)


def test_another_public_key_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    other = public_key_pem(Ed25519PrivateKey.generate())
    assert run(tmp_path, inclusion_document(), pem=other) == 1
    assert "given public key" in capsys.readouterr().out


def test_unreadable_inputs_fail_cleanly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    key_file = tmp_path / "pub.pem"
    key_file.write_bytes(PEM)
    assert main([str(tmp_path / "missing.json"), "--pubkey", str(key_file)]) == 1
    assert "FAIL: cannot read proof document" in capsys.readouterr().out
    bad_json = tmp_path / "bad.json"
    bad_json.write_text("{not json")
    assert main([str(bad_json), "--pubkey", str(key_file)]) == 1
    assert "not valid JSON" in capsys.readouterr().out
    nan_json = tmp_path / "nan.json"
    nan_json.write_text('{"format": NaN}')
    assert main([str(nan_json), "--pubkey", str(key_file)]) == 1
    assert "NaN" in capsys.readouterr().out
    assert main([str(bad_json), "--pubkey", str(tmp_path / "nokey.pem")]) == 1
    assert "FAIL: cannot read public key" in capsys.readouterr().out
    assert run(tmp_path, inclusion_document(), pem=b"junk") == 1
    assert "not a PEM public key" in capsys.readouterr().out


# --- Consistency documents ------------------------------------------------------------------


@pytest.mark.parametrize(("old", "new"), [(0, 10), (1, 10), (4, 10), (7, 10), (10, 10), (3, 5)])
def test_valid_consistency_document_passes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], old: int, new: int
) -> None:
    doc = consistency_document(old, new)
    assert run(tmp_path, doc) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"OK: the tree of size {old} with root {doc['old']['root']} is a prefix")
    assert f"signed by key {key_id(PEM)}" in out


def test_rewritten_history_fails_consistency() -> None:
    old = 4
    rewritten = [*LEAVES[:2], leaf_hash(b"rewritten"), *LEAVES[3:]]
    doc = {
        "format": CONSISTENCY_FORMAT,
        "old": sign_checkpoint(KEY, old, root_of(LEAVES[:old]), 1).to_json(),
        "new": sign_checkpoint(KEY, 10, root_of(rewritten), 2).to_json(),
        "proof": [p.hex() for p in consistency_proof(old, rewritten)],
    }
    with pytest.raises(ProofError, match=r"consistency proof leads to (old|new) root"):
        verify_consistency_document(doc, PEM)


CONSISTENCY_TAMPERS: dict[str, tuple[Any, str]] = {
    "proof element": (lambda d: {**d, "proof": [_flip(d["proof"][0]), *d["proof"][1:]]}, "root"),
    "proof dropped": (lambda d: {**d, "proof": d["proof"][:-1]}, "consistency proof"),
    "proof extended": (lambda d: {**d, "proof": [*d["proof"], d["proof"][0]]}, "consistency proof"),
    "old signature": (
        lambda d: {**d, "old": {**d["old"], "signature": _flip(d["old"]["signature"])}},
        "old checkpoint: checkpoint signature",
    ),
    "new signature": (
        lambda d: {**d, "new": {**d["new"], "signature": _flip(d["new"]["signature"])}},
        "new checkpoint: checkpoint signature",
    ),
    "swapped": (lambda d: {**d, "old": d["new"], "new": d["old"]}, "larger than new"),
    "missing new": (lambda d: {k: v for k, v in d.items() if k != "new"}, "no field 'new'"),
}


@pytest.mark.parametrize("name", list(CONSISTENCY_TAMPERS))
def test_tampered_consistency_document_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], name: str
) -> None:
    tamper, words = CONSISTENCY_TAMPERS[name]
    assert run(tmp_path, tamper(consistency_document())) == 1
    out = capsys.readouterr().out
    assert out.startswith("FAIL: ")
    assert words in out


# --- Standalone -----------------------------------------------------------------------------


def test_imports_only_stdlib_and_cryptography() -> None:
    source = Path(verify_proof_module.__file__).read_text()
    roots: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "no relative imports"
            roots.add((node.module or "").split(".")[0])
    non_stdlib = {r for r in roots if r not in sys.stdlib_module_names}
    assert non_stdlib == {"cryptography"}


def test_copied_file_runs_in_isolation(tmp_path: Path) -> None:
    audit = tmp_path / "audit"
    audit.mkdir()
    script = audit / "verify_proof.py"
    shutil.copy(verify_proof_module.__file__, script)
    (audit / "proof.json").write_text(json.dumps(inclusion_document()))
    (audit / "pub.pem").write_bytes(PEM)
    # -I: ignore PYTHON* variables and user site-packages, do not put the script's directory or
    # the current one on sys.path; run from the copy's directory, far from the repository.
    cmd = [sys.executable, "-I", str(script), "proof.json", "--pubkey", "pub.pem"]
    ok = subprocess.run(cmd, cwd=audit, capture_output=True, text=True, timeout=60, check=False)
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert ok.stdout.startswith("OK: entry 5 is included in the tree of size 10")
    tampered = inclusion_document()
    tampered["entry_hex"] = _flip(tampered["entry_hex"])
    (audit / "proof.json").write_text(json.dumps(tampered))
    bad = subprocess.run(cmd, cwd=audit, capture_output=True, text=True, timeout=60, check=False)
    assert bad.returncode == 1
    assert bad.stdout.startswith("FAIL: ")


# --- Several keys, exported checkpoints and key rotations -----------------------------------

NEW_KEY = Ed25519PrivateKey.generate()
NEW_PEM = public_key_pem(NEW_KEY)


def rotation_document(
    old: Ed25519PrivateKey = KEY, new_pem: bytes = NEW_PEM, size: int = 4
) -> dict[str, Any]:
    from ledger.journal.keychain import rotation_body

    return rotation_body(old, new_pem, size, root_of(LEAVES[:size]))


def test_rotation_message_is_exact() -> None:
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

    raw_old = KEY.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    raw_new = NEW_KEY.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    root = root_of(LEAVES[:4])
    assert rotation_message(PEM, NEW_PEM, 4, root) == (
        b"reserve-ledger key rotation v1\n" + f"{raw_old.hex()}\n{raw_new.hex()}\n4\n{root.hex()}\n".encode()
    )


def test_valid_rotation_document_passes_with_the_old_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = rotation_document()
    assert doc["format"] == ROTATION_FORMAT
    assert verify_rotation_document(doc, PEM) == NEW_PEM
    assert run(tmp_path, doc) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"OK: key {key_id(PEM)} handed the ledger over to key {key_id(NEW_PEM)}")
    # the new key cannot vouch for its own appointment
    assert run(tmp_path, doc, pem=NEW_PEM) == 1
    assert "given public key" in capsys.readouterr().out


Doc = dict[str, Any]
ROTATION_TAMPERING: dict[str, tuple[Callable[[Doc], Doc], str]] = {
    "tree size": (lambda d: {**d, "tree_size": d["tree_size"] + 1}, "not signed by the old key"),
    "root": (lambda d: {**d, "root": _flip(d["root"])}, "not signed by the old key"),
    "new key": (
        lambda d: {**d, "new_public_key": public_key_pem(Ed25519PrivateKey.generate()).decode()},
        "new_key_id",
    ),
    "new key and id": (
        lambda d: {
            **d,
            "new_public_key": (p := public_key_pem(Ed25519PrivateKey.generate())).decode(),
            "new_key_id": key_id(p),
        },
        "not signed by the old key",
    ),
    "signature": (lambda d: {**d, "signature": _flip(d["signature"])}, "not signed by the old key"),
    "old key id": (lambda d: {**d, "old_key_id": "00" * 8}, "old_key_id"),
    "format": (lambda d: {**d, "format": "reserve-ledger-key-rotation/v0"}, "format"),
    "no signature": (lambda d: {k: v for k, v in d.items() if k != "signature"}, "signature"),
}


@pytest.mark.parametrize("case", sorted(ROTATION_TAMPERING))
def test_tampered_rotation_document_fails(case: str) -> None:
    change, message = ROTATION_TAMPERING[case]
    with pytest.raises(ProofError, match=message):
        verify_rotation_document(change(rotation_document()), PEM)


def test_self_signed_rotation_by_a_stranger_fails() -> None:
    """A handover signed by a key the auditor does not hold is refused, however well formed."""
    stranger = Ed25519PrivateKey.generate()
    with pytest.raises(ProofError, match="given public key"):
        verify_rotation_document(rotation_document(old=stranger), PEM)


def test_documents_straddling_a_rotation_need_both_keys(tmp_path: Path) -> None:
    doc = consistency_document(4, 10)
    doc["new"] = sign_checkpoint(NEW_KEY, 10, root_of(LEAVES), 1_700_003_600).to_json()
    with pytest.raises(ProofError, match="given public key is"):
        verify_consistency_document(doc, PEM)
    verify_consistency_document(doc, [PEM, NEW_PEM])
    assert "checkpoints signed by keys" in verify_document(doc, [PEM, NEW_PEM])
    proof_file, keys = tmp_path / "c.json", []
    proof_file.write_text(json.dumps(doc))
    for name, pem in (("old.pem", PEM), ("new.pem", NEW_PEM)):
        (tmp_path / name).write_bytes(pem)
        keys += ["--pubkey", str(tmp_path / name)]
    assert main([str(proof_file), *keys]) == 0
    assert main([str(proof_file), *keys[2:]]) == 1


def test_exported_checkpoint_document() -> None:
    cp = sign_checkpoint(KEY, 10, root_of(LEAVES), 1_700_000_000)
    doc = cp.to_export(PEM)
    assert doc["format"] == CHECKPOINT_FORMAT and doc["public_key"] == PEM.decode()
    assert verify_exported_checkpoint(doc, PEM) == PEM
    assert verify_document(doc, PEM).startswith("OK: checkpoint of tree size 10")
    with pytest.raises(ProofError, match="not one of the given public keys"):
        verify_exported_checkpoint(doc, NEW_PEM)  # a self-consistent export by another key
    with pytest.raises(ProofError, match="does not verify"):
        verify_exported_checkpoint({**doc, "tree_size": 9}, PEM)


def test_unknown_format_names_every_known_one() -> None:
    with pytest.raises(ProofError, match=ROTATION_FORMAT):
        verify_document({"format": "x"}, PEM)


# --- One strict reader: repeated keys, numbers, unknown fields -------------------------------


def test_strict_reader_refuses_repeated_keys_at_any_depth() -> None:
    assert strict_json_loads(b'{"a": [1, {"b": 2}], "c": {"d": {"e": 3}}}') == {
        "a": [1, {"b": 2}],
        "c": {"d": {"e": 3}},
    }
    # python's json keeps the last value, other readers the first: two readers, two documents
    assert json.loads('{"amount": 1, "amount": 2}') == {"amount": 2}
    cases = {
        '{"amount": 1, "amount": 2}': "$.amount",
        '{"a": [0, {"x": {"amount": 1, "amount": 1}}]}': "$.a[1].x.amount",
        '[[[{"k": 1, "k": 1}]]]': "$[0][0][0].k",
    }
    for text, path in cases.items():
        with pytest.raises(ProofError, match=r"repeats the key '(amount|k)'") as exc:
            strict_json_loads(text)
        assert f"(at {path})" in str(exc.value)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('{"n": NaN}', "NaN"),
        ('{"n": -Infinity}', "-Infinity"),
        ('{"n": 1.0}', "number 1.0, which is not an integer"),
        ('{"n": 1e8}', "number 1e8, which is not an integer"),
        ('{"n": 1', "not valid JSON"),
        ("[" * 100_000, "nested too deeply"),
        ('{"n": ' + "9" * 5000 + "}", "not valid JSON"),
    ],
)
def test_strict_reader_refuses_what_readers_disagree_on(text: str, words: str) -> None:
    with pytest.raises(ProofError, match=re.escape(words)):
        strict_json_loads(text)


def test_strict_reader_needs_utf8() -> None:
    assert strict_json_loads('{"name": "k\u00f6ln"}'.encode()) == {"name": "k\u00f6ln"}
    with pytest.raises(ProofError, match="not UTF-8"):
        strict_json_loads('{"name": "k\u00f6ln"}'.encode("latin-1"))


def _with_repeat(doc: dict[str, Any], inner: str | None, key: str, value: Any) -> str:
    """``doc`` as JSON text with ``key`` repeated (first value ``value``) at the top or in the
    object field ``inner``: what the standard library cannot write."""
    text = json.dumps(doc)
    extra = f"{json.dumps(key)}: {json.dumps(value)}, "
    if inner is None:
        return "{" + extra + text[1:]
    marker = f'"{inner}": {{'
    assert marker in text
    return text.replace(marker, marker + extra, 1)


DOCUMENTS: dict[str, Callable[[], dict[str, Any]]] = {
    "inclusion": inclusion_document,
    "consistency": consistency_document,
    "checkpoint": lambda: sign_checkpoint(KEY, 10, root_of(LEAVES), 1_700_000_000).to_export(PEM),
    "rotation": rotation_document,
}
NESTED = {"inclusion": "checkpoint", "consistency": "new", "checkpoint": None, "rotation": None}


@pytest.mark.parametrize("kind", sorted(DOCUMENTS))
def test_every_document_refuses_repeated_keys_and_unknown_fields(
    kind: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    doc = DOCUMENTS[kind]()
    proof_file = tmp_path / "proof.json"
    (tmp_path / "pub.pem").write_bytes(PEM)

    def verdict(text: str) -> str:
        proof_file.write_text(text)
        code = main([str(proof_file), "--pubkey", str(tmp_path / "pub.pem")])
        out = capsys.readouterr().out
        assert code == (0 if out.startswith("OK: ") else 1)
        return out

    assert verdict(json.dumps(doc)).startswith("OK: ")
    # the first tree_size is what a first-value reader sees; the signature covers the last
    out = verdict(_with_repeat(doc, None, "tree_size" if kind != "consistency" else "proof", 0))
    assert out.startswith("FAIL: ") and "repeats the key" in out, out
    inner = NESTED[kind]
    if inner is not None:
        out = verdict(_with_repeat(doc, inner, "timestamp", 0))
        assert out.startswith("FAIL: ") and f"(at $.{inner}.timestamp)" in out, out
    # unknown fields: at the top, and in the nested checkpoint object
    out = verdict(json.dumps({**doc, "note": "approved by the board"}))
    assert out.startswith("FAIL: ") and "no field 'note' at $.note" in out, out
    if inner is not None:
        out = verdict(json.dumps({**doc, inner: {**doc[inner], "balances": {"cold": 1}}}))
        assert f"no field 'balances' at $.{inner}.balances" in out, out
    with pytest.raises(ProofError, match="no field 'x' at"):
        verify_document({**doc, "x": None}, PEM)
