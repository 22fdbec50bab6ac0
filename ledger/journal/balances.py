"""Account balances and the reserve figure, from one SQL aggregate over the postings.

The reserve is the sum of every vault-type account (:func:`is_reserve`), defined here once:
``reserve balance`` prints it and the audit compares it with the chain (:func:`reserve_total`),
so the two cannot disagree. Vault accounts are opened only with a vault definition and move only
through chain-verified entries (:mod:`ledger.journal.accounts`, :mod:`ledger.journal.book`). ``as_of=N``
counts entries 1..N only, so a balance can be asked for at any point of the journal's history.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from ledger.errors import InvalidInput, NotFound
from ledger.journal.accounts import get_account
from ledger.journal.book import last_seq
from ledger.journal.entry import RESERVE_ACCOUNT_TYPE
from ledger.store.models import AccountRow, PostingRow


def is_reserve(account_type: str) -> bool:
    """Whether an account of this type is part of the reserve (vault accounts, and only they)."""
    return account_type == RESERVE_ACCOUNT_TYPE


@dataclass(frozen=True, slots=True)
class AccountBalance:
    name: str
    type: str
    amount: int  # satoshis

    @property
    def in_reserve(self) -> bool:
        """Whether this balance counts in the reserve figure (a vault account)."""
        return is_reserve(self.type)


@dataclass(frozen=True, slots=True)
class Balances:
    accounts: tuple[AccountBalance, ...]
    reserve: int  # satoshis held in all vault-type accounts (whichever account was asked for)
    as_of: int  # the last entry counted
    reserve_accounts: tuple[str, ...] = ()  # the vault accounts summed into ``reserve``, by name


def balance(session: Session, account: str | None = None, as_of: int | None = None) -> Balances:
    """Balances of every account (or just ``account``) after entry ``as_of`` (default: last)."""
    last = last_seq(session)
    if as_of is not None:
        if isinstance(as_of, bool) or not isinstance(as_of, int) or as_of < 0:
            raise InvalidInput(f"--as-of must be an entry number (0 or more), got {as_of!r}")
        if as_of > last:
            raise NotFound(f"there is no entry {as_of} yet; the last entry is {last}")
    upto = last if as_of is None else as_of
    if account is not None:
        get_account(session, account)  # NotFound with a hint for an unknown name
    on = and_(PostingRow.account_id == AccountRow.id, PostingRow.entry_seq <= upto)
    rows = session.execute(
        select(AccountRow.name, AccountRow.type, func.coalesce(func.sum(PostingRow.amount), 0))
        .select_from(AccountRow)
        .outerjoin(PostingRow, on)
        .group_by(AccountRow.id, AccountRow.name, AccountRow.type)
        .order_by(AccountRow.name)
    ).all()
    all_balances = tuple(AccountBalance(n, t, int(a)) for n, t, a in rows)
    vaults = tuple(b for b in all_balances if b.in_reserve)
    shown = all_balances if account is None else tuple(b for b in all_balances if b.name == account)
    return Balances(
        accounts=shown,
        reserve=sum(b.amount for b in vaults),
        as_of=upto,
        reserve_accounts=tuple(b.name for b in vaults),
    )


def reserve_total(session: Session, as_of: int | None = None) -> int:
    """The reserve figure after entry ``as_of`` (default: last), in satoshis: the sum of every
    vault-type account, with or without a vault definition. The one definition ``reserve balance``
    and the audit share."""
    return balance(session, None, as_of).reserve
