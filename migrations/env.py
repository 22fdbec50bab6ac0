"""Alembic environment: migrates the database named by ``sqlalchemy.url`` or ``RESERVE_DB``.

A caller may hand over an open connection in ``config.attributes["connection"]``
(:func:`ledger.store.migrate.upgrade` does: it serialises concurrent upgrades and grants the runtime
role its rights); otherwise an engine is made with the project's settings and, on PostgreSQL,
the role named by ``RESERVE_DB_RUNTIME_ROLE`` (if set) is granted SELECT and INSERT the same way,
so a plain ``alembic upgrade head`` as the owner leaves the same rights as ``reserve init``.
"""

from __future__ import annotations

import os
from logging.config import fileConfig

from alembic import context
from sqlalchemy.engine import Connection

import ledger.store.audit_models  # registers the audits table on Base.metadata
import ledger.store.models
import ledger.store.spend_models  # registers the policy, spend and attestation tables
import ledger.store.vault_models  # registers the vault tables on Base.metadata
from ledger.settings import normalise_db_url
from ledger.store.db import make_engine
from ledger.store.migrate import grant_runtime_rights

config = context.config
if config.config_file_name is not None and config.attributes.get("configure_logger", True):
    fileConfig(config.config_file_name, disable_existing_loggers=False)

target_metadata = ledger.store.models.Base.metadata


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url") or os.environ.get("RESERVE_DB")
    if not url:
        raise SystemExit("no database: set RESERVE_DB or sqlalchemy.url in alembic.ini")
    return normalise_db_url(url)


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        # SQLite runs DDL in transactions here (ledger.store.db.make_engine begins them), so a run of
        # several migrations that fails half-way leaves nothing behind, as on PostgreSQL.
        transactional_ddl=True,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    context.configure(
        url=_url(),
        target_metadata=target_metadata,
        literal_binds=True,
        render_as_batch=_url().startswith("sqlite"),
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    given = config.attributes.get("connection")
    if given is not None:
        _run(given)
        return
    engine = make_engine(_url())
    role = os.environ.get("RESERVE_DB_RUNTIME_ROLE")
    try:
        with engine.connect() as connection:
            _run(connection)
            if role and connection.dialect.name == "postgresql":
                grant_runtime_rights(connection, role)
            connection.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
