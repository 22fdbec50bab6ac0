"""Concurrent writers in separate OS processes, and writers killed mid-transaction.

Sequence numbers stay 1..N with no gap or duplicate, batches are all or nothing, and the books
verify afterwards, on SQLite and PostgreSQL.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import subprocess
import sys
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from ledger.journal.accounts import add_account
from ledger.journal.checkpoint import public_key_pem
from ledger.journal.verify import verify_ledger
from ledger.store.models import EntryRow

REPO = Path(__file__).resolve().parents[2]

# argv: url, name, entries, batch size, key file. Prints "ready", waits for a line on stdin, then
# appends `entries` entries in transactions of `batch` entries (each sealed with a tree head, as
# the CLI does), printing "committed K" after each.
WORKER = """
import sys
from pathlib import Path
from sqlalchemy.orm import Session
from ledger.store.db import make_engine
from ledger.journal.entry import EntryDraft, Posting
from ledger.journal.book import append_many
from ledger.journal.heads import Sealer, sealing

url, name, total, batch = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
engine = sealing(make_engine(url), Sealer(path=Path(sys.argv[5])))
print("ready", flush=True)
sys.stdin.readline()
done = 0
while total < 0 or done < total:
    drafts = [
        EntryDraft(
            kind="deposit",
            memo=f"{name} {done + k}",
            postings=(Posting("bank", done + k + 1), Posting("acme", -(done + k + 1))),
            ref=f"{name}-{done + k}",
        )
        for k in range(batch)
    ]
    with Session(engine) as s, s.begin():
        append_many(s, drafts)
    done += batch
    print(f"committed {done}", flush=True)
"""


def start_worker(url: str, name: str, total: int, batch: int, key: Path) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", WORKER, url, name, str(total), str(batch), str(key)],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    assert line == "ready\n", f"worker {name} did not start: {line!r}"
    return proc


def go(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.write("go\n")
    proc.stdin.flush()


def seqs(engine: Engine) -> list[int]:
    with Session(engine) as s, s.begin():
        return list(s.scalars(select(EntryRow.seq).order_by(EntryRow.seq)))


def accounts(engine: Engine) -> None:
    with Session(engine) as s, s.begin():
        add_account(s, "bank", "custodian")  # manual entries never post to vault accounts
        add_account(s, "acme", "counterparty")


def test_two_processes_append_at_once(
    engine: Engine, db_url: str, signing_key: Ed25519PrivateKey, tmp_path: Path
) -> None:
    accounts(engine)
    workers = [start_worker(db_url, name, 200, 1, tmp_path / "signing.key") for name in ("alice", "bob")]
    for w in workers:
        go(w)
    for w in workers:
        out, _ = w.communicate(timeout=300)
        assert w.returncode == 0 and out.endswith("committed 200\n")
    assert seqs(engine) == list(range(1, 401))
    with Session(engine) as s, s.begin():
        memos = list(s.scalars(select(EntryRow.memo)))
        report = verify_ledger(s, public_key_pem(signing_key))
    assert sum(m.startswith("alice") for m in memos) == 200
    assert sum(m.startswith("bob") for m in memos) == 200
    assert report.ok and report.entries == 400


def test_killed_writer_leaves_whole_batches(
    engine: Engine, db_url: str, signing_key: Ed25519PrivateKey, tmp_path: Path
) -> None:
    batch = 50
    accounts(engine)
    rng = random.Random(6962)
    for round_ in range(20):
        w = start_worker(db_url, f"w{round_}", -1, batch, tmp_path / "signing.key")
        go(w)
        assert w.stdout is not None
        assert w.stdout.readline().startswith("committed")  # it is writing; now kill it mid-way
        with contextlib.suppress(subprocess.TimeoutExpired):
            w.wait(timeout=rng.uniform(0.0, 0.25))
        w.send_signal(signal.SIGKILL)
        w.wait(timeout=60)
        assert w.returncode == -signal.SIGKILL
        w.stdout.close()
        assert w.stdin is not None
        w.stdin.close()
        got = seqs(engine)
        assert len(got) % batch == 0, f"round {round_}: {len(got)} entries is not whole batches"
        assert got == list(range(1, len(got) + 1))
    with Session(engine) as s, s.begin():
        count = s.scalar(select(func.count()).select_from(EntryRow))
        report = verify_ledger(s, public_key_pem(signing_key))
    assert report.ok and report.entries == count and count >= 20 * batch
