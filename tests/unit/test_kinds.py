"""Kinds and types as StrEnums: the values, their order and their JSON are the stored ones."""

from __future__ import annotations

import json

from sqlalchemy.schema import CreateTable

from ledger.chain.audit_report import EntryStatus, FindingCode
from ledger.chain.movement import SYSTEM_ACCOUNTS, MovementKind
from ledger.journal.entry import (
    ACCOUNT_TYPES,
    ALL_KINDS,
    ENTRY_KINDS,
    RECORD_KINDS,
    RESERVE_ACCOUNT_TYPE,
    AccountType,
    EntryKind,
    RecordKind,
)
from ledger.store.models import AccountRow, Base, EntryRow


def test_the_values_are_the_stored_ones_in_the_same_order() -> None:
    assert ACCOUNT_TYPES == ("vault", "custodian", "counterparty", "income", "expense", "equity")
    assert ENTRY_KINDS == (
        "opening",
        "deposit",
        "withdrawal",
        "transfer",
        "fee",
        "mining",
        "adjustment",
        "reversal",
    )
    assert RECORD_KINDS == (
        "vault-added",
        "vault-retired",
        "audit",
        "addresses-issued",
        "key-rotated",
        "policy-changed",
        "spend",
        "attestation",
        "change-proposed",
        "approval",
        "change-applied",
    )
    assert ALL_KINDS == ENTRY_KINDS + RECORD_KINDS
    assert RESERVE_ACCOUNT_TYPE == "vault"


def test_the_tuples_hold_plain_strings_so_check_constraints_and_choices_are_unchanged() -> None:
    for value in ACCOUNT_TYPES + ALL_KINDS:
        assert type(value) is str
    accounts = str(CreateTable(Base.metadata.tables[AccountRow.__tablename__]))
    assert "type IN ('vault', 'custodian', 'counterparty', 'income', 'expense', 'equity')" in accounts
    entries = str(CreateTable(Base.metadata.tables[EntryRow.__tablename__]))
    assert "'adjustment', 'reversal', 'vault-added', 'vault-retired'" in entries


def test_members_compare_format_and_serialise_as_their_values() -> None:
    for enum in (AccountType, EntryKind, RecordKind, MovementKind, FindingCode, EntryStatus):
        for member in enum:
            assert member == member.value
            assert f"{member}" == member.value
            assert json.dumps({"k": member}) == json.dumps({"k": member.value})


def test_every_movement_kind_is_an_entry_kind() -> None:
    assert {k.value for k in MovementKind} <= set(ENTRY_KINDS)


def test_system_accounts_have_known_types() -> None:
    assert {t for _, t in SYSTEM_ACCOUNTS} <= set(AccountType)
