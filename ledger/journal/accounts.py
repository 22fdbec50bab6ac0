"""Accounts of the books: vaults, custodians, counterparties, income, expenses, equity.

Service functions take the caller's :class:`~sqlalchemy.orm.Session`; they never open one.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from ledger.errors import Conflict, InvalidInput, NotFound
from ledger.journal.entry import RESERVE_ACCOUNT_TYPE, check_account_name, check_account_type
from ledger.store.models import AccountRow


@dataclass(frozen=True, slots=True)
class Account:
    id: int
    name: str
    type: str


def _account(row: AccountRow) -> Account:
    return Account(id=row.id, name=row.name, type=row.type)


def add_account(session: Session, name: str, account_type: str, *, vault_definition: bool = False) -> Account:
    """Open an account. A taken name is a :class:`Conflict` (accounts are never renamed).

    The names of the system accounts chain recording books to (``mining-income``,
    ``network-fees``, ``unattributed``) are opened only with their own types, so a fee or a
    counterparty leg never lands in a vault or an account of another kind.

    Vault accounts are the reserve: one is opened only together with its vault definition
    (:func:`ledger.chain.vaults.add_vault` passes ``vault_definition=True``), never on its own.
    """
    check_account_name(name)
    check_account_type(account_type)
    from ledger.chain.movement import SYSTEM_ACCOUNTS  # loaded only when an account is opened

    system_type = dict(SYSTEM_ACCOUNTS).get(name)
    if system_type is not None and account_type != system_type:
        raise InvalidInput(
            f"{name!r} is the name of a system account chain recording books to (type "
            f"{system_type}); it is never a {account_type} account or a vault: pick another name"
        )
    if account_type == RESERVE_ACCOUNT_TYPE and not vault_definition:
        raise InvalidInput(
            f"account {name!r}: a vault account is opened only with its vault definition, so the "
            "reserve holds nothing the chain cannot prove; use `reserve vault add` "
            "(or another type: custodian, counterparty, income, expense, equity)"
        )
    existing = session.scalar(select(AccountRow).where(AccountRow.name == name))
    if existing is not None:
        raise Conflict(f"account {name!r} already exists (type {existing.type}); pick another name")
    row = AccountRow(name=name, type=account_type)
    session.add(row)
    session.flush()
    return _account(row)


def list_accounts(session: Session) -> tuple[Account, ...]:
    return tuple(_account(r) for r in session.scalars(select(AccountRow).order_by(AccountRow.name)))


def get_account(session: Session, name: str) -> Account:
    row = session.scalar(select(AccountRow).where(AccountRow.name == name))
    if row is None:
        raise NotFound(f"no account named {name!r}; create it with `reserve account add {name} --type TYPE`")
    return _account(row)
