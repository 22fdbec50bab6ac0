"""One error edge: with ``--json`` an error is one JSON object on stdout,
``{"error": {"code": CODE, "message": MESSAGE}}``, CODE from the CLI's table (``ERRORS``), and the
exit code stays 2; without ``--json`` the same error is one ``error:`` line on stderr and stdout
stays empty. Findings still exit 1 with their report on stdout.

Cases: bad input caught by ledger and by custody, unknown names, a reused reference, a policy
violation, a usage error, an unreachable node, a missing database, an uninitialised one for every
command that opens the database and takes --json (SQLite and PostgreSQL), and an unexpected
exception.
"""

from __future__ import annotations

import json
from pathlib import Path

import click
import pytest
from sqlalchemy import make_url

from custody.keygen import test_key_from_seed
from custody.network import Network
from ledger.cli.app import App
from ledger.cli.main import cli, main
from regtest.node import RegtestNode
from tests.fixtures.db import runtime_url_for
from tests.fixtures.reserve import Reserve, Result
from tests.integration.test_cli_edges import DATABASE_COMMANDS, argv_for

TXID = "ab" * 32
PASSWORD = "never-show-this-pw-42"
RECORD = ["record", "--kind", "adjustment", "--memo", "m"]


def key_args(network: Network = Network.REGTEST, holders: int = 3) -> list[str]:
    keys = (test_key_from_seed(bytes([i + 1]) * 32, network) for i in range(holders))
    return [f"--key=h{i}={k}" for i, k in enumerate(keys)]


def json_error(r: Result | tuple[int, str, str], code: str, *needles: str) -> str:
    """The message of the JSON error ``r`` printed, after checking its shape, code and exit code."""
    exit_code, out, err = r if isinstance(r, tuple) else (r.code, r.out, r.err)
    assert exit_code == 2, f"exit {exit_code}: {err}{out}"
    assert err == "", err  # under --json nothing but the JSON object is printed
    doc = json.loads(out)
    assert set(doc) == {"error"} and set(doc["error"]) == {"code", "message"}, doc
    assert doc["error"]["code"] == code, doc
    message: str = doc["error"]["message"]
    for needle in needles:
        assert needle in message, (needle, message)
    assert "\n" not in message and "Traceback" not in message and PASSWORD not in message
    return message


def run_main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    capsys.readouterr()
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_errors_under_json_carry_their_code(reserve: Reserve) -> None:
    reserve.ok("account", "add", "acme", "--type", "counterparty")
    reserve.ok("account", "add", "owners", "--type", "equity")
    reserve.ok(*RECORD, "--ref", "r1", "--posting", "acme=1", "--posting", "owners=-1")
    cases: list[tuple[list[str], str, str]] = [
        ([*RECORD, "--posting", "acme=abc", "--posting", "owners=-1"], "invalid-input", "abc"),
        ([*RECORD, "--posting", "acme=1", "--posting", "owners=-2"], "invalid-input", "balance"),
        (
            ["vault", "add", "v", "--threshold", "2", "--key=h0=xpubjunk", *key_args()[1:]],
            "invalid-input",
            "Base58",
        ),
        (["balance", "nosuch"], "not-found", "nosuch"),
        (["vault", "show", "nosuch"], "not-found", "nosuch"),
        (["reverse", "99", "--memo", "m"], "not-found", "99"),
        ([*RECORD, "--ref", "r1", "--posting", "acme=2", "--posting", "owners=-2"], "conflict", "r1"),
        (["vault", "add", "v", "--threshold", "1", *key_args()], "policy-violation", "threshold 1"),
    ]
    for args, code, needle in cases:
        message = json_error(reserve.run(*args, "--json"), code, needle)
        human = reserve.run(*args)  # the same error for people: one line on stderr, nothing on stdout
        assert (human.code, human.out, human.err) == (2, "", f"error: {message}\n"), args


def test_usage_errors_under_json(reserve: Reserve) -> None:
    json_error(reserve.run("balance", "--json", "--bogus"), "usage", "--bogus")
    json_error(reserve.run("reverse", "--json"), "usage", "SEQ")
    human = reserve.run("balance", "--bogus")
    assert human.code == 2 and human.out == "" and "No such option '--bogus'" in human.err


def test_findings_exit_1_with_their_report(reserve: Reserve, monkeypatch: pytest.MonkeyPatch) -> None:
    reserve.ok("vault", "add", "v", "--threshold", "2", *key_args())
    monkeypatch.setenv("RESERVE_POLICY_MIN_THRESHOLD", "3")  # today's policy is stricter
    r = reserve.run("vault", "check", "--json")
    assert r.code == 1, r.err
    assert r.json()["v"] and r.err == ""  # the findings, not an error object


def test_unreachable_node_under_json(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RESERVE_RPC_USER", "u")
    monkeypatch.setenv("RESERVE_RPC_PASSWORD", PASSWORD)
    r = run_main(capsys, "--rpc-url", "http://127.0.0.1:1", "node", "status", "--json")
    json_error(r, "node-unreachable", "cannot reach bitcoind at http://127.0.0.1:1")


def takes_json(name: str) -> bool:
    cmd: click.Command = cli
    for part in name.split():
        assert isinstance(cmd, click.Group)
        cmd = cmd.commands[part]
    return any(p.name == "as_json" for p in cmd.params)


JSON_DATABASE_COMMANDS = [name for name in DATABASE_COMMANDS if takes_json(name)]


@pytest.mark.parametrize("name", JSON_DATABASE_COMMANDS)
def test_every_json_command_explains_an_uninitialised_database(
    name: str,
    db_url: str,
    node: RegtestNode,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if db_url.startswith("sqlite"):
        Path(make_url(db_url).database or "").touch()  # an empty file: SQLite's empty database
    for var in ("RESERVE_DB_OWNER", "RESERVE_RPC_USER", "RESERVE_RPC_PASSWORD"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("RESERVE_DB", runtime_url_for(db_url))
    node_argv = ["--rpc-url", node.rpc_url, "--rpc-cookie", str(node.cookie_path)]
    argv = [*node_argv, "--signing-key", str(tmp_path / "signing.key"), *argv_for(name, tmp_path)]
    json_error(run_main(capsys, *argv, "--json"), "not-initialised", "reserve init")


def test_missing_database_file_under_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    typo = tmp_path / "typo.db"
    r = run_main(capsys, "--db", str(typo), "balance", "--json")
    json_error(r, "not-initialised", "does not exist", f"reserve init --db {typo}")
    assert not typo.exists()


def test_unexpected_error_under_json(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def boom(self: App) -> None:
        raise RuntimeError("something nobody expected")

    monkeypatch.setattr(App, "rpc", boom)
    r = run_main(capsys, "--rpc-url", "http://127.0.0.1:1", "node", "status", "--json")
    json_error(r, "internal", "RuntimeError: something nobody expected", "RESERVE_DEBUG=1")


def test_unreachable_database_under_json(capsys: pytest.CaptureFixture[str]) -> None:
    """A PostgreSQL server that refuses the connection is the `database` error, password masked."""
    url = f"postgresql+psycopg://reserve:{PASSWORD}@127.0.0.1:1/reserve_nowhere"
    r = run_main(capsys, "--db", url, "balance", "--json")
    json_error(r, "database", "127.0.0.1:1")


def test_no_node_configured_under_json(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chain command without any node setting is bad input that says which settings to give."""
    for var in ("RESERVE_RPC_URL", "RESERVE_RPC_COOKIE", "RESERVE_RPC_USER", "RESERVE_RPC_PASSWORD"):
        monkeypatch.delenv(var, raising=False)
    db = tmp_path / "r.db"
    key = tmp_path / "k.key"
    assert main(["--db", str(db), "--signing-key", str(key), "init"]) == 0
    r = run_main(capsys, "--db", str(db), "--signing-key", str(key), "audit", "--json")
    json_error(r, "invalid-input", "no node configured", "RESERVE_RPC_URL")
