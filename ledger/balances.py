"""Account balances and the reserve total, from one SQL aggregate over the postings.

The reserve is the sum of every vault-type account. ``as_of=N`` counts entries 1..N only, so a
balance can be asked for at any point of the journal's history.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from ledger.accounts import get_account
from ledger.entry import RESERVE_ACCOUNT_TYPE
from ledger.errors import InvalidInput, NotFound
from ledger.journal import last_seq
from ledger.models import AccountRow, PostingRow


@dataclass(frozen=True, slots=True)
class AccountBalance:
    name: str
    type: str
    amount: int  # satoshis


@dataclass(frozen=True, slots=True)
class Balances:
    accounts: tuple[AccountBalance, ...]
    reserve: int  # satoshis held in all vault-type accounts (whichever account was asked for)
    as_of: int  # the last entry counted


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
    reserve = sum(b.amount for b in all_balances if b.type == RESERVE_ACCOUNT_TYPE)
    shown = all_balances if account is None else tuple(b for b in all_balances if b.name == account)
    return Balances(accounts=shown, reserve=reserve, as_of=upto)
