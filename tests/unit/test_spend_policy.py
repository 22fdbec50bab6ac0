"""SpendLimits and loosened(): every field both ways, equal values, None caps, invariants; and the
policy store's pure rules for which stored changes are in force at a height."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from custody.errors import InvalidInput
from custody.spend_policy import FIELDS, OPTIONAL_FIELDS, SpendLimits, attribute, loosened
from ledger.spend.policy_store import PolicyChange, allowlist_of, limits_of, superseded_fields

BASE = SpendLimits(
    max_per_spend=100_000,
    velocity_limit=500_000,
    velocity_window=144,
    max_fee_rate=10_000,
    max_fee=50_000,
    delay_above=200_000,
    delay_blocks=6,
    required_holders=("alice", "bank"),
    loosen_delay=144,
)

# field -> (a looser value, a tighter value) than BASE's
BOTH_WAYS: dict[str, tuple[object, object]] = {
    "max-per-spend": (100_001, 99_999),
    "velocity-limit": (600_000, 400_000),
    "velocity-window": (143, 145),
    "max-fee-rate": (10_001, 9_999),
    "max-fee": (50_001, 49_999),
    "delay-above": (300_000, 100_000),
    "delay-blocks": (5, 7),
    "required-holders": (("alice",), ("alice", "bank", "carol")),
    "loosen-delay": (143, 145),
}


def test_fields_are_the_cli_names_in_order() -> None:
    assert FIELDS == (
        "max-per-spend",
        "velocity-limit",
        "velocity-window",
        "max-fee-rate",
        "max-fee",
        "delay-above",
        "delay-blocks",
        "required-holders",
        "loosen-delay",
    )
    assert set(BOTH_WAYS) == set(FIELDS)


def test_defaults() -> None:
    limits = SpendLimits()
    assert limits.max_per_spend is None and limits.velocity_limit is None
    assert limits.velocity_window == 144
    assert limits.max_fee_rate == 100_000  # 100 sat/vB in sat/kvB
    assert limits.max_fee == 1_000_000
    assert limits.delay_above is None and limits.delay_blocks == 0
    assert limits.required_holders == ()
    assert limits.loosen_delay == 144


@pytest.mark.parametrize("field", FIELDS)
def test_each_field_loosens_one_way_and_tightens_the_other(field: str) -> None:
    looser, tighter = BOTH_WAYS[field]
    loose = BASE.with_changes({field: looser})  # type: ignore[dict-item]
    tight = BASE.with_changes({field: tighter})  # type: ignore[dict-item]
    assert loosened(BASE, loose) == (field,)
    assert loosened(loose, BASE) == ()
    assert loosened(BASE, tight) == ()
    assert loosened(tight, BASE) == (field,)
    assert loosened(BASE, BASE) == ()


@pytest.mark.parametrize("field", sorted(OPTIONAL_FIELDS))
def test_removing_a_cap_loosens_and_adding_one_tightens(field: str) -> None:
    uncapped = BASE.with_changes({field: None})
    assert loosened(BASE, uncapped) == (field,)
    assert loosened(uncapped, BASE) == ()
    assert loosened(uncapped, uncapped) == ()


def test_required_holders_order_does_not_matter_and_swapping_loosens() -> None:
    assert BASE.with_changes({"required-holders": ("bank", "alice")}).required_holders == ("alice", "bank")
    assert loosened(BASE, BASE.with_changes({"required-holders": ("bank", "alice")})) == ()
    swapped = BASE.with_changes({"required-holders": ("alice", "carol")})
    assert loosened(BASE, swapped) == ("required-holders",)  # bank no longer required
    assert loosened(BASE, BASE.with_changes({"required-holders": ()})) == ("required-holders",)


def test_several_fields_listed_in_field_order() -> None:
    new = dataclasses.replace(BASE, loosen_delay=10, max_per_spend=None, max_fee=1)
    assert loosened(BASE, new) == ("max-per-spend", "loosen-delay")


def test_defaults_to_base_is_mostly_tightening() -> None:
    # from the defaults: caps appear (tighten), required holders added (tighten), fee caps lower
    assert loosened(SpendLimits(), BASE) == ()
    assert set(loosened(BASE, SpendLimits())) == {
        "max-per-spend",
        "velocity-limit",
        "max-fee-rate",
        "max-fee",
        "delay-above",
        "delay-blocks",
        "required-holders",
    }


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"max-per-spend": -1}, "max-per-spend -1 is out of range"),
        ({"max-fee": None}, "max-fee must be a whole number"),
        ({"velocity-window": 0}, "velocity-window 0 is out of range"),
        ({"delay-blocks": True}, "delay-blocks must be a whole number"),
        ({"loosen-delay": 10**9}, "loosen-delay 1000000000 is out of range"),
        ({"max-per-spend": 21_000_000 * 10**8 + 1}, "out of range"),
        ({"required-holders": ("alice", "alice")}, "names a holder twice"),
        ({"required-holders": ("",)}, "holder names"),
        ({"max-spend": 1}, "unknown policy field 'max-spend'"),
    ],
)
def test_invalid_values_are_refused_by_name(changes: dict[str, object], message: str) -> None:
    with pytest.raises(InvalidInput, match=message):
        BASE.with_changes(changes)  # type: ignore[arg-type]


def test_value_and_attribute() -> None:
    assert attribute("max-fee-rate") == "max_fee_rate"
    assert BASE.value("required-holders") == ("alice", "bank")
    with pytest.raises(InvalidInput, match="the fields are"):
        attribute("max_fee_rate")


CAP = st.one_of(st.none(), st.integers(0, 10**12))
LIMITS = st.builds(
    SpendLimits,
    max_per_spend=CAP,
    velocity_limit=CAP,
    velocity_window=st.integers(1, 10_000),
    max_fee_rate=st.integers(0, 10**6),
    max_fee=st.integers(0, 10**9),
    delay_above=CAP,
    delay_blocks=st.integers(0, 1_000),
    required_holders=st.lists(st.sampled_from(["a", "b", "c"]), unique=True).map(tuple),
    loosen_delay=st.integers(0, 1_000),
)


@given(old=LIMITS, new=LIMITS)
def test_loosened_is_never_both_ways_for_a_field(old: SpendLimits, new: SpendLimits) -> None:
    """A field that loosens from old to new does not also loosen from new to old (except a set of
    required holders, which can lose one and gain another)."""
    both = set(loosened(old, new)) & set(loosened(new, old))
    assert both <= {"required-holders"}
    for field in loosened(old, new):
        assert old.value(field) != new.value(field)


@given(old=LIMITS)
def test_nothing_loosens_against_itself(old: SpendLimits) -> None:
    assert loosened(old, old) == ()


# --- the store's pure rules: which stored changes are in force at a height -----------------------


def _set(id_: int, fields: dict[str, object], loosens: bool, requested: int, effective: int) -> PolicyChange:
    return PolicyChange(
        id=id_,
        vault="v",
        change="set",
        body={"fields": fields},
        loosens=loosens,
        requested_height=requested,
        effective_height=effective,
        record_seq=id_,
    )


def _allow(id_: int, kind: str, name: str, requested: int, effective: int) -> PolicyChange:
    body: dict[str, object] = {"name": name}
    if kind == "allow-add":
        body |= {"kind": "address", "target": f"addr-{name}", "scripts": ["0014" + "00" * 20]}
    return PolicyChange(
        id=id_,
        vault="v",
        change=kind,
        body=body,
        loosens=kind == "allow-add",
        requested_height=requested,
        effective_height=effective,
        record_seq=id_,
    )


def test_a_tightening_is_in_force_at_any_height_a_loosening_from_its_own() -> None:
    changes = [
        _set(1, {"max-per-spend": 100}, False, 200, 200),
        _set(2, {"max-per-spend": 500}, True, 210, 354),
    ]
    # a reorganisation to below the request height never lifts a tightening
    assert limits_of(changes, 150).max_per_spend == 100
    assert limits_of(changes, 353).max_per_spend == 100
    assert limits_of(changes, 354).max_per_spend == 500


def test_the_latest_request_in_force_wins_per_field() -> None:
    changes = [
        _set(1, {"max-per-spend": 100, "max-fee": 5}, False, 200, 200),
        _set(2, {"max-per-spend": None}, True, 210, 354),  # pending loosening
        _set(3, {"max-per-spend": 100}, False, 220, 220),  # cancels it
    ]
    assert limits_of(changes, 1_000).max_per_spend == 100
    assert limits_of(changes, 1_000).max_fee == 5
    assert superseded_fields(changes) == {
        1: frozenset({"max-per-spend"}),
        2: frozenset({"max-per-spend"}),
        3: frozenset(),
    }
    # a later loosening in force after an earlier one still pending: the earlier decides until then
    later = [
        _set(1, {"velocity-window": 10}, True, 200, 300),
        _set(2, {"velocity-window": 5}, True, 250, 400),
    ]
    assert [limits_of(later, h).velocity_window for h in (299, 300, 399, 400)] == [144, 10, 10, 5]
    assert superseded_fields(later) == {1: frozenset(), 2: frozenset()}


def test_allowlist_pending_active_and_removed_at_once() -> None:
    changes = [
        _allow(1, "allow-add", "exchange", 100, 244),
        _allow(2, "allow-add", "payroll", 100, 244),
        _allow(3, "allow-remove", "payroll", 120, 120),
    ]
    active, pending = allowlist_of(changes, 243)
    assert active == () and [e.name for e in pending] == ["exchange"]
    assert pending[0].scripts == (bytes.fromhex("0014" + "00" * 20),) and pending[0].active_at == 244
    active, pending = allowlist_of(changes, 50)  # a removal holds at any height, like a tightening
    assert [e.name for e in pending] == ["exchange"]
    active, pending = allowlist_of(changes, 244)
    assert [e.name for e in active] == ["exchange"] and pending == ()
