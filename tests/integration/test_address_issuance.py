"""Every address handed out is watched: ``reserve vault address`` against a real regtest node,
on SQLite and PostgreSQL.

The issue's case: ``vault address hot --index 1500`` on a vault watched with the default range
(0..999). The wallet now watches past 1500, a deposit there shows up in the wallet and in
``reserve sync``, and the highest index issued is a record of the tamper-evident log (``ledger
verify`` OK, the tree grew by one); asking again records nothing. A node that cannot be reached,
and numbers out of range, change nothing (row counts and Merkle root compared)."""

from __future__ import annotations

import re
import threading
import time

import pytest
from sqlalchemy import Engine, inspect, text
from sqlalchemy.orm import Session

from custody.network import Network
from custody.rpc import RpcClient
from ledger.chain.issuance import issued_ranges, record_issued
from ledger.journal.book import iter_leaf_hashes
from ledger.journal.merkle import root_of
from ledger.journal.records import RecordKind, records
from ledger.store.db import make_engine
from regtest.node import free_port
from tests.fixtures.governance import retire
from tests.fixtures.reserve import HOLDERS, Reserve
from tests.fixtures.reserve import TestVault as ReserveVault
from tests.integration.test_watch_only import wait_for_wallet

R = Network.REGTEST


def book_state(db_url: str) -> tuple[dict[str, int], int, bytes]:
    """Rows in every table, the journal's tree size and Merkle root."""
    engine = make_engine(db_url)
    try:
        tables = [t for t in inspect(engine).get_table_names() if t != "alembic_version"]
        with engine.connect() as c:
            counts = {t: int(c.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()) for t in tables}
        with Session(engine) as s:
            leaves = [h for _, h in iter_leaf_hashes(s)]
        return counts, len(leaves), root_of(leaves)
    finally:
        engine.dispose()


def issuance(db_url: str) -> tuple[dict[str, int], list[dict[str, object]]]:
    engine: Engine = make_engine(db_url)
    try:
        with Session(engine) as s:
            return issued_ranges(s), [r.body for r in records(s, RecordKind.ADDRESSES_ISSUED)]
    finally:
        engine.dispose()


def receive_range_end(rpc: RpcClient, vault: ReserveVault) -> int:
    listed = rpc.wallet(f"reserve-vault-{vault.name}").call("listdescriptors")["descriptors"]
    return min(int(d["range"][1]) for d in listed)


def test_an_address_beyond_the_wallet_range_is_watched_recorded_and_synced(
    reserve: Reserve, rpc: RpcClient
) -> None:
    hot = reserve.add_vault("hot")
    assert receive_range_end(rpc, hot) == 999  # watched with the default range
    _, size_before, _ = book_state(reserve.db_url)

    r = reserve.ok("vault", "address", hot.name, "--index", "1500")
    assert r.out == f"1500\t{hot.address(1500)}\n"
    assert receive_range_end(rpc, hot) >= 1500 + 1000  # both branches, no rescan
    ranges, bodies = issuance(reserve.db_url)
    assert ranges == {hot.name: 1501}
    assert bodies == [{"vault": hot.name, "change": False, "index": 1500}]
    _, size_after, root_after = book_state(reserve.db_url)
    assert size_after == size_before + 1
    assert reserve.run("ledger", "verify").code == 0

    # Asking again, or for an address below the highest one issued, records nothing.
    for args in (["--index", "1500"], ["--index", "3", "--count", "5"], ["--change", "--index", "1500"]):
        reserve.ok("vault", "address", hot.name, *args)
    assert book_state(reserve.db_url)[1:] == (size_after, root_after)

    txid = reserve.node.fund(hot.address(1500), 7_000_000)
    wallet = rpc.wallet(f"reserve-vault-{hot.name}")
    wait_for_wallet(rpc, wallet, [txid])
    assert wallet.call("getbalances")["mine"]["trusted"] * 100_000_000 == 7_000_000
    r = reserve.ok("sync", "--dry-run")
    assert txid in r.out, r.out
    assert "skipped" not in r.out.split(txid)[0].splitlines()[-1]
    assert book_state(reserve.db_url)[1:] == (size_after, root_after)  # a dry run writes nothing
    vaults = {v["name"]: v for v in reserve.ok("vault", "list", "--json").json()}
    assert vaults[hot.name]["addresses_issued"] == 1501
    assert re.search(rf"{re.escape(hot.name)}.*0\.\.1500", reserve.ok("vault", "list").out)
    assert "issued    : indexes 0..1500" in reserve.ok("vault", "show", hot.name).out
    assert reserve.ok("vault", "show", hot.name, "--json").json()["addresses_issued"] == 1501


def test_a_vault_not_watched_yet_records_the_issue_and_watch_imports_that_far(
    reserve: Reserve, rpc: RpcClient
) -> None:
    from tests.integration.test_vault_cli import _key_args, _keys, _name

    name = _name("late")
    keys = _keys()
    reserve.ok("vault", "add", name, "--threshold", "2", *_key_args(keys, HOLDERS))
    r = reserve.ok("vault", "address", name, "--change", "--index", "1500", "--count", "3")
    assert len(r.out.splitlines()) == 3
    assert f"not watched by the node yet; run `reserve vault watch {name}`" in r.err
    assert issuance(reserve.db_url)[0] == {name: 1503}
    assert f"reserve-vault-{name}" not in {w["name"] for w in rpc.call("listwalletdir")["wallets"]}

    watched = reserve.ok("vault", "watch", name, "--json").json()
    assert watched["status"] == "created"
    assert all(b["range_end"] >= 1502 + 1000 for b in watched["branches"])


def test_an_unreachable_node_hands_out_nothing_and_writes_nothing(reserve: Reserve) -> None:
    hot = reserve.add_vault("hot")
    before = book_state(reserve.db_url)
    dead = f"http://127.0.0.1:{free_port()}"
    r = reserve.run("--rpc-url", dead, "vault", "address", hot.name, "--index", "1500")
    assert r.code == 2
    assert r.out == ""  # no address printed
    assert "cannot reach bitcoind" in r.err and "nothing written" in r.err, r.err
    assert "Traceback" not in r.err and len(r.err.strip().splitlines()) == 1
    assert book_state(reserve.db_url) == before


def test_a_retired_vault_hands_out_no_address(reserve: Reserve) -> None:
    old = reserve.add_vault("old")
    retire(reserve, old, "rotated")
    before = book_state(reserve.db_url)
    r = reserve.run("vault", "address", old.name)
    assert r.code == 2 and "is retired" in r.err and r.out == ""
    assert book_state(reserve.db_url) == before


HUGE = "9" * 40
ENORMOUS = "9" * 5000


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--index", HUGE], "is not a whole number"),
        (["--index", ENORMOUS], "is not a whole number"),
        (["--index", "-1"], "not a BIP-32 non-hardened index"),
        (["--index", str(2**31)], "not a BIP-32 non-hardened index"),
        (["--index", "10000"], "go past 9,999"),
        (["--index", "9999", "--count", "2"], "go past 9,999"),
        (["--index", "x1"], "is not a whole number"),
        (["--count", "0"], "give 1 to 1,000 addresses"),
        (["--count", "1001"], "give 1 to 1,000 addresses"),
        (["--count", HUGE], "is not a whole number"),
    ],
    ids=lambda v: v if isinstance(v, str) and len(v) < 30 else None,
)
def test_out_of_range_numbers_exit_2_with_one_line(reserve: Reserve, args: list[str], message: str) -> None:
    hot = reserve.add_vault("hot")
    before = book_state(reserve.db_url)
    r = reserve.run("vault", "address", hot.name, *args)
    assert r.code == 2 and r.out == ""
    assert message in r.err, r.err
    assert len(r.err.strip().splitlines()) == 1 and "Traceback" not in r.err
    assert len(r.err) < 400  # the 5,000-digit input is shortened, not echoed
    assert book_state(reserve.db_url) == before


def test_concurrent_requests_record_an_index_once(engine: Engine) -> None:
    """Two writers issuing the same index: the second waits for the first's lock, then sees its
    record and adds none (PostgreSQL: observed waiting on the advisory lock before the first
    commits)."""
    done = threading.Event()

    def second() -> None:
        with Session(engine) as s, s.begin():
            record_issued(s, "hot", 1500, False)
        done.set()

    with Session(engine) as first, first.begin():
        record_issued(first, "hot", 1500, False)
        worker = threading.Thread(target=second)
        worker.start()
        if engine.dialect.name == "postgresql":
            deadline = time.monotonic() + 30
            waiting = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            with engine.connect() as c:
                while not c.execute(text(waiting)).scalar_one():
                    assert time.monotonic() < deadline, "the second writer never waited for the lock"
                    c.rollback()
        assert not done.is_set()
    worker.join(30)
    assert done.is_set()
    with Session(engine) as s:
        assert [r.body["index"] for r in records(s, RecordKind.ADDRESSES_ISSUED)] == [1500]
        assert issued_ranges(s) == {"hot": 1501}
