"""``reserve spend show``: a spend as people and programs read it.

An open spend is judged again at the node's tip (:mod:`ledger.spend.gate`, on the stored PSBT), so
every rule shows pass or fail as a broadcast would see it now, and each input lists which holders
signed and which are missing (holder name and key fingerprint). A spend that ended shows its
history only.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from custody.errors import NodeUnreachable
from custody.psbt import Psbt
from custody.rpc import RpcClient
from ledger.chain.vaults import Vault, get_vault
from ledger.spend.events import BROADCAST, Spend, get_spend
from ledger.spend.gate import Verdict, judge, node_coins, read_context

SessionFactory = Callable[[], AbstractContextManager[Session]]


@dataclass(frozen=True, slots=True)
class InputView:
    outpoint: str
    amount: int | None
    signed: tuple[tuple[str, str], ...]  # (holder, key fingerprints)
    missing: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class SpendView:
    spend: Spend
    vault: Vault
    verdict: Verdict | None  # None: the spend ended, or the node could not be asked
    inputs: tuple[InputView, ...]
    unjudged: str | None = None  # why an open spend was not judged (the node's error)

    @property
    def fee(self) -> int:
        return self.verdict.facts.fee if self.verdict else int(self.spend.proposal.detail.get("fee", 0))

    @property
    def vsize(self) -> int:
        return self.verdict.facts.vsize if self.verdict else int(self.spend.proposal.detail.get("vsize", 0))

    @property
    def fee_rate(self) -> int:
        """sat/kvB over the estimated final vsize, rounded up."""
        return -(-self.fee * 1000 // self.vsize) if self.vsize else 0


def _fingerprints(vault: Vault) -> dict[str, str]:
    out: dict[str, list[str]] = {}
    for holder, key in zip(vault.holders, vault.descriptor.keys, strict=True):
        out.setdefault(holder, []).append(key.origin.fingerprint.hex() if key.origin else "?")
    return {h: ",".join(f) for h, f in out.items()}


def inspect_spend(read: SessionFactory, rpc: RpcClient, number: int) -> SpendView:
    """Spend ``number`` with, when it is open, the gate's verdict at the node's tip."""
    with read() as s:
        spend = get_spend(s, number)
        vault = get_vault(s, spend.vault)
    if not spend.open:
        return SpendView(spend, vault, None, ())
    psbt = Psbt.parse(spend.psbt)
    try:
        tip = rpc.get_block_count()
        coins = node_coins(rpc, psbt)
    except NodeUnreachable as e:  # the stored spend is still worth showing
        return SpendView(spend, vault, None, (), unjudged=str(e))
    with read() as s:
        ctx = read_context(s, spend.vault, tip, exclude_spend=number)
    verdict = judge(psbt, ctx, coins, spend.quorum_height, spend=number)
    prints = _fingerprints(vault)
    holders = tuple(dict.fromkeys(vault.holders))
    inputs = tuple(
        InputView(
            i.outpoint,
            i.amount,
            tuple((h, prints[h]) for h in holders if h in i.signers),
            tuple((h, prints[h]) for h in holders if h not in i.signers),
        )
        for i in verdict.facts.inputs
    )
    return SpendView(spend, vault, verdict, inputs)


def view_json(v: SpendView) -> dict[str, Any]:
    s = v.spend
    return {
        "spend": s.number,
        "vault": s.vault,
        "state": s.state,
        "txid": s.txid,
        "memo": s.memo,
        "amount_sat": s.amount,
        "fee_sat": v.fee,
        "vsize": v.vsize,
        "fee_rate_sat_per_kvb": v.fee_rate,
        "quorum_height": s.quorum_height,
        "gated": s.reached(BROADCAST) is not None,
        "outside_gate": any(bool(e.detail.get("outside_gate")) for e in s.events),
        "destinations": [
            {"index": d.index, "kind": d.kind, "name": d.name, "address": d.address, "amount_sat": d.amount}
            for d in s.destinations
        ],
        "unjudged": v.unjudged,
        "rules": (
            None
            if v.verdict is None
            else [{"rule": r.rule, "ok": r.ok, "detail": r.detail} for r in v.verdict.results]
        ),
        "inputs": [
            {
                "outpoint": i.outpoint,
                "amount_sat": i.amount,
                "signed": [{"holder": h, "fingerprint": f} for h, f in i.signed],
                "missing": [{"holder": h, "fingerprint": f} for h, f in i.missing],
            }
            for i in v.inputs
        ],
        "history": [
            {
                "step": e.step,
                "state": e.state,
                "height": e.height,
                "at": None if e.created_at is None else e.created_at.isoformat(),
                "detail": e.detail,
                "record_seq": e.record_seq,
            }
            for e in s.events
        ],
    }


def summary(spend: Spend) -> dict[str, Any]:
    """One line of ``spend list``."""
    return {
        "spend": spend.number,
        "vault": spend.vault,
        "state": spend.state,
        "txid": spend.txid,
        "amount_sat": spend.amount,
        "to": [d.name for d in spend.destinations],
        "memo": spend.memo,
        "height": spend.latest.height,
        "gated": spend.reached(BROADCAST) is not None,
    }
