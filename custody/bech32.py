"""BIP-173 bech32 addresses of version-0 witness outputs (P2WPKH, P2WSH).

:func:`segwit_v0_address` is table-driven: RFC 4648 base32 (``base64.b32encode``, in C) splits the
witness program into 5-bit groups exactly as BIP-173's ``convertbits(8, 5, pad=True)`` does, and a
32-entry table folds each group into the checksum. Version-1+ (bech32m) addresses are not needed:
vaults are P2WSH.
"""

from __future__ import annotations

import base64
from collections.abc import Iterable

from custody.errors import InvalidInput
from custody.network import Network

BECH32_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_GENERATOR = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)


def _table() -> tuple[int, ...]:
    """For each 5-bit value shifted out of the checksum, the XOR of the generators it selects."""
    table = []
    for top in range(32):
        value = 0
        for i, generator in enumerate(_GENERATOR):
            if (top >> i) & 1:
                value ^= generator
        table.append(value)
    return tuple(table)


_TABLE = _table()


def _polymod(symbols: Iterable[int], chk: int = 1) -> int:
    table = _TABLE
    for value in symbols:
        chk = ((chk & 0x1FF_FFFF) << 5) ^ value ^ table[chk >> 25]
    return chk


def _hrp_state(hrp: str) -> int:
    return _polymod([*(ord(c) >> 5 for c in hrp), 0, *(ord(c) & 31 for c in hrp)])


# Only the alphabet differs between RFC 4648 base32 and bech32's 5-bit groups: these tables turn
# base32 output into symbol values and into bech32 letters.
_B32_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_B32_TO_VALUE = bytes.maketrans(_B32_ALPHABET, bytes(range(32)))
_B32_TO_BECH32 = bytes.maketrans(_B32_ALPHABET, BECH32_CHARSET.encode())


def segwit_v0_address(script_pubkey: bytes, network: Network) -> str:
    """The bech32 (BIP-173) address of a version-0 witness output script on ``network``."""
    program = script_pubkey[2:]
    if len(script_pubkey) not in (22, 34) or script_pubkey[0] != 0 or script_pubkey[1] != len(program):
        raise InvalidInput(
            f"output script {script_pubkey.hex()} is not a version-0 witness program "
            "(P2WPKH or P2WSH); only those have a bech32 address"
        )
    groups = base64.b32encode(program).rstrip(b"=")
    hrp = network.hrp
    chk = _polymod(groups.translate(_B32_TO_VALUE) + bytes(6), _polymod((0,), _hrp_state(hrp))) ^ 1
    checksum = "".join(BECH32_CHARSET[(chk >> (5 * (5 - i))) & 31] for i in range(6))
    return f"{hrp}1q{groups.translate(_B32_TO_BECH32).decode()}{checksum}"
