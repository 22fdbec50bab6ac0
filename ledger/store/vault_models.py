"""The stored vaults: definition, keys with their holders, and retirements, all append-only.

A vault row and its key rows are written once when the vault is added and never changed; a vault
is retired by inserting a :class:`VaultRetirementRow` (at most one per vault), never by editing
or deleting. The database refuses UPDATE and DELETE on these tables with triggers (migration
``0002_vaults``) and the ORM refuses them first, through the :class:`~ledger.store.models.AppendOnly`
marker.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import CheckConstraint, DateTime, ForeignKey, Integer, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from ledger.store.models import AppendOnly, Base

VAULT_KINDS = ("wsh",)
NETWORKS = ("main", "test", "testnet4", "signet", "regtest")
VAULT_TABLES = ("vaults", "vault_keys", "vault_retirements")

_NOW = text("CURRENT_TIMESTAMP")


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class VaultRow(AppendOnly, Base):
    __tablename__ = "vaults"
    __table_args__ = (
        CheckConstraint(_one_of("kind", VAULT_KINDS), name="kind"),
        CheckConstraint(_one_of("network", NETWORKS), name="network"),
        CheckConstraint("threshold >= 1", name="threshold_positive"),
        CheckConstraint("birthday_height IS NULL OR birthday_height >= 0", name="birthday"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    account_id: Mapped[int] = mapped_column(Integer, ForeignKey("accounts.id"), unique=True)
    kind: Mapped[str] = mapped_column(String(16))
    threshold: Mapped[int] = mapped_column(Integer)
    descriptor: Mapped[str] = mapped_column(Text)
    """The multipath form ``wsh(sortedmulti(m,[fp/path]xpub/<0;1>/*,...))#checksum``."""
    network: Mapped[str] = mapped_column(String(16))
    birthday_height: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=_NOW)


class VaultKeyRow(AppendOnly, Base):
    __tablename__ = "vault_keys"
    __table_args__ = (CheckConstraint("position >= 0", name="position"),)

    vault_id: Mapped[int] = mapped_column(Integer, ForeignKey("vaults.id"), primary_key=True)
    position: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    holder: Mapped[str] = mapped_column(String(100))
    key: Mapped[str] = mapped_column(Text)
    """The key expression with origin, ``[fp/48h/1h/0h/2h]tpub...``."""
    xpub: Mapped[str] = mapped_column(String(120), index=True)
    fingerprint: Mapped[str | None] = mapped_column(String(8))


class VaultRetirementRow(AppendOnly, Base):
    __tablename__ = "vault_retirements"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    vault_id: Mapped[int] = mapped_column(Integer, ForeignKey("vaults.id"), unique=True)
    retired_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=_NOW)
    reason: Mapped[str] = mapped_column(Text)
