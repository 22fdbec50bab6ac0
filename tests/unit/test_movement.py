"""Movements by net vault flow (ledger.chain.movement): plain shapes and hypothesis properties.

Every shape is booked output by output: each vault its own net flow, the fee to network-fees,
the rest to the counterparty side; postings always sum to zero.
"""

from __future__ import annotations

from collections import defaultdict

import hypothesis.strategies as st
import pytest
from hypothesis import given, settings

from custody.chain import ChainTx, TxInput, TxOutput
from ledger.chain.movement import (
    MINING_INCOME,
    NETWORK_FEES,
    UNATTRIBUTED,
    Movement,
    MovementKind,
    classify,
    describe,
    headline_amount,
    postings_for,
)
from ledger.chain.recording import Claim, flow_checked
from ledger.errors import ChainMismatch
from ledger.journal.entry import EntryDraft

BTC = 100_000_000
VAULTS = ("alpha", "beta", "gamma")
SCRIPTS = {bytes([0x00, 0x20, i, j]) + b"\x00" * 30: v for i, v in enumerate(VAULTS) for j in range(3)}
OUTSIDE = tuple(bytes([0x00, 0x14, 0xEE, j]) + b"\x00" * 18 for j in range(3))


def script(owner: str | None, k: int = 0) -> bytes:
    if owner is None:
        return OUTSIDE[k % len(OUTSIDE)]
    return [s for s, v in SCRIPTS.items() if v == owner][k % 3]


def tx(
    inputs: list[tuple[str | None, int]],
    outputs: list[tuple[str | None, int]],
    *,
    coinbase: bool = False,
    unknown_prevouts: int = 0,
) -> ChainTx:
    """Inputs ``(owner, value)`` (owner None: someone else's script); ``unknown_prevouts`` more
    inputs whose previous output the node could not show."""
    ins = [
        TxInput(f"{n:064x}", 0, TxOutput(0, value, script(owner, n)))
        for n, (owner, value) in enumerate(inputs)
    ]
    ins += [TxInput(f"{0xF000 + n:064x}", 1, None) for n in range(unknown_prevouts)]
    if coinbase:
        ins = [TxInput("00" * 32, -1, None)]
    outs = [TxOutput(i, value, script(owner, i)) for i, (owner, value) in enumerate(outputs)]
    return ChainTx("ab" * 32, tuple(ins), tuple(outs), None, coinbase=coinbase)


def legs(m: Movement, counterparty: str | None = None) -> dict[str, int]:
    out: dict[str, int] = defaultdict(int)
    for p in postings_for(m, counterparty):
        out[p.account] += p.amount
    return dict(out)


# --- plain shapes -----------------------------------------------------------------------------------


def test_one_transaction_paying_two_vaults_is_one_deposit_with_both_flows() -> None:
    m = classify(tx([(None, 10 * BTC)], [("alpha", 2 * BTC), ("beta", 3 * BTC), (None, 4 * BTC)]), SCRIPTS)
    assert m is not None and m.kind is MovementKind.DEPOSIT
    assert m.flow == {"alpha": 2 * BTC, "beta": 3 * BTC}
    assert m.fee == 0 and m.external == 0 and m.outputs == (0, 1)
    assert legs(m, "exchange") == {"alpha": 2 * BTC, "beta": 3 * BTC, "exchange": -5 * BTC}
    assert headline_amount(m) == 5 * BTC


def test_spend_paying_another_vault_outside_and_change_books_each_output_where_it_went() -> None:
    fee = 1_234
    m = classify(
        tx(
            [("alpha", 5 * BTC), ("alpha", 1 * BTC)],
            [("beta", 1 * BTC), (None, 2 * BTC), ("alpha", 3 * BTC - fee)],
        ),
        SCRIPTS,
    )
    assert m is not None and m.kind is MovementKind.TRANSFER
    assert m.flow == {"alpha": -(3 * BTC + fee), "beta": 1 * BTC}
    assert m.external == 2 * BTC and m.fee == fee
    assert legs(m, "buyer") == {"alpha": -(3 * BTC + fee), "beta": BTC, "buyer": 2 * BTC, NETWORK_FEES: fee}
    assert legs(m) == {"alpha": -(3 * BTC + fee), "beta": BTC, UNATTRIBUTED: 2 * BTC, NETWORK_FEES: fee}
    assert "2.00000000 BTC paid outside" in describe(m)


def test_plain_withdrawal_with_change() -> None:
    m = classify(tx([("alpha", 4 * BTC)], [(None, BTC), ("alpha", 3 * BTC - 500)]), SCRIPTS)
    assert m is not None and m.kind is MovementKind.WITHDRAWAL
    assert legs(m, "buyer") == {"alpha": -(BTC + 500), "buyer": BTC, NETWORK_FEES: 500}
    assert describe(m) == "withdrawal of 1.00000000 BTC from vault alpha (fee 0.00000500)"
    assert headline_amount(m) == BTC


def test_consolidation_inside_one_vault_is_the_fee_only() -> None:
    m = classify(tx([("alpha", BTC), ("alpha", BTC), ("alpha", BTC)], [("alpha", 3 * BTC - 900)]), SCRIPTS)
    assert m is not None and m.kind is MovementKind.FEE
    assert legs(m) == {"alpha": -900, NETWORK_FEES: 900}
    assert describe(m).startswith("consolidation in vault alpha")


def test_deposit_from_several_senders() -> None:
    m = classify(tx([(None, BTC), (None, 2 * BTC)], [("alpha", 2 * BTC), (None, BTC - 300)]), SCRIPTS)
    assert m is not None and m.kind is MovementKind.DEPOSIT and m.foreign_inputs
    assert legs(m, "acme") == {"alpha": 2 * BTC, "acme": -2 * BTC}
    assert describe(m) == "deposit of 2.00000000 BTC to vault alpha"


def test_deposit_whose_sender_prevouts_are_unknown() -> None:
    """A node without -txindex cannot show others' previous outputs: still a deposit, fee unknown."""
    t = tx([], [("alpha", BTC)], unknown_prevouts=2)
    assert t.fee is None
    m = classify(t, SCRIPTS)
    assert m is not None and m.kind is MovementKind.DEPOSIT and m.fee == 0
    assert legs(m) == {"alpha": BTC, UNATTRIBUTED: -BTC}


def test_coinbase_paying_two_vaults_is_mining_income() -> None:
    m = classify(tx([], [("alpha", 30 * BTC), ("beta", 20 * BTC), (None, 0)], coinbase=True), SCRIPTS)
    assert m is not None and m.kind is MovementKind.MINING
    assert legs(m) == {"alpha": 30 * BTC, "beta": 20 * BTC, MINING_INCOME: -50 * BTC}


def test_mixed_foreign_inputs_pay_no_reserve_fee() -> None:
    """A payjoin-like spend: the vault and a stranger both contribute inputs."""
    m = classify(tx([("alpha", 2 * BTC), (None, 3 * BTC)], [("alpha", BTC), (None, 4 * BTC - 700)]), SCRIPTS)
    assert m is not None and m.kind is MovementKind.WITHDRAWAL and m.foreign_inputs
    assert m.fee == 0
    assert legs(m, "buyer") == {"alpha": -BTC, "buyer": BTC}


def test_nothing_to_book() -> None:
    assert classify(tx([(None, BTC)], [(None, BTC - 10)]), SCRIPTS) is None
    # a coinbase paying no vault is nothing either
    assert classify(tx([], [(None, 50 * BTC)], coinbase=True), SCRIPTS) is None


# --- properties -------------------------------------------------------------------------------------

owners = st.sampled_from((*VAULTS, None))
values = st.integers(min_value=0, max_value=5 * BTC)


@st.composite
def transactions(draw: st.DrawFn) -> tuple[ChainTx, bool]:
    """A transaction of any shape; returns it and whether all its inputs are the reserve's."""
    coinbase = draw(st.booleans()) and draw(st.booleans())
    outputs = draw(st.lists(st.tuples(owners, values), min_size=1, max_size=6))
    if coinbase:
        return tx([], outputs, coinbase=True), False
    reserve_only = draw(st.booleans())
    in_owners = st.sampled_from(VAULTS) if reserve_only else owners
    inputs = draw(st.lists(st.tuples(in_owners, values), min_size=1, max_size=6))
    fee = draw(st.integers(min_value=0, max_value=100_000))
    need = sum(v for _, v in outputs) + fee
    have = sum(v for _, v in inputs)
    if have < need:  # top up the first input so the transaction is valid (fee >= 0)
        owner, value = inputs[0]
        inputs[0] = (owner, value + need - have)
    unknown = 0 if reserve_only else draw(st.integers(min_value=0, max_value=2))
    return tx(inputs, outputs, unknown_prevouts=unknown), reserve_only


def net_by_vault(t: ChainTx) -> dict[str, int]:
    net: dict[str, int] = defaultdict(int)
    for o in t.outputs:
        if (v := SCRIPTS.get(o.script_pubkey)) is not None:
            net[v] += o.value
    for i in t.inputs:
        if i.prevout is not None and (v := SCRIPTS.get(i.prevout.script_pubkey)) is not None:
            net[v] -= i.prevout.value
    return {v: n for v, n in net.items() if n}


@settings(max_examples=400)
@given(transactions(), st.sampled_from((None, "exchange")))
def test_postings_balance_and_each_vault_gets_its_net_flow(
    shape: tuple[ChainTx, bool], cp: str | None
) -> None:
    t, _ = shape
    m = classify(t, SCRIPTS)
    expected = net_by_vault(t)
    if m is None:
        assert expected == {}
        return
    assert m.flow == expected
    postings = postings_for(m, cp)
    assert sum(p.amount for p in postings) == 0
    assert {p.account: p.amount for p in postings if p.account in VAULTS} == expected
    assert len({p.account for p in postings}) == len(postings)  # one posting per account
    # a valid journal entry (at least two non-zero postings within the supply cap)
    EntryDraft(kind=str(m.kind), memo=describe(m), postings=postings, txid=t.txid)
    external = sum(o.value for o in t.outputs if o.script_pubkey not in SCRIPTS)
    foreign = any(i.prevout is None or i.prevout.script_pubkey not in SCRIPTS for i in t.inputs)
    if t.is_coinbase:
        assert m.fee == 0
    elif not foreign:
        assert t.fee is not None and m.fee == t.fee
        assert m.external == external
        assert m.counterparty_amount == external
        assert not m.foreign_inputs
    else:
        assert m.fee == 0  # the reserve pays no fee it cannot prove it paid
    if t.is_coinbase:
        assert m.kind is MovementKind.MINING and all(n > 0 for n in m.flow.values())
    assert headline_amount(m) >= 0


@given(transactions())
def test_kind_follows_the_flows(shape: tuple[ChainTx, bool]) -> None:
    t, _ = shape
    m = classify(t, SCRIPTS)
    if m is None or t.is_coinbase:
        return
    spent_vaults = any(i.prevout is not None and i.prevout.script_pubkey in SCRIPTS for i in t.inputs)
    foreign = any(i.prevout is None or i.prevout.script_pubkey not in SCRIPTS for i in t.inputs)
    if not spent_vaults:
        assert m.kind is MovementKind.DEPOSIT
    elif not foreign:
        if m.targets:
            assert m.kind is MovementKind.TRANSFER
        elif m.external:
            assert m.kind is MovementKind.WITHDRAWAL
        else:
            assert m.kind is MovementKind.FEE and sum(m.flow.values()) == -m.fee


# --- claims against movements (ledger.chain.recording.flow_checked) ---------------------------------------


def claim(kind: str, vault: str, to_vault: str | None = None) -> Claim:
    return Claim(kind, "ab" * 32, vault, to_vault=to_vault)


def test_a_claim_must_name_a_vault_moving_the_claimed_way() -> None:
    two_vaults = classify(tx([(None, 10 * BTC)], [("alpha", 2 * BTC), ("beta", 3 * BTC)]), SCRIPTS)
    mixed = classify(
        tx([("alpha", 6 * BTC)], [("beta", BTC), (None, 2 * BTC), ("alpha", 3 * BTC - 100)]), SCRIPTS
    )
    consolidation = classify(tx([("alpha", BTC), ("alpha", BTC)], [("alpha", 2 * BTC - 50)]), SCRIPTS)
    assert two_vaults is not None and mixed is not None and consolidation is not None

    assert flow_checked(two_vaults, claim("deposit", "beta")) == 3 * BTC
    assert flow_checked(mixed, claim("withdrawal", "alpha")) == 2 * BTC  # what left for outside
    assert flow_checked(mixed, claim("transfer", "alpha", "beta")) == BTC  # what the target gained
    refusals = [
        (two_vaults, claim("deposit", "gamma")),  # not paid
        (two_vaults, claim("withdrawal", "alpha")),  # gained, not lost
        (two_vaults, claim("mining", "alpha")),  # not a coinbase
        (mixed, claim("deposit", "beta")),  # a vault paid it: a transfer, not a deposit
        (mixed, claim("withdrawal", "beta")),
        (mixed, claim("transfer", "beta", "alpha")),  # the wrong way round
        (mixed, claim("transfer", "alpha", "gamma")),
        (consolidation, claim("withdrawal", "alpha")),  # nothing left for outside
        (consolidation, claim("transfer", "alpha", "alpha")),
    ]
    for m, c in refusals:
        with pytest.raises(ChainMismatch, match=f"not a {c.kind} of vault {c.vault}"):
            flow_checked(m, c)
