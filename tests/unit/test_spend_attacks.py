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
