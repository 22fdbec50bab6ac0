"""Journal append and verify speed against baselines measured in the same run.

- append: N two-posting entries in batches of 1,000 through ``journal.append_many`` (SQLite,
  WAL) against plain ``sqlite3`` ``executemany`` inserts of the very same rows into the same
  schema; ratio = baseline time / our time (1.0 = as fast as raw inserts).
- verify: ``verify_ledger`` over the N entries against a bare loop of N SHA-256 calls over
  bytes of the same size; ratio = baseline / ours.
- memory: tracemalloc peak of ``verify_ledger`` at N and at 10 x N entries (should be flat).
- append on PostgreSQL when RESERVE_TEST_PG_URL is set (a scratch database, dropped after).

    .venv/bin/python -m bench.ledger_bench [--entries 100000] [--batch 1000] [--memory-scale 10]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sqlite3
import tempfile
import time
import tracemalloc
import uuid
from collections.abc import Sequence
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine, create_engine, make_url, text
from sqlalchemy.orm import Session

from ledger.journal.accounts import add_account
from ledger.journal.book import append_many
from ledger.journal.checkpoint import public_key_pem
from ledger.journal.entry import EntryDraft, Posting
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


def timed_verify(engine: Engine, pem: bytes, trace: bool = False) -> tuple[float, int, int]:
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
    return elapsed, report.entries, peak


def bare_hashes(n: int, size: int) -> float:
    data = [os.urandom(size) for _ in range(1000)]
    t0 = time.perf_counter()
    for i in range(n):
        hashlib.sha256(b"\x00" + data[i % 1000]).digest()
    return time.perf_counter() - t0


def entry_size(engine: Engine) -> int:
    from ledger.journal.book import iter_stored

    with Session(engine) as s, s.begin():
        return len(next(iter_stored(s, page=1)).encode())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--entries", type=int, default=100_000)
    ap.add_argument("--batch", type=int, default=1000)
    ap.add_argument("--memory-scale", type=int, default=10, help="memory test at N x this too (1: skip)")
    args = ap.parse_args()
    n, batch = args.entries, args.batch
    pem = public_key_pem(Ed25519PrivateKey.generate())
    with tempfile.TemporaryDirectory() as tmp:
        ours_path, base_path = Path(tmp) / "ours.db", Path(tmp) / "baseline.db"
        ours = make_engine(f"sqlite:///{ours_path}")
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

        t_verify, count, peak_n = timed_verify(ours, pem)
        t_hash = bare_hashes(n, entry_size(ours))
        print(f"verify {count} entries")
        print(f"  verify_ledger:       {t_verify:8.2f} s")
        print(f"  bare SHA-256 loop:   {t_hash:8.2f} s")
        print(f"  ratio baseline/ours: {t_hash / t_verify:8.3f}")
        _, _, peak_n = timed_verify(ours, pem, trace=True)
        print(f"  peak memory (tracemalloc) at {n:,}: {peak_n / 1e6:7.2f} MB")
        if args.memory_scale > 1:
            more = drafts(n * (args.memory_scale - 1), offset=n)
            append_all(ours, more, 10_000)
            del more
            _, count, peak_big = timed_verify(ours, pem, trace=True)
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
            engine = make_engine(make_url(admin_url).set(database=name).render_as_string(hide_password=False))
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
