"""Database plumbing: the engine, the journal's write lock and the append-only trigger DDL.

SQLite runs in WAL mode with foreign keys on, and every transaction starts with
``BEGIN IMMEDIATE``: it takes the database's write lock at once, so two writers never read the
same last entry number (they queue on the busy timeout instead). PostgreSQL writers take a
transaction-level advisory lock (:func:`lock_journal`) before reading the last entry number.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, event, text
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

BUSY_TIMEOUT_S = 60
JOURNAL_LOCK_ID = 0x5245_5345_5256_4531  # "RESERVE1": the advisory lock serialising appends
PG_APPEND_ONLY_FUNCTION = "reserve_append_only"
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
            conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get(READ_ONLY) else "BEGIN IMMEDIATE")

        return engine
    return create_engine(db_url, pool_pre_ping=True)


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
