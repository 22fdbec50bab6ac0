"""Every entry of the journal for accountants and auditors: CSV (one row per posting) or JSONL
(one line per entry, with the canonical bytes hashed into the Merkle tree).

Pure: stored entries in (:class:`~ledger.journal.book.StoredEntry`, exactly as the database holds
them, not re-validated), text out. The JSONL's ``canonical_hex`` is
:func:`ledger.journal.canonical.encode_entry_fields` of the stored fields and ``leaf_hash`` the stored
leaf hash: an auditor checks ``sha256(b"\\x00" + bytes.fromhex(canonical_hex)) == leaf_hash`` for
every line and folds the leaf hashes into the RFC 6962 root that ``reserve ledger checkpoint``
signed (docs/statement.md has the ten lines of Python). Amounts are integer satoshis, with the
exact BTC string beside them.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable, Iterator
from typing import IO, Any

from custody.amount import format_btc
from ledger.journal.book import StoredEntry

JSONL_FORMAT = "reserve-ledger-entries/v1"
CSV_COLUMNS = (
    "seq",
    "date",
    "kind",
    "memo",
    "ref",
    "reverses_seq",
    "txid",
    "outputs",
    "block_hash",
    "block_height",
    "leaf_hash",
    "posting",
    "account",
    "account_type",
    "amount_sat",
    "amount_btc",
)


def _text(value: object) -> str:
    return "" if value is None else str(value)


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r", "'")


def spreadsheet_text(value: str | None) -> str:
    """Free text (a memo, a ref) for a CSV cell that a spreadsheet must not run: text starting
    with ``= + - @``, a tab or a carriage return gets a leading apostrophe (OWASP's advice against
    CSV injection), and so does text starting with an apostrophe, so that dropping one leading
    apostrophe always gives the stored text back. The JSONL carries the text exactly."""
    text = _text(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def csv_rows(entries: Iterable[StoredEntry]) -> Iterator[list[str]]:
    """The header, then one row per posting with its entry's fields (``posting`` is its index in
    the entry, from 0). A log record (no postings) is one row with the posting columns empty."""
    yield list(CSV_COLUMNS)
    for e in entries:
        head = [
            str(e.seq),
            e.date.isoformat(),
            e.kind,
            spreadsheet_text(e.memo),
            spreadsheet_text(e.ref),
            _text(e.reverses_seq),
            _text(e.txid),
            _text(e.outputs),
            _text(e.block_hash),
            _text(e.block_height),
            bytes(e.leaf_hash).hex(),
        ]
        if not e.postings:
            yield [*head, "", "", "", "", ""]
        for i, (account, account_type, amount) in enumerate(e.postings):
            yield [*head, str(i), account, account_type, str(amount), format_btc(amount)]


def entry_json(e: StoredEntry) -> dict[str, Any]:
    """One JSONL line's object."""
    return {
        "seq": e.seq,
        "kind": e.kind,
        "date": e.date.isoformat(),
        "memo": e.memo,
        "ref": e.ref,
        "reverses_seq": e.reverses_seq,
        "txid": e.txid,
        "outputs": e.outputs,
        "block_hash": e.block_hash,
        "block_height": e.block_height,
        "postings": [
            {"account": a, "type": t, "amount_sat": amt, "amount_btc": format_btc(amt)}
            for a, t, amt in e.postings
        ],
        "canonical_hex": e.encode().hex(),
        "leaf_hash": bytes(e.leaf_hash).hex(),
    }


def write_csv(entries: Iterable[StoredEntry], out: IO[str]) -> int:
    """Write the CSV to ``out``; returns the number of entries written."""
    writer = csv.writer(out, lineterminator="\n")
    count = 0
    last = None
    for row in csv_rows(entries):
        writer.writerow(row)
        if row[0] != last and row[0] != "seq":
            count += 1
            last = row[0]
    return count


def write_jsonl(entries: Iterable[StoredEntry], out: IO[str]) -> int:
    """Write one JSON object per line (ASCII, sorted keys) to ``out``; returns the entry count."""
    count = 0
    for e in entries:
        out.write(json.dumps(entry_json(e), sort_keys=True, separators=(",", ":")) + "\n")
        count += 1
    return count
