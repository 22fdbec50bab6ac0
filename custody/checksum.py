"""BIP-380 descriptor checksums: ``wsh(...)#8charsum``.

:func:`descriptor_checksum` computes the 8-character checksum of a descriptor, :func:`add_checksum`
appends it and :func:`split_checksum` verifies and removes it (Bitcoin Core's ``DescriptorChecksum``
in ``src/script/descriptor.cpp``: every 3 characters of the input become 4 GF(32) symbols of a
degree-8 BCH code, so any single-character change is detected).
"""

from __future__ import annotations

from collections.abc import Iterable

from custody.errors import InvalidInput
from custody.keys import shorten

INPUT_CHARSET = (
    "0123456789()[],'/*abcdefgh@:$%{}IJKLMNOPQRSTUVWXYZ&+-.;<=>?!^_|~ijklmnopqrstuvwxyzABCDEFGH`#\"\\ "
)
CHECKSUM_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
CHECKSUM_LENGTH = 8
_GENERATOR = (0xF5DEE51989, 0xA9FDCA3312, 0x1BAB10E32D, 0x3706B1677A, 0x644D626FFD)


def _polymod(symbols: Iterable[int]) -> int:
    chk = 1
    for value in symbols:
        top = chk >> 35
        chk = ((chk & 0x7_FFFF_FFFF) << 5) ^ value
        for i, generator in enumerate(_GENERATOR):
            if (top >> i) & 1:
                chk ^= generator
    return chk


def _expand(desc: str) -> list[int]:
    """Each character's position in its group of 32, plus one symbol per 3 characters' groups."""
    symbols: list[int] = []
    groups: list[int] = []
    for position, char in enumerate(desc):
        v = INPUT_CHARSET.find(char)
        if v < 0:
            raise InvalidInput(
                f"descriptor has character {char!r} at position {position}, outside the BIP-380 "
                "character set; retype the descriptor in plain ASCII"
            )
        symbols.append(v & 31)
        groups.append(v >> 5)
        if len(groups) == 3:
            symbols.append(groups[0] * 9 + groups[1] * 3 + groups[2])
            groups = []
    if len(groups) == 1:
        symbols.append(groups[0])
    elif len(groups) == 2:
        symbols.append(groups[0] * 3 + groups[1])
    return symbols


def descriptor_checksum(desc: str) -> str:
    """The 8-character BIP-380 checksum of ``desc`` (given without ``#checksum``)."""
    chk = _polymod([*_expand(desc), *([0] * CHECKSUM_LENGTH)]) ^ 1
    return "".join(CHECKSUM_CHARSET[(chk >> (5 * (7 - i))) & 31] for i in range(CHECKSUM_LENGTH))


def add_checksum(desc: str) -> str:
    """``desc#checksum``."""
    return f"{desc}#{descriptor_checksum(desc)}"


def split_checksum(text: str, *, require: bool = False) -> tuple[str, str | None]:
    """Split ``desc#checksum`` into ``(desc, checksum)``, verifying the checksum if present.

    Returns ``(desc, None)`` when there is no checksum, unless ``require`` is set.
    """
    body, sep, given = text.partition("#")
    if not sep:
        if require:
            raise InvalidInput(
                f"descriptor {shorten(text, 40)!r} has no #checksum; append the 8-character "
                "checksum (bitcoind getdescriptorinfo prints it)"
            )
        return body, None
    if "#" in given:
        raise InvalidInput(f"descriptor {shorten(text, 40)!r} has more than one '#'")
    if len(given) != CHECKSUM_LENGTH:
        raise InvalidInput(
            f"descriptor checksum {given!r} has {len(given)} characters, not 8; "
            "copy the whole descriptor again"
        )
    expected = descriptor_checksum(body)
    if given != expected:
        raise InvalidInput(
            f"bad descriptor checksum: got {given}, expected {expected}; the descriptor was "
            "altered or mistyped, copy it again from its source rather than fixing the checksum"
        )
    return body, given
