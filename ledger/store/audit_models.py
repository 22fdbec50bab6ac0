"""The stored audits: each ``reserve audit`` run is kept, append-only, with the ledger root, the
tree size and the signed checkpoint it covered, and its full JSON report."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Boolean, DateTime, ForeignKey, Integer, LargeBinary, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from ledger.store.models import AppendOnly, Base


class AuditRow(AppendOnly, Base):
    __tablename__ = "audits"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    audited_at: Mapped[dt.datetime] = mapped_column(
        DateTime(timezone=True), server_default=text("CURRENT_TIMESTAMP")
    )
    tree_size: Mapped[int] = mapped_column(BigInteger)
    root: Mapped[bytes] = mapped_column(LargeBinary(32))
    checkpoint_id: Mapped[int | None] = mapped_column(Integer, ForeignKey("checkpoints.id"))
    min_conf: Mapped[int] = mapped_column(Integer)
    height: Mapped[int] = mapped_column(Integer)
    best_block: Mapped[str] = mapped_column(String(64))
    findings: Mapped[int] = mapped_column(Integer)
    ok: Mapped[bool] = mapped_column(Boolean)
    report: Mapped[str] = mapped_column(Text)
