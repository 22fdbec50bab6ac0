"""A policy field's value for people (BTC, sat/vB, blocks, holder names), shared by the policy and
approval commands."""

from __future__ import annotations

from typing import Any

from custody.amount import format_btc


def sat_per_vb(sat_per_kvb: int) -> str:
    whole, frac = divmod(sat_per_kvb, 1000)
    return f"{whole}.{frac:03d}".rstrip("0").rstrip(".") + " sat/vB"


def value_text(field: str, value: Any) -> str:
    """A field's value for people: BTC, sat/vB, blocks, holder names, 'none'."""
    if field == "required-holders":
        return ", ".join(value) if value else "none"
    if value is None:
        return "none (no cap)"
    if field in {"max-per-spend", "velocity-limit", "max-fee", "delay-above"}:
        return f"{format_btc(value)} BTC"
    if field == "max-fee-rate":
        return sat_per_vb(value)
    return f"{value} blocks"
