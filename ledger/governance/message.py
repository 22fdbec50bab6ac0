"""What a holder's approval of a governed change signs, and how one is checked, offline.

A governed change (``docs/governance.md``) is stored as a ``change-proposed`` record; its number
is the record's entry number. Its **canonical bytes** are the canonical JSON (keys sorted, no
spaces, ASCII) of the record's body with two more keys, ``format`` and ``change`` (the number)::

    {"action":...,"change":57,"format":"reserve-ledger-change/v1","network":"regtest",
     "params":{...},"requested_height":812,"vault":"hot"}

A holder approves it by signing, through the PSBT flow of spends and proofs of control, the
BIP-322 ``to_sign`` of :func:`approval_message` for the vault's first receive address (branch 0,
index 0): four ASCII lines that commit to the network, the vault and the SHA-256 of the change's
bytes. Each signature is checked on its own (BIP-143 over ``to_sign``'s input 0, strict DER,
low S, SIGHASH_ALL) and attributed to the holder of the key that made it; one holder's keys count
once.

Importing this module needs only the standard library and ``coincurve`` (the offline verifier
:mod:`ledger.governance.verify_approval` imports it).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from custody import bip322
from custody.errors import InvalidInput
from custody.psbt import UnsignedTx
from custody.sighash import check_signature
from ledger.attest import wsh_descriptor

TITLE = "reserve-ledger governance v1"
CHANGE_FORMAT = "reserve-ledger-change/v1"
BRANCH, INDEX = 0, 0
"""The address every approval of a vault's change signs for: its first receive address."""
CHANGE_KEYS = frozenset({"vault", "network", "action", "params", "requested_height"})
_NAME = re.compile(r"^[\x21-\x7e]+$")


def canonical(value: Mapping[str, Any]) -> bytes:
    """Canonical JSON bytes, as the log's record memos are written (``ledger.journal.records``)."""
    return json.dumps(dict(value), sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def change_bytes(number: int, body: Mapping[str, Any]) -> bytes:
    """The canonical bytes of change ``number`` whose ``change-proposed`` record body is ``body``."""
    if isinstance(number, bool) or not isinstance(number, int) or number < 1:
        raise InvalidInput(f"change number {number!r} is not a whole number from 1")
    if set(body) != CHANGE_KEYS:
        raise InvalidInput(
            f"a change's body has exactly the fields {', '.join(sorted(CHANGE_KEYS))}; "
            f"got {', '.join(sorted(body))}"
        )
    return canonical({**body, "format": CHANGE_FORMAT, "change": number})


def change_digest(number: int, body: Mapping[str, Any]) -> str:
    """SHA-256 (hex) of :func:`change_bytes`."""
    return hashlib.sha256(change_bytes(number, body)).hexdigest()


def approval_message(*, network: str, vault: str, number: int, digest: str) -> bytes:
    """The message every approval of change ``number`` of ``vault`` signs (no newline at the end)::

    reserve-ledger governance v1
    network: <chain name, e.g. main or regtest>
    vault: <vault name>
    change: <number> <SHA-256 of the change's canonical bytes>
    """
    for what, name in (("network", network), ("vault name", vault)):
        if not isinstance(name, str) or not _NAME.match(name):
            raise InvalidInput(f"{what} {name!r} must be printable ASCII without spaces")
    if not isinstance(digest, str) or not re.fullmatch(r"[0-9a-f]{64}", digest):
        raise InvalidInput(f"change digest {digest!r} is not 64 lowercase hex digits")
    lines = (TITLE, f"network: {network}", f"vault: {vault}", f"change: {number} {digest}")
    return "\n".join(lines).encode("ascii")


def message_of(number: int, body: Mapping[str, Any]) -> bytes:
    """:func:`approval_message` of change ``number`` (its body gives the network and vault)."""
    return approval_message(
        network=str(body.get("network")),
        vault=str(body.get("vault")),
        number=number,
        digest=change_digest(number, body),
    )


def to_sign(message: bytes, witness_script: bytes) -> UnsignedTx:
    """The BIP-322 ``to_sign`` of ``message`` for the P2WSH of ``witness_script`` (no other input)."""
    return bip322.to_sign(message, bip322.p2wsh(witness_script))


@dataclass(frozen=True, slots=True)
class Signature:
    """One approval: the holder named, the key (33-byte compressed, hex) and its signature (DER +
    sighash byte, hex)."""

    holder: str
    key: str
    signature: str


def check_approvals(
    descriptor: str, holders: Sequence[str], message: bytes, signatures: Sequence[Signature]
) -> tuple[list[str], tuple[str, ...]]:
    """(findings, distinct holders whose signature verifies, in the order given) for approvals of
    ``message`` by the vault of ``descriptor`` (with checksum) whose keys ``holders`` hold, in
    descriptor order.

    A signature counts when its key is the vault's key at branch 0, index 0 held by the holder it
    names and it verifies over ``to_sign``; a holder named twice is a finding (one holder's keys
    count once).
    """
    try:
        desc = wsh_descriptor.parse(descriptor)
        keys = desc.pubkeys(BRANCH, INDEX)
        witness_script = desc.witness_script(BRANCH, INDEX)
    except (InvalidInput, ValueError) as exc:
        return [f"the vault's descriptor cannot be read: {exc}"], ()
    if len(holders) != len(keys):
        return [f"{len(holders)} holders for the descriptor's {len(keys)} keys"], ()
    tx = to_sign(message, witness_script)
    owner = {key.hex(): holder for key, holder in zip(keys, holders, strict=True)}
    findings: list[str] = []
    signed: list[str] = []
    for n, sig in enumerate(signatures, start=1):
        where = f"approval {n} ({sig.holder})"
        if owner.get(sig.key) != sig.holder:
            findings.append(f"{where}: key {sig.key[:16]}... is not {sig.holder}'s key of the vault")
            continue
        if sig.holder in signed:
            findings.append(f"{where}: {sig.holder} approved already; one holder's keys count once")
            continue
        try:
            reason = check_signature(
                tx, 0, witness_script, 0, bytes.fromhex(sig.key), bytes.fromhex(sig.signature)
            )
        except (InvalidInput, ValueError) as exc:
            reason = str(exc)
        if reason is not None:
            findings.append(f"{where}: the signature does not verify over this change ({reason})")
            continue
        signed.append(sig.holder)
    return findings, tuple(signed)
