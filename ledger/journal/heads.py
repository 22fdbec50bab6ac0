"""Signed tree heads: every write of the service is authenticated with the ledger key as it is made.

The PostgreSQL runtime role may INSERT (on SQLite, whoever has the file may): it can append an
entry, or a log record with its table row, whose leaf hash it computed correctly. What it cannot do
is sign. So every transaction of the service that appends entries ends, just before it commits,
by storing a **tree head** signed by the ledger key (:func:`seal`): the tree size after its
entries, the Merkle root, the frontier (the right edge the next head extends in O(log n), without
reading the earlier leaves), every account's balance and the time. Heads are written in the same
transaction as the entries they cover, under the journal lock, so they are serial: one per size.

Readers then tell the service's rows from rows inserted behind its back: an entry beyond the
latest head that verifies with the ledger key (or a key the key-rotation records link to it) was
not written by the service. ``ledger verify`` checks every head (:class:`HeadCheck`), ``ledger
checkpoint`` refuses to sign over entries no head covers (:func:`require_covered`), and
``reserve balance`` starts from the latest head's signed balances (:mod:`ledger.journal.balances`).

Why a head per transaction rather than a signature per record: one Ed25519 signature and one
small row per transaction, whatever it appends (a sync of a hundred movements signs once), the
reserve figure comes signed with it, and table rows held to their log records
(:mod:`ledger.journal.table_records`) are covered through those records.

The key travels with the engine (:func:`sealing`, an execution option like the read-only and
runtime-role ones), so every session on it (the CLI's, the tests') seals the same way; a session
on an engine without one seals nothing, and ``ledger verify`` reports what it appended.

The signed message is :func:`ledger.verify_proof.tree_head_message` (``docs/ledger-format.md``).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine, event, func, insert, select
from sqlalchemy.orm import Session, SessionTransaction

from ledger.errors import InvalidInput, TamperDetected
from ledger.journal.book import APPENDED, iter_leaf_hashes, iter_stored
from ledger.journal.checkpoint import load_signing_key, public_key_pem
from ledger.journal.entry import Entry
from ledger.journal.keychain import KeyChain, check_signing_key, key_chain, unretired_chain
from ledger.journal.merkle import MerkleAccumulator, leaf_hash
from ledger.store.db import lock_journal
from ledger.store.models import AccountRow, CheckpointRow, PostingRow, TreeHeadRow
from ledger.verify_proof import HASH_SIZE, ProofError, key_id, tree_head_message, verify_tree_head_signature

SEALER = "reserve_sealer"
"""Engine execution option: the :class:`Sealer` whose key signs the tree heads of its sessions."""
_RUN_VERIFY = "run `reserve ledger verify` to see what changed"
FORGED = "it was forged or changed, or was not signed by this ledger's key"

Totals = dict[str, tuple[str, int]]
"""Balances being summed: account name -> (account type, satoshis)."""


@dataclass(frozen=True, slots=True)
class TreeHead:
    """A signed statement: after entry ``tree_size`` the tree has ``root`` and the accounts
    these ``balances`` ((name, type, satoshis), by name: every account any entry posted to)."""

    tree_size: int
    root: bytes
    frontier: tuple[bytes, ...]
    balances: tuple[tuple[str, str, int], ...]
    timestamp: int
    key_id: str
    signature: bytes

    def message(self) -> bytes:
        return tree_head_message(self.tree_size, self.root, self.timestamp, balances_json(self.balances))

    def accumulator(self) -> MerkleAccumulator:
        """The tree to extend with the entries after this head."""
        return MerkleAccumulator.from_frontier(self.tree_size, self.frontier)

    def totals(self) -> Totals:
        return {name: (kind, amount) for name, kind, amount in self.balances}


def balances_json(balances: Iterable[tuple[str, str, int]]) -> str:
    """The balances line of the signed message: ``[[name, type, sats], ...]`` sorted by name,
    compact, ASCII only."""
    rows = sorted([str(n), str(t), int(a)] for n, t, a in balances)
    return json.dumps(rows, separators=(",", ":"), ensure_ascii=True)


def _balances_from(totals: Mapping[str, tuple[str, int]]) -> tuple[tuple[str, str, int], ...]:
    return tuple((name, kind, amount) for name, (kind, amount) in sorted(totals.items()))


def add_postings(totals: Totals, postings: Iterable[tuple[str, str, int]]) -> None:
    """Add (account, type, amount) postings to ``totals``, in place."""
    for name, kind, amount in postings:
        prior = totals.get(name)
        totals[name] = (kind, amount if prior is None else prior[1] + amount)


def parse_head(row: TreeHeadRow) -> TreeHead:
    """A stored head as a value; :class:`InvalidInput` says what is malformed (never trusted:
    the signature is checked separately)."""
    where = f"tree head of size {row.tree_size}"
    frontier_bytes = bytes(row.frontier)
    if len(frontier_bytes) % HASH_SIZE:
        raise InvalidInput(f"{where}: its frontier is not a whole number of {HASH_SIZE}-byte hashes")
    frontier = tuple(frontier_bytes[i : i + HASH_SIZE] for i in range(0, len(frontier_bytes), HASH_SIZE))
    try:
        rows = json.loads(row.balances)
    except ValueError as exc:
        raise InvalidInput(f"{where}: its balances are not JSON: {exc}") from exc
    if not isinstance(rows, list) or not all(
        isinstance(r, list)
        and len(r) == 3
        and isinstance(r[0], str)
        and isinstance(r[1], str)
        and isinstance(r[2], int)
        and not isinstance(r[2], bool)
        for r in rows
    ):
        raise InvalidInput(f"{where}: its balances are not a list of [account, type, satoshis]")
    balances = tuple((str(n), str(t), int(a)) for n, t, a in rows)
    if balances_json(balances) != row.balances or len({b[0] for b in balances}) != len(balances):
        raise InvalidInput(f"{where}: its balances are not in canonical form")
    head = TreeHead(
        tree_size=int(row.tree_size),
        root=bytes(row.root),
        frontier=frontier,
        balances=balances,
        timestamp=int(row.timestamp),
        key_id=str(row.key_id),
        signature=bytes(row.signature),
    )
    if head.accumulator().root() != head.root:
        raise InvalidInput(f"{where}: its frontier does not lead to its root")
    return head


def signature_problem(head: TreeHead, keys: Mapping[str, bytes]) -> str | None:
    """Why ``head`` is not signed by one of ``keys`` (key id -> PEM), or ``None`` when it is."""
    pem = keys.get(head.key_id)
    if pem is None:
        trusted = ", ".join(keys) or "none"
        return f"it names key {head.key_id}, which is not one of the trusted keys ({trusted})"
    try:
        verify_tree_head_signature(
            pem, head.tree_size, head.root, head.timestamp, balances_json(head.balances), head.signature
        )
    except ProofError:
        return f"its signature does not verify with key {head.key_id}"
    return None


def sign_head(
    key: Ed25519PrivateKey, acc: MerkleAccumulator, totals: Mapping[str, tuple[str, int]], timestamp: int
) -> TreeHead:
    unsigned = TreeHead(
        tree_size=acc.size,
        root=acc.root(),
        frontier=acc.frontier,
        balances=_balances_from(totals),
        timestamp=timestamp,
        key_id=key_id(public_key_pem(key)),
        signature=bytes(64),
    )
    return TreeHead(**{**_fields(unsigned), "signature": key.sign(unsigned.message())})


def _fields(head: TreeHead) -> dict[str, Any]:
    return {name: getattr(head, name) for name in TreeHead.__slots__}


def store_head(session: Session, head: TreeHead) -> None:
    session.execute(
        insert(TreeHeadRow),
        {
            "tree_size": head.tree_size,
            "root": head.root,
            "frontier": b"".join(head.frontier),
            "balances": balances_json(head.balances),
            "timestamp": head.timestamp,
            "key_id": head.key_id,
            "signature": head.signature,
        },
    )


# --- Sealing: the head of every write transaction ----------------------------------------------


class Sealer:
    """The ledger key that signs the tree heads of a write session: given, or read from the key
    file when the first head is sealed (a read-only command never needs the file)."""

    __slots__ = ("_key", "_path")

    def __init__(self, key: Ed25519PrivateKey | None = None, path: Path | None = None) -> None:
        if (key is None) == (path is None):
            raise InvalidInput("a sealer needs either a key or the path of the key file")
        self._key = key
        self._path = path

    def key(self) -> Ed25519PrivateKey:
        if self._key is None:
            assert self._path is not None
            self._key = load_signing_key(self._path)
        return self._key


def sealing(engine: Engine, sealer: Sealer) -> Engine:
    """``engine`` whose write sessions end with a tree head signed by ``sealer``'s key."""
    return engine.execution_options(**{SEALER: sealer})


def trusted_keys(session: Session, pem: bytes) -> dict[str, bytes]:
    """Key id -> PEM of ``pem`` and every key the key-rotation records link to it."""
    return {key_id(k): k for k in key_chain(session).linked(pem)}


def latest_head_row(session: Session, upto: int | None = None) -> TreeHeadRow | None:
    stmt = select(TreeHeadRow)
    if upto is not None:
        stmt = stmt.where(TreeHeadRow.tree_size <= upto)
    return session.scalar(stmt.order_by(TreeHeadRow.tree_size.desc()).limit(1))


def handovers(chain: KeyChain) -> dict[str, int]:
    """Key id -> the entry whose key-rotation record handed that key over: a head it signs
    covering that entry or later does not verify (the new key signs from the handover on)."""
    out: dict[str, int] = {}
    for rot in chain.rotations:
        out.setdefault(rot.old_key_id, rot.seq)
    return out


def checked_head(
    row: TreeHeadRow, keys: Mapping[str, bytes], retired: Mapping[str, int] | None = None
) -> TreeHead | str:
    """The head of ``row`` if it is well formed and signed by one of ``keys`` (not by a key
    ``retired`` before its size: :func:`handovers`), else why not."""
    try:
        head = parse_head(row)
    except InvalidInput as exc:
        return str(exc)
    problem = signature_problem(head, keys)
    if problem is None and retired and head.tree_size >= retired.get(head.key_id, head.tree_size + 1):
        problem = (
            f"it was signed by key {head.key_id}, which entry {retired[head.key_id]} handed over to "
            "another key: a retired key signed it"
        )
    if problem is not None:
        return f"tree head of size {head.tree_size} does not verify: {problem}"
    return head


def signed_head(
    session: Session,
    keys: Mapping[str, bytes],
    findings: list[str],
    *,
    upto: int | None = None,
    after: int | None = None,
) -> TreeHead | None:
    """The latest head (at or below ``upto``), or the first at or above ``after``, that verifies
    with ``keys``; each head passed over on the way is a finding."""
    stmt = select(TreeHeadRow)
    if after is None:
        if upto is not None:
            stmt = stmt.where(TreeHeadRow.tree_size <= upto)
        stmt = stmt.order_by(TreeHeadRow.tree_size.desc())
    else:
        stmt = stmt.where(TreeHeadRow.tree_size >= after).order_by(TreeHeadRow.tree_size)
    retired = handovers(key_chain(session))
    for row in session.scalars(stmt):
        checked = checked_head(row, keys, retired)
        if not isinstance(checked, str):
            return checked
        findings.append(f"{checked}: {FORGED}")
    return None


def seal(session: Session, sealer: Sealer, timestamp: int | None = None) -> TreeHead | None:
    """Sign and store the tree head covering the entries this transaction appended (none: nothing).

    Refuses (:class:`TamperDetected`, rolling the transaction back) when the latest head does not
    verify with the ledger key, or when entries no head covers stand before or after this
    transaction's: the service never signs over rows inserted behind its back. The key must be
    one that may sign now: not handed over (:func:`ledger.journal.keychain.unretired_chain`), and the
    latest head signed by it or by a key it took over from (so a replaced key file signs nothing).
    """
    appended = session.info.get(APPENDED)
    if appended is None:
        return None
    first, last = appended
    lock_journal(session)
    key = sealer.key()
    pem = public_key_pem(key)
    chain = unretired_chain(session, pem)
    row = latest_head_row(session)
    base: TreeHead | None = None
    if row is None and session.scalar(select(CheckpointRow.id).limit(1)) is not None:
        check_signing_key(session, pem)  # no head yet: the key must be the checkpoints' one
    if row is not None:  # signed by this key or one it took over from: not a replaced key file
        keys = {key_id(k): k for k in chain.predecessors(pem)}
        if row.key_id not in keys:
            check_signing_key(session, pem)  # what the checkpoints say of a replaced key file
            raise TamperDetected(
                f"key mismatch: the signing key file holds key {key_id(pem)}, but the latest tree head "
                f"(size {row.tree_size}) names key {row.key_id}, which no key-rotation record links to "
                "it: the key file was replaced (restore the original), or the head was forged; "
                f"refusing to sign; {_RUN_VERIFY}"
            )
        checked = checked_head(row, keys, handovers(chain))
        if isinstance(checked, str):
            raise TamperDetected(
                f"{checked}: it was inserted or changed behind the service's back; refusing to sign "
                f"over it; {_RUN_VERIFY}"
            )
        base = checked
    size = 0 if base is None else base.tree_size
    leaves = list(iter_leaf_hashes(session, after=size))
    if not leaves and size == first - 1:  # what it appended was rolled back (a savepoint)
        session.info.pop(APPENDED, None)
        return None
    now = leaves[-1][0] if leaves else size
    if size != first - 1 or now > last or len(leaves) != now - size:
        lo, hi = (size + 1, first - 1) if size < first - 1 else (last + 1, now)
        if size > first - 1:
            raise TamperDetected(
                f"the latest tree head covers {size} entries, but this transaction appended entries "
                f"from {first}: entries were removed; refusing to sign; {_RUN_VERIFY}"
            )
        hint = _RUN_VERIFY if base is not None else "`reserve init` seals entries written before tree heads"
        raise TamperDetected(
            f"entries {lo}..{hi} are not covered by a head signed by the ledger key (written outside "
            f"the service); refusing to sign over them; {hint}"
        )
    acc = MerkleAccumulator() if base is None else base.accumulator()
    for _, h in leaves:
        acc.append(h)
    totals = {} if base is None else base.totals()
    add_postings(totals, _postings_after(session, size))
    head = sign_head(key, acc, totals, int(time.time()) if timestamp is None else timestamp)
    store_head(session, head)
    session.info.pop(APPENDED, None)
    return head


def _postings_after(session: Session, size: int) -> list[tuple[str, str, int]]:
    """Each account's sum of the postings of entries after ``size``."""
    rows = session.execute(
        select(AccountRow.name, AccountRow.type, func.sum(PostingRow.amount))
        .join(AccountRow, AccountRow.id == PostingRow.account_id)
        .where(PostingRow.entry_seq > size)
        .group_by(AccountRow.name, AccountRow.type)
    ).all()
    return [(str(n), str(t), int(a)) for n, t, a in rows]


@event.listens_for(Session, "before_commit")
def _seal_before_commit(session: Session) -> None:
    """Seal what the transaction appended, with the key of its engine's :class:`Sealer`."""
    if APPENDED not in session.info:
        return
    sealer = session.get_bind().get_execution_options().get(SEALER)
    if isinstance(sealer, Sealer):
        seal(session, sealer)


@event.listens_for(Session, "after_transaction_end")
def _forget_appended(session: Session, transaction: SessionTransaction) -> None:
    """The transaction is over (committed, rolled back or closed): what it appended is no one's."""
    if transaction.parent is None:
        session.info.pop(APPENDED, None)


def require_covered(session: Session, pem: bytes, acc: MerkleAccumulator) -> None:
    """Raise :class:`TamperDetected` unless the latest tree head is signed by the ledger key
    (``pem`` or a key linked to it) and covers exactly the tree ``acc`` (what a checkpoint signs)."""
    row = latest_head_row(session)
    if row is None:
        if acc.size == 0:
            return
        raise TamperDetected(
            f"entries 1..{acc.size} are not covered by a head signed by the ledger key (written "
            "outside the service, or before tree heads: `reserve init` seals those); refusing to sign"
        )
    checked = checked_head(row, trusted_keys(session, pem), handovers(key_chain(session)))
    if isinstance(checked, str):
        raise TamperDetected(f"{checked}: it was forged or changed; refusing to sign; {_RUN_VERIFY}")
    if checked.tree_size < acc.size:
        raise TamperDetected(
            f"entries {checked.tree_size + 1}..{acc.size} are not covered by a head signed by the "
            f"ledger key (written outside the service); refusing to sign over them; {_RUN_VERIFY}"
        )
    if checked.tree_size > acc.size or checked.root != acc.root():
        raise TamperDetected(
            f"the tree head of size {checked.tree_size} does not match the journal as it is now; "
            f"refusing to sign; {_RUN_VERIFY}"
        )


# --- What `ledger verify` checks ---------------------------------------------------------------


def _head_rows(session: Session, page: int = 1000) -> Iterator[TreeHeadRow]:
    """Every stored head by size, ``page`` rows at a time (memory stays flat)."""
    after = -1
    while True:
        rows = session.scalars(
            select(TreeHeadRow)
            .where(TreeHeadRow.tree_size > after)
            .order_by(TreeHeadRow.tree_size)
            .limit(page)
        ).all()
        yield from rows
        if len(rows) < page:
            return
        after = rows[-1].tree_size


class HeadCheck:
    """The tree heads, checked as ``ledger verify``'s single pass over the journal reaches each
    one's size: its signature, its root, its balances; then which entries no head covers. Heads
    are read in step with the entries (one page at a time), so memory stays flat."""

    __slots__ = ("_keys", "_next", "_pending", "_retired", "_rows", "_totals", "covered", "findings")

    def __init__(self, session: Session, keys: Mapping[str, bytes]) -> None:
        self.findings: list[str] = []
        # entries the caller's own open transaction appended: sealed when it commits
        self._pending: tuple[int, int] | None = session.info.get(APPENDED)
        self._keys = keys
        self._retired = handovers(key_chain(session))
        self._rows = _head_rows(session)
        self._next: TreeHead | None = None
        self._totals: Totals = {}
        self.covered = 0
        self._advance()
        if self.next_size == 0:
            self.reached(0, MerkleAccumulator().root())

    @property
    def next_size(self) -> int:
        """The size of the next head to check (-1: none left)."""
        return -1 if self._next is None else self._next.tree_size

    def _advance(self) -> None:
        """Read on to the next head that verifies; each that does not is a finding."""
        self._next = None
        for row in self._rows:
            checked = checked_head(row, self._keys, self._retired)
            if isinstance(checked, str):
                self.findings.append(f"{checked}: {FORGED}")
                continue
            self._next = checked
            return

    def count(self, postings: Sequence[tuple[str, str, int]]) -> None:
        """Add the postings of the next entry."""
        add_postings(self._totals, postings)

    def reached(self, size: int, root: bytes) -> None:
        """The pass has read ``size`` entries (:attr:`next_size`), whose tree has ``root``: check
        that head, then read on to the next."""
        head = self._next
        assert head is not None and head.tree_size == size
        self._advance()
        self.covered = size  # signed by the ledger key: written by the service (changed or not)
        if head.root != root:
            self.findings.append(
                f"tree head of size {size} signed root {head.root.hex()}, but the first {size} entries "
                f"now have root {root.hex()}: history was rewritten after it was signed"
            )
            return
        if head.balances != _balances_from(self._totals):
            signed = {n: a for n, _, a in head.balances}
            now = {n: a for n, (_, a) in self._totals.items()}
            differ = sorted(n for n in set(signed) | set(now) if signed.get(n) != now.get(n))
            self.findings.append(
                f"tree head of size {size} signed balances that differ from the entries' postings "
                f"for account(s) {', '.join(differ[:5])}"
            )

    def finish(self, entries: int) -> int | None:
        """After the pass over ``entries`` entries: the first entry no valid head covers (and a
        finding for it), or ``None``."""
        beyond = -1
        while self._next is not None:  # heads the pass never reached: for entries not stored
            beyond = self._next.tree_size
            self._advance()
        if beyond > entries:
            self.findings.append(
                f"tree head of size {beyond} covers more entries than the {entries} stored: "
                f"entries {entries + 1}..{beyond} were removed"
            )
            return None  # what is left was covered (the checkpoints' findings narrow the damage)
        if self.covered >= entries:
            return None
        if self._pending is not None and self._pending[0] == self.covered + 1 and self._pending[1] >= entries:
            return None
        self.findings.append(
            f"entries {self.covered + 1}..{entries} are not covered by a head signed by the ledger key "
            "(written outside the service)"
        )
        return self.covered + 1


# --- What a reader of the whole journal checks (statements, the site) ----------------------------


class JournalCheck:
    """The whole journal as a report streams it, checked on the way: each entry against its leaf
    hash, the tree against the latest tree head signed by the ledger key, and no entry beyond it.

    ``entries()`` yields every entry as a validated :class:`~ledger.journal.entry.Entry`; after the
    stream, ``findings`` says what did not verify and ``head`` is the head that covers it.
    """

    __slots__ = ("_session", "findings", "head")

    def __init__(self, session: Session, public_key_pem: bytes) -> None:
        self._session = session
        self.findings: list[str] = []
        self.head = signed_head(session, trusted_keys(session, public_key_pem), self.findings)

    def entries(self) -> Iterator[Entry]:
        size = 0 if self.head is None else self.head.tree_size
        acc = MerkleAccumulator()
        for stored in iter_stored(self._session):
            try:
                computed = leaf_hash(stored.encode())
            except InvalidInput:
                computed = b""
            if computed != stored.leaf_hash or stored.seq != acc.size + 1:
                self.findings.append(
                    f"entry {stored.seq} does not match its leaf hash or its place: it was changed "
                    "after it was recorded; run `reserve ledger verify`"
                )
            acc.append(stored.leaf_hash)
            if acc.size == size and self.head is not None and acc.root() != self.head.root:
                self.findings.append(
                    f"the first {size} entries no longer have the root the tree head of size {size} "
                    "signed: history was rewritten; run `reserve ledger verify`"
                )
            yield stored.to_entry()
        if acc.size > size:
            self.findings.append(
                f"entries {size + 1}..{acc.size} are not covered by a head signed by the ledger key "
                "(written outside the service)"
            )
        elif acc.size < size:
            self.findings.append(
                f"the tree head of size {size} covers more entries than the {acc.size} stored: "
                f"entries {acc.size + 1}..{size} were removed"
            )
