"""Any transaction shape is booked output by output, once, by ``record`` and by ``sync``.

Every test runs against a node with ``-txindex`` and one without (``node`` is overridden by the
parametrized ``chain_node``), on SQLite and PostgreSQL. Vault balances in the books are compared
with the vault's watch-only wallet to the satoshi, and all postings sum to zero.
"""

from __future__ import annotations

from collections.abc import Iterator
from decimal import Decimal
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from custody.amount import btc_decimal, sat_from_rpc
from custody.rpc import RpcClient
from custody.wallet import vault_wallet_name
from ledger.journal.balances import balance
from regtest.node import RegtestNode
from regtest.signers import DemoSigner, spend_from_vault
from tests.fixtures.reserve import Reserve

if TYPE_CHECKING:
    from tests.fixtures.reserve import TestVault

BTC = 100_000_000


@pytest.fixture
def node(chain_node: RegtestNode) -> RegtestNode:
    """Every test of this module on a node with and one without ``-txindex``."""
    return chain_node


@pytest.fixture
def db(reserve: Reserve) -> Iterator[Engine]:
    engine = reserve.engine()
    yield engine
    engine.dispose()


# --- helpers (also used by the other record/sync test modules) --------------------------------------


def signers_for(node: RegtestNode, vault: TestVault) -> list[DemoSigner]:
    """Two of the vault's three key holders, ready to sign on ``node``."""
    keys = tuple(vault.keys.values())
    signers = []
    for holder in ("ministry", "regulator"):
        s = DemoSigner(holder, vault.seeds[holder])
        s.import_vault(node.rpc(), 2, keys)
        signers.append(s)
    return signers


def spend(node: RegtestNode, vault: TestVault, outputs: dict[str, int]) -> str:
    """A 2-of-3 spend from ``vault`` (change back to the vault), broadcast, not mined."""
    txid = spend_from_vault(node.rpc(), vault_wallet_name(vault.name), signers_for(node, vault), outputs)
    node.sync_wallets()
    return txid


def wallet_balance(node: RegtestNode, vault: TestVault) -> int:
    """What the vault's watch-only wallet holds, confirmed and immature."""
    mine = node.rpc().wallet(vault_wallet_name(vault.name)).call("getbalances")["mine"]
    return sat_from_rpc(mine["trusted"]) + sat_from_rpc(mine["immature"])


def ledger_balances(db: Engine) -> dict[str, int]:
    with Session(db) as s, s.begin():
        return {a.name: a.amount for a in balance(s).accounts}


def entries_of(db: Engine, txid: str) -> int:
    with db.connect() as c:
        return int(c.execute(text("SELECT count(*) FROM entries WHERE txid = :t"), {"t": txid}).scalar_one())


def postings_total(db: Engine) -> int:
    with db.connect() as c:
        return int(c.execute(text("SELECT coalesce(sum(amount), 0) FROM postings")).scalar_one())


def legs(result: dict[str, object]) -> dict[str, int]:
    postings = result["postings"]
    assert isinstance(postings, list)
    return {str(p["account"]): int(p["amount_sat"]) for p in postings}


def wallet_fee(node: RegtestNode, vault: TestVault, txid: str) -> int:
    """The fee of a vault's own spend, as its wallet computes it."""
    fee = node.rpc().wallet(vault_wallet_name(vault.name)).call("gettransaction", txid, True)["fee"]
    return -sat_from_rpc(Decimal(fee))


def send_many(node: RegtestNode, outputs: dict[str, int]) -> str:
    node.ensure_mature_funds(sum(outputs.values()) + BTC)
    return str(node.miner().call("sendmany", "", {a: btc_decimal(v) for a, v in outputs.items()}))


def ungated_only(reserve: Reserve) -> set[str]:
    """Run the audit: its findings must all be ``ungated-spend`` (the spends these tests shape are
    the holders' own, sent past the gate); returns those transactions."""
    audit = reserve.run("audit", "--json")
    findings = audit.json()["findings"]
    others = [f for f in findings if f["code"] != "ungated-spend"]
    assert not others, others
    assert audit.code == (1 if findings else 0), (audit.code, findings)
    return {str(f["txid"]) for f in findings}


def assert_books_match_chain(
    reserve: Reserve, db: Engine, node: RegtestNode, *vaults: TestVault, ungated: set[str] | None = None
) -> None:
    """Each vault's balance in the books is what its wallet holds, postings sum to zero, and the
    audit reconciles: its only findings are the ungated spends ``ungated`` (when given)."""
    books = ledger_balances(db)
    for v in vaults:
        assert books.get(v.name, 0) == wallet_balance(node, v), v.name
    assert postings_total(db) == 0
    found = ungated_only(reserve)
    if ungated is not None:
        assert found == ungated, (found, ungated)


# --- shapes -----------------------------------------------------------------------------------------


def test_one_transaction_paying_two_vaults_is_booked_once(
    reserve: Reserve, node: RegtestNode, db: Engine
) -> None:
    a = reserve.add_vault("pay2a")
    b = reserve.add_vault("pay2b")
    reserve.ok("account", "add", "acme", "--type", "counterparty")
    recorded = send_many(node, {a.address(): 150_000_000, b.address(): 25_000_000})
    synced = send_many(node, {a.address(): 7_000_000, b.address(): 3_000_000, a.address(): 1_000})
    node.mine(1)

    r = reserve.ok(
        "record",
        "deposit",
        "--vault",
        b.name,
        "--txid",
        recorded,
        "--from",
        "acme",
        "--amount",
        "0.25",
        "--json",
    )
    assert legs(r.json()) == {a.name: 150_000_000, b.name: 25_000_000, "acme": -175_000_000}

    # sync of each vault, then of all: the other transaction once, with both vaults' flows
    done = reserve.ok("sync", "--vault", b.name, "--json").json()
    assert [(m["txid"], m["flows_sat"]) for m in done["movements"]] == [
        (synced, {a.name: 7_001_000, b.name: 3_000_000})
    ]
    assert done["skipped"] == []
    assert reserve.ok("sync", "--vault", a.name, "--json").json()["movements"] == []
    assert reserve.ok("sync", "--json").json()["movements"] == []
    assert entries_of(db, recorded) == entries_of(db, synced) == 1
    assert_books_match_chain(reserve, db, node, a, b, ungated=set())


def test_a_spend_paying_another_vault_and_outside_is_one_entry(
    reserve: Reserve, node: RegtestNode, db: Engine
) -> None:
    a = reserve.add_vault("mixa")
    b = reserve.add_vault("mixb")
    reserve.ok("account", "add", "buyer", "--type", "counterparty")
    node.fund(a.address(), 5 * BTC)
    node.fund(a.address(), 5 * BTC)
    reserve.ok("sync")
    outside = str(node.miner().call("getnewaddress"))
    t = spend(node, a, {b.address(): 1 * BTC, outside: 2 * BTC})
    node.mine(1)
    fee = wallet_fee(node, a, t)
    assert fee > 0

    wrong = reserve.run(
        "record", "transfer", "--from-vault", a.name, "--to-vault", b.name, "--txid", t, "--amount", "2"
    )
    assert (
        wrong.code == 2
        and "amount mismatch: you said 2.00000000 BTC" in wrong.err
        and "1.00000000" in wrong.err
    )
    r = reserve.ok(
        "record", "withdrawal", "--vault", a.name, "--txid", t, "--to", "buyer", "--amount", "2", "--json"
    )
    assert legs(r.json()) == {
        a.name: -(3 * BTC + fee),
        b.name: 1 * BTC,
        "buyer": 2 * BTC,
        "network-fees": fee,
    }
    assert reserve.ok("sync", "--json").json()["movements"] == []

    # the same shape through sync: the outside leg goes to unattributed, never to a vault
    t2 = spend(node, a, {b.address(): 50_000_000, outside: 20_000_000})
    node.mine(1)
    fee2 = wallet_fee(node, a, t2)
    [m] = reserve.ok("sync", "--vault", b.name, "--json").json()["movements"]
    assert m["txid"] == t2 and m["kind"] == "transfer"
    assert m["flows_sat"] == {a.name: -(70_000_000 + fee2), b.name: 50_000_000}
    assert m["external_sat"] == 20_000_000 and m["fee_sat"] == fee2
    assert entries_of(db, t) == entries_of(db, t2) == 1
    assert_books_match_chain(reserve, db, node, a, b, ungated={t, t2})


def test_a_transfer_synced_from_one_side_is_booked_once_with_both_legs(
    reserve: Reserve, node: RegtestNode, db: Engine
) -> None:
    a = reserve.add_vault("froma")
    b = reserve.add_vault("tob")
    node.fund(a.address(), 3 * BTC)
    reserve.ok("sync", "--vault", a.name)
    t = spend(node, a, {b.address(): BTC})
    node.mine(1)
    fee = wallet_fee(node, a, t)
    [m] = reserve.ok("sync", "--vault", a.name, "--json").json()["movements"]
    assert (m["txid"], m["kind"]) == (t, "transfer")
    assert m["flows_sat"] == {a.name: -(BTC + fee), b.name: BTC}
    assert reserve.ok("sync", "--vault", b.name, "--json").json()["movements"] == []
    assert entries_of(db, t) == 1
    assert_books_match_chain(reserve, db, node, a, b, ungated={t})


def test_a_consolidation_inside_one_vault_books_the_fee_only(
    reserve: Reserve, node: RegtestNode, db: Engine
) -> None:
    a = reserve.add_vault("consol")
    for _ in range(3):
        node.fund(a.address(), BTC)
    reserve.ok("sync")
    t = spend(node, a, {a.address(): 2 * BTC + 50_000_000})  # needs all three coins; change to a
    node.mine(1)
    fee = wallet_fee(node, a, t)
    [m] = reserve.ok("sync", "--json").json()["movements"]
    assert (m["txid"], m["kind"]) == (t, "fee")
    assert m["flows_sat"] == {a.name: -fee} and m["fee_sat"] == fee and m["external_sat"] == 0
    refused = reserve.run("record", "withdrawal", "--vault", a.name, "--txid", t, "--to", "unattributed")
    assert refused.code == 2 and "not a withdrawal" in refused.err
    assert_books_match_chain(reserve, db, node, a, ungated={t})


def test_a_deposit_with_inputs_of_two_senders(
    reserve: Reserve, node: RegtestNode, db: Engine, new_wallet: object
) -> None:
    a = reserve.add_vault("twosend")
    reserve.ok("account", "add", "acme", "--type", "counterparty")
    assert callable(new_wallet)
    senders: list[RpcClient] = [new_wallet(), new_wallet()]
    for s in senders:
        node.fund(str(s.call("getnewaddress")), BTC)
    coins = [s.call("listunspent")[0] for s in senders]
    amount = sum(sat_from_rpc(c["amount"]) for c in coins) - 10_000
    rpc = node.rpc()
    psbt = rpc.call(
        "createpsbt",
        [{"txid": c["txid"], "vout": c["vout"]} for c in coins],
        [{a.address(): btc_decimal(amount)}],
    )
    for s in senders:
        psbt = s.call("walletprocesspsbt", psbt)["psbt"]
    final = rpc.call("finalizepsbt", psbt)
    assert final["complete"]
    t = str(rpc.call("sendrawtransaction", final["hex"]))
    node.mine(1)
    r = reserve.ok(
        "record",
        "deposit",
        "--vault",
        a.name,
        "--txid",
        t,
        "--from",
        "acme",
        "--amount",
        f"{amount}sat",
        "--json",
    )
    assert legs(r.json()) == {a.name: amount, "acme": -amount}
    assert_books_match_chain(reserve, db, node, a, ungated=set())
