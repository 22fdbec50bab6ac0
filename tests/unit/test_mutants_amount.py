"""Amount boundaries and messages that mutation testing found untested (``scripts/mutation``)."""

from __future__ import annotations

import pytest

from custody.amount import MAX_AMOUNT_TEXT, check_range, parse_btc, sat_from_rpc
from custody.errors import InvalidInput


def test_check_range_refuses_negative_and_zero_by_default() -> None:
    with pytest.raises(InvalidInput, match="negative; a positive amount is required"):
        check_range(-1)
    with pytest.raises(InvalidInput) as e:
        check_range(0)
    assert str(e.value) == "amount is zero; a non-zero amount is required"
    assert check_range(-1, signed=True) == -1
    assert check_range(0, allow_zero=True) == 0


def test_amount_text_of_exactly_the_maximum_length_is_read() -> None:
    text = "0" * (MAX_AMOUNT_TEXT - 4) + "1sat"
    assert len(text) == MAX_AMOUNT_TEXT
    assert parse_btc(text) == 1


def test_over_long_amount_message_quotes_twenty_characters() -> None:
    with pytest.raises(InvalidInput) as e:
        parse_btc("9" * 5000)
    assert str(e.value) == (
        f"amount {'9' * 20!r}... is 5000 characters long; a BTC amount is at most "
        "21,000,000 with 8 decimals (e.g. 1.5 or 150000000sat)"
    )


def test_not_an_amount_message_says_how_to_write_one() -> None:
    with pytest.raises(InvalidInput) as e:
        parse_btc("1e8")
    assert str(e.value) == (
        "amount '1e8' is not a BTC amount: write digits with at most 8 decimals "
        "(e.g. 1.5 or 0.00000001) or satoshis with a 'sat' suffix (e.g. 150000000sat)"
    )


def test_more_than_nine_integer_digits_is_refused_before_conversion() -> None:
    # nine digits reach the range check (which prints the amount as BTC); ten never get there
    with pytest.raises(InvalidInput, match=r"amount 100000000\.00000000 BTC is above the 21,000,000"):
        parse_btc("100000000")
    with pytest.raises(InvalidInput, match=r"amount '1000000000' is above the 21,000,000 BTC supply cap"):
        parse_btc("1000000000")


def test_type_errors_name_the_type_given() -> None:
    with pytest.raises(InvalidInput, match=r"got float 1\.5"):
        parse_btc(1.5)  # type: ignore[arg-type]
    with pytest.raises(InvalidInput, match=r"got float 0\.5"):
        sat_from_rpc(0.5)  # type: ignore[arg-type]
