"""Attacks on issue 8's guarantees through the real CLI against a real regtest bitcoind (the
session node, with ``-txindex``), on SQLite and PostgreSQL.

Each test plays a real chain or a careless or hostile user. A test that passes is an attack that
is correctly refused (a regression test); a test marked ``xfail(strict=True, reason="HOLE: ...")``
documents a hole that is still open: it fails today and must start passing when the hole is
closed (then drop the mark).

The one invariant behind most of them: whenever ``reserve audit`` exits 0, the reserve figure of
``reserve balance`` is what the vaults hold on chain, to the satoshi.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Iterator
from decimal import Decimal
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session

from custody.amount import btc_decimal, sat_from_rpc
from custody.keygen import test_key_from_seed as key_from_seed  # not collected as a test
from custody.network import Network
from custody.wallet import vault_wallet_name
from ledger.chain.recording import read_books
from ledger.chain.sync import gather_sync, judge_sync, write_sync
from ledger.errors import InvalidInput
from ledger.journal import book
from ledger.journal.entry import EntryDraft, Posting
from regtest.node import RegtestNode
from regtest.signers import DemoSigner
from tests.fixtures.governance import retire
from tests.fixtures.reserve import Reserve
from tests.integration.test_tx_shapes import ungated_only

if TYPE_CHECKING:
    from tests.fixtures.reserve import TestVault

BTC = 100_000_000


@pytest.fixture
def db(reserve: Reserve) -> Iterator[Engine]:
    engine = create_engine(reserve.db_url)
    yield engine
    engine.dispose()


# --- helpers ------------------------------------------------------------------------------------


def audit(reserve: Reserve) -> tuple[int, dict[str, Any]]:
    r = reserve.run("audit", "--json")
    assert r.code in (0, 1), (r.code, r.err, r.out)
    return r.code, r.json()


def codes(report: dict[str, Any]) -> set[str]:
    return {f["code"] for f in report["findings"]}


def reserve_figure(reserve: Reserve) -> int:
    return int(reserve.ok("balance", "--json").json()["reserve_sat"])


def on_chain(node: RegtestNode, *vaults: TestVault) -> int:
    """What the vaults' scripts hold on chain (confirmed and immature), from their wallets."""
    total = 0
    for v in vaults:
        mine = node.rpc().wallet(vault_wallet_name(v.name)).call("getbalances")["mine"]
        total += sat_from_rpc(mine["trusted"]) + sat_from_rpc(mine["immature"])
    return total


def utxo_total(node: RegtestNode, *vaults: TestVault) -> int:
    """What the vaults' scripts hold, from the node's UTXO set (independent of any wallet):
    receive and change branches, indexes 0..99 (enough for every test here)."""
    descs: list[str] = []
    for v in vaults:
        for change in (False, True):
            descs.extend(f"addr({v.descriptor.address(i, change, Network.REGTEST)})" for i in range(100))
    node.sync_wallets()
    result = node.rpc().call("scantxoutset", "start", descs)
    return sat_from_rpc(Decimal(result["total_amount"]))


def assert_figure_is_the_chain_or_a_finding(reserve: Reserve, node: RegtestNode, *vaults: TestVault) -> None:
    """The invariant: audit exit 0 means the reserve figure is what the vaults hold on chain."""
    code, report = audit(reserve)
    figure = reserve_figure(reserve)
    chain = utxo_total(node, *vaults)
    if code == 0:
        assert figure == chain, (
            f"audit exits 0 but reserve balance says {figure} sat while the vaults hold {chain} sat",
            report,
        )
    else:
        assert report["findings"], report


def signers_for(node: RegtestNode, vault: TestVault) -> list[DemoSigner]:
    out = []
    for holder in ("ministry", "regulator"):
        s = DemoSigner(holder, vault.seeds[holder])
        s.import_vault(node.rpc(), 2, tuple(vault.keys.values()))
        out.append(s)
    return out


def coins(node: RegtestNode, vault: TestVault) -> list[dict[str, Any]]:
    return list(node.rpc().wallet(vault_wallet_name(vault.name)).call("listunspent", 0))


def spend_coins(
    node: RegtestNode,
    inputs: list[tuple[TestVault, dict[str, Any]]],
    outputs: list[dict[str, Any]],
    *,
    rbf: bool = False,
    broadcast: bool = True,
) -> str:
    """A spend of exactly ``inputs`` (vault coins, possibly of several vaults) to ``outputs``
    (``{address: btc}`` or ``{"data": hex}``), no change added: what the outputs leave is fee.
    Returns the txid (broadcast) or the raw hex (not broadcast)."""
    rpc = node.rpc()
    psbt = rpc.call(
        "createpsbt",
        [
            {"txid": c["txid"], "vout": c["vout"], **({"sequence": 0xFFFFFFFD} if rbf else {})}
            for _, c in inputs
        ],
        outputs,
        0,
        rbf,
    )
    seen: set[str] = set()
    for vault, _ in inputs:
        if vault.name in seen:
            continue
        seen.add(vault.name)
        psbt = rpc.wallet(vault_wallet_name(vault.name)).call("walletprocesspsbt", psbt, False, "ALL", True)[
            "psbt"
        ]
        for s in signers_for(node, vault):
            psbt = s.sign(rpc, psbt)
    final = rpc.call("finalizepsbt", psbt, True)
    assert final["complete"], final
    if not broadcast:
        return str(final["hex"])
    txid = str(rpc.call("sendrawtransaction", final["hex"], 0))
    node.sync_wallets()
    return txid


def btc(sat: int) -> Decimal:
    return btc_decimal(sat)


def entries_of(db: Engine, txid: str) -> int:
    with db.connect() as c:
        return int(c.execute(text("SELECT count(*) FROM entries WHERE txid = :t"), {"t": txid}).scalar_one())


def last_seq(reserve: Reserve) -> int:
    return int(reserve.ok("balance", "--json").json()["as_of"])


# --- 1. one reserve figure ------------------------------------------------------------------------


def test_a_manual_entry_naming_an_unbooked_vault_txid_is_a_note_not_its_booking(
    reserve: Reserve, node: RegtestNode
) -> None:
    """A manual entry with --txid of a vault deposit nobody booked yet does not book it: the
    audit finds the deposit unrecorded, and following the advice (sync) books it and reconciles."""
    v = reserve.add_vault("squat")
    reserve.ok("account", "add", "acme", "--type", "counterparty")
    reserve.ok("account", "add", "owner", "--type", "equity")
    t = node.fund(v.address(), 30_000_000)
    reserve.ok(
        "record", "--kind", "adjustment", "--memo", "squat", "--txid", t,
        "--posting", "acme=0.3", "--posting", "owner=-0.3",
    )  # fmt: skip
    code, report = audit(reserve)
    assert code == 1 and "unrecorded" in codes(report), report["findings"]
    [f] = [f for f in report["findings"] if f["code"] == "unrecorded"]
    assert t in f["message"] and "reserve sync" in f["advice"], f
    reserve.ok("sync")
    code, report = audit(reserve)
    assert code == 0, report["findings"]
    assert reserve_figure(reserve) == utxo_total(node, v) == 30_000_000


def test_a_manual_entry_may_not_claim_a_txid_that_moves_a_vault(reserve: Reserve, node: RegtestNode) -> None:
    v = reserve.add_vault("claim")
    reserve.ok("account", "add", "acme", "--type", "counterparty")
    reserve.ok("account", "add", "owner", "--type", "equity")
    t = node.fund(v.address(), 30_000_000)
    r = reserve.run(
        "record", "--kind", "adjustment", "--memo", "squat", "--txid", t,
        "--posting", "acme=0.3", "--posting", "owner=-0.3",
    )  # fmt: skip
    if r.code == 0:  # accepted: then sync must still book the deposit
        synced = reserve.ok("sync", "--json").json()
        assert [m["txid"] for m in synced["movements"]] == [t], synced
    assert reserve_figure(reserve) == 30_000_000


def test_only_chain_recording_writes_the_block_hash_that_marks_a_booking(
    reserve: Reserve, node: RegtestNode
) -> None:
    """The block hash is what makes an entry a transaction's booking (sync, record, audit): the
    journal refuses it on any other entry, whatever its kind."""
    reserve.ok("account", "add", "acme", "--type", "counterparty")
    reserve.ok("account", "add", "owner", "--type", "equity")
    draft = EntryDraft(
        kind="deposit", memo="x", txid="ab" * 32, block_hash="cd" * 32, block_height=1,
        postings=(Posting("acme", 1), Posting("owner", -1)),
    )  # fmt: skip
    engine = reserve.engine()
    try:
        with Session(engine) as s, s.begin(), pytest.raises(InvalidInput, match="block hash marks"):
            book.append(s, draft)
    finally:
        engine.dispose()


def test_reversal_tricks_never_leave_a_silent_difference(
    reserve: Reserve, node: RegtestNode, db: Engine
) -> None:
    """Reverse a chain entry, re-sync, try to reverse the reversal and to record the txid again."""
    v = reserve.add_vault("rev")
    t = node.fund(v.address(), 30_000_000)
    reserve.ok("record", "deposit", "--vault", v.name, "--txid", t)
    seq = last_seq(reserve)
    reserve.ok("reverse", str(seq), "--memo", "undo")
    code, report = audit(reserve)
    assert code == 1 and "unrecorded" in codes(report)
    assert reserve.run("reverse", str(seq), "--memo", "again").code == 2
    assert reserve.run("reverse", str(seq + 1), "--memo", "undo the undo").code == 2
    reserve.ok("sync")  # the advice: book it again
    assert entries_of(db, t) == 2  # the original and the new booking; the reversal has no txid
    assert reserve.run("record", "deposit", "--vault", v.name, "--txid", t).code == 2
    assert reserve.run("sync", "--json").json()["movements"] == []
    code, report = audit(reserve)
    assert code == 0, report["findings"]
    assert reserve_figure(reserve) == utxo_total(node, v) == 30_000_000


def test_names_that_would_shadow_a_vault_or_a_system_account(reserve: Reserve, node: RegtestNode) -> None:
    """An account opened before a vault of the same name never becomes a vault account; no
    account may be a vault account by type."""
    reserve.ok("account", "add", "owner", "--type", "equity")
    reserve.ok("account", "add", "pre", "--type", "counterparty")
    reserve.ok(
        "record", "--kind", "adjustment", "--memo", "x", "--posting", "pre=10", "--posting", "owner=-10"
    )
    assert reserve.run("account", "add", "ghost", "--type", "vault").code == 2
    v = reserve.add_vault("real")
    args = ["vault", "add", "pre", "--threshold", "2"]
    for h, k in v.keys.items():
        args += ["--key", f"{h}={k}"]
    r = reserve.run(*args)
    assert r.code == 2 and "already exists" in r.err
    assert reserve.run("account", "add", v.name, "--type", "counterparty").code == 2
    assert reserve_figure(reserve) == 0
    code, report = audit(reserve)
    assert code == 0, report["findings"]


def test_keys_of_a_retired_vault_reused_by_a_new_vault(reserve: Reserve, node: RegtestNode) -> None:
    a = reserve.add_vault("old")
    t = node.fund(a.address(), 40_000_000)
    reserve.ok("record", "deposit", "--vault", a.name, "--txid", t)
    retire(reserve, a, "keys rotated")
    args = ["vault", "add", f"new-{a.name}", "--threshold", "2"]
    for h, k in a.keys.items():
        args += ["--key", f"{h}={k}"]
    r = reserve.run(*args)
    if r.code == 2:
        return  # refused: the hole is closed
    reserve.ok("vault", "watch", f"new-{a.name}")
    node.fund(a.address(), 5_000_000)
    reserve.ok("sync")
    code, report = audit(reserve)
    assert code == 0, report["findings"]
    assert reserve_figure(reserve) == utxo_total(node, a) == 45_000_000


def test_a_manual_ref_in_the_chain_namespace_never_blocks_booking(
    reserve: Reserve, node: RegtestNode
) -> None:
    v = reserve.add_vault("refsq")
    reserve.ok("account", "add", "acme", "--type", "counterparty")
    reserve.ok("account", "add", "owner", "--type", "equity")
    t = node.fund(v.address(), 1_000_000)
    node.fund(v.address(), 2_000_000)
    squat = reserve.run(
        "record", "--kind", "adjustment", "--memo", "x", "--ref", f"chain:{t}:0",
        "--posting", "acme=1", "--posting", "owner=-1",
    )  # fmt: skip
    if squat.code == 0:
        reserve.ok("reverse", str(last_seq(reserve)), "--memo", "undo")
    reserve.ok("sync")
    code, report = audit(reserve)
    assert code == 0, report["findings"]
    assert reserve_figure(reserve) == utxo_total(node, v) == 3_000_000


def test_a_manual_ref_in_the_chain_namespace_is_refused_with_the_reason(
    reserve: Reserve, node: RegtestNode
) -> None:
    reserve.ok("account", "add", "acme", "--type", "counterparty")
    reserve.ok("account", "add", "owner", "--type", "equity")
    r = reserve.run(
        "record", "--kind", "adjustment", "--memo", "x", "--ref", "chain:whatever",
        "--posting", "acme=1", "--posting", "owner=-1",
    )  # fmt: skip
    assert r.code == 2 and "reserved for the bookings of chain transactions" in r.err, r.err
    reserve.ok(
        "record", "--kind", "adjustment", "--memo", "x", "--posting", "acme=1", "--posting", "owner=-1"
    )
    r = reserve.run("reverse", str(last_seq(reserve)), "--memo", "undo", "--ref", "chain:x:0")
    assert r.code == 2 and "reserved" in r.err, r.err


def test_a_chain_ref_taken_before_the_namespace_was_reserved_never_blocks_booking(
    reserve: Reserve, node: RegtestNode
) -> None:
    """Books written by an older version may hold a manual entry with the ref chain recording
    would give a transaction's booking: chain recording passes over it."""
    v = reserve.add_vault("legacy")
    reserve.ok("account", "add", "acme", "--type", "counterparty")
    reserve.ok("account", "add", "owner", "--type", "equity")
    t = node.fund(v.address(), 1_000_000)
    u = node.fund(v.address(), 2_000_000)
    squatter = EntryDraft(
        kind="adjustment", memo="old squatter", ref=f"chain:{t}:0",
        postings=(Posting("acme", BTC), Posting("owner", -BTC)),
    )  # fmt: skip
    engine = reserve.engine()
    try:
        with Session(engine) as s, s.begin():  # what the older version let a manual entry do
            book.append(s, squatter, chain_verified=True)
    finally:
        engine.dispose()
    reserve.ok("record", "deposit", "--vault", v.name, "--txid", t)
    assert [m["txid"] for m in reserve.ok("sync", "--json").json()["movements"]] == [u]
    code, report = audit(reserve)
    assert code == 0, report["findings"]
    assert reserve_figure(reserve) == utxo_total(node, v) == 3_000_000


def test_one_transaction_the_books_refuse_never_blocks_the_rest_of_a_sync(
    reserve: Reserve, node: RegtestNode
) -> None:
    """sync books what it can: a transaction whose entry the books refuse is skipped with the
    reason, the others are booked in the same run."""
    v = reserve.add_vault("batch")
    t = node.fund(v.address(), 1_000_000)
    u = node.fund(v.address(), 2_000_000)
    engine = reserve.engine()
    try:
        with Session(engine) as s, s.begin():
            plan = gather_sync(node.rpc(), read_books(s, None))
        found, skipped = judge_sync(plan)
        assert sorted(str(d.txid) for _, d, _ in found) == sorted([t, u]) and not skipped
        broken = [
            (h, dataclasses.replace(d, postings=tuple(
                Posting("no-such-account", p.amount) if p.account != v.name else p for p in d.postings
            )), m) if d.txid == t else (h, d, m)
            for h, d, m in found
        ]  # fmt: skip
        with Session(engine) as s, s.begin():
            items, late = write_sync(s, broken)
    finally:
        engine.dispose()
    assert [i.movement.txid for i in items] == [u]
    [skip] = late
    assert skip.txid == t and "no-such-account" in skip.reason, skip
    assert reserve_figure(reserve) == 2_000_000
    reserve.ok("sync")  # the real one books the rest
    code, report = audit(reserve)
    assert code == 0, report["findings"]
    assert reserve_figure(reserve) == utxo_total(node, v) == 3_000_000


def test_a_vault_named_like_a_system_account_is_never_a_counterparty(
    reserve: Reserve, node: RegtestNode
) -> None:
    keys = [key_from_seed(secrets.token_bytes(32), Network.REGTEST) for _ in range(3)]
    added = reserve.run(
        "vault", "add", "unattributed", "--threshold", "2",
        "--key", f"a={keys[0]}", "--key", f"b={keys[1]}", "--key", f"c={keys[2]}",
    )  # fmt: skip
    if added.code == 2:
        return  # refused: the hole is closed
    v = reserve.add_vault("payee")
    t = node.fund(v.address(), 1_000_000)
    r = reserve.ok("record", "deposit", "--vault", v.name, "--txid", t, "--json").json()
    types = {a["name"]: a["type"] for a in reserve.ok("balance", "--json").json()["accounts"]}
    vault_legs = [p["account"] for p in r["postings"] if types[p["account"]] == "vault"]
    assert vault_legs == [v.name], r["postings"]
    assert reserve_figure(reserve) == 1_000_000


def test_system_account_names_keep_their_types(reserve: Reserve, node: RegtestNode) -> None:
    for name, wrong in (
        ("network-fees", "counterparty"),
        ("mining-income", "expense"),
        ("unattributed", "income"),
    ):
        r = reserve.run("account", "add", name, "--type", wrong)
        assert r.code == 2, (name, r.out)
    reserve.ok("account", "add", "unattributed", "--type", "counterparty")  # its own type: the same account


def test_a_system_account_of_the_wrong_type_from_older_books_is_never_booked_to(
    reserve: Reserve, node: RegtestNode, db: Engine
) -> None:
    """Books of an older version may hold ``network-fees`` with another type: chain recording
    refuses to book to it (nothing written) instead of posting fees to a counterparty."""
    v = reserve.add_vault("older")
    t = node.fund(v.address(), 1_000_000)
    with db.begin() as c:
        c.execute(text("INSERT INTO accounts (name, type) VALUES ('network-fees', 'counterparty')"))
    before = journal_size(db)
    for argv in (["record", "deposit", "--vault", v.name, "--txid", t], ["sync"]):
        r = reserve.run(*argv)
        assert r.code == 2 and "'network-fees' has type counterparty" in r.err, (argv, r.err)
    assert journal_size(db) == before


# --- 2. every address handed out is watched ------------------------------------------------------


def test_change_and_high_receive_addresses_and_a_retired_vault_are_all_watched(
    reserve: Reserve, node: RegtestNode
) -> None:
    a = reserve.add_vault("addr")
    change = reserve.ok("vault", "address", a.name, "--change", "--index", "1500", "--json").json()
    assert change == [
        {"index": 1500, "branch": "change", "address": a.descriptor.address(1500, True, Network.REGTEST)}
    ]
    high = reserve.ok("vault", "address", a.name, "--index", "1200", "--count", "3", "--json").json()
    assert [x["index"] for x in high] == [1200, 1201, 1202]
    for bad in (["--index", "9999", "--count", "2"], ["--index", "10000"], ["--count", "1001"]):
        r = reserve.run("vault", "address", a.name, *bad)
        assert r.code == 2 and "Traceback" not in r.err, (bad, r.err)
    node.fund(change[0]["address"], 1_000_000)
    node.fund(high[-1]["address"], 2_000_000)
    code, report = audit(reserve)
    assert code == 1 and codes(report) >= {"unrecorded"}
    reserve.ok("sync")
    code, report = audit(reserve)
    assert code == 0, report["findings"]
    assert report["totals"]["chain"] == reserve_figure(reserve) == 3_000_000

    retire(reserve, a, "done")
    assert reserve.run("vault", "address", a.name).code == 2
    late = node.fund(a.address(), 3_000_000)  # someone pays an old address of the retired vault
    code, report = audit(reserve)
    assert code == 1 and late in str(report["findings"])
    reserve.ok("sync")
    code, report = audit(reserve)
    assert code == 0, report["findings"]
    assert reserve_figure(reserve) == 6_000_000


# --- 3. transaction shapes -----------------------------------------------------------------------


def test_shapes_sendmany_two_vaults_and_a_stranger_then_a_spend_from_both_vaults(
    reserve: Reserve, node: RegtestNode, db: Engine
) -> None:
    a = reserve.add_vault("sa")
    b = reserve.add_vault("sb")
    stranger = str(node.miner().call("getnewaddress"))
    node.ensure_mature_funds(5 * BTC)
    t = str(
        node.miner().call(
            "sendmany", "", {a.address(): btc(BTC), b.address(): btc(BTC // 2), stranger: btc(BTC // 4)}
        )
    )
    node.mine(1)
    r = reserve.ok("record", "deposit", "--vault", a.name, "--txid", t, "--json").json()
    legs = {p["account"]: p["amount_sat"] for p in r["postings"]}
    assert legs == {a.name: BTC, b.name: BTC // 2, "unattributed": -(BTC + BTC // 2)}
    assert reserve.run("record", "deposit", "--vault", b.name, "--txid", t).code == 2
    assert_figure_is_the_chain_or_a_finding(reserve, node, a, b)

    # one transaction spending a coin of each vault: a stranger, back to a, the rest is fee
    ca, cb = coins(node, a)[0], coins(node, b)[0]
    fee = BTC + BTC // 2 - BTC - BTC // 4
    t2 = spend_coins(node, [(a, ca), (b, cb)], [{stranger: btc(BTC)}, {a.address(): btc(BTC // 4)}])
    node.mine(1)
    [m] = reserve.ok("sync", "--json").json()["movements"]
    assert m["txid"] == t2 and m["fee_sat"] == fee and m["external_sat"] == BTC
    assert sum(m["flows_sat"].values()) == -(BTC + fee)
    assert entries_of(db, t2) == 1
    assert ungated_only(reserve) == {t2}  # the holders' own transaction: never passed the gate
    assert reserve_figure(reserve) == utxo_total(node, a, b) == BTC // 4


def test_shapes_transfer_with_change_to_the_target_and_a_spend_all_to_fee(
    reserve: Reserve, node: RegtestNode, db: Engine
) -> None:
    a = reserve.add_vault("ta")
    b = reserve.add_vault("tb")
    node.fund(a.address(), BTC)
    reserve.ok("sync")
    [c] = coins(node, a)
    t = spend_coins(node, [(a, c)], [{b.address(): btc(BTC // 2)}, {b.address(): btc(BTC // 2 - 5_000)}])
    node.mine(1)
    r = reserve.ok("record", "transfer", "--from-vault", a.name, "--to-vault", b.name, "--txid", t, "--json")
    legs = {p["account"]: p["amount_sat"] for p in r.json()["postings"]}
    assert legs == {a.name: -BTC, b.name: BTC - 5_000, "network-fees": 5_000}
    assert ungated_only(reserve) == {t}

    # a spend that pays nothing back: one OP_RETURN output, everything else to the miners
    [c0, c1] = coins(node, b)
    burn = spend_coins(node, [(b, c0)], [{"data": "00" * 40}])
    node.mine(1)
    [m] = reserve.ok("sync", "--json").json()["movements"]
    assert m["txid"] == burn and m["fee_sat"] == sat_from_rpc(c0["amount"])
    assert m["flows_sat"] == {b.name: -sat_from_rpc(c0["amount"])}
    # dust: a deposit of 330 sat (the P2WSH dust limit) is booked to the satoshi
    node.fund(a.address(), 330)
    reserve.ok("sync")
    assert ungated_only(reserve) == {t, burn}
    assert reserve_figure(reserve) == utxo_total(node, a, b) == sat_from_rpc(c1["amount"]) + 330


def test_shapes_a_payjoin_with_a_vault_coin_and_a_strangers_coin(reserve: Reserve, node: RegtestNode) -> None:
    """A vault spends a coin and receives more back in one transaction with a stranger's input
    (the stranger pays the fee): one deposit entry of the vault's net gain."""
    v = reserve.add_vault("pj")
    reserve.ok("account", "add", "acme", "--type", "counterparty")
    node.fund(v.address(), BTC)
    reserve.ok("sync")
    [c] = coins(node, v)
    miner = node.miner()
    mc = next(u for u in miner.call("listunspent") if sat_from_rpc(u["amount"]) >= BTC)
    stranger = str(miner.call("getnewaddress"))
    rpc = node.rpc()
    psbt = rpc.call(
        "createpsbt",
        [{"txid": c["txid"], "vout": c["vout"]}, {"txid": mc["txid"], "vout": mc["vout"]}],
        [{v.address(): btc(BTC + BTC // 2)}, {stranger: btc(sat_from_rpc(mc["amount"]) - BTC // 2 - 20_000)}],
    )
    psbt = rpc.wallet(vault_wallet_name(v.name)).call("walletprocesspsbt", psbt, False, "ALL", True)["psbt"]
    for s in signers_for(node, v):
        psbt = s.sign(rpc, psbt)
    psbt = miner.call("walletprocesspsbt", psbt, True)["psbt"]
    final = rpc.call("finalizepsbt", psbt, True)
    assert final["complete"]
    t = str(rpc.call("sendrawtransaction", final["hex"]))
    node.mine(1)
    r = reserve.ok("record", "deposit", "--vault", v.name, "--txid", t, "--from", "acme", "--json").json()
    assert {p["account"]: p["amount_sat"] for p in r["postings"]} == {v.name: BTC // 2, "acme": -(BTC // 2)}
    assert reserve.ok("sync", "--json").json()["movements"] == []
    assert ungated_only(reserve) == {t}  # it spends a vault coin outside the gate
    assert reserve_figure(reserve) == utxo_total(node, v) == BTC + BTC // 2


def test_rbf_replacement_of_an_unconfirmed_spend(reserve: Reserve, node: RegtestNode) -> None:
    a = reserve.add_vault("rbf")
    reserve.ok("account", "add", "buyer", "--type", "counterparty")
    node.fund(a.address(), BTC)
    reserve.ok("sync")
    stranger = str(node.miner().call("getnewaddress"))
    [c] = coins(node, a)
    t1 = spend_coins(
        node, [(a, c)], [{stranger: btc(BTC // 2)}, {a.address(): btc(BTC // 2 - 1_000)}], rbf=True
    )
    r = reserve.run("record", "withdrawal", "--vault", a.name, "--txid", t1, "--to", "buyer")
    assert r.code == 2 and "Traceback" not in r.err
    code, report = audit(reserve)
    assert {(f["code"], f["txid"]) for f in report["findings"]} == {("ungated-spend", t1)}, report
    assert code == 1 and report["totals"]["pending_out"] == BTC // 2 + 1_000, report
    t2 = spend_coins(
        node, [(a, c)], [{stranger: btc(BTC // 2)}, {a.address(): btc(BTC // 2 - 50_000)}], rbf=True
    )
    node.mine(1)
    r = reserve.run("record", "withdrawal", "--vault", a.name, "--txid", t1, "--to", "buyer")
    assert r.code == 2 and t2 in r.err
    reserve.ok("record", "withdrawal", "--vault", a.name, "--txid", t2, "--to", "buyer")
    assert ungated_only(reserve) == {t2}  # the replaced one is no outflow any more
    assert reserve_figure(reserve) == utxo_total(node, a) == BTC // 2 - 50_000


def test_a_recorded_spend_double_spent_away_in_a_reorg_and_the_advice_fixes_it(
    reserve: Reserve, node: RegtestNode
) -> None:
    a = reserve.add_vault("drop")
    node.fund(a.address(), BTC)
    reserve.ok("sync")
    stranger = str(node.miner().call("getnewaddress"))
    [c] = coins(node, a)
    other = spend_coins(node, [(a, c)], [{stranger: btc(BTC - 90_000)}], broadcast=False)
    first = spend_coins(node, [(a, c)], [{stranger: btc(BTC // 2)}, {a.address(): btc(BTC // 2 - 1_000)}])
    [block] = node.mine(1)
    reserve.ok("sync")
    assert ungated_only(reserve) == {first}
    node.rpc().call("invalidateblock", block)
    node.rpc().call("generateblock", stranger, [other])
    other_txid = str(node.rpc().call("decoderawtransaction", other)["txid"])
    node.mine(1)
    code, report = audit(reserve)
    assert code == 1 and "conflicted" in codes(report)
    [f] = [f for f in report["findings"] if f["code"] == "conflicted"]
    # follow the advice as written: `reserve reverse N --memo ...`, then `reserve sync`
    advice = f["advice"]
    seq = advice.split("reserve reverse ")[1].split()[0]
    reserve.ok("reverse", seq, "--memo", "conflicted")
    reserve.ok("sync")
    assert ungated_only(reserve) == {other_txid}
    assert reserve_figure(reserve) == utxo_total(node, a) == 0


def test_a_recorded_coinbase_orphaned_by_a_reorg_is_to_be_reversed_not_waited_for(
    reserve: Reserve, node: RegtestNode
) -> None:
    v = reserve.add_vault("orphan")
    [block] = node.mine(1, address=v.address())
    coinbase = str(node.rpc().call("getblock", block)["tx"][0])
    node.mine(1)
    reserve.ok("record", "mining", "--vault", v.name, "--txid", coinbase)
    assert audit(reserve)[0] == 0
    node.rpc().call("invalidateblock", block)
    node.mine(3)
    code, report = audit(reserve)
    assert code == 1
    advice = " ".join(f["advice"] for f in report["findings"])
    assert "wait" not in advice and "reserve reverse" in advice, report["findings"]
    [f] = [f for f in report["findings"] if f["code"] == "conflicted"]
    assert f["txid"] == coinbase and "can never confirm" in f["message"], f
    seq = f["advice"].split("reserve reverse ")[1].split()[0]
    synced = reserve.ok("sync", "--json").json()
    assert synced["pending"] == [] and synced["movements"] == [], synced
    [skip] = synced["skipped"]
    assert skip["txid"] == coinbase and "can never confirm" in skip["reason"], skip
    assert f"reserve reverse {seq}" in skip["reason"], skip
    r = reserve.run("record", "mining", "--vault", v.name, "--txid", coinbase)
    assert r.code == 2 and "can never confirm" in r.err and "after it confirms" not in r.err, r.err
    reserve.ok("reverse", seq, "--memo", "orphaned coinbase")
    r = reserve.run("record", "mining", "--vault", v.name, "--txid", coinbase)
    assert r.code == 2 and "there is nothing to record" in r.err, r.err
    synced = reserve.ok("sync", "--json").json()
    assert synced["pending"] == [] and "nothing to book" in synced["skipped"][0]["reason"], synced
    code, report = audit(reserve)
    assert code == 0, report["findings"]
    assert reserve_figure(reserve) == utxo_total(node, v) == 0


# --- 6. tamper: raw SQL with the append-only protection off --------------------------------------


def protection_off(db: Engine) -> None:
    """What a tamperer with the owner's access does first: SQLite, drop the triggers; PostgreSQL,
    ``ALTER TABLE ... DISABLE TRIGGER USER``."""
    from ledger.store.db import drop_append_only_ddl
    from ledger.store.models import APPEND_ONLY_TABLES
    from ledger.store.vault_models import VAULT_TABLES

    with db.begin() as c:
        for table in (*APPEND_ONLY_TABLES, *VAULT_TABLES, "audits"):
            if db.dialect.name == "postgresql":
                c.exec_driver_sql(f"ALTER TABLE {table} DISABLE TRIGGER USER")
            else:
                for statement in drop_append_only_ddl("sqlite", table):
                    c.exec_driver_sql(statement)


def rehash(db: Engine, seq: int) -> None:
    """Recompute and store the leaf hash of entry ``seq`` from its (tampered) rows."""
    from sqlalchemy.orm import Session

    from ledger.journal.book import iter_stored
    from ledger.journal.merkle import leaf_hash

    with Session(db) as s:
        stored = next(iter_stored(s, start=seq))
    assert stored.seq == seq
    with db.begin() as c:
        c.execute(
            text("UPDATE entries SET leaf_hash = :h WHERE seq = :s"),
            {"h": leaf_hash(stored.encode()), "s": seq},
        )


def test_a_rewritten_entry_with_its_leaf_rehashed_and_every_checkpoint_deleted(
    reserve: Reserve, node: RegtestNode, db: Engine
) -> None:
    """The audit's log record names the root it covered: a rewrite of history before it is caught
    even with every checkpoint (and every audit row) gone."""
    reserve.ok("account", "add", "acme", "--type", "counterparty")
    reserve.ok("account", "add", "owner", "--type", "equity")
    reserve.ok(
        "record", "--kind", "adjustment", "--memo", "loan", "--posting", "acme=1", "--posting", "owner=-1"
    )
    seq = last_seq(reserve)
    assert audit(reserve)[0] == 0
    protection_off(db)
    with db.begin() as c:
        c.execute(text("UPDATE postings SET amount = amount * 5 WHERE entry_seq = :s"), {"s": seq})
        c.execute(text("DELETE FROM audits"))  # first: on PostgreSQL audits reference checkpoints
        c.execute(text("DELETE FROM checkpoints"))
    rehash(db, seq)
    r = reserve.run("ledger", "verify")
    assert r.code == 1, r.out
    assert audit(reserve)[0] == 1


def test_a_lowered_issued_address_record_is_caught_and_the_deposit_still_found(
    reserve: Reserve, node: RegtestNode, db: Engine
) -> None:
    v = reserve.add_vault("issued")
    [high] = reserve.ok("vault", "address", v.name, "--index", "500", "--json").json()
    with db.connect() as c:
        seq, memo = c.execute(
            text("SELECT seq, memo FROM entries WHERE kind = 'addresses-issued' ORDER BY seq DESC")
        ).first()  # type: ignore[misc]
    assert '"index":500' in memo
    protection_off(db)
    with db.begin() as c:
        c.execute(
            text("UPDATE entries SET memo = :m WHERE seq = :s"),
            {"m": memo.replace('"index":500', '"index":3'), "s": seq},
        )
    rehash(db, seq)
    # the record's tree head, signed in the transaction that wrote it, catches the rewrite at once
    # (no checkpoint needs to cover it first); the deposit to the address handed out is still
    # found (the wallet watches it, and so does the audit's scan)
    t = node.fund(high["address"], 2_000_000)
    code, report = audit(reserve)
    assert code == 1 and t in str(report["findings"]), report["findings"]
    assert "history was rewritten" in str(report["findings"])
    r = reserve.run("ledger", "verify")
    assert r.code == 1 and f"tree head of size {seq}" in r.err


# --- 8. rough edges ------------------------------------------------------------------------------

HUGE = "9" * 40


def journal_size(db: Engine) -> tuple[int, int, int]:
    with db.connect() as c:
        return tuple(  # type: ignore[return-value]
            int(c.execute(text(f"SELECT count(*) FROM {t}")).scalar_one())
            for t in ("entries", "postings", "accounts")
        )


def test_control_characters_and_huge_numbers_in_every_option_are_one_line_exit_2(
    reserve: Reserve, node: RegtestNode, db: Engine
) -> None:
    v = reserve.add_vault("rough")
    reserve.ok("account", "add", "acme", "--type", "counterparty")
    reserve.ok("account", "add", "owner", "--type", "equity")
    t = node.fund(v.address(), 1_000_000)
    keys = [arg for h, k in v.keys.items() for arg in ("--key", f"{h}={k}")]
    manual = ["record", "--kind", "adjustment", "--memo", "m", "--posting", "acme=1", "--posting", "owner=-1"]
    attempts = [
        ["vault", "add", "x1", "--threshold", HUGE, *keys],
        ["vault", "add", "x1", "--threshold", "-5", *keys],
        ["vault", "add", "x1", "--threshold", "2", "--birthday", HUGE, *keys],
        ["vault", "add", "x\x1b[31m", "--threshold", "2", *keys],
        [
            "vault",
            "add",
            "x2",
            "--threshold",
            "2",
            "--key",
            "mini\x07stry=" + str(next(iter(v.keys.values()))),
        ],
        ["vault", "watch", v.name, "--gap", HUGE],
        ["vault", "watch", v.name, "--birthday", HUGE],
        ["vault", "address", v.name, "--index", HUGE],
        ["vault", "address", v.name, "--count", HUGE],
        ["vault", "address", v.name, "--index", "-1"],
        ["vault", "retire", v.name, "--reason", "a\u202eb"],
        ["vault", "show", "v\x1b[2J"],
        ["ledger", "log", "--limit", HUGE],
        ["ledger", "prove", HUGE],
        ["ledger", "consistency", "1", HUGE],
        ["ledger", "rotation", HUGE],
        ["balance", "--as-of", HUGE],
        ["balance", "a\x1bb"],
        ["reverse", HUGE, "--memo", "x"],
        ["reverse", "2", "--memo", "m\x1b]0;owned\x07"],
        [*manual, "--outputs", HUGE, "--txid", "00" * 32],
        [*manual, "--date", "99999-01-01"],
        [*manual, "--ref", "r\x00"],
        [*manual, "--txid", "zz\x1b"],
        [
            "record",
            "--kind",
            "adjustment",
            "--memo",
            "x\x9b31m",
            "--posting",
            "acme=1",
            "--posting",
            "owner=-1",
        ],
        ["record", "--kind", "adjustment", "--memo", "x", "--posting", "ac\x1bme=1", "--posting", "owner=-1"],
        [
            "record",
            "--kind",
            "adjustment",
            "--memo",
            "x",
            "--posting",
            f"acme={HUGE}",
            "--posting",
            f"owner=-{HUGE}",
        ],
        [
            "record",
            "--kind",
            "adjustment",
            "--memo",
            "x",
            "--posting",
            f"acme={HUGE}sat",
            "--posting",
            "owner=-1",
        ],
        ["record", "deposit", "--vault", v.name, "--txid", t, "--from", "ac\x1bme"],
        ["record", "deposit", "--vault", v.name, "--txid", t, "--memo", "m\x1b[2J"],
        ["record", "deposit", "--vault", v.name, "--txid", t, "--amount", HUGE],
        ["record", "deposit", "--vault", "v\x1b", "--txid", t],
        ["account", "add", "a\u2028b", "--type", "counterparty"],
        ["account", "add", "a" * 100_000, "--type", "counterparty"],
        ["sync", "--vault", "nope\x1b"],
        ["ledger", "verify", "--checkpoint", "/etc/passwd"],
        ["vault", "add", "--file", "/etc/passwd"],
    ]
    before = journal_size(db)
    for argv in attempts:
        r = reserve.run(*argv)
        shown = [a[:40] for a in argv]
        assert r.code == 2, (shown, r.code, r.err, r.out[:300])
        assert "Traceback" not in r.err + r.out, shown
        assert not any(ch in r.err + r.out for ch in "\x1b\x07\x00\x9b\u202e\u2028"), (shown, r.err)
    assert journal_size(db) == before


def test_audit_min_conf_out_of_range_is_refused_up_front_on_every_backend(
    reserve: Reserve, node: RegtestNode
) -> None:
    for value in (str(2**31), str(2**63), HUGE):
        r = reserve.run("audit", "--min-conf", value)
        assert r.code == 2 and "--min-conf" in r.err, (value, r.code, r.err)


def test_vault_address_huge_numbers_name_the_real_range(reserve: Reserve, node: RegtestNode) -> None:
    v = reserve.add_vault("range")
    r = reserve.run("vault", "address", v.name, "--index", HUGE)
    assert r.code == 2 and "9,999" in r.err and "-9,223" not in r.err, r.err
    r = reserve.run("vault", "address", v.name, "--count", HUGE)
    assert r.code == 2 and "1,000" in r.err and "-9,223" not in r.err, r.err
