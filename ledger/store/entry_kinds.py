"""Widening ``entries.kind`` in a migration: the one ALTER that SQLite cannot do directly.

Used by the migrations that add log record kinds (``0004_records``, ``0005_spending``); only
Alembic migrations import it (it runs on Alembic's ``op``).
"""

from __future__ import annotations

import re

import sqlalchemy as sa
from alembic import op


def one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


_SQLITE_KIND_CHECK = re.compile(r"CONSTRAINT ck_entries_kind CHECK \(kind IN \([^()]*\)\)")


def set_entry_kinds(kinds: tuple[str, ...]) -> None:
    """Make ``ck_entries_kind`` allow exactly ``kinds``."""
    if op.get_bind().dialect.name == "sqlite":
        sqlite_set_entry_kinds(kinds)
        return
    op.drop_constraint(op.f("ck_entries_kind"), "entries", type_="check")
    op.create_check_constraint(op.f("ck_entries_kind"), "entries", one_of("kind", kinds))


def sqlite_set_entry_kinds(kinds: tuple[str, ...]) -> None:
    """SQLite cannot ALTER a CHECK constraint. Rebuilding ``entries`` (batch mode: create a copy,
    drop the original, rename the copy) cannot work inside the migration's transaction: dropping
    ``entries`` orphans every posting, SQLite counts each as a deferred foreign key violation,
    the rename does not take the count back, so COMMIT fails; and ``PRAGMA foreign_keys=OFF``,
    which the rebuild needs, is a no-op inside a transaction.

    So the constraint's text in the schema is rewritten in place, SQLite's documented procedure
    for changing constraints that the stored rows already satisfy (sqlite.org/lang_altertable.html,
    "making other kinds of table schema changes"): in one transaction, rewrite the table's
    ``CREATE TABLE`` in ``sqlite_schema`` with ``writable_schema``, and bump ``schema_version``
    so every connection reloads the schema. No row, trigger or index is touched. A downgrade
    narrows it only when no row uses a removed kind (checked first).
    """
    bind = op.get_bind()
    create = bind.scalar(sa.text("SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'entries'"))
    found = _SQLITE_KIND_CHECK.findall(create or "")
    if len(found) != 1:
        raise RuntimeError(f"entries: expected one ck_entries_kind constraint in its schema, found {found}")
    new_create = _SQLITE_KIND_CHECK.sub(
        lambda _m: f"CONSTRAINT ck_entries_kind CHECK ({one_of('kind', kinds)})", create
    )
    version = bind.scalar(sa.text("PRAGMA schema_version"))
    bind.exec_driver_sql("PRAGMA writable_schema = ON")
    try:
        bind.execute(
            sa.text("UPDATE sqlite_master SET sql = :sql WHERE type = 'table' AND name = 'entries'"),
            {"sql": new_create},
        )
        bind.exec_driver_sql(f"PRAGMA schema_version = {int(version) + 1}")
    finally:
        bind.exec_driver_sql("PRAGMA writable_schema = OFF")
    problems = bind.execute(sa.text("PRAGMA quick_check(entries)")).scalars().all()
    if problems != ["ok"]:
        raise RuntimeError(f"entries: the schema check failed after widening its kinds: {problems}")
