"""Offline check of a governed change's approvals (``reserve-ledger-approvals/v1``).

An auditor runs it with no database and no node, with the standard library, ``cryptography`` and
``coincurve`` (as :mod:`ledger.attest.verify_doc`)::

    python -m ledger.governance.verify_approval APPROVALS.json

The document (``reserve approve show N --export FILE``) holds log records verbatim, each as its
entry number and memo: the vault's ``vault-added`` record, the ``change-proposed`` record (whose
entry number is the change's number), every ``approval`` record and, once applied, the
``change-applied`` record. The check rebuilds the change's canonical bytes and the message the
holders signed from the records alone (:mod:`ledger.governance.message`), verifies every
approval's signature (BIP-322 ``to_sign`` of the vault's first receive address, BIP-143, strict
DER, low S) against the key the vault's descriptor gives the holder it names, counts each holder
once, and says whether the vault's threshold approved. Exit 0: approved by the threshold and no
finding; 1: otherwise. Each record's membership in the log is proven separately
(``reserve ledger proof SEQ``, checked by :mod:`ledger.verify_proof`).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import Any

from custody.errors import InvalidInput
from ledger.attest import wsh_descriptor
from ledger.governance import message as gm
from ledger.verify_proof import ProofError, strict_json_loads

DOCUMENT_FORMAT = "reserve-ledger-approvals/v1"
MAX_DOCUMENT_BYTES = 10_000_000
_DOC_KEYS = {"format", "vault", "change", "approvals", "applied"}
_RECORD_KEYS = {"seq", "memo"}
_APPROVAL_KEYS = {"change", "vault", "digest", "holder", "key", "signature"}
_APPLIED_KEYS = {"change", "vault", "action", "params", "height", "effective_height"}


def strict_loads(text: str | bytes) -> Any:
    """The document's JSON (:func:`ledger.verify_proof.strict_json_loads`: no repeated key, no
    NaN, integers only), a :class:`ValueError` saying why not."""
    try:
        return strict_json_loads(text)
    except ProofError as exc:
        raise ValueError(str(exc)) from exc


def _record(value: Any, where: str) -> tuple[int, dict[str, Any]]:
    if not isinstance(value, dict) or set(value) != _RECORD_KEYS:
        raise InvalidInput(f"{where} is not an object with exactly seq and memo")
    seq, memo = value["seq"], value["memo"]
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 1 or not isinstance(memo, str):
        raise InvalidInput(f"{where}: seq must be a whole number from 1 and memo text")
    body = strict_loads(memo)
    if not isinstance(body, dict) or gm.canonical(body).decode("ascii") != memo:
        raise InvalidInput(f"{where} (#{seq}): its memo is not a record's canonical JSON object")
    return seq, body


def check_document(doc: Any) -> tuple[list[str], list[str]]:
    """(findings, lines of what was checked) for an approval document; no finding and an
    ``approved`` line: the change is approved by its vault's threshold."""
    lines: list[str] = []
    try:
        if not isinstance(doc, dict) or set(doc) != _DOC_KEYS or doc["format"] != DOCUMENT_FORMAT:
            raise InvalidInput(
                f"the document is not {DOCUMENT_FORMAT} with exactly {', '.join(sorted(_DOC_KEYS))}"
            )
        _, vault = _record(doc["vault"], "vault")
        number, change = _record(doc["change"], "change")
        if not isinstance(doc["approvals"], list):
            raise InvalidInput("approvals is not a list")
        approvals = [_record(a, f"approval {i + 1}") for i, a in enumerate(doc["approvals"])]
        applied = None if doc["applied"] is None else _record(doc["applied"], "applied")
        name, descriptor = vault.get("vault"), vault.get("descriptor")
        keys = vault.get("keys")
        if not isinstance(keys, list) or not all(
            isinstance(k, dict) and isinstance(k.get("holder"), str) for k in keys
        ):
            raise InvalidInput("the vault record lists no holders")
        holders = [k["holder"] for k in keys]
        if not isinstance(descriptor, str) or change.get("vault") != name:
            raise InvalidInput(
                f"the change is of vault {change.get('vault')!r}, the vault record of {name!r}"
            )
        if vault.get("network") != change.get("network"):
            raise InvalidInput(
                f"the change is for {change.get('network')!r}, the vault on {vault.get('network')!r}"
            )
        digest = gm.change_digest(number, change)
        message = gm.message_of(number, change)
        threshold = wsh_descriptor.parse(descriptor).threshold
    except (InvalidInput, ValueError, KeyError, TypeError) as exc:
        return [f"format: {exc}"], lines
    lines.append(
        f"change {number} of vault {name}: {change.get('action')} {json.dumps(change.get('params'))}"
    )
    lines.append(f"digest {digest}; {threshold} of {len(set(holders))} holders must approve")
    findings: list[str] = []
    signatures: list[gm.Signature] = []
    for seq, body in approvals:
        if set(body) != _APPROVAL_KEYS or (body["change"], body["vault"], body["digest"]) != (
            number,
            name,
            digest,
        ):
            findings.append(f"approval #{seq} is not an approval of change {number} with digest {digest}")
            continue
        if not all(isinstance(body[k], str) for k in ("holder", "key", "signature")):
            findings.append(f"approval #{seq}: holder, key and signature must be text")
            continue
        signatures.append(gm.Signature(body["holder"], body["key"], body["signature"]))
    bad, signed = gm.check_approvals(descriptor, holders, message, signatures)
    findings += bad
    lines.append(f"approved by: {', '.join(signed) or 'nobody'} (each signature verified)")
    if applied is not None:
        seq, body = applied
        if set(body) != _APPLIED_KEYS or (body["change"], body["vault"], body["action"]) != (
            number,
            name,
            change.get("action"),
        ):
            findings.append(f"change-applied #{seq} is not the application of change {number}")
        elif len(signed) < threshold:
            findings.append(
                f"change-applied #{seq} applies change {number} with {len(signed)} of {threshold} approvals"
            )
        else:
            lines.append(
                f"applied at height {body['height']}, in force from height {body['effective_height']}"
            )
    if len(signed) < threshold:
        findings.append(f"approved by {len(signed)} distinct holder(s) of the {threshold} needed")
    elif not findings:
        lines.append("approved")
    return findings, lines


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ledger.governance.verify_approval FILE``: exit 0 if approved, 1 if not."""
    parser = argparse.ArgumentParser(description="Verify a governed change's approvals offline.")
    parser.add_argument("document", help="approval JSON document (reserve approve show N --export FILE)")
    args = parser.parse_args(argv)
    try:
        with open(args.document, "rb") as f:
            raw = f.read(MAX_DOCUMENT_BYTES + 1)
        if len(raw) > MAX_DOCUMENT_BYTES:
            raise ValueError(f"more than {MAX_DOCUMENT_BYTES:,} bytes")
        doc = strict_loads(raw)
    except (OSError, ValueError) as exc:
        print(f"FAIL: cannot read {args.document}: {exc}")
        return 1
    findings, lines = check_document(doc)
    for line in lines:
        print(f"ok {line}")
    for finding in findings:
        print(f"FAIL {finding}")
    print("OK" if not findings else "NOT APPROVED")
    return 0 if not findings else 1


if __name__ == "__main__":
    sys.exit(main())
