"""Run the Alembic migrations from the installed package, from any working directory.

``migrations/`` is installed next to the ``ledger`` package (both in a checkout and in
site-packages), so the script location is found relative to this file, not the cwd.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine

from ledger.db import make_engine
from ledger.errors import NotInitialised

HEAD = "head"


def migrations_dir() -> Path:
    path = Path(__file__).resolve().parent.parent / "migrations"
    if not (path / "env.py").is_file():
        raise NotInitialised(f"the migrations directory is missing at {path}; reinstall reserve-ledger")
    return path


def alembic_config(url: str | None = None) -> Config:
    """An Alembic config for this project's migrations (``url`` optional when a connection is
    passed through ``config.attributes["connection"]``)."""
    cfg = Config()
    cfg.set_main_option("script_location", str(migrations_dir()))
    if url is not None:
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(engine_or_url: Engine | str, revision: str = HEAD) -> None:
    """Bring the database up to ``revision`` (the latest by default). Idempotent."""
    engine = make_engine(engine_or_url) if isinstance(engine_or_url, str) else engine_or_url
    try:
        with engine.begin() as connection:
            cfg = alembic_config()
            cfg.attributes["connection"] = connection
            command.upgrade(cfg, revision)
    finally:
        if isinstance(engine_or_url, str):
            engine.dispose()


def current_revision(engine: Engine) -> str | None:
    """The revision the database is at (``None`` before the first migration)."""
    from alembic.runtime.migration import MigrationContext

    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()
