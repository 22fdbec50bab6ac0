"""The ledger's signing key through the real CLI, on SQLite and PostgreSQL: a replaced key file is
a finding and never signs (checkpoint, audit); `ledger rotate-key` hands over explicitly, and old
and new checkpoints keep verifying, in the CLI and in the standalone verify_proof.py."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from ledger.journal.checkpoint import create_signing_key
from ledger.store.db import make_engine
from tests.fixtures.db import drop_append_only_triggers, snapshot
from tests.fixtures.reserve import Reserve

Run = Callable[..., tuple[int, str, str]]
VERIFY_PROOF = Path(__file__).resolve().parents[2] / "ledger" / "verify_proof.py"


@pytest.fixture
def keys(tmp_path: Path) -> Path:
    path = tmp_path / "keys"
    path.mkdir(mode=0o700)
    return path


@pytest.fixture
def run(db_url: str, keys: Path, capsys: pytest.CaptureFixture[str]) -> Run:
    """``reserve --db URL --signing-key KEYS/<key> ...``: the key file is chosen per call."""
    from ledger.cli.main import main

    def invoke(*args: str, key: str = "k1.key") -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(["--db", db_url, "--signing-key", str(keys / key), *args])
        out, err = capsys.readouterr()
        return code, out, err

    return invoke


@pytest.fixture
def books(run: Run, db_url: str) -> Engine:
    """Two entries and a checkpoint signed by k1."""
    assert run("init")[0] == 0
    for name, kind in (("bank", "custodian"), ("owner", "equity")):
        assert run("account", "add", name, "--type", kind)[0] == 0
    for memo in ("one", "two"):
        code, _, err = run(
            "record", "--kind", "adjustment", "--memo", memo, "--posting", "bank=1", "--posting", "owner=-1"
        )
        assert code == 0, err
    assert run("ledger", "checkpoint")[0] == 0
    return make_engine(db_url)


def verify_proof(doc: str, tmp_path: Path, *pubkeys: str) -> subprocess.CompletedProcess[str]:
    """The auditor's verifier, copied alone into a directory and run as a script."""
    where = tmp_path / "auditor"
    where.mkdir(exist_ok=True)
    shutil.copy(VERIFY_PROOF, where / "verify_proof.py")
    (where / "doc.json").write_text(doc)
    args = [sys.executable, "verify_proof.py", "doc.json"]
    for i, pem in enumerate(pubkeys):
        (where / f"key{i}.pem").write_text(pem)
        args += ["--pubkey", f"key{i}.pem"]
    return subprocess.run(args, cwd=where, capture_output=True, text=True, check=False)


def test_replaced_key_is_a_finding_and_never_signs(run: Run, books: Engine, keys: Path) -> None:
    create_signing_key(keys / "k2.key")
    before = snapshot(books)
    code, _, err = run("ledger", "verify", key="k2.key")
    assert code == 1 and "key mismatch" in err and "the signing key file was replaced" in err
    code, out, _ = run("ledger", "verify", "--json", key="k2.key")
    assert code == 1 and any("key mismatch" in f for f in json.loads(out)["findings"])
    code, _, err = run("ledger", "checkpoint", key="k2.key")
    assert code == 2 and "key mismatch" in err and "refusing to sign over the old history" in err
    code, _, err = run("ledger", "checkpoint", "--export", str(keys / "cp.json"), key="k2.key")
    assert code == 2 and not (keys / "cp.json").exists()
    # the replaced key cannot hand itself the ledger either, and no new key file appears
    code, _, err = run("ledger", "rotate-key", "--new-key", str(keys / "k3.key"), key="k2.key")
    assert code == 2 and "key mismatch" in err and not (keys / "k3.key").exists()
    assert snapshot(books) == before
    # the original key in place: all is well again
    assert run("ledger", "verify")[0] == 0
    assert run("ledger", "checkpoint")[0] == 0


def test_rotation_keeps_old_and_new_checkpoints_verifiable(
    run: Run, books: Engine, keys: Path, tmp_path: Path
) -> None:
    _, k1_pem, _ = run("ledger", "pubkey")
    code, out, err = run("ledger", "rotate-key", "--new-key", str(keys / "k2.key"))
    assert code == 0, err
    assert "created, mode 0600" in out and "entry 3: key" in out
    assert (keys / "k2.key").stat().st_mode & 0o777 == 0o600
    _, k2_pem, _ = run("ledger", "pubkey", key="k2.key")
    assert k2_pem != k1_pem

    # the old key signs nothing more; the new one does
    before = snapshot(books)
    code, _, err = run("ledger", "checkpoint")
    assert code == 2 and "was handed over to key" in err
    assert snapshot(books) == before
    three = ["record", "--kind", "adjustment", "--memo", "three", "--posting", "bank=1", "--posting"]
    three.append("owner=-1")
    code, _, err = run(*three)  # nor does it seal a write (its tree head)
    assert code == 2 and "was handed over to key" in err
    assert snapshot(books) == before
    assert run(*three, key="k2.key")[0] == 0
    code, out, _ = run("ledger", "checkpoint", key="k2.key")
    assert code == 0 and json.loads(out)["tree_size"] == 4

    # ledger verify: by the new key file, and by an auditor who still holds the old public key
    code, out, err = run("ledger", "verify", key="k2.key")
    assert code == 0 and "3 checkpoint(s) verified" in out, err
    old_pub = tmp_path / "k1.pub"
    old_pub.write_text(k1_pem)
    code, out, err = run("ledger", "verify", "--pubkey", str(old_pub), key="k2.key")
    assert code == 0, err

    # the auditor follows the handover with the standalone verifier and the old key ...
    code, rotation, _ = run("ledger", "rotation", key="k2.key")
    assert code == 0
    done = verify_proof(rotation, tmp_path, k1_pem)
    assert done.returncode == 0 and "handed the ledger over to key" in done.stdout, done.stdout
    assert verify_proof(rotation, tmp_path, k2_pem).returncode == 1  # the new key cannot vouch for itself
    # ... then checks proofs with both keys: an entry before the rotation, under the new checkpoint
    code, proof, _ = run("ledger", "prove", "1", key="k2.key")
    assert code == 0
    assert verify_proof(proof, tmp_path, k2_pem).returncode == 0
    code, consistency, _ = run("ledger", "consistency", "2", "4", key="k2.key")
    assert code == 0
    done = verify_proof(consistency, tmp_path, k1_pem, k2_pem)
    assert done.returncode == 0 and "checkpoints signed by keys" in done.stdout
    assert verify_proof(consistency, tmp_path, k2_pem).returncode == 1

    # exported under the new key, checked by the database
    code, _, _ = run("ledger", "checkpoint", "--export", str(tmp_path / "cp.json"), key="k2.key")
    assert code == 0
    assert run("ledger", "verify", "--checkpoint", str(tmp_path / "cp.json"), key="k2.key")[0] == 0


def test_rotation_to_a_used_key_is_refused(run: Run, books: Engine, keys: Path) -> None:
    assert run("ledger", "rotate-key", "--new-key", str(keys / "k2.key"))[0] == 0
    before = snapshot(books)
    code, _, err = run("ledger", "rotate-key", "--new-key", str(keys / "k1.key"), key="k2.key")
    assert code == 2 and "has signed for this ledger before" in err
    assert snapshot(books) == before


def test_checkpoints_deleted_after_a_rotation_are_found(run: Run, books: Engine, keys: Path) -> None:
    assert run("ledger", "rotate-key", "--new-key", str(keys / "k2.key"))[0] == 0
    drop_append_only_triggers(books)
    with books.begin() as c:
        c.execute(text("DELETE FROM checkpoints"))
    code, _, err = run("ledger", "verify", key="k2.key")
    assert code == 1 and "checkpoints were deleted" in err, err


def test_replaced_key_with_rewritten_key_ids_never_signs(run: Run, books: Engine, keys: Path) -> None:
    """Rewriting the key id column of the stored checkpoints to the new key's does not help: the
    latest checkpoint's signature is checked before signing."""
    from ledger.journal.checkpoint import public_key_pem
    from ledger.verify_proof import key_id

    k2 = create_signing_key(keys / "k2.key")
    drop_append_only_triggers(books)
    with books.begin() as c:
        c.execute(text("UPDATE checkpoints SET key_id = :k"), {"k": key_id(public_key_pem(k2))})
    before = snapshot(books)
    code, _, err = run("ledger", "checkpoint", key="k2.key")
    assert code == 2 and "the latest checkpoint #1 does not verify" in err, err
    assert snapshot(books) == before
    code, _, err = run("ledger", "verify", key="k2.key")
    assert code == 1 and "checkpoint #1 (tree size 2) does not verify" in err


def test_replaced_key_never_signs_after_a_rotation_even_without_checkpoints(
    run: Run, books: Engine, keys: Path
) -> None:
    """The rotation record itself names the key: deleting every checkpoint does not let a
    replaced key file sign."""
    assert run("ledger", "rotate-key", "--new-key", str(keys / "k2.key"))[0] == 0
    drop_append_only_triggers(books)
    with books.begin() as c:
        c.execute(text("DELETE FROM checkpoints"))
    create_signing_key(keys / "k3.key")
    before = snapshot(books)
    code, _, err = run("ledger", "checkpoint", key="k3.key")
    assert code == 2 and "key mismatch: entry 3 handed the ledger over to key" in err, err
    assert snapshot(books) == before
    code, _, err = run("ledger", "verify", key="k3.key")
    assert code == 1 and "key mismatch: entry 3 handed the ledger over" in err


def test_replaced_key_never_signs_an_audit(reserve: Reserve, tmp_path: Path) -> None:
    """`audit` signs through make_checkpoint: with a replaced key file the journal fails the
    audit's verification (a finding, exit 1) and no checkpoint is signed by the replaced key."""
    reserve.add_vault("keys")  # its vault-added record is entry 1
    reserve.ok("ledger", "checkpoint")
    engine = reserve.engine()
    with engine.connect() as c:
        checkpoints = c.execute(text("SELECT count(*) FROM checkpoints")).scalar_one()
    reserve.key_path.unlink()
    create_signing_key(reserve.key_path)
    r = reserve.run("audit", "--json")
    assert r.code == 1, r.err + r.out
    report = r.json()
    assert report["checkpoint_id"] is None and report["audit_id"] is None  # nor a head for its record
    assert any("not signed by this ledger's key" in f["message"] for f in report["findings"]), report
    with engine.connect() as c:
        assert c.execute(text("SELECT count(*) FROM checkpoints")).scalar_one() == checkpoints
    r = reserve.run("ledger", "verify")
    assert r.code == 1 and "key mismatch" in r.err
    r = reserve.run("ledger", "checkpoint")
    assert r.code == 2 and "key mismatch" in r.err
    engine.dispose()


def test_audit_after_a_rotation_verifies_old_checkpoints(reserve: Reserve, tmp_path: Path) -> None:
    reserve.add_vault("rot")
    reserve.ok("ledger", "checkpoint")
    new_key = tmp_path / "new.key"
    reserve.ok("ledger", "rotate-key", "--new-key", str(new_key))
    reserve.key_path.unlink()
    new_key.rename(reserve.key_path)
    r = reserve.run("audit")
    assert r.code == 0, r.out + r.err
