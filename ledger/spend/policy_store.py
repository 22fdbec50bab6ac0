"""Each vault's spending policy and allowlist, as governed, append-only changes.

A vault's policy is the defaults of :class:`~custody.spend_policy.SpendLimits` changed by its
``policy_changes`` rows, in the order they were requested. A change that only tightens (lower
limits, more required holders, a longer delay, an allowlist entry removed) is in force at once;
one that loosens anything (:func:`~custody.spend_policy.loosened`, and every allowlist entry added)
is a governed change (:mod:`ledger.governance.changes`): it is stored only once the vault's
threshold of holders approved it, in force from ``quorum height + loosen_delay``, the delay in
force at the quorum. A ``set`` that both tightens and loosens stores its tightening part at once
and proposes the rest.

Heights are for waiting, not for history: a tightening is in force from the moment it is stored,
whatever height the chain is at later (a reorganisation never lifts it), and a loosening from the
height it waits for. For each field the latest requested change in force wins, so a later change
supersedes a pending loosening of the same field (set a field to its current value to cancel one).

Every change writes its row and a ``policy-changed`` record (the row's fields) in the caller's
transaction; every read compares the rows with their records in the Merkle log and raises
:class:`~ledger.errors.TamperDetected` when they disagree.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from custody.address import address_script, script_kind
from custody.keys import shorten
from custody.spend_policy import FIELDS, FieldValue, SpendLimits, attribute, loosened
from ledger.chain.vaults import Vault, get_vault
from ledger.errors import Conflict, InvalidInput, NotFound, TamperDetected
from ledger.journal.entry import AccountType, check_account_name, check_text
from ledger.journal.records import RecordKind, append_record, canonical_json, records
from ledger.store.models import AccountRow, EntryRow
from ledger.store.spend_models import PolicyChangeRow
from ledger.store.vault_models import VaultRow

SET, ALLOW_ADD, ALLOW_REMOVE = "set", "allow-add", "allow-remove"
MAX_SCRIPTS = 2_000
"""Most scripts one allowlist entry may hold (a multipath descriptor derives 2 x 1,000)."""
MAX_TARGET_LENGTH = 10_000

_RESTORE = "restore the database from a backup and run `reserve ledger verify`"


@dataclass(frozen=True, slots=True)
class AllowEntry:
    """A destination a vault may pay: a counterparty account name, the address or descriptor it
    was given as, the output scripts it stands for and the height from which it is active."""

    name: str
    target: str
    scripts: tuple[bytes, ...]
    active_at: int


@dataclass(frozen=True, slots=True)
class PolicyChange:
    """One stored change, its body decoded (``fields`` for ``set``; ``name``, ``target``,
    ``scripts`` for allowlist changes)."""

    id: int
    vault: str
    change: str
    body: dict[str, Any]
    loosens: bool
    requested_height: int
    effective_height: int
    record_seq: int

    def in_force(self, height: int) -> bool:
        """Whether this change applies at ``height``: a tightening always, a loosening from its
        effective height."""
        return not self.loosens or self.effective_height <= height

    @property
    def fields(self) -> dict[str, FieldValue]:
        """For a ``set``: CLI field name -> stored value (holder lists as tuples)."""
        raw = self.body.get("fields", {})
        return {k: tuple(v) if isinstance(v, list) else v for k, v in raw.items()}


def record_body(
    *, vault: str, change: str, body: Mapping[str, Any], loosens: bool, requested: int, effective: int
) -> dict[str, Any]:
    """The body of a ``policy-changed`` record: the row's fields (its JSON body as an object)."""
    return {
        "vault": vault,
        "change": change,
        "body": dict(body),
        "loosens": bool(loosens),
        "requested_height": requested,
        "effective_height": effective,
    }


# --- reading ----------------------------------------------------------------------------------------


def _changes(session: Session, vault: str) -> list[PolicyChange]:
    """The vault's changes in request order, after checking them against their log records."""
    rows = session.execute(
        select(PolicyChangeRow, EntryRow.kind, EntryRow.memo)
        .outerjoin(EntryRow, EntryRow.seq == PolicyChangeRow.record_seq)
        .where(PolicyChangeRow.vault == vault)
        .order_by(PolicyChangeRow.id)
    ).all()
    out: list[PolicyChange] = []
    last_seq = 0
    for row, kind, memo in rows:
        if row.record_seq <= last_seq:  # a copied row would otherwise re-apply an old change last
            raise TamperDetected(
                f"policy change #{row.id} of vault {vault!r} points at record #{row.record_seq}, "
                f"not after the previous change's #{last_seq}: a row was copied or inserted behind "
                f"the application's back; {_RESTORE}"
            )
        last_seq = row.record_seq
        try:
            body = json.loads(row.body)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise TamperDetected(
                f"policy change #{row.id} of vault {vault!r} has a body that is not a JSON object; {_RESTORE}"
            )
        want = canonical_json(
            record_body(
                vault=row.vault,
                change=row.change,
                body=body,
                loosens=row.loosens,
                requested=row.requested_height,
                effective=row.effective_height,
            )
        )
        if kind != RecordKind.POLICY_CHANGED or memo != want or canonical_json(body) != row.body:
            raise TamperDetected(
                f"policy change #{row.id} of vault {vault!r} differs from its policy-changed record "
                f"#{row.record_seq}: it was changed behind the application's back; {_RESTORE}"
            )
        out.append(
            PolicyChange(
                id=row.id,
                vault=row.vault,
                change=row.change,
                body=body,
                loosens=row.loosens,
                requested_height=row.requested_height,
                effective_height=row.effective_height,
                record_seq=row.record_seq,
            )
        )
    stored = {c.record_seq for c in out}
    for record in records(session, RecordKind.POLICY_CHANGED):
        if record.body.get("vault") == vault and record.seq not in stored:
            raise TamperDetected(
                f"policy-changed record #{record.seq} of vault {vault!r} has no row in policy_changes: "
                f"it was deleted behind the application's back; {_RESTORE}"
            )
    return out


def limits_of(changes: Iterable[PolicyChange], height: int) -> SpendLimits:
    """The limits ``changes`` (in request order) put in force at ``height`` (pure): for each field
    the latest requested ``set`` in force there; the defaults for fields never set."""
    values: dict[str, FieldValue] = {}
    for change in changes:
        if change.change == SET and change.in_force(height):
            values.update(change.fields)
    return SpendLimits().with_changes(values)


def allowlist_of(
    changes: Iterable[PolicyChange], height: int
) -> tuple[tuple[AllowEntry, ...], tuple[AllowEntry, ...]]:
    """(active, pending) entries at ``height`` after ``changes`` in request order (pure): a removal
    takes an entry off at once, at any height; an addition is active from its effective height."""
    entries: dict[str, AllowEntry] = {}
    for change in changes:
        name = change.body.get("name")
        if change.change == ALLOW_ADD and isinstance(name, str):
            entries[name] = AllowEntry(
                name=name,
                target=str(change.body["target"]),
                scripts=tuple(bytes.fromhex(s) for s in change.body["scripts"]),
                active_at=change.effective_height,
            )
        elif change.change == ALLOW_REMOVE and isinstance(name, str):
            entries.pop(name, None)
    ordered = sorted(entries.values(), key=lambda e: e.name)
    return (
        tuple(e for e in ordered if e.active_at <= height),
        tuple(e for e in ordered if e.active_at > height),
    )


def _known_vault(session: Session, vault: str) -> Vault:
    return get_vault(session, vault)  # NotFound for an unknown vault, TamperDetected for a changed one


def effective_limits(session: Session, vault: str, height: int) -> SpendLimits:
    """The vault's limits in force at ``height`` (the defaults when its policy was never set)."""
    _known_vault(session, vault)
    return limits_of(_changes(session, vault), height)


def allowlist(
    session: Session, vault: str, height: int
) -> tuple[tuple[AllowEntry, ...], tuple[AllowEntry, ...]]:
    """The vault's allowlist at ``height``: (active entries, pending entries), each by name."""
    _known_vault(session, vault)
    return allowlist_of(_changes(session, vault), height)


def history(session: Session, vault: str) -> tuple[PolicyChange, ...]:
    """Every change to the vault's policy and allowlist, in request order."""
    _known_vault(session, vault)
    return tuple(_changes(session, vault))


def superseded_fields(changes: Sequence[PolicyChange]) -> dict[int, frozenset[str]]:
    """For each ``set`` change (by id), the fields it will never decide: a later-requested change
    of the field is in force no later than it is."""
    out: dict[int, frozenset[str]] = {}
    for i, change in enumerate(changes):
        if change.change != SET:
            continue
        later = [c for c in changes[i + 1 :] if c.change == SET]
        out[change.id] = frozenset(
            f for f in change.fields if any(f in c.fields and _from(c) <= _from(change) for c in later)
        )
    return out


def _from(change: PolicyChange) -> int:
    """The first height a change is in force at (a tightening: from its request, at any height)."""
    return change.effective_height if change.loosens else -1


# --- writing ----------------------------------------------------------------------------------------


def _writable_vault(session: Session, vault: str) -> Vault:
    v = _known_vault(session, vault)
    if v.retired:
        raise Conflict(f"vault {vault!r} is retired ({v.retired_reason}); its policy can no longer change")
    return v


def _check_height(tip_height: int) -> int:
    if isinstance(tip_height, bool) or not isinstance(tip_height, int) or tip_height < 0:
        raise InvalidInput(f"tip height {tip_height!r} must be a block height (0 or more)")
    return tip_height


def _store(
    session: Session,
    vault: str,
    change: str,
    body: Mapping[str, Any],
    loosens: bool,
    requested: int,
    effective: int,
) -> PolicyChange:
    record = append_record(
        session,
        RecordKind.POLICY_CHANGED,
        record_body(
            vault=vault, change=change, body=body, loosens=loosens, requested=requested, effective=effective
        ),
    )
    row = PolicyChangeRow(
        vault=vault,
        change=change,
        body=canonical_json(body),
        loosens=loosens,
        requested_height=requested,
        effective_height=effective,
        record_seq=record.seq,
    )
    session.add(row)
    session.flush()
    return PolicyChange(
        id=row.id,
        vault=vault,
        change=change,
        body=json.loads(row.body),
        loosens=loosens,
        requested_height=requested,
        effective_height=effective,
        record_seq=record.seq,
    )


def _stored_value(value: FieldValue) -> Any:
    return list(value) if isinstance(value, tuple) else value


def set_policy(
    session: Session, vault: str, changes: Mapping[str, FieldValue], tip_height: int
) -> tuple[list[PolicyChange], dict[str, Any]]:
    """Change fields of the vault's policy (CLI field name -> value; ``None`` clears a cap).

    Judged against the limits in force at ``tip_height``: the fields that tighten (or stay) are
    stored as one change in force at once. Returns (the stored changes, zero or one; the fields
    that loosen, as stored values): a loosening is a governed change
    (:mod:`ledger.governance.changes`), stored by :func:`store_loosening` once the vault's holders
    approve it.
    """
    _check_height(tip_height)
    if not changes:
        raise InvalidInput(f"no policy field to set; the fields are: {', '.join(FIELDS)}")
    for field in changes:
        attribute(field)  # unknown names refused by name
    v = _writable_vault(session, vault)
    holders = changes.get("required-holders")
    if isinstance(holders, tuple):
        for holder in holders:
            if holder not in v.holders:
                raise InvalidInput(
                    f"required holder {holder!r} holds no key of vault {vault!r}; its holders are "
                    f"{', '.join(sorted(set(v.holders)))}"
                )
    existing = _changes(session, vault)
    current = limits_of(existing, tip_height)
    new = current.with_changes(changes)  # every value checked together
    loosening = set(loosened(current, new))
    stored: list[PolicyChange] = []
    tight = {f: _stored_value(new.value(f)) for f in FIELDS if f in changes and f not in loosening}
    loose = {f: _stored_value(new.value(f)) for f in FIELDS if f in changes and f in loosening}
    if tight:
        stored.append(_store(session, vault, SET, {"fields": tight}, False, tip_height, tip_height))
    return stored, loose


def loosen_delay(session: Session, vault: str, tip_height: int) -> int:
    """Blocks a loosening of the vault approved at ``tip_height`` waits (its limits' loosen delay)."""
    return limits_of(_changes(session, vault), tip_height).loosen_delay


def store_loosening(session: Session, vault: str, fields: Mapping[str, Any], tip_height: int) -> PolicyChange:
    """Store an approved loosening of ``fields`` (stored values), in force from ``tip_height`` plus
    the loosen delay in force at ``tip_height`` (the holders' quorum)."""
    _check_height(tip_height)
    _writable_vault(session, vault)
    values = {k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()}
    SpendLimits().with_changes(values)  # every field known, every value in range
    effective = tip_height + loosen_delay(session, vault, tip_height)
    return _store(session, vault, SET, {"fields": dict(fields)}, True, tip_height, effective)


def check_allow_name(session: Session, name: str) -> str:
    """An allowlist name names a counterparty account: a valid account name that is no vault and
    no system account, and, if the account exists, of type counterparty."""
    from ledger.chain.movement import SYSTEM_ACCOUNTS

    check_account_name(name)
    if session.scalar(select(VaultRow.id).where(VaultRow.name == name)) is not None:
        raise InvalidInput(
            f"{name!r} is a vault of the reserve; an allowlist names counterparties (a transfer to "
            "a vault needs no allowlist entry)"
        )
    if name in dict(SYSTEM_ACCOUNTS):
        raise InvalidInput(f"{name!r} is a system account of the books; name the counterparty's account")
    kind = session.scalar(select(AccountRow.type).where(AccountRow.name == name))
    if kind is not None and kind != AccountType.COUNTERPARTY:
        raise InvalidInput(
            f"account {name!r} has type {kind}; an allowlist entry names a counterparty account"
        )
    return name


def check_allow_add(
    session: Session,
    vault: str,
    name: str,
    target: str,
    tip_height: int,
    scripts: Sequence[bytes] | None = None,
) -> dict[str, Any]:
    """The body of an allowlist entry ``name`` of the vault, after every check (an entry is a
    governed change: :func:`store_allow_add` stores it once the vault's holders approve it).

    ``target`` is an address of the vault's network (its script is decoded here; ``scripts`` must
    then be None or agree) or a descriptor whose ``scripts`` the caller had the node derive
    (:func:`custody.derived_target.derive_target`). A name already listed (active or pending) or
    a script another entry of the vault already stands for is a :class:`Conflict`.
    """
    _check_height(tip_height)
    v = _writable_vault(session, vault)
    check_allow_name(session, name)
    if not isinstance(target, str) or not target.strip() or len(target) > MAX_TARGET_LENGTH:
        raise InvalidInput(f"the allowlist target must be an address or a descriptor, got {target!r:.60}")
    check_text(target, "the allowlist target")
    target = target.strip()
    if scripts is None:
        kind = "address"
        scripts = (address_script(target, v.network),)
    else:
        kind = "descriptor"
        scripts = tuple(scripts)
        if not scripts:
            raise InvalidInput(f"descriptor {shorten(target, 40)!r} derives no script")
        if len(scripts) > MAX_SCRIPTS:
            raise InvalidInput(
                f"descriptor {shorten(target, 40)!r} stands for {len(scripts):,} scripts; "
                f"at most {MAX_SCRIPTS:,}"
            )
    for script in scripts:
        if script_kind(script) is None:
            raise InvalidInput(
                f"allowlist target {shorten(target, 40)!r} pays the script {shorten(script.hex(), 40)}, "
                "which no wallet can spend today (only P2PKH, P2SH, P2WPKH, P2WSH and P2TR outputs)"
            )
    existing = _changes(session, vault)
    active, pending = allowlist_of(existing, tip_height)
    for entry in (*active, *pending):
        if entry.name == name:
            raise Conflict(
                f"{name!r} is already on vault {vault!r}'s allowlist ({entry.target}, active from "
                f"height {entry.active_at}); remove it first to change its destination"
            )
        shared = set(entry.scripts) & set(scripts)
        if shared:
            raise Conflict(
                f"allowlist entry {entry.name!r} of vault {vault!r} already stands for the script "
                f"{min(shared).hex()}; one destination has one name"
            )
    return {"name": name, "kind": kind, "target": target, "scripts": [s.hex() for s in scripts]}


def store_allow_add(session: Session, vault: str, body: Mapping[str, Any], tip_height: int) -> PolicyChange:
    """Store an approved allowlist entry (a :func:`check_allow_add` body), checked again against
    the allowlist at ``tip_height`` (the holders' quorum), active from ``tip_height`` plus the loose
    delay in force there."""
    scripts = None if body.get("kind") == "address" else [bytes.fromhex(s) for s in body["scripts"]]
    checked = check_allow_add(session, vault, str(body["name"]), str(body["target"]), tip_height, scripts)
    effective = tip_height + loosen_delay(session, vault, tip_height)
    return _store(session, vault, ALLOW_ADD, checked, True, tip_height, effective)


def allow_remove(session: Session, vault: str, name: str, tip_height: int) -> PolicyChange:
    """Remove ``name`` (active or pending) from the vault's allowlist, at once."""
    _check_height(tip_height)
    _writable_vault(session, vault)
    check_account_name(name)
    active, pending = allowlist_of(_changes(session, vault), tip_height)
    if name not in {e.name for e in (*active, *pending)}:
        listed = ", ".join(e.name for e in (*active, *pending)) or "none"
        raise NotFound(f"{name!r} is not on vault {vault!r}'s allowlist (listed: {listed})")
    return _store(session, vault, ALLOW_REMOVE, {"name": name}, False, tip_height, tip_height)
