"""The policy gate of a spend: every rule of a vault's spending policy judged on plain facts.

:func:`evaluate` takes :class:`GateFacts` (what the spend really does, established by
:mod:`custody.spend_facts` from the PSBT, the vault's descriptor and the node, never from what the
PSBT claims) and the vault's :class:`~custody.spend_policy.SpendLimits`, and returns one
:class:`RuleResult` per rule, passed or failed, each with a detail naming the values it compared
(amounts in BTC, holders by name). :func:`violations` lists the failed ones. Nothing here raises on
a failed rule: a judge returns findings (STYLE.md, "Errors").

The rules, in order:

``inputs``
    every input is an unspent output of this vault (amount known from the node, its script
    re-derived from the vault's descriptor at a receive or change path);
``outputs``
    every output is change of this vault, an address of another vault of the reserve, or an active
    allowlist entry; an allowlist entry still in its delay says at which height it becomes active;
``locks``
    no input is held by another open spend;
``approvals``
    every input carries valid signatures of at least the threshold of *distinct* holders (one
    holder's two keys count once), and no signature was refused;
``required-holders``
    every holder the policy names signed every input;
``max-per-spend``
    what leaves the vault (outputs that are not change; the fee is not counted) is at most the cap;
``velocity``
    what already left in the window plus this spend, fees included on both sides, is at most the
    velocity limit;
``max-fee-rate``
    fee * 1000 / vsize (sat/kvB, compared exactly in integers) is at most the cap;
``max-fee``
    the absolute fee is at most the cap;
``delay``
    a spend above ``delay_above`` may be broadcast only ``delay_blocks`` after it reached quorum.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum

from custody.amount import format_btc
from custody.errors import InvalidInput
from custody.spend_policy import SpendLimits

RULES: tuple[str, ...] = (
    "inputs",
    "outputs",
    "locks",
    "approvals",
    "required-holders",
    "max-per-spend",
    "velocity",
    "max-fee-rate",
    "max-fee",
    "delay",
)
"""Every rule :func:`evaluate` judges, in the order it reports them."""


class Destination(StrEnum):
    """Where an output goes, as re-derived (never as the PSBT labels it)."""

    CHANGE = "change"
    """this vault's change branch"""
    VAULT = "vault"
    """an address of another vault of the reserve"""
    ALLOWLIST = "allowlist"
    """an active allowlist entry of this vault"""
    PENDING_ALLOWLIST = "pending-allowlist"
    """an allowlist entry added but still in its delay"""
    RETIRED_VAULT = "retired-vault"
    """an address of a retired vault of the reserve (it receives nothing)"""
    UNKNOWN = "unknown"
    """anything else"""


def btc(sat: int) -> str:
    """``1.50000000 BTC``: an amount as exact BTC text."""
    return f"{format_btc(sat)} BTC"


def sat_per_vb(sat_per_kvb: int) -> str:
    """A fee rate in sat/kvB shown as sat/vB with three decimals: ``2500`` → ``2.500 sat/vB``."""
    whole, frac = divmod(sat_per_kvb, 1000)
    return f"{whole}.{frac:03d} sat/vB"


def _names(names: Iterable[str]) -> str:
    listed = list(names)
    return ", ".join(listed) if listed else "nobody"


@dataclass(frozen=True, slots=True)
class InputFact:
    """One input of the spend, as the node and the vault's descriptor establish it."""

    outpoint: str
    """``txid:vout``"""
    amount: int | None
    """sat, from the node's UTXO set; None: not an unspent output"""
    path: tuple[int, int] | None
    """(branch, index) when its script re-derives from this vault's descriptor, else None"""
    signers: tuple[str, ...]
    """holders with a verified signature on this input, each once"""
    locked_by: int | None = None
    """the number of another open spend holding this input, if any"""
    refusals: tuple[str, ...] = ()
    """signatures (or claims) on this input that were refused, each with its reason"""

    def __post_init__(self) -> None:
        if len(set(self.signers)) != len(self.signers):
            raise InvalidInput(
                f"input {self.outpoint}: signers {list(self.signers)} name a holder twice; "
                "a holder counts once however many of its keys signed"
            )
        if self.amount is not None and (isinstance(self.amount, bool) or self.amount < 0):
            raise InvalidInput(f"input {self.outpoint}: amount {self.amount!r} must be sat >= 0")


@dataclass(frozen=True, slots=True)
class OutputFact:
    """One output of the spend and where it really goes."""

    index: int
    amount: int
    """sat"""
    address: str
    destination: Destination
    name: str | None = None
    """the other (or retired) vault's or the allowlist entry's name"""
    active_at: int | None = None
    """for a PENDING_ALLOWLIST output: the height at which its entry becomes active"""
    own_path: tuple[int, int] | None = None
    """for an UNKNOWN output: (branch, index) when it is this vault's own address off its change
    branch (a receive address: not change, and a vault does not pay itself)"""

    def __post_init__(self) -> None:
        if isinstance(self.amount, bool) or self.amount < 0:
            raise InvalidInput(f"output #{self.index}: amount {self.amount!r} must be sat >= 0")

    def describe(self) -> str:
        """``#1 0.50000000 BTC to bcrt1q... (allowlist exchange)``."""
        where = self.destination.value
        if self.name is not None:
            where = f"{where} {self.name}"
        return f"#{self.index} {btc(self.amount)} to {self.address} ({where})"


@dataclass(frozen=True, slots=True)
class GateFacts:
    """Everything the gate judges, as plain values."""

    vault: str
    threshold: int
    inputs: tuple[InputFact, ...]
    outputs: tuple[OutputFact, ...]
    fee: int
    """sat: inputs (node amounts) minus outputs; meaningful only when every input amount is known"""
    vsize: int
    """estimated vsize of the final, fully signed transaction"""
    velocity_used: int
    """sat that already left the vault in the velocity window"""
    tip_height: int
    quorum_height: int | None
    """height at which the spend first reached quorum; None if it has not"""
    holders: tuple[str, ...] = ()
    """the vault's distinct holders in key order (to say who has not signed)"""

    @property
    def outgoing(self) -> int:
        """sat leaving the vault: every output that is not change (the fee not counted)."""
        return sum(o.amount for o in self.outputs if o.destination is not Destination.CHANGE)

    @property
    def change(self) -> int:
        return sum(o.amount for o in self.outputs if o.destination is Destination.CHANGE)

    @property
    def fee_known(self) -> bool:
        """Whether every input's amount came from the node (otherwise the fee is unknown)."""
        return all(i.amount is not None for i in self.inputs)


@dataclass(frozen=True, slots=True)
class RuleResult:
    """One rule's verdict: ``ok`` and a detail naming the values compared."""

    rule: str
    ok: bool
    detail: str


def evaluate(facts: GateFacts, limits: SpendLimits) -> tuple[RuleResult, ...]:
    """Judge every rule (see the module doc) and return them all, passed and failed, in order."""
    return (
        _inputs(facts),
        _outputs(facts),
        _locks(facts),
        _approvals(facts),
        _required_holders(facts, limits),
        _max_per_spend(facts, limits),
        _velocity(facts, limits),
        _max_fee_rate(facts, limits),
        _max_fee(facts, limits),
        _delay(facts, limits),
    )


def violations(results: Iterable[RuleResult]) -> tuple[str, ...]:
    """``"rule: detail"`` for every failed rule, in order."""
    return tuple(f"{r.rule}: {r.detail}" for r in results if not r.ok)


# --- the rules ---


def _inputs(facts: GateFacts) -> RuleResult:
    if not facts.inputs:
        return RuleResult("inputs", False, "the spend has no inputs")
    problems: list[str] = []
    seen: set[str] = set()
    for i in facts.inputs:
        if i.outpoint in seen:
            problems.append(f"input {i.outpoint} is spent twice in one transaction (invalid)")
            continue
        seen.add(i.outpoint)
        if i.amount is None:
            problems.append(
                f"input {i.outpoint} is not an unspent output on the node (spent, unconfirmed "
                "elsewhere or never existed)"
            )
        elif i.path is None:
            problems.append(
                f"input {i.outpoint} ({btc(i.amount)}) is not an output of vault {facts.vault}: its "
                "script does not re-derive from the vault's descriptor"
            )
    if problems:
        return RuleResult("inputs", False, "; ".join(problems))
    total = sum(i.amount or 0 for i in facts.inputs)
    return RuleResult(
        "inputs",
        True,
        f"{len(facts.inputs)} input(s), {btc(total)} in all, each an unspent output of vault "
        f"{facts.vault} with its script re-derived from the descriptor",
    )


def _outputs(facts: GateFacts) -> RuleResult:
    if not facts.outputs:
        return RuleResult("outputs", False, "the spend has no outputs")
    problems: list[str] = []
    for o in facts.outputs:
        if o.destination is Destination.PENDING_ALLOWLIST:
            when = f"height {o.active_at}" if o.active_at is not None else "a later height"
            problems.append(
                f"output {o.describe()}: allowlist entry {o.name} is still in its delay and "
                f"becomes active at {when} (tip {facts.tip_height})"
            )
        elif o.destination is Destination.RETIRED_VAULT:
            problems.append(
                f"output {o.describe()} pays vault {o.name}, which is retired: a retired vault "
                "receives nothing; pay an active vault (`reserve vault list`)"
            )
        elif o.destination is Destination.UNKNOWN and o.own_path is not None:
            problems.append(
                f"output {o.describe()} pays vault {facts.vault}'s own receive address "
                f"{o.own_path[0]}/{o.own_path[1]}: it is not change (change comes back only on the "
                "vault's change branch) and a vault does not pay itself"
            )
        elif o.destination is Destination.UNKNOWN:
            problems.append(
                f"output {o.describe()} is not change of vault {facts.vault}, not an address of "
                "another vault of the reserve and not on the vault's allowlist"
            )
    if problems:
        return RuleResult("outputs", False, "; ".join(problems))
    return RuleResult("outputs", True, "; ".join(o.describe() for o in facts.outputs))


def _locks(facts: GateFacts) -> RuleResult:
    held = [i for i in facts.inputs if i.locked_by is not None]
    if held:
        return RuleResult(
            "locks",
            False,
            "; ".join(f"input {i.outpoint} is held by open spend #{i.locked_by}" for i in held)
            + " (cancel that spend first to free it)",
        )
    return RuleResult("locks", True, "no input is held by another open spend")


def _group(inputs: Sequence[InputFact], key: tuple[str, ...]) -> str:
    """Which inputs share a signer set: all of them, or their outpoints."""
    return "every input" if len(key) == len(inputs) and len(inputs) > 1 else "input " + ", ".join(key)


def _approvals(facts: GateFacts) -> RuleResult:
    if not facts.inputs:
        return RuleResult("approvals", False, "the spend has no inputs to sign")
    # Inputs with the same signers are reported together (a 200-input spend stays readable).
    groups: dict[tuple[str, ...], list[str]] = {}
    for i in facts.inputs:
        groups.setdefault(i.signers, []).append(i.outpoint)
    ok = all(len(i.signers) >= facts.threshold for i in facts.inputs)
    parts: list[str] = []
    for signers, outpoints in groups.items():
        missing = [h for h in facts.holders if h not in signers]
        enough = len(signers) >= facts.threshold
        where = _group(facts.inputs, tuple(outpoints))
        text = (
            f"{where}: signed by {_names(signers)} ({len(signers)} distinct holder(s), "
            f"{facts.threshold} needed)"
        )
        if missing:
            text += f", not signed by {_names(missing)}"
        if not enough:
            text += f": {facts.threshold - len(signers)} more signature(s) needed"
        parts.append(text)
    refused = [f"input {i.outpoint}: {r}" for i in facts.inputs for r in i.refusals]
    if refused:
        ok = False
        parts.append("refused: " + "; ".join(refused))
    return RuleResult("approvals", ok, "; ".join(parts))


def _required_holders(facts: GateFacts, limits: SpendLimits) -> RuleResult:
    required = limits.required_holders
    if not required:
        return RuleResult("required-holders", True, "the policy names no required holder")
    problems: list[str] = []
    if facts.holders:
        for holder in required:
            if holder not in facts.holders:
                problems.append(
                    f"required holder {holder} holds no key of vault {facts.vault} "
                    f"(holders: {_names(facts.holders)}); no spend can meet the policy"
                )
    for holder in required:
        unsigned = [i.outpoint for i in facts.inputs if holder not in i.signers]
        if unsigned:
            where = _group(facts.inputs, tuple(unsigned))
            problems.append(f"required holder {holder} has not signed {where}")
    if problems:
        return RuleResult("required-holders", False, "; ".join(problems))
    return RuleResult("required-holders", True, f"required holder(s) {_names(required)} signed every input")


def _max_per_spend(facts: GateFacts, limits: SpendLimits) -> RuleResult:
    outgoing = facts.outgoing
    what = f"outgoing {btc(outgoing)} (outputs that are not change; the fee is not counted)"
    cap = limits.max_per_spend
    if cap is None:
        return RuleResult("max-per-spend", True, f"{what}; no per-spend limit set")
    if outgoing <= cap:
        return RuleResult("max-per-spend", True, f"{what} <= limit {btc(cap)}")
    return RuleResult(
        "max-per-spend", False, f"{what} is above the limit {btc(cap)} by {btc(outgoing - cap)}"
    )


def _velocity(facts: GateFacts, limits: SpendLimits) -> RuleResult:
    # The fee leaves the vault too, and counts as it does in what already left (booked outflows
    # carry their fee, broadcast spends count theirs): a spend weighs the same before and after it
    # is booked.
    fee = facts.fee if facts.fee_known and facts.fee > 0 else 0
    total = facts.velocity_used + facts.outgoing + fee
    this = f"{btc(facts.outgoing)} in this spend" + (f" + its fee {btc(fee)}" if fee else "")
    what = (
        f"{btc(facts.velocity_used)} left vault {facts.vault} in the last "
        f"{limits.velocity_window} blocks (fees included) + {this} = {btc(total)}"
    )
    cap = limits.velocity_limit
    if cap is None:
        return RuleResult("velocity", True, f"{what}; no velocity limit set")
    if total <= cap:
        return RuleResult("velocity", True, f"{what} <= limit {btc(cap)}")
    return RuleResult("velocity", False, f"{what} is above the limit {btc(cap)} by {btc(total - cap)}")


def _unknown_fee(facts: GateFacts, rule: str) -> RuleResult | None:
    if facts.fee_known:
        return None
    unknown = [i.outpoint for i in facts.inputs if i.amount is None]
    return RuleResult(
        rule,
        False,
        f"the fee cannot be known: the node has no unspent output for input(s) {', '.join(unknown)}",
    )


def _max_fee_rate(facts: GateFacts, limits: SpendLimits) -> RuleResult:
    unknown = _unknown_fee(facts, "max-fee-rate")
    if unknown is not None:
        return unknown
    if facts.vsize <= 0:
        return RuleResult("max-fee-rate", False, f"the transaction's size {facts.vsize} vB is impossible")
    if facts.fee < 0:
        return RuleResult(
            "max-fee-rate", False, f"the outputs exceed the inputs by {btc(-facts.fee)} (negative fee)"
        )
    cap = limits.max_fee_rate
    rate_ceil = -(-facts.fee * 1000 // facts.vsize)  # shown rounded up; compared exactly below
    what = f"fee {btc(facts.fee)} over an estimated {facts.vsize} vB (fully signed) = {sat_per_vb(rate_ceil)}"
    if facts.fee * 1000 <= cap * facts.vsize:
        return RuleResult("max-fee-rate", True, f"{what} <= limit {sat_per_vb(cap)}")
    return RuleResult("max-fee-rate", False, f"{what} is above the limit {sat_per_vb(cap)}")


def _max_fee(facts: GateFacts, limits: SpendLimits) -> RuleResult:
    unknown = _unknown_fee(facts, "max-fee")
    if unknown is not None:
        return unknown
    if facts.fee < 0:
        return RuleResult(
            "max-fee", False, f"the outputs exceed the inputs by {btc(-facts.fee)} (negative fee)"
        )
    cap = limits.max_fee
    if facts.fee <= cap:
        return RuleResult("max-fee", True, f"fee {btc(facts.fee)} <= limit {btc(cap)}")
    return RuleResult(
        "max-fee", False, f"fee {btc(facts.fee)} is above the limit {btc(cap)} by {btc(facts.fee - cap)}"
    )


def _delay(facts: GateFacts, limits: SpendLimits) -> RuleResult:
    above = limits.delay_above
    outgoing = facts.outgoing
    if above is None:
        return RuleResult("delay", True, "no delay set: the spend may go as soon as it has quorum")
    if outgoing <= above:
        return RuleResult(
            "delay", True, f"outgoing {btc(outgoing)} <= delay-above {btc(above)}: no delay applies"
        )
    what = (
        f"outgoing {btc(outgoing)} is above delay-above {btc(above)}, so it waits "
        f"{limits.delay_blocks} block(s) after quorum"
    )
    if facts.quorum_height is None:
        return RuleResult(
            "delay",
            False,
            f"{what}; quorum is not reached yet, so it may go at the earliest {limits.delay_blocks} "
            "block(s) after the height at which it is",
        )
    may_at = facts.quorum_height + limits.delay_blocks
    when = f"quorum reached at height {facts.quorum_height}, it may be broadcast from height {may_at}"
    if facts.tip_height >= may_at:
        return RuleResult("delay", True, f"{what}; {when} (tip {facts.tip_height})")
    return RuleResult(
        "delay",
        False,
        f"{what}; {when} (tip {facts.tip_height}, {may_at - facts.tip_height} block(s) to go; "
        "a holder can still cancel it)",
    )
