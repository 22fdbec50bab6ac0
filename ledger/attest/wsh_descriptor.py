"""A vault's ``wsh(sortedmulti(...))`` descriptor read with the standard library and ``coincurve``.

The offline verifier of proofs of control must rebuild each proven address's witness script from
the vault's descriptor without the service's dependencies (``bip-utils``, python-bitcoinlib), so
this module repeats, small and strict, what :mod:`custody.descriptor` does for the one shape our
vaults have: BIP-380 checksum (required), ``[fingerprint/path]xpub`` keys (Base58Check), the
``/<0;1>/*`` or ``/N/*`` suffix, BIP-32 public derivation (``CKDpub``) and BIP-67 key order. The
unit tests hold it equal to :class:`custody.descriptor.MultisigDescriptor`.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from dataclasses import dataclass

from coincurve import PublicKey

from custody.errors import InvalidInput

_B58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_XPUB, _TPUB = bytes.fromhex("0488b21e"), bytes.fromhex("043587cf")
_ORDER = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141
_HARDENED = 0x80000000
_CHECKSUM_INPUT = (
    "0123456789()[],'/*abcdefgh@:$%{}IJKLMNOPQRSTUVWXYZ&+-.;<=>?!^_|~ijklmnopqrstuvwxyzABCDEFGH`#\"\\ "
)
_CHECKSUM_CHARS = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_GENERATOR = (0xF5DEE51989, 0xA9FDCA3312, 0x1BAB10E32D, 0x3706B1677A, 0x644D626FFD)
_WSH_RE = re.compile(r"^wsh\(sortedmulti\(([0-9]+),([^()]*)\)\)#([a-z0-9]{8})$")
_KEY_RE = re.compile(r"^\[([0-9a-f]{8})((?:/[0-9]+[h']?)*)\]([1-9A-HJ-NP-Za-km-z]+)/(<0;1>|[0-9]+)/\*$")


def descriptor_checksum(body: str) -> str:
    """BIP-380 checksum of a descriptor given without ``#checksum``."""
    symbols: list[int] = []
    groups: list[int] = []
    for char in body:
        value = _CHECKSUM_INPUT.find(char)
        if value < 0:
            raise InvalidInput(f"descriptor has character {char!r} outside the BIP-380 character set")
        symbols.append(value & 31)
        groups.append(value >> 5)
        if len(groups) == 3:
            symbols.append(groups[0] * 9 + groups[1] * 3 + groups[2])
            groups = []
    if groups:
        symbols.append(groups[0] * 3 + groups[1] if len(groups) == 2 else groups[0])
    chk = 1
    for value in [*symbols, *([0] * 8)]:
        top = chk >> 35
        chk = ((chk & 0x7_FFFF_FFFF) << 5) ^ value
        for i, generator in enumerate(_GENERATOR):
            if (top >> i) & 1:
                chk ^= generator
    chk ^= 1
    return "".join(_CHECKSUM_CHARS[(chk >> (5 * (7 - i))) & 31] for i in range(8))


def _base58check(text: str) -> bytes:
    number = 0
    for char in text:
        number = number * 58 + _B58.index(char)
    raw = number.to_bytes((number.bit_length() + 7) // 8, "big")
    raw = b"\x00" * (len(text) - len(text.lstrip("1"))) + raw
    if len(raw) < 5:
        raise InvalidInput(f"extended key {text[:12]}... is too short")
    payload, check = raw[:-4], raw[-4:]
    if hashlib.sha256(hashlib.sha256(payload).digest()).digest()[:4] != check:
        raise InvalidInput(f"extended key {text[:12]}... fails its Base58Check checksum")
    return payload


def extended_key_bytes(text: str) -> bytes:
    """The 78-byte serialization of an ``xpub``/``tpub`` (Base58Check decoded and checked)."""
    if not text or any(c not in _B58 for c in text):
        raise InvalidInput(f"extended key {text[:12]}... is not Base58")
    raw = _base58check(text)
    if len(raw) != 78 or raw[:4] not in (_XPUB, _TPUB):
        raise InvalidInput(f"extended key {text[:12]}... is not an xpub or tpub")
    return raw


@dataclass(frozen=True, slots=True)
class AccountKey:
    """One vault key: its origin, compressed public key and chain code."""

    fingerprint: bytes
    path: tuple[int, ...]
    pubkey: bytes
    chain_code: bytes
    mainnet: bool

    def child(self, branch: int, index: int) -> bytes:
        """The compressed public key at ``branch/index`` below this account key (``CKDpub`` twice)."""
        pubkey, chain_code = self.pubkey, self.chain_code
        for step in (branch, index):
            if not 0 <= step < _HARDENED:
                raise InvalidInput(f"derivation step {step} must be non-hardened (0..2^31-1)")
            digest = hmac.digest(chain_code, pubkey + step.to_bytes(4, "big"), "sha512")
            if int.from_bytes(digest[:32], "big") >= _ORDER:
                raise InvalidInput(f"BIP-32 child {step} is invalid (IL >= n)")
            point = PublicKey.combine_keys([PublicKey(pubkey), PublicKey.from_secret(digest[:32])])
            pubkey, chain_code = point.format(compressed=True), digest[32:]
        return pubkey


def _account_key(text: str) -> tuple[AccountKey, str]:
    m = _KEY_RE.match(text)
    if m is None:
        raise InvalidInput(f"key {text[:30]}... is not [fingerprint/path]xpub/<0;1>/* or /N/*")
    fingerprint, path_text, encoded, branches = m.groups()
    path = tuple(
        int(step.rstrip("h'")) + (_HARDENED if step[-1] in "h'" else 0) for step in path_text.split("/")[1:]
    )
    raw = extended_key_bytes(encoded)
    if raw[45] not in (2, 3):
        raise InvalidInput(f"extended key {encoded[:12]}... does not hold a compressed public key")
    PublicKey(raw[45:78])  # on the curve, or coincurve raises ValueError
    key = AccountKey(bytes.fromhex(fingerprint), path, raw[45:78], raw[13:45], raw[:4] == _XPUB)
    return key, branches


@dataclass(frozen=True, slots=True)
class WshMultisig:
    """``wsh(sortedmulti(threshold, keys...))`` with its branches: ``(0, 1)`` or one branch."""

    threshold: int
    keys: tuple[AccountKey, ...]
    branches: tuple[int, ...]

    @property
    def mainnet(self) -> bool:
        return self.keys[0].mainnet

    def pubkeys(self, branch: int, index: int) -> tuple[bytes, ...]:
        """The keys at ``branch/index`` in descriptor order (not sorted)."""
        if branch not in self.branches:
            raise InvalidInput(f"branch {branch} is not one of the descriptor's {self.branches}")
        return tuple(key.child(branch, index) for key in self.keys)

    def witness_script(self, branch: int, index: int) -> bytes:
        """``OP_m <keys sorted by bytes> OP_n OP_CHECKMULTISIG``."""
        keys = sorted(self.pubkeys(branch, index))
        pushes = b"".join(b"\x21" + k for k in keys)
        return bytes((0x50 + self.threshold,)) + pushes + bytes((0x50 + len(keys), 0xAE))


def parse(text: str) -> WshMultisig:
    """Parse ``wsh(sortedmulti(m,[fp/path]xpub/<0;1>/*,...))#checksum`` (the checksum is required)."""
    stripped = text.strip()
    m = _WSH_RE.match(stripped)
    if m is None:
        raise InvalidInput(f"descriptor {stripped[:40]}... is not wsh(sortedmulti(m,KEY,...))#checksum")
    body = stripped.rpartition("#")[0]
    if descriptor_checksum(body) != m[3]:
        raise InvalidInput(f"descriptor checksum #{m[3]} does not match its text")
    parsed = [_account_key(k) for k in m[2].split(",")]
    suffixes = {suffix for _, suffix in parsed}
    if len(suffixes) != 1:
        raise InvalidInput("descriptor keys use different branch suffixes")
    suffix = suffixes.pop()
    branches = (0, 1) if suffix == "<0;1>" else (int(suffix),)
    keys = tuple(k for k, _ in parsed)
    threshold = int(m[1])
    if not 1 <= threshold <= len(keys) <= 16 or len({k.mainnet for k in keys}) != 1:
        raise InvalidInput(f"sortedmulti({threshold}, {len(keys)} keys) is not a vault descriptor")
    return WshMultisig(threshold, keys, branches)
