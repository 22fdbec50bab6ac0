"""Pure parts of the spend service: argument parsing, transaction differences, a spend's postings."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from custody.psbt import TxIn, TxOut, UnsignedTx
from ledger.chain.movement import NETWORK_FEES, UNATTRIBUTED, Movement, MovementKind
from ledger.errors import InvalidInput
from ledger.spend.events import Spend, SpendEvent
from ledger.spend.proposal import Request, parse_fee_rate, parse_outpoint, parse_payment
from ledger.spend.settle import spend_postings
from ledger.spend.signing import tx_differences

TXID = "ab" * 32


def test_fee_rates_are_exact_sat_per_kvb() -> None:
    assert parse_fee_rate("2") == 2000
    assert parse_fee_rate("1.5") == 1500
    assert parse_fee_rate("0.001") == 1
    assert parse_fee_rate(" 12.345 ") == 12345
    for bad in ("1.2345", "abc", "0", "-1", "nan", "inf", "1e3", "100001"):
        with pytest.raises(InvalidInput):
            parse_fee_rate(bad)


@given(st.integers(min_value=1, max_value=100_000_000))
def test_fee_rate_round_trips(kvb: int) -> None:
    whole, frac = divmod(kvb, 1000)
    assert parse_fee_rate(f"{whole}.{frac:03d}") == kvb


def test_payments_and_outpoints() -> None:
    p = parse_payment("exchange=0.5")
    assert (p.dest, p.amount) == ("exchange", 50_000_000)
    assert parse_payment("bcrt1qxyz=1000sat").amount == 1000
    for bad in ("exchange", "=1", "exchange=", "exchange=-1", "x=0"):
        with pytest.raises(InvalidInput):
            parse_payment(bad)
    assert parse_outpoint(f"{TXID.upper()}:3") == (TXID, 3)
    for bad in ("x:1", f"{TXID}", f"{TXID}:-1", f"{TXID[:-2]}:1", f"{'zz' * 32}:0"):
        with pytest.raises(InvalidInput):
            parse_outpoint(bad)


def test_request_refuses_empty_memo_duplicates_and_control_characters() -> None:
    pay = (parse_payment("a=1"),)
    with pytest.raises(InvalidInput, match="memo"):
        Request("v", pay, "  ")
    with pytest.raises(InvalidInput, match="control character"):
        Request("v", pay, "pay\x1b[2J")
    with pytest.raises(InvalidInput, match="twice"):
        Request("v", (parse_payment("a=1"), parse_payment("a=2")), "m")
    with pytest.raises(InvalidInput, match="at least one"):
        Request("v", (), "m")
    assert Request("v", pay, "  payout  ").memo == "payout"


def _tx(**changes: Any) -> UnsignedTx:
    base: dict[str, Any] = {
        "version": 2,
        "locktime": 0,
        "inputs": (TxIn(TXID, 0, 0xFFFFFFFD),),
        "outputs": (TxOut(50_000, b"\x00\x14" + bytes(20)), TxOut(40_000, b"\x00\x20" + bytes(32))),
    }
    base.update(changes)
    return UnsignedTx(**base)


def test_tx_differences_name_each_field() -> None:
    want = _tx()
    assert tx_differences(want, _tx()) == []
    assert tx_differences(want, _tx(version=1)) == ["version 1 instead of 2"]
    assert tx_differences(want, _tx(locktime=5)) == ["locktime 5 instead of 0"]
    moved = _tx(inputs=(TxIn(TXID, 1, 0xFFFFFFFD),))
    assert tx_differences(want, moved) == [f"input 0 spends {TXID}:1 instead of {TXID}:0"]
    paid = _tx(outputs=(TxOut(49_000, b"\x00\x14" + bytes(20)), want.outputs[1]))
    assert tx_differences(want, paid) == ["output 0 amount 0.00049000 BTC instead of 0.00050000 BTC"]
    redirected = _tx(outputs=(want.outputs[0], TxOut(40_000, b"\x00\x14" + b"\x01" * 20)))
    [why] = tx_differences(want, redirected)
    assert why.startswith("output 1 pays script 0014")
    assert tx_differences(want, _tx(outputs=want.outputs[:1])) == ["1 outputs instead of 2"]


def _spend(destinations: list[dict[str, Any]]) -> Spend:
    event = SpendEvent(
        spend=1,
        step=0,
        state="proposed",
        vault="hot",
        txid=TXID,
        psbt="",
        psbt_sha256="",
        amount=sum(d["amount"] for d in destinations),
        height=1,
        detail={"memo": "m", "destinations": destinations},
        record_seq=1,
    )
    return Spend(1, (event,), ())


def test_a_spends_postings_pay_each_counterparty_and_balance() -> None:
    spend = _spend(
        [
            {"index": 0, "kind": "allowlist", "name": "exchange", "address": "a", "amount": 30_000},
            {"index": 1, "kind": "allowlist", "name": "supplier", "address": "b", "amount": 20_000},
        ]
    )
    m = Movement(MovementKind.WITHDRAWAL, TXID, (("hot", -50_500),), 50_000, 500, (2,))
    legs = {p.account: p.amount for p in spend_postings(m, spend, {"exchange", "supplier"})}
    assert legs == {"hot": -50_500, "exchange": 30_000, "supplier": 20_000, NETWORK_FEES: 500}
    # a counterparty that may not be booked to (e.g. a vault's name): its leg is unattributed
    legs = {p.account: p.amount for p in spend_postings(m, spend, {"exchange"})}
    assert legs == {"hot": -50_500, "exchange": 30_000, UNATTRIBUTED: 20_000, NETWORK_FEES: 500}
    assert sum(p.amount for p in spend_postings(m, spend, set())) == 0


def test_a_transfer_spend_books_the_vaults_only() -> None:
    spend = _spend([{"index": 0, "kind": "vault", "name": "cold", "address": "c", "amount": 30_000}])
    m = Movement(MovementKind.TRANSFER, TXID, (("cold", 30_000), ("hot", -30_400)), 0, 400, (0,))
    legs = {p.account: p.amount for p in spend_postings(m, spend, set())}
    assert legs == {"cold": 30_000, "hot": -30_400, NETWORK_FEES: 400}
