"""Database plumbing: the engine, the journal's write lock and the append-only trigger DDL.

SQLite runs in WAL mode with foreign keys on, and every transaction starts with
``BEGIN IMMEDIATE``: it takes the database's write lock at once, so two writers never read the
same last entry number (they queue on the busy timeout instead). PostgreSQL writers take a
transaction-level advisory lock (:func:`lock_journal`) before reading the last entry number.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url, text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

BUSY_TIMEOUT_S = 60
JOURNAL_LOCK_ID = 0x5245_5345_5256_4531  # "RESERVE1": the advisory lock serialising appends
MIGRATION_LOCK_ID = 0x5245_5345_5256_4D31  # "RESERVM1": the advisory lock serialising `init`
RUNTIME_ROLE = "reserve_runtime_role"
"""Execution option naming the PostgreSQL role :func:`ledger.store.migrate.upgrade` grants the runtime
rights to (SELECT and INSERT on every table, USAGE on every sequence)."""
PG_APPEND_ONLY_FUNCTION = "reserve_append_only"
MASK_ANYWHERE_LENGTH = 6
READ_ONLY = "reserve_read_only"
"""Execution option of a read-only engine (:func:`read_only`): SQLite begins a deferred
transaction, which takes no write lock, instead of ``BEGIN IMMEDIATE``."""


def make_engine(db_url: str) -> Engine:
    """An engine with the project's connection settings (SQLite: WAL, foreign keys, busy wait,
    ``BEGIN IMMEDIATE``)."""
    if db_url.startswith("sqlite"):
        engine = create_engine(db_url, connect_args={"timeout": BUSY_TIMEOUT_S})

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_conn: Any, _record: Any) -> None:
            dbapi_conn.isolation_level = None  # let SQLAlchemy's "begin" event emit BEGIN
            cur = dbapi_conn.cursor()
            cur.execute("PRAGMA journal_mode=WAL")
            cur.execute("PRAGMA foreign_keys=ON")
            cur.execute("PRAGMA synchronous=NORMAL")
            cur.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(conn: Connection) -> None:
            # Readers (gather steps) take no write lock; writers take it at once.
            conn.exec_driver_sql(
                "BEGIN" if conn.get_execution_options().get(READ_ONLY) else "BEGIN IMMEDIATE"
            )

        return engine
    try:
        return create_engine(db_url, pool_pre_ping=True)
    except ImportError as e:  # the driver is the optional extra `postgres`
        from ledger.errors import DatabaseUnavailable

        raise DatabaseUnavailable(
            f"PostgreSQL needs the psycopg driver, which is not installed ({e}): "
            "pip install 'reserve-ledger[postgres]'"
        ) from None


def shown_url(db_url: str) -> str:
    """The URL as it may be printed: the password masked."""
    try:
        return make_url(db_url).render_as_string(hide_password=True)
    except Exception:  # not a URL at all: show no part of it that could hold a secret
        return db_url.split("@")[-1]


def sqlite_path(db_url: str) -> Path | None:
    """The file of a SQLite URL (None for other databases and in-memory SQLite)."""
    url = make_url(db_url)
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        return None
    return Path(url.database)


def read_only(engine: Engine) -> Engine:
    """The same engine for short reads that must never hold the write lock (the gather step of
    a command that then talks to the node)."""
    return engine.execution_options(**{READ_ONLY: True})


def lock_journal(session: Session) -> None:
    """Serialise journal writers for the rest of this transaction.

    PostgreSQL: ``pg_advisory_xact_lock``, released at commit or rollback. SQLite: nothing to
    do, the transaction already holds the write lock (``BEGIN IMMEDIATE``).
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": JOURNAL_LOCK_ID - 2**63})


def append_only_ddl(dialect: str, table: str) -> tuple[str, ...]:
    """Statements that make ``table`` refuse UPDATE and DELETE (and TRUNCATE on PostgreSQL).

    On PostgreSQL they use the trigger function created by :func:`pg_append_only_function_ddl`.
    """
    if dialect == "sqlite":
        return tuple(
            f"CREATE TRIGGER {table}_no_{op.lower()} BEFORE {op} ON {table} "
            f"BEGIN SELECT RAISE(ABORT, 'append-only: {op} on {table} is refused'); END"
            for op in ("UPDATE", "DELETE")
        )
    if dialect == "postgresql":
        return (
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION {PG_APPEND_ONLY_FUNCTION}()",
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {PG_APPEND_ONLY_FUNCTION}()",
        )
    raise ValueError(f"no append-only triggers for database {dialect!r}")


def drop_append_only_ddl(dialect: str, table: str) -> tuple[str, ...]:
    """The inverse of :func:`append_only_ddl` (for downgrades)."""
    if dialect == "sqlite":
        return tuple(f"DROP TRIGGER IF EXISTS {table}_no_{op}" for op in ("update", "delete"))
    return (
        f"DROP TRIGGER IF EXISTS {table}_append_only ON {table}",
        f"DROP TRIGGER IF EXISTS {table}_no_truncate ON {table}",
    )


def pg_append_only_function_ddl() -> str:
    return (
        f"CREATE OR REPLACE FUNCTION {PG_APPEND_ONLY_FUNCTION}() RETURNS trigger "
        "LANGUAGE plpgsql AS $$ BEGIN "
        "RAISE EXCEPTION 'append-only: % on % is refused', TG_OP, TG_TABLE_NAME "
        "USING ERRCODE = 'insufficient_privilege'; "
        "END $$"
    )


def mask_secrets(text: str, *db_urls: str | None) -> str:
    """``text`` with the passwords of these URLs masked (in URLs always; elsewhere when they are
    long enough not to mask ordinary words)."""
    for secret in secrets_of(*db_urls):
        text = text.replace(f":{secret}@", ":***@")
        if len(secret) >= MASK_ANYWHERE_LENGTH:
            text = text.replace(secret, "***")
    return text


def secrets_of(*db_urls: str | None) -> tuple[str, ...]:
    """The passwords in these URLs (to mask them in any message that might echo one)."""
    found = []
    for db_url in db_urls:
        if not db_url:
            continue
        try:
            password = make_url(db_url).password
        except Exception:
            continue
        if password:
            found.append(str(password))
    return tuple(found)


def describe_database_error(exc: BaseException, db_url: str | None) -> str | None:
    """One line saying what a database error means and what to do, or None when ``exc`` is not
    a database error. Never includes the password of ``db_url``."""
    from sqlalchemy.exc import DataError, DBAPIError

    if not isinstance(exc, DBAPIError):
        return None
    lines = str(exc.orig).strip().splitlines() if exc.orig is not None else []
    reason = lines[0].strip() if lines else type(exc).__name__  # not the server's LINE/HINT lines
    return mask_secrets(_explain(reason, db_url, isinstance(exc, DataError)), db_url)


def _explain(reason: str, db_url: str | None, bad_value: bool) -> str:
    low = reason.lower()
    where = shown_url(db_url) if db_url else "the database"
    url = make_url(db_url) if db_url else None
    server = f"{url.host or 'localhost'}:{url.port or 5432}" if url is not None else "the server"
    user = url.username if url is not None else None
    name = url.database if url is not None else None
    path = sqlite_path(db_url) if db_url else None
    if "resolve host" in low or "name or service not known" in low:
        host = url.host if url is not None else None
        return (
            f"cannot find the database server {host!r} (the name does not resolve); check --db / RESERVE_DB"
        )
    if any(s in low for s in ("connection refused", "could not connect", "no route to host")):
        return (
            f"cannot connect to the database server at {server} (connection refused): "
            "is it running? check the URL in --db / RESERVE_DB"
        )
    if "authentication failed" in low:
        return (
            f"the database server at {server} refused user {user!r} (wrong password?); "
            "fix the password in the URL (--db / RESERVE_DB)"
        )
    if "database" in low and "does not exist" in low and "relation" not in low:
        return (
            f"the database {name!r} does not exist on {server}; create it "
            f"(e.g. `createdb {name}`), then run `reserve init`"
        )
    if "role" in low and "does not exist" in low:
        return f"the database server at {server} does not know the user: {reason}; check the URL"
    if "not a database" in low:
        return (
            f"{path or where} is not a reserve database (not a SQLite file); check --db, "
            "or run `reserve init --db NEW-FILE` for new books"
        )
    if "unable to open database file" in low:
        if path is not None and not path.parent.is_dir():
            return f"the directory {path.parent} of the database {path} does not exist; create it first"
        what = "is a directory" if path is not None and path.is_dir() else "cannot be opened or created"
        return f"the SQLite database {path or where} {what}; give a file path, e.g. reserve.db"
    if "database is locked" in low:
        return f"the database {where} is locked by another process; try again when it finishes"
    if "no such table" in low or ("relation" in low and "does not exist" in low):
        return f"the database {where} is not initialised (no ledger tables); run `reserve init`"
    if "permission denied for schema" in low:
        return (
            f"the role of {where} may not create tables: {reason}; run `reserve init` with the "
            "owner's URL in --owner-db or RESERVE_DB_OWNER"
        )
    if "permission denied for table alembic_version" in low:
        return (
            f"the role of {where} has no rights on the ledger's tables yet: run `reserve init` "
            "with the owner's URL in --owner-db or RESERVE_DB_OWNER (it grants them)"
        )
    if "permission denied" in low or "must be owner" in low:
        return (
            f"the database {where} refused: {reason}; the service's runtime role may only read "
            "and append (tables change only through `reserve init --owner-db`)"
        )
    if bad_value or "out of range" in low:
        return f"the database refused a value: {reason}; give a smaller or valid value"
    return f"database error on {where}: {reason}"
