"""The policy gate on plain facts: every rule passes and fails, exactly at its boundary."""

from __future__ import annotations

from dataclasses import replace
from fractions import Fraction

import pytest
from hypothesis import given
from hypothesis import strategies as st

from custody.errors import InvalidInput
from custody.spend_gate import (
    RULES,
    Destination,
    GateFacts,
    InputFact,
    OutputFact,
    RuleResult,
    evaluate,
    sat_per_vb,
    violations,
)
from custody.spend_policy import SpendLimits

HOLDERS = ("alice", "bob", "carol")
TXID = "ab" * 32


def inp(
    n: int = 0, amount: int | None = 100_000_000, signers: tuple[str, ...] = ("alice", "bob"), **kw: object
) -> InputFact:
    path = kw.pop("path", (0, n))
    return InputFact(f"{TXID}:{n}", amount, path, signers, **kw)  # type: ignore[arg-type]


def out(
    index: int, amount: int, destination: Destination = Destination.ALLOWLIST, name: str | None = "exchange"
) -> OutputFact:
    return OutputFact(index, amount, f"bcrt1qaddr{index}", destination, name)


def facts(**changes: object) -> GateFacts:
    """A 2-of-3 spend of one 1 BTC input: 0.4 BTC to an allowlisted exchange, 0.5999 BTC change,
    fee 10,000 sat over 200 vB (50 sat/vB)."""
    base = GateFacts(
        vault="cold",
        threshold=2,
        inputs=(inp(),),
        outputs=(out(0, 40_000_000), out(1, 59_990_000, Destination.CHANGE, None)),
        fee=10_000,
        vsize=200,
        velocity_used=0,
        tip_height=500,
        quorum_height=490,
        holders=HOLDERS,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def result(f: GateFacts, rule: str, limits: SpendLimits | None = None) -> RuleResult:
    (found,) = [r for r in evaluate(f, limits or SpendLimits()) if r.rule == rule]
    return found


def test_every_rule_is_reported_in_order_and_a_clean_spend_passes_all() -> None:
    results = evaluate(facts(), SpendLimits())
    assert tuple(r.rule for r in results) == RULES
    assert all(r.ok for r in results), violations(results)
    assert violations(results) == ()


def test_violations_lists_failed_rules_with_their_detail() -> None:
    results = (RuleResult("a", True, "fine"), RuleResult("b", False, "too much"))
    assert violations(results) == ("b: too much",)


# --- inputs ---


def test_inputs_pass_names_the_total() -> None:
    r = result(facts(inputs=(inp(0), inp(1, 50_000_000))), "inputs")
    assert r.ok and "2 input(s), 1.50000000 BTC in all" in r.detail and "cold" in r.detail


def test_an_input_the_node_does_not_know_unspent_fails() -> None:
    r = result(facts(inputs=(inp(0), inp(1, None))), "inputs")
    assert not r.ok and f"{TXID}:1 is not an unspent output" in r.detail
    assert f"{TXID}:0" not in r.detail


def test_an_input_not_derived_from_the_vault_fails() -> None:
    r = result(facts(inputs=(inp(0, 30_000, path=None),)), "inputs")
    assert not r.ok and "0.00030000 BTC" in r.detail and "not an output of vault cold" in r.detail


def test_an_input_given_twice_fails() -> None:
    r = result(facts(inputs=(inp(0), inp(0))), "inputs")
    assert not r.ok and f"{TXID}:0 is spent twice" in r.detail


def test_no_inputs_fail() -> None:
    assert not result(facts(inputs=()), "inputs").ok
    assert not result(facts(inputs=()), "approvals").ok


# --- outputs ---


def test_change_vault_and_allowlist_outputs_pass() -> None:
    outputs = (
        out(0, 1000),
        out(1, 2000, Destination.VAULT, "hot"),
        out(2, 3000, Destination.CHANGE, None),
    )
    r = result(facts(outputs=outputs), "outputs")
    assert r.ok
    assert "#0 0.00001000 BTC to bcrt1qaddr0 (allowlist exchange)" in r.detail
    assert "#1 0.00002000 BTC to bcrt1qaddr1 (vault hot)" in r.detail
    assert "(change)" in r.detail


def test_a_pending_allowlist_output_fails_saying_when_it_becomes_active() -> None:
    pending = OutputFact(0, 1000, "bcrt1qnew", Destination.PENDING_ALLOWLIST, "newco", active_at=644)
    r = result(facts(outputs=(pending,)), "outputs")
    assert not r.ok and "newco" in r.detail and "active at height 644" in r.detail and "tip 500" in r.detail


def test_an_unknown_output_fails_with_its_address_and_amount() -> None:
    r = result(facts(outputs=(out(0, 1000), out(1, 5000, Destination.UNKNOWN, None))), "outputs")
    assert not r.ok
    assert "#1 0.00005000 BTC to bcrt1qaddr1" in r.detail and "not on the vault's allowlist" in r.detail
    assert "#0" not in r.detail


def test_no_outputs_fail() -> None:
    assert not result(facts(outputs=()), "outputs").ok


# --- locks ---


def test_an_input_held_by_another_open_spend_fails_naming_it() -> None:
    assert result(facts(), "locks").ok
    r = result(facts(inputs=(inp(0), inp(1, locked_by=7))), "locks")
    assert not r.ok and f"{TXID}:1 is held by open spend #7" in r.detail and f"{TXID}:0" not in r.detail


# --- approvals ---


def test_threshold_of_distinct_holders_passes_and_names_who_is_missing() -> None:
    r = result(facts(), "approvals")
    assert r.ok
    assert "signed by alice, bob (2 distinct holder(s), 2 needed), not signed by carol" in r.detail


def test_one_signature_short_fails_per_input() -> None:
    f = facts(inputs=(inp(0), inp(1, signers=("carol",))))
    r = result(f, "approvals")
    assert not r.ok
    assert f"input {TXID}:0: signed by alice, bob" in r.detail
    assert f"input {TXID}:1: signed by carol (1 distinct holder(s), 2 needed)" in r.detail
    assert "not signed by alice, bob: 1 more signature(s) needed" in r.detail


def test_inputs_with_the_same_signers_are_reported_together() -> None:
    f = facts(inputs=tuple(inp(n) for n in range(200)))
    r = result(f, "approvals")
    assert r.ok and r.detail.startswith("every input: signed by alice, bob") and TXID not in r.detail


def test_no_signature_names_nobody() -> None:
    r = result(facts(inputs=(inp(signers=()),)), "approvals")
    assert not r.ok and "signed by nobody" in r.detail and "2 more" in r.detail


def test_a_refused_signature_fails_approvals_even_with_quorum() -> None:
    f = facts(
        inputs=(
            inp(signers=("alice", "bob", "carol"), refusals=("key 02ab.. is not in this input's script",)),
        )
    )
    r = result(f, "approvals")
    assert not r.ok and "refused: input" in r.detail and "02ab" in r.detail


def test_a_holder_cannot_be_a_signer_twice() -> None:
    with pytest.raises(InvalidInput, match="counts once"):
        inp(signers=("alice", "alice"))


# --- required holders ---


def test_required_holders_none_set_passes() -> None:
    assert result(facts(), "required-holders").ok


def test_a_required_holder_who_signed_every_input_passes() -> None:
    r = result(facts(), "required-holders", SpendLimits(required_holders=("alice",)))
    assert r.ok and "alice" in r.detail


def test_a_required_holder_missing_on_one_input_fails() -> None:
    f = facts(inputs=(inp(0, signers=("carol", "bob")), inp(1, signers=("alice", "bob"))))
    r = result(f, "required-holders", SpendLimits(required_holders=("alice", "bob")))
    assert not r.ok and r.detail == f"required holder alice has not signed input {TXID}:0"


def test_a_required_holder_without_a_key_in_the_vault_fails() -> None:
    r = result(facts(), "required-holders", SpendLimits(required_holders=("central-bank",)))
    assert not r.ok and "central-bank holds no key of vault cold" in r.detail


# --- max per spend ---


def test_max_per_spend_exactly_at_the_limit_passes_one_sat_over_fails() -> None:
    # outgoing is the 0.4 BTC to the exchange: change and the fee are not counted
    at = result(facts(), "max-per-spend", SpendLimits(max_per_spend=40_000_000))
    assert at.ok and "outgoing 0.40000000 BTC" in at.detail and "fee is not counted" in at.detail
    over = result(facts(), "max-per-spend", SpendLimits(max_per_spend=39_999_999))
    assert not over.ok and "above the limit 0.39999999 BTC by 0.00000001 BTC" in over.detail


def test_max_per_spend_counts_transfers_to_other_vaults() -> None:
    f = facts(outputs=(out(0, 1000), out(1, 2000, Destination.VAULT, "hot"), out(2, 9, Destination.CHANGE)))
    assert f.outgoing == 3000 and f.change == 9
    assert not result(f, "max-per-spend", SpendLimits(max_per_spend=2999)).ok


def test_max_per_spend_unset_passes() -> None:
    r = result(facts(), "max-per-spend")
    assert r.ok and "no per-spend limit" in r.detail


# --- velocity ---


def test_velocity_exactly_at_the_limit_passes_one_sat_over_fails() -> None:
    # the spend weighs its outgoing amount and its fee, as it will once booked
    f = facts(velocity_used=59_990_000)
    at = result(f, "velocity", SpendLimits(velocity_limit=100_000_000, velocity_window=72))
    assert at.ok
    assert at.detail == (
        "0.59990000 BTC left vault cold in the last 72 blocks (fees included) + 0.40000000 BTC in "
        "this spend + its fee 0.00010000 BTC = 1.00000000 BTC <= limit 1.00000000 BTC"
    )
    over = result(f, "velocity", SpendLimits(velocity_limit=99_999_999))
    assert not over.ok and "by 0.00000001 BTC" in over.detail


def test_velocity_counts_no_fee_it_cannot_know() -> None:
    unknown = facts(inputs=(inp(amount=None),), velocity_used=60_000_000)
    assert result(unknown, "velocity", SpendLimits(velocity_limit=100_000_000)).ok


def test_velocity_unset_passes() -> None:
    assert result(facts(velocity_used=10**15), "velocity").ok


# --- fee rate and fee ---


def test_fee_rate_exactly_at_the_limit_passes_one_sat_over_fails() -> None:
    # 10,000 sat / 200 vB = 50 sat/vB = 50,000 sat/kvB
    at = result(facts(), "max-fee-rate", SpendLimits(max_fee_rate=50_000))
    assert at.ok and "50.000 sat/vB <= limit 50.000 sat/vB" in at.detail and "200 vB" in at.detail
    over = result(facts(fee=10_001), "max-fee-rate", SpendLimits(max_fee_rate=50_000))
    assert not over.ok and "50.005 sat/vB is above the limit 50.000 sat/vB" in over.detail


def test_fee_rate_is_compared_exactly_not_after_rounding() -> None:
    # 1001 sat over 3 vB = 333,666.67 sat/kvB: above a 333,666 sat/kvB cap, below 333,667
    assert not result(facts(fee=1001, vsize=3), "max-fee-rate", SpendLimits(max_fee_rate=333_666)).ok
    assert result(facts(fee=1001, vsize=3), "max-fee-rate", SpendLimits(max_fee_rate=333_667)).ok


@given(
    fee=st.integers(0, 10**8),
    vsize=st.integers(1, 10**6),
    cap=st.integers(0, 100_000_000),
)
def test_fee_rate_rule_is_exact_rational_comparison(fee: int, vsize: int, cap: int) -> None:
    ok = result(facts(fee=fee, vsize=vsize), "max-fee-rate", SpendLimits(max_fee_rate=cap, max_fee=10**8)).ok
    assert ok == (Fraction(fee * 1000, vsize) <= cap)


def test_fee_rules_fail_when_an_input_amount_is_unknown() -> None:
    f = facts(inputs=(inp(0), inp(1, None)))
    for rule in ("max-fee-rate", "max-fee"):
        r = result(f, rule)
        assert not r.ok and "fee cannot be known" in r.detail and f"{TXID}:1" in r.detail


def test_a_negative_fee_fails() -> None:
    assert not result(facts(fee=-1), "max-fee").ok
    assert not result(facts(fee=-1), "max-fee-rate").ok


def test_an_impossible_size_fails_the_fee_rate() -> None:
    assert not result(facts(vsize=0), "max-fee-rate").ok


def test_max_fee_exactly_at_the_limit_passes_one_sat_over_fails() -> None:
    at = result(facts(), "max-fee", SpendLimits(max_fee=10_000))
    assert at.ok and at.detail == "fee 0.00010000 BTC <= limit 0.00010000 BTC"
    over = result(facts(), "max-fee", SpendLimits(max_fee=9_999))
    assert not over.ok and "by 0.00000001 BTC" in over.detail


def test_sat_per_vb_shows_three_decimals() -> None:
    assert sat_per_vb(2500) == "2.500 sat/vB"
    assert sat_per_vb(1) == "0.001 sat/vB"


# --- delay ---


def test_no_delay_set_passes() -> None:
    assert result(facts(quorum_height=None), "delay").ok


def test_a_spend_at_delay_above_is_not_delayed() -> None:
    r = result(facts(quorum_height=None), "delay", SpendLimits(delay_above=40_000_000, delay_blocks=6))
    assert r.ok and "no delay applies" in r.detail


def test_a_delayed_spend_may_go_exactly_delay_blocks_after_quorum() -> None:
    limits = SpendLimits(delay_above=39_999_999, delay_blocks=10)
    at = result(facts(quorum_height=490, tip_height=500), "delay", limits)
    assert at.ok and "may be broadcast from height 500" in at.detail
    early = result(facts(quorum_height=490, tip_height=499), "delay", limits)
    assert not early.ok
    assert "quorum reached at height 490, it may be broadcast from height 500" in early.detail
    assert "1 block(s) to go" in early.detail


def test_a_delayed_spend_without_quorum_fails() -> None:
    r = result(facts(quorum_height=None), "delay", SpendLimits(delay_above=0, delay_blocks=3))
    assert not r.ok and "quorum is not reached yet" in r.detail and "3 block(s)" in r.detail


def test_every_failure_at_once_is_listed() -> None:
    f = facts(
        inputs=(inp(0, None, signers=("alice",), locked_by=3),),
        outputs=(out(0, 5000, Destination.UNKNOWN, None),),
        quorum_height=None,
    )
    limits = SpendLimits(
        max_per_spend=1, velocity_limit=1, delay_above=1, delay_blocks=1, required_holders=("bob",)
    )
    assert {v.split(":")[0] for v in violations(evaluate(f, limits))} == set(RULES)
