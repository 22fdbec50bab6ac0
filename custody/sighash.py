"""BIP-143 signature hashes for segwit v0 inputs, and strict ECDSA signature checks.

A holder's partial signature counts only if it verifies here, on the transaction the service built:
:func:`segwit_v0_sighash` computes the digest a signer commits to (the spent amount, every input and
output, the witness script), :func:`verify_ecdsa` checks a DER signature against it with libsecp256k1
(coincurve), refusing anything but strict DER (BIP-66) and low S (BIP-146), and
:func:`check_signature` puts both together and says why a signature does not count.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence

import coincurve

from custody.errors import InvalidInput
from custody.psbt import MAX_MONEY, UnsignedTx, compact_size

SIGHASH_ALL = 0x01
SIGHASH_NONE = 0x02
SIGHASH_SINGLE = 0x03
SIGHASH_ANYONECANPAY = 0x80

SECP256K1_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_HALF_ORDER = SECP256K1_ORDER // 2
_ZERO = bytes(32)


def _hash256(data: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


def hashtype_name(hashtype: int) -> str:
    """``ALL``, ``NONE|ANYONECANPAY``, ... or the number in hex when it is not a standard type."""
    base = {SIGHASH_ALL: "ALL", SIGHASH_NONE: "NONE", SIGHASH_SINGLE: "SINGLE"}.get(hashtype & 0x7F)
    if base is None or hashtype & ~0xFF:
        return f"0x{hashtype:02x}"
    return base + ("|ANYONECANPAY" if hashtype & SIGHASH_ANYONECANPAY else "")


_MEMO_SIZE = 8
_memo: dict[int, tuple[UnsignedTx, tuple[bytes, bytes, bytes]]] = {}


def _tx_hashes(tx: UnsignedTx) -> tuple[bytes, bytes, bytes]:
    """hashPrevouts, hashSequence and hashOutputs over the whole transaction (shared by its inputs).

    Remembered by the transaction object's identity, not its value: hashing or comparing a frozen
    transaction walks every input, which made each signature check of an n-input transaction
    O(n) (a 1,000-input proof spent most of its time there). The memo keeps the object it was
    computed for, so an id is never mistaken for a later object's."""
    hit = _memo.get(id(tx))
    if hit is not None and hit[0] is tx:
        return hit[1]
    hashes = _compute_tx_hashes(tx)
    if len(_memo) >= _MEMO_SIZE:
        _memo.pop(next(iter(_memo)))
    _memo[id(tx)] = (tx, hashes)
    return hashes


def _compute_tx_hashes(tx: UnsignedTx) -> tuple[bytes, bytes, bytes]:
    prevouts = _hash256(b"".join(i.serialize_outpoint() for i in tx.inputs))
    sequences = _hash256(b"".join(struct.pack("<I", i.sequence) for i in tx.inputs))
    outputs = _hash256(b"".join(o.serialize() for o in tx.outputs))
    return prevouts, sequences, outputs


def segwit_v0_sighash(tx: UnsignedTx, index: int, script_code: bytes, amount: int, hashtype: int) -> bytes:
    """The BIP-143 digest input ``index`` signs.

    ``script_code`` is the script itself, without its length prefix (for P2WSH the witness script,
    from its last executed OP_CODESEPARATOR on); ``amount`` is the spent output's value in satoshis;
    ``hashtype`` the 32-bit sighash type (the signature's last byte).
    """
    if not 0 <= index < len(tx.inputs):
        raise InvalidInput(f"sighash: the transaction has no input {index}; it has {len(tx.inputs)}")
    if not 0 <= amount <= MAX_MONEY:
        raise InvalidInput(f"sighash: amount {amount} sat is outside 0..{MAX_MONEY}")
    if not 0 <= hashtype <= 0xFFFFFFFF:
        raise InvalidInput(f"sighash: hash type {hashtype} is not a 32-bit unsigned integer")
    prevouts, sequences, outputs = _tx_hashes(tx)
    base = hashtype & 0x1F
    anyone_can_pay = bool(hashtype & SIGHASH_ANYONECANPAY)
    if anyone_can_pay:
        prevouts = _ZERO
    if anyone_can_pay or base in (SIGHASH_SINGLE, SIGHASH_NONE):
        sequences = _ZERO
    if base == SIGHASH_SINGLE:
        outputs = _hash256(tx.outputs[index].serialize()) if index < len(tx.outputs) else _ZERO
    elif base == SIGHASH_NONE:
        outputs = _ZERO
    txin = tx.inputs[index]
    preimage = b"".join(
        (
            struct.pack("<I", tx.version),
            prevouts,
            sequences,
            txin.serialize_outpoint(),
            compact_size(len(script_code)),
            script_code,
            struct.pack("<q", amount),
            struct.pack("<I", txin.sequence),
            outputs,
            struct.pack("<I", tx.locktime),
            struct.pack("<I", hashtype),
        )
    )
    return _hash256(preimage)


def der_problem(der: bytes) -> str | None:
    """Why ``der`` (a signature without its sighash byte) is not strict DER per BIP-66, or None."""
    n = len(der)
    if n < 8 or n > 72:
        return f"{n} bytes, a DER signature has 8 to 72"
    if der[0] != 0x30:
        return f"starts with 0x{der[0]:02x}, not 0x30 (compound)"
    if der[1] != n - 2:
        return f"length byte says {der[1]}, the signature has {n - 2} after it"
    len_r = der[3]
    if 5 + len_r >= n:
        return f"R length {len_r} leaves no room for S"
    len_s = der[5 + len_r]
    if len_r + len_s + 6 != n:
        return f"R ({len_r}) and S ({len_s}) lengths do not add up to the signature length"
    for name, tag_at, length in (("R", 2, len_r), ("S", 4 + len_r, len_s)):
        value_at = tag_at + 2
        if der[tag_at] != 0x02:
            return f"{name} is not tagged as an integer (0x02)"
        if length == 0:
            return f"{name} is empty"
        if der[value_at] & 0x80:
            return f"{name} is negative"
        if length > 1 and der[value_at] == 0 and not der[value_at + 1] & 0x80:
            return f"{name} has an unnecessary leading zero"
    return None


def _s_value(der: bytes) -> int:
    len_r = der[3]
    return int.from_bytes(der[6 + len_r :], "big")


def verify_ecdsa(pubkey: bytes, der_sig: bytes, digest: bytes) -> bool:
    """True if ``der_sig`` (strict DER, low S) is ``pubkey``'s signature of the 32-byte ``digest``."""
    if len(digest) != 32 or der_problem(der_sig) is not None or _s_value(der_sig) > _HALF_ORDER:
        return False
    try:
        key = coincurve.PublicKey(pubkey)
        return bool(key.verify(der_sig, digest, hasher=None))
    except (ValueError, TypeError):
        return False


def check_signature(
    tx: UnsignedTx,
    index: int,
    witness_script: bytes,
    amount: int,
    pubkey: bytes,
    sig_with_hashtype: bytes,
    allowed_hashtypes: Sequence[int] = (SIGHASH_ALL,),
) -> str | None:
    """None if the signature is valid for input ``index`` spending ``amount`` sat through the P2WSH
    ``witness_script``; otherwise the reason it does not count.

    An input index outside the transaction or a bad amount raise :class:`InvalidInput` (a caller's
    mistake, not the signer's).
    """
    if not 0 <= index < len(tx.inputs):
        raise InvalidInput(f"signature check: the transaction has no input {index}; it has {len(tx.inputs)}")
    if len(pubkey) != 33 or pubkey[0] not in (2, 3):
        return f"public key {pubkey.hex()} is not a 33-byte compressed key ({len(pubkey)} bytes)"
    try:
        coincurve.PublicKey(pubkey)
    except ValueError:
        return f"public key {pubkey.hex()} is not a valid secp256k1 point"
    if b"\x21" + pubkey not in witness_script:
        return f"public key {pubkey.hex()} is not in input {index}'s witness script"
    if not sig_with_hashtype:
        return "the signature is empty"
    der, hashtype = sig_with_hashtype[:-1], sig_with_hashtype[-1]
    problem = der_problem(der)
    if problem is not None:
        return f"the signature is not strict DER (BIP-66): {problem}"
    if hashtype not in allowed_hashtypes:
        allowed = ", ".join(hashtype_name(h) for h in allowed_hashtypes)
        return f"sighash type {hashtype_name(hashtype)} is not allowed (expected {allowed})"
    if _s_value(der) > _HALF_ORDER:
        return "the signature has a high S value (BIP-146 requires low S); the signer must normalise it"
    digest = segwit_v0_sighash(tx, index, witness_script, amount, hashtype)
    if not verify_ecdsa(pubkey, der, digest):
        return (
            f"the signature does not verify for input {index}: the transaction, the spent amount "
            f"({amount} sat) or the witness script differ from what was signed"
        )
    return None
