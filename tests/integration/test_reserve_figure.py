"""One reserve figure: vault accounts are the reserve, and only the chain moves them.

The issue's attack, through the real CLI on SQLite and PostgreSQL: ``reserve account add ghost
--type vault`` then ``reserve record --kind adjustment --posting ghost=1000 --posting
equity=-1000`` inflated ``reserve balance`` by 1,000 BTC. Both are refused now and change nothing
(row counts and Merkle root compared), and so is a manual posting to a real vault. The reserve
figure of ``reserve balance`` is :func:`ledger.journal.balances.reserve_total`, the figure the audit
compares with the chain."""

from __future__ import annotations

from sqlalchemy.orm import Session

from custody.rpc import RpcClient
from ledger.journal.balances import balance, reserve_total
from tests.fixtures.reserve import Reserve
from tests.integration.test_address_issuance import book_state
from tests.integration.test_watch_only import wait_for_wallet


def test_a_vault_account_without_a_vault_is_refused_and_changes_nothing(reserve: Reserve) -> None:
    reserve.ok("account", "add", "equity", "--type", "equity")
    before = book_state(reserve.db_url)

    r = reserve.run("account", "add", "ghost", "--type", "vault")
    assert r.code == 2
    assert "a vault account is opened only with its vault definition" in r.err
    assert "reserve vault add" in r.err  # the advice: how a vault account comes to exist
    assert len(r.err.strip().splitlines()) == 1 and "Traceback" not in r.err
    assert book_state(reserve.db_url) == before

    attack = ["--kind", "adjustment", "--memo", "x", "--posting", "ghost=1000", "--posting", "equity=-1000"]
    r = reserve.run("record", *attack)
    assert r.code == 2 and "ghost" in r.err and "Traceback" not in r.err
    assert book_state(reserve.db_url) == before
    assert reserve.ok("balance", "--json").json()["reserve_sat"] == 0


def test_a_manual_posting_to_a_real_vault_is_refused(reserve: Reserve) -> None:
    hot = reserve.add_vault("hot")
    reserve.ok("account", "add", "equity", "--type", "equity")
    before = book_state(reserve.db_url)
    for postings in (
        [f"{hot.name}=1000", "equity=-1000"],
        ["equity=1000", f"{hot.name}=-1000"],
    ):
        args = [arg for p in postings for arg in ("--posting", p)]
        r = reserve.run("record", "--kind", "adjustment", "--memo", "x", *args)
        assert r.code == 2
        assert f"posting to vault account {hot.name!r} refused" in r.err, r.err
        assert "verified on chain" in r.err
        assert book_state(reserve.db_url) == before
    assert reserve.ok("balance", "--json").json()["reserve_sat"] == 0


def test_the_reserve_is_the_sum_of_the_vault_accounts_shown_as_vaults(
    reserve: Reserve, rpc: RpcClient
) -> None:
    hot, cold = reserve.add_vault("hot"), reserve.add_vault("cold")
    reserve.ok("account", "add", "exchange-a", "--type", "counterparty")
    sent = {
        hot.name: reserve.node.fund(hot.address(), 30_000_000),
        cold.name: reserve.node.fund(cold.address(), 12_000_000),
    }
    for name, txid in sent.items():
        wait_for_wallet(rpc, rpc.wallet(f"reserve-vault-{name}"), [txid])
    reserve.ok("sync")

    figures = reserve.ok("balance", "--json").json()
    by_name = {a["name"]: a for a in figures["accounts"]}
    assert {n for n, a in by_name.items() if a["type"] == "vault"} == {hot.name, cold.name}
    assert figures["reserve_sat"] == 42_000_000
    vault_sum = sum(a["balance_sat"] for a in figures["accounts"] if a["type"] == "vault")
    assert figures["reserve_sat"] == vault_sum
    engine = reserve.engine()
    try:
        with Session(engine) as s:
            assert reserve_total(s) == 42_000_000
            b = balance(s)
            assert sorted(b.reserve_accounts) == sorted([hot.name, cold.name])
            assert reserve_total(s, as_of=b.as_of - 1) < 42_000_000  # as of an earlier entry
    finally:
        engine.dispose()

    shown = reserve.ok("balance").out
    for name in (hot.name, cold.name):
        [row] = [line for line in shown.splitlines() if name in line]
        assert "vault" in row.replace(name, "")  # the type column says which accounts are vaults
    assert "reserve (all vault accounts): 0.42" in shown
