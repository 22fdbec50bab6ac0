"""The gate's glue: what the books and the node say about a spend, judged by :mod:`custody.spend_gate`.

1. **books** (:func:`read_context`, a short read): the vault, its limits and allowlist in force at
   the node's tip (:mod:`ledger.spend.policy_store`), the other active vaults, the coins other
   open spends hold, and what already left the vault in the velocity window;
2. **node** (:func:`node_coins`, no transaction open): each input's previous output from the UTXO
   set (its amount and script, never the PSBT's claim);
3. **judge** (:func:`judge`, pure apart from key derivation): the vault's scripts among the
   inputs' coins and the outputs located in its descriptor (:func:`vault_paths`), then
   :func:`custody.spend_facts.gather_facts` (every output classified, every partial signature
   verified and attributed to a holder) and :func:`custody.spend_gate.evaluate`.

The PSBT's BIP-32 derivations are used only as hints where to look: a path counts only when the
descriptor derives the very script at it. :func:`check_input_signatures` verifies signatures one
by one for ``reserve spend sign``, which must say which ones it copies.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

from sqlalchemy.orm import Session

from custody.descriptor import MultisigDescriptor
from custody.errors import CustodyError, PolicyViolation
from custody.psbt import Derivation, Psbt
from custody.rpc import RpcClient
from custody.sighash import check_signature
from custody.spend_facts import Path, gather_facts
from custody.spend_gate import GateFacts, RuleResult, evaluate, violations
from custody.spend_node import Coin, Outpoint, outpoint_text, unspent_coins
from custody.spend_policy import SpendLimits
from ledger.chain.issuance import issued_ranges
from ledger.chain.recording import SCRIPT_RANGE, VaultScripts
from ledger.chain.vaults import Vault, get_vault, list_vaults
from ledger.spend.events import check_untampered, list_spends, velocity_used
from ledger.spend.policy_store import AllowEntry, allowlist, effective_limits

HINT_LIMIT = 100_000
"""A derivation hint beyond this index is not believed (nor searched): vault indexes stay far below."""

CREATE_WAIVED = ("approvals", "required-holders", "delay")
"""Rules a proposal may fail when it is created: nobody has signed yet, and the delay runs from quorum."""


class SpendRefused(PolicyViolation):
    """A spend the vault's spending policy refuses; ``findings`` lists every violation."""

    def __init__(self, what: str, findings: Sequence[str]) -> None:
        self.findings = tuple(findings)
        CustodyError.__init__(self, f"{what}:\n  - " + "\n  - ".join(self.findings))


@dataclass(frozen=True, slots=True)
class GateContext:
    """What the books say, as of the node's tip ``tip``."""

    vault: Vault
    limits: SpendLimits
    allow_active: tuple[AllowEntry, ...]
    allow_pending: tuple[AllowEntry, ...]
    others: VaultScripts  # scripts of the other active vaults
    locks: Mapping[Outpoint, int]  # coins held by other open spends -> spend number
    velocity_used: int
    tip: int
    retired: VaultScripts  # scripts of retired vaults: a payment to one is refused as such


def read_context(
    session: Session, vault_name: str, tip: int, *, exclude_spend: int | None = None
) -> GateContext:
    """The books' part of the gate's facts (a short read); :class:`~ledger.errors.TamperDetected`
    when the vault's spend rows disagree with their log records (the gate would judge on them)."""
    vault = get_vault(session, vault_name)
    check_untampered(session, vault.name)
    limits = effective_limits(session, vault.name, tip)
    active, pending = allowlist(session, vault.name, tip)
    others = tuple(v for v in list_vaults(session) if v.name != vault.name)
    retired = tuple(v for v in list_vaults(session, include_retired=True) if v.retired)
    locks: dict[Outpoint, int] = {}
    for s in list_spends(session, open_only=True):
        if s.number != exclude_spend:
            locks.update({o: s.number for o in s.inputs})
    return GateContext(
        vault=vault,
        limits=limits,
        allow_active=active,
        allow_pending=pending,
        others=VaultScripts.of(others, issued_ranges(session)),
        locks=locks,
        velocity_used=velocity_used(session, vault.name, tip, limits.velocity_window),
        tip=tip,
        retired=VaultScripts.of(retired, issued_ranges(session)),
    )


def outpoints_of(psbt: Psbt) -> tuple[Outpoint, ...]:
    return tuple((i.txid, i.vout) for i in psbt.tx.inputs)


def node_coins(rpc: RpcClient, psbt: Psbt) -> dict[Outpoint, Coin | None]:
    """Each input's previous output in the node's UTXO set (mempool spends count as spent)."""
    return unspent_coins(rpc, outpoints_of(psbt))


# --- derivation -----------------------------------------------------------------------------------


@lru_cache(maxsize=32)
def _paths(descriptor_text: str, end: int) -> dict[bytes, tuple[int, int]]:
    descriptor = MultisigDescriptor.parse(descriptor_text)
    return {
        descriptor.script_pubkey(index, bool(branch)): (branch, index)
        for branch in (0, 1)
        for index in range(end)
    }


def _hints(vault: Vault, derivations: Iterable[Derivation]) -> list[tuple[int, int]]:
    """``(branch, index)`` pairs the PSBT claims for this vault's keys (to be checked)."""
    fingerprints = {k.origin.fingerprint: len(k.origin.path) for k in vault.descriptor.keys if k.origin}
    out: list[tuple[int, int]] = []
    for d in derivations:
        depth = fingerprints.get(d.fingerprint)
        path: tuple[int, ...] = d.path
        if depth is not None and len(path) == depth + 2 and path[-2] in (0, 1) and path[-1] < HINT_LIMIT:
            out.append((path[-2], path[-1]))
    return list(dict.fromkeys(out))


def find_path(
    vault: Vault, script: bytes, derivations: Iterable[Derivation] = (), *, end: int = SCRIPT_RANGE
) -> tuple[int, int] | None:
    """Where ``script`` sits in the vault's descriptor, ``(branch, index)``, or ``None``: first at
    the paths the PSBT claims, then among indexes ``0..end-1`` of both branches."""
    descriptor = vault.descriptor
    for branch, index in _hints(vault, derivations):
        if descriptor.script_pubkey(index, bool(branch)) == script:
            return branch, index
    return _paths(str(descriptor), end).get(script)


# --- signatures -----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SigCheck:
    """One partial signature on one input, verified and attributed (``reason`` None = valid)."""

    input: int
    pubkey: bytes
    signature: bytes
    holder: str | None  # the vault holder whose key it is (None: not a key of this vault)
    fingerprint: str | None  # that key's master fingerprint, hex
    reason: str | None


def check_input_signatures(
    psbt: Psbt,
    index: int,
    partial_sigs: Sequence[tuple[bytes, bytes]],
    vault: Vault,
    path: tuple[int, int] | None,
    amount: int | None,
) -> tuple[SigCheck, ...]:
    """Verify each of ``partial_sigs`` against input ``index`` of ``psbt``'s unsigned transaction,
    with the witness script re-derived at ``path`` and the node's ``amount``."""
    out: list[SigCheck] = []
    outpoint = outpoint_text((psbt.tx.inputs[index].txid, psbt.tx.inputs[index].vout))
    if path is None or amount is None:
        why = (
            "its coin is not an unspent output of the vault on the node"
            if amount is None
            else "its script does not re-derive from the vault's descriptor"
        )
        return tuple(
            SigCheck(index, pk, sig, None, None, f"signature by key {pk.hex()} on input {outpoint}: {why}")
            for pk, sig in partial_sigs
        )
    branch, child = path
    pubkeys = vault.descriptor.pubkeys(child, bool(branch))
    witness_script = vault.descriptor.witness_script(child, bool(branch))
    for pk, sig in partial_sigs:
        if pk not in pubkeys:
            out.append(
                SigCheck(index, pk, sig, None, None, f"key {pk.hex()} is not a key of vault {vault.name}")
            )
            continue
        position = pubkeys.index(pk)
        key = vault.descriptor.keys[position]
        holder = vault.holders[position]
        fingerprint = key.origin.fingerprint.hex() if key.origin else None
        problem = check_signature(psbt.tx, index, witness_script, amount, pk, sig)
        reason = (
            None
            if problem is None
            else f"the signature of {holder} (key {fingerprint}) on input {outpoint} does not "
            f"verify: {problem}"
        )
        out.append(SigCheck(index, pk, sig, holder, fingerprint, reason))
    return tuple(out)


def signers_of(checks: Iterable[SigCheck]) -> tuple[str, ...]:
    """Distinct holders with a valid signature, in first-seen order (one holder's keys count once)."""
    return tuple(dict.fromkeys(c.holder for c in checks if c.reason is None and c.holder is not None))


# --- judging --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Verdict:
    facts: GateFacts
    results: tuple[RuleResult, ...]

    @property
    def violations(self) -> tuple[str, ...]:
        return violations(self.results)

    def violations_except(self, waived: Sequence[str]) -> tuple[str, ...]:
        return violations(r for r in self.results if r.rule not in waived)

    @property
    def has_quorum(self) -> bool:
        inputs = self.facts.inputs
        return bool(inputs) and all(len(i.signers) >= self.facts.threshold for i in inputs)


def vault_paths(
    ctx: GateContext, psbt: Psbt, coins: Mapping[Outpoint, Coin | None], end: int
) -> dict[bytes, Path]:
    """This vault's scripts among the inputs' coins and the outputs, ``script -> (branch, index)``,
    re-derived (the PSBT's derivations only say where to look first)."""
    found: dict[bytes, Path] = {}
    wanted: list[tuple[bytes, Iterable[Derivation]]] = []
    for txin, pin in zip(psbt.tx.inputs, psbt.inputs, strict=True):
        coin = coins.get((txin.txid, txin.vout))
        if coin is not None:
            wanted.append((coin.script_pubkey, pin.derivations))
    for txout, pout in zip(psbt.tx.outputs, psbt.outputs, strict=True):
        wanted.append((txout.script_pubkey, pout.derivations))
    for script, hints in wanted:
        path = find_path(ctx.vault, script, hints, end=end)
        if path is not None:
            found[script] = path
    return found


def judge(
    psbt: Psbt,
    ctx: GateContext,
    coins: Mapping[Outpoint, Coin | None],
    quorum_height: int | None,
    *,
    spend: int | None = None,
    end: int = SCRIPT_RANGE,
) -> Verdict:
    """Establish the facts of ``psbt`` (:func:`custody.spend_facts.gather_facts`) and judge every
    rule of the vault's policy (:func:`custody.spend_gate.evaluate`)."""
    vault = ctx.vault
    allowed = {script: e.name for e in ctx.allow_active for script in e.scripts}
    pending = {script: (e.name, e.active_at) for e in ctx.allow_pending for script in e.scripts}
    facts = gather_facts(
        psbt,
        vault=vault.name,
        descriptor=vault.descriptor,
        holders=vault.holders,
        network=vault.network,
        prevouts={o: None if c is None else (c.value, c.script_pubkey) for o, c in coins.items()},
        vault_scripts=vault_paths(ctx, psbt, coins, end),
        other_vaults=ctx.others.by_script,
        allowlist=allowed,
        pending=pending,
        locks=ctx.locks,
        velocity_used=ctx.velocity_used,
        tip_height=ctx.tip,
        quorum_height=quorum_height,
        spend=spend,
        retired_vaults=ctx.retired.by_script,
    )
    return Verdict(facts, evaluate(facts, ctx.limits))
