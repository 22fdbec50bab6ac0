"""A vault's spending policy: the limits a spend must meet, and which changes to them loosen.

:class:`SpendLimits` is the policy in force at one height (the defaults apply to a vault whose
policy was never set). Each field has a CLI name in :data:`FIELDS` (``max-per-spend`` for
``max_per_spend``); :func:`loosened` names, in those CLI names, every field whose new value lets
more through than the old one. A change that loosens anything waits the ``loosen_delay`` in force
before it becomes active; one that only tightens applies at once (see ``ledger.spend.policy_store``).

Amounts are int satoshis, the fee rate is int sat/kvB (1 sat/vB = 1000 sat/kvB), windows and delays
are blocks. ``None`` means "no limit" for the limits that may be absent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields, replace

from custody.amount import MAX_MONEY
from custody.errors import InvalidInput

MAX_BLOCKS = 1_000_000
"""Upper bound for any window or delay in blocks (about 19 years): a typo, not a policy, above it."""

MAX_FEE_RATE = 100_000_000
"""Upper bound for ``max_fee_rate`` in sat/kvB (100,000 sat/vB)."""

FieldValue = int | None | tuple[str, ...]
"""What a field holds: an int, ``None`` (no limit) or, for ``required-holders``, holder names."""


@dataclass(frozen=True, slots=True)
class SpendLimits:
    """A vault's effective spending policy at a height."""

    max_per_spend: int | None = None
    """sat leaving the vault in one spend (outputs that are not change, fee excluded); None: no cap."""
    velocity_limit: int | None = None
    """sat leaving the vault within ``velocity_window`` blocks; None: no cap."""
    velocity_window: int = 144
    """blocks the velocity limit looks back over."""
    max_fee_rate: int = 100_000
    """sat/kvB (100 sat/vB)."""
    max_fee: int = 1_000_000
    """sat (0.01 BTC)."""
    delay_above: int | None = None
    """sat; a spend above it waits ``delay_blocks`` after quorum before broadcast; None: no delay."""
    delay_blocks: int = 0
    """blocks a spend above ``delay_above`` waits after it reached quorum."""
    required_holders: tuple[str, ...] = ()
    """holders that must be among the signers of every spend."""
    loosen_delay: int = 144
    """blocks before a loosening change becomes active."""

    def __post_init__(self) -> None:
        for name in ("max_per_spend", "velocity_limit", "delay_above"):
            _check_sat(name, getattr(self, name), optional=True)
        _check_sat("max_fee", self.max_fee, optional=False)
        _check_int("velocity_window", self.velocity_window, 1, MAX_BLOCKS)
        _check_int("max_fee_rate", self.max_fee_rate, 0, MAX_FEE_RATE)
        _check_int("delay_blocks", self.delay_blocks, 0, MAX_BLOCKS)
        _check_int("loosen_delay", self.loosen_delay, 0, MAX_BLOCKS)
        holders = self.required_holders
        if not isinstance(holders, tuple) or not all(isinstance(h, str) and h for h in holders):
            raise InvalidInput(f"required-holders must be a tuple of holder names, got {holders!r}")
        if len(set(holders)) != len(holders):
            raise InvalidInput(f"required-holders {list(holders)} names a holder twice; name each once")

    def value(self, field: str) -> FieldValue:
        """The value of ``field`` (a CLI name from :data:`FIELDS`)."""
        value: FieldValue = getattr(self, attribute(field))
        return value

    def with_changes(self, changes: Mapping[str, FieldValue]) -> SpendLimits:
        """These limits with ``changes`` (CLI field name → new value) applied; checked again."""
        kwargs: dict[str, FieldValue] = {}
        for field, value in changes.items():
            if field == "required-holders" and value is not None and not isinstance(value, int):
                value = tuple(sorted(value))
            kwargs[attribute(field)] = value
        return replace(self, **kwargs)  # type: ignore[arg-type]


FIELDS: tuple[str, ...] = tuple(f.name.replace("_", "-") for f in fields(SpendLimits))
"""The CLI names of the fields, in declaration order: ``max-per-spend`` ... ``loosen-delay``."""

OPTIONAL_FIELDS: frozenset[str] = frozenset({"max-per-spend", "velocity-limit", "delay-above"})
"""Fields that may be ``None`` (no limit); the CLI clears them with ``none``."""

SAT_FIELDS: frozenset[str] = frozenset({"max-per-spend", "velocity-limit", "max-fee", "delay-above"})
"""Fields that hold satoshis (shown and entered as BTC)."""

BLOCK_FIELDS: frozenset[str] = frozenset({"velocity-window", "delay-blocks", "loosen-delay"})
"""Fields that hold a number of blocks."""


def attribute(field: str) -> str:
    """The attribute name of a CLI field name; an unknown name is :class:`InvalidInput`."""
    if field not in FIELDS:
        raise InvalidInput(f"unknown policy field {field!r}; the fields are: {', '.join(FIELDS)}")
    return field.replace("-", "_")


def _looser_limit(old: int | None, new: int | None) -> bool:
    """A cap where None means unlimited: raising or removing it loosens."""
    if new is None:
        return old is not None
    return old is not None and new > old


def loosened(old: SpendLimits, new: SpendLimits) -> tuple[str, ...]:
    """The CLI names of the fields in which ``new`` lets more through than ``old``, in FIELDS order.

    Higher or removed caps (max-per-spend, velocity-limit, max-fee-rate, max-fee) loosen; a shorter
    velocity window loosens (less of the past counts); a higher or removed delay-above and fewer
    delay-blocks loosen; dropping any required holder loosens (adding one tightens); a shorter
    loosen-delay loosens. An equal value neither loosens nor tightens.
    """
    out: list[str] = []
    if _looser_limit(old.max_per_spend, new.max_per_spend):
        out.append("max-per-spend")
    if _looser_limit(old.velocity_limit, new.velocity_limit):
        out.append("velocity-limit")
    if new.velocity_window < old.velocity_window:
        out.append("velocity-window")
    if new.max_fee_rate > old.max_fee_rate:
        out.append("max-fee-rate")
    if new.max_fee > old.max_fee:
        out.append("max-fee")
    if _looser_limit(old.delay_above, new.delay_above):
        out.append("delay-above")
    if new.delay_blocks < old.delay_blocks:
        out.append("delay-blocks")
    if not set(old.required_holders) <= set(new.required_holders):
        out.append("required-holders")
    if new.loosen_delay < old.loosen_delay:
        out.append("loosen-delay")
    return tuple(out)


def _check_int(name: str, value: object, low: int, high: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise InvalidInput(f"{name.replace('_', '-')} must be a whole number, got {value!r}")
    if not low <= value <= high:
        raise InvalidInput(
            f"{name.replace('_', '-')} {value} is out of range; give a value from {low} to {high}"
        )


def _check_sat(name: str, value: object, *, optional: bool) -> None:
    if value is None and optional:
        return
    _check_int(name, value, 0, MAX_MONEY)
