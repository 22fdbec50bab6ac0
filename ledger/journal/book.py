"""The journal: append entries, reverse them, read them back.

Service functions take the caller's :class:`~sqlalchemy.orm.Session` and never open, commit or
roll back one; every check runs before anything is written, so an error writes nothing.

Rules beyond those of :mod:`ledger.journal.entry`:

- Every account a posting names must exist (``reserve account add``).
- ``ref`` is an idempotency key. Recording a draft whose ref is already stored returns the stored
  entry and writes nothing when the request is the same (same :func:`~ledger.journal.canonical.content_hash`);
  it is a :class:`~ledger.errors.Conflict` when the request differs. Refs starting with
  :data:`CHAIN_REF_PREFIX` belong to chain recording alone, so no other entry can take the ref a
  transaction's booking needs.
- An entry is reversed at most once, by an entry of kind ``reversal`` with the same accounts in
  the same order and every amount negated. A reversal itself cannot be reversed: to undo a
  mistaken reversal, record the original movement again as a new entry (the history then shows
  all three). This keeps "what is the state of entry N" a single lookup.
- Log records (:mod:`ledger.journal.records`: vault definitions, retirements, audits, issued addresses,
  key rotations) are entries with no postings, appended only through :func:`append_records` by
  the code that owns each kind; :func:`append_many` refuses their kinds and they are never
  reversed.
- Entry numbers (``seq``) are 1, 2, 3, ... with no gaps: each writer takes the journal lock
  (:func:`ledger.store.db.lock_journal`) before reading the last number. Only the leaf hash of each
  entry is computed on append; roots are computed when checkpointing or verifying.
- What a transaction appended is noted in ``session.info`` (:data:`APPENDED`): before it commits,
  a tree head signed by the ledger key covers it (:mod:`ledger.journal.heads`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import groupby
from operator import itemgetter
from typing import TypeVar

from sqlalchemy import ColumnElement, func, insert, select
from sqlalchemy.orm import Session

from ledger.errors import Conflict, InvalidInput, NotFound
from ledger.journal.canonical import content_hash, encode_entry_fields
from ledger.journal.entry import (
    ENTRY_KINDS,
    RECORD_KINDS,
    RESERVE_ACCOUNT_TYPE,
    Entry,
    EntryDraft,
    EntryKind,
    Posting,
)
from ledger.journal.merkle import leaf_hash
from ledger.store.db import lock_journal
from ledger.store.models import AccountRow, Base, EntryRow, PostingRow

PAGE = 1000
T = TypeVar("T")
CHAIN_REF_PREFIX = "chain:"
"""Refs of this namespace are chain recording's (``chain:<txid>:<n>``); no other entry takes one."""
_IN_CHUNK = 500
APPENDED = "reserve.appended"
"""``session.info`` key: the (first, last) entry numbers appended in the open transaction, which
the tree head written before it commits must cover (:mod:`ledger.journal.heads`)."""


@dataclass(frozen=True, slots=True)
class StoredEntry:
    """An entry row exactly as stored, postings as (account, account type, amount) in order.

    Unlike :class:`~ledger.journal.entry.Entry` it is not validated: the verifier reads tampered rows
    through it.
    """

    seq: int
    kind: str
    date: dt.date
    memo: str
    ref: str | None
    reverses_seq: int | None
    txid: str | None
    outputs: str | None
    block_hash: str | None
    block_height: int | None
    leaf_hash: bytes
    postings: tuple[tuple[str, str, int], ...]

    def encode(self) -> bytes:
        """The canonical bytes of what is stored (:func:`ledger.journal.canonical.encode_entry_fields`)."""
        return encode_entry_fields(
            seq=self.seq,
            kind=self.kind,
            date=self.date,
            memo=self.memo,
            ref=self.ref,
            reverses_seq=self.reverses_seq,
            txid=self.txid,
            outputs=self.outputs,
            block_hash=self.block_hash,
            block_height=self.block_height,
            postings=self.postings,
        )

    def to_entry(self) -> Entry:
        """The validated domain value (raises :class:`InvalidInput` on a row that breaks a rule)."""
        return Entry(
            seq=self.seq,
            kind=self.kind,
            date=self.date,
            memo=self.memo,
            postings=tuple(Posting(a, amt, t) for a, t, amt in self.postings),
            leaf_hash=bytes(self.leaf_hash),
            ref=self.ref,
            reverses_seq=self.reverses_seq,
            txid=self.txid,
            outputs=self.outputs,
            block_hash=self.block_hash,
            block_height=self.block_height,
        )


def _today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def _chunks(items: Sequence[T]) -> Iterator[list[T]]:
    for i in range(0, len(items), _IN_CHUNK):
        yield list(items[i : i + _IN_CHUNK])


def last_seq(session: Session) -> int:
    """The number of the last entry (0 when the journal is empty)."""
    return session.scalar(select(func.max(EntryRow.seq))) or 0


def append(session: Session, draft: EntryDraft, *, chain_verified: bool = False) -> Entry:
    """Record one entry (or return the one already recorded under the same ``ref``)."""
    return append_many(session, (draft,), chain_verified=chain_verified)[0]


def append_many(
    session: Session, drafts: Sequence[EntryDraft], *, chain_verified: bool = False
) -> tuple[Entry, ...]:
    """Record a batch of entries, all or nothing, in order; returns one entry per draft.

    Checks everything before writing anything, then writes with two bulk inserts.

    Vault accounts (the reserve) move only through entries whose postings a chain transaction
    determined: only :mod:`ledger.chain.recording` passes ``chain_verified=True``, and reversals of
    such entries are the one other way. Any other draft posting to a vault account, or naming
    a txid that a live entry already books, is refused. Records (kinds of
    :data:`~ledger.journal.entry.RECORD_KINDS`) are written only by :func:`append_records`.
    """
    drafts = _drafts(drafts)
    for d in drafts:
        if d.kind in RECORD_KINDS:
            raise InvalidInput(
                f"entry kind {d.kind!r} is a log record, written only by the command that owns it "
                "(vault add, vault retire, audit, vault address, key rotation); "
                f"use one of {', '.join(ENTRY_KINDS)}"
            )
        if not chain_verified and d.ref is not None and d.ref.startswith(CHAIN_REF_PREFIX):
            raise InvalidInput(
                f"ref {d.ref!r}: refs starting with {CHAIN_REF_PREFIX!r} are reserved for the "
                "bookings of chain transactions (`reserve record deposit|withdrawal|transfer|"
                "mining`, `reserve sync`); pick another ref"
            )
    return _append(session, drafts, chain_verified=chain_verified)


def append_records(session: Session, drafts: Sequence[EntryDraft]) -> tuple[Entry, ...]:
    """Append log records (:mod:`ledger.journal.records`): drafts of record kinds only."""
    drafts = _drafts(drafts)
    for d in drafts:
        if d.kind not in RECORD_KINDS:
            raise InvalidInput(f"entry kind {d.kind!r} is not a record kind ({', '.join(RECORD_KINDS)})")
    return _append(session, drafts, chain_verified=False)


def _drafts(drafts: Sequence[EntryDraft]) -> tuple[EntryDraft, ...]:
    drafts = tuple(drafts)
    for d in drafts:
        if not isinstance(d, EntryDraft):
            raise InvalidInput(f"expected an EntryDraft, got {d!r}")
    return drafts


@dataclass(frozen=True, slots=True)
class RefPlan:
    """What the idempotency check decided for each draft of a batch (by index in the batch)."""

    existing: dict[int, int]
    """Drafts whose ref is stored with the same content -> that entry's seq (nothing written)."""
    duplicate_of: dict[int, int]
    """Drafts repeating an earlier draft of the batch (same ref, same content) -> its index."""
    new: tuple[int, ...]
    """Drafts to store, in batch order."""


def plan_refs(
    refs: Sequence[str | None], hashes: Sequence[bytes], stored: Mapping[str, tuple[int, bytes]]
) -> RefPlan:
    """The idempotency check, pure: ``refs[i]`` and ``hashes[i]`` (:func:`content_hash`) of each
    draft, ``stored`` the (seq, content hash) of every already-stored ref among them.

    A ref names one request: seen again with the same content it is the same entry, with
    different content it is a :class:`Conflict` (stored first, then earlier in the batch).
    """
    in_batch: dict[str, tuple[int, bytes]] = {}
    existing: dict[int, int] = {}
    duplicate_of: dict[int, int] = {}
    for i, (ref, h) in enumerate(zip(refs, hashes, strict=True)):
        if ref is None:
            continue
        prior = stored.get(ref) or in_batch.get(ref)
        if prior is not None and prior[1] != h:
            where = f"entry {prior[0]}" if ref in stored else "an earlier entry of this batch"
            raise Conflict(
                f"ref {ref!r} was already used for {where} with different content; "
                "a ref names one request: use a new ref for a new entry"
            )
        if ref in stored:
            existing[i] = stored[ref][0]
        elif ref in in_batch:
            duplicate_of[i] = in_batch[ref][0]
        else:
            in_batch[ref] = (i, h)
    new = tuple(i for i in range(len(refs)) if i not in existing and i not in duplicate_of)
    return RefPlan(existing, duplicate_of, new)


def _append(session: Session, drafts: tuple[EntryDraft, ...], *, chain_verified: bool) -> tuple[Entry, ...]:
    if not drafts:
        return ()
    lock_journal(session)
    hashes = [content_hash(d) for d in drafts]

    # Idempotency: stored refs, and refs repeated inside the batch.
    refs = sorted({d.ref for d in drafts if d.ref is not None})
    stored: dict[str, tuple[int, bytes]] = {}
    for chunk in _chunks(refs):
        rows = session.execute(
            select(EntryRow.ref, EntryRow.seq, EntryRow.content_hash).where(EntryRow.ref.in_(chunk))
        )
        stored.update({r: (s, bytes(h)) for r, s, h in rows if r is not None})
    plan = plan_refs([d.ref for d in drafts], hashes, stored)
    existing_seq, duplicate_of, new = plan.existing, plan.duplicate_of, plan.new

    accounts = _account_map(session, sorted({p.account for i in new for p in drafts[i].postings}))
    if not chain_verified:
        _check_manual(session, [drafts[i] for i in new], accounts)
    _check_reversals(session, [drafts[i] for i in new])

    today = _today()
    seq = last_seq(session)
    sqlite = session.get_bind().dialect.name == "sqlite"
    entry_rows: list[tuple[object, ...]] = []
    posting_rows: list[tuple[object, ...]] = []
    made: dict[int, Entry] = {}
    for i in new:
        d = drafts[i]
        seq += 1
        date = d.date or today
        types = [accounts[p.account][1] for p in d.postings]
        lh = leaf_hash(
            encode_entry_fields(
                seq=seq,
                kind=d.kind,
                date=date,
                memo=d.memo,
                ref=d.ref,
                reverses_seq=d.reverses_seq,
                txid=d.txid,
                outputs=d.outputs,
                block_hash=d.block_hash,
                block_height=d.block_height,
                postings=[(p.account, t, p.amount) for p, t in zip(d.postings, types, strict=True)],
            )
        )
        made[i] = Entry.from_draft(d, seq=seq, date=date, account_types=types, leaf_hash=lh)
        entry_rows.append(
            (
                seq,
                d.kind,
                date.isoformat() if sqlite else date,  # what SQLAlchemy's SQLite Date stores
                d.memo,
                d.ref,
                hashes[i],
                d.reverses_seq,
                d.txid,
                d.outputs,
                d.block_hash,
                d.block_height,
                lh,
            )
        )
        posting_rows.extend((seq, k, accounts[p.account][0], p.amount) for k, p in enumerate(d.postings))
    if entry_rows:
        _executemany(session, "entries", _ENTRY_COLUMNS, entry_rows)
        first = int(entry_rows[0][0])  # type: ignore[call-overload]
        prior = session.info.get(APPENDED)
        session.info[APPENDED] = (first if prior is None else min(prior[0], first), seq)
    if posting_rows:
        _executemany(session, "postings", _POSTING_COLUMNS, posting_rows)

    loaded = {e.seq: e for e in _load(session, sorted(set(existing_seq.values())))}
    result: list[Entry] = []
    for i in range(len(drafts)):
        if i in existing_seq:
            result.append(loaded[existing_seq[i]])
        elif i in duplicate_of:
            result.append(made[duplicate_of[i]])
        else:
            result.append(made[i])
    return tuple(result)


_ENTRY_COLUMNS = (
    "seq",
    "kind",
    "date",
    "memo",
    "ref",
    "content_hash",
    "reverses_seq",
    "txid",
    "outputs",
    "block_hash",
    "block_height",
    "leaf_hash",
)
_POSTING_COLUMNS = ("entry_seq", "idx", "account_id", "amount")


def _executemany(
    session: Session, table: str, columns: Sequence[str], rows: list[tuple[object, ...]]
) -> None:
    """Insert already validated rows. SQLite: one driver-level ``executemany`` (the append path's
    hot loop, several times faster than per-row parameter handling); other databases: a Core
    insert, which SQLAlchemy sends as multi-row ``VALUES`` batches (one round trip per batch)."""
    if session.get_bind().dialect.name == "sqlite":
        marks = ", ".join(["?"] * len(columns))
        sql = f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})"
        session.connection().exec_driver_sql(sql, rows)
        return
    target = Base.metadata.tables[table]
    session.execute(insert(target), [dict(zip(columns, row, strict=True)) for row in rows])


def _account_map(session: Session, names: Sequence[str]) -> dict[str, tuple[int, str]]:
    found: dict[str, tuple[int, str]] = {}
    for chunk in _chunks(names):
        rows = session.execute(
            select(AccountRow.name, AccountRow.id, AccountRow.type).where(AccountRow.name.in_(chunk))
        )
        found.update({n: (i, t) for n, i, t in rows})
    for name in names:
        if name not in found:
            raise NotFound(
                f"no account named {name!r}; create it first with `reserve account add {name} --type TYPE`"
            )
    return found


def _check_manual(
    session: Session, drafts: Sequence[EntryDraft], accounts: dict[str, tuple[int, str]]
) -> None:
    """Entries not verified against the chain: no block hash, no vault postings (reversals
    aside), and no txid that a live entry books already. Such an entry's txid is a note: chain
    recording and the audit never take it for the transaction's booking."""
    for d in drafts:
        if d.block_hash is not None:
            raise InvalidInput(
                "a block hash marks an entry booking a chain transaction, written only by chain "
                "recording (`reserve record deposit|withdrawal|transfer|mining`, `reserve sync`)"
            )
        if d.reverses_seq is not None:
            continue
        vault_legs = [p.account for p in d.postings if accounts[p.account][1] == RESERVE_ACCOUNT_TYPE]
        if vault_legs:
            raise InvalidInput(
                f"posting to vault account {vault_legs[0]!r} refused: vault balances move only "
                "through transactions verified on chain (`reserve record deposit|withdrawal|"
                "transfer|mining --txid ...` or `reserve sync`); book the other side with "
                "non-vault accounts"
            )
    txids = sorted({d.txid for d in drafts if d.txid is not None})
    if txids:
        reversed_seqs = select(EntryRow.reverses_seq).where(EntryRow.reverses_seq.is_not(None))
        for chunk in _chunks(txids):
            booked = session.execute(
                select(EntryRow.txid, EntryRow.seq).where(
                    EntryRow.txid.in_(chunk),
                    EntryRow.kind != EntryKind.REVERSAL,
                    EntryRow.seq.not_in(reversed_seqs),
                )
            ).first()
            if booked is not None:
                raise Conflict(
                    f"transaction {booked[0]} is already booked by entry #{booked[1]}; "
                    "reverse that entry first if it was booked wrongly"
                )


def _check_reversals(session: Session, drafts: Sequence[EntryDraft]) -> None:
    targets: set[int] = set()
    for d in drafts:
        if d.reverses_seq is None:
            continue
        target_seq = d.reverses_seq
        if target_seq in targets:
            raise Conflict(f"entry {target_seq} is reversed twice in this batch; reverse it once")
        targets.add(target_seq)
        target = get_entry(session, target_seq)
        _check_reversible(target)
        if target.kind == EntryKind.REVERSAL:
            raise Conflict(
                f"entry {target_seq} is itself a reversal (of entry {target.reverses_seq}) and "
                "cannot be reversed; record the original movement again as a new entry instead"
            )
        by = session.scalar(select(EntryRow.seq).where(EntryRow.reverses_seq == target_seq))
        if by is not None:
            raise Conflict(f"entry {target_seq} was already reversed by entry {by}; it stays reversed")
        expected = [(p.account, -p.amount) for p in target.postings]
        if [(p.account, p.amount) for p in d.postings] != expected:
            raise InvalidInput(
                f"a reversal of entry {target_seq} must post exactly the negated amounts of that "
                "entry to the same accounts in the same order; use `reserve reverse`"
            )


def _check_reversible(target: Entry) -> None:
    if target.kind in RECORD_KINDS:
        raise Conflict(
            f"entry {target.seq} is a {target.kind} record, not a movement of money, and cannot be "
            "reversed; records stay in the log for good (retire a vault with `reserve vault retire`)"
        )


def reverse(
    session: Session,
    seq: int,
    memo: str,
    ref: str | None = None,
    date: dt.date | None = None,
) -> Entry:
    """Record the exact opposite of entry ``seq`` (kind ``reversal``, ``reverses_seq=seq``)."""
    target = get_entry(session, seq)
    _check_reversible(target)
    if target.kind == EntryKind.REVERSAL:
        raise Conflict(
            f"entry {seq} is itself a reversal (of entry {target.reverses_seq}) and cannot be "
            "reversed; record the original movement again as a new entry instead"
        )
    draft = EntryDraft(
        kind=EntryKind.REVERSAL,
        memo=memo,
        postings=tuple(Posting(p.account, -p.amount) for p in target.postings),
        date=date,
        ref=ref,
        reverses_seq=seq,
    )
    return append(session, draft)


def get_entry(session: Session, seq: int) -> Entry:
    if isinstance(seq, bool) or not isinstance(seq, int):
        raise InvalidInput(f"entry number must be an integer, got {seq!r}")
    found = _load(session, [seq])
    if not found:
        raise NotFound(f"no entry {seq}; `reserve ledger log` lists the entries")
    return found[0]


def get_by_ref(session: Session, ref: str) -> Entry | None:
    seq = session.scalar(select(EntryRow.seq).where(EntryRow.ref == ref))
    return None if seq is None else get_entry(session, seq)


def _load(session: Session, seqs: Sequence[int]) -> list[Entry]:
    out: list[Entry] = []
    for chunk in _chunks(seqs):
        out.extend(s.to_entry() for s in _stored_where(session, _ENTRIES.c.seq.in_(chunk)))
    return out


# The stored-entry reader selects table columns (SQLAlchemy Core), not mapped attributes: rows
# come back as plain tuples, without the ORM's per-row loading (verification reads every entry).
_ENTRIES = EntryRow.__table__
_POSTINGS = PostingRow.__table__
_ACCOUNTS = AccountRow.__table__
_STORED_COLUMNS = (
    "seq",
    "kind",
    "date",
    "memo",
    "ref",
    "reverses_seq",
    "txid",
    "outputs",
    "block_hash",
    "block_height",
    "leaf_hash",
)


StoredRow = tuple[
    int, str, dt.date, str, str | None, int | None, str | None, str | None, str | None, int | None, bytes,
    tuple[tuple[str, str, int], ...],
]  # fmt: skip
"""A :class:`StoredEntry`'s fields as a plain tuple, in the same order."""


def _stored_where(
    session: Session, condition: ColumnElement[bool], limit: int | None = None
) -> list[StoredEntry]:
    return [StoredEntry(*row) for row in _stored_rows_where(session, condition, limit)]


def _stored_rows_where(
    session: Session, condition: ColumnElement[bool], limit: int | None = None
) -> list[StoredRow]:
    """Entries matching ``condition`` (on ``_ENTRIES`` columns) in order, with their postings."""
    stmt = select(*(_ENTRIES.c[name] for name in _STORED_COLUMNS)).where(condition).order_by(_ENTRIES.c.seq)
    if limit is not None:
        stmt = stmt.limit(limit)
    rows = session.execute(stmt).all()
    if not rows:
        return []
    lo, hi = rows[0][0], rows[-1][0]
    p, a = _POSTINGS.c, _ACCOUNTS.c
    posting_rows = session.execute(
        select(p.entry_seq, a.name, a.type, p.amount)
        .join_from(_POSTINGS, _ACCOUNTS, a.id == p.account_id)
        .where(p.entry_seq.between(lo, hi))
        .order_by(p.entry_seq, p.idx)
    ).all()
    postings: dict[int, tuple[tuple[str, str, int], ...]] = {
        entry_seq: tuple([(r[1], r[2], r[3]) for r in group])
        for entry_seq, group in groupby(posting_rows, itemgetter(0))
    }
    return [
        (seq, kind, date, memo, ref, reverses, txid, outputs, block_hash, height, bytes(leaf),
         postings.get(seq, ()))
        for seq, kind, date, memo, ref, reverses, txid, outputs, block_hash, height, leaf in rows
    ]  # fmt: skip


def iter_stored(session: Session, start: int = 1, page: int = PAGE) -> Iterator[StoredEntry]:
    """Every stored entry from ``start`` in order, ``page`` rows at a time (keyset pagination:
    memory stays flat however long the journal is). Rows are not validated."""
    for row in iter_stored_rows(session, start, page):
        yield StoredEntry(*row)


def iter_stored_rows(session: Session, start: int = 1, page: int = PAGE) -> Iterator[StoredRow]:
    """:func:`iter_stored` as plain tuples (:data:`StoredRow`): the verifier's loop over every
    entry builds no object per row that it does not need."""
    after = start - 1
    while True:
        batch = _stored_rows_where(session, _ENTRIES.c.seq > after, limit=page)
        yield from batch
        if len(batch) < page:
            return
        after = batch[-1][0]


def iter_entries(session: Session, start: int = 1, page: int = PAGE) -> Iterator[Entry]:
    """Every entry from ``start`` in order, as validated :class:`Entry` values."""
    for stored in iter_stored(session, start, page):
        yield stored.to_entry()


def iter_leaf_hashes(
    session: Session, upto: int | None = None, page: int = 10_000, *, after: int = 0
) -> Iterator[tuple[int, bytes]]:
    """(seq, stored leaf hash) in order, after entry ``after``, up to and including ``upto``."""
    while True:
        stmt = select(EntryRow.seq, EntryRow.leaf_hash).where(EntryRow.seq > after)
        if upto is not None:
            stmt = stmt.where(EntryRow.seq <= upto)
        rows = session.execute(stmt.order_by(EntryRow.seq).limit(page)).all()
        for s, h in rows:
            yield s, bytes(h)
        if len(rows) < page:
            return
        after = rows[-1][0]
