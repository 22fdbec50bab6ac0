"""Every vault outflow judged against the gate, as key holders who send transactions themselves
would test it: a fee bump (RBF) of a spend the gate passed, with a higher fee and another output,
a child (CPFP) spending its unconfirmed change, the exact proposal sent before its quorum, a
payment to an address on no allowlist, one transaction spending two vaults. Each is an
``ungated-spend`` finding naming the transaction, the vault and every rule it breaks, in the
mempool and confirmed, in every later audit; a spend the gate passed is none. Velocity weighs a
spend the same before and after it is booked. One scenario per database (SQLite, PostgreSQL)
against the session's regtest node."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from custody.wallet import vault_wallet_name
from ledger.spend.events import get_spend, velocity_used
from ledger.store.db import make_engine
from regtest.node import RegtestNode
from regtest.signers import spend_from_vault
from tests.fixtures.reserve import Reserve
from tests.integration.test_attacks import btc, signers_for, spend_coins
from tests.integration.test_spend_attacks import signed_spend
from tests.integration.test_spend_lifecycle import BTC, funded_vault, mempool, outside_address, signed_by
from tests.integration.test_spend_refusals import proposal


@pytest.fixture
def runtime(reserve: Reserve) -> Iterator[Engine]:
    engine = make_engine(reserve.runtime_url)
    yield engine
    engine.dispose()


def ungated(reserve: Reserve, code: int = 1) -> dict[str, dict[str, Any]]:
    """``reserve audit``: its ungated-spend findings by ``vault:txid`` (the exit code checked)."""
    r = reserve.run("audit", "--json")
    report = r.json()
    assert r.code == code, (r.code, report["findings"])
    return {f"{f['vault']}:{f['txid']}": f for f in report["findings"] if f["code"] == "ungated-spend"}


def rules_of(finding: dict[str, Any]) -> str:
    return str(finding["message"])


def test_every_vault_outflow_is_judged_against_the_gate(
    reserve: Reserve, node: RegtestNode, runtime: Engine, tmp_path: Path
) -> None:
    setup = funded_vault(reserve, node)
    hot, cold = setup.vault, setup.other
    node.fund(cold.address(), BTC)
    reserve.ok("sync")
    # tightenings apply at once: 0.25 per spend, 20 sat/vB, spends above 0.15 wait 10 blocks after quorum
    reserve.ok(
        "policy", "set", hot.name, "--max-per-spend", "0.25", "--max-fee-rate", "20",
        "--delay-above", "0.15", "--delay-blocks", "10",
    )  # fmt: skip

    # 1. a spend the gate passed, in the mempool: no finding
    one = signed_spend(reserve, node, tmp_path, setup, "--pay", "exchange=0.1")
    gated = reserve.ok("spend", "broadcast", str(one), "--json").json()["txid"]
    assert ungated(reserve, code=0) == {}

    # 2. the holders replace it (RBF): 0.3 to the exchange at ~260 sat/vB, the rest back as change
    with Session(runtime) as s:
        [(spent_txid, spent_vout)] = get_spend(s, one).inputs
    change = hot.address(5, change=True)
    bump = spend_coins(
        node,
        [(hot, {"txid": spent_txid, "vout": spent_vout})],
        [{setup.exchange: btc(30_000_000)}, {change: btc(BTC - 30_000_000 - 50_000)}],
    )
    assert bump in mempool(node) and gated not in mempool(node)
    # 3. ... and a child (CPFP) spends the bump's unconfirmed change: breaks no rule, never gated
    child = spend_coins(
        node,
        [(hot, {"txid": bump, "vout": 1})],
        [{setup.exchange: btc(10_000_000)}, {hot.address(6, change=True): btc(BTC - 40_000_000 - 52_000)}],
    )

    # the audit sees both in the mempool; the replaced gated spend is no outflow at all
    found = ungated(reserve)
    assert set(found) == {f"{hot.name}:{bump}", f"{hot.name}:{child}"}, found
    bumped = rules_of(found[f"{hot.name}:{bump}"])
    for words in ("max-fee-rate", "max-per-spend", "delay", "locks", "in the mempool", "never passed"):
        assert words in bumped, (words, bumped)
    assert f"coins of spend #{one}" in bumped and "above the limit 20.000 sat/vB" in bumped
    assert "breaks no rule" in rules_of(found[f"{hot.name}:{child}"])

    node.mine(1)
    synced = reserve.ok("sync", "--json").json()
    assert {c["txid"] for c in synced["ungated"]} == {bump, child}
    text = reserve.ok("sync").out
    assert "ungated" not in text  # nothing new to book: sync reports what it books
    # confirmed now, and still a finding
    found = ungated(reserve)
    assert set(found) == {f"{hot.name}:{bump}", f"{hot.name}:{child}"}
    assert f"in block {node.rpc().get_block_count()}" in rules_of(found[f"{hot.name}:{bump}"])

    # 4. the exact proposal, signed by two holders and sent before the books saw its quorum
    two, psbt_file = proposal(reserve, tmp_path, setup, "--pay", "exchange=0.2")
    files = signed_by(node, setup, psbt_file, tmp_path, "ministry", "regulator")
    rpc = node.rpc()
    final = rpc.call("finalizepsbt", rpc.call("combinepsbt", [f.read_text().strip() for f in files]))
    early = str(rpc.call("sendrawtransaction", final["hex"]))
    # 5. the holders' own payment to an address on no allowlist
    stranger = outside_address(node)
    own = spend_from_vault(rpc, vault_wallet_name(hot.name), signers_for(node, hot), {stranger: 50_000_000})
    node.mine(1)
    booked = reserve.ok("sync")
    said = f"ungated spend (a finding of every audit until acknowledged): vault {hot.name}: transaction {own}"
    assert said in booked.out, booked.out
    assert "never passed the gate" in reserve.ok("spend", "show", str(two)).out

    # 6. one transaction spending a coin of each vault to the stranger
    hot_coin = next(c for c in _coins(node, hot) if c["confirmations"] > 0)
    [cold_coin] = _coins(node, cold)
    total = _sat(hot_coin["amount"]) + _sat(cold_coin["amount"])
    both = spend_coins(node, [(hot, hot_coin), (cold, cold_coin)], [{stranger: btc(total - 20_000)}])
    node.mine(1)
    reserve.ok("sync")

    found = ungated(reserve)
    want = {f"{hot.name}:{t}" for t in (bump, child, early, own, both)} | {f"{cold.name}:{both}"}
    assert set(found) == want, sorted(found)
    sent_early = rules_of(found[f"{hot.name}:{early}"])
    assert f"spend #{two}'s transaction, sent by the key holders themselves" in sent_early
    assert "delay" in sent_early and "quorum is not reached yet" in sent_early
    own_rules = rules_of(found[f"{hot.name}:{own}"])
    assert "outputs" in own_rules and "not on the vault's allowlist" in own_rules and stranger in own_rules
    assert "max-per-spend: outgoing 0.50000000 BTC" in own_rules, own_rules
    assert "is above the limit 0.25000000 BTC by 0.25000000 BTC" in own_rules, own_rules
    for vault in (hot, cold):
        per_vault = rules_of(found[f"{vault.name}:{both}"])
        assert "inputs" in per_vault and f"is not an output of vault {vault.name}" in per_vault, per_vault
    assert "took 1.00000000 BTC out of the vault" in rules_of(found[f"{cold.name}:{both}"])

    # 7. a spend the gate passed, confirmed: never a finding; velocity weighs it the same before
    #    and after it is booked (its fee counted both times)
    three = signed_spend(reserve, node, tmp_path, setup, "--pay", "exchange=0.1")
    sent = reserve.ok("spend", "broadcast", str(three), "--json").json()["txid"]
    before = _velocity(runtime, hot.name, node)
    node.mine(1)
    reserve.ok("sync")
    assert _velocity(runtime, hot.name, node) == before
    again = ungated(reserve)
    assert set(again) == want  # every later audit, until acknowledged

    listed = reserve.ok("spend", "list", "--json").json()
    outflows = {(o["vault"], o["txid"]): o for o in listed["outflows"]}
    assert outflows[(hot.name, sent)]["gated"] and outflows[(hot.name, sent)]["broken"] == []
    assert outflows[(hot.name, sent)]["spend"] == three
    assert {(v, t) for (v, t), o in outflows.items() if not o["gated"]} == {
        tuple(k.split(":")) for k in want
    }
    rules = {b["rule"] for b in outflows[(hot.name, own)]["broken"]}
    assert {"outputs", "max-per-spend"} <= rules, rules
    spends = {s["spend"]: s for s in listed["spends"]}
    assert spends[three]["gated"] and not spends[two]["gated"]
    text = reserve.ok("spend", "list").out
    assert f"UNGATED {own} {hot.name}" in text and f"gated    {sent} {hot.name}" in text
    assert "never passed the gate" in text  # spend #two, sent outside


def _coins(node: RegtestNode, vault: Any) -> list[dict[str, Any]]:
    return list(node.rpc().wallet(vault_wallet_name(vault.name)).call("listunspent", 0))


def _sat(amount: Any) -> int:
    from custody.amount import sat_from_rpc

    return sat_from_rpc(amount)


def _velocity(engine: Engine, vault: str, node: RegtestNode) -> int:
    with Session(engine) as s:
        return velocity_used(s, vault, node.rpc().get_block_count(), 144)
