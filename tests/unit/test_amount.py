"""Bitcoin amounts: text in, integer satoshis inside, exact text out."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from custody.amount import (
    COIN,
    MAX_MONEY,
    btc_decimal,
    check_range,
    format_btc,
    parse_btc,
    sat_from_rpc,
)
from custody.errors import InvalidInput


@pytest.mark.parametrize(
    ("text", "sat"),
    [
        ("0.00000001", 1),
        ("1.5", 150_000_000),
        ("1", COIN),
        ("21000000", MAX_MONEY),
        ("21000000.00000000", MAX_MONEY),
        ("150000000sat", 150_000_000),
        ("1 sat", 1),
        ("2sats", 2),
        ("0.1", 10_000_000),
        ("  2.5  ", 250_000_000),
        ("+3", 3 * COIN),
        ("007.5", 750_000_000),
    ],
)
def test_parses_exactly(text: str, sat: int) -> None:
    assert parse_btc(text) == sat


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("0.000000001", "9 decimals"),
        ("1.123456789", "9 decimals"),
        ("-1", "negative"),
        ("-1sat", "negative"),
        ("21000000.00000001", "supply cap"),
        ("2100000000000001sat", "supply cap"),
        ("999999999999", "supply cap"),
        ("1e8", "not a BTC amount"),
        ("1E-8", "not a BTC amount"),
        ("1.5.0", "not a BTC amount"),
        ("", "not a BTC amount"),
        ("abc", "not a BTC amount"),
        ("1,5", "not a BTC amount"),
        (".5", "not a BTC amount"),
        ("1.", "not a BTC amount"),
        ("NaN", "not a BTC amount"),
        ("inf", "not a BTC amount"),
        ("0x10", "not a BTC amount"),
        ("1.5btc", "not a BTC amount"),
        ("1.5sat", "not a BTC amount"),
        ("0", "zero"),
        ("0.00000000", "zero"),
        ("0sat", "zero"),
    ],
)
def test_refuses(text: str, words: str) -> None:
    with pytest.raises(InvalidInput, match=words):
        parse_btc(text)


@pytest.mark.parametrize("value", [1.5, 1, Decimal("1.5"), None, b"1.5", True])
def test_refuses_non_text(value: Any) -> None:
    with pytest.raises(InvalidInput, match="must be given as text"):
        parse_btc(value)


def test_signed_and_zero_only_when_allowed() -> None:
    assert parse_btc("-1.5", signed=True) == -150_000_000
    assert parse_btc("0", allow_zero=True) == 0
    assert parse_btc("-21000000", signed=True) == -MAX_MONEY
    with pytest.raises(InvalidInput, match="supply cap"):
        parse_btc("-21000000.00000001", signed=True)


def test_format() -> None:
    assert format_btc(150_000_000) == "1.50000000"
    assert format_btc(1) == "0.00000001"
    assert format_btc(-1) == "-0.00000001"
    assert format_btc(0) == "0.00000000"
    assert format_btc(MAX_MONEY) == "21000000.00000000"


def test_check_range() -> None:
    assert check_range(5) == 5
    for bad in (True, 1.0, "1"):
        with pytest.raises(InvalidInput, match="integer number of satoshis"):
            check_range(bad)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match="supply cap"):
        check_range(MAX_MONEY + 1)


def test_rpc_conversions() -> None:
    assert sat_from_rpc(Decimal("0.5")) == 50_000_000
    assert sat_from_rpc(Decimal("0.00000001")) == 1
    assert sat_from_rpc(2) == 2 * COIN
    with pytest.raises(InvalidInput, match="more than 8 decimals"):
        sat_from_rpc(Decimal("0.000000001"))
    with pytest.raises(InvalidInput, match="must be Decimal"):
        sat_from_rpc(0.5)  # type: ignore[arg-type]
    assert btc_decimal(1) == Decimal("0.00000001")
    assert btc_decimal(150_000_000) == Decimal("1.5")


@given(st.integers(min_value=-MAX_MONEY, max_value=MAX_MONEY))
def test_format_then_parse_round_trips(n: int) -> None:
    assert parse_btc(format_btc(n), signed=True, allow_zero=True) == n


@given(st.integers(min_value=-MAX_MONEY, max_value=MAX_MONEY))
def test_satoshi_text_and_rpc_decimal_round_trip(n: int) -> None:
    assert parse_btc(f"{n}sat", signed=True, allow_zero=True) == n
    assert sat_from_rpc(btc_decimal(n)) == n


@given(st.integers(min_value=MAX_MONEY + 1))
def test_above_supply_cap_never_parses(n: int) -> None:
    with pytest.raises(InvalidInput):
        parse_btc(format_btc(n))


@pytest.mark.parametrize(
    "text", ["9" * 5000, "9" * 5000 + "sat", "-" + "9" * 5000 + "sat", "1." + "0" * 5000, "1" * 41]
)
def test_over_long_amount_is_refused_fast_with_a_short_message(text: str) -> None:
    with pytest.raises(InvalidInput, match="characters long") as e:
        parse_btc(text, signed=True)
    assert len(str(e.value)) < 200


def test_longest_valid_amounts_still_parse() -> None:
    assert parse_btc("-21000000.00000000", signed=True) == -MAX_MONEY
    assert parse_btc("2100000000000000sat") == MAX_MONEY
