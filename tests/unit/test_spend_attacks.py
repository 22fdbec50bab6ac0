"""Command-line values a careless or hostile user gives ``reserve spend create``, refused before
anything is asked of the node (pure parsing)."""

from __future__ import annotations

import pytest

from custody.errors import InvalidInput
from ledger.spend.proposal import parse_fee_rate, parse_outpoint, parse_payment

TXID = "ab" * 32


@pytest.mark.parametrize(
    "text",
    [
        f"{TXID}:4294967296",
        f"{TXID}:99999999999",
        f"{TXID}:-1",
        f"{TXID}:",
        "zz" * 32 + ":0",
        f"{TXID[:-2]}:0",
    ],
)
def test_a_bad_outpoint_is_refused(text: str) -> None:
    with pytest.raises(InvalidInput):
        parse_outpoint(text)


def test_the_largest_output_index_is_taken() -> None:
    assert parse_outpoint(f"{TXID.upper()}:4294967295") == (TXID, 4294967295)


@pytest.mark.parametrize(
    "text",
    ["x=-1", "x=0.000000001", "x=21000000.00000001", "x=1e3", "x=nan", "x=inf", "x=0x10", "x=", "=1", "x"],
)
def test_a_bad_payment_is_refused(text: str) -> None:
    with pytest.raises(InvalidInput):
        parse_payment(text)


@pytest.mark.parametrize("text", ["0", "-1", "1.0001", "1e2", "inf", "nan", "100000000", "", " "])
def test_a_bad_fee_rate_is_refused(text: str) -> None:
    with pytest.raises(InvalidInput):
        parse_fee_rate(text)


def test_an_output_to_the_vaults_own_receive_address_is_refused_as_such() -> None:
    from custody.spend_facts import gather_facts
    from custody.spend_gate import Destination, evaluate
    from custody.spend_policy import SpendLimits
    from tests.unit.test_spend_facts import make_psbt, scenario

    tx, args = scenario()
    facts = gather_facts(make_psbt(tx), **args)  # type: ignore[arg-type]
    own = facts.outputs[5]
    assert (own.destination, own.own_path) == (Destination.UNKNOWN, (0, 4))
    assert all(o.own_path is None for o in facts.outputs[:5])
    [outputs] = [r for r in evaluate(facts, SpendLimits()) if r.rule == "outputs"]
    assert not outputs.ok
    assert "pays vault cold's own receive address 0/4: it is not change" in outputs.detail
    assert outputs.detail.count("own receive address") == 1
