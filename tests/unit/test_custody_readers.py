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
