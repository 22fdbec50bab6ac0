"""The journal commands end to end through ``ledger.cli.main.main``, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import stat
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Engine, text

from ledger.store.db import make_engine
from ledger.verify_proof import verify_document
from tests.fixtures.db import drop_append_only_triggers, snapshot
from tests.fixtures.reserve import Reserve

Run = Callable[..., tuple[int, str, str]]


@pytest.fixture
def run(db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> Run:
    from ledger.cli.main import main

    key = tmp_path / "keys" / "signing.key"

    def invoke(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(["--db", db_url, "--signing-key", str(key), *args])
        out, err = capsys.readouterr()
        return code, out, err

    return invoke


@pytest.fixture
def books(run: Run, db_url: str) -> Engine:
    assert run("init")[0] == 0
    assert run("account", "add", "bank", "--type", "custodian")[0] == 0
    assert run("account", "add", "acme", "--type", "counterparty")[0] == 0
    code, out, err = run(
        "record", "--kind", "deposit", "--memo", "first deposit", "--posting", "bank=1.5",
        "--posting", "acme=-1.5", "--ref", "bank-1", "--date", "2024-05-01", "--json",
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["seq"] == 1
    engine = make_engine(db_url)
    yield_engine: Engine = engine
    return yield_engine


def test_init_is_idempotent_and_key_is_private(run: Run, tmp_path: Path) -> None:
    code, out, _ = run("init")
    assert code == 0 and "created, mode 0600" in out
    key = tmp_path / "keys" / "signing.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    before = key.read_bytes()
    code, out, _ = run("init")
    assert code == 0 and "kept" in out and key.read_bytes() == before


def test_record_balance_log_reverse(run: Run, books: Engine) -> None:
    code, out, _ = run("account", "list", "--json")
    assert json.loads(out) == [
        {"name": "acme", "type": "counterparty"},
        {"name": "bank", "type": "custodian"},
    ]
    code, out, _ = run(
        "record", "--kind", "deposit", "--memo", "second", "--posting", "bank=150000000sat",
        "--posting", "acme=-1.5", "--txid", "AB" * 32, "--outputs", "0",
    )  # fmt: skip
    assert code == 0 and "entry 2" in out and "1.50000000" in out
    code, out, _ = run("balance", "--json")
    data = json.loads(out)
    assert data["reserve_sat"] == 0 and data["as_of"] == 2  # the reserve is vault accounts only
    assert {"name": "bank", "type": "custodian", "balance_sat": 300_000_000} in data["accounts"]
    code, out, _ = run("balance", "bank", "--as-of", "1")
    assert code == 0 and "1.50000000" in out and "after entry 1" in out
    code, out, _ = run("reverse", "2", "--memo", "duplicate", "--json")
    assert code == 0 and json.loads(out)["reverses_seq"] == 2
    code, out, _ = run("ledger", "log", "--json", "--limit", "2")
    assert [e["seq"] for e in json.loads(out)] == [2, 3]
    code, out, _ = run("ledger", "log")
    assert code == 0 and "reversal of 2" in out
    # the same ref and content again: the same entry, nothing written
    before = snapshot(books)
    code, out, _ = run(
        "record", "--kind", "deposit", "--memo", "first deposit", "--posting", "bank=1.5",
        "--posting", "acme=-1.5", "--ref", "bank-1", "--date", "2024-05-01", "--json",
    )  # fmt: skip
    assert code == 0 and json.loads(out)["seq"] == 1
    assert snapshot(books) == before


BAD = {
    "unbalanced": (["record", "--kind", "deposit", "--memo", "m", "--posting", "bank=1",
                    "--posting", "acme=-0.9"], "do not balance"),
    "unknown account": (["record", "--kind", "deposit", "--memo", "m", "--posting", "bank=1",
                         "--posting", "ghost=-1"], "reserve account add ghost"),
    "9 decimals": (["record", "--kind", "deposit", "--memo", "m", "--posting", "bank=0.000000001",
                    "--posting", "acme=-0.000000001"], "9 decimals"),
    "above 21M": (["record", "--kind", "deposit", "--memo", "m", "--posting", "bank=21000001",
                   "--posting", "acme=-21000001"], "21,000,000"),
    "ref with other content": (["record", "--kind", "deposit", "--memo", "other", "--posting",
                                "bank=1", "--posting", "acme=-1", "--ref", "bank-1"], "bank-1"),
    "no posting": (["record", "--kind", "deposit", "--memo", "m"], "missing --posting"),
    "bad posting": (["record", "--kind", "deposit", "--memo", "m", "--posting", "bank",
                     "--posting", "acme=-1"], "ACCOUNT=AMOUNT"),
    "bad date": (["record", "--kind", "deposit", "--memo", "m", "--posting", "bank=1",
                  "--posting", "acme=-1", "--date", "2024-13-01"], "YYYY-MM-DD"),
    "unknown seq": (["reverse", "99", "--memo", "m"], "no entry 99"),
    "reverse twice": (["reverse", "1", "--memo", "again"], "already reversed"),
    "unknown account type": (["account", "add", "x", "--type", "asset"], "asset"),
    "duplicate account": (["account", "add", "acme", "--type", "counterparty"], "already exists"),
    "prove past checkpoint": (["ledger", "prove", "3"], "reserve ledger checkpoint"),
    "as-of beyond end": (["balance", "--as-of", "9"], "no entry 9"),
    "vault account by hand": (["account", "add", "ghost", "--type", "vault"], "reserve vault add"),
    "5000-digit amount": (["record", "--kind", "adjustment", "--memo", "m", "--posting",
                           "bank=" + "9" * 5000 + "sat", "--posting", "acme=-1"], "5003 characters"),
    "junk checkpoint file": (["ledger", "verify", "--checkpoint", "/dev/null"], "is not valid JSON"),
    "missing checkpoint file": (["ledger", "verify", "--checkpoint", "/nonexistent.json"],
                                "cannot read checkpoint file"),
    "rotate to the current key": (["ledger", "rotate-key", "--new-key", "KEY"], "current key file"),
    "no rotation yet": (["ledger", "rotation"], "no key rotation recorded"),
    "junk pubkey": (["ledger", "verify", "--pubkey", "/dev/null"], "not a PEM public key"),
}  # fmt: skip

HUGE = {
    "prove 2^63": ["ledger", "prove", "9223372036854775808"],
    "prove 0": ["ledger", "prove", "0"],
    "reverse 10^23": ["reverse", "99999999999999999999999", "--memo", "m"],
    "consistency huge": ["ledger", "consistency", "1", "99999999999999999999"],
    "consistency negative": ["ledger", "consistency", "--", "-1", "1"],
    "consistency 5000 digits": ["ledger", "consistency", "1", "9" * 5000],
    "as-of huge": ["balance", "--as-of", "9223372036854775808"],
    "as-of negative": ["balance", "--as-of=-1"],
    "log limit huge": ["ledger", "log", "--limit", "9" * 40],
    "rotation huge": ["ledger", "rotation", "9223372036854775808"],
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(BAD))
def test_bad_input_exits_2_and_changes_nothing(run: Run, books: Engine, case: str, tmp_path: Path) -> None:
    assert run("reverse", "1", "--memo", "undo")[0] == 0
    assert run("ledger", "checkpoint")[0] == 0
    run("record", "--kind", "deposit", "--memo", "after", "--posting", "bank=1", "--posting", "acme=-1")
    before = snapshot(books)
    args, why = BAD[case]
    code, _, err = run(*(str(tmp_path / "keys" / "signing.key") if a == "KEY" else a for a in args))
    assert code == 2
    assert why in err
    assert snapshot(books) == before


@pytest.mark.parametrize("case", sorted(HUGE))
def test_huge_integers_are_one_line_exit_2(run: Run, books: Engine, case: str) -> None:
    assert run("ledger", "checkpoint")[0] == 0
    before = snapshot(books)
    code, out, err = run(*HUGE[case])
    assert code == 2 and out == ""
    assert err.startswith("error: ") and len(err.strip().splitlines()) == 1, err
    assert "out of range" in err or "not a number" in err
    assert snapshot(books) == before


def test_stored_text_never_reaches_the_terminal_raw(run: Run, books: Engine) -> None:
    """A memo or name holding control sequences (written behind the application's back) is
    printed escaped, never raw, and never read as rich markup; JSON escapes it as JSON does."""
    drop_append_only_triggers(books)
    memo = "\x1b[2J\x1b]0;pwned\x07 [bold]x\x9b"
    with books.begin() as c:
        c.execute(text("UPDATE entries SET memo = :m WHERE seq = 1"), {"m": memo})
    code, out, err = run("ledger", "log")
    assert code == 0, err
    assert not any(ch in out for ch in "\x1b\x07\x9b") and "\\x1b[2J\\x1b]0;pwned\\x07 [bold]x\\x9b" in out
    code, out, _ = run("ledger", "log", "--json")
    assert json.loads(out)[0]["memo"] == memo and "\x1b" not in out
    with books.begin() as c:
        c.execute(text("UPDATE accounts SET name = :n WHERE name = 'acme'"), {"n": "ac\x1b[31mme"})
    for args in (["ledger", "log"], ["balance"], ["account", "list"]):
        code, out, err = run(*args)
        assert not any(ch in out + err for ch in "\x1b\x07\x9b"), (args, out, err)
    code, out, _ = run("account", "list")
    assert code == 0 and "ac\\x1b[31mme" in out


def test_verify_wording_no_checkpoints_yet(run: Run) -> None:
    assert run("init")[0] == 0
    code, out, _ = run("ledger", "verify")
    assert code == 0 and "no checkpoints yet (the journal is empty)" in out


def test_exported_checkpoint_catches_a_cut_tail(run: Run, books: Engine, tmp_path: Path) -> None:
    """Deleting the last entry together with every stored checkpoint passes a plain `verify`
    (it cannot tell "never signed" from "deleted"), but not `verify --checkpoint FILE`."""
    export = tmp_path / "published" / "cp.json"
    code, _, err = run("ledger", "checkpoint", "--export", str(export))
    assert code == 2 and "does not exist" in err  # the directory must exist: nothing signed
    export.parent.mkdir()
    run("record", "--kind", "fee", "--memo", "fee", "--posting", "bank=-1sat", "--posting", "acme=1sat")
    code, out, _ = run("ledger", "checkpoint", "--export", str(export))
    assert code == 0 and f"exported to {export}" in out
    doc = json.loads(export.read_text())
    assert doc["format"] == "reserve-ledger-checkpoint/v1" and doc["tree_size"] == 2
    code, pem, _ = run("ledger", "pubkey")
    assert doc["public_key"] == pem
    assert verify_document(doc, pem.encode()).startswith("OK: checkpoint of tree size 2")
    code, out, _ = run("ledger", "verify", "--checkpoint", str(export))
    assert code == 0 and "consistent with 1 exported checkpoint(s)" in out

    drop_append_only_triggers(books)
    with books.begin() as c:
        c.execute(text("DELETE FROM postings WHERE entry_seq = 2"))
        c.execute(text("DELETE FROM entries WHERE seq = 2"))
        c.execute(text("DELETE FROM checkpoints"))
        c.execute(text("DELETE FROM tree_heads WHERE tree_size >= 2"))  # or its head says 2 were signed
    code, out, _ = run("ledger", "verify")
    assert code == 0 and "no checkpoint is stored: none was signed yet, or all were deleted" in out
    code, out, err = run("ledger", "verify", "--checkpoint", str(export))
    assert code == 1 and "covers 2 entries but the journal now has only 1" in err, err
    code, out, _ = run("ledger", "verify", "--checkpoint", str(export), "--json")
    assert code == 1 and json.loads(out)["ok"] is False
    # a different entry 2 in its place: the root no longer matches the exported checkpoint
    run("record", "--kind", "fee", "--memo", "other fee", "--posting", "bank=-2sat", "--posting", "acme=2sat")
    code, _, err = run("ledger", "verify", "--checkpoint", str(export))
    assert code == 1 and "history was rewritten" in err, err


def test_exported_checkpoint_of_another_key_is_a_finding(run: Run, books: Engine, tmp_path: Path) -> None:
    from ledger.journal.checkpoint import create_signing_key, sign_checkpoint

    other = create_signing_key(tmp_path / "other.key")
    forged = sign_checkpoint(other, 1, b"\x00" * 32, 1_700_000_000)
    from ledger.journal.checkpoint import public_key_pem

    path = tmp_path / "forged.json"
    path.write_text(json.dumps(forged.to_export(public_key_pem(other))))
    code, _, err = run("ledger", "verify", "--checkpoint", str(path))
    assert code == 1 and "key mismatch: exported checkpoint" in err
    # a checkpoint whose signature does not match the key it carries is a bad file: exit 2
    doc = json.loads(path.read_text())
    doc["tree_size"] = 2
    path.write_text(json.dumps(doc))
    code, _, err = run("ledger", "verify", "--checkpoint", str(path))
    assert code == 2 and "does not verify with the key it carries" in err


def test_checkpoint_prove_consistency_verify(run: Run, books: Engine, tmp_path: Path) -> None:
    code, out, _ = run("ledger", "checkpoint")
    assert code == 0 and json.loads(out)["tree_size"] == 1
    run(
        "record",
        "--kind",
        "fee",
        "--memo",
        "fee",
        "--posting",
        "bank=-0.0001",
        "--posting",
        "acme=0.0001",
    )
    assert run("ledger", "checkpoint")[0] == 0
    code, pem, _ = run("ledger", "pubkey")
    assert code == 0 and pem.startswith("-----BEGIN PUBLIC KEY-----")
    code, out, _ = run("ledger", "prove", "2")
    assert code == 0 and verify_document(json.loads(out), pem.encode()).startswith("OK: entry 2")
    code, out, _ = run("ledger", "consistency", "1", "2")
    assert code == 0 and verify_document(json.loads(out), pem.encode()).startswith("OK: the tree of size 1")
    code, out, err = run("ledger", "verify")
    assert code == 0 and out.startswith("OK: 2 entries")
    pub = tmp_path / "pub.pem"
    pub.write_text(pem)
    code, out, _ = run("ledger", "verify", "--json", "--pubkey", str(pub))
    assert code == 0 and json.loads(out)["ok"] is True

    drop_append_only_triggers(books)
    with books.begin() as c:
        c.execute(text("UPDATE entries SET memo = 'hidden' WHERE seq = 1"))
    code, out, err = run("ledger", "verify")
    assert code == 1
    assert "first bad entry: 1" in err and "entry 1 does not match its leaf hash" in err
    code, out, _ = run("ledger", "verify", "--json")
    assert code == 1 and json.loads(out)["first_bad_seq"] == 1
    # a checkpoint re-checks what it signs for the first time: an entry changed since the last
    # checkpoint is refused
    run(
        "record",
        "--kind",
        "fee",
        "--memo",
        "fee 2",
        "--posting",
        "bank=-1sat",
        "--posting",
        "acme=1sat",
    )
    with books.begin() as c:
        c.execute(text("UPDATE entries SET memo = 'hidden too' WHERE seq = 3"))
    code, _, err = run("ledger", "checkpoint")
    assert code == 2 and "entry 3 no longer matches its leaf hash; refusing to sign" in err


def test_uninitialised_database_says_run_init(run: Run) -> None:
    code, _, err = run("account", "list")
    assert code == 2 and "reserve init" in err


def test_record_is_a_group_for_later_subcommands() -> None:
    import click

    from ledger.cli.journal_cmds import record

    assert isinstance(record, click.Group) and record.invoke_without_command


def test_init_takes_db_after_the_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from ledger.cli.main import main

    db = tmp_path / "elsewhere.db"
    key = tmp_path / "k.key"
    assert main(["--signing-key", str(key), "init", "--db", str(db)]) == 0
    assert f"sqlite:///{db}" in capsys.readouterr().out
    assert db.exists() and key.exists()
    assert main(["--db", str(db), "--signing-key", str(key), "ledger", "verify"]) == 0


def test_readme_journal_example_works_on_a_fresh_database(run: Run) -> None:
    """The journal example proposed for README (manual entries between non-vault accounts)."""
    assert run("init")[0] == 0
    assert run("account", "add", "exchange-a", "--type", "counterparty")[0] == 0
    assert run("account", "add", "owner", "--type", "equity")[0] == 0
    code, out, err = run(
        "record", "--kind", "adjustment", "--memo", "receivable from exchange-a",
        "--posting", "exchange-a=0.5", "--posting", "owner=-50000000sat", "--ref", "adj-1", "--json",
    )  # fmt: skip
    assert code == 0, err
    assert [p["amount_sat"] for p in json.loads(out)["postings"]] == [50_000_000, -50_000_000]
    code, out, _ = run("record", "--help")
    assert code == 0 and "non-vault accounts" in out and "verified on chain" in out


def test_manual_postings_to_a_vault_account_are_refused(reserve: Reserve) -> None:
    """Vault accounts exist only with a vault definition and move only through chain-verified
    entries: `record --posting VAULT=...` is refused with advice, and writes nothing."""
    vault = reserve.add_vault("manual")
    reserve.ok("account", "add", "owner", "--type", "equity")
    engine = reserve.engine()
    before = snapshot(engine)
    r = reserve.run(
        "record", "--kind", "adjustment", "--memo", "ghost coins",
        "--posting", f"{vault.name}=1000", "--posting", "owner=-1000",
    )  # fmt: skip
    assert r.code == 2 and f"posting to vault account {vault.name!r} refused" in r.err
    assert "non-vault accounts" in r.err
    r = reserve.run("account", "add", "ghost", "--type", "vault")
    assert r.code == 2 and "reserve vault add" in r.err
    assert snapshot(engine) == before
    assert reserve.ok("balance", "--json").json()["reserve_sat"] == 0
    engine.dispose()
