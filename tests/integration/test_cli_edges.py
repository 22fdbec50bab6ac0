"""No traceback, ever: every bad input and bad setting is one clear line on stderr and exit 2,
and no raw control character from stored text reaches the terminal.

Cases: an unreachable database server or a wrong password (exit 2, the password never shown), an
unreachable node, a directory or a non-database file as ``--db``, a database that does not exist
(never created silently by any command but ``init``; on PostgreSQL the message says the database
is missing), an uninitialised database for every command that opens one, a database at an older
revision, a 5,000-digit amount, non-numeric settings, and an unexpected exception. The cases where
a traceback would show run ``reserve`` in a subprocess and check its stderr.
"""

from __future__ import annotations

import io
import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import click
import pytest
from sqlalchemy import make_url, text

from custody.keygen import test_key_from_seed
from custody.network import Network
from ledger.cli.app import App, EscapingStream, SafeConsole, escape_controls
from ledger.cli.main import cli, main
from ledger.store.migrate import upgrade
from regtest.node import RegtestNode
from tests.fixtures.db import drop_append_only_triggers, pg_admin_url, runtime_role, runtime_url_for
from tests.fixtures.reserve import Reserve

ROOT = Path(__file__).resolve().parents[2]
PASSWORD = "never-show-this-pw-42"
ESC = "\x1b"


@dataclass(frozen=True, slots=True)
class Run:
    code: int
    out: str
    err: str


def reserve_process(*args: str, env: dict[str, str] | None = None, cwd: Path = ROOT) -> Run:
    """``reserve ARGS`` as a separate process (so a traceback on stderr would be seen)."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("RESERVE_")}
    full_env.update(env or {})
    p = subprocess.run(
        [sys.executable, "-m", "ledger.cli.main", *args],
        cwd=cwd,
        env={**full_env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    return Run(p.returncode, p.stdout, p.stderr)


def assert_one_clear_line(r: Run, *needles: str) -> None:
    assert r.code == 2, f"exit {r.code}: {r.err}{r.out}"
    assert "Traceback" not in r.err and "internal error" not in r.err, r.err
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), r.err
    for needle in needles:
        assert needle in r.err, (needle, r.err)
    assert PASSWORD not in r.err + r.out


def with_password(url: str, password: str) -> str:
    return make_url(url).set(password=password).render_as_string(hide_password=False)


# --- Unreachable servers, wrong passwords, bad settings (subprocesses) ------------------------


def test_connection_refused_is_exit_2_without_the_password(tmp_path: Path) -> None:
    url = f"postgresql+psycopg://reserve:{PASSWORD}@127.0.0.1:1/books"
    for args in (("balance",), ("init",), ("vault", "list")):
        r = reserve_process(*args, env={"RESERVE_DB": url, "RESERVE_SIGNING_KEY": str(tmp_path / "k")})
        assert_one_clear_line(r, "cannot connect to the database server at 127.0.0.1:1")


def test_wrong_password_is_exit_2_without_the_password() -> None:
    url = with_password(pg_admin_url(), PASSWORD)
    for args in (("balance",), ("init",)):
        r = reserve_process(*args, env={"RESERVE_DB": url})
        assert_one_clear_line(r, "refused user", "wrong password")


def test_missing_postgresql_database_says_the_database_is_missing() -> None:
    url = make_url(pg_admin_url()).set(database="reserve_no_such_db").render_as_string(hide_password=False)
    for args in (("balance",), ("init",), ("vault", "list")):
        r = reserve_process(*args, env={"RESERVE_DB": url})
        assert_one_clear_line(r, "database 'reserve_no_such_db' does not exist", "reserve init")
        assert "table" not in r.err


def test_unreachable_node_is_exit_2(tmp_path: Path) -> None:
    env = {"RESERVE_RPC_USER": "u", "RESERVE_RPC_PASSWORD": PASSWORD}
    r = reserve_process("--rpc-url", "http://127.0.0.1:1", "node", "status", env=env)
    assert_one_clear_line(r, "cannot reach bitcoind at http://127.0.0.1:1")


@pytest.mark.parametrize(
    ("name", "value"), [("RESERVE_RPC_TIMEOUT", "abc"), ("RESERVE_POLICY_MIN_THRESHOLD", "x")]
)
def test_non_numeric_setting_is_exit_2(name: str, value: str, tmp_path: Path) -> None:
    r = reserve_process("--db", str(tmp_path / "r.db"), "vault", "list", env={name: value})
    assert_one_clear_line(r, f"{name}={value!r} is not a")


def test_directory_junk_file_and_typo_as_db(tmp_path: Path) -> None:
    junk = tmp_path / "junk.db"
    junk.write_text("these are not the books you are looking for\n" * 100)
    for args in (("balance",), ("init",)):
        assert_one_clear_line(reserve_process("--db", str(tmp_path), *args), str(tmp_path), "directory")
        assert_one_clear_line(reserve_process("--db", str(junk), *args), "not a reserve database")
    typo = tmp_path / "typo.db"
    r = reserve_process("--db", str(typo), "balance")
    assert_one_clear_line(r, "does not exist", f"reserve init --db {typo}")
    assert not typo.exists()


def test_init_makes_a_private_sqlite_file_and_needs_its_directory(tmp_path: Path) -> None:
    env = {"RESERVE_SIGNING_KEY": str(tmp_path / "k")}
    missing = tmp_path / "no-such-dir" / "r.db"
    assert_one_clear_line(reserve_process("--db", str(missing), "init", env=env), "does not exist")
    db = tmp_path / "r.db"
    assert reserve_process("--db", str(db), "init", env=env).code == 0
    assert db.stat().st_mode & 0o777 == 0o600  # SQLite has no roles: the file's mode is its access control


def test_five_thousand_digit_amount(tmp_path: Path) -> None:
    db = str(tmp_path / "r.db")
    env = {"RESERVE_SIGNING_KEY": str(tmp_path / "k")}
    assert reserve_process("--db", db, "init", env=env).code == 0
    for posting in ("acme=" + "9" * 5000, "acme=" + "9" * 5000 + "sat"):
        r = reserve_process(
            "--db", db, "record", "--kind", "adjustment", "--memo", "m", "--posting", posting,
            "--posting", "b=-1", env=env,
        )  # fmt: skip
        assert_one_clear_line(r, "characters")
        assert len(r.err) < 300


def test_unexpected_error_is_one_line_with_a_debug_hint(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(self: App) -> None:
        raise RuntimeError("something nobody expected")

    monkeypatch.setattr(App, "rpc", boom)
    assert main(["--rpc-url", "http://127.0.0.1:1", "node", "status"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: internal error (RuntimeError: something nobody expected)")
    assert "RESERVE_DEBUG=1" in err
    monkeypatch.setenv("RESERVE_DEBUG", "1")
    with pytest.raises(RuntimeError):
        main(["--rpc-url", "http://127.0.0.1:1", "node", "status"])


@pytest.mark.parametrize(
    "rpc_url", ["junk", "http://[::1", "http://127.0.0.1:99999", "http://127.0.0.1:abc", "ftp://x:1"]
)
def test_malformed_rpc_url_is_exit_2(rpc_url: str, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--rpc-url", rpc_url, "node", "status"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: the RPC URL must be http://HOST:PORT") and "internal error" not in err


@pytest.mark.parametrize(
    "db",
    [
        f"mysql://u:{PASSWORD}@x/db",
        f"postgresql+asyncpg://u:{PASSWORD}@h/d",
        f"postgresql://u:{PASSWORD}@[::1/db",
        f"postgresql://u:{PASSWORD}@nonexistent.invalid/db",
    ],
)
def test_bad_database_url_is_exit_2(
    db: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RESERVE_DB", db)
    for args in (["balance"], ["--signing-key", str(tmp_path / "k"), "init"]):
        assert main(args) == 2
        err = capsys.readouterr().err
        assert err.startswith("error: ") and "internal error" not in err and PASSWORD not in err, err


# --- Every command on a database that is missing or not initialised ---------------------------

NO_DATABASE = {"node status", "regtest start", "regtest stop", "regtest status", "demo", "init"}
# Commands that judge a document the user hands them before anything else: a draft or an attestation
# is checked (and refused as bad input) before the database is opened; their own tests cover that.
DOCUMENT_FIRST = {"attest finish", "attest verify"}
TXID = "ab" * 32
# BIP-174's first valid test vector: a well-formed PSBT, so `spend sign` gets as far as the database
PSBT_VECTOR = (
    "cHNidP8BAHUCAAAAASaBcTce3/KF6Tet7qSze3gADAVmy7OtZGQXE8pCFxv2AAAAAAD+////AtPf9QUAAAAAGXapFNDFmQPF"
    "usKGh2DpD9UhpGZap2UgiKwA4fUFAAAAABepFDVF5uM7gyxHBQ8k0+65PJwDlIvHh7MuEwAAAQD9pQEBAAAAAAECiaPHHqtN"
    "IOA3G7ukzGmPopXJRjr6Ljl/hTPMti+VZ+UBAAAAFxYAFL4Y0VKpsBIDna89p95PUzSe7LmF/////4b4qkOnHf8USIk6Uwpy"
    "N+9rRgi7st0tAXHmOuxqSJC0AQAAABcWABT+Pp7xp0XpdNkCxDVZQ6vLNL1TU/////8CAMLrCwAAAAAZdqkUhc/xCX/Z4Ai7"
    "NK9wnGIZeziXikiIrHL++E4sAAAAF6kUM5cluiHv1irHU6m80GfWx6ajnQWHAkcwRAIgJxK+IuAnDzlPVoMR3HyppolwuAJf"
    "3TskAinwf4pfOiQCIAGLONfc0xTnNMkna9b7QPZzMlvEuqFEyADS8vAtsnZcASED0uFWdJQbrUqZY3LLh+GFbTZSYG2YVi/j"
    "nF6efkE/IQUCSDBFAiEA0SuFLYXc2WHS9fSrZgZU327tzHlMDDPOXMMJ/7X85Y0CIGczio4OFyXBl/saiK9Z9R5E5CVbIBZ8"
    "hoQDHAXR8lkqASECI7cr7vCWXRC+B3jv7NYfysb3mk6haTkzgHNEZPhPKrMAAAAAAAAA"
)
ARGS = {
    "account add": ["acme", "--type", "counterparty"],
    "record": ["--kind", "adjustment", "--memo", "m", "--posting", "a=1", "--posting", "b=-1"],
    "record deposit": ["--vault", "v", "--txid", TXID],
    "record mining": ["--vault", "v", "--txid", TXID],
    "reverse": ["1", "--memo", "m"],
    "ledger prove": ["1"],
    "ledger consistency": ["1", "2"],
    "export entries": ["--csv"],
    "report statement": ["--from", "0", "--to", "10"],
    "policy set": ["v", "--max-fee", "0.001"],
    "policy allow add": ["v", "buyer", "--address", "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080"],
    "spend create": ["--vault", "v", "--pay", "buyer=0.1", "--memo", "m"],
    "vault retire": ["v", "--reason", "r"],
    "vault add": [
        "v", "--threshold", "2",
        *(f"--key=h{i}={test_key_from_seed(bytes([i]) * 32, Network.REGTEST)}" for i in (1, 2, 3)),
    ],
}  # fmt: skip


def leaf_commands(group: click.Group = cli, path: tuple[str, ...] = ()) -> Iterator[str]:
    for name, cmd in group.commands.items():
        if isinstance(cmd, click.Group):
            yield from leaf_commands(cmd, (*path, name))
            if cmd.invoke_without_command:
                yield " ".join((*path, name))
        else:
            yield " ".join((*path, name))


def argv_for(name: str, tmp_path: Path) -> list[str]:
    """The command with plausible arguments: enough to reach the database."""
    if name in ARGS:
        return [*name.split(), *ARGS[name]]
    cmd: click.Command = cli
    for part in name.split():
        assert isinstance(cmd, click.Group)
        cmd = cmd.commands[part]
    argv = name.split()
    for p in cmd.params:
        if not p.required:
            continue
        value = "1" if isinstance(p.type, click.types.IntParamType) else "v"
        if p.name == "txid":
            value = TXID
        if isinstance(p.type, click.Path):
            value = str(tmp_path / f"{p.name}.file")
            if p.type.exists or not p.type.dir_okay:  # a file the command reads (`spend sign`)
                Path(value).write_text(PSBT_VECTOR + "\n")
        if isinstance(p.type, click.Choice):
            value = str(p.type.choices[0])
        argv += [value] if isinstance(p, click.Argument) else [p.opts[-1], value]
    return argv


DATABASE_COMMANDS = sorted(set(leaf_commands()) - NO_DATABASE - DOCUMENT_FIRST)


@pytest.fixture
def node_argv(node: RegtestNode, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    for var in ("RESERVE_DB", "RESERVE_DB_OWNER", "RESERVE_RPC_USER", "RESERVE_RPC_PASSWORD"):
        monkeypatch.delenv(var, raising=False)
    key = tmp_path / "signing.key"
    return ["--signing-key", str(key), "--rpc-url", node.rpc_url, "--rpc-cookie", str(node.cookie_path)]


@pytest.mark.parametrize("name", DATABASE_COMMANDS)
def test_every_command_refuses_a_missing_database_and_creates_none(
    name: str, node_argv: list[str], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    typo = tmp_path / "typo.db"
    code = main(["--db", str(typo), *node_argv, *argv_for(name, tmp_path)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "reserve init" in err and "internal error" not in err, err
    assert not typo.exists()


@pytest.mark.parametrize("name", DATABASE_COMMANDS)
def test_every_command_explains_an_uninitialised_database(
    name: str,
    db_url: str,
    node_argv: list[str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if db_url.startswith("sqlite"):
        Path(make_url(db_url).database or "").touch()  # an empty file: SQLite's empty database
    monkeypatch.setenv("RESERVE_DB", runtime_url_for(db_url))
    code = main([*node_argv, *argv_for(name, tmp_path)])
    err = capsys.readouterr().err
    assert code == 2, err
    assert "reserve init" in err and "internal error" not in err, err


def test_older_revision_says_to_run_init(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RESERVE_DB", runtime_url_for(db_url))
    monkeypatch.setenv("RESERVE_DB_OWNER", db_url)
    monkeypatch.setenv("RESERVE_DB_RUNTIME_ROLE", runtime_role())
    monkeypatch.setenv("RESERVE_SIGNING_KEY", str(tmp_path / "signing.key"))
    upgrade(db_url, "0001_journal", runtime_role=runtime_role())  # as an older reserve left it
    assert main(["balance"]) == 2
    err = capsys.readouterr().err
    assert "revision 0001_journal" in err and "run `reserve init` to upgrade" in err, err
    assert main(["init"]) == 0
    assert main(["balance"]) == 0


# --- Control characters never reach the terminal ----------------------------------------------

EVIL = f"{ESC}[2J{ESC}]0;owned{chr(7)}{ESC}[31mred\x9b1m\u202eevil\r"


def test_stored_control_characters_are_printed_escaped(reserve: Reserve) -> None:
    reserve.ok("account", "add", "acme", "--type", "counterparty")
    reserve.ok("account", "add", "owners", "--type", "equity")
    reserve.ok(
        "record", "--kind", "adjustment", "--memo", "plain", "--posting", "acme=1", "--posting", "owners=-1"
    )
    owner = reserve.engine()
    try:
        drop_append_only_triggers(owner)  # behind the application's back
        with owner.begin() as c:
            c.execute(text("UPDATE entries SET memo = :m WHERE seq = 1"), {"m": f"memo {EVIL}"})
            c.execute(
                text("INSERT INTO accounts (name, type) VALUES (:n, 'counterparty')"), {"n": f"evil{EVIL}"}
            )
    finally:
        owner.dispose()
    for args in (("ledger", "log"), ("balance",), ("account", "list")):
        r = reserve.run(*args)
        shown = r.out + r.err
        assert ESC not in shown and "\x9b" not in shown and "\u202e" not in shown and "\r" not in shown, args
        assert "\\x1b[2J" in r.out, (args, r.out)
    log = reserve.ok("ledger", "log", "--json")
    assert ESC not in log.out
    assert any(e["memo"] == f"memo {EVIL}" for e in json.loads(log.out))  # JSON keeps the exact text


def test_error_messages_are_escaped_too(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """click removes whole ANSI sequences from piped output; every other control is escaped."""
    assert main(["--db", str(tmp_path / f"no{ESC}[2J{ESC}\x07\x9bsuch.db"), "balance"]) == 2
    err = capsys.readouterr().err
    assert ESC not in err and "\x07" not in err and "\x9b" not in err
    assert "\\x07\\x9bsuch.db" in err


def test_console_keeps_its_own_styling_and_escapes_text() -> None:
    raw = io.StringIO()
    console = SafeConsole(file=raw, force_terminal=True, color_system="standard", width=80)
    console.print(f"[bold]memo[/bold] {EVIL}")
    printed = raw.getvalue()
    assert f"{ESC}[1m" in printed  # rich's own bold
    assert f"{ESC}[2J" not in printed and f"{ESC}]" not in printed and "\x9b" not in printed
    text_only = re.sub(f"{ESC}\\[[0-9;]*m", "", printed)  # rich's styling (it highlights numbers)
    assert "memo \\x1b[2J\\x1b]0;owned\\x07\\x1b[31mred\\x9b1m\\u202eevil\\x0d" in text_only
    written = io.StringIO()
    EscapingStream(written).write(f"a{ESC}[2Jb\tc\n")
    assert written.getvalue() == "a\\x1b[2Jb\tc\n"
    assert escape_controls("\x00\x7f\u2066") == "\\x00\\x7f\\u2066"
