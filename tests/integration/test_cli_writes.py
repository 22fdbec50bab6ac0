"""A write that fails is an error: every file the CLI writes, and its standard output.

Each command that writes a file, pointed at a device that is full (ENOSPC), a file system where
no file can be made (/proc), a missing directory, a path under a regular file: exit 2, one line
naming the path and the cause, no temporary file left, the database unchanged (rows and Merkle
root; a checkpoint or attestation whose document cannot be written is not kept), and the device
still a device. Output to a full standard output or a closed pipe: exit 2 and one line on
stderr, never a silent exit 0 or a traceback. An empty ``--db`` or ``RESERVE_DB`` is refused
instead of meaning ./reserve.db.
"""

from __future__ import annotations

import os
import stat
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import Engine

from ledger.cli.main import main
from ledger.store.db import make_engine
from regtest.node import RegtestNode
from tests.fixtures.db import runtime_role, runtime_url_for, snapshot
from tests.fixtures.devices import full_device
from tests.fixtures.reserve import Reserve, Result
from tests.integration.test_spend_lifecycle import funded_vault, outside_address

ROOT = Path(__file__).resolve().parents[2]
FULL = "No space left on device"


@dataclass
class Books:
    """A small ledger without a node: two accounts, one entry, one checkpoint."""

    db: Engine
    env: dict[str, str]
    capsys: pytest.CaptureFixture[str]

    def run(self, *args: str) -> Result:
        self.capsys.readouterr()
        code = main(list(args))
        captured = self.capsys.readouterr()
        return Result(code, captured.out, captured.err)

    def ok(self, *args: str) -> Result:
        r = self.run(*args)
        assert r.code == 0, f"reserve {' '.join(args)} exited {r.code}: {r.err}{r.out}"
        return r


@pytest.fixture
def books(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Books]:
    env = {
        "RESERVE_DB": runtime_url_for(db_url),
        "RESERVE_DB_OWNER": db_url,
        "RESERVE_DB_RUNTIME_ROLE": runtime_role(),
        "RESERVE_SIGNING_KEY": str(tmp_path / "signing.key"),
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    engine = make_engine(db_url)
    b = Books(engine, env, capsys)
    b.ok("init")
    b.ok("account", "add", "acme", "--type", "counterparty")
    b.ok("account", "add", "owner", "--type", "equity")
    b.ok("record", "--kind", "adjustment", "--memo", "m", "--posting", "acme=1", "--posting", "owner=-1")
    b.ok("ledger", "checkpoint")
    yield b
    engine.dispose()


def listing(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def assert_write_failed(r: Result, path: Path | str, cause: str = "") -> None:
    """Exit 2 and one line naming ``path`` and the cause (``cause``, or any the system gave)."""
    assert r.code == 2, f"exit {r.code}: {r.err}{r.out}"
    lines = r.err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in r.err, r.err
    prefix = f"error: cannot write {path}: "
    assert lines[0].startswith(prefix) and len(lines[0]) > len(prefix), r.err
    assert cause in lines[0], r.err


def test_files_that_cannot_be_written_are_exit_2_and_change_nothing(books: Books, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    full = full_device(out)
    (out / "a-file").write_text("keep me")
    kept = listing(out)
    before = snapshot(books.db)
    bad = {  # target: the cause the error names
        full: FULL,
        Path("/proc/version"): "",  # no file can be made there (the system says why)
        out / "missing" / "x": f"directory {out / 'missing'} does not exist",
        out / "a-file" / "x": f"{out / 'a-file'} is not a directory",
    }
    for target, cause in bad.items():
        for command in (
            ("ledger", "checkpoint", "--export"),
            ("export", "entries", "--csv", "--out"),
            ("export", "entries", "--jsonl", "--out"),
        ):
            r = books.run(*command, str(target))
            assert_write_failed(r, target, cause)
            assert "exported" not in r.out + r.err and "wrote" not in r.out + r.err
            assert r.out == ""  # a checkpoint is printed once it is kept
    for site in (Path("/proc/site"), out / "a-file" / "site"):
        r = books.run("report", "site", str(site))
        assert r.code == 2 and str(site.parent) in r.err and "wrote" not in r.out, r.err
    assert snapshot(books.db) == before
    assert listing(out) == kept and (out / "a-file").read_text() == "keep me"
    assert stat.S_ISCHR(full.stat().st_mode)

    # The same commands succeed with a good path, and say so only then; a site over a site.
    good = out / "checkpoint.json"
    r = books.ok("ledger", "checkpoint", "--export", str(good))
    assert f"exported to {good}" in r.out and '"tree_size"' in good.read_text()
    books.ok("export", "entries", "--csv", "--out", str(out / "entries.csv"))
    site = out / "site"
    for _ in range(2):
        books.ok("report", "site", str(site))
    assert listing(out) == sorted([*kept, "checkpoint.json", "entries.csv", "site"])
    assert listing(site) == ["checkpoint.json", "index.html"]


@dataclass(frozen=True, slots=True)
class Run:
    code: int
    err: str


def reserve_process(
    args: tuple[str, ...], env: dict[str, str], stdout: int, cwd: Path
) -> subprocess.Popen[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("RESERVE_")}
    return subprocess.Popen(
        [sys.executable, "-m", "ledger.cli.main", *args],
        cwd=cwd,
        env={**full_env, **env, "PYTHONPATH": str(ROOT)},
        stdout=stdout,
        stderr=subprocess.PIPE,
        text=True,
    )


def finished(p: subprocess.Popen[str]) -> Run:
    _, err = p.communicate(timeout=120)
    return Run(p.returncode, err)


def test_output_that_cannot_be_written_is_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Standard output on a full device or a closed pipe (SQLite: the database plays no part)."""
    env = {"RESERVE_DB": str(tmp_path / "r.db"), "RESERVE_SIGNING_KEY": str(tmp_path / "k")}
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    b = Books(make_engine(f"sqlite:///{tmp_path / 'r.db'}"), env, capsys)
    b.ok("init")
    b.ok("account", "add", "acme", "--type", "counterparty")
    b.ok("account", "add", "owner", "--type", "equity")
    b.ok("record", "--kind", "adjustment", "--memo", "m", "--posting", "acme=1", "--posting", "owner=-1")
    b.ok("ledger", "checkpoint")
    b.db.dispose()
    period = ("--from", "2000-01-01", "--to", "2999-12-31")
    commands = [
        ("balance",),
        ("balance", "--json"),
        ("export", "entries", "--csv"),
        ("export", "entries", "--jsonl"),
        ("report", "statement", *period),
        ("report", "statement", *period, "--json"),
        ("report", "statement", *period, "--csv"),
        ("ledger", "prove", "1"),
        ("ledger", "log"),
    ]
    with open("/dev/full", "w") as full:  # a redirection: nothing can be renamed over it
        running = [(args, reserve_process(args, env, full.fileno(), tmp_path)) for args in commands]
        read, write = os.pipe()
        os.close(read)  # a reader that went away before a byte was written
        closed_pipe = reserve_process(("ledger", "log", "--json"), env, write, tmp_path)
        os.close(write)
        results = [(args, finished(p)) for args, p in running]
    for args, r in results:
        assert (r.code, r.err) == (2, f"error: cannot write to standard output: {FULL}\n"), args
    r = finished(closed_pipe)
    assert (r.code, r.err) == (2, "error: cannot write to standard output: Broken pipe\n")
    assert stat.S_ISCHR(os.stat("/dev/full").st_mode)


def test_an_empty_database_setting_is_refused(tmp_path: Path) -> None:
    """``--db ''`` (and RESERVE_DB set empty) named and refused; no ./reserve.db appears."""
    cases = [
        (("--db", "", "balance"), {}, "--db is empty"),
        (("--db", "", "init"), {}, "--db is empty"),
        (("init", "--db", ""), {}, "--db is empty"),
        (("balance",), {"RESERVE_DB": ""}, "RESERVE_DB is set but empty"),
        (("init",), {"RESERVE_DB": ""}, "RESERVE_DB is set but empty"),
    ]
    env = {"RESERVE_SIGNING_KEY": str(tmp_path / "k")}
    running = [(reserve_process(a, {**env, **e}, subprocess.DEVNULL, tmp_path), n) for a, e, n in cases]
    for p, needle in running:
        r = finished(p)
        assert r.code == 2 and r.err.startswith("error: ") and needle in r.err, r.err
        assert len(r.err.splitlines()) == 1, r.err
    assert listing(tmp_path) == []  # no database, no key


# --- PSBTs and attestations (a node, a funded vault) --------------------------------------------


def test_psbts_and_attestations_that_cannot_be_written(
    reserve: Reserve, node: RegtestNode, tmp_path: Path
) -> None:
    setup = funded_vault(reserve, node)
    out = tmp_path / "out"
    out.mkdir()
    full = full_device(out)
    (out / "a-file").write_text("keep me")
    db = make_engine(reserve.db_url)
    try:
        # A directory where no file can be made is refused before anything is proposed.
        args = ("--vault", setup.vault.name, "--pay", "exchange=0.1", "--memo", "m", "--out")
        before = snapshot(db)
        r = reserve.run("spend", "create", *args, "/proc")
        assert r.code == 2 and r.err.startswith("error: cannot write into /proc: "), r.err
        assert snapshot(db) == before
        # A spend is proposed and kept before its PSBT is written: the error says how to go on.
        (spend_dir := out / "spend").mkdir()
        (spend_dir / "spend-1.psbt").symlink_to(full)  # written through, never renamed over
        r = reserve.run("spend", "create", *args, str(spend_dir))
        assert_write_failed(r, spend_dir / "spend-1.psbt", FULL)
        assert "spend #1 is proposed" in r.err and "reserve spend psbt 1 --out DIR" in r.err
        r = reserve.run("spend", "psbt", "1", "--out", "/proc")
        assert_write_failed(r, "/proc/spend-1.psbt")
        reserve.ok("spend", "psbt", "1", "--out", str(out))
        assert (out / "spend-1.psbt").read_text().startswith("cHNidP8")  # base64 of "psbt\xff"
        (out / "spend-1.psbt").unlink()

        # A governed change is refused before it is proposed.
        shop = outside_address(node)
        allow = ("policy", "allow", "add", setup.vault.name, "shop", "--address", shop, "--out")
        before = snapshot(db)
        r = reserve.run(*allow, "/proc")
        assert r.code == 2 and r.err.startswith("error: cannot write into /proc: "), r.err
        assert snapshot(db) == before

        # An attestation whose document cannot be written is not kept.
        before = snapshot(db)
        r = reserve.run("attest", "prepare", "--out", "/proc")
        assert r.code == 2 and r.err.startswith("error: cannot write into /proc: "), r.err
        for target, cause in ((full, FULL), (out / "a-file" / "x.json", "is not a directory")):
            r = reserve.run("attest", "--out", str(target))
            assert_write_failed(r, target, cause)
        r = reserve.run("attest", "prepare", "--out", str(out / "a-file" / "drafts"))
        assert r.code == 2 and "not a directory" in r.err, r.err
        assert snapshot(db) == before
        assert reserve.ok("attest", "list", "--json").json()["attestations"] == []
        kept = reserve.ok("attest", "--json").json()["attestation_id"]
        r = reserve.run("attest", "show", str(kept), "--out", str(full))
        assert_write_failed(r, full, FULL)
        private = [full.name] if full.parent == out else []
        assert listing(out) == sorted(["a-file", "spend", *private])
        assert listing(spend_dir) == ["spend-1.psbt"] and (out / "a-file").read_text() == "keep me"
        assert stat.S_ISCHR(full.stat().st_mode)
    finally:
        db.dispose()
