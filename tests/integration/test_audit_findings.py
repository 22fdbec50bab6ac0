"""Audit findings that tell the truth, against real regtest nodes (with and without -txindex) and
real databases (SQLite and PostgreSQL): pending movements, a vault account without a definition,
the ledger total against `reserve balance`, --min-conf, immature coinbase, issued addresses, and
stored audits committed to the tamper-evident log."""

from __future__ import annotations

import contextlib
import datetime as dt
import secrets
import shutil
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session

from custody.errors import CustodyError
from custody.keygen import test_key_from_seed as key_from_seed  # not collected as a test
from custody.network import Network
from custody.wallet import vault_wallet_name
from ledger.chain.audit import audit_of, read_books, read_chain, store_audit
from ledger.errors import Conflict
from ledger.journal.book import append
from ledger.journal.checkpoint import create_signing_key, load_signing_key, public_key_pem
from ledger.journal.entry import EntryDraft, Posting
from ledger.store.db import drop_append_only_ddl, read_only
from ledger.store.models import EntryRow
from regtest.node import RegtestNode
from regtest.signers import DemoSigner, spend_from_vault
from tests.fixtures.db import snapshot
from tests.fixtures.reserve import HOLDERS, Reserve

if TYPE_CHECKING:
    from tests.fixtures.reserve import TestVault  # not imported at run time: pytest would collect it


@pytest.fixture
def node(chain_node: RegtestNode) -> RegtestNode:
    """Every test here runs against a node with -txindex and one without."""
    return chain_node


@pytest.fixture
def db(reserve: Reserve) -> Iterator[Engine]:
    engine = reserve.engine()
    yield engine
    engine.dispose()


def audit(reserve: Reserve, *args: str) -> tuple[int, dict[str, Any]]:
    r = reserve.run("audit", "--json", *args)
    assert r.code in (0, 1), r.err
    return r.code, r.json()


def codes(report: dict[str, Any]) -> set[str]:
    return {f["code"] for f in report["findings"]}


def signers(reserve: Reserve, node: RegtestNode, vault: TestVault) -> list[DemoSigner]:
    out = []
    for holder in ("ministry", "regulator"):
        s = DemoSigner(holder, vault.seeds[holder])
        s.import_vault(node.rpc(), 2, tuple(vault.keys.values()))
        out.append(s)
    return out


def test_a_signed_spend_in_the_mempool_is_pending_not_a_mismatch(reserve: Reserve, node: RegtestNode) -> None:
    vault = reserve.add_vault("pend")
    funding = node.fund(vault.address(), 100_000_000)
    reserve.ok("record", "deposit", "--vault", vault.name, "--txid", funding)
    outside = node.miner().call("getnewaddress")
    spent = spend_from_vault(
        node.rpc(), vault_wallet_name(vault.name), signers(reserve, node, vault), {outside: 30_000_000}
    )
    node.sync_wallets()
    code, report = audit(reserve)
    # the holders sent it themselves: the one finding is that it never passed the gate
    assert code == 1 and codes(report) == {"ungated-spend"}, report["findings"]
    [pending] = report["pending"]
    assert pending["txid"] == spent and pending["kind"] == "withdrawal"
    assert pending["flows"][vault.name] == -(30_000_000 + pending["fee"])
    assert pending["spends"] and all(o.startswith(f"{funding}:") for o in pending["spends"])
    [v] = report["vaults"]
    assert v["ledger"] == v["chain_total"] == 100_000_000
    assert v["pending_out"] == 30_000_000 + pending["fee"]
    table = reserve.run("audit")
    assert table.code == 1 and "pending (unconfirmed, not a finding): withdrawal" in table.out

    node.mine(1)  # confirmed: now it is an unrecorded withdrawal, and sync books it
    code, report = audit(reserve)
    assert code == 1 and ("unrecorded", spent) in {(f["code"], f["txid"]) for f in report["findings"]}
    assert report["pending"] == []
    reserve.ok("account", "add", "payee", "--type", "counterparty")
    reserve.ok("sync")
    code, report = audit(reserve)
    assert {(f["code"], f["txid"]) for f in report["findings"]} == {("ungated-spend", spent)}


def test_a_deposit_in_the_mempool_is_pending(reserve: Reserve, node: RegtestNode) -> None:
    vault = reserve.add_vault("pendin")
    txid = node.fund(vault.address(), 7_000_000, confirm=False)
    code, report = audit(reserve)
    assert code == 0, report["findings"]
    assert [(p["txid"], p["kind"], p["flows"]) for p in report["pending"]] == [
        (txid, "deposit", {vault.name: 7_000_000})
    ]
    assert report["totals"]["pending_in"] == 7_000_000 and report["totals"]["chain"] == 0


def test_a_vault_account_without_a_definition_is_a_finding(
    reserve: Reserve, node: RegtestNode, db: Engine
) -> None:
    """A database made before vault accounts needed a definition: the ghost's balance is in the
    reserve figure and in the audit's ledger total, and the audit says to reverse it."""
    vault = reserve.add_vault("real")
    t = node.fund(vault.address(), 5_000_000)
    reserve.ok("record", "deposit", "--vault", vault.name, "--txid", t)
    reserve.ok("account", "add", "owner", "--type", "equity")
    code, report = audit(reserve)
    assert code == 0, report["findings"]
    with db.begin() as c:  # the service refuses this now: behind its back
        c.execute(
            text("INSERT INTO accounts (name, type, created_at) VALUES ('ghost', 'vault', :now)"),
            {"now": dt.datetime.now(dt.UTC)},
        )
    with Session(db) as s, s.begin():  # as an older release could book it
        ghost_seq = append(
            s,
            EntryDraft(
                kind="adjustment",
                memo="inflate",
                postings=(Posting("ghost", 100_000_000_000), Posting("owner", -100_000_000_000)),
            ),
            chain_verified=True,
        ).seq
    code, report = audit(reserve)
    assert code == 1
    [f] = [f for f in report["findings"] if f["code"] == "undefined-vault-account"]
    assert "ghost" in f["message"] and f"reserve reverse {ghost_seq}" in f["advice"]
    assert report["undefined_accounts"] == [
        {"account": "ghost", "ledger": 100_000_000_000, "entries": [ghost_seq]}
    ]
    reserve_figure = reserve.ok("balance", "--json").json()["reserve_sat"]
    assert report["totals"]["ledger"] == reserve_figure == 100_005_000_000
    assert reserve.run("audit").code == 1

    reserve.ok("reverse", str(ghost_seq), "--memo", "ghost is not a vault")
    code, report = audit(reserve)
    assert code == 0, report["findings"]
    assert report["totals"]["ledger"] == reserve.ok("balance", "--json").json()["reserve_sat"] == 5_000_000


def test_min_conf_is_audited(reserve: Reserve, node: RegtestNode, db: Engine) -> None:
    vault = reserve.add_vault("deep")
    t = node.fund(vault.address(), 3_000_000)
    seq = reserve.ok("record", "deposit", "--vault", vault.name, "--txid", t, "--json").json()["seq"]
    node.mine(1)  # 2 confirmations
    code, report = audit(reserve, "--min-conf", "3")
    assert code == 1 and report["min_conf"] == 3
    [f] = report["findings"]
    assert (f["code"], f["txid"], f["seq"]) == ("shallow", t, seq) and "wait for 1 more block" in f["advice"]
    assert report["vaults"][0]["scan_shallow"] == 3_000_000
    assert audit(reserve, "--min-conf", "2")[0] == 0
    node.mine(1)
    code, report = audit(reserve, "--min-conf", "3")
    assert code == 0, report["findings"]
    assert report["vaults"][0]["scan_confirmed"] == 3_000_000
    with db.connect() as c:
        assert [r[0] for r in c.execute(text("SELECT min_conf FROM audits ORDER BY id"))] == [3, 2, 3]


def test_a_coinbase_at_100_confirmations_is_immature_and_in_the_reserve(
    reserve: Reserve, node: RegtestNode
) -> None:
    vault = reserve.add_vault("miner")
    [block] = node.mine(1, vault.address())
    coinbase = node.rpc().call("getblock", block)["tx"][0]
    reserve.ok("record", "mining", "--vault", vault.name, "--txid", coinbase)
    node.mine(99)  # the coinbase has exactly 100 confirmations: the wallet does not spend it yet
    code, report = audit(reserve)
    assert code == 0, report["findings"]
    [v] = report["vaults"]
    assert v["scan_immature"] == v["wallet_immature"] == v["ledger"] > 0
    assert v["scan_confirmed"] == 0 and report["totals"]["ledger"] == v["chain_total"]
    node.mine(1)
    code, report = audit(reserve)
    assert code == 0, report["findings"]
    [v] = report["vaults"]
    assert v["scan_immature"] == 0 and v["scan_confirmed"] == v["ledger"]


def test_a_deposit_to_an_address_issued_beyond_the_wallet_range_is_found(
    reserve: Reserve, node: RegtestNode
) -> None:
    vault = reserve.add_vault("far")
    [issued] = reserve.ok("vault", "address", vault.name, "--index", "1500", "--json").json()
    assert issued["address"] == vault.address(1500)
    txid = node.fund(issued["address"], 9_000_000)
    code, report = audit(reserve)
    assert code == 1
    assert ("unrecorded", txid) in {(f["code"], f["txid"]) for f in report["findings"]}
    [v] = report["vaults"]
    assert v["scanned_range"] >= 1501 and v["chain_total"] == 9_000_000
    reserve.ok("sync")
    code, report = audit(reserve)
    assert code == 0, report["findings"]


def test_a_stored_audit_changed_behind_the_apps_back_is_caught_by_verify(
    reserve: Reserve, node: RegtestNode, db: Engine
) -> None:
    vault = reserve.add_vault("tamper")
    node.fund(vault.address(), 1_000_000)  # unrecorded: the audit has findings
    code, report = audit(reserve)
    assert code == 1 and report["ok"] is False
    with db.connect() as c:
        last = c.execute(select(func.max(EntryRow.seq))).scalar_one()
        record = c.execute(select(EntryRow.kind, EntryRow.memo).where(EntryRow.seq == last)).one()
    assert record.kind == "audit" and f'"audit_id":{report["audit_id"]}' in record.memo
    assert reserve.run("ledger", "verify").code == 0
    with db.begin() as c:
        for statement in drop_append_only_ddl(db.dialect.name, "audits"):
            c.execute(text(statement))
        c.execute(text("UPDATE audits SET ok = :t, findings = 0"), {"t": True})
    r = reserve.run("ledger", "verify")
    assert r.code == 1, r.out + r.err
    assert "audit" in (r.out + r.err).lower()


def test_an_unwatched_vault_is_a_finding_not_a_crash(reserve: Reserve, node: RegtestNode) -> None:
    watched = reserve.add_vault("seen")
    t = node.fund(watched.address(), 2_000_000)
    reserve.ok("record", "deposit", "--vault", watched.name, "--txid", t)
    name = f"{watched.name}-unwatched"
    keys = [f"{h}={key_from_seed(secrets.token_bytes(32), Network.REGTEST)}" for h in HOLDERS]
    reserve.ok("vault", "add", name, "--threshold", "2", *(a for k in keys for a in ("--key", k)))
    code, report = audit(reserve)
    assert code == 1
    [f] = [f for f in report["findings"] if f["code"] == "vault-not-watched"]
    assert f["vault"] == name and f"`reserve vault watch {name}`" in f["advice"]
    assert {v["vault"] for v in report["vaults"]} >= {watched.name, name}
    reserve.ok("vault", "watch", name)
    code, report = audit(reserve)
    assert code == 0, report["findings"]


def test_one_transaction_paying_two_vaults_audits_clean(reserve: Reserve, node: RegtestNode) -> None:
    a = reserve.add_vault("twoa")
    b = reserve.add_vault("twob")
    node.ensure_mature_funds(50_000_000)
    txid = node.miner().call("sendmany", "", {a.address(): "0.1", b.address(): "0.2"})
    node.mine(1)
    reserve.ok("sync")
    code, report = audit(reserve)
    assert code == 0, report["findings"]
    by_vault = {v["vault"]: v["ledger"] for v in report["vaults"]}
    assert by_vault[a.name] == 10_000_000 and by_vault[b.name] == 20_000_000
    [entry] = report["entries"]
    assert entry["txid"] == txid and entry["status"] == "ok"


def test_the_audit_gathers_without_a_write_lock_and_stores_only_over_the_journal_it_read(
    reserve: Reserve, node: RegtestNode, db: Engine
) -> None:
    vault = reserve.add_vault("gather")
    t = node.fund(vault.address(), 1_000_000)
    reserve.ok("record", "deposit", "--vault", vault.name, "--txid", t)
    key = load_signing_key(reserve.key_path)
    with Session(read_only(db)) as s, s.begin():  # the gather step's transaction, as the CLI opens it
        gathered = read_books(s, public_key_pem(key))
        reserve.ok("account", "add", "meanwhile", "--type", "counterparty")  # a writer is not blocked
    report = audit_of(gathered.books, read_chain(node.rpc(), gathered), min_conf=1)
    assert report.ok, report.findings
    reserve.ok("account", "add", "owner", "--type", "equity")
    reserve.ok(
        "record",
        "--kind",
        "adjustment",
        "--memo",
        "x",
        "--posting",
        "meanwhile=5sat",
        "--posting",
        "owner=-5sat",
    )
    before = snapshot(db)
    with Session(db) as s, pytest.raises(Conflict, match="changed while the audit ran"), s.begin():
        store_audit(s, report, key)
    assert snapshot(db) == before  # nothing stored over a journal the audit did not see


def test_a_utxo_scan_already_running_stops_the_audit_with_a_clear_error(
    reserve: Reserve, node: RegtestNode, db: Engine
) -> None:
    vault = reserve.add_vault("busy")
    before = snapshot(db)
    # 60,000 2-of-3 scripts to derive keep the node's one scan slot busy for seconds
    slow = [{"desc": vault.descriptor.receive(), "range": [0, 59_999]}]
    other = threading.Thread(target=lambda: _scan_ignoring_abort(node, slow), daemon=True)
    other.start()
    try:
        deadline = time.monotonic() + 30
        while node.rpc().call("scantxoutset", "status") is None:  # poll until it runs
            assert other.is_alive() and time.monotonic() < deadline, "the slow scan never started"
        r = reserve.run("audit")
        assert r.code == 2, r.out + r.err
        assert "another scantxoutset is running" in r.err and "scantxoutset abort" in r.err
        assert snapshot(db) == before
    finally:
        deadline = time.monotonic() + 120
        while other.is_alive() and time.monotonic() < deadline:  # abort is seen once it scans
            node.rpc().call("scantxoutset", "abort")
            other.join(timeout=0.5)
    code, report = audit(reserve)
    assert code == 0, report["findings"]


def _scan_ignoring_abort(node: RegtestNode, objects: list[dict[str, Any]]) -> None:
    with contextlib.suppress(CustodyError):  # aborted by the test
        node.rpc(timeout=600).call("scantxoutset", "start", objects)


def test_a_replaced_signing_key_is_a_finding_and_signs_nothing(
    reserve: Reserve, node: RegtestNode, db: Engine
) -> None:
    vault = reserve.add_vault("keyswap")
    t = node.fund(vault.address(), 1_000_000)
    reserve.ok("record", "deposit", "--vault", vault.name, "--txid", t)
    assert audit(reserve)[0] == 0  # signs a checkpoint with the key made by `init`
    reserve.key_path.unlink()
    create_signing_key(reserve.key_path)  # another key in its place
    with db.connect() as c:
        checkpoints = c.execute(text("SELECT count(*) FROM checkpoints")).scalar_one()
    code, report = audit(reserve)
    assert code == 1 and report["checkpoint_id"] is None
    [f] = [f for f in report["findings"] if f["code"] == "signing-key"]
    assert "key mismatch" in f["message"] and "restore the original signing key file" in f["advice"]
    with db.connect() as c:
        assert c.execute(text("SELECT count(*) FROM checkpoints")).scalar_one() == checkpoints


def test_after_a_key_rotation_the_audit_is_clean(reserve: Reserve, node: RegtestNode, tmp_path: Path) -> None:
    vault = reserve.add_vault("rotated")
    t = node.fund(vault.address(), 1_000_000)
    reserve.ok("record", "deposit", "--vault", vault.name, "--txid", t)
    assert audit(reserve)[0] == 0  # a checkpoint signed by the first key
    new_key = tmp_path / "new.key"
    reserve.ok("ledger", "rotate-key", "--new-key", str(new_key))
    shutil.copy(new_key, reserve.key_path)  # the operator now signs with the new key
    code, report = audit(reserve)
    assert code == 0, report["findings"]
    assert report["checkpoint_id"] is not None
