"""Addresses handed out, and the rule that every one of them is watched.

An address given to a depositor must be seen by the vault's watch-only wallet, by ``sync`` and
by the audit's own UTXO scan, whatever its index. So issuing addresses is one service with three
steps (gather, judge, write):

1. :func:`plan_issue` (a short read): the vault, the addresses asked for, derived locally, and the
   highest index issued before;
2. :func:`cover_issue` (RPC, no transaction open): the vault's watch-only wallet is made to watch
   at least ``gap`` addresses past the highest index issued, by topping up its range
   (:func:`custody.wallet.cover_range`; nothing is rescanned: an address no one was given cannot
   have been paid). A vault with no wallet yet is fine: ``reserve vault watch`` imports at least
   as far as :func:`issued_ranges` says. An unreachable node stops everything before anything is
   written or shown: an address is never handed out while nobody can watch it;
3. :func:`record_issue` (one short write): the highest index issued is recorded as an
   ``addresses-issued`` record of the tamper-evident log, when it is beyond what was recorded
   before (repeating a request records nothing new).

:func:`issued_ranges` is what ``sync``, recording and the audit read to scan at least as far as
addresses were issued. :func:`issue_addresses` runs the three steps for callers that have a
session factory for reads and one for writes (the CLI's ``App.read_session``/``App.session``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from contextlib import AbstractContextManager
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from custody.errors import CustodyError
from custody.network import Network
from custody.rpc import RpcClient
from custody.wallet import DEFAULT_GAP, MAX_INDEX, WatchedBranch, cover_range
from ledger.chain.vaults import Vault, get_vault
from ledger.errors import Conflict, InvalidInput
from ledger.journal.records import RecordKind, append_record
from ledger.store.db import lock_journal
from ledger.store.models import EntryRow

MAX_COUNT = 1_000
"""At most this many addresses per request: a deposit needs one, a batch of invoices a few hundred."""

MAX_ISSUE_INDEX = 9_999
"""The highest index handed out. Every index up to the highest one issued, plus the gap, is
watched by the wallet and derived again by each audit, sync and record (about 1 s per 10,000
scripts here, and bitcoind as much to top its range up), so an index far out (a typo like
``--index 2000000000``) would slow every later audit for good. A vault that needs more than
10,000 addresses is better rotated into a new vault."""

SessionFactory = Callable[[], AbstractContextManager[Session]]


# --- the log ----------------------------------------------------------------------------------------


def issued_ranges(session: Session) -> dict[str, int]:
    """``vault name -> highest address index ever issued + 1`` (receive and change together).

    Vaults that were never issued an address are absent. Scanning indexes ``0..n-1`` of both
    branches of each vault covers every address handed out. Only well-formed records count: one
    out of bounds (:func:`issued_findings`) is never scanned to.
    """
    return read_issued(session).ranges


def issued_findings(session: Session) -> list[str]:
    """Every ``addresses-issued`` record the service cannot have written (``ledger verify``)."""
    return list(read_issued(session).findings)


def record_issued(session: Session, vault: str, index: int, change: bool) -> None:
    """Record that ``vault``'s address ``index`` (change branch or receive) was handed out.

    Writes a log record only when ``index`` is beyond every index recorded for the vault before,
    so repeating a request adds nothing. Takes the journal's write lock before reading, so two
    concurrent requests record one index each at most once.
    """
    _check_index(index)
    if index > MAX_ISSUE_INDEX:
        raise InvalidInput(
            f"address index {index:,} is past {MAX_ISSUE_INDEX:,}, the highest index handed out; "
            "give a smaller --index, or rotate to a new vault"
        )
    lock_journal(session)
    if index < issued_ranges(session).get(vault, 0):
        return
    append_record(session, RecordKind.ADDRESSES_ISSUED, {"vault": vault, "change": change, "index": index})


@dataclass(frozen=True, slots=True)
class IssuedLog:
    """The ``addresses-issued`` records as readers use them: the ranges of the well-formed ones,
    and a finding (with its entry number and value) for each other one, which no range uses."""

    ranges: dict[str, int]
    findings: tuple[str, ...]


def read_issued(session: Session) -> IssuedLog:
    """Read every ``addresses-issued`` record (one query) and judge it (:func:`judge_issued`)."""
    rows = session.execute(
        select(EntryRow.seq, EntryRow.memo)
        .where(EntryRow.kind == RecordKind.ADDRESSES_ISSUED.value)
        .order_by(EntryRow.seq)
    ).all()
    return judge_issued((int(seq), str(memo)) for seq, memo in rows)


def judge_issued(rows: Iterable[tuple[int, str]]) -> IssuedLog:
    """Pure: ``(seq, memo)`` of each record -> ranges and findings. A record counts only when its
    body names a vault, a boolean branch and an integer index within ``0..MAX_ISSUE_INDEX``, the
    only ones the service writes: an index out of bounds (``10**12``, ``-5``) written behind its
    back would otherwise make every later scan derive that many addresses."""
    ranges: dict[str, int] = {}
    findings: list[str] = []
    for seq, memo in rows:
        issued = _issued_value(memo)
        if isinstance(issued, str):
            findings.append(
                f"addresses-issued record #{seq} {issued}: the service never writes one (it was "
                "appended outside the service); it is ignored, addresses are scanned only as far as "
                "the valid records say; restore the database from a backup"
            )
            continue
        vault, index = issued
        ranges[vault] = max(ranges.get(vault, 0), index + 1)
    return IssuedLog(ranges, tuple(findings))


def _issued_value(memo: str) -> tuple[str, int] | str:
    """``(vault, index)`` of a well-formed record's memo, else what is wrong with it."""
    try:
        body = json.loads(memo)
    except ValueError:
        return "is not JSON"
    if not isinstance(body, dict):
        return "is not a JSON object"
    vault, index, change = body.get("vault"), body.get("index"), body.get("change")
    if not isinstance(vault, str) or not vault:
        return f"names no vault ({vault!r})"
    if not isinstance(change, bool):
        return f"of vault {vault!r} has no change flag (true or false, not {change!r})"
    if isinstance(index, bool) or not isinstance(index, int):
        return f"of vault {vault!r} has index {index!r}, not an integer"
    if not 0 <= index <= MAX_ISSUE_INDEX:
        return f"of vault {vault!r} has index {index:,}, outside 0..{MAX_ISSUE_INDEX:,}"
    return vault, index


def _check_index(index: int) -> None:
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index <= MAX_INDEX:
        raise InvalidInput(
            f"address index {index!r} is not a BIP-32 non-hardened index (0..{MAX_INDEX:,}); "
            f"give an --index from 0 to {MAX_ISSUE_INDEX:,}"
        )


# --- the service: gather, judge, write ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IssuePlan:
    """Addresses ``start..start+len(addresses)-1`` of one branch of a vault, derived locally."""

    vault: Vault
    change: bool
    start: int
    addresses: tuple[str, ...]
    issued_before: int  # highest index issued before + 1 (0: none)

    @property
    def highest(self) -> int:
        return self.start + len(self.addresses) - 1

    @property
    def branch(self) -> str:
        return "change" if self.change else "receive"


@dataclass(frozen=True, slots=True)
class Issued:
    """What :func:`issue_addresses` handed out and how it is watched.

    ``watched`` is the wallet's branches after the top-up, or empty when the vault has no
    watch-only wallet yet (``reserve vault watch`` will import at least this far); ``recorded``
    says whether a new ``addresses-issued`` record was written.
    """

    plan: IssuePlan
    watched: tuple[WatchedBranch, ...]
    recorded: bool


def check_request(start: int, count: int) -> None:
    """Refuse an index outside ``0..2^31-1`` (BIP-32 non-hardened), beyond
    :data:`MAX_ISSUE_INDEX`, and more than :data:`MAX_COUNT` addresses at once."""
    _check_index(start)
    if isinstance(count, bool) or not isinstance(count, int) or not 1 <= count <= MAX_COUNT:
        raise InvalidInput(
            f"--count {count!r} is out of range: give 1 to {MAX_COUNT:,} addresses per request"
        )
    if start + count - 1 > MAX_ISSUE_INDEX:
        raise InvalidInput(
            f"indexes {start}..{start + count - 1} go past {MAX_ISSUE_INDEX:,}, the highest index "
            "handed out: every address up to the highest one issued is watched and derived by "
            "each audit; give a smaller --index or --count, or rotate to a new vault"
        )


def plan_issue(session: Session, name: str, start: int, count: int, change: bool) -> IssuePlan:
    """Gather: the vault and its addresses ``start..start+count-1`` (no write)."""
    check_request(start, count)
    vault = get_vault(session, name)
    if vault.retired:
        raise Conflict(
            f"vault {name} is retired ({vault.retired_reason}); addresses of a retired vault are "
            "not handed out: use an active vault (`reserve vault list`)"
        )
    addresses = tuple(vault.descriptor.addresses(start, count, change, vault.network))
    return IssuePlan(vault, change, start, addresses, issued_ranges(session).get(name, 0))


def cover_issue(rpc: RpcClient, plan: IssuePlan, gap: int = DEFAULT_GAP) -> tuple[WatchedBranch, ...]:
    """RPC: make the vault's wallet watch ``gap`` addresses past every index issued (no rescan).

    Returns the wallet's branches, or ``()`` when the vault has no wallet on the node yet.
    Raises (custody's :class:`NodeUnreachable`, ...) when the node cannot be asked.
    """
    cover = max(plan.issued_before, plan.highest + 1)
    try:
        chain = rpc.get_blockchain_info().chain
        if Network.from_chain(chain) is plan.vault.network:
            return cover_range(rpc, plan.vault.wallet_name, plan.vault.descriptor, cover, gap)
    except CustodyError as e:  # keeps its type (node unreachable, RPC error, ...): say what was not done
        e.add_note(
            f"the addresses of vault {plan.vault.name} were not handed out (nothing written): "
            "an address is issued only once the vault's watch-only wallet covers it"
        )
        raise
    raise InvalidInput(
        f"vault {plan.vault.name} is on {plan.vault.network.chain} but the node is on "
        f"{chain}; nothing was handed out: point --rpc-url at a {plan.vault.network.chain} node"
    )


def record_issue(session: Session, plan: IssuePlan) -> bool:
    """Write: record the highest index of ``plan`` if it is new; re-checks the vault first."""
    lock_journal(session)
    vault = get_vault(session, plan.vault.name)
    if vault.retired or str(vault.descriptor) != str(plan.vault.descriptor):
        raise Conflict(
            f"vault {vault.name} changed while its addresses were derived (retired or redefined); "
            "nothing was handed out: run the command again"
        )
    before = issued_ranges(session).get(vault.name, 0)
    record_issued(session, vault.name, plan.highest, plan.change)
    return plan.highest + 1 > before


def issue_addresses(
    read: SessionFactory,
    write: SessionFactory,
    rpc: RpcClient,
    name: str,
    start: int = 0,
    count: int = 1,
    change: bool = False,
    gap: int = DEFAULT_GAP,
) -> Issued:
    """Hand out addresses of vault ``name``: derive, make the wallet cover them, record them."""
    with read() as s:
        plan = plan_issue(s, name, start, count, change)
    watched = cover_issue(rpc, plan, gap)
    with write() as s:
        recorded = record_issue(s, plan)
    return Issued(plan, watched, recorded)
