"""Journal append and verify speed against baselines measured in the same run.

- append: N two-posting entries in batches of 1,000 through ``journal.append_many`` (SQLite,
  WAL) against plain ``sqlite3`` ``executemany`` inserts of the very same rows into the same
  schema; ratio = baseline time / our time (1.0 = as fast as raw inserts).
- verify: ``verify_ledger`` over the N entries against the least a verifier must do, in plain
  Python: one ``sqlite3`` query reading the same rows (entries joined with their postings and
  accounts), the canonical bytes of each entry (``docs/ledger-format.md``), its RFC 6962 leaf
  hash checked against the stored one, and the RFC 6962 root of them all, asserted equal to
  ``verify_ledger``'s root; ratio = baseline / ours (goal >= 0.6).
- memory: tracemalloc peak of ``verify_ledger`` at N and at 10 x N entries (should be flat).
- sealing: every write transaction ends with a tree head signed by the ledger key
  (:mod:`ledger.journal.heads`; the appends above are sealed, one head per batch). Its cost per
  transaction: ``--single`` transactions of one entry each (what one CLI write is), sealed,
  against the same on an engine without the key (appending as before tree heads);
  ratio = unsealed time / sealed time.
- append on PostgreSQL when RESERVE_TEST_PG_URL is set (a scratch database, dropped after).

    .venv/bin/python -m bench.ledger_bench [--entries 100000] [--batch 1000] [--memory-scale 10]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sqlite3
import struct
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine, create_engine, make_url, text
from sqlalchemy.orm import Session

from ledger.journal.accounts import add_account
from ledger.journal.book import append_many
from ledger.journal.checkpoint import public_key_pem
from ledger.journal.entry import EntryDraft, Posting
from ledger.journal.heads import SEALER, Sealer, sealing
from ledger.journal.verify import verify_ledger
from ledger.settings import normalise_db_url
from ledger.store.db import make_engine
from ledger.store.migrate import upgrade

COLUMNS_E = (
    "seq, kind, date, memo, ref, content_hash, reverses_seq, txid, outputs, "
    "block_hash, block_height, leaf_hash"
)
COLUMNS_P = "entry_seq, idx, account_id, amount"


def drafts(n: int, offset: int = 0) -> list[EntryDraft]:
    return [
        EntryDraft(
            kind="deposit",
            memo=f"deposit {offset + i}",
            postings=(Posting("bank", 1000 + i), Posting("acme", -(1000 + i))),
            ref=f"ref-{offset + i}",
        )
        for i in range(n)
    ]


def fresh(engine: Engine) -> None:
    upgrade(engine)
    with Session(engine) as s, s.begin():
        add_account(s, "bank", "custodian")  # manual entries never post to vault accounts
        add_account(s, "acme", "counterparty")


def append_all(engine: Engine, items: Sequence[EntryDraft], batch: int) -> float:
    t0 = time.perf_counter()
    for i in range(0, len(items), batch):
        with Session(engine) as s, s.begin():
            append_many(s, items[i : i + batch])
    return time.perf_counter() - t0


def baseline_inserts(src: Path, dst: Path, batch: int) -> float:
    """The same rows as ``src`` holds, inserted into ``dst`` with sqlite3 executemany."""
    with sqlite3.connect(src) as c:
        entries = c.execute(f"SELECT {COLUMNS_E} FROM entries ORDER BY seq").fetchall()
        postings = c.execute(f"SELECT {COLUMNS_P} FROM postings ORDER BY entry_seq, idx").fetchall()
    conn = sqlite3.connect(dst, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")
    conn.execute("PRAGMA foreign_keys=ON")
    per = len(postings) // max(len(entries), 1)
    t0 = time.perf_counter()
    for i in range(0, len(entries), batch):
        conn.execute("BEGIN IMMEDIATE")
        conn.executemany(
            f"INSERT INTO entries ({COLUMNS_E}) VALUES ({', '.join('?' * 12)})", entries[i : i + batch]
        )
        conn.executemany(
            f"INSERT INTO postings ({COLUMNS_P}) VALUES (?, ?, ?, ?)", postings[i * per : (i + batch) * per]
        )
        conn.execute("COMMIT")
    elapsed = time.perf_counter() - t0
    conn.close()
    return elapsed


def timed_verify(engine: Engine, pem: bytes, trace: bool = False) -> tuple[float, int, int, bytes]:
    if trace:
        tracemalloc.start()
    t0 = time.perf_counter()
    with Session(engine) as s, s.begin():
        report = verify_ledger(s, pem)
    elapsed = time.perf_counter() - t0
    peak = 0
    if trace:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    assert report.ok, report.findings
    return elapsed, report.entries, peak, report.root


_BASELINE_ROWS = (
    "SELECT e.seq, e.kind, e.date, e.memo, e.ref, e.reverses_seq, e.txid, e.outputs, e.block_hash, "
    "e.block_height, e.leaf_hash, a.name, a.type, p.amount FROM entries e "
    "LEFT JOIN postings p ON p.entry_seq = e.seq LEFT JOIN accounts a ON a.id = p.account_id "
    "ORDER BY e.seq, p.idx"
)


def baseline_verify(path: Path) -> tuple[float, bytes, int]:
    """Read every entry with plain sqlite3, rebuild its canonical bytes, check its leaf hash and
    compute the RFC 6962 root (streaming, O(log n) memory): (seconds, root, entries)."""
    u32, u64, i64 = struct.Struct(">I").pack, struct.Struct(">Q").pack, struct.Struct(">q").pack
    sha256 = hashlib.sha256
    stack: list[bytes] = []  # roots of the perfect subtrees so far, largest first
    size = 0

    def text(value: str) -> bytes:
        data = value.encode()
        return u32(len(data)) + data

    def opt(value: Any, encode: Callable[[Any], bytes]) -> bytes:
        return b"\x00" if value is None else b"\x01" + encode(value)

    def add(head: tuple[Any, ...], postings: list[bytes]) -> None:
        nonlocal size
        seq, kind, date, memo, ref, reverses, txid, outputs, block_hash, height, stored = head
        data = b"".join(
            (b"RLE\x01", u64(seq), text(kind), text(date), text(memo), opt(ref, text), opt(reverses, u64),
             opt(txid, bytes.fromhex), opt(outputs, text), opt(block_hash, bytes.fromhex), opt(height, u32),
             u32(len(postings)), *postings)
        )  # fmt: skip
        h = sha256(b"\x00" + data).digest()
        assert h == stored, f"entry {seq}: leaf hash differs"
        n = size
        while n & 1:
            h = sha256(b"\x01" + stack.pop() + h).digest()
            n >>= 1
        stack.append(h)
        size += 1

    t0 = time.perf_counter()
    conn = sqlite3.connect(path)
    head: tuple[Any, ...] | None = None
    postings: list[bytes] = []
    for row in conn.execute(_BASELINE_ROWS):
        if head is None or row[0] != head[0]:
            if head is not None:
                add(head, postings)
            head, postings = row[:11], []
        if row[13] is not None:
            postings.append(text(row[11]) + text(row[12]) + i64(row[13]))
    if head is not None:
        add(head, postings)
    conn.close()
    root = stack[-1] if stack else sha256(b"").digest()
    for h in reversed(stack[:-1]):
        root = sha256(b"\x01" + h + root).digest()
    return time.perf_counter() - t0, root, size


def single_transactions(tmp: Path, key: Ed25519PrivateKey, k: int) -> None:
    """``k`` transactions of one entry each, sealed with a tree head and not (interleaved, so
    both see the same machine), on journals of the same size."""
    sealed = sealing(make_engine(f"sqlite:///{tmp / 'sealed.db'}"), Sealer(key))
    unsealed = make_engine(f"sqlite:///{tmp / 'unsealed.db'}").execution_options(**{SEALER: None})
    fresh(sealed)
    fresh(unsealed)
    items = drafts(k)
    times = {"sealed": 0.0, "unsealed": 0.0}
    for i in range(k):
        for name, engine in (("sealed", sealed), ("unsealed", unsealed)):
            times[name] += append_all(engine, items[i : i + 1], 1)
    sealed.dispose()
    unsealed.dispose()
    print(f"append {k} entries, one per transaction (a CLI write), SQLite WAL")
    print(f"  with a signed tree head: {times['sealed'] * 1e3 / k:8.2f} ms per transaction")
    print(f"  without (before heads):  {times['unsealed'] * 1e3 / k:8.2f} ms per transaction")
    print(f"  ratio unsealed/sealed:   {times['unsealed'] / times['sealed']:8.2f}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--entries", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--memory-scale", type=int, default=10, help="memory test at N x this too (1: skip)")
    ap.add_argument("--single", type=int, default=500, help="one-entry transactions, sealed and not")
    args = ap.parse_args()
    n, batch = args.entries, args.batch
    key = Ed25519PrivateKey.generate()
    pem = public_key_pem(key)
    with tempfile.TemporaryDirectory() as tmp:
        ours_path, base_path = Path(tmp) / "ours.db", Path(tmp) / "baseline.db"
        ours = sealing(make_engine(f"sqlite:///{ours_path}"), Sealer(key))
        base = make_engine(f"sqlite:///{base_path}")
        fresh(ours)
        fresh(base)
        base.dispose()
        items = drafts(n)
        t_ours = append_all(ours, items, batch)
        t_base = baseline_inserts(ours_path, base_path, batch)
        print(f"append {n} entries, batches of {batch}, SQLite WAL")
        print(f"  append_many:         {t_ours:8.2f} s  ({n / t_ours:,.0f} entries/s)")
        print(f"  sqlite3 executemany: {t_base:8.2f} s  ({n / t_base:,.0f} entries/s)")
        print(f"  ratio baseline/ours: {t_base / t_ours:8.2f}  (goal >= 0.5)")
        single_transactions(Path(tmp), key, args.single)

        t_verify, count, _, root = timed_verify(ours, pem)
        t_plain, plain_root, plain_count = baseline_verify(ours_path)
        assert (plain_root, plain_count) == (root, count), "the plain verifier disagrees with verify_ledger"
        print(f"verify {count} entries (same root {root.hex()[:16]}... both ways)")
        print(f"  verify_ledger:       {t_verify:8.2f} s")
        print(f"  plain sqlite3 + canonical bytes + leaf hashes + root: {t_plain:8.2f} s")
        print(f"  ratio baseline/ours: {t_plain / t_verify:8.2f}  (goal >= 0.6)")
        _, _, peak_n, _ = timed_verify(ours, pem, trace=True)
        print(f"  peak memory (tracemalloc) at {n:,}: {peak_n / 1e6:7.2f} MB")
        if args.memory_scale > 1:
            more = drafts(n * (args.memory_scale - 1), offset=n)
            append_all(ours, more, 10_000)
            del more
            _, count, peak_big, _ = timed_verify(ours, pem, trace=True)
            print(f"  peak memory (tracemalloc) at {count:,}: {peak_big / 1e6:7.2f} MB")
        ours.dispose()

    pg = os.environ.get("RESERVE_TEST_PG_URL")
    if pg:
        admin_url = normalise_db_url(pg)
        name = f"reserve_bench_{uuid.uuid4().hex[:12]}"
        admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(text(f'CREATE DATABASE "{name}"'))
        try:
            url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
            engine = sealing(make_engine(url), Sealer(key))
            fresh(engine)
            t_pg = append_all(engine, drafts(n), batch)
            print(f"append {n} entries, batches of {batch}, PostgreSQL")
            print(f"  append_many:         {t_pg:8.2f} s  ({n / t_pg:,.0f} entries/s)")
            engine.dispose()
        finally:
            with admin.connect() as c:
                c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            admin.dispose()
    else:
        print("PostgreSQL: skipped (set RESERVE_TEST_PG_URL to include it)")


if __name__ == "__main__":
    main()
