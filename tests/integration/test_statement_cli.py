"""``reserve report statement`` on a real ledger built through the CLI against a regtest node
(SQLite, and PostgreSQL when its URL is set): deposits from two counterparties, a mining reward,
a transfer between vaults, a withdrawal, a wrongly attributed deposit reversed and booked again,
a checkpoint. The identity holds per vault and in total, the closing balances are the books', the
table, ``--json`` and ``--csv`` show the same figures, consecutive periods join up, and bad input
exits 2 and writes nothing."""

from __future__ import annotations

import csv
import datetime as dt
import io
import re
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import Engine

from custody.amount import format_btc
from regtest.node import RegtestNode
from tests.fixtures.db import snapshot
from tests.fixtures.reserve import Reserve
from tests.integration.test_tx_shapes import spend, wallet_fee

BTC = 100_000_000


@pytest.fixture(autouse=True)
def report_groups() -> Iterator[None]:
    """``report`` and ``export`` on the root group (until the coordinator registers them lazily)."""
    from ledger.cli.main import cli
    from ledger.cli.report_cmds import export, report

    added = [g for g in (report, export) if g.name not in cli.commands]
    for g in added:
        cli.add_command(g)
    yield
    for g in added:
        cli.commands.pop(str(g.name), None)


@pytest.fixture
def db(reserve: Reserve) -> Iterator[Engine]:
    engine = reserve.engine()
    yield engine
    engine.dispose()


def figures_json(doc: dict[str, Any]) -> dict[tuple[str, str, str], int]:
    out: dict[tuple[str, str, str], int] = {}
    for sec in (*doc["vaults"], doc["total"]):
        out[(sec["name"], "opening", "")] = sec["opening_sat"]
        out[(sec["name"], "closing", "")] = sec["closing_sat"]
        for group in ("additions", "dispositions", "fees", "transfers_in", "transfers_out"):
            for sub in sec.get(group, []):
                out[(sec["name"], sub["nature"], sub["account"])] = sub["amount_sat"]
    return out


def figures_csv(text: str) -> dict[tuple[str, str, str], int]:
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0][:4] == ["section", "item", "account", "amount_sat"]
    return {(r[0], r[1], r[2]): int(r[3]) for r in rows[1:]}


def figures_table(text: str) -> dict[tuple[str, str, str], int]:
    out: dict[tuple[str, str, str], int] = {}
    section = ""
    for line in text.split("internal transfers")[0].splitlines():
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if len(cells) != 5 or not re.fullmatch(r"-?\d+\.\d{8}", cells[3]):
            continue
        section = cells[0] or section
        whole, frac = cells[3].lstrip("-").split(".")
        sat = int(whole) * BTC + int(frac)
        out[(section, cells[1], cells[2])] = -sat if cells[3].startswith("-") else sat
    return out


def statement(reserve: Reserve, start: str, end: str) -> dict[str, Any]:
    doc: dict[str, Any] = reserve.ok("report", "statement", "--from", start, "--to", end, "--json").json()
    assert doc["schema"] == "reserve-ledger-statement/v1"
    return doc


def check_identity(doc: dict[str, Any]) -> None:
    for sec in (*doc["vaults"], doc["total"]):
        moved = sec.get("transfers_in_sat", 0) - sec.get("transfers_out_sat", 0)
        assert sec["closing_sat"] == (
            sec["opening_sat"] + sec["additions_sat"] - sec["dispositions_sat"] - sec["fees_sat"] + moved
        ), sec["name"]


def test_statement_of_a_real_ledger(reserve: Reserve, node: RegtestNode, db: Engine) -> None:
    a = reserve.add_vault("stmt-a")
    b = reserve.add_vault("stmt-b")
    for name in ("acme", "bob"):
        reserve.ok("account", "add", name, "--type", "counterparty")
    start = node.rpc().get_block_count() + 1

    # deposits: one from acme, one booked to acme by mistake (it was bob's), reversed and rebooked
    d1 = node.fund(a.address(), 5 * BTC)
    d2 = node.fund(a.address(), 2 * BTC)
    reserve.ok("record", "deposit", "--vault", a.name, "--txid", d1, "--from", "acme", "--amount", "5")
    wrong = reserve.ok(
        "record", "deposit", "--vault", a.name, "--txid", d2, "--from", "acme", "--amount", "2", "--json"
    ).json()["seq"]
    reversal = reserve.ok("reverse", str(wrong), "--memo", "was bob's", "--json").json()["seq"]
    rebooked = reserve.ok(
        "record", "deposit", "--vault", a.name, "--txid", d2, "--from", "bob", "--amount", "2", "--json"
    ).json()["seq"]
    [block] = node.mine(1, b.address())
    cb = str(node.rpc().call("getblock", block, 1)["tx"][0])
    mined = reserve.ok("record", "mining", "--vault", b.name, "--txid", cb, "--json").json()
    reward = next(p["amount_sat"] for p in mined["postings"] if p["account"] == b.name)
    mid = node.rpc().get_block_count()

    # a transfer a -> b and a withdrawal from a to outside (booked by sync to unattributed)
    t = spend(node, a, {b.address(): BTC})
    node.mine(1)
    reserve.ok("sync")
    outside = str(node.miner().call("getnewaddress"))
    w = spend(node, a, {outside: 50_000_000})
    node.mine(1)
    reserve.ok("sync")
    fee_t, fee_w = wallet_fee(node, a, t), wallet_fee(node, a, w)
    end = node.rpc().get_block_count()
    reserve.ok("ledger", "checkpoint")

    doc = statement(reserve, str(start), str(end))
    check_identity(doc)
    total = doc["total"]
    assert total["opening_sat"] == 0
    adds = {(x["nature"], x["account"]): x for x in total["additions"]}
    assert adds[("deposit", "acme")]["amount_sat"] == 5 * BTC  # 5 + 2 - 2: the reversal nets out
    assert adds[("deposit", "bob")]["amount_sat"] == 2 * BTC
    assert adds[("mining", "mining-income")]["amount_sat"] == reward
    assert set(adds[("deposit", "acme")]["entries"]) == {wrong - 1, wrong, reversal}
    assert adds[("deposit", "bob")]["entries"] == [rebooked]
    assert d1 in adds[("deposit", "acme")]["txids"] and d2 in adds[("deposit", "bob")]["txids"]
    [out] = total["dispositions"]
    assert (out["account"], out["amount_sat"], out["txids"]) == ("unattributed", 50_000_000, [w])
    assert total["fees_sat"] == fee_t + fee_w
    assert doc["reversals"] == [{"entry": reversal, "reverses": wrong}]
    # the transfer is listed apart and is no addition or disposition of the total
    [moved] = doc["transfers"]
    assert (moved["from"], moved["to"], moved["amount_sat"], moved["txid"]) == (a.name, b.name, BTC, t)
    sec = {s["name"]: s for s in doc["vaults"]}
    assert sec[b.name]["transfers_in_sat"] == BTC and sec[a.name]["transfers_out_sat"] == BTC
    assert sec[a.name]["fees_sat"] == fee_t + fee_w
    # closing balances are the books'
    books = {x["name"]: x["balance_sat"] for x in reserve.ok("balance", "--json").json()["accounts"]}
    assert sec[a.name]["closing_sat"] == books[a.name]
    assert sec[b.name]["closing_sat"] == books[b.name]
    assert total["closing_sat"] == reserve.ok("balance", "--json").json()["reserve_sat"]
    # the checkpoint just signed covers every entry counted
    assert doc["checkpoint"]["tree_size"] >= doc["last_entry"] >= rebooked

    # the same figures from --csv and the table
    as_csv = reserve.ok("report", "statement", "--from", str(start), "--to", str(end), "--csv").out
    table = reserve.ok("report", "statement", "--from", str(start), "--to", str(end)).out
    assert figures_json(doc) == figures_csv(as_csv) == figures_table(table)
    assert format_btc(total["closing_sat"]) in table and "covered by signed checkpoint" in table

    # consecutive periods join up, by height and by date
    first, second = statement(reserve, str(start), str(mid)), statement(reserve, str(mid + 1), str(end))
    for x in (first, second):
        check_identity(x)
    assert [v["closing_sat"] for v in first["vaults"]] == [v["opening_sat"] for v in second["vaults"]]
    assert sorted(first["entries"] + second["entries"]) == doc["entries"]
    today = dt.datetime.now(dt.UTC).date()
    by_date = statement(reserve, (today - dt.timedelta(days=1)).isoformat(), today.isoformat())
    assert by_date["total"]["closing_sat"] == total["closing_sat"]
    later = statement(reserve, (today + dt.timedelta(days=1)).isoformat(), "2099-12-31")
    assert later["entries"] == [] and later["total"]["opening_sat"] == total["closing_sat"]


def test_bad_statement_input_exits_2_and_writes_nothing(
    reserve: Reserve, node: RegtestNode, db: Engine
) -> None:
    a = reserve.add_vault("stmt-bad")
    node.fund(a.address(), BTC)
    reserve.ok("sync")
    before = snapshot(db)
    for args in (
        ("--from", "2026-02-30", "--to", "5"),
        ("--from", "yesterday", "--to", "5"),
        ("--from", "10", "--to", "9"),
        ("--from", "2026-03-01", "--to", "2026-02-01"),
        ("--from", "1", "--to", "2", "--json", "--csv"),
    ):
        r = reserve.run("report", "statement", *args)
        assert r.code == 2, (args, r.out, r.err)
        assert "error:" in r.err or "invalid-input" in r.out
    r = reserve.run("report", "statement", "--from", "x", "--to", "1", "--json")
    assert r.code == 2 and r.json()["error"]["code"] == "invalid-input"
    assert snapshot(db) == before
