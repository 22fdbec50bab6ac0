"""What ``record`` and ``sync`` refuse or leave for later, and that a refusal changes nothing
(row counts and Merkle root before and after). On a node with and one without ``-txindex``,
SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from sqlalchemy import Engine

from custody.amount import btc_decimal
from custody.rpc import RpcClient
from custody.wallet import vault_wallet_name
from regtest.node import RegtestNode
from tests.fixtures.db import snapshot
from tests.fixtures.reserve import Reserve
from tests.integration.test_tx_shapes import entries_of, spend

BTC = 100_000_000


@pytest.fixture
def node(chain_node: RegtestNode) -> RegtestNode:
    return chain_node


@pytest.fixture
def db(reserve: Reserve) -> Iterator[Engine]:
    engine = reserve.engine()
    yield engine
    engine.dispose()


def refused(reserve: Reserve, db: Engine, *argv: str) -> str:
    """Run a command that must be refused (exit 2) and write nothing; return its message."""
    before = snapshot(db)
    r = reserve.run(*argv)
    assert r.code == 2, (argv, r.out, r.err)
    assert snapshot(db) == before, argv
    return r.err


def test_a_vault_is_never_the_counterparty(reserve: Reserve, node: RegtestNode, db: Engine) -> None:
    hot = reserve.add_vault("hot")
    cold = reserve.add_vault("cold")
    t = node.fund(cold.address(), 25_000_000)
    err = refused(reserve, db, "record", "deposit", "--vault", cold.name, "--txid", t, "--from", hot.name)
    assert f"{hot.name!r} is a vault account" in err and "never the counterparty" in err

    outside = str(node.miner().call("getnewaddress"))
    reserve.ok("record", "deposit", "--vault", cold.name, "--txid", t)
    w = spend(node, cold, {outside: 10_000_000})
    node.mine(1)
    err = refused(reserve, db, "record", "withdrawal", "--vault", cold.name, "--txid", w, "--to", hot.name)
    assert "never the counterparty" in err
    assert entries_of(db, w) == 0


def test_a_manual_entry_for_a_recorded_txid_is_refused(
    reserve: Reserve, node: RegtestNode, db: Engine
) -> None:
    vault = reserve.add_vault("manual")
    reserve.ok("account", "add", "acme", "--type", "counterparty")
    reserve.ok("account", "add", "owners", "--type", "equity")
    t = node.fund(vault.address(), 10_000_000)
    reserve.ok("record", "deposit", "--vault", vault.name, "--txid", t, "--from", "acme")
    err = refused(
        reserve,
        db,
        "record",
        "--kind",
        "deposit",
        "--memo",
        "the same deposit again",
        "--txid",
        t,
        "--posting",
        "acme=-0.1",
        "--posting",
        "owners=0.1",
    )
    assert f"transaction {t} is already booked" in err
    assert entries_of(db, t) == 1


def test_unconfirmed_is_pending_and_unknown_says_what_the_node_needs(
    reserve: Reserve, node: RegtestNode, db: Engine
) -> None:
    vault = reserve.add_vault("pending")
    t = node.fund(vault.address(), 2_000_000, confirm=False)
    err = refused(reserve, db, "record", "deposit", "--vault", vault.name, "--txid", t)
    assert "pending in the mempool" in err and "record it after it confirms" in err
    report = reserve.ok("sync", "--json").json()
    assert report["movements"] == [] and report["pending"] == [t]
    assert "1 pending" in reserve.ok("sync").out

    err = refused(reserve, db, "record", "deposit", "--vault", vault.name, "--txid", "ab" * 32)
    assert "not known to the node" in err
    assert ("has -txindex" if node.txindex else "runs without -txindex") in err

    outside = node.fund(str(node.miner().call("getnewaddress")), 1_000_000)
    err = refused(reserve, db, "record", "deposit", "--vault", vault.name, "--txid", outside)
    # with -txindex the node shows it (it pays no vault); without, it cannot find it at all
    assert ("neither pays nor spends" if node.txindex else "without -txindex") in err

    node.mine(1)
    reserve.ok("record", "deposit", "--vault", vault.name, "--txid", t, "--amount", "0.02")


def test_a_replaced_transaction_can_never_confirm(
    reserve: Reserve, node: RegtestNode, db: Engine, new_wallet: Callable[..., RpcClient]
) -> None:
    """Deposits double-spent by a fee bump while their block was off the chain: record says they
    can never confirm (and to reverse the one already booked); sync skips the unbooked one and
    books the replacement."""
    vault = reserve.add_vault("conflict")
    sender = new_wallet()  # a second sender: its deposit does not spend the first one's change
    node.fund(str(sender.call("getnewaddress")), BTC)
    booked = node.fund(vault.address(), 30_000_000)
    reserve.ok("record", "deposit", "--vault", vault.name, "--txid", booked)
    unbooked = str(sender.call("sendtoaddress", vault.address(), btc_decimal(20_000_000)))
    node.mine(1)
    first_block = node.miner().call("gettransaction", booked)["blockhash"]
    node.rpc().call("invalidateblock", first_block)  # both transactions back to the mempool
    replacements = [
        str(node.miner().call("bumpfee", booked)["txid"]),
        str(sender.call("bumpfee", unbooked)["txid"]),
    ]
    node.mine(1)

    err = refused(reserve, db, "record", "deposit", "--vault", vault.name, "--txid", unbooked)
    assert "can never confirm" in err and replacements[1] in err and "wait" not in err
    err = refused(reserve, db, "record", "deposit", "--vault", vault.name, "--txid", booked)
    assert "can never confirm" in err and replacements[0] in err and "reverse that entry" in err

    report = reserve.ok("sync", "--json").json()
    assert sorted(m["txid"] for m in report["movements"]) == sorted(replacements)
    skipped = {s["txid"]: s["reason"] for s in report["skipped"]}
    assert booked not in skipped  # booked: the audit reports it, sync leaves it alone
    assert "can never confirm" in skipped[unbooked] and replacements[1] in skipped[unbooked]


def test_sync_goes_on_past_an_unwatched_vault(reserve: Reserve, node: RegtestNode, db: Engine) -> None:
    """An unwatched vault is a skipped item, never the end of sync. Without -txindex a deposit's
    sender inputs cannot be shown, and might then be the unwatched vault's coins: that deposit is
    skipped too, saying what to do, until the vault is watched again."""
    watched = reserve.add_vault("watched")
    gone = reserve.add_vault("gone")
    t = node.fund(watched.address(), 4_000_000)
    node.fund(gone.address(), 1_000_000)
    node.rpc().call("unloadwallet", vault_wallet_name(gone.name))
    report = reserve.ok("sync", "--json").json()
    skipped = {s["vault"] or s["txid"]: s["reason"] for s in report["skipped"]}
    assert f"reserve vault watch {gone.name}" in skipped.pop(gone.name)
    if node.txindex:
        assert [m["txid"] for m in report["movements"]] == [t] and skipped == {}
    else:
        assert report["movements"] == []
        assert "cannot be found" in skipped[t] and "vault watch" in skipped[t]
        err = refused(reserve, db, "record", "deposit", "--vault", watched.name, "--txid", t)
        assert f"vault(s) {gone.name} are not watched" in err
    err = refused(reserve, db, "sync", "--vault", gone.name)
    assert f"reserve vault watch {gone.name}" in err

    node.rpc().call("loadwallet", vault_wallet_name(gone.name))
    report = reserve.ok("sync", "--json").json()
    assert report["skipped"] == [] and entries_of(db, t) == 1
