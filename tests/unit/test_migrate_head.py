"""The fast readiness check's revision constant is Alembic's head (a new migration must update it)."""

from __future__ import annotations


def test_latest_revision_is_alembics_head() -> None:
    from alembic.script import ScriptDirectory

    from ledger.store.migrate import LATEST_REVISION, alembic_config

    assert ScriptDirectory.from_config(alembic_config()).get_current_head() == LATEST_REVISION
