"""The one coinbase maturity rule (:mod:`custody.maturity`) and the scan outputs that use it."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from custody.maturity import COINBASE_MATURITY, blocks_to_maturity, is_immature
from custody.wallet import ScannedOutput, ScanResult


def _out(confirmations: int, *, coinbase: bool, amount: int = 5_000_000_000) -> ScannedOutput:
    return ScannedOutput(
        txid="ab" * 32,
        vout=0,
        script_pubkey=b"\x00\x20" + bytes(32),
        amount=amount,
        height=200 - confirmations + 1,
        coinbase=coinbase,
        confirmations=confirmations,
    )


def test_a_coinbase_matures_at_101_confirmations_as_the_wallet_counts() -> None:
    assert COINBASE_MATURITY == 100
    assert [blocks_to_maturity(c) for c in (1, 99, 100, 101, 102)] == [100, 2, 1, 0, 0]
    assert is_immature(coinbase=True, confirmations=100)  # exactly 100: still immature
    assert not is_immature(coinbase=True, confirmations=101)
    assert _out(100, coinbase=True).immature and not _out(101, coinbase=True).immature


def test_scan_totals_split_at_the_same_boundary() -> None:
    scan = ScanResult(
        200,
        "00" * 32,
        (
            _out(100, coinbase=True, amount=7),
            _out(101, coinbase=True, amount=11),
            _out(1, coinbase=False, amount=13),
        ),
    )
    totals = scan.totals()
    assert (totals.mature, totals.immature, totals.count) == (24, 7, 3)


@given(st.integers(min_value=0, max_value=10_000))
def test_only_a_coinbase_below_101_confirmations_is_immature(confirmations: int) -> None:
    assert is_immature(coinbase=True, confirmations=confirmations) == (confirmations <= COINBASE_MATURITY)
    assert not is_immature(coinbase=False, confirmations=confirmations)
    assert blocks_to_maturity(confirmations) == max(0, COINBASE_MATURITY + 1 - confirmations)
