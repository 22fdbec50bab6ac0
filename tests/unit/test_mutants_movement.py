"""Movement classification at its boundaries, compared whole (``scripts/mutation`` survivors).

The shape tests in ``test_movement.py`` check kinds and flows; these pin every field of the
movement (txid, outputs, external, fee, foreign inputs), the one-satoshi edges of each rule and
the exact lines people read.
"""

from __future__ import annotations

import pytest

from ledger.chain.movement import Movement, MovementKind, classify, describe, headline_amount
from tests.unit.test_movement import BTC, SCRIPTS, tx

TXID = "ab" * 32
K = MovementKind


def test_mining_is_compared_whole() -> None:
    m = classify(tx([], [(None, 5), ("alpha", 3 * BTC), ("beta", 1)], coinbase=True), SCRIPTS)
    assert m == Movement(K.MINING, TXID, (("alpha", 3 * BTC), ("beta", 1)), 0, 0, (1, 2))
    assert headline_amount(m) == 3 * BTC + 1
    assert describe(m) == "mining reward of 3.00000001 BTC to vaults alpha, beta"


def test_a_deposit_of_one_satoshi() -> None:
    m = classify(tx([(None, 10)], [(None, 4), ("alpha", 1)]), SCRIPTS)
    assert m == Movement(K.DEPOSIT, TXID, (("alpha", 1),), 0, 0, (1,), True)
    assert headline_amount(m) == 1
    assert describe(m) == "deposit of 0.00000001 BTC to vault alpha"


def test_outputs_without_inputs_are_not_foreign() -> None:
    m = classify(tx([], [("alpha", 7)]), SCRIPTS)
    assert m == Movement(K.DEPOSIT, TXID, (("alpha", 7),), 0, 0, (0,), False)


def test_a_zero_value_vault_output_alone_is_nothing_to_book() -> None:
    assert classify(tx([(None, 10)], [("alpha", 0), (None, 9)]), SCRIPTS) is None


@pytest.mark.parametrize(
    ("alpha_in", "alpha_out", "beta_out", "expected"),
    [
        # others' inputs mixed in: the net decides, the fee is not the reserve's
        (5, 6, 0, Movement(K.DEPOSIT, TXID, (("alpha", 1),), 0, 0, (1,), True)),
        (5, 4, 0, Movement(K.WITHDRAWAL, TXID, (("alpha", -1),), 1, 0, (1,), True)),
        (5, 0, 5, Movement(K.TRANSFER, TXID, (("alpha", -5), ("beta", 5)), 0, 0, (1,), True)),
    ],
)
def test_payjoin_kinds_at_one_satoshi(
    alpha_in: int, alpha_out: int, beta_out: int, expected: Movement
) -> None:
    outputs = [(None, 3), ("alpha", alpha_out), ("beta", beta_out)]
    m = classify(tx([("alpha", alpha_in), (None, 100)], [o for o in outputs if o[1]]), SCRIPTS)
    assert m == expected


def test_a_foreign_transfer_is_described_by_its_flows() -> None:
    m = classify(tx([("alpha", 5), (None, 100)], [(None, 3), ("beta", 5)]), SCRIPTS)
    assert m is not None and m.kind is K.TRANSFER and m.foreign_inputs
    assert describe(m) == "transfer (alpha -0.00000005, beta +0.00000005)"


def test_a_transfer_of_one_satoshi_with_the_reserve_paying_the_fee() -> None:
    m = classify(tx([("beta", 1_000)], [("alpha", 1), ("beta", 900)]), SCRIPTS)
    assert m == Movement(K.TRANSFER, TXID, (("alpha", 1), ("beta", -100)), 0, 99, (0, 1))
    assert headline_amount(m) == 1
    assert describe(m) == "transfer of 0.00000001 BTC from vault beta to vault alpha (fee 0.00000099)"


def test_a_withdrawal_and_a_consolidation_compared_whole() -> None:
    w = classify(tx([("alpha", 1_000)], [(None, 600), ("alpha", 300)]), SCRIPTS)
    assert w == Movement(K.WITHDRAWAL, TXID, (("alpha", -700),), 600, 100, (1,))
    assert headline_amount(w) == 600
    c = classify(tx([("alpha", 1_000), ("alpha", 500)], [("alpha", 1_400)]), SCRIPTS)
    assert c == Movement(K.FEE, TXID, (("alpha", -100),), 0, 100, (0,))
    assert headline_amount(c) == 100
    assert describe(c) == "consolidation in vault alpha (fee 0.00000100)"


def test_a_foreign_withdrawal_has_no_fee_text() -> None:
    m = classify(tx([("alpha", 50), (None, 10)], [(None, 55)]), SCRIPTS)
    assert m == Movement(K.WITHDRAWAL, TXID, (("alpha", -50),), 50, 0, (), True)
    assert describe(m) == "withdrawal of 0.00000050 BTC from vault alpha"


def test_a_mixed_shape_is_described_with_every_flow_and_what_went_outside() -> None:
    m = classify(tx([("alpha", 1_000)], [("beta", 300), ("gamma", 200), (None, 400)]), SCRIPTS)
    assert m == Movement(
        K.TRANSFER, TXID, (("alpha", -1_000), ("beta", 300), ("gamma", 200)), 400, 100, (0, 1)
    )
    assert describe(m) == (
        "transfer (alpha -0.00001000, beta +0.00000300, gamma +0.00000200, "
        "0.00000400 BTC paid outside) (fee 0.00000100)"
    )
    split = classify(tx([("alpha", 1_000)], [("beta", 300), ("gamma", 600)]), SCRIPTS)
    assert split is not None
    assert (
        describe(split)
        == "transfer (alpha -0.00001000, beta +0.00000300, gamma +0.00000600) (fee 0.00000100)"
    )


def test_movement_invariants_name_the_transaction() -> None:
    with pytest.raises(ValueError, match=f"^movement {TXID}: a zero vault flow$"):
        Movement(K.DEPOSIT, TXID, (("alpha", 0),), 0, 0, ())
    with pytest.raises(ValueError, match=f"^movement {TXID}: negative external amount or fee$"):
        Movement(K.WITHDRAWAL, TXID, (("alpha", -1),), -1, 0, ())


def test_a_one_satoshi_flow_is_signed_in_the_description() -> None:
    m = classify(tx([("alpha", 1_000)], [("beta", 1), ("gamma", 1), (None, 900)]), SCRIPTS)
    assert m is not None
    assert describe(m) == (
        "transfer (alpha -0.00001000, beta +0.00000001, gamma +0.00000001, "
        "0.00000900 BTC paid outside) (fee 0.00000098)"
    )
