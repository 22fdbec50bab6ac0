"""Bitcoin amounts as integer satoshis.

Inside the project an amount is always an ``int`` of satoshis. Text and JSON-RPC values are
converted here, exactly once, without ever passing through a float:

- ``parse_btc("1.5") == 150_000_000``; ``parse_btc("0.00000001") == 1``;
  ``parse_btc("150000000sat") == 150_000_000``.
- ``sat_from_rpc(Decimal("0.5")) == 50_000_000`` for values parsed with ``parse_float=Decimal``.
- ``format_btc(150_000_000) == "1.50000000"``; ``btc_decimal(1)`` is ``Decimal("0.00000001")``.
"""

from __future__ import annotations

import re
from decimal import Decimal

from custody.errors import InvalidInput

COIN = 100_000_000
MAX_MONEY = 21_000_000 * COIN
MAX_AMOUNT_TEXT = 40
"""Longest amount text read: "-21000000.00000000" and "-2100000000000000 sat" are far shorter.
Longer input is refused before any regex or big-integer work (and never echoed in full)."""

_BTC_RE = re.compile(r"^(?P<sign>[+-]?)(?P<int>[0-9]+)(?:\.(?P<frac>[0-9]+))?$")
_SAT_RE = re.compile(r"^(?P<sign>[+-]?)(?P<int>[0-9]+)\s*sats?$")


def check_range(sat: int, *, signed: bool = False, allow_zero: bool = False) -> int:
    """Return ``sat`` if it is a valid amount, else raise :class:`InvalidInput`."""
    if isinstance(sat, bool) or not isinstance(sat, int):
        raise InvalidInput(f"amount must be an integer number of satoshis, got {sat!r}")
    if abs(sat) > MAX_MONEY:
        raise InvalidInput(f"amount {format_btc(sat)} BTC is above the 21,000,000 BTC supply cap")
    if sat < 0 and not signed:
        raise InvalidInput(f"amount {format_btc(sat)} BTC is negative; a positive amount is required")
    if sat == 0 and not allow_zero:
        raise InvalidInput("amount is zero; a non-zero amount is required")
    return sat


def parse_btc(text: str, *, signed: bool = False, allow_zero: bool = False) -> int:
    """Parse a BTC amount ("1.5", "0.00000001", "21000000") or a satoshi amount ("150000000sat").

    Refuses more than 8 decimals, exponents, floats' other spellings, junk, negatives unless
    ``signed`` and anything beyond 21,000,000 BTC.
    """
    if not isinstance(text, str):
        raise InvalidInput(f"amount must be given as text, got {type(text).__name__} {text!r}")
    raw = text.strip()
    if len(raw) > MAX_AMOUNT_TEXT:
        raise InvalidInput(
            f"amount {raw[:20]!r}... is {len(raw)} characters long; a BTC amount is at most "
            "21,000,000 with 8 decimals (e.g. 1.5 or 150000000sat)"
        )
    if m := _SAT_RE.match(raw):
        sat = int(m["int"])
        if m["sign"] == "-":
            sat = -sat
        return check_range(sat, signed=signed, allow_zero=allow_zero)
    m = _BTC_RE.match(raw)
    if m is None:
        raise InvalidInput(
            f"amount {text!r} is not a BTC amount: write digits with at most 8 decimals "
            "(e.g. 1.5 or 0.00000001) or satoshis with a 'sat' suffix (e.g. 150000000sat)"
        )
    frac = m["frac"] or ""
    if len(frac) > 8:
        raise InvalidInput(f"amount {text!r} has {len(frac)} decimals; BTC has at most 8 (1 sat)")
    if len(m["int"]) > 9:  # cheap guard before big-int work; 21,000,000 has 8 digits
        raise InvalidInput(f"amount {text!r} is above the 21,000,000 BTC supply cap")
    sat = int(m["int"]) * COIN + int(frac.ljust(8, "0") or "0")
    if m["sign"] == "-":
        sat = -sat
    return check_range(sat, signed=signed, allow_zero=allow_zero)


def format_btc(sat: int) -> str:
    """Exact BTC text with 8 decimals: ``format_btc(-1) == "-0.00000001"``."""
    sign = "-" if sat < 0 else ""
    whole, frac = divmod(abs(sat), COIN)
    return f"{sign}{whole}.{frac:08d}"


def sat_from_rpc(value: Decimal | int) -> int:
    """Convert a JSON-RPC BTC value (parsed as :class:`Decimal`) to satoshis, exactly."""
    if isinstance(value, bool) or not isinstance(value, (Decimal, int)):
        raise InvalidInput(f"RPC amount must be Decimal, got {type(value).__name__} {value!r}")
    scaled = Decimal(value) * COIN
    if scaled != scaled.to_integral_value():
        raise InvalidInput(f"RPC amount {value} has more than 8 decimals")
    return int(scaled)


def btc_decimal(sat: int) -> Decimal:
    """Satoshis as an exact :class:`Decimal` BTC value, for sending over JSON-RPC."""
    return Decimal(sat).scaleb(-8)
