"""Stored spending policy, spends and attestations, all append-only.

- ``policy_changes``: every change to a vault's spending policy or allowlist, with the height at
  which it was requested and the height from which it is in force (a loosening waits).
- ``spend_events``: each state a spend passed through (proposed, signed, broadcast, confirmed,
  cancelled, conflicted), with the PSBT as it was at that step. A spend's current state is its
  latest event; nothing is ever updated.
- ``spend_inputs``: the coins a spend proposed to spend, written with its proposal, so that two
  open spends never use one coin.
- ``attestations``: each attestation document issued, with its SHA-256.

Every row also has a log record in the Merkle log (``record_seq``), so the history the gate and
the auditors rely on is tamper-evident. Migration ``0005_spending`` creates the tables and their
append-only triggers.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from ledger.store.models import AppendOnly, Base

POLICY_CHANGE_KINDS = ("set", "allow-add", "allow-remove")
SPEND_STATES = ("proposed", "signed", "broadcast", "confirmed", "cancelled", "conflicted")
SPEND_TABLES = ("policy_changes", "spend_events", "spend_inputs", "attestations")

_NOW = text("CURRENT_TIMESTAMP")


def _one_of(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class PolicyChangeRow(AppendOnly, Base):
    __tablename__ = "policy_changes"
    __table_args__ = (
        CheckConstraint(_one_of("change", POLICY_CHANGE_KINDS), name="change"),
        CheckConstraint("effective_height >= requested_height", name="effective_after_request"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    vault: Mapped[str] = mapped_column(String(100), index=True)
    change: Mapped[str] = mapped_column(String(20))
    body: Mapped[str] = mapped_column(Text)  # canonical JSON
    loosens: Mapped[bool] = mapped_column(Boolean)
    requested_height: Mapped[int] = mapped_column(Integer)
    effective_height: Mapped[int] = mapped_column(Integer)
    record_seq: Mapped[int] = mapped_column(BigInteger, ForeignKey("entries.seq"))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=_NOW)


class SpendEventRow(AppendOnly, Base):
    __tablename__ = "spend_events"
    __table_args__ = (
        CheckConstraint(_one_of("state", SPEND_STATES), name="state"),
        CheckConstraint("spend >= 1 AND step >= 0", name="numbers"),
        CheckConstraint("amount >= 0", name="amount"),
        UniqueConstraint("spend", "step"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    spend: Mapped[int] = mapped_column(Integer)
    step: Mapped[int] = mapped_column(Integer)
    state: Mapped[str] = mapped_column(String(16))
    vault: Mapped[str] = mapped_column(String(100), index=True)
    txid: Mapped[str] = mapped_column(String(64), index=True)
    psbt: Mapped[str] = mapped_column(Text)  # base64
    psbt_sha256: Mapped[str] = mapped_column(String(64))
    amount: Mapped[int] = mapped_column(BigInteger)  # what leaves the vault (not change, not fee)
    height: Mapped[int] = mapped_column(Integer)  # the node's tip at the event
    detail: Mapped[str] = mapped_column(Text)  # canonical JSON
    record_seq: Mapped[int] = mapped_column(BigInteger, ForeignKey("entries.seq"))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=_NOW)


class SpendInputRow(AppendOnly, Base):
    __tablename__ = "spend_inputs"
    __table_args__ = (
        UniqueConstraint("spend", "txid", "vout"),
        Index("ix_spend_inputs_outpoint", "txid", "vout"),
        CheckConstraint("vout >= 0", name="vout"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    spend: Mapped[int] = mapped_column(Integer)
    txid: Mapped[str] = mapped_column(String(64))
    vout: Mapped[int] = mapped_column(Integer)


class AttestationRow(AppendOnly, Base):
    __tablename__ = "attestations"
    __table_args__ = (CheckConstraint("height >= 0", name="height"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    height: Mapped[int] = mapped_column(Integer)
    block_hash: Mapped[str] = mapped_column(String(64))
    document: Mapped[str] = mapped_column(Text)  # canonical JSON
    sha256: Mapped[str] = mapped_column(String(64))
    record_seq: Mapped[int] = mapped_column(BigInteger, ForeignKey("entries.seq"))
    created_at: Mapped[dt.datetime] = mapped_column(DateTime(timezone=True), server_default=_NOW)
