"""The values of an outflow's judgement (:mod:`ledger.chain.outflows`): pure, read by the audit report.

Kept apart from :mod:`ledger.chain.outflows` (which builds and judges them, and makes findings of
them) so :mod:`ledger.chain.audit_report` can carry them without an import cycle.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from custody.spend_gate import GateFacts, RuleResult
from custody.spend_policy import SpendLimits


@dataclass(frozen=True, slots=True)
class Outflow:
    """One transaction spending outputs of one vault, with what the gate would have judged."""

    txid: str
    vault: str
    height: int | None
    """its block's height; None: in the mempool"""
    judged_at: int
    """the height its rules are judged at: the block before its own, or the tip (mempool)"""
    amount: int
    """sat the vault lost: its coins spent minus what came back to it (the fee included)"""
    fee: int | None
    """sat, the whole transaction's; None when an input's previous output is unknown"""
    gated: bool
    """the exact transaction ``reserve spend broadcast`` sent after the gate passed"""
    spend: int | None = None
    """the spend whose transaction it is (gated, or a proposal the holders sent themselves)"""
    replaces: tuple[int, ...] = ()
    """other spends whose coins it spends (a replacement of their transaction, a double spend)"""
    facts: GateFacts | None = field(default=None, repr=False)
    limits: SpendLimits | None = field(default=None, repr=False)
    unjudged: str | None = None
    """why the rules could not be judged (the finding stands all the same)"""


@dataclass(frozen=True, slots=True)
class OutflowCheck:
    """An outflow and its verdict: every rule's result (none for a gated one)."""

    outflow: Outflow
    results: tuple[RuleResult, ...]
    acknowledged: bool

    @property
    def broken(self) -> tuple[RuleResult, ...]:
        return tuple(r for r in self.results if not r.ok)

    @property
    def failing(self) -> bool:
        """An ungated spend nobody acknowledged: a finding."""
        return not self.outflow.gated and not self.acknowledged

    def to_json(self) -> dict[str, Any]:
        o = self.outflow
        return {
            "txid": o.txid,
            "vault": o.vault,
            "height": o.height,
            "judged_at": o.judged_at,
            "amount_sat": o.amount,
            "fee_sat": o.fee,
            "gated": o.gated,
            "spend": o.spend,
            "replaces": list(o.replaces),
            "acknowledged": self.acknowledged,
            "unjudged": o.unjudged,
            "broken": [{"rule": r.rule, "detail": r.detail} for r in self.broken],
        }
