"""Journal entries as values: what a caller asks to record and what the journal holds.

Pure: no I/O. Every rule of double entry lives here and is checked when a value is built, so a
value that exists is a valid one:

- a money entry (``ENTRY_KINDS``) has at least two postings, none of them zero, each at most
  21,000,000 BTC in size, summing to zero;
- a record (``RECORD_KINDS``, :mod:`ledger.journal.records`) has no postings, no txid or block fields, no
  ref and is never reversed; its memo is a canonical JSON object;
- a known ``kind``; a reversal names the entry it reverses and nothing else does;
- optional fields are well formed (txid and block hash: 64 hex digits; outputs: "0" or "0,2");
- a draft's text (memo, ref) holds no control character (C0, DEL, C1, line and paragraph
  separators, bidirectional overrides and isolates): it is printed to terminals and reports.

Amounts are ``int`` satoshis. Sign convention: a positive amount increases the account's balance
(a vault receiving coins gets ``+``), the other side of the movement gets the matching ``-``.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
import re
from dataclasses import dataclass
from enum import StrEnum

from custody.amount import MAX_MONEY, format_btc
from ledger.errors import InvalidInput


class AccountType(StrEnum):
    VAULT = "vault"  # the reserve is the total of every vault-type account
    CUSTODIAN = "custodian"
    COUNTERPARTY = "counterparty"
    INCOME = "income"
    EXPENSE = "expense"
    EQUITY = "equity"


class EntryKind(StrEnum):
    """Kinds of money entries (with postings)."""

    OPENING = "opening"
    DEPOSIT = "deposit"
    WITHDRAWAL = "withdrawal"
    TRANSFER = "transfer"
    FEE = "fee"
    MINING = "mining"
    ADJUSTMENT = "adjustment"
    REVERSAL = "reversal"  # written only by ``reserve reverse``


class RecordKind(StrEnum):
    """Kinds of log records (:mod:`ledger.journal.records`): entries with no postings."""

    VAULT_ADDED = "vault-added"
    VAULT_RETIRED = "vault-retired"
    AUDIT = "audit"
    ADDRESSES_ISSUED = "addresses-issued"
    KEY_ROTATED = "key-rotated"
    POLICY_CHANGED = "policy-changed"  # a vault's spending policy or allowlist changed
    SPEND = "spend"  # a spend proposal changed state (proposed, signed, broadcast, ...)
    ATTESTATION = "attestation"  # an attestation document was issued
    CHANGE_PROPOSED = "change-proposed"  # a governed change awaits its vault's holders' approval
    APPROVAL = "approval"  # a holder's verified signature approving a governed change
    CHANGE_APPLIED = "change-applied"  # a governed change took effect (or a destination was removed)


# The same values as plain strings, in declaration order (messages, CHECK constraints, CLI choices).
ACCOUNT_TYPES: tuple[str, ...] = tuple(t.value for t in AccountType)
ENTRY_KINDS: tuple[str, ...] = tuple(k.value for k in EntryKind)
RECORD_KINDS: tuple[str, ...] = tuple(k.value for k in RecordKind)
ALL_KINDS = ENTRY_KINDS + RECORD_KINDS
RESERVE_ACCOUNT_TYPE = AccountType.VAULT

MAX_MEMO = 2000
MAX_RECORD_MEMO = 100_000
MAX_REF = 200
MAX_POSTINGS = 1000
_ACCOUNT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:/-]{0,99}$")
_HEX32_RE = re.compile(r"^[0-9a-f]{64}$")
_OUTPUTS_RE = re.compile(r"^(0|[1-9][0-9]{0,5})(,(0|[1-9][0-9]{0,5}))*$")
_U64 = 2**64
_CONTROL_RE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


@functools.lru_cache(maxsize=4096)
def _valid_account_name(name: str) -> bool:
    return _ACCOUNT_RE.match(name) is not None


def check_account_name(name: str) -> str:
    """Return ``name`` if it can name an account, else raise :class:`InvalidInput`."""
    if not isinstance(name, str) or not _valid_account_name(name):
        raise InvalidInput(
            f"account name {name!r} is invalid: use 1-100 letters, digits and _ . : / - "
            "(starting with a letter or digit), e.g. vault:cold or fees"
        )
    return name


def check_text(value: str, what: str) -> str:
    """Return ``value`` if it holds no control character, else raise :class:`InvalidInput`
    naming the first one by code point (text is printed to terminals, logs and reports)."""
    found = _CONTROL_RE.search(value)
    if found is not None:
        char = found.group()
        raise InvalidInput(
            f"{what} contains the control character U+{ord(char):04X} at position {found.start()}; "
            "remove it (tabs, line breaks, escape sequences and bidirectional overrides are not "
            "allowed in text that is printed)"
        )
    return value


def check_account_type(account_type: str) -> str:
    if account_type not in ACCOUNT_TYPES:
        raise InvalidInput(f"account type {account_type!r} is unknown; use one of {', '.join(ACCOUNT_TYPES)}")
    return account_type


def _check_seq(value: int, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value < _U64:
        raise InvalidInput(f"{what} must be an entry number from 1, got {value!r}")


@dataclass(frozen=True, slots=True)
class Posting:
    """One leg of an entry: ``amount`` satoshis into (``+``) or out of (``-``) ``account``.

    ``account_type`` is filled in by the journal when the entry is stored (it is part of the
    entry's canonical bytes); drafts leave it ``None``.
    """

    account: str
    amount: int
    account_type: str | None = None

    def __post_init__(self) -> None:
        check_account_name(self.account)
        if isinstance(self.amount, bool) or not isinstance(self.amount, int):
            raise InvalidInput(
                f"posting to {self.account}: amount must be integer satoshis, got {self.amount!r}"
            )
        if self.amount == 0:
            raise InvalidInput(f"posting to {self.account} has a zero amount; leave it out")
        if abs(self.amount) > MAX_MONEY:
            raise InvalidInput(
                f"posting to {self.account} of {format_btc(self.amount)} BTC is beyond the "
                "21,000,000 BTC supply cap"
            )
        if self.account_type is not None:
            check_account_type(self.account_type)


def _check_body(
    kind: str,
    memo: str,
    postings: tuple[Posting, ...],
    ref: str | None,
    reverses_seq: int | None,
    txid: str | None,
    outputs: str | None,
    block_hash: str | None,
    block_height: int | None,
) -> None:
    """The rules shared by drafts and stored entries."""
    if kind not in ALL_KINDS:
        raise InvalidInput(f"entry kind {kind!r} is unknown; use one of {', '.join(ENTRY_KINDS)}")
    if not isinstance(memo, str) or not memo.strip():
        raise InvalidInput("memo is empty; say what happened (e.g. --memo 'deposit from Acme')")
    if not isinstance(postings, tuple) or not all(isinstance(p, Posting) for p in postings):
        raise InvalidInput(f"postings must be a tuple of Posting, got {postings!r}")
    if kind in RECORD_KINDS:
        _check_record(kind, memo, postings, ref, reverses_seq, txid, outputs, block_hash, block_height)
        return
    if len(memo) > MAX_MEMO:
        raise InvalidInput(f"memo is {len(memo)} characters long; at most {MAX_MEMO} are allowed")
    if len(postings) < 2:
        raise InvalidInput(
            f"an entry needs at least two postings (money comes from somewhere), got {len(postings)}"
        )
    if len(postings) > MAX_POSTINGS:
        raise InvalidInput(f"an entry may have at most {MAX_POSTINGS} postings, got {len(postings)}")
    total = sum(p.amount for p in postings)
    if total != 0:
        legs = ", ".join(f"{p.account}={format_btc(p.amount)}" for p in postings)
        raise InvalidInput(
            f"postings do not balance: they sum to {format_btc(total)} BTC, not zero ({legs}); "
            "every entry must move as much into accounts as out of them"
        )
    if ref is not None and (not isinstance(ref, str) or not ref.strip() or len(ref) > MAX_REF):
        raise InvalidInput(f"ref {ref!r} must be non-empty text of at most {MAX_REF} characters")
    if (kind == "reversal") != (reverses_seq is not None):
        raise InvalidInput(
            "a reversal must name the entry it reverses and only a reversal may; "
            "use `reserve reverse SEQ` to reverse an entry"
        )
    if reverses_seq is not None:
        _check_seq(reverses_seq, "the reversed entry")
    for name, value in (("txid", txid), ("block hash", block_hash)):
        if value is not None and (not isinstance(value, str) or not _HEX32_RE.match(value)):
            raise InvalidInput(f"{name} {value!r} must be 64 lowercase hex digits")
    if outputs is not None and (not isinstance(outputs, str) or not _OUTPUTS_RE.match(outputs)):
        raise InvalidInput(f"outputs {outputs!r} must be output indexes separated by commas, e.g. 0,2")
    if outputs is not None and txid is None:
        raise InvalidInput("outputs were given without a txid; pass the transaction's txid too")
    if block_height is not None and (
        isinstance(block_height, bool) or not isinstance(block_height, int) or not 0 <= block_height < 2**32
    ):
        raise InvalidInput(f"block height {block_height!r} must be a non-negative integer")
    if (block_hash is None) != (block_height is None):
        raise InvalidInput("block hash and block height go together: give both or neither")


def _check_record(
    kind: str,
    memo: str,
    postings: tuple[Posting, ...],
    ref: str | None,
    reverses_seq: int | None,
    txid: str | None,
    outputs: str | None,
    block_hash: str | None,
    block_height: int | None,
) -> None:
    """A record: no postings, no chain or reversal fields, a canonical JSON object as memo."""
    if postings:
        raise InvalidInput(f"a {kind} record has no postings, got {len(postings)}")
    extra = {
        "ref": ref,
        "reverses_seq": reverses_seq,
        "txid": txid,
        "outputs": outputs,
        "block_hash": block_hash,
        "block_height": block_height,
    }
    given = [name for name, value in extra.items() if value is not None]
    if given:
        raise InvalidInput(f"a {kind} record takes none of {', '.join(given)}; its body is its memo")
    if len(memo) > MAX_RECORD_MEMO:
        raise InvalidInput(f"a {kind} record is {len(memo)} characters long; at most {MAX_RECORD_MEMO}")
    try:
        body = json.loads(memo)
    except ValueError as exc:
        raise InvalidInput(f"a {kind} record's memo is not JSON: {exc}") from exc
    if not isinstance(body, dict) or memo != json.dumps(body, sort_keys=True, separators=(",", ":")):
        raise InvalidInput(
            f"a {kind} record's memo must be a JSON object in canonical form "
            "(sorted keys, compact separators, ASCII)"
        )


@dataclass(frozen=True, slots=True)
class EntryDraft:
    """What a caller asks the journal to record. ``date`` ``None`` means "today" (UTC).

    ``ref`` is an idempotency key: recording the same draft with the same ref again returns the
    entry recorded the first time.
    """

    kind: str
    memo: str
    postings: tuple[Posting, ...]
    date: dt.date | None = None
    ref: str | None = None
    reverses_seq: int | None = None
    txid: str | None = None
    outputs: str | None = None
    block_hash: str | None = None
    block_height: int | None = None

    def __post_init__(self) -> None:
        if self.date is not None and (
            not isinstance(self.date, dt.date) or isinstance(self.date, dt.datetime)
        ):
            raise InvalidInput(f"date must be a date, got {self.date!r}")
        if isinstance(self.memo, str):
            check_text(self.memo, "memo")
        if isinstance(self.ref, str):
            check_text(self.ref, "ref")
        _check_body(
            self.kind,
            self.memo,
            self.postings,
            self.ref,
            self.reverses_seq,
            self.txid,
            self.outputs,
            self.block_hash,
            self.block_height,
        )


@dataclass(frozen=True, slots=True)
class Entry:
    """An entry as the journal holds it: numbered from 1 (``seq`` = leaf index + 1), with every
    posting's account type and the leaf hash of its canonical bytes (:mod:`ledger.journal.canonical`)."""

    seq: int
    kind: str
    date: dt.date
    memo: str
    postings: tuple[Posting, ...]
    leaf_hash: bytes
    ref: str | None = None
    reverses_seq: int | None = None
    txid: str | None = None
    outputs: str | None = None
    block_hash: str | None = None
    block_height: int | None = None

    def __post_init__(self) -> None:
        _check_seq(self.seq, "entry seq")
        if not isinstance(self.date, dt.date) or isinstance(self.date, dt.datetime):
            raise InvalidInput(f"entry {self.seq}: date must be a date, got {self.date!r}")
        _check_body(
            self.kind,
            self.memo,
            self.postings,
            self.ref,
            self.reverses_seq,
            self.txid,
            self.outputs,
            self.block_hash,
            self.block_height,
        )
        if any(p.account_type is None for p in self.postings):
            raise InvalidInput(f"entry {self.seq}: every stored posting needs its account type")
        if self.reverses_seq is not None and self.reverses_seq >= self.seq:
            raise InvalidInput(f"entry {self.seq} cannot reverse a later entry {self.reverses_seq}")
        if not isinstance(self.leaf_hash, bytes) or len(self.leaf_hash) != 32:
            raise InvalidInput(f"entry {self.seq}: leaf hash must be 32 bytes, got {self.leaf_hash!r}")

    @classmethod
    def from_draft(
        cls,
        draft: EntryDraft,
        *,
        seq: int,
        date: dt.date,
        account_types: list[str],
        leaf_hash: bytes,
    ) -> Entry:
        """The stored form of an already validated ``draft``: only what is new (seq, date,
        account types, leaf hash) is checked again, the draft's own rules held when it was built."""
        _check_seq(seq, "entry seq")
        if len(account_types) != len(draft.postings):
            raise InvalidInput(f"entry {seq}: one account type per posting is needed")
        postings = []
        for p, t in zip(draft.postings, account_types, strict=True):
            check_account_type(t)
            posting = object.__new__(Posting)
            object.__setattr__(posting, "account", p.account)
            object.__setattr__(posting, "amount", p.amount)
            object.__setattr__(posting, "account_type", t)
            postings.append(posting)
        if not isinstance(leaf_hash, bytes) or len(leaf_hash) != 32:
            raise InvalidInput(f"entry {seq}: leaf hash must be 32 bytes, got {leaf_hash!r}")
        if draft.reverses_seq is not None and draft.reverses_seq >= seq:
            raise InvalidInput(f"entry {seq} cannot reverse a later entry {draft.reverses_seq}")
        entry = object.__new__(cls)
        values = {
            "seq": seq,
            "kind": draft.kind,
            "date": date,
            "memo": draft.memo,
            "postings": tuple(postings),
            "leaf_hash": leaf_hash,
            "ref": draft.ref,
            "reverses_seq": draft.reverses_seq,
            "txid": draft.txid,
            "outputs": draft.outputs,
            "block_hash": draft.block_hash,
            "block_height": draft.block_height,
        }
        for name, value in values.items():
            object.__setattr__(entry, name, value)
        return entry


def reversal_postings(postings: tuple[Posting, ...]) -> tuple[Posting, ...]:
    """The postings that undo ``postings`` exactly: same accounts, same order, negated amounts."""
    return tuple(Posting(p.account, -p.amount) for p in postings)
