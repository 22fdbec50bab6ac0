"""Governed changes: what widens what can leave a vault takes effect only with its holders' approval.

A governed change of a vault (a loosened limit, fee cap or delay; an allowlist entry; another vault
as a destination; its retirement) is proposed as a ``change-proposed`` record whose entry number
is the change's number. The vault's holders approve it by signing a BIP-322 ``to_sign`` over its
canonical bytes (:mod:`ledger.governance.message`) with their vault keys, through the PSBT flow
of spends (:func:`proposal_psbt`; ``reserve approve sign N FILE...``). Each holder's verified
signature is an ``approval`` record; when the vault's threshold of distinct holders has approved,
the change is applied in the same transaction and a ``change-applied`` record names the height of
the quorum and the height from which it is in force: a loosening (policy, allowlist,
destination) from the quorum plus the vault's loosen delay in force then, a retirement at once.

Tightening needs no approval: limits lowered, an allowlist entry or a destination removed, apply
at once (``destination remove`` writes a ``change-applied`` record with no change number).

Every read re-verifies each approval's signature against the vault's descriptor and holds each
applied change to its quorum (:func:`read_changes`): an approval or application appended behind
the service's back (a role that can INSERT but holds no holder's key) is
:class:`~ledger.errors.TamperDetected`, never a widening.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from custody import bip322
from custody.errors import PolicyViolation
from custody.psbt import Psbt
from ledger.chain.vaults import Vault, get_vault, list_vaults, retire_vault, vault_findings
from ledger.errors import Conflict, InvalidInput, NotFound, TamperDetected
from ledger.governance import message as gm
from ledger.journal.entry import check_text
from ledger.journal.records import RecordKind, append_record, records

POLICY_SET, ALLOW_ADD, DESTINATION_ADD, VAULT_RETIRE = (
    "policy-set",
    "allow-add",
    "destination-add",
    "vault-retire",
)
DESTINATION_REMOVE = "destination-remove"
ACKNOWLEDGE = "outflow-acknowledge"
ACTIONS = (POLICY_SET, ALLOW_ADD, DESTINATION_ADD, VAULT_RETIRE, ACKNOWLEDGE)
LOOSENING = frozenset({POLICY_SET, ALLOW_ADD, DESTINATION_ADD})
"""Actions that wait the loosen delay after their quorum."""

_RESTORE = "restore the database from a backup and run `reserve ledger verify`"


@dataclass(frozen=True, slots=True)
class Approval:
    """One holder's verified approval, as its ``approval`` record holds it."""

    seq: int
    holder: str
    key: str
    signature: str


@dataclass(frozen=True, slots=True)
class Applied:
    """When a change took effect: its ``change-applied`` record, the quorum's height and the
    height from which it is in force."""

    seq: int
    height: int
    effective_height: int


@dataclass(frozen=True, slots=True)
class Change:
    """A governed change: its number (the ``change-proposed`` record's entry number), body,
    verified approvals and, once applied, when."""

    number: int
    vault: str
    network: str
    action: str
    params: dict[str, Any]
    requested_height: int
    threshold: int
    approvals: tuple[Approval, ...] = ()
    applied: Applied | None = None

    @property
    def body(self) -> dict[str, Any]:
        """The ``change-proposed`` record's body."""
        return proposed_body(
            vault=self.vault,
            network=self.network,
            action=self.action,
            params=self.params,
            requested_height=self.requested_height,
        )

    @property
    def digest(self) -> str:
        return gm.change_digest(self.number, self.body)

    @property
    def message(self) -> bytes:
        return gm.message_of(self.number, self.body)

    @property
    def approved_by(self) -> tuple[str, ...]:
        return tuple(a.holder for a in self.approvals)

    @property
    def status(self) -> str:
        """``pending`` (awaiting approvals) or ``applied``."""
        return "pending" if self.applied is None else "applied"

    def in_force(self, height: int) -> bool:
        return self.applied is not None and self.applied.effective_height <= height


def proposed_body(
    *, vault: str, network: str, action: str, params: Mapping[str, Any], requested_height: int
) -> dict[str, Any]:
    """The body of a ``change-proposed`` record."""
    return {
        "vault": vault,
        "network": network,
        "action": action,
        "params": dict(params),
        "requested_height": requested_height,
    }


def approval_body(*, change: int, vault: str, digest: str, approval: gm.Signature) -> dict[str, Any]:
    """The body of an ``approval`` record: the change, its digest and the holder's signature."""
    return {
        "change": change,
        "vault": vault,
        "digest": digest,
        "holder": approval.holder,
        "key": approval.key,
        "signature": approval.signature,
    }


def applied_body(
    *, change: int | None, vault: str, action: str, params: Mapping[str, Any], height: int, effective: int
) -> dict[str, Any]:
    """The body of a ``change-applied`` record (``change`` None: a tightening, no approval)."""
    return {
        "change": change,
        "vault": vault,
        "action": action,
        "params": dict(params),
        "height": height,
        "effective_height": effective,
    }


# --- reading ----------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Building:
    change: Change
    approvals: list[Approval] = field(default_factory=list)


def read_changes(session: Session, vault: str | None = None) -> list[Change]:
    """Every governed change (of ``vault``), in number order, each approval re-verified and each
    application held to its quorum; :class:`TamperDetected` when one does not hold."""
    vaults = {v.name: v for v in list_vaults(session, include_retired=True)}
    building: dict[int, _Building] = {}
    for record in records(session, RecordKind.CHANGE_PROPOSED):
        b = record.body
        if vault is not None and b.get("vault") != vault:
            continue
        v = vaults.get(str(b.get("vault")))
        if v is None or set(b) != gm.CHANGE_KEYS or b.get("action") not in ACTIONS:
            raise TamperDetected(
                f"change-proposed record #{record.seq} is not a change of a vault; {_RESTORE}"
            )
        building[record.seq] = _Building(
            Change(
                number=record.seq,
                vault=v.name,
                network=str(b["network"]),
                action=str(b["action"]),
                params=dict(b["params"]),
                requested_height=int(b["requested_height"]),
                threshold=v.threshold,
            )
        )
    for record in records(session, RecordKind.APPROVAL):
        b = record.body
        if vault is not None and b.get("vault") != vault:
            continue
        target = building.get(_number(b.get("change")))
        if target is None or b.get("vault") != target.change.vault or b.get("digest") != target.change.digest:
            raise TamperDetected(
                f"approval record #{record.seq} names change {b.get('change')!r} of vault "
                f"{b.get('vault')!r}, which has no such change with that digest; {_RESTORE}"
            )
        approval = Approval(record.seq, str(b.get("holder")), str(b.get("key")), str(b.get("signature")))
        _verify(vaults[target.change.vault], target.change, [*target.approvals, approval], record.seq)
        target.approvals.append(approval)
    for record in records(session, RecordKind.CHANGE_APPLIED):
        b = record.body
        if b.get("change") is None or (vault is not None and b.get("vault") != vault):
            continue
        target = building.get(_number(b.get("change")))
        if target is None or target.change.applied is not None:
            raise TamperDetected(f"change-applied record #{record.seq} names no pending change; {_RESTORE}")
        c = target.change
        late = [a.seq for a in target.approvals if a.seq > record.seq]
        heights = (b.get("height"), b.get("effective_height"))
        if (
            (b.get("vault"), b.get("action"), b.get("params")) != (c.vault, c.action, c.params)
            or late
            or not all(isinstance(h, int) and not isinstance(h, bool) for h in heights)
        ):
            raise TamperDetected(
                f"change-applied record #{record.seq} is not change {c.number}'s application at its "
                f"quorum (another action, or approvals after it); {_RESTORE}"
            )
        if len(target.approvals) < target.change.threshold:
            raise TamperDetected(
                f"change {target.change.number} of vault {target.change.vault} is recorded as applied "
                f"(#{record.seq}) with {len(target.approvals)} of the {target.change.threshold} approvals "
                f"it needs: it was applied behind the application's back; {_RESTORE}"
            )
        applied = Applied(record.seq, int(b["height"]), int(b["effective_height"]))
        target.change = _with(target.change, target.approvals, applied)
    return [_with(b.change, b.approvals, b.change.applied) for _, b in sorted(building.items())]


def _number(value: Any) -> int:
    """A change number as a record names it (0, no change, for anything else)."""
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _with(change: Change, approvals: Sequence[Approval], applied: Applied | None) -> Change:
    return Change(
        number=change.number,
        vault=change.vault,
        network=change.network,
        action=change.action,
        params=change.params,
        requested_height=change.requested_height,
        threshold=change.threshold,
        approvals=tuple(approvals),
        applied=applied,
    )


def _verify(vault: Vault, change: Change, approvals: Sequence[Approval], seq: int) -> None:
    findings, _ = gm.check_approvals(
        str(vault.descriptor),
        vault.holders,
        change.message,
        [gm.Signature(a.holder, a.key, a.signature) for a in approvals],
    )
    if findings:
        raise TamperDetected(
            f"approval record #{seq} of change {change.number} does not verify ({'; '.join(findings)}): "
            f"it was written behind the application's back; {_RESTORE}"
        )


def governance_findings(session: Session) -> list[str]:
    """``ledger verify``'s check of the governance records: every approval verifies and every
    application had its quorum (:func:`read_changes`), as a finding instead of an exception.

    Approvals are checked against the vaults' keys, so nothing is said of them while the vault
    records themselves do not hold: ``ledger verify`` names those once, in its vault check."""
    if vault_findings(session):
        return []
    try:
        read_changes(session)
    except (TamperDetected, InvalidInput) as exc:
        return [str(exc)]
    return []


def get_change(session: Session, number: int) -> Change:
    for change in read_changes(session):
        if change.number == number:
            return change
    raise NotFound(f"no governed change {number}; `reserve approve list` shows them")


def destinations(session: Session, vault: str, height: int) -> tuple[dict[str, int], dict[str, int]]:
    """(active, pending) vaults ``vault`` may pay at ``height``: destination name -> the height from
    which it is in force. Only approved ``destination-add`` changes count; a removal applies at once."""
    by_number = {c.number: c for c in read_changes(session, vault)}
    entries: dict[str, int] = {}
    for record in records(session, RecordKind.CHANGE_APPLIED):
        b = record.body
        if b.get("vault") != vault:
            continue
        name = str(b.get("params", {}).get("destination"))
        if b.get("action") == DESTINATION_ADD:
            change = by_number.get(_number(b.get("change")))
            if change is not None and change.applied is not None:  # verified by read_changes
                entries[name] = change.applied.effective_height
        elif b.get("action") == DESTINATION_REMOVE:
            entries.pop(name, None)
    return (
        {n: h for n, h in sorted(entries.items()) if h <= height},
        {n: h for n, h in sorted(entries.items()) if h > height},
    )


# --- proposing --------------------------------------------------------------------------------------


def _writable(session: Session, vault: str) -> Vault:
    v = get_vault(session, vault)
    if v.retired:
        raise Conflict(f"vault {vault!r} is retired ({v.retired_reason}); nothing of it can change")
    return v


def propose(session: Session, vault: str, action: str, params: Mapping[str, Any], tip_height: int) -> Change:
    """Store a governed change of ``vault`` awaiting its holders' approval."""
    if action not in ACTIONS:
        raise InvalidInput(f"{action!r} is not a governed change; they are {', '.join(ACTIONS)}")
    v = _writable(session, vault)
    body = proposed_body(
        vault=v.name, network=v.network.chain, action=action, params=params, requested_height=tip_height
    )
    entry = append_record(session, RecordKind.CHANGE_PROPOSED, body)
    return Change(entry.seq, v.name, v.network.chain, action, dict(params), tip_height, v.threshold)


def propose_destination(session: Session, vault: str, destination: str, tip_height: int) -> Change:
    """Propose ``destination`` (another active vault) as a destination of ``vault``."""
    _writable(session, vault)
    if destination == vault:
        raise InvalidInput(
            f"vault {vault!r} cannot be its own destination (change comes back on its change branch)"
        )
    _writable(session, destination)
    active, pending = destinations(session, vault, tip_height)
    if destination in active or destination in pending:
        since = {**active, **pending}[destination]
        raise Conflict(
            f"vault {destination!r} is already a destination of {vault!r} (in force from height {since})"
        )
    return propose(session, vault, DESTINATION_ADD, {"destination": destination}, tip_height)


def remove_destination(session: Session, vault: str, destination: str, tip_height: int) -> None:
    """Take ``destination`` off ``vault``'s destinations, at once (a tightening: no approval)."""
    _writable(session, vault)
    active, pending = destinations(session, vault, tip_height)
    if destination not in active and destination not in pending:
        listed = ", ".join((*active, *pending)) or "none"
        raise NotFound(f"{destination!r} is not a destination of vault {vault!r} (destinations: {listed})")
    body = applied_body(
        change=None,
        vault=vault,
        action=DESTINATION_REMOVE,
        params={"destination": destination},
        height=tip_height,
        effective=tip_height,
    )
    append_record(session, RecordKind.CHANGE_APPLIED, body)


def propose_retirement(session: Session, vault: str, reason: str, tip_height: int) -> Change:
    """Propose retiring ``vault`` (applied at its holders' quorum)."""
    reason = reason.strip()
    if not reason:
        raise InvalidInput("a retirement needs a reason (--reason TEXT), e.g. 'keys rotated to vault X'")
    check_text(reason, "the retirement reason")
    return propose(session, vault, VAULT_RETIRE, {"reason": reason}, tip_height)


def propose_acknowledgement(session: Session, vault: str, txid: str, reason: str, tip_height: int) -> Change:
    """Propose that ``vault``'s holders acknowledge the ungated spend ``txid`` (its finding clears
    once they approve: :func:`acknowledged`)."""
    txid = txid.strip().lower()
    if len(txid) != 64 or any(c not in "0123456789abcdef" for c in txid):
        raise InvalidInput(f"txid {txid[:80]!r} is not 64 hex digits")
    reason = reason.strip()
    if not reason:
        raise InvalidInput("an acknowledgement needs a reason (--reason TEXT): what the holders say it was")
    check_text(reason, "the acknowledgement's reason")
    done = acknowledged(session)
    if (vault, txid) in done:
        raise Conflict(f"vault {vault}'s holders already acknowledged transaction {txid}")
    return propose(session, vault, ACKNOWLEDGE, {"txid": txid, "reason": reason}, tip_height)


def acknowledged(session: Session) -> frozenset[tuple[str, str]]:
    """``(vault, txid)`` of every outflow its vault's holders acknowledged (approved changes only,
    each approval verified)."""
    return frozenset(
        (c.vault, str(c.params["txid"]))
        for c in read_changes(session)
        if c.action == ACKNOWLEDGE and c.applied is not None
    )


# --- approving --------------------------------------------------------------------------------------


def proposal_psbt(vault: Vault, change: Change) -> Psbt:
    """The PSBT the holders sign to approve ``change``: BIP-322 ``to_sign`` over its message for
    the vault's first receive address (deterministic)."""
    from ledger.attest.control import global_xpubs, spend_info

    info = spend_info(vault.descriptor, False, gm.INDEX)
    return bip322.proof_psbt(change.message, info, (), global_xpubs(vault.descriptor))


@dataclass(frozen=True, slots=True)
class Approved:
    """What ``approve sign`` did: the holders whose approvals it added, those who had approved
    already, and the change afterwards (applied once the threshold is reached)."""

    added: tuple[str, ...]
    already: tuple[str, ...]
    change: Change


def signatures_of(vault: Vault, change: Change, signed: Iterable[Psbt]) -> list[gm.Signature]:
    """The verified signatures the signed PSBTs carry, attributed to holders (key order, every
    key), after checking each is this change's PSBT; :class:`PolicyViolation` naming every bad
    signature and nothing returned when any is bad."""
    proposal = proposal_psbt(vault, change)
    owner = dict(zip(vault.descriptor.pubkeys(gm.INDEX, False), vault.holders, strict=True))
    found: dict[bytes, bytes] = {}
    refusals: list[str] = []
    for psbt in signed:
        if psbt.tx.serialize() != proposal.tx.serialize():
            raise InvalidInput(
                f"a signed PSBT (transaction {psbt.tx.txid}) is not change {change.number}'s approval "
                f"({proposal.tx.txid}): it was signed over another change, vault or message; have the "
                f"holders sign change-{change.number}.psbt (`reserve approve psbt {change.number}`)"
            )
        sigs = psbt.inputs[0].partial_sigs
        candidate = proposal.with_partial_sigs(0, sigs)
        good, bad = bip322.check_partial_sigs(candidate, 0)
        refusals += bad
        found.update((k, s) for k, s in sigs if k in good)
    if refusals:
        raise PolicyViolation(tuple(f"change {change.number}: {r}" for r in refusals))
    return [gm.Signature(owner[key], key.hex(), found[key].hex()) for key in owner if key in found]


def approve(session: Session, number: int, signed: Sequence[Psbt], tip_height: int) -> Approved:
    """Import holders' signed PSBTs for change ``number``: each new holder's verified signature is
    an ``approval`` record (one per holder, whatever keys it signed with); when the vault's
    threshold of distinct holders is reached, the change is applied at ``tip_height``. The journal
    lock is taken first: two imports at once cannot both apply the change."""
    from ledger.store.db import lock_journal

    lock_journal(session)
    change = get_change(session, number)
    if change.applied is not None:
        raise Conflict(
            f"change {number} was applied at height {change.applied.height}; it takes no more approvals "
            "(propose a new change for anything else)"
        )
    vault = _writable(session, change.vault)
    signatures = signatures_of(vault, change, signed)
    if not signatures:
        raise InvalidInput(
            f"the PSBT(s) for change {number} carry no signature of a key of vault {vault.name}; "
            "have a holder sign the file with their wallet (walletprocesspsbt) and import the result"
        )
    added: list[str] = []
    already: list[str] = []
    approvals = list(change.approvals)
    for sig in signatures:
        if sig.holder in change.approved_by or sig.holder in added:
            if sig.holder not in already and sig.holder not in added:
                already.append(sig.holder)
            continue
        entry = append_record(
            session,
            RecordKind.APPROVAL,
            approval_body(change=number, vault=vault.name, digest=change.digest, approval=sig),
        )
        approvals.append(Approval(entry.seq, sig.holder, sig.key, sig.signature))
        added.append(sig.holder)
    change = _with(change, approvals, None)
    if added and len(approvals) >= change.threshold:
        change = _with(change, approvals, _apply(session, vault, change, tip_height))
    return Approved(tuple(added), tuple(already), change)


def _apply(session: Session, vault: Vault, change: Change, tip_height: int) -> Applied:
    """Put an approved change into effect at ``tip_height`` and record when."""
    from ledger.spend.policy_store import loosen_delay, store_allow_add, store_loosening

    effective = tip_height
    if change.action == POLICY_SET:
        effective = store_loosening(session, vault.name, change.params["fields"], tip_height).effective_height
    elif change.action == ALLOW_ADD:
        effective = store_allow_add(session, vault.name, change.params, tip_height).effective_height
    elif change.action == DESTINATION_ADD:
        destination = str(change.params["destination"])
        active, pending = destinations(session, vault.name, tip_height)
        if destination in active or destination in pending:
            raise Conflict(f"vault {destination!r} is already a destination of {vault.name!r}")
        effective = tip_height + loosen_delay(session, vault.name, tip_height)
    elif change.action == VAULT_RETIRE:
        retire_vault(session, vault.name, str(change.params["reason"]))
    body = applied_body(
        change=change.number,
        vault=vault.name,
        action=change.action,
        params=change.params,
        height=tip_height,
        effective=effective,
    )
    entry = append_record(session, RecordKind.CHANGE_APPLIED, body)
    return Applied(entry.seq, tip_height, effective)
