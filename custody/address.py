"""Addresses to output scripts and back, locally, for one network.

:func:`address_script` decodes what a person pastes as a destination: segwit addresses (BIP-173
bech32 for witness version 0, BIP-350 bech32m for versions 1 to 16) and base58check P2PKH / P2SH
addresses. Anything malformed, or made for another network (bech32 human-readable part or base58
version byte), is :class:`~custody.errors.InvalidInput` naming the value and what was expected.
:func:`script_address` is the inverse for the scripts that have an address. :func:`script_kind`
names the standard kinds (``p2pkh``, ``p2sh``, ``p2wpkh``, ``p2wsh``, ``p2tr``) and returns ``None``
for the rest (future witness versions decode, but no wallet can spend them yet).

The checksum code follows BIP-350's reference (the 5-bit polymod and its two constants); the
table-driven :mod:`custody.bech32` stays the encoder of vault (P2WSH) addresses.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from enum import Enum

from custody.errors import InvalidInput
from custody.keys import shorten
from custody.network import Network

CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_CHARSET_VALUE = {c: i for i, c in enumerate(CHARSET)}
_GENERATOR = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)
MAX_BECH32_LENGTH = 90
MAX_ADDRESS_LENGTH = MAX_BECH32_LENGTH
"""Longest address text read; longer text is refused before any decoding (and never echoed whole)."""

B58_ALPHABET = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_B58_VALUE = {c: i for i, c in enumerate(B58_ALPHABET)}

# base58check version bytes: (P2PKH, P2SH); every test network shares the testnet pair.
_MAIN_VERSIONS = (0x00, 0x05)
_TEST_VERSIONS = (0x6F, 0xC4)

OP_DUP, OP_HASH160, OP_EQUALVERIFY, OP_CHECKSIG, OP_EQUAL = 0x76, 0xA9, 0x88, 0xAC, 0x87


class Encoding(Enum):
    """The two bech32 checksums: BIP-173's (witness v0) and BIP-350's bech32m (v1+)."""

    BECH32 = 1
    BECH32M = 0x2BC830A3


def _polymod(values: Sequence[int]) -> int:
    chk = 1
    for value in values:
        top = chk >> 25
        chk = (chk & 0x1FFFFFF) << 5 ^ value
        for i, generator in enumerate(_GENERATOR):
            if (top >> i) & 1:
                chk ^= generator
    return chk


def _hrp_expand(hrp: str) -> list[int]:
    return [ord(c) >> 5 for c in hrp] + [0] + [ord(c) & 31 for c in hrp]


def _create_checksum(hrp: str, data: Sequence[int], encoding: Encoding) -> list[int]:
    polymod = _polymod([*_hrp_expand(hrp), *data, 0, 0, 0, 0, 0, 0]) ^ encoding.value
    return [(polymod >> 5 * (5 - i)) & 31 for i in range(6)]


def bech32_encode(hrp: str, data: Sequence[int], encoding: Encoding) -> str:
    """``hrp`` + ``1`` + the 5-bit ``data`` and its checksum, lower case."""
    combined = [*data, *_create_checksum(hrp, data, encoding)]
    return hrp + "1" + "".join(CHARSET[d] for d in combined)


def _shown(text: str) -> str:
    return repr(shorten(text, 24))


def bech32_decode(text: str) -> tuple[str, tuple[int, ...], Encoding]:
    """The human-readable part, the 5-bit data (checksum removed) and which checksum matched.

    Refuses characters outside US-ASCII 33..126 (control characters and spaces among them),
    mixed case, more than 90 characters, no ``1`` separator, an empty human-readable part, data
    characters outside the bech32 alphabet, fewer than 6 checksum characters and a checksum that
    is neither bech32 nor bech32m.
    """
    shown = _shown(text)
    if len(text) > MAX_BECH32_LENGTH:
        raise InvalidInput(f"address {shown} is {len(text)} characters; a bech32 address has at most 90")
    for position, char in enumerate(text):
        if not 33 <= ord(char) <= 126:
            kind = "control character" if ord(char) < 32 or 127 <= ord(char) < 160 else "character"
            raise InvalidInput(
                f"address {shown} has a {kind} {char!r} at position {position}; an address is "
                "printable ASCII only (no spaces)"
            )
    if text.lower() != text and text.upper() != text:
        raise InvalidInput(f"address {shown} mixes upper and lower case; write it in one case (BIP-173)")
    lowered = text.lower()
    separator = lowered.rfind("1")
    if separator < 1:
        raise InvalidInput(
            f"address {shown} has no human-readable part before a '1' separator "
            "(a segwit address starts bc1, tb1 or bcrt1)"
        )
    if separator + 7 > len(lowered):
        raise InvalidInput(f"address {shown} is too short: its checksum needs 6 characters after the '1'")
    hrp, rest = lowered[:separator], lowered[separator + 1 :]
    bad = [c for c in rest if c not in _CHARSET_VALUE]
    if bad:
        raise InvalidInput(
            f"address {shown} has {bad[0]!r}, which is not a bech32 character (the alphabet has no "
            "1, b, i or o)"
        )
    data = [_CHARSET_VALUE[c] for c in rest]
    residue = _polymod([*_hrp_expand(hrp), *data])
    for encoding in Encoding:
        if residue == encoding.value:
            return hrp, tuple(data[:-6]), encoding
    raise InvalidInput(f"address {shown} has a bad checksum: a character is mistyped or missing")


def _convert_bits(data: Sequence[int], from_bits: int, to_bits: int, pad: bool) -> list[int] | None:
    acc, bits, out = 0, 0, []
    max_value = (1 << to_bits) - 1
    for value in data:
        acc = (acc << from_bits) | value
        bits += from_bits
        while bits >= to_bits:
            bits -= to_bits
            out.append((acc >> bits) & max_value)
    if pad:
        if bits:
            out.append((acc << (to_bits - bits)) & max_value)
    elif bits >= from_bits or ((acc << (to_bits - bits)) & max_value):
        return None
    return out


def _network_of_hrp(hrp: str) -> str:
    names = {n.hrp: n for n in Network}
    if hrp == Network.MAINNET.hrp:
        return "mainnet"
    if hrp == Network.REGTEST.hrp:
        return "regtest"
    if hrp in names:
        return "a test network (testnet, testnet4 or signet)"
    return "no Bitcoin network"


def network_name(network: Network) -> str:
    """How messages name a network: ``mainnet``, ``testnet``, ``testnet4``, ``signet``, ``regtest``."""
    return {"main": "mainnet", "test": "testnet"}.get(network.chain, network.chain)


def _expected(network: Network) -> str:
    return f"{network_name(network)} addresses start {network.hrp}1 (segwit) or " + (
        "1 or 3 (base58)" if network.is_mainnet else "m, n or 2 (base58)"
    )


def segwit_decode(address: str, network: Network) -> tuple[int, bytes]:
    """The witness version and program of a segwit address on ``network`` (BIP-173/350 rules)."""
    hrp, data, encoding = bech32_decode(address)
    shown = _shown(address)
    if hrp != network.hrp:
        raise InvalidInput(
            f"address {shown} is for {_network_of_hrp(hrp)}, prefix {hrp}1, not "
            f"{network_name(network)} as expected: {_expected(network)}"
        )
    if not data:
        raise InvalidInput(f"address {shown} has no witness version or program")
    version = data[0]
    if version > 16:
        raise InvalidInput(f"address {shown} has witness version {version}; versions run 0..16")
    program = _convert_bits(data[1:], 5, 8, pad=False)
    if program is None:
        raise InvalidInput(f"address {shown} has invalid padding in its witness program")
    if not 2 <= len(program) <= 40:
        raise InvalidInput(
            f"address {shown} has a {len(program)}-byte witness program; it must be 2..40 bytes"
        )
    if version == 0 and len(program) not in (20, 32):
        raise InvalidInput(
            f"address {shown} is witness version 0 with a {len(program)}-byte program; version 0 "
            "programs are 20 (P2WPKH) or 32 (P2WSH) bytes"
        )
    wanted = Encoding.BECH32 if version == 0 else Encoding.BECH32M
    if encoding is not wanted:
        raise InvalidInput(
            f"address {shown} is witness version {version} with a {encoding.name.lower()} checksum; "
            f"version {version} uses {wanted.name.lower()} (BIP-350)"
        )
    return version, bytes(program)


def b58decode_check(text: str) -> bytes:
    """The payload (version byte and data) of base58check ``text``; a bad checksum is refused."""
    shown = _shown(text)
    number = 0
    for position, char in enumerate(text):
        value = _B58_VALUE.get(char)
        if value is None:
            raise InvalidInput(
                f"address {shown} has {char!r} at position {position}, which is not a base58 "
                "character (0, O, I and l are not used)"
            )
        number = number * 58 + value
    body = number.to_bytes((number.bit_length() + 7) // 8, "big")
    raw = bytes(len(text) - len(text.lstrip("1"))) + body
    if len(raw) < 5:
        raise InvalidInput(f"address {shown} is too short for a base58check address")
    payload, checksum = raw[:-4], raw[-4:]
    if hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4] != checksum:
        raise InvalidInput(f"address {shown} has a bad checksum: a character is mistyped or missing")
    return payload


def b58encode_check(payload: bytes) -> str:
    raw = payload + hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4]
    number = int.from_bytes(raw, "big")
    out = []
    while number:
        number, remainder = divmod(number, 58)
        out.append(B58_ALPHABET[remainder])
    zeros = len(raw) - len(raw.lstrip(b"\0"))
    return "1" * zeros + "".join(reversed(out))


def _versions(network: Network) -> tuple[int, int]:
    return _MAIN_VERSIONS if network.is_mainnet else _TEST_VERSIONS


def base58_script(address: str, network: Network) -> bytes:
    """The output script of a base58check P2PKH or P2SH address on ``network``."""
    payload = b58decode_check(address)
    shown = _shown(address)
    if len(payload) != 21:
        raise InvalidInput(
            f"address {shown} holds {len(payload) - 1} bytes after its version; P2PKH and P2SH hold 20"
        )
    version, digest = payload[0], payload[1:]
    p2pkh, p2sh = _versions(network)
    if version == p2pkh:
        return bytes((OP_DUP, OP_HASH160, 20)) + digest + bytes((OP_EQUALVERIFY, OP_CHECKSIG))
    if version == p2sh:
        return bytes((OP_HASH160, 20)) + digest + bytes((OP_EQUAL,))
    if version in _MAIN_VERSIONS + _TEST_VERSIONS:
        other = "mainnet" if version in _MAIN_VERSIONS else "a test network"
        raise InvalidInput(
            f"address {shown} is for {other}, version byte 0x{version:02x}, not "
            f"{network_name(network)} as expected: {_expected(network)}"
        )
    raise InvalidInput(
        f"address {shown} has version byte 0x{version:02x}, which is no Bitcoin address type; "
        f"{_expected(network)}"
    )


def address_script(address: str, network: Network) -> bytes:
    """The output script (scriptPubKey) that ``address`` pays on ``network``.

    Segwit addresses are recognised by their human-readable part ending in ``1``; anything else
    is read as base58check. Wrong network or malformed input is :class:`InvalidInput`.
    """
    if not isinstance(address, str):
        raise InvalidInput(f"an address must be text, got {type(address).__name__}")
    if not address:
        raise InvalidInput(f"the address is empty; {_expected(network)}")
    if len(address) > MAX_ADDRESS_LENGTH:
        raise InvalidInput(
            f"address {_shown(address)} is {len(address)} characters; an address has at most "
            f"{MAX_ADDRESS_LENGTH}"
        )
    for position, char in enumerate(address):
        if not 33 <= ord(char) <= 126:
            kind = "control character" if ord(char) < 32 or 127 <= ord(char) < 160 else "character"
            raise InvalidInput(
                f"address {_shown(address)} has a {kind} {char!r} at position {position}; an address "
                "is printable ASCII only (no spaces)"
            )
    if _looks_segwit(address):
        version, program = segwit_decode(address, network)
        return bytes((0x50 + version if version else 0, len(program))) + program
    return base58_script(address, network)


_SEGWIT_SHAPE = re.compile(r"[!-~]{1,83}1[" + CHARSET + r"]{6,}")


def _looks_segwit(address: str) -> bool:
    """Read as segwit: a known human-readable part (any network's) before the last ``1``, or text
    that is bech32 in shape (so a foreign prefix is named as such); anything else is base58."""
    lowered = address.lower()
    separator = lowered.rfind("1")
    if separator >= 1 and lowered[:separator] in {n.hrp for n in Network}:
        return True
    return _SEGWIT_SHAPE.fullmatch(lowered) is not None and any(c not in _B58_VALUE for c in address)


def script_kind(script: bytes) -> str | None:
    """``p2pkh``, ``p2sh``, ``p2wpkh``, ``p2wsh`` or ``p2tr`` for those standard output scripts,
    ``None`` for anything else (bare scripts, future witness versions, OP_RETURN)."""
    if (
        len(script) == 25
        and script[:3] == bytes((OP_DUP, OP_HASH160, 20))
        and script[23:] == bytes((OP_EQUALVERIFY, OP_CHECKSIG))
    ):
        return "p2pkh"
    if len(script) == 23 and script[:2] == bytes((OP_HASH160, 20)) and script[22] == OP_EQUAL:
        return "p2sh"
    if len(script) == 22 and script[:2] == b"\x00\x14":
        return "p2wpkh"
    if len(script) == 34 and script[:2] == b"\x00\x20":
        return "p2wsh"
    if len(script) == 34 and script[:2] == b"\x51\x20":
        return "p2tr"
    return None


def _witness(script: bytes) -> tuple[int, bytes] | None:
    if not 4 <= len(script) <= 42 or script[1] != len(script) - 2:
        return None
    if script[0] == 0:
        return 0, script[2:]
    if 0x51 <= script[0] <= 0x60:
        return script[0] - 0x50, script[2:]
    return None


def script_address(script: bytes, network: Network) -> str:
    """The address of an output script on ``network``: base58check for P2PKH and P2SH, bech32 for
    witness version 0, bech32m for versions 1..16. Other scripts have no address (InvalidInput)."""
    kind = script_kind(script)
    p2pkh, p2sh = _versions(network)
    if kind == "p2pkh":
        return b58encode_check(bytes((p2pkh,)) + script[3:23])
    if kind == "p2sh":
        return b58encode_check(bytes((p2sh,)) + script[2:22])
    witness = _witness(script)
    if witness is None or (witness[0] == 0 and len(witness[1]) not in (20, 32)):
        raise InvalidInput(f"output script {shorten(script.hex(), 40)} has no address")
    version, program = witness
    data = [version, *(_convert_bits(program, 8, 5, pad=True) or [])]
    return bech32_encode(network.hrp, data, Encoding.BECH32 if version == 0 else Encoding.BECH32M)
