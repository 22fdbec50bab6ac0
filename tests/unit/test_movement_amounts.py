"""Movement amounts as arithmetic (ledger.chain.movement): fee = inputs - outputs, every satoshi
accounted for, postings that sum to zero with each leg where the docstring says, and a
classification that does not depend on the order of inputs and outputs."""

from __future__ import annotations

import random

import hypothesis.strategies as st
from hypothesis import given, settings

from custody.chain import ChainTx
from ledger.chain.movement import (
    MINING_INCOME,
    NETWORK_FEES,
    UNATTRIBUTED,
    MovementKind,
    classify,
    describe,
    headline_amount,
    postings_for,
)
from tests.unit.test_movement import BTC, SCRIPTS, VAULTS, transactions, tx


def reserve_in(t: ChainTx) -> int:
    return sum(
        i.prevout.value for i in t.inputs if i.prevout is not None and i.prevout.script_pubkey in SCRIPTS
    )


def reserve_out(t: ChainTx) -> int:
    return sum(o.value for o in t.outputs if o.script_pubkey in SCRIPTS)


def outside_out(t: ChainTx) -> int:
    return sum(o.value for o in t.outputs if o.script_pubkey not in SCRIPTS)


@settings(max_examples=300)
@given(transactions())
def test_a_reserve_only_spend_accounts_for_every_satoshi(shape: tuple[ChainTx, bool]) -> None:
    t, reserve_only = shape
    m = classify(t, SCRIPTS)
    if m is None or not reserve_only:
        return
    spent = sum(i.prevout.value for i in t.inputs if i.prevout is not None)
    assert m.fee == spent - sum(o.value for o in t.outputs)  # fee = inputs - outputs
    assert m.external == outside_out(t)
    assert m.net == reserve_out(t) - reserve_in(t) == -(m.external + m.fee)
    assert m.counterparty_amount == m.external


@settings(max_examples=300)
@given(transactions(), st.sampled_from((None, "exchange")))
def test_postings_sum_to_zero_with_the_fee_and_the_rest_on_their_own_legs(
    shape: tuple[ChainTx, bool], counterparty: str | None
) -> None:
    t, _ = shape
    m = classify(t, SCRIPTS)
    if m is None:
        return
    postings = postings_for(m, counterparty)
    assert sum(p.amount for p in postings) == 0
    assert all(p.amount != 0 for p in postings)
    by_account = {p.account: p.amount for p in postings}
    assert by_account.get(NETWORK_FEES, 0) == m.fee >= 0
    other = MINING_INCOME if m.kind is MovementKind.MINING else (counterparty or UNATTRIBUTED)
    assert by_account.get(other, 0) == m.counterparty_amount
    assert set(by_account) <= {*VAULTS, NETWORK_FEES, other}


@settings(max_examples=200)
@given(transactions(), st.randoms(use_true_random=False))
def test_the_order_of_inputs_and_outputs_does_not_change_the_movement(
    shape: tuple[ChainTx, bool], rnd: random.Random
) -> None:
    t, _ = shape
    inputs, outputs = list(t.inputs), list(t.outputs)
    rnd.shuffle(inputs)
    rnd.shuffle(outputs)
    shuffled = ChainTx(t.txid, tuple(inputs), tuple(outputs), t.block, coinbase=t.coinbase)
    a, b = classify(t, SCRIPTS), classify(shuffled, SCRIPTS)
    if a is None or b is None:
        assert a is b is None
        return
    assert (a.kind, a.flows, a.external, a.fee, a.foreign_inputs) == (
        b.kind,
        b.flows,
        b.external,
        b.fee,
        b.foreign_inputs,
    )
    assert sorted(a.outputs) == sorted(b.outputs)
    assert postings_for(a) == postings_for(b)


@given(st.integers(min_value=1, max_value=20_999_999 * BTC))
def test_a_deposit_of_any_amount_is_booked_and_quoted_at_that_amount(sat: int) -> None:
    m = classify(tx([(None, sat + 1_000)], [("alpha", sat)]), SCRIPTS)
    assert m is not None and m.kind is MovementKind.DEPOSIT and m.fee == 0
    assert headline_amount(m) == sat
    assert {p.account: p.amount for p in postings_for(m, "exchange")} == {"alpha": sat, "exchange": -sat}


@given(
    st.integers(min_value=1, max_value=10 * BTC),
    st.integers(min_value=1, max_value=10 * BTC),
    st.integers(min_value=0, max_value=100_000),
)
def test_a_withdrawal_with_change_quotes_what_left_and_books_the_fee(
    paid: int, change: int, fee: int
) -> None:
    m = classify(tx([("alpha", paid + change + fee)], [(None, paid), ("alpha", change)]), SCRIPTS)
    assert m is not None and m.kind is MovementKind.WITHDRAWAL
    assert (m.external, m.fee, m.flow) == (paid, fee, {"alpha": -(paid + fee)})
    assert headline_amount(m) == paid
    postings = {p.account: p.amount for p in postings_for(m, "buyer")}
    assert postings == {"alpha": -(paid + fee), "buyer": paid, **({NETWORK_FEES: fee} if fee else {})}


@given(st.integers(min_value=1, max_value=10 * BTC), st.integers(min_value=1, max_value=100_000))
def test_a_transfer_books_source_target_and_fee(sat: int, fee: int) -> None:
    m = classify(tx([("alpha", sat + fee)], [("beta", sat)]), SCRIPTS)
    assert m is not None and m.kind is MovementKind.TRANSFER
    assert m.flow == {"alpha": -(sat + fee), "beta": sat} and m.fee == fee and m.external == 0
    assert headline_amount(m) == sat
    assert {p.account: p.amount for p in postings_for(m)} == {
        "alpha": -(sat + fee),
        "beta": sat,
        NETWORK_FEES: fee,
    }
    assert describe(m).startswith("transfer of ") and "from vault alpha to vault beta" in describe(m)


def test_a_coinbase_is_mining_income_and_quotes_the_reward() -> None:
    m = classify(tx([], [("alpha", 50 * BTC), (None, 0)], coinbase=True), SCRIPTS)
    assert m is not None and m.kind is MovementKind.MINING and m.fee == 0
    assert headline_amount(m) == 50 * BTC
    assert {p.account: p.amount for p in postings_for(m, "ignored")} == {
        "alpha": 50 * BTC,
        MINING_INCOME: -50 * BTC,
    }
    assert describe(m) == "mining reward of 50.00000000 BTC to vault alpha"


def test_a_consolidation_quotes_and_books_only_the_fee() -> None:
    m = classify(tx([("alpha", BTC), ("alpha", BTC)], [("alpha", 2 * BTC - 300)]), SCRIPTS)
    assert m is not None and m.kind is MovementKind.FEE
    assert headline_amount(m) == m.fee == 300
    assert {p.account: p.amount for p in postings_for(m)} == {"alpha": -300, NETWORK_FEES: 300}
