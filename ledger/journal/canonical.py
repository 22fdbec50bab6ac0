"""Canonical bytes of a journal entry: what each Merkle leaf commits to.

An auditor can rebuild these bytes from the entry's fields with nothing but this description,
and hash them with ``hashlib.sha256(b"\\x00" + entry_bytes)`` to get the entry's leaf hash
(RFC 6962 leaf hash, :func:`ledger.journal.merkle.leaf_hash`). ``docs/ledger-format.md`` repeats this
with a worked example (checked by ``tests/unit/test_canonical.py``).

Building blocks (all integers big-endian, unsigned unless said):

- ``u8``, ``u32``, ``u64``: 1, 4 and 8 byte unsigned integers;
- ``i64``: 8 byte two's complement signed integer;
- ``str``: ``u32`` length in bytes, then that many bytes of UTF-8 (no terminator, no
  normalisation: the text exactly as stored);
- ``opt(X)``: one ``u8`` presence byte, ``0x00`` (absent, nothing follows) or ``0x01``
  (present, ``X`` follows);
- ``hash32``: 32 raw bytes, the 64 hex digits of a txid or block hash decoded in the order they
  are written (the order ``bitcoind`` prints them).

Entry (version 1), fields in this order::

    magic         4 bytes  52 4c 45 01   ("RLE" + format version 1)
    seq           u64      entry number, from 1 (= leaf index + 1)
    kind          str      opening|deposit|withdrawal|transfer|fee|mining|adjustment|reversal,
                           or (format 1.1) a log record kind: vault-added|vault-retired|audit|
                           addresses-issued|key-rotated (no postings; the memo is the record's
                           body as canonical JSON, see docs/ledger-format.md)
    date          str      ISO 8601 calendar date, "YYYY-MM-DD"
    memo          str
    ref           opt(str)      idempotency key given by the caller
    reverses_seq  opt(u64)      entry this one reverses
    txid          opt(hash32)
    outputs       opt(str)      output indexes of txid, ascending as given, e.g. "0,2"
    block_hash    opt(hash32)   block that confirmed txid
    block_height  opt(u32)
    n_postings    u32
    then n_postings times, in posting order:
      account       str   account name
      account_type  str   vault|custodian|counterparty|income|expense|equity
      amount        i64   satoshis, positive into the account, negative out of it

Draft (the idempotency check's ``content_hash = SHA-256(draft bytes)``; never in the tree):
magic ``52 4c 44 01`` ("RLD" + 1), then kind str, date opt(str), memo str, ref opt(str),
reverses_seq opt(u64), txid opt(hash32), outputs opt(str), block_hash opt(hash32), block_height
opt(u32), n_postings u32, then per posting account str and amount i64.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import struct
from collections.abc import Sequence

from ledger.errors import InvalidInput
from ledger.journal.entry import Entry, EntryDraft
from ledger.journal.merkle import leaf_hash

ENTRY_MAGIC = b"RLE\x01"
DRAFT_MAGIC = b"RLD\x01"

_U32 = struct.Struct(">I")
_U64 = struct.Struct(">Q")
_I64 = struct.Struct(">q")


def _str(value: str) -> bytes:
    try:
        data = value.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise InvalidInput(f"text {value!r} is not valid Unicode: {exc.reason}") from exc
    return _U32.pack(len(data)) + data


def _hash32(value: str) -> bytes:
    data = bytes.fromhex(value)
    if len(data) != 32:
        raise InvalidInput(f"{value!r} is not 32 bytes of hex")
    return data


def _absent() -> bytes:
    return b"\x00"


def _present(data: bytes) -> bytes:
    return b"\x01" + data


def _optional_tail(
    ref: str | None,
    reverses_seq: int | None,
    txid: str | None,
    outputs: str | None,
    block_hash: str | None,
    block_height: int | None,
) -> bytes:
    return b"".join(
        (
            _absent() if ref is None else _present(_str(ref)),
            _absent() if reverses_seq is None else _present(_U64.pack(reverses_seq)),
            _absent() if txid is None else _present(_hash32(txid)),
            _absent() if outputs is None else _present(_str(outputs)),
            _absent() if block_hash is None else _present(_hash32(block_hash)),
            _absent() if block_height is None else _present(_U32.pack(block_height)),
        )
    )


def encode_entry_fields(
    *,
    seq: int,
    kind: str,
    date: dt.date,
    memo: str,
    ref: str | None,
    reverses_seq: int | None,
    txid: str | None,
    outputs: str | None,
    block_hash: str | None,
    block_height: int | None,
    postings: Sequence[tuple[str, str, int]],
) -> bytes:
    """The canonical bytes from raw field values, without judging them (the verifier needs the
    bytes of whatever is stored, valid or not). ``postings`` are (account, type, amount).

    Raises :class:`InvalidInput` only when a value cannot be encoded at all (out of range).
    """
    try:
        parts = [
            ENTRY_MAGIC,
            _U64.pack(seq),
            _str(kind),
            _str(date.isoformat()),
            _str(memo),
            _optional_tail(ref, reverses_seq, txid, outputs, block_hash, block_height),
            _U32.pack(len(postings)),
        ]
        for account, account_type, amount in postings:
            parts.append(_str(account))
            parts.append(_str(account_type))
            parts.append(_I64.pack(amount))
    except (struct.error, ValueError, TypeError) as exc:
        if isinstance(exc, InvalidInput):
            raise
        raise InvalidInput(f"entry {seq!r} has a field that cannot be encoded: {exc}") from exc
    return b"".join(parts)


def encode_entry(entry: Entry) -> bytes:
    """The canonical bytes of a stored entry (the data of its Merkle leaf)."""
    return encode_entry_fields(
        seq=entry.seq,
        kind=entry.kind,
        date=entry.date,
        memo=entry.memo,
        ref=entry.ref,
        reverses_seq=entry.reverses_seq,
        txid=entry.txid,
        outputs=entry.outputs,
        block_hash=entry.block_hash,
        block_height=entry.block_height,
        postings=[(p.account, p.account_type or "", p.amount) for p in entry.postings],
    )


def entry_leaf_hash(entry: Entry) -> bytes:
    """``SHA-256(0x00 || encode_entry(entry))``."""
    return leaf_hash(encode_entry(entry))


def encode_draft(draft: EntryDraft) -> bytes:
    """The canonical bytes of a request, for the idempotency check (see the module docstring)."""
    parts = [
        DRAFT_MAGIC,
        _str(draft.kind),
        _absent() if draft.date is None else _present(_str(draft.date.isoformat())),
        _str(draft.memo),
        _optional_tail(
            draft.ref,
            draft.reverses_seq,
            draft.txid,
            draft.outputs,
            draft.block_hash,
            draft.block_height,
        ),
        _U32.pack(len(draft.postings)),
    ]
    for p in draft.postings:
        parts.append(_str(p.account))
        parts.append(_I64.pack(p.amount))
    return b"".join(parts)


def content_hash(draft: EntryDraft) -> bytes:
    """``SHA-256(encode_draft(draft))``: equal for equal requests."""
    return hashlib.sha256(encode_draft(draft)).digest()
