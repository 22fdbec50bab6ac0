"""The reserve's vaults: m-of-n multisig descriptors, who holds each key, and their retirement.

Service functions take the caller's :class:`~sqlalchemy.orm.Session` and never open one. Adding a
vault judges it against the multisig policy (:func:`custody.policy.check_vault_policy`, with the
keys of every other *active* vault) and refuses any violation before writing anything; it then
stores the vault, its keys in descriptor order with their holders, and opens the vault's account
(type ``vault``, same name) in the books. Vaults are append-only: retiring one records a
retirement row, it is never edited or deleted.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from custody.descriptor import MultisigDescriptor
from custody.errors import PolicyViolation
from custody.keys import HeldKey
from custody.network import Network
from custody.policy import Policy, check_vault_policy
from custody.wallet import vault_wallet_name
from ledger.accounts import add_account
from ledger.entry import check_account_name
from ledger.errors import Conflict, InvalidInput, NotFound
from ledger.models import AccountRow
from ledger.vault_models import VaultKeyRow, VaultRetirementRow, VaultRow


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
    """The vault called ``name`` (retired or not); :class:`NotFound` if there is none."""
    rows = _rows(session, name)
    if not rows:
        raise NotFound(f"unknown vault {name!r}; `reserve vault list` shows the vaults")
    return _vault(session, *rows[0])


def list_vaults(session: Session, include_retired: bool = False) -> tuple[Vault, ...]:
    """Every active vault (and retired ones with ``include_retired``), by name."""
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
        HeldKey(holder, descriptor.keys[0])  # the same rules as on the command line
    if session.scalar(select(VaultRow.id).where(VaultRow.name == name)) is not None:
        raise Conflict(f"vault {name!r} already exists; `reserve vault show {name}` shows it")
    if session.scalar(select(AccountRow.id).where(AccountRow.name == name)) is not None:
        raise Conflict(
            f"account {name!r} already exists and a vault's account takes the vault's name; "
            "pick another vault name"
        )
    findings = check_vault_policy(descriptor, holders, network, policy, active_keys(session))
    if findings:
        raise PolicyViolation(findings)

    account = add_account(session, name, "vault", vault_definition=True)
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
    return get_vault(session, name)


def retire_vault(session: Session, name: str, reason: str) -> Vault:
    """Retire an active vault (its keys may then serve a new vault); records ``reason``."""
    reason = reason.strip()
    if not reason:
        raise InvalidInput("a retirement needs a reason (--reason TEXT), e.g. 'keys rotated to vault X'")
    vault = get_vault(session, name)
    if vault.retired:
        raise Conflict(f"vault {name!r} is already retired ({vault.retired_reason})")
    vault_id = session.scalar(select(VaultRow.id).where(VaultRow.name == name))
    session.add(VaultRetirementRow(vault_id=vault_id, reason=reason))
    session.flush()
    return get_vault(session, name)


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
