"""Run the Alembic migrations from the installed package, from any working directory, and tell a
command whether the database is ready for it.

``migrations/`` is installed next to the ``ledger`` package (both in a checkout and in
site-packages), so the script location is found relative to this file, not the cwd.

Least privilege on PostgreSQL: migrations run as the role that owns the tables; the service runs
as a *runtime* role. :func:`upgrade` given a runtime role (directly or through the engine's
``reserve_runtime_role`` execution option) grants it SELECT and INSERT on every table (SELECT only
on ``alembic_version``) and USAGE on every sequence, and sets the owner's default privileges so
tables of later migrations get the same. Without UPDATE, DELETE, TRUNCATE, TRIGGER or ownership
the runtime role cannot change, remove or unprotect a stored row.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import OperationalError, ProgrammingError

from ledger.errors import DatabaseUnavailable, InvalidInput, NotInitialised
from ledger.store.db import MIGRATION_LOCK_ID, RUNTIME_ROLE, make_engine, sqlite_path

if TYPE_CHECKING:  # Alembic loads only to migrate, or when the revision is not the latest
    from alembic.config import Config

HEAD = "head"
LATEST_REVISION = "0007_governance"
"""The newest migration's revision id (a unit test keeps it equal to Alembic's head): a
database at it is ready without loading Alembic."""
VERSION_TABLE = "alembic_version"
SQLITE_LOCK_RETRY_S = 120  # two `reserve init` at once: the second waits for the first


def migrations_dir() -> Path:
    path = Path(__file__).resolve().parents[2] / "migrations"
    if not (path / "env.py").is_file():
        raise NotInitialised(f"the migrations directory is missing at {path}; reinstall reserve-ledger")
    return path


def alembic_config(url: str | None = None) -> Config:
    """An Alembic config for this project's migrations (``url`` optional when a connection is
    passed through ``config.attributes["connection"]``)."""
    from alembic.config import Config

    # sys.stdout as it is now: Config's default stream was bound when alembic was first imported
    cfg = Config(stdout=sys.stdout)
    cfg.set_main_option("script_location", str(migrations_dir()))
    if url is not None:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(engine_or_url: Engine | str, revision: str = HEAD, *, runtime_role: str | None = None) -> None:
    """Bring the database up to ``revision`` (the latest by default). Idempotent, and safe to run
    twice at once: PostgreSQL serialises upgrades on an advisory lock, SQLite on its write lock
    (retried while another upgrade holds it). On PostgreSQL, grants the runtime role its rights."""
    engine = make_engine(engine_or_url) if isinstance(engine_or_url, str) else engine_or_url
    role = runtime_role or engine.get_execution_options().get(RUNTIME_ROLE)
    create_private_sqlite_file(engine)
    deadline = time.monotonic() + SQLITE_LOCK_RETRY_S
    try:
        while True:
            try:
                _upgrade_once(engine, revision, role)
                return
            except OperationalError as e:
                locked = engine.dialect.name == "sqlite" and "locked" in str(e.orig).lower()
                if not locked or time.monotonic() > deadline:
                    raise
    finally:
        if isinstance(engine_or_url, str):
            engine.dispose()


def create_private_sqlite_file(engine: Engine) -> None:
    """A new SQLite database file is made readable and writable by its owner only (mode 0600;
    SQLite gives its -wal and -shm files the same mode): SQLite has no roles, the file's
    permissions are its access control."""
    path = sqlite_path(engine.url.render_as_string(hide_password=False))
    if path is None or path.exists() or not path.parent.is_dir():
        return  # (a missing directory: SQLite says it cannot open the file)
    with contextlib.suppress(FileExistsError):  # another `reserve init` made it a moment ago
        os.close(os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600))


def _upgrade_once(engine: Engine, revision: str, runtime_role: str | None) -> None:
    with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            connection.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": MIGRATION_LOCK_ID - 2**63})
        cfg = alembic_config()
        cfg.attributes["connection"] = connection
        from alembic import command

        command.upgrade(cfg, revision)
        if runtime_role and connection.dialect.name == "postgresql":
            grant_runtime_rights(connection, runtime_role)


def grant_runtime_rights(connection: Connection, role: str) -> None:
    """Give ``role`` exactly SELECT and INSERT (and sequence USAGE) in the current schema, after
    checking it cannot do more through ownership, superuser or membership of the owner."""
    owner = connection.execute(text("SELECT current_user")).scalar_one()
    if role == owner:
        return  # one role for migrations and runtime: nothing to grant (and no least privilege)
    found = connection.execute(
        text("SELECT rolsuper, pg_has_role(:r, current_user, 'USAGE') FROM pg_roles WHERE rolname = :r"),
        {"r": role},
    ).one_or_none()
    if found is None:
        raise InvalidInput(
            f"the runtime role {role!r} does not exist on the server; create it "
            f"(`CREATE ROLE {role} LOGIN PASSWORD '...'`, or run scripts/install-postgres) or set "
            "RESERVE_DB_RUNTIME_ROLE to the role the service connects as"
        )
    superuser, member_of_owner = found
    if superuser or member_of_owner:
        why = "a superuser" if superuser else f"a member of the owner role {owner!r}"
        raise InvalidInput(
            f"the runtime role {role!r} is {why}, so it could alter or drop the append-only "
            "triggers; connect the service as a role with no other rights"
        )
    owned = connection.execute(
        text(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = current_schema() AND pg_get_userbyid(c.relowner) = :r LIMIT 1"
        ),
        {"r": role},
    ).scalar_one_or_none()
    if owned is not None:
        raise InvalidInput(
            f"the runtime role {role!r} owns table {owned!r}, so it could drop its triggers; "
            f"as a superuser run `REASSIGN OWNED BY {role} TO {owner}` in this database, then init again"
        )
    quote = connection.dialect.identifier_preparer.quote
    r, schema = quote(role), quote(connection.execute(text("SELECT current_schema()")).scalar_one())
    for statement in (
        f"GRANT USAGE ON SCHEMA {schema} TO {r}",
        f"REVOKE ALL ON ALL TABLES IN SCHEMA {schema} FROM {r}",
        f"GRANT SELECT, INSERT ON ALL TABLES IN SCHEMA {schema} TO {r}",
        f"REVOKE INSERT ON {quote(VERSION_TABLE)} FROM {r}",
        f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA {schema} FROM {r}",
        f"GRANT USAGE, SELECT ON ALL SEQUENCES IN SCHEMA {schema} TO {r}",
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} GRANT SELECT, INSERT ON TABLES TO {r}",
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA {schema} GRANT USAGE, SELECT ON SEQUENCES TO {r}",
    ):
        connection.exec_driver_sql(statement)


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (``None`` before the first migration)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def _stored_revision(engine: Engine) -> str | None:
    """The revision in the version table, read with plain SQL (``None`` if unreadable)."""
    try:
        with engine.connect() as connection:
            rows = connection.execute(text(f"SELECT version_num FROM {VERSION_TABLE}")).all()
    except (OperationalError, ProgrammingError):  # no version table: current_revision says why
        return None
    return rows[0][0] if len(rows) == 1 else None


def check_ready(engine: Engine) -> None:
    """Raise :class:`NotInitialised` unless the database is at the latest revision, saying
    whether to create or to upgrade it with ``reserve init``."""
    at = _stored_revision(engine)
    if at == LATEST_REVISION:
        return
    from alembic.script import ScriptDirectory

    where = engine.url.render_as_string(hide_password=True)
    at = current_revision(engine)
    if at is None:
        raise NotInitialised(
            f"the database {where} is not initialised (no ledger tables); run `reserve init`"
        )
    scripts = ScriptDirectory.from_config(alembic_config())
    head = scripts.get_current_head()
    if at == head:
        return
    known = {s.revision for s in scripts.walk_revisions()}
    if at in known:
        raise NotInitialised(
            f"the database {where} is at revision {at}, older than this reserve ({head}); "
            "run `reserve init` to upgrade it"
        )
    raise DatabaseUnavailable(
        f"the database {where} is at revision {at}, which this reserve does not know (latest {head}); "
        "it was made by a newer reserve-ledger: upgrade reserve-ledger"
    )
