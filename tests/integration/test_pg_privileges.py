"""Least privilege on PostgreSQL: the service's runtime role can read and append, nothing else.

``reserve init`` migrates as the owner role and grants the runtime role SELECT and INSERT (and
USAGE on sequences). As the runtime role, disabling or dropping a trigger, UPDATE, DELETE and
TRUNCATE are refused by the server, and `reserve ledger verify` still passes afterwards. SQLite
has no roles (its protection is the file's permissions, the triggers and the Merkle log), so these
tests run on PostgreSQL only. Concurrent ``init`` runs end cleanly on both backends.
"""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import Engine, make_url, text
from sqlalchemy.exc import DBAPIError

from ledger.store.db import make_engine
from tests.fixtures.db import runtime_role, runtime_url_for, snapshot
from tests.fixtures.reserve import Reserve

ROOT = Path(__file__).resolve().parents[2]
postgresql_only = pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)

REFUSED = (
    "ALTER TABLE postings DISABLE TRIGGER USER",
    "ALTER TABLE entries DISABLE TRIGGER ALL",
    "DROP TRIGGER postings_append_only ON postings",
    "UPDATE postings SET amount = amount + 100000",
    "UPDATE entries SET memo = 'nothing to see'",
    "DELETE FROM checkpoints",
    "DELETE FROM postings",
    "TRUNCATE entries CASCADE",
    "TRUNCATE checkpoints",
    "DROP TABLE checkpoints CASCADE",
    "ALTER TABLE entries OWNER TO CURRENT_USER",
    "CREATE TRIGGER mine BEFORE INSERT ON entries FOR EACH ROW EXECUTE FUNCTION reserve_append_only()",
    "DROP FUNCTION reserve_append_only() CASCADE",
    "INSERT INTO alembic_version (version_num) VALUES ('forged')",
    "DELETE FROM alembic_version",
)


def _books(reserve: Reserve) -> None:
    """Accounts, two entries and a signed checkpoint, made through the CLI as the runtime role."""
    reserve.ok("account", "add", "acme", "--type", "counterparty")
    reserve.ok("account", "add", "owners", "--type", "equity")
    for amount in ("1.5", "0.25"):
        reserve.ok(
            "record",
            "--kind",
            "adjustment",
            "--memo",
            "books",
            "--posting",
            f"acme={amount}",
            "--posting",
            f"owners=-{amount}",
        )
    reserve.ok("ledger", "checkpoint")


@postgresql_only
def test_runtime_role_is_refused_every_change_and_verify_still_passes(reserve: Reserve) -> None:
    _books(reserve)
    owner = reserve.engine()
    runtime = reserve.engine(runtime=True)
    try:
        before = snapshot(owner)
        with runtime.connect() as c:
            assert c.execute(text("SELECT current_user")).scalar_one() == runtime_role()
        for statement in REFUSED:
            with runtime.connect() as c, pytest.raises(DBAPIError) as e:
                c.execute(text(statement))
                c.commit()
            reason = str(e.value.orig).lower()
            assert "permission denied" in reason or "must be owner" in reason, (statement, reason)
        assert snapshot(owner) == before
    finally:
        owner.dispose()
        runtime.dispose()
    r = reserve.ok("ledger", "verify")
    assert r.out.startswith("OK")


@postgresql_only
def test_tables_of_later_migrations_are_granted_too(engine: Engine, runtime_engine: Engine) -> None:
    """ALTER DEFAULT PRIVILEGES: a table the owner creates after `init` gets the same rights."""
    with engine.begin() as c:
        c.execute(text("CREATE TABLE later (id BIGSERIAL PRIMARY KEY, note TEXT NOT NULL)"))
    with runtime_engine.begin() as c:
        c.execute(text("INSERT INTO later (note) VALUES ('appended')"))
        assert c.execute(text("SELECT note FROM later")).scalar_one() == "appended"
    for statement in ("UPDATE later SET note = 'changed'", "DELETE FROM later", "TRUNCATE later"):
        with runtime_engine.connect() as c, pytest.raises(DBAPIError, match="permission denied"):
            c.execute(text(statement))


@postgresql_only
def test_init_as_the_runtime_role_says_to_use_the_owner(
    reserve: Reserve, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RESERVE_DB_OWNER")
    r = reserve.run("init")  # already migrated: alembic only reads, grants are the owner's
    assert r.code == 0, r.err
    engine = reserve.engine()
    try:
        with engine.begin() as c:
            c.execute(text("DROP TABLE alembic_version"))
    finally:
        engine.dispose()
    r = reserve.run("init")  # now it would have to create a table
    assert r.code == 2
    assert "--owner-db" in r.err and "Traceback" not in r.err


def _init_processes(env: dict[str, str], n: int) -> list[subprocess.CompletedProcess[str]]:
    procs = [
        subprocess.Popen(
            [sys.executable, "-m", "ledger.cli.main", "init"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(n)
    ]
    done = []
    for p in procs:
        out, err = p.communicate(timeout=120)
        done.append(subprocess.CompletedProcess(p.args, p.returncode, out, err))
    return done


def test_concurrent_init_on_an_empty_database_ends_cleanly(db_url: str, tmp_path: Path) -> None:
    """Several `reserve init` at once on an empty database, with no signing key yet: every one
    exits 0, the schema is made once, and all of them end with the same key."""
    key = tmp_path / "keys" / "signing.key"
    env = {
        **os.environ,
        "RESERVE_DB": runtime_url_for(db_url),
        "RESERVE_DB_OWNER": db_url,
        "RESERVE_DB_RUNTIME_ROLE": runtime_role(),
        "RESERVE_SIGNING_KEY": str(key),
    }
    results = _init_processes(env, 4)
    for r in results:
        assert r.returncode == 0, r.stderr
        assert "Traceback" not in r.stderr
    key_ids = {
        line.split("key id ")[1].rstrip(")")
        for r in results
        for line in r.stdout.splitlines()
        if "key id" in line
    }
    assert len(key_ids) == 1, [r.stdout for r in results]
    engine = make_engine(runtime_url_for(db_url))
    try:
        with engine.connect() as c:
            assert c.execute(text("SELECT count(*) FROM alembic_version")).scalar_one() == 1
    finally:
        engine.dispose()


# --- scripts/install-postgres -----------------------------------------------------------------


def _psql_as_postgres(sql: str) -> str:
    p = subprocess.run(
        ["su", "postgres", "-c", "psql -qAt -v ON_ERROR_STOP=1"],
        input=sql,
        capture_output=True,
        text=True,
        check=True,
        timeout=60,
    )
    return p.stdout.strip()


@pytest.fixture
def local_cluster() -> None:
    if os.geteuid() != 0 or shutil.which("pg_lsclusters") is None:
        pytest.skip("scripts/install-postgres manages a local Debian cluster as root (CI runs it so)")


def test_install_postgres_makes_two_roles_and_never_touches_a_foreign_one(
    local_cluster: None, tmp_path: Path
) -> None:
    suffix = secrets.token_hex(4)
    owner, runtime_role_name, db, foreign = (
        f"{n}_{suffix}" for n in ("t_owner", "t_runtime", "t_db", "t_foreign")
    )
    _psql_as_postgres(f"CREATE ROLE {foreign} LOGIN PASSWORD 'theirs'")
    env = {
        k: v for k, v in os.environ.items() if k not in ("RESERVE_TEST_PG_URL", "RESERVE_TEST_PG_RUNTIME_URL")
    }
    env.update(XDG_CACHE_HOME=str(tmp_path), RESERVE_PG_DATABASE=db)

    def install(*args: str, **names: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [str(ROOT / "scripts" / "install-postgres"), *args],
            env={**env, **names},
            capture_output=True,
            text=True,
            timeout=300,
        )

    try:
        before = _psql_as_postgres(f"SELECT rolpassword FROM pg_authid WHERE rolname = '{foreign}'")
        r = install(RESERVE_PG_OWNER_ROLE=foreign, RESERVE_PG_RUNTIME_ROLE=runtime_role_name)
        assert r.returncode != 0 and "was not created by this script" in r.stderr, r.stderr
        after = _psql_as_postgres(f"SELECT rolpassword FROM pg_authid WHERE rolname = '{foreign}'")
        assert after == before

        names = {"RESERVE_PG_OWNER_ROLE": owner, "RESERVE_PG_RUNTIME_ROLE": runtime_role_name}
        first = install(**names)
        assert first.returncode == 0, first.stderr
        state = tmp_path / "reserve-ledger"
        assert first.stdout.splitlines() == [str(state / "pg-owner.url")]  # a path, never a password
        owner_url = (state / "pg-owner.url").read_text().strip()
        runtime = install("--runtime", **names)
        assert runtime.stdout.splitlines() == [str(state / "pg-runtime.url")]
        runtime_url = (state / "pg-runtime.url").read_text().strip()
        again = install(**names)
        assert (state / "pg-owner.url").read_text().strip() == owner_url  # idempotent: same password
        for url, role in ((owner_url, owner), (runtime_url, runtime_role_name)):
            parsed = make_url(url)
            assert (parsed.username, parsed.database) == (role, db)
            for r in (first, runtime, again):
                assert str(parsed.password) not in r.stdout + r.stderr
        for f in ("pg-owner.url", "pg-runtime.url"):
            assert (state / f).stat().st_mode & 0o777 == 0o600
        roles = _psql_as_postgres(
            "SELECT rolname, rolcreatedb, rolsuper, rolcreaterole, shobj_description(oid, 'pg_authid') "
            f"FROM pg_roles WHERE rolname IN ('{owner}', '{runtime_role_name}') ORDER BY rolname"
        ).splitlines()
        marker = "created by reserve-ledger scripts/install-postgres"
        assert roles == [f"{owner}|t|f|f|{marker}", f"{runtime_role_name}|f|f|f|{marker}"]
    finally:
        _psql_as_postgres(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
        for role in (runtime_role_name, owner, foreign):
            _psql_as_postgres(f"DROP ROLE IF EXISTS {role}")


def test_init_that_loses_the_key_race_loads_the_winners_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The other `init` creates the key between this one's check and its O_EXCL create."""
    from ledger.cli import journal_cmds
    from ledger.cli.main import main
    from ledger.journal.checkpoint import create_signing_key, load_signing_key, public_key_pem
    from ledger.verify_proof import key_id

    def other_init_wins(path: Path) -> object:
        create_signing_key(path)  # the winner's key
        return create_signing_key(path)  # this init's O_EXCL create: Conflict

    monkeypatch.setattr(journal_cmds, "create_signing_key", other_init_wins)
    key = tmp_path / "signing.key"
    assert main(["--db", str(tmp_path / "r.db"), "--signing-key", str(key), "init"]) == 0
    out = capsys.readouterr().out
    winner = key_id(public_key_pem(load_signing_key(key)))
    assert f"created by another `reserve init` at the same time, key id {winner}" in out
