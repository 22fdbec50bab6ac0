"""Log records: facts the audit relies on, committed in the same Merkle log as the money.

A vault definition, a vault's retirement, a stored audit's result, the highest address index
issued and a signing-key rotation are each written as a journal entry of its own kind
(:class:`RecordKind`) with **no postings**; the entry's memo is the record's body as canonical
JSON (keys sorted, compact separators, ASCII only). The entry is a leaf of the same tree as the
money entries, so signed checkpoints, ``ledger verify`` and inclusion proofs cover it, and a
table row that disagrees with its record is tampering (:mod:`ledger.journal.verify`).

``docs/ledger-format.md`` (format 1, record kinds) describes each kind's body.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from ledger.errors import InvalidInput
from ledger.journal.book import append_records
from ledger.journal.entry import RECORD_KINDS, Entry, EntryDraft
from ledger.journal.entry import RecordKind as RecordKind  # re-exported: records are written by kind
from ledger.store.models import EntryRow


@dataclass(frozen=True, slots=True)
class Record:
    """A record as the log holds it: its entry number, kind and decoded body."""

    seq: int
    kind: RecordKind
    body: dict[str, Any]


# --- bodies -----------------------------------------------------------------------------------------
# One builder per kind, from plain stored values, so the writers (vaults, audit, migration 0004)
# and the cross-checks of ledger.chain.vaults and ledger.journal.verify agree on every field name.


@dataclass(frozen=True, slots=True)
class KeyFields:
    """One key of a vault as stored in ``vault_keys``."""

    holder: str
    key: str
    xpub: str
    fingerprint: str | None


def vault_added_body(
    *,
    vault: str,
    kind: str,
    threshold: int,
    descriptor: str,
    network: str,
    birthday: int | None,
    keys: Sequence[KeyFields],
) -> dict[str, Any]:
    """The body of a ``vault-added`` record: the vault's definition row and its keys in order.
    The vault's account has the vault's name."""
    return {
        "vault": vault,
        "kind": kind,
        "threshold": threshold,
        "descriptor": descriptor,
        "network": network,
        "birthday": birthday,
        "keys": [
            {"holder": k.holder, "key": k.key, "xpub": k.xpub, "fingerprint": k.fingerprint} for k in keys
        ],
    }


def vault_retired_body(*, vault: str, reason: str) -> dict[str, Any]:
    """The body of a ``vault-retired`` record."""
    return {"vault": vault, "reason": reason}


def audit_body(
    *,
    audit_id: int,
    tree_size: int,
    root: bytes,
    checkpoint_id: int | None,
    height: int,
    best_block: str,
    min_conf: int,
    findings: int,
    ok: bool,
    report: str,
) -> dict[str, Any]:
    """The body of an ``audit`` record: a stored audit's row, its report by SHA-256 (hex) of the
    report text as stored (UTF-8)."""
    return {
        "audit_id": audit_id,
        "tree_size": tree_size,
        "root": root.hex(),
        "checkpoint_id": checkpoint_id,
        "height": height,
        "best_block": best_block,
        "min_conf": min_conf,
        "findings": findings,
        "ok": bool(ok),
        "report_sha256": hashlib.sha256(report.encode("utf-8")).hexdigest(),
    }


# --- the log ----------------------------------------------------------------------------------------


def canonical_json(body: Mapping[str, Any]) -> str:
    """The memo of a record: ``json.dumps(body, sort_keys=True, separators=(",", ":"))``, ASCII
    only (so it never holds a control character). Only JSON values are allowed (no floats: money
    and heights are integers)."""
    if not isinstance(body, Mapping) or not body:
        raise InvalidInput(f"a record body must be a non-empty mapping, got {body!r}")
    _check_json(body, "body")
    return json.dumps(dict(body), sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def _check_json(value: Any, where: str) -> None:
    if value is None or isinstance(value, bool | int | str):
        return
    if isinstance(value, list | tuple):
        for i, item in enumerate(value):
            _check_json(item, f"{where}[{i}]")
        return
    if isinstance(value, Mapping):
        for key, item in value.items():
            if not isinstance(key, str):
                raise InvalidInput(f"record {where}: key {key!r} is not text")
            _check_json(item, f"{where}.{key}")
        return
    raise InvalidInput(
        f"record {where}: {value!r} ({type(value).__name__}) is not a JSON value "
        "(use text, integers, booleans, null, lists and mappings; no floats)"
    )


def draft_of(kind: RecordKind, body: Mapping[str, Any]) -> EntryDraft:
    """The journal draft of a record (kind, canonical JSON memo, no postings)."""
    return EntryDraft(kind=RecordKind(kind).value, memo=canonical_json(body), postings=())


def append_record(session: Session, kind: RecordKind, body: Mapping[str, Any]) -> Entry:
    """Append a record to the log, in the caller's transaction; returns its entry."""
    return append_records(session, (draft_of(kind, body),))[0]


def decode(seq: int, kind: str, memo: str) -> Record:
    """The record of a stored entry (raises :class:`InvalidInput` when the memo is not a JSON
    object)."""
    try:
        body = json.loads(memo)
    except ValueError as exc:
        raise InvalidInput(f"record #{seq} ({kind}): its memo is not JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise InvalidInput(f"record #{seq} ({kind}): its memo is not a JSON object")
    return Record(seq=seq, kind=RecordKind(kind), body=body)


def records(session: Session, kind: RecordKind | None = None) -> list[Record]:
    """Every record (of ``kind``, or of every record kind) in log order.

    Raises :class:`InvalidInput` for a record whose memo is not a JSON object (only possible by
    tampering; ``ledger verify`` reports it as a finding)."""
    kinds = RECORD_KINDS if kind is None else (RecordKind(kind).value,)
    rows = session.execute(
        select(EntryRow.seq, EntryRow.kind, EntryRow.memo)
        .where(EntryRow.kind.in_(kinds))
        .order_by(EntryRow.seq)
    ).all()
    return [decode(seq, k, memo) for seq, k, memo in rows]
