"""Account balances and the reserve figure: verified from the signed tree heads, or summed.

The reserve is the sum of every vault-type account (:func:`is_reserve`), defined here once.
Whatever prints it (``reserve balance``, statements, the site, attestations) takes it from
:func:`verified_balance`: the balances the latest tree head signed by the ledger key carries
(:mod:`ledger.journal.heads`), plus the entries after it, each checked against its leaf hash and
the tree of the next signed head; what does not verify is a finding, never counted. It reads one
head and the few entries after it, so its cost does not grow with the journal. :func:`balance`
is the plain SQL aggregate over the postings (what the audit compares with the chain, after it
verified every entry, through :func:`reserve_total`). Vault accounts are opened only with a vault
definition and move only through chain-verified entries (:mod:`ledger.journal.accounts`,
:mod:`ledger.journal.book`). ``as_of=N`` counts entries 1..N only, so a balance can be asked for at
any point of the journal's history.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import and_, func, select
from sqlalchemy.orm import Session

from ledger.errors import InvalidInput, NotFound
from ledger.journal.accounts import get_account
from ledger.journal.book import StoredEntry, iter_leaf_hashes, iter_stored_rows, last_seq
from ledger.journal.entry import RESERVE_ACCOUNT_TYPE
from ledger.journal.heads import TreeHead, add_postings, signed_head, trusted_keys
from ledger.journal.merkle import MerkleAccumulator, leaf_hash
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


def _upto(session: Session, account: str | None, as_of: int | None) -> int:
    last = last_seq(session)
    if as_of is not None:
        if isinstance(as_of, bool) or not isinstance(as_of, int) or as_of < 0:
            raise InvalidInput(f"--as-of must be an entry number (0 or more), got {as_of!r}")
        if as_of > last:
            raise NotFound(f"there is no entry {as_of} yet; the last entry is {last}")
    if account is not None:
        get_account(session, account)  # NotFound with a hint for an unknown name
    return last if as_of is None else as_of


def balance(session: Session, account: str | None = None, as_of: int | None = None) -> Balances:
    """Balances of every account (or just ``account``) after entry ``as_of`` (default: last),
    summed by SQL over the postings as stored (unverified: see :func:`verified_balance`)."""
    upto = _upto(session, account, as_of)
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


@dataclass(frozen=True, slots=True)
class VerifiedBalances:
    """Balances as the log proves them, and what did not verify."""

    balances: Balances  # ``as_of`` is the last entry counted: verified up to there
    head: TreeHead | None  # the signed head that covers the entries counted (None: none yet)
    findings: tuple[str, ...]

    @property
    def ok(self) -> bool:
        return not self.findings


def verified_balance(
    session: Session, public_key_pem: bytes, account: str | None = None, as_of: int | None = None
) -> VerifiedBalances:
    """Balances after entry ``as_of`` (default: last) from the latest tree head at or below it
    signed by the ledger key (``public_key_pem`` or a key the key-rotation records link to it),
    plus the entries after that head, each re-encoded and checked against its leaf hash, the
    tree they extend checked against the next signed head's root.

    Counts nothing that does not verify: a head that does not verify, an entry changed after it
    was recorded, or entries no signed head covers (appended behind the service's back) are
    findings, and the balances stop at the last verified entry (``balances.as_of``).
    """
    upto = _upto(session, account, as_of)
    keys = trusted_keys(session, public_key_pem)
    findings: list[str] = []
    base = signed_head(session, keys, findings, upto=upto)
    size = 0 if base is None else base.tree_size
    totals = {} if base is None else base.totals()
    counted, covering = size, base
    if upto > size:
        acc = MerkleAccumulator() if base is None else base.accumulator()
        more = dict(totals)
        good = _extend(session, acc, more, size, upto, findings)
        later = signed_head(session, keys, findings, after=upto)
        if good and later is None:
            findings.append(
                f"entries {size + 1}..{upto} are not covered by a head signed by the ledger key "
                "(written outside the service); not counted"
            )
        elif good and later is not None:
            for _, h in iter_leaf_hashes(session, later.tree_size, after=upto):
                acc.append(h)
            if acc.size == later.tree_size and acc.root() == later.root:
                counted, covering, totals = upto, later, more
            else:
                findings.append(
                    f"entries {size + 1}..{later.tree_size} no longer have the root the tree head of "
                    f"size {later.tree_size} signed: history was rewritten; not counted"
                )
    return VerifiedBalances(_balances_of(session, totals, account, counted), covering, tuple(findings))


def _extend(
    session: Session,
    acc: MerkleAccumulator,
    totals: dict[str, tuple[str, int]],
    size: int,
    upto: int,
    findings: list[str],
) -> bool:
    """Entries ``size+1..upto`` into ``acc`` and ``totals``, each checked against its leaf hash;
    False (and a finding) at the first that fails."""
    expected = size + 1
    for row in iter_stored_rows(session, start=size + 1):
        seq = row[0]
        if seq > upto:
            break
        if seq != expected:
            findings.append(f"entries {expected}..{seq - 1} are missing (entry numbers jump); not counted")
            return False
        try:
            computed = leaf_hash(StoredEntry(*row).encode())
        except InvalidInput:
            computed = b""
        if computed != row[10]:
            findings.append(
                f"entry {seq} does not match its leaf hash: its content (an amount, account, memo, "
                "date or other field) was changed after it was recorded; not counted"
            )
            return False
        acc.append(computed)
        add_postings(totals, row[11])
        expected = seq + 1
    return True


def _balances_of(
    session: Session, totals: dict[str, tuple[str, int]], account: str | None, as_of: int
) -> Balances:
    """Every account (the accounts table names those no entry posted to yet) with ``totals``."""
    names = {str(n): str(t) for n, t in session.execute(select(AccountRow.name, AccountRow.type))}
    for name, (kind, _) in totals.items():
        names.setdefault(name, kind)
    every = tuple(
        AccountBalance(name, totals[name][0] if name in totals else kind, totals.get(name, (kind, 0))[1])
        for name, kind in sorted(names.items())
    )
    vaults = tuple(b for b in every if b.in_reserve)
    shown = every if account is None else tuple(b for b in every if b.name == account)
    return Balances(
        accounts=shown,
        reserve=sum(b.amount for b in vaults),
        as_of=as_of,
        reserve_accounts=tuple(b.name for b in vaults),
    )
