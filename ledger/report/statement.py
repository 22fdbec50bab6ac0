"""A period statement of the reserve, per vault and in total. Pure: entries in, statement out.

The statement reads the journal the way an accountant reads a bank statement:

- **opening** balance of each vault (and in total) before the period, **closing** balance at its end;
- **additions** by nature: ``deposit`` (from a counterparty or custodian account), ``mining``
  (from :data:`~ledger.chain.movement.MINING_INCOME`) and ``other-addition`` (any other account, e.g.
  an equity or income account of an older manual adjustment), each by account;
- **dispositions** by the account that received the coins;
- **network fees** (postings to :data:`~ledger.chain.movement.NETWORK_FEES`);
- **internal transfers** between the reserve's vaults, listed apart: for one vault they are
  ``transfer-in`` / ``transfer-out`` lines, in total they net to zero and are never additions or
  dispositions.

For every section ``closing = opening + additions - dispositions - fees + transfers in - transfers out``
(the total has no transfers). Every line carries the entry numbers (and the txids) it comes from.

How an entry is split into lines (:func:`entry_lines`): each posting to a non-vault account is an
effect on the reserve (its amount negated): a positive one is an addition, a negative one a
disposition or fee. When one entry moves several vaults, the lines are assigned to vaults by a fixed
rule: additions go to the vaults that gained, in posting order, each filled up to its gain (any
excess to the entry's first vault); then each vault still short pays, in posting order, first the
network fee, then the dispositions in posting order, then the other vaults' remaining gains (these
are the transfers). The rule is exact to the satoshi and deterministic, so anyone can recompute it.

Reversals: a reversal (``reserve reverse``) is split exactly as the entry it reverses and every line
negated, so it lands in the same categories with negative amounts: an entry and its reversal in the
same period net to zero in each category; a reversal of an entry from an earlier period shows as a
negative line of the period it was written in. Lines say ``reverses`` / ``reversed_by``.

The period: each bound is a date (``YYYY-MM-DD``) or a block height, and **both bounds are
inclusive**. An entry with a block (chain recording) is placed by its block height against a height
bound; an entry without one (manual, e.g. a reversal) by its date against a date bound. Against a
date bound, chain entries go by their date too (the date they were booked); against a height bound,
an entry without a block goes by the height of the latest block booked before it in the journal
(entries are numbered in the order they were written), or before every block if there is none.
Only the journal is read, so an auditor recomputes the same statement from ``reserve export entries
--jsonl`` alone. Consecutive periods (``--to 200`` then ``--from 201``, or ``--to 2026-03-31`` then
``--from 2026-04-01``) share no entry and miss none.
"""

from __future__ import annotations

import datetime as dt
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from custody.amount import format_btc
from ledger.errors import InvalidInput
from ledger.journal.entry import AccountType, Entry, EntryKind, Posting

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from ledger.journal.heads import JournalCheck

SCHEMA = "reserve-ledger-statement/v1"
MINING_INCOME = "mining-income"  # ledger.chain.movement's system accounts (not imported: that module
NETWORK_FEES = "network-fees"  # loads the chain decoder; tests/unit/test_statement.py checks they agree)
TOTAL = "total"
"""The name of the whole reserve's section (vault names are account names, and ``total`` is not
reserved; the section's ``is_total`` tells them apart)."""


class Nature(StrEnum):
    DEPOSIT = "deposit"
    MINING = "mining"
    OTHER_ADDITION = "other-addition"
    DISPOSITION = "disposition"
    FEE = "fee"
    TRANSFER_IN = "transfer-in"
    TRANSFER_OUT = "transfer-out"


ADDITIONS = (Nature.DEPOSIT, Nature.MINING, Nature.OTHER_ADDITION)
OUTFLOWS = (Nature.DISPOSITION, Nature.FEE)
TRANSFERS = (Nature.TRANSFER_IN, Nature.TRANSFER_OUT)
_DEPOSIT_TYPES = (AccountType.COUNTERPARTY, AccountType.CUSTODIAN)
_DATE_RE = re.compile(r"^[0-9]{4}-[0-9]{2}-[0-9]{2}$")
_HEIGHT_RE = re.compile(r"^(0|[1-9][0-9]{0,9})$")


# --- the period -------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Bound:
    """One end of a period: a date or a block height (exactly one), inclusive."""

    date: dt.date | None = None
    height: int | None = None

    def __post_init__(self) -> None:
        if (self.date is None) == (self.height is None):
            raise InvalidInput("a period bound is a date or a block height, exactly one")
        if self.height is not None and (
            isinstance(self.height, bool) or not isinstance(self.height, int) or not 0 <= self.height < 2**32
        ):
            raise InvalidInput(f"block height {self.height!r} must be a whole number from 0")

    @classmethod
    def parse(cls, text: str, what: str = "bound") -> Bound:
        """``YYYY-MM-DD`` (a date) or digits (a block height)."""
        value = text.strip()
        if _HEIGHT_RE.match(value):
            height = int(value)
            if height < 2**32:
                return cls(height=height)
        elif _DATE_RE.match(value):
            try:
                return cls(date=dt.date.fromisoformat(value))
            except ValueError as e:
                raise InvalidInput(f"{what} {value!r} is not a calendar date: {e}") from e
        raise InvalidInput(
            f"{what} {value[:40]!r} is neither a date (YYYY-MM-DD, e.g. 2026-01-31) nor a block "
            "height (a whole number, e.g. 840000)"
        )

    def __str__(self) -> str:
        return self.date.isoformat() if self.date is not None else str(self.height)

    def to_json(self) -> dict[str, Any]:
        if self.date is not None:
            return {"date": self.date.isoformat()}
        return {"height": self.height}


@dataclass(frozen=True, slots=True)
class Place:
    """Where an entry stands for the period: its date and its (block or journal-position) height."""

    date: dt.date
    height: int  # the block's height, or for an entry without a block the latest booked before it (-1: none)

    def at_or_after(self, bound: Bound) -> bool:
        return self.date >= bound.date if bound.date is not None else self.height >= (bound.height or 0)

    def at_or_before(self, bound: Bound) -> bool:
        return self.date <= bound.date if bound.date is not None else self.height <= (bound.height or 0)


def check_period(start: Bound, end: Bound) -> None:
    """Bounds of the same type must not be reversed."""
    if start.date is not None and end.date is not None and start.date > end.date:
        raise InvalidInput(f"--from {start} is after --to {end}; swap them")
    if start.height is not None and end.height is not None and start.height > end.height:
        raise InvalidInput(f"--from {start} is after --to {end}; swap them")


# --- one entry into lines ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Split:
    """One piece of an entry: ``amount`` satoshis of ``nature`` booked to ``vault``; ``account`` is
    the counterparty (for transfers, the other vault)."""

    vault: str
    nature: Nature
    account: str
    amount: int


def _nature_of_inflow(p: Posting) -> Nature:
    if p.account == MINING_INCOME:
        return Nature.MINING
    if p.account_type in _DEPOSIT_TYPES:
        return Nature.DEPOSIT
    return Nature.OTHER_ADDITION


def entry_lines(postings: Sequence[Posting]) -> tuple[Split, ...]:
    """How a (non-reversal) entry's postings split into statement lines, per vault (the rule in the
    module docstring). Empty when no vault is touched. The splits of each vault sum to its net
    posting; additions minus outflows sum to the entry's net effect on the reserve."""
    vault_net: dict[str, int] = {}
    inflows: list[tuple[Nature, str, int]] = []
    outflows: list[tuple[Nature, str, int]] = []
    for p in postings:
        if p.account_type == AccountType.VAULT:
            vault_net[p.account] = vault_net.get(p.account, 0) + p.amount
        elif p.amount < 0:
            inflows.append((_nature_of_inflow(p), p.account, -p.amount))
        else:
            nature = Nature.FEE if p.account == NETWORK_FEES else Nature.DISPOSITION
            outflows.append((nature, p.account, p.amount))
    if not vault_net:
        return ()
    vaults = list(vault_net)
    out: list[Split] = []
    # 1. additions to the vaults that gained, in order; any excess to the first vault
    room = {v: max(n, 0) for v, n in vault_net.items()}
    residual = dict(vault_net)
    for nature, account, amount in inflows:
        left = amount
        for v in vaults:
            take = min(left, room[v])
            if take:
                out.append(Split(v, nature, account, take))
                room[v] -= take
                residual[v] -= take
                left -= take
        if left:
            out.append(Split(vaults[0], nature, account, left))
            residual[vaults[0]] -= left
    # 2. vaults still short pay the fee, the dispositions, then the other vaults' remaining gains
    payers = [v for v, r in residual.items() if r < 0]
    owed = [-residual[v] for v in payers]
    sinks: list[tuple[Nature, str, int]] = [o for o in outflows if o[0] is Nature.FEE]
    sinks += [o for o in outflows if o[0] is not Nature.FEE]
    sinks += [(Nature.TRANSFER_IN, v, r) for v, r in residual.items() if r > 0]
    i = 0
    for nature, account, amount in sinks:
        left = amount
        while left:
            if i >= len(payers):  # cannot happen for a balanced entry
                raise InvalidInput("an entry's postings do not balance; run `reserve ledger verify`")
            take = min(left, owed[i])
            if nature is Nature.TRANSFER_IN:
                out.append(Split(payers[i], Nature.TRANSFER_OUT, account, take))
                out.append(Split(account, Nature.TRANSFER_IN, payers[i], take))
            else:
                out.append(Split(payers[i], nature, account, take))
            owed[i] -= take
            left -= take
            if owed[i] == 0:
                i += 1
    return tuple(out)


def signed_effect(split: Split) -> int:
    """What a split does to its vault's balance (additions and transfers in positive)."""
    return split.amount if split.nature in ADDITIONS or split.nature is Nature.TRANSFER_IN else -split.amount


# --- the statement ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Line:
    """One split of one entry in the period, traceable to the entry and its transaction."""

    seq: int
    vault: str
    nature: Nature
    account: str
    amount: int  # satoshis; negative on a reversal
    kind: str
    date: dt.date
    txid: str | None
    block_height: int | None
    reverses: int | None = None
    reversed_by: int | None = None


@dataclass(frozen=True, slots=True)
class Subtotal:
    """The lines of one nature and account in one section: their sum and where they come from."""

    nature: Nature
    account: str
    amount: int
    entries: tuple[int, ...]
    txids: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Section:
    """One vault's statement, or the whole reserve's (``is_total``: no transfers)."""

    name: str
    is_total: bool
    opening: int
    additions: tuple[Subtotal, ...]
    dispositions: tuple[Subtotal, ...]
    fees: tuple[Subtotal, ...]
    transfers_in: tuple[Subtotal, ...]
    transfers_out: tuple[Subtotal, ...]
    closing: int

    def total(self, group: str) -> int:
        return sum(s.amount for s in getattr(self, group))

    @property
    def computed_closing(self) -> int:
        """``opening + additions - dispositions - fees + transfers in - transfers out``."""
        return (
            self.opening
            + self.total("additions")
            - self.total("dispositions")
            - self.total("fees")
            + self.total("transfers_in")
            - self.total("transfers_out")
        )


@dataclass(frozen=True, slots=True)
class Transfer:
    """An internal transfer between two of the reserve's vaults (never an addition in total)."""

    seq: int
    source: str
    target: str
    amount: int
    txid: str | None
    reverses: int | None = None


@dataclass(frozen=True, slots=True)
class CheckpointRef:
    tree_size: int
    root: bytes
    timestamp: int
    key_id: str


@dataclass(frozen=True, slots=True)
class Statement:
    start: Bound
    end: Bound
    vaults: tuple[Section, ...]
    total: Section
    transfers: tuple[Transfer, ...]
    lines: tuple[Line, ...]
    entries: tuple[int, ...]  # entries of the period that move a vault
    reversals: tuple[tuple[int, int], ...]  # (reversal, reversed entry) among them
    last_entry: int  # the highest entry number counted (opening or period); 0 if none
    journal_size: int
    checkpoint: CheckpointRef | None  # the latest signed checkpoint covering last_entry


def _subtotals(lines: Iterable[Line], natures: Sequence[Nature]) -> tuple[Subtotal, ...]:
    groups: dict[tuple[Nature, str], list[Line]] = defaultdict(list)
    for line in lines:
        if line.nature in natures:
            groups[(line.nature, line.account)].append(line)
    order = {n: i for i, n in enumerate(natures)}
    return tuple(
        Subtotal(
            nature,
            account,
            sum(x.amount for x in group),
            tuple(sorted({x.seq for x in group})),
            tuple(dict.fromkeys(x.txid for x in group if x.txid is not None)),
        )
        for (nature, account), group in sorted(groups.items(), key=lambda g: (order[g[0][0]], g[0][1]))
    )


def _section(name: str, is_total: bool, opening: int, lines: Sequence[Line], closing: int) -> Section:
    return Section(
        name=name,
        is_total=is_total,
        opening=opening,
        additions=_subtotals(lines, ADDITIONS),
        dispositions=_subtotals(lines, (Nature.DISPOSITION,)),
        fees=_subtotals(lines, (Nature.FEE,)),
        transfers_in=() if is_total else _subtotals(lines, (Nature.TRANSFER_IN,)),
        transfers_out=() if is_total else _subtotals(lines, (Nature.TRANSFER_OUT,)),
        closing=closing,
    )


def build_statement(
    entries: Iterable[Entry],
    start: Bound,
    end: Bound,
    *,
    vaults: Sequence[str] = (),
    checkpoints: Sequence[CheckpointRef] = (),
) -> Statement:
    """The statement of the period ``start``..``end`` (inclusive) from every entry of the journal in
    order (log records, which have no postings, are skipped). ``vaults`` names vault accounts to list
    even when nothing moved them; ``checkpoints`` are the stored signed checkpoints."""
    check_period(start, end)
    entries = list(entries)
    reversed_by = {e.reverses_seq: e.seq for e in entries if e.reverses_seq is not None}
    postings_of = {e.seq: e.postings for e in entries if e.postings}
    opening: dict[str, int] = defaultdict(int)
    closing: dict[str, int] = defaultdict(int)
    for v in vaults:
        opening[v] += 0
    lines: list[Line] = []
    in_period: list[int] = []
    reversals: list[tuple[int, int]] = []
    transfers: list[Transfer] = []
    tip = -1
    last_counted = 0
    previous = 0
    for e in entries:
        if e.seq <= previous:
            raise InvalidInput(f"entries must come in journal order: {e.seq} after {previous}")
        previous = e.seq
        place = Place(e.date, e.block_height if e.block_height is not None else tip)
        if e.block_height is not None:
            tip = max(tip, e.block_height)
        if not e.postings:
            continue
        splits = _splits(e, postings_of)
        if not splits:
            continue
        if not place.at_or_after(start):
            for s in splits:
                opening[s.vault] += signed_effect(s)
            last_counted = e.seq
            continue
        if not place.at_or_before(end):
            continue
        last_counted = e.seq
        in_period.append(e.seq)
        if e.reverses_seq is not None:
            reversals.append((e.seq, e.reverses_seq))
        for s in splits:
            opening[s.vault] += 0
            closing[s.vault] += signed_effect(s)
            lines.append(
                Line(
                    seq=e.seq,
                    vault=s.vault,
                    nature=s.nature,
                    account=s.account,
                    amount=s.amount,
                    kind=e.kind,
                    date=e.date,
                    txid=e.txid,
                    block_height=e.block_height,
                    reverses=e.reverses_seq,
                    reversed_by=reversed_by.get(e.seq),
                )
            )
            if s.nature is Nature.TRANSFER_OUT:
                transfers.append(Transfer(e.seq, s.vault, s.account, s.amount, e.txid, e.reverses_seq))
    names = sorted(opening)
    sections = tuple(
        _section(v, False, opening[v], [x for x in lines if x.vault == v], opening[v] + closing[v])
        for v in names
    )
    total = _section(
        TOTAL,
        True,
        sum(opening.values()),
        lines,
        sum(opening.values()) + sum(closing.values()),
    )
    return Statement(
        start=start,
        end=end,
        vaults=sections,
        total=total,
        transfers=tuple(transfers),
        lines=tuple(lines),
        entries=tuple(in_period),
        reversals=tuple(reversals),
        last_entry=last_counted,
        journal_size=previous,
        checkpoint=covering_checkpoint(checkpoints, last_counted),
    )


def _splits(e: Entry, postings_of: Mapping[int, tuple[Posting, ...]]) -> tuple[Split, ...]:
    """An entry's splits; a reversal's are those of the entry it reverses, negated."""
    if e.kind == EntryKind.REVERSAL and e.reverses_seq is not None:
        original = postings_of.get(e.reverses_seq)
        negated = tuple(Posting(p.account, -p.amount, p.account_type) for p in e.postings)
        if original is not None and [(p.account, p.amount) for p in original] != [
            (p.account, p.amount) for p in negated
        ]:
            raise InvalidInput(
                f"entry {e.seq} does not post the exact opposite of entry {e.reverses_seq}; "
                "run `reserve ledger verify`"
            )
        return tuple(Split(s.vault, s.nature, s.account, -s.amount) for s in entry_lines(negated))
    return entry_lines(e.postings)


def covering_checkpoint(checkpoints: Sequence[CheckpointRef], last_entry: int) -> CheckpointRef | None:
    """The latest checkpoint whose tree holds entry ``last_entry`` (None if none does yet)."""
    covering = [c for c in checkpoints if c.tree_size >= last_entry and c.tree_size > 0]
    return max(covering, key=lambda c: (c.tree_size, c.timestamp), default=None)


# --- renderings: JSON and CSV (the table is drawn from summary_rows too) ----------------------------

SECTION_GROUPS = ("additions", "dispositions", "fees", "transfers_in", "transfers_out")


@dataclass(frozen=True, slots=True)
class SummaryRow:
    """One row of the statement's summary, as the table and the CSV show it."""

    section: str
    item: str  # opening | a Nature | closing
    account: str
    amount: int
    entries: tuple[int, ...] = ()
    txids: tuple[str, ...] = ()


def summary_rows(st: Statement) -> tuple[SummaryRow, ...]:
    """Every figure of the statement, section by section (vaults by name, then the total)."""
    rows: list[SummaryRow] = []
    for sec in (*st.vaults, st.total):
        rows.append(SummaryRow(sec.name, "opening", "", sec.opening))
        for group in SECTION_GROUPS:
            for sub in getattr(sec, group):
                rows.append(
                    SummaryRow(sec.name, str(sub.nature), sub.account, sub.amount, sub.entries, sub.txids)
                )
        rows.append(SummaryRow(sec.name, "closing", "", sec.closing))
    return tuple(rows)


CSV_COLUMNS = ("section", "item", "account", "amount_sat", "amount_btc", "entries", "txids")


def csv_rows(st: Statement) -> list[list[str]]:
    """The CSV: a header, then one row per summary figure (total section named ``total``)."""
    out = [list(CSV_COLUMNS)]
    for r in summary_rows(st):
        out.append(
            [
                r.section,
                r.item,
                r.account,
                str(r.amount),
                format_btc(r.amount),
                " ".join(str(s) for s in r.entries),
                " ".join(r.txids),
            ]
        )
    return out


def _subtotal_json(s: Subtotal) -> dict[str, Any]:
    return {
        "nature": str(s.nature),
        "account": s.account,
        "amount_sat": s.amount,
        "amount_btc": format_btc(s.amount),
        "entries": list(s.entries),
        "txids": list(s.txids),
    }


def _section_json(sec: Section) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": sec.name,
        "opening_sat": sec.opening,
        "closing_sat": sec.closing,
        "opening_btc": format_btc(sec.opening),
        "closing_btc": format_btc(sec.closing),
        "additions_sat": sec.total("additions"),
        "dispositions_sat": sec.total("dispositions"),
        "fees_sat": sec.total("fees"),
        "additions": [_subtotal_json(s) for s in sec.additions],
        "dispositions": [_subtotal_json(s) for s in sec.dispositions],
        "fees": [_subtotal_json(s) for s in sec.fees],
    }
    if not sec.is_total:
        out["transfers_in_sat"] = sec.total("transfers_in")
        out["transfers_out_sat"] = sec.total("transfers_out")
        out["transfers_in"] = [_subtotal_json(s) for s in sec.transfers_in]
        out["transfers_out"] = [_subtotal_json(s) for s in sec.transfers_out]
    return out


def _checkpoint_json(cp: CheckpointRef) -> dict[str, Any]:
    return {"tree_size": cp.tree_size, "root": cp.root.hex(), "timestamp": cp.timestamp, "key_id": cp.key_id}


def statement_json(st: Statement) -> dict[str, Any]:
    """The statement as the ``reserve-ledger-statement/v1`` JSON document (docs/statement.md)."""
    cp = st.checkpoint
    return {
        "schema": SCHEMA,
        "period": {"from": st.start.to_json(), "to": st.end.to_json(), "inclusive": True},
        "journal_size": st.journal_size,
        "last_entry": st.last_entry,
        "checkpoint": None
        if cp is None
        else {
            "tree_size": cp.tree_size,
            "root": cp.root.hex(),
            "timestamp": cp.timestamp,
            "key_id": cp.key_id,
        },
        "entries": list(st.entries),
        "reversals": [{"entry": r, "reverses": o} for r, o in st.reversals],
        "vaults": [_section_json(s) for s in st.vaults],
        "total": _section_json(st.total),
        "transfers": [
            {
                "entry": t.seq,
                "from": t.source,
                "to": t.target,
                "amount_sat": t.amount,
                "amount_btc": format_btc(t.amount),
                "txid": t.txid,
                "reverses": t.reverses,
            }
            for t in st.transfers
        ],
        "lines": [
            {
                "entry": x.seq,
                "vault": x.vault,
                "nature": str(x.nature),
                "account": x.account,
                "amount_sat": x.amount,
                "amount_btc": format_btc(x.amount),
                "kind": x.kind,
                "date": x.date.isoformat(),
                "txid": x.txid,
                "block_height": x.block_height,
                "reverses": x.reverses,
                "reversed_by": x.reversed_by,
            }
            for x in st.lines
        ],
    }


# --- the edge: one read of the database -------------------------------------------------------------


def read_statement(
    session: Session, start: Bound, end: Bound, public_key_pem: bytes
) -> tuple[Statement, JournalCheck]:
    """The statement from the journal in ``session`` (every entry, the vault accounts and the stored
    checkpoints, read in the caller's transaction), computed by :func:`build_statement`, and the
    check of what it read: every entry against its leaf hash, the tree against the latest tree head
    the ledger key (``public_key_pem``, or a key rotated to) signed (its ``findings``)."""
    from sqlalchemy import select

    from ledger.journal.heads import JournalCheck
    from ledger.journal.proofs import list_checkpoints
    from ledger.store.models import AccountRow

    check_period(start, end)
    vault_names = session.scalars(select(AccountRow.name).where(AccountRow.type == AccountType.VAULT)).all()
    checkpoints = [
        CheckpointRef(c.tree_size, c.root, c.timestamp, c.key_id) for c in list_checkpoints(session)
    ]
    check = JournalCheck(session, public_key_pem)
    st = build_statement(check.entries(), start, end, vaults=tuple(vault_names), checkpoints=checkpoints)
    return st, check
