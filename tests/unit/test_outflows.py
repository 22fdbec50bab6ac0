"""Vault outflows judged against the gate, pure: a signed transaction's facts (signatures read from
its witness and verified, its real vsize, its fee from the chain's amounts), the same rules as a
spend, and the ``ungated-spend`` finding for everything ``reserve spend broadcast`` did not send."""

from __future__ import annotations

from dataclasses import replace

import pytest
from bitcoin.core import CTransaction, CTxInWitness, CTxWitness
from bitcoin.core.script import CScriptWitness

from custody.chain import BlockPlace, ChainTx, TxInput, TxOutput
from custody.errors import InvalidInput
from custody.outflow_facts import SignedTx, decode_signed, transaction_facts
from custody.psbt import TxOut, UnsignedTx
from custody.spend_facts import derive_vault_scripts, input_script
from custody.spend_gate import GateFacts, evaluate, violations
from custody.spend_policy import SpendLimits
from ledger.chain.audit_report import FindingCode
from ledger.chain.outflows import Outflow, judge_outflows, ungated_findings, vault_losses
from tests.unit.test_spend_facts import (
    ALICE1,
    AMOUNT,
    BOB,
    CAROL,
    HOLDERS,
    NET,
    PATH,
    VAULT,
    Signer,
    sign,
    spend_tx,
)

SCRIPTS = derive_vault_scripts(VAULT, 10)
CHANGE = VAULT.script_pubkey(0, True)
OUTSIDE = bytes.fromhex("0014") + bytes(range(20))


def signed_raw(tx: UnsignedTx, signers: tuple[Signer, ...], *, script: bytes | None = None) -> bytes:
    """``tx`` with a P2WSH multisig witness per input (``<> sig... script``) by ``signers``."""
    _, witness_script = input_script(VAULT, PATH)
    stack = [b""] + [sign(s, tx, 0, PATH, AMOUNT)[1] for s in signers]
    wit = CTxWitness([CTxInWitness(CScriptWitness([*stack, script or witness_script]))])
    base = CTransaction.deserialize(tx.serialize())
    return bytes(CTransaction(base.vin, base.vout, base.nLockTime, base.nVersion, wit).serialize())


def facts_for(raw: bytes, **kw: object) -> tuple[SignedTx, GateFacts]:
    signed = decode_signed(raw)
    prevout_script = VAULT.script_pubkey(PATH[1], False)
    args: dict[str, object] = {
        "vault": "cold",
        "descriptor": VAULT,
        "holders": HOLDERS,
        "network": NET,
        "prevouts": {(i.txid, i.vout): (AMOUNT, prevout_script) for i in signed.tx.inputs},
        "vault_scripts": SCRIPTS,
        "other_vaults": {},
        "allowlist": {},
        "pending": {},
        "locks": {},
        "velocity_used": 0,
        "tip_height": 500,
        "quorum_height": 500,
    }
    args.update(kw)
    facts = transaction_facts(signed, **args)  # type: ignore[arg-type]
    return signed, facts


def test_a_holders_own_send_is_judged_by_the_gates_rules_on_the_signed_transaction() -> None:
    tx = spend_tx(1, [TxOut(60_000_000, OUTSIDE), TxOut(39_990_000, CHANGE)])
    raw = signed_raw(tx, (CAROL, ALICE1))
    signed, facts = facts_for(raw)
    assert signed.txid == tx.txid
    # the witness's signatures verified and attributed to holders, as for a PSBT
    assert [i.signers for i in facts.inputs] == [("alice", "carol")]
    assert facts.fee == 10_000 and facts.outgoing == 60_000_000
    # its own vsize, not the worst-case estimate
    assert facts.vsize == -(-CTransaction.deserialize(raw).calc_weight() // 4)
    results = evaluate(facts, SpendLimits(max_per_spend=50_000_000, max_fee_rate=1_000))
    broken = {r.rule for r in results if not r.ok}
    assert broken == {"outputs", "max-per-spend", "max-fee-rate"}, violations(results)
    (outputs,) = [r for r in results if r.rule == "outputs"]
    assert "not on the vault's allowlist" in outputs.detail


def test_a_witness_for_another_script_or_signer_shows_no_approval() -> None:
    tx = spend_tx(1, [TxOut(60_000_000, OUTSIDE)])
    _, facts = facts_for(signed_raw(tx, (BOB, CAROL), script=b"\x51"))
    assert facts.inputs[0].signers == ()
    one = signed_raw(tx, (BOB,))
    _, facts = facts_for(one)
    assert facts.inputs[0].signers == ("bob",)
    assert "approvals" in {r.rule for r in evaluate(facts, SpendLimits()) if not r.ok}


def test_garbage_is_no_transaction() -> None:
    with pytest.raises(InvalidInput, match="not a transaction"):
        decode_signed(b"\x01\x02")


def chain_tx(txid: str, spent: int, back: int, out: int, block: int | None = 101) -> ChainTx:
    vault_script = VAULT.script_pubkey(0, False)
    return ChainTx(
        txid,
        (TxInput("aa" * 32, 0, TxOutput(0, spent, vault_script)),),
        (TxOutput(0, back, CHANGE), TxOutput(1, out, OUTSIDE)),
        None if block is None else BlockPlace("bb" * 32, block, 1),
    )


def test_what_a_vault_lost_and_only_transactions_spending_a_vault_count() -> None:
    by_script = {VAULT.script_pubkey(0, False): "cold", CHANGE: "cold"}
    assert vault_losses(chain_tx("cc" * 32, 100, 30, 60), by_script) == {"cold": 70}
    deposit = ChainTx(
        "dd" * 32, (TxInput("aa" * 32, 0, TxOutput(0, 100, OUTSIDE)),), (TxOutput(0, 90, CHANGE),), None
    )
    assert vault_losses(deposit, by_script) == {}


def outflow(**kw: object) -> Outflow:
    tx = spend_tx(1, [TxOut(60_000_000, OUTSIDE), TxOut(39_990_000, CHANGE)])
    _, facts = facts_for(signed_raw(tx, (BOB, CAROL)))
    base = Outflow(
        txid=tx.txid,
        vault="cold",
        height=101,
        judged_at=100,
        amount=60_010_000,
        fee=10_000,
        gated=False,
        facts=facts,
        limits=SpendLimits(),
    )
    return replace(base, **kw)  # type: ignore[arg-type]


def test_every_ungated_spend_is_a_finding_until_acknowledged_and_a_gated_one_never_is() -> None:
    breaking = outflow()  # pays an address on no allowlist
    clean = outflow(facts=None, limits=None, unjudged=None, txid="ee" * 32)
    gated = outflow(gated=True, spend=4, facts=None, limits=None, txid="ff" * 32)
    checks = judge_outflows([breaking, clean, gated])
    findings = ungated_findings(checks)
    assert [f.txid for f in findings] == [breaking.txid, clean.txid]
    assert all(f.code is FindingCode.UNGATED_SPEND and f.vault == "cold" for f in findings)
    assert "never passed the gate" in findings[0].message and "outputs:" in findings[0].message
    assert "0.60010000 BTC out of the vault" in findings[0].message
    assert "breaks no rule" in findings[1].message  # not being gated is the finding itself
    assert checks[2].results == () and not checks[2].failing
    # acknowledged by the vault's holders: reported, not a finding; another vault's pair is not enough
    acked = judge_outflows([breaking], frozenset({("cold", breaking.txid)}))
    assert acked[0].acknowledged and ungated_findings(acked) == []
    assert acked[0].to_json()["acknowledged"] is True
    assert [b["rule"] for b in acked[0].to_json()["broken"]] == ["outputs"]
    other = judge_outflows([breaking], frozenset({("hot", breaking.txid)}))
    assert len(ungated_findings(other)) == 1


def test_a_proposal_sent_by_its_holders_and_a_replacement_say_so() -> None:
    sent = ungated_findings(judge_outflows([outflow(spend=7)]))[0].message
    assert "spend #7's transaction, sent by the key holders themselves" in sent
    bump = ungated_findings(judge_outflows([outflow(replaces=(3,), height=None)]))[0].message
    assert "in the mempool" in bump and "coins of spend #3 (a replacement)" in bump
    unjudged = ungated_findings(judge_outflows([outflow(facts=None, unjudged="tampered")]))[0].message
    assert "could not be judged: tampered" in unjudged
