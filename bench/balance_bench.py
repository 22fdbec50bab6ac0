"""``reserve balance``: the verified figure at 1,000 and at 1,000,000 entries, and today's SQL sum.

The verified figure (:func:`ledger.journal.balances.verified_balance`) starts from the latest tree
head signed by the ledger key, whose signed body carries every account's balance, and checks the
entries after it against their leaf hashes: its cost should not grow with the journal. Measured
in the same run:

- ``verified_balance`` at N small and N large (ratio large/small: goal <= 1.2);
- the whole command, ``reserve balance --json`` in-process (engine, readiness check, key file,
  output), at both sizes;
- the unverified baseline: :func:`ledger.journal.balances.balance`, the SQL ``SUM`` over every
  posting that ``reserve balance`` ran before tree heads (ratio verified/SUM at N large).

The journals are written in bulk: raw inserts of entries with correctly computed leaf hashes (the
canonical bytes of ``docs/ledger-format.md``) and their postings, then one signed head covering
them all, as the service's last write transaction would leave it (1,000,000 CLI calls would take
hours and measure nothing more).

    .venv/bin/python -m bench.balance_bench [--small 1000] [--large 1000000] [--runs 15]
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import hashlib
import io
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from sqlalchemy.orm import Session

from ledger.journal.balances import balance, verified_balance
from ledger.journal.canonical import encode_entry_fields
from ledger.journal.checkpoint import create_signing_key, public_key_pem
from ledger.journal.heads import add_postings, sign_head, store_head
from ledger.journal.merkle import MerkleAccumulator, leaf_hash
from ledger.store.db import make_engine
from ledger.store.migrate import upgrade

ACCOUNTS = (("vault-a", "vault"), ("vault-b", "vault"), ("outside", "counterparty"))
BATCH = 20_000


def build(path: Path, key_path: Path, n: int) -> None:
    """A journal of ``n`` deposits into two vaults, bulk-inserted, sealed by one signed head."""
    key = create_signing_key(key_path)
    engine = make_engine(f"sqlite:///{path}")
    upgrade(engine)
    acc = MerkleAccumulator()
    totals: dict[str, tuple[str, int]] = {}
    day = dt.date(2026, 1, 1)
    with engine.begin() as c:
        c.exec_driver_sql(
            "INSERT INTO accounts (id, name, type) VALUES (?, ?, ?)",
            [(i + 1, name, kind) for i, (name, kind) in enumerate(ACCOUNTS)],
        )
    for lo in range(1, n + 1, BATCH):
        entries, postings = [], []
        for seq in range(lo, min(lo + BATCH, n + 1)):
            vault, vault_id = ("vault-a", 1) if seq % 2 else ("vault-b", 2)
            legs = ((vault, "vault", 1000 + seq % 97), ("outside", "counterparty", -(1000 + seq % 97)))
            data = encode_entry_fields(
                seq=seq,
                kind="deposit",
                date=day,
                memo=f"deposit {seq}",
                ref=None,
                reverses_seq=None,
                txid=None,
                outputs=None,
                block_hash=None,
                block_height=None,
                postings=legs,
            )
            h = leaf_hash(data)
            acc.append(h)
            add_postings(totals, legs)
            content = hashlib.sha256(data).digest()  # the idempotency hash: these entries have no ref
            entries.append((seq, "deposit", day.isoformat(), f"deposit {seq}", content, h))
            postings += [(seq, 0, vault_id, legs[0][2]), (seq, 1, 3, legs[1][2])]
        with engine.begin() as c:
            c.exec_driver_sql(
                "INSERT INTO entries (seq, kind, date, memo, content_hash, leaf_hash) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                entries,
            )
            c.exec_driver_sql(
                "INSERT INTO postings (entry_seq, idx, account_id, amount) VALUES (?, ?, ?, ?)", postings
            )
    with Session(engine) as s, s.begin():
        store_head(s, sign_head(key, acc, totals, int(time.time())))
    engine.dispose()


def medians(fns: dict[str, Callable[[], object]], runs: int) -> dict[str, float]:
    """Median seconds of each function, run in turns (so every one sees the same machine: the
    host is shared) after one warm-up run each (page cache, imports, compiled statements)."""
    times: dict[str, list[float]] = {name: [] for name in fns}
    for fn in fns.values():
        fn()
    for _ in range(runs):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return {name: statistics.median(t) for name, t in times.items()}


def timed(path: Path, key_path: Path, figures: list[int]) -> dict[str, Callable[[], object]]:
    """The three ways to get the figure of one journal: verified, SQL sum, the whole command."""
    from cryptography.hazmat.primitives.serialization import load_pem_private_key

    from ledger.cli.main import main

    key = load_pem_private_key(key_path.read_bytes(), password=None)
    pem = public_key_pem(key)  # type: ignore[arg-type]
    engine = make_engine(f"sqlite:///{path}")

    def verified() -> None:
        with Session(engine) as s, s.begin():
            v = verified_balance(s, pem)
        assert v.ok, v.findings
        figures.append(v.balances.reserve)

    def summed() -> None:
        with Session(engine) as s, s.begin():
            figures.append(balance(s).reserve)

    def command() -> None:
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = main(["--db", str(path), "--signing-key", str(key_path), "balance", "--json"])
        assert code == 0, out.getvalue()

    return {"verified": verified, "sum": summed, "command": command}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--small", type=int, default=1_000)
    ap.add_argument("--large", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=15)
    args = ap.parse_args()
    fns: dict[str, Callable[[], object]] = {}
    figures: dict[int, list[int]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for n in (args.small, args.large):
            path, key_path = Path(tmp) / f"j{n}.db", Path(tmp) / f"k{n}.key"
            t0 = time.perf_counter()
            build(path, key_path, n)
            print(f"built {n:,} entries and their signed head in {time.perf_counter() - t0:.1f} s")
            figures[n] = []
            fns.update({f"{name} {n}": fn for name, fn in timed(path, key_path, figures[n]).items()})
        m = medians(fns, args.runs)
    for n, seen in figures.items():
        assert len(set(seen)) == 1, f"at {n:,} the verified figure and the SQL sum differ: {set(seen)}"
    reserve = figures[args.large][0]
    v_s, sum_s, cmd_s = (m[f"{name} {args.small}"] for name in ("verified", "sum", "command"))
    v_l, sum_l, cmd_l = (m[f"{name} {args.large}"] for name in ("verified", "sum", "command"))
    print(f"reserve balance, median of {args.runs} runs (reserve figure at {args.large:,}: {reserve} sat)")
    print(f"  verified_balance at {args.small:>9,}: {v_s * 1e3:9.2f} ms")
    print(f"  verified_balance at {args.large:>9,}: {v_l * 1e3:9.2f} ms")
    print(f"  ratio large/small:               {v_l / v_s:9.2f}  (goal <= 1.2)")
    print(f"  whole command at {args.small:>12,}: {cmd_s * 1e3:9.2f} ms")
    print(f"  whole command at {args.large:>12,}: {cmd_l * 1e3:9.2f} ms  (ratio {cmd_l / cmd_s:.2f})")
    print(f"  unverified SQL sum at {args.small:>7,}: {sum_s * 1e3:9.2f} ms")
    print(f"  unverified SQL sum at {args.large:>7,}: {sum_l * 1e3:9.2f} ms  (ratio {sum_l / sum_s:.1f})")
    print(f"  ratio SQL sum/verified at {args.large:,}: {sum_l / v_l:9.1f}  (the verified figure is faster)")


if __name__ == "__main__":
    main()
