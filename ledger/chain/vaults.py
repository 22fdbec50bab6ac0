"""The reserve's vaults: m-of-n multisig descriptors, who holds each key, and their retirement.

Service functions take the caller's :class:`~sqlalchemy.orm.Session` and never open one. Adding a
vault judges it against the multisig policy (:func:`custody.policy.check_vault_policy`, with the
keys of every other *active* vault) and refuses any violation before writing anything; it then
stores the vault, its keys in descriptor order with their holders, and opens the vault's account
(type ``vault``, same name) in the books. Vaults are append-only: retiring one records a
retirement row, it is never edited or deleted.

Vaults are tamper-evident: adding or retiring one also appends a ``vault-added`` /
``vault-retired`` record to the Merkle log (:mod:`ledger.journal.records`) in the same transaction, and
every read (:func:`get_vault`, :func:`list_vaults`) cross-checks the rows against those records
(:func:`vault_findings`), raising :class:`~ledger.errors.TamperDetected` when a row was changed,
deleted or inserted behind the application's back, so no attacker's descriptor is ever used.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from custody.descriptor import MultisigDescriptor
from custody.errors import PolicyViolation
from custody.keys import HeldKey, shorten
from custody.network import Network
from custody.policy import Policy, check_vault_policy, keys_by_material
from custody.wallet import vault_wallet_name
from ledger.errors import Conflict, InvalidInput, NotFound, TamperDetected
from ledger.journal.accounts import add_account
from ledger.journal.entry import AccountType, check_account_name, check_text
from ledger.journal.records import (
    KeyFields,
    Record,
    RecordKind,
    append_record,
    records,
    vault_added_body,
    vault_retired_body,
)
from ledger.store.models import AccountRow
from ledger.store.vault_models import VaultKeyRow, VaultRetirementRow, VaultRow


@dataclass(frozen=True, slots=True)
class Vault:
    """A stored vault. ``account`` is the name of its account in the books (the vault's name)."""

    name: str
    account: str
    descriptor: MultisigDescriptor
    holders: tuple[str, ...]
    network: Network
    birthday: int | None
    retired: bool
    wallet_name: str
    retired_reason: str | None = None

    def __post_init__(self) -> None:
        if len(self.holders) != len(self.descriptor.keys):
            raise InvalidInput(
                f"vault {self.name}: {len(self.holders)} holders for {len(self.descriptor.keys)} keys"
            )

    @property
    def threshold(self) -> int:
        return self.descriptor.threshold

    @property
    def held_keys(self) -> tuple[HeldKey, ...]:
        """Each key with its holder, in descriptor order."""
        return tuple(HeldKey(h, k) for h, k in zip(self.holders, self.descriptor.keys, strict=True))

    @property
    def label(self) -> str:
        """``2-of-3`` style summary."""
        return f"{self.threshold}-of-{len(self.descriptor.keys)}"


def check_vault_name(name: str) -> str:
    """A vault name is an account name that can also name a bitcoind wallet (no ``/``)."""
    check_account_name(name)
    if "/" in name:
        raise InvalidInput(
            f"vault name {name!r} contains '/'; it names the vault's watch-only wallet too, "
            "use letters, digits and _ . : - only"
        )
    return name


def policy_of(min_threshold: int, min_holders: int) -> Policy:
    """The custody :class:`Policy` for the configured knobs (``Settings.policy``)."""
    return Policy(min_threshold=min_threshold, min_holders=min_holders)


# --- reading --------------------------------------------------------------------------------------


def _vault(session: Session, row: VaultRow, retirement: VaultRetirementRow | None) -> Vault:
    keys = session.scalars(
        select(VaultKeyRow).where(VaultKeyRow.vault_id == row.id).order_by(VaultKeyRow.position)
    ).all()
    account = session.get_one(AccountRow, row.account_id)
    return Vault(
        name=row.name,
        account=account.name,
        descriptor=MultisigDescriptor.parse(row.descriptor),
        holders=tuple(k.holder for k in keys),
        network=Network.from_chain(row.network),
        birthday=row.birthday_height,
        retired=retirement is not None,
        wallet_name=vault_wallet_name(row.name),
        retired_reason=None if retirement is None else retirement.reason,
    )


def _rows(session: Session, name: str | None = None) -> list[tuple[VaultRow, VaultRetirementRow | None]]:
    query = (
        select(VaultRow, VaultRetirementRow)
        .outerjoin(VaultRetirementRow, VaultRetirementRow.vault_id == VaultRow.id)
        .order_by(VaultRow.name)
    )
    if name is not None:
        query = query.where(VaultRow.name == name)
    return [(v, r) for v, r in session.execute(query).all()]


def get_vault(session: Session, name: str) -> Vault:
    """The vault called ``name`` (retired or not); :class:`NotFound` if there is none.

    Raises :class:`TamperDetected` when its rows disagree with its records in the log."""
    _refuse_tampered(session, name)
    rows = _rows(session, name)
    if not rows:
        raise NotFound(f"unknown vault {name!r}; `reserve vault list` shows the vaults")
    return _vault(session, *rows[0])


def list_vaults(session: Session, include_retired: bool = False) -> tuple[Vault, ...]:
    """Every active vault (and retired ones with ``include_retired``), by name.

    Raises :class:`TamperDetected` when any vault's rows disagree with its records in the log."""
    _refuse_tampered(session)
    return tuple(
        _vault(session, row, retirement)
        for row, retirement in _rows(session)
        if include_retired or retirement is None
    )


def active_keys(session: Session, except_vault: str | None = None) -> dict[str, str]:
    """``xpub -> vault name`` for every key of an active vault (other than ``except_vault``)."""
    query = (
        select(VaultKeyRow.xpub, VaultRow.name)
        .join(VaultRow, VaultRow.id == VaultKeyRow.vault_id)
        .outerjoin(VaultRetirementRow, VaultRetirementRow.vault_id == VaultRow.id)
        .where(VaultRetirementRow.id.is_(None))
    )
    return {xpub: name for xpub, name in session.execute(query).all() if name != except_vault}


def retired_keys(session: Session) -> dict[str, str]:
    """``xpub -> vault name`` for every key of a retired vault."""
    query = (
        select(VaultKeyRow.xpub, VaultRow.name)
        .join(VaultRow, VaultRow.id == VaultKeyRow.vault_id)
        .join(VaultRetirementRow, VaultRetirementRow.vault_id == VaultRow.id)
    )
    return {xpub: name for xpub, name in session.execute(query).all()}


def _retired_key_findings(session: Session, descriptor: MultisigDescriptor) -> tuple[str, ...]:
    """A key of a retired vault never serves a new one: the same keys make the same addresses, so
    both vaults' wallets would see the same coins and each deposit could be booked to either."""
    retired = keys_by_material(retired_keys(session))
    return tuple(
        f"key {position} ({shorten(str(key), 40)}) was a key of retired vault "
        f"{retired[key.material]!r}; a key serves only one vault, ever (a new vault with it would "
        "watch the retired vault's addresses): use a fresh account key (another BIP-48 account index)"
        for position, key in enumerate(descriptor.keys, start=1)
        if key.material in retired
    )


# --- writing --------------------------------------------------------------------------------------


def add_vault(
    session: Session,
    name: str,
    descriptor: MultisigDescriptor,
    holders: Sequence[str],
    network: Network,
    policy: Policy,
    birthday_height: int | None = None,
) -> Vault:
    """Register a vault and open its account; refuses a policy violation, writing nothing.

    ``holders`` names the holder of each key in descriptor order. ``descriptor`` must be the
    multipath ``/<0;1>/*`` form (receive and change). Raises :class:`PolicyViolation` with every
    finding, :class:`Conflict` when the name is taken, :class:`InvalidInput` for bad input.
    """
    check_vault_name(name)
    if not descriptor.is_multipath:
        raise InvalidInput(
            f"vault {name}: the descriptor has only the /{descriptor.branches[0]}/* branch; give "
            "the multipath form .../<0;1>/* so receive and change are both watched"
        )
    if birthday_height is not None and (isinstance(birthday_height, bool) or birthday_height < 0):
        raise InvalidInput(f"birthday height {birthday_height} must be a block height (0 or more)")
    holders = tuple(h.strip() for h in holders)
    for holder in holders:
        check_text(holder, "key holder")
        HeldKey(holder, descriptor.keys[0])  # the same rules as on the command line
    if session.scalar(select(VaultRow.id).where(VaultRow.name == name)) is not None:
        raise Conflict(f"vault {name!r} already exists; `reserve vault show {name}` shows it")
    if session.scalar(select(AccountRow.id).where(AccountRow.name == name)) is not None:
        raise Conflict(
            f"account {name!r} already exists and a vault's account takes the vault's name; "
            "pick another vault name"
        )
    _refuse_tampered(session)  # the policy judges against the other vaults' keys: trust them first
    findings = check_vault_policy(descriptor, holders, network, policy, active_keys(session))
    findings += _retired_key_findings(session, descriptor)
    if findings:
        raise PolicyViolation(findings)
    if _recorded(session).added.get(name):
        raise TamperDetected(
            f"vault {name!r} has a vault-added record in the log but no row: its definition was "
            "deleted behind the application's back; run `reserve ledger verify` and restore the "
            "database from a backup"
        )

    account = add_account(session, name, AccountType.VAULT, vault_definition=True)
    row = VaultRow(
        name=name,
        account_id=account.id,
        kind=descriptor.kind,
        threshold=descriptor.threshold,
        descriptor=str(descriptor),
        network=network.chain,
        birthday_height=birthday_height,
    )
    session.add(row)
    session.flush()
    session.add_all(
        VaultKeyRow(
            vault_id=row.id,
            position=position,
            holder=holder,
            key=str(key),
            xpub=key.xpub,
            fingerprint=None if key.origin is None else key.origin.fingerprint.hex(),
        )
        for position, (holder, key) in enumerate(zip(holders, descriptor.keys, strict=True))
    )
    session.flush()
    append_record(session, RecordKind.VAULT_ADDED, _stored(session, name)[name].body)
    return get_vault(session, name)


def retire_vault(session: Session, name: str, reason: str) -> Vault:
    """Retire an active vault (its keys never serve another vault); records ``reason``."""
    reason = reason.strip()
    if not reason:
        raise InvalidInput("a retirement needs a reason (--reason TEXT), e.g. 'keys rotated to vault X'")
    check_text(reason, "the retirement reason")
    vault = get_vault(session, name)
    if vault.retired:
        raise Conflict(f"vault {name!r} is already retired ({vault.retired_reason})")
    vault_id = session.scalar(select(VaultRow.id).where(VaultRow.name == name))
    session.add(VaultRetirementRow(vault_id=vault_id, reason=reason))
    session.flush()
    append_record(session, RecordKind.VAULT_RETIRED, vault_retired_body(vault=name, reason=reason))
    return get_vault(session, name)


# --- tamper evidence ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredVault:
    """A vault's rows as the body of the record they should match, plus what only rows hold."""

    body: dict[str, Any]
    account: str | None  # the name of the vault's account, None when it is not a vault account
    retired_reason: str | None  # None: no retirement row


@dataclass(frozen=True, slots=True)
class RecordedVaults:
    """The vault records of the log by vault name (several per name only by tampering)."""

    added: dict[str, list[Record]]
    retired: dict[str, list[Record]]
    findings: tuple[str, ...]  # records that cannot be read


def _stored(session: Session, name: str | None = None) -> dict[str, StoredVault]:
    keys: dict[int, list[KeyFields]] = {}
    key_query = select(VaultKeyRow).order_by(VaultKeyRow.vault_id, VaultKeyRow.position)
    if name is not None:
        key_query = key_query.join(VaultRow, VaultRow.id == VaultKeyRow.vault_id).where(VaultRow.name == name)
    for k in session.scalars(key_query):
        keys.setdefault(k.vault_id, []).append(KeyFields(k.holder, k.key, k.xpub, k.fingerprint))
    query = (
        select(VaultRow, VaultRetirementRow, AccountRow)
        .outerjoin(VaultRetirementRow, VaultRetirementRow.vault_id == VaultRow.id)
        .outerjoin(AccountRow, AccountRow.id == VaultRow.account_id)
    )
    if name is not None:
        query = query.where(VaultRow.name == name)
    out: dict[str, StoredVault] = {}
    for row, retirement, account in session.execute(query).all():
        body = vault_added_body(
            vault=row.name,
            kind=row.kind,
            threshold=row.threshold,
            descriptor=row.descriptor,
            network=row.network,
            birthday=row.birthday_height,
            keys=keys.get(row.id, []),
        )
        out[row.name] = StoredVault(
            body=body,
            account=None if account is None or account.type != AccountType.VAULT else account.name,
            retired_reason=None if retirement is None else retirement.reason,
        )
    return out


def _recorded(session: Session) -> RecordedVaults:
    added: dict[str, list[Record]] = {}
    retired: dict[str, list[Record]] = {}
    findings: list[str] = []
    for kind, by_name in ((RecordKind.VAULT_ADDED, added), (RecordKind.VAULT_RETIRED, retired)):
        try:
            found = records(session, kind)
        except InvalidInput as e:
            findings.append(f"a vault record cannot be read: {e}")
            continue
        for record in found:
            vault = record.body.get("vault")
            if not isinstance(vault, str):
                findings.append(f"{kind} record #{record.seq} names no vault")
                continue
            by_name.setdefault(vault, []).append(record)
    return RecordedVaults(added, retired, tuple(findings))


_RESTORE = "restore the database from a backup and run `reserve ledger verify`"


def judge_vault(name: str, stored: StoredVault | None, recorded: RecordedVaults) -> list[str]:
    """Where vault ``name``'s rows and its records in the log disagree (pure)."""
    added = recorded.added.get(name, [])
    retired = recorded.retired.get(name, [])
    if stored is None:
        if not added:
            return []
        return [
            f"vault {name!r} was defined by record #{added[0].seq} but has no row in the vaults "
            f"table: it was deleted or renamed behind the application's back; {_RESTORE}"
        ]
    if not added:
        return [
            f"vault {name!r} has a row in the vaults table but no vault-added record in the log: "
            f"it was inserted behind the application's back; {_RESTORE}"
        ]
    findings: list[str] = []
    if len(added) > 1:
        findings.append(
            f"vault {name!r} has {len(added)} vault-added records "
            f"(#{', #'.join(str(r.seq) for r in added)}); a vault is defined once"
        )
    findings += _differences(name, added[0], stored.body)
    if stored.account != name:
        findings.append(
            f"vault {name!r}: its account is {stored.account!r}, not the vault account {name!r} its "
            f"record #{added[0].seq} defines; {_RESTORE}"
        )
    if len(retired) > 1:
        findings.append(f"vault {name!r} has {len(retired)} vault-retired records; a vault is retired once")
    if retired and stored.retired_reason is None:
        findings.append(
            f"vault {name!r} was retired by record #{retired[0].seq} but its retirement row is "
            f"missing: it was deleted behind the application's back, making it active again; {_RESTORE}"
        )
    elif not retired and stored.retired_reason is not None:
        findings.append(
            f"vault {name!r} has a retirement row but no vault-retired record in the log: it was "
            f"inserted behind the application's back; {_RESTORE}"
        )
    elif retired and retired[0].body.get("reason") != stored.retired_reason:
        findings.append(
            f"vault {name!r}: its retirement reason {stored.retired_reason!r} differs from record "
            f"#{retired[0].seq} ({retired[0].body.get('reason')!r}); {_RESTORE}"
        )
    return findings


def _differences(name: str, record: Record, stored: Mapping[str, Any]) -> list[str]:
    def differ(field: str, have: object, want: object) -> str:
        return (
            f"vault {name!r}: its {field} in the database ({have!r}) differs from its vault-added "
            f"record #{record.seq} ({want!r}): it was changed behind the application's back; {_RESTORE}"
        )

    want = record.body
    findings = [
        differ(field, stored.get(field), want.get(field))
        for field in ("kind", "threshold", "descriptor", "network", "birthday")
        if stored.get(field) != want.get(field)
    ]
    have_keys, want_keys = stored.get("keys") or [], want.get("keys") or []
    if len(have_keys) != len(want_keys):
        findings.append(differ("number of keys", len(have_keys), len(want_keys)))
    for i, (have_key, want_key) in enumerate(zip(have_keys, want_keys, strict=False)):
        for field in ("holder", "key", "xpub", "fingerprint"):
            if not isinstance(want_key, dict) or have_key.get(field) != want_key.get(field):
                wanted = want_key.get(field) if isinstance(want_key, dict) else want_key
                findings.append(differ(f"key {i} {field}", have_key.get(field), wanted))
    return findings


@functools.lru_cache(maxsize=256)
def _parsed(descriptor: str) -> MultisigDescriptor:
    """A recorded descriptor, parsed once per process (every vault read checks every record)."""
    return MultisigDescriptor.parse(descriptor)


def key_reuse_findings(recorded: RecordedVaults) -> list[tuple[str, str]]:
    """Pure: ``(vault, finding)`` for a key serving two vaults, or one vault twice, by the
    vault-added records in log order (retired vaults too: a key serves one vault, ever). Keys are
    compared by what derives the addresses (:attr:`~custody.keys.ExtendedKey.material`, as the
    descriptor itself has them), whatever their order or header fields: two vaults with one key
    watch the same addresses, so each deposit could be booked to either. ``vault add`` refuses
    this, so a record that does it was appended outside the service; the later vault is named.
    Also a record whose key list is not its descriptor's keys in order."""
    owner: dict[bytes, tuple[str, int, int]] = {}  # material -> (vault, record seq, key position)
    findings: list[tuple[str, str]] = []
    added = sorted((r for found in recorded.added.values() for r in found), key=lambda r: r.seq)
    for record in added:
        name = str(record.body.get("vault"))
        try:
            descriptor = _parsed(str(record.body.get("descriptor")))
        except InvalidInput as e:
            findings.append(
                (name, f"vault {name!r}: the descriptor of record #{record.seq} cannot be read: {e}")
            )
            continue
        listed = record.body.get("keys")
        xpubs = [k.get("xpub") for k in listed if isinstance(k, dict)] if isinstance(listed, list) else []
        if xpubs != [k.xpub for k in descriptor.keys]:
            findings.append(
                (
                    name,
                    f"vault {name!r}: the keys listed by record #{record.seq} are not its descriptor's "
                    f"keys in order: it was appended outside the service; {_RESTORE}",
                )
            )
        for position, key in enumerate(descriptor.keys, start=1):
            first = owner.setdefault(key.material, (name, record.seq, position))
            if first == (name, record.seq, position):
                continue
            whose = (
                f"its own key {first[2]}"
                if first[1] == record.seq
                else f"key {first[2]} of vault {first[0]!r} (record #{first[1]})"
            )
            findings.append(
                (
                    name,
                    f"vault {name!r} (record #{record.seq}): key {position} ({shorten(key.xpub)}) is "
                    f"{whose}: keys must be unique across vaults, in any order (`vault add` refuses "
                    f"a reused key; this record was appended outside the service); {_RESTORE}",
                )
            )
    return findings


def vault_findings(session: Session, name: str | None = None) -> list[str]:
    """Every disagreement between the vault tables and the vault records of the log (of vault
    ``name``, or of every vault); empty when they agree."""
    stored = _stored(session, name)
    recorded = _recorded(session)
    names = set(stored) | set(recorded.added) | set(recorded.retired)
    if name is not None:
        names &= {name}
    findings = list(recorded.findings)
    for vault in sorted(names):
        findings += judge_vault(vault, stored.get(vault), recorded)
        if vault not in recorded.added and vault not in stored:
            findings.append(
                f"vault {vault!r} has a vault-retired record but was never defined in the log; {_RESTORE}"
            )
    findings += [text for vault, text in key_reuse_findings(recorded) if name in (None, vault)]
    return findings


def _refuse_tampered(session: Session, name: str | None = None) -> None:
    findings = vault_findings(session, name)
    if findings:
        raise TamperDetected("; ".join(findings))


# --- judging --------------------------------------------------------------------------------------


def check_vaults(
    session: Session, network: Network | None, policy: Policy, name: str | None = None
) -> dict[str, tuple[str, ...]]:
    """Policy findings of every active vault (or of vault ``name``), against today's policy.

    Keys are judged against ``network`` (the node's), or each vault's own network when ``None``.
    Each vault is judged with the keys of the *other* active vaults, so a key shared between two
    active vaults is reported on both. An empty tuple means the vault meets the policy.
    """
    vaults = (get_vault(session, name),) if name is not None else list_vaults(session)
    return {
        v.name: check_vault_policy(
            v.descriptor,
            v.holders,
            v.network if network is None else network,
            policy,
            active_keys(session, except_vault=v.name),
        )
        for v in vaults
    }
