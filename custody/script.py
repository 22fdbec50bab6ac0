"""The output scripts of a multisig vault: the ``sortedmulti`` witness script and its P2WSH output.

:func:`sortedmulti_witness_script` sorts the public keys by their bytes (BIP-67, as the
``sortedmulti`` descriptor does); :func:`p2wsh_script_pubkey` commits to it by SHA-256.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

from bitcoin.core.script import OP_0, OP_CHECKMULTISIG, CScript

from custody.errors import InvalidInput

MAX_MULTISIG_KEYS = 20  # OP_CHECKMULTISIG's limit; the vault policy is stricter


def sortedmulti_witness_script(threshold: int, pubkeys: Sequence[bytes]) -> bytes:
    """``OP_m <keys sorted by bytes> OP_n OP_CHECKMULTISIG`` (BIP-67 order, as ``sortedmulti``)."""
    if not 1 <= threshold <= len(pubkeys) <= MAX_MULTISIG_KEYS:
        raise InvalidInput(f"multisig {threshold}-of-{len(pubkeys)} is impossible; need 1 <= m <= n <= 20")
    if len(pubkeys) <= 16 and all(len(k) == 33 for k in pubkeys):  # OP_1..OP_16, 33-byte pushes
        keys = b"".join(b"\x21" + k for k in sorted(pubkeys))
        return bytes((0x50 + threshold,)) + keys + bytes((0x50 + len(pubkeys), OP_CHECKMULTISIG))
    return bytes(CScript([threshold, *sorted(pubkeys), len(pubkeys), OP_CHECKMULTISIG]))


def p2wsh_script_pubkey(witness_script: bytes) -> bytes:
    """``OP_0 <sha256(witness script)>``."""
    return bytes(CScript([OP_0, hashlib.sha256(witness_script).digest()]))
