"""Vault storage on SQLite and PostgreSQL: the service functions, append-only enforcement by the
database (triggers from migration 0002_vaults) and by the ORM, and the migration itself."""

from __future__ import annotations

import os

import pytest
from alembic import command
from sqlalchemy import Engine, delete, inspect, select, text, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from custody.descriptor import MultisigDescriptor
from custody.errors import PolicyViolation
from custody.keygen import test_key_from_seed
from custody.network import Network
from custody.policy import Policy
from ledger.chain.vaults import add_vault, check_vaults, get_vault, list_vaults, retire_vault
from ledger.errors import Conflict, InvalidInput, LedgerError, NotFound
from ledger.store.migrate import alembic_config, current_revision, upgrade
from ledger.store.vault_models import VAULT_TABLES, VaultKeyRow, VaultRetirementRow, VaultRow
from tests.fixtures.db import snapshot

R = Network.REGTEST
HOLDERS = ("alice", "bob", "carol")


def _descriptor(threshold: int = 2, n: int = 3) -> MultisigDescriptor:
    return MultisigDescriptor.from_keys(threshold, [test_key_from_seed(os.urandom(32), R) for _ in range(n)])


def _add(engine: Engine, name: str, descriptor: MultisigDescriptor | None = None) -> MultisigDescriptor:
    d = descriptor or _descriptor()
    with Session(engine) as s, s.begin():
        add_vault(s, name, d, HOLDERS, R, Policy(), birthday_height=3)
    return d


def test_add_get_list_retire_check(engine: Engine) -> None:
    d = _add(engine, "cold")
    with Session(engine) as s, s.begin():
        v = get_vault(s, "cold")
        assert (v.name, v.account, v.descriptor, v.holders) == ("cold", "cold", d, HOLDERS)
        assert (v.network, v.birthday, v.retired, v.wallet_name) == (R, 3, False, "reserve-vault-cold")
        assert [h.holder for h in v.held_keys] == list(HOLDERS) and v.label == "2-of-3"
        assert check_vaults(s, R, Policy()) == {"cold": ()}
        assert check_vaults(s, R, Policy(min_threshold=3))["cold"][0].startswith("threshold 2 is below")
        retired = retire_vault(s, "cold", "rotated")
        assert (retired.retired, retired.retired_reason) == (True, "rotated")
    with Session(engine) as s:
        assert list_vaults(s) == ()
        assert [v.name for v in list_vaults(s, include_retired=True)] == ["cold"]
        assert check_vaults(s, R, Policy()) == {}
        with pytest.raises(NotFound, match="unknown vault 'warm'; `reserve vault list` shows the vaults"):
            get_vault(s, "warm")


def test_refusals_write_nothing(engine: Engine) -> None:
    d = _add(engine, "cold")
    with Session(engine) as s, s.begin():
        with pytest.raises(PolicyViolation, match="already used by active vault 'cold'"):
            add_vault(s, "cold2", d, HOLDERS, R, Policy())
        with pytest.raises(Conflict, match="vault 'cold' already exists"):
            add_vault(s, "cold", _descriptor(), HOLDERS, R, Policy())
        with pytest.raises(InvalidInput, match="contains '/'"):
            add_vault(s, "a/b", _descriptor(), HOLDERS, R, Policy())
        single = MultisigDescriptor.from_keys(2, _descriptor().keys, branches=(0,))
        with pytest.raises(InvalidInput, match="only the /0/\\* branch"):
            add_vault(s, "single", single, HOLDERS, R, Policy())
        with pytest.raises(PolicyViolation) as caught:
            add_vault(s, "weak", _descriptor(1, 2), ("a", "a"), R, Policy())
        assert len(caught.value.findings) == 3  # threshold, distinct holders, one holder reaches m
    with Session(engine) as s:
        assert [v.name for v in list_vaults(s, include_retired=True)] == ["cold"]
        counts = {t: s.execute(text(f"SELECT count(*) FROM {t}")).scalar_one() for t in VAULT_TABLES}
        assert counts == {"vaults": 1, "vault_keys": 3, "vault_retirements": 0}


@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE vaults SET threshold = 1",
        "DELETE FROM vaults",
        "UPDATE vault_keys SET holder = 'mallory'",
        "DELETE FROM vault_keys",
        "UPDATE vault_retirements SET reason = 'never mind'",
        "DELETE FROM vault_retirements",
    ],
)
def test_database_refuses_update_and_delete(engine: Engine, statement: str) -> None:
    _add(engine, "cold")
    with Session(engine) as s, s.begin():
        retire_vault(s, "cold", "rotated")
    with pytest.raises(DBAPIError, match="append-only"), engine.begin() as c:
        c.execute(text(statement))


def test_orm_refuses_changes_before_the_database(engine: Engine) -> None:
    _add(engine, "cold")
    with Session(engine) as s:
        row = s.scalars(select(VaultRow)).one()
        row.threshold = 1
        with pytest.raises(LedgerError, match="refusing to change a VaultRow"):
            s.flush()
        s.rollback()
        s.delete(s.scalars(select(VaultKeyRow)).first())
        with pytest.raises(LedgerError, match="refusing to delete a VaultKeyRow"):
            s.flush()
        s.rollback()
        for bulk in (update(VaultRetirementRow).values(reason="x"), delete(VaultRow)):
            with pytest.raises(LedgerError, match="refusing an ORM"):
                s.execute(bulk)


def test_migration_down_to_the_journal_and_up_again(engine: Engine, db_url: str) -> None:
    """Without records in the log the migrations go down to the journal and up again."""
    config = alembic_config(db_url)
    command.downgrade(config, "0001_journal")
    assert current_revision(engine) == "0001_journal"
    assert not set(VAULT_TABLES) & set(inspect(engine).get_table_names())
    upgrade(engine)
    _add(engine, "cold")
    with pytest.raises(DBAPIError, match="append-only"), engine.begin() as c:
        c.execute(text("DELETE FROM vaults"))


def test_migration_down_past_records_is_refused(engine: Engine, db_url: str) -> None:
    """A vault's record is part of the append-only log: 0004 cannot be undone once it holds one."""
    _add(engine, "cold")
    head = current_revision(engine)
    before = snapshot(engine)
    with pytest.raises(RuntimeError, match="cannot be downgraded"):
        command.downgrade(alembic_config(db_url), "0003_audits")
    assert current_revision(engine) == head and snapshot(engine) == before
