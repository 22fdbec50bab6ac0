"""Typed readers of RPC replies in :mod:`custody.wallet` on plain values (no node)."""

from __future__ import annotations

from typing import Any

from custody.wallet import ScannedOutput, ScanResult, range_end_of


def test_range_end_is_one_past_the_highest_ranged_index() -> None:
    listed: list[dict[str, Any]] = [
        {"desc": "wsh(sortedmulti(2,...))#a", "range": [0, 999]},
        {"desc": "wsh(sortedmulti(2,...))#b", "range": [0, 2499]},
        {"desc": "addr(bcrt1...)#c"},  # not ranged
    ]
    assert range_end_of(listed) == 2500
    assert range_end_of([{"desc": "addr(bcrt1...)#c"}]) is None
    assert range_end_of([]) is None


def test_scan_outputs_are_grouped_by_script() -> None:
    a, b = b"\x00\x20" + bytes(32), b"\x00\x20" + bytes([1] * 32)
    outputs = tuple(
        ScannedOutput("cd" * 32, i, script, amount, 10, False, 1)
        for i, (script, amount) in enumerate([(a, 5), (b, 7), (a, 11)])
    )
    scan = ScanResult(10, "00" * 32, outputs)
    assert [o.vout for o in scan.outputs_for({a})] == [0, 2]
    assert scan.totals([a]).mature == 16 and scan.totals([b]).count == 1
    assert scan.totals().total == 23


def test_a_wallet_transaction_replaced_in_the_mempool_is_conflicted_not_pending() -> None:
    from custody.wallet_txs import _state

    rival = "ee" * 32
    base: dict[str, Any] = {"txid": "cd" * 32, "confirmations": 0, "walletconflicts": []}
    assert _state("w", {**base, "mempoolconflicts": []}).pending
    replaced = _state("w", {**base, "mempoolconflicts": [rival]})
    assert replaced.conflicted and not replaced.pending and replaced.replaced_by == rival
    bumped = _state("w", {**base, "replaced_by_txid": "ff" * 32, "mempoolconflicts": [rival]})
    assert bumped.replaced_by == "ff" * 32  # the wallet's own fee bump names it first
    orphan = _state("w", {**base, "generated": True})
    assert orphan.orphaned and not orphan.pending and not orphan.conflicted
    mined = _state("w", {**base, "generated": True, "confirmations": 3, "blockhash": "ab" * 32})
    assert not mined.orphaned and mined.confirmed
