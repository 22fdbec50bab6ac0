"""Wallet-independent logic of :mod:`custody.wallet`: import plans, scan totals, names."""

from __future__ import annotations

from typing import Any

import pytest

from custody.descriptor import MultisigDescriptor
from custody.errors import InvalidInput
from custody.keygen import test_key_from_seed
from custody.maturity import COINBASE_MATURITY
from custody.network import Network
from custody.wallet import (
    ScannedOutput,
    ScanResult,
    plan_imports,
    vault_wallet_name,
    wanted_range_end,
)

KEYS = tuple(test_key_from_seed(bytes([i]) * 32, Network.REGTEST) for i in range(1, 4))
VAULT = MultisigDescriptor.from_keys(2, KEYS)
OTHER = MultisigDescriptor.from_keys(2, KEYS[:2])


def _listed(desc: str, *, internal: bool, end: int, next_index: int, active: bool = True) -> dict[str, Any]:
    return {
        "desc": desc,
        "timestamp": 1_700_000_000,
        "active": active,
        "internal": internal,
        "range": [0, end],
        "next": next_index,
        "next_index": next_index,
    }


def test_wallet_name() -> None:
    assert vault_wallet_name("ops-cold") == "reserve-vault-ops-cold"
    for bad in ("", " x", "a/b"):
        with pytest.raises(InvalidInput, match="cannot name a wallet"):
            vault_wallet_name(bad)


def test_empty_wallet_imports_both_branches() -> None:
    todo, present = plan_imports(VAULT, [], gap=50)
    assert [(t.branch, t.descriptor, t.range_end, t.stored_timestamp) for t in todo] == [
        ("receive", VAULT.receive(), 49, None),
        ("change", VAULT.change(), 49, None),
    ]
    assert present == ()


def test_covered_branches_need_nothing() -> None:
    listed = [
        _listed(VAULT.receive(), internal=False, end=1005, next_index=6),
        _listed(VAULT.change(), internal=True, end=999, next_index=0),
    ]
    todo, present = plan_imports(VAULT, listed, gap=1000)
    assert todo == ()
    assert [(p.branch, p.range_end, p.next_index) for p in present] == [
        ("receive", 1005, 6),
        ("change", 999, 0),
    ]


def test_short_range_grows_with_the_stored_timestamp() -> None:
    listed = [
        _listed(VAULT.receive(), internal=False, end=2400, next_index=1401),
        _listed(VAULT.change(), internal=True, end=1499, next_index=0),
    ]
    todo, present = plan_imports(VAULT, listed, gap=1500)
    assert [(t.branch, t.range_end, t.stored_timestamp) for t in todo] == [
        ("receive", wanted_range_end(1401, 1500), 1_700_000_000)
    ]
    assert [p.branch for p in present] == ["change"]


def test_descriptors_compare_parsed_not_as_text() -> None:
    core_style = VAULT.receive().split("#")[0].replace("h/", "'/").replace("h]", "']")
    listed = [
        _listed(core_style, internal=False, end=999, next_index=0),
        _listed(VAULT.change(), internal=True, end=999, next_index=0),
    ]
    assert plan_imports(VAULT, listed, gap=1000)[0] == ()


def test_foreign_or_misplaced_descriptors_are_refused() -> None:
    with pytest.raises(InvalidInput, match="one wallet watches one vault"):
        plan_imports(VAULT, [_listed(OTHER.receive(), internal=False, end=999, next_index=0)], 10)
    with pytest.raises(InvalidInput, match="not as an active internal descriptor"):
        plan_imports(VAULT, [_listed(VAULT.change(), internal=False, end=999, next_index=0)], 10)
    with pytest.raises(InvalidInput, match="not as an active external descriptor"):
        plan_imports(VAULT, [_listed(VAULT.receive(), internal=False, end=9, next_index=0, active=False)], 10)


def _out(amount: int, script: bytes, *, coinbase: bool = False, confirmations: int = 1) -> ScannedOutput:
    return ScannedOutput("ab" * 32, 0, script, amount, 100, coinbase, confirmations)


def test_scan_totals_split_immature_coinbase_and_group_by_scripts() -> None:
    a, b = VAULT.script_pubkey(0, False), OTHER.script_pubkey(0, False)
    scan = ScanResult(
        height=300,
        best_block="00" * 32,
        outputs=(
            _out(5, a),
            _out(7, a, coinbase=True, confirmations=COINBASE_MATURITY),
            _out(11, b, coinbase=True, confirmations=COINBASE_MATURITY + 1),
        ),
    )
    assert (scan.totals().mature, scan.totals().immature, scan.totals().count) == (16, 7, 3)
    assert (scan.totals({a}).mature, scan.totals({a}).immature) == (5, 7)
    assert scan.totals([b]).total == 11
    assert scan.outputs_for(set()) == ()


def test_issued_addresses_widen_the_wanted_range() -> None:
    # cover = highest index handed out + 1: the range must reach `gap` past it on both branches.
    assert wanted_range_end(0, 1000, cover=1501) == 2500
    assert wanted_range_end(3000, 1000, cover=1501) == 3999  # used further out than issued
    assert wanted_range_end(0, 1000, cover=2**31) == 2**31 - 2  # bitcoind's last watchable index
    todo, _ = plan_imports(VAULT, [], gap=1000, cover=1501)
    assert [(t.branch, t.range_end) for t in todo] == [("receive", 2500), ("change", 2500)]
    listed = [
        _listed(VAULT.receive(), internal=False, end=1005, next_index=6),
        _listed(VAULT.change(), internal=True, end=2600, next_index=0),
    ]
    todo, present = plan_imports(VAULT, listed, gap=1000, cover=1501)
    assert [(t.branch, t.range_end, t.stored_timestamp, t.next_index) for t in todo] == [
        ("receive", 2500, 1_700_000_000, 6)
    ]
    assert [p.branch for p in present] == ["change"]
