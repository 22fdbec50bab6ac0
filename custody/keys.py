"""Extended public keys with their origin: ``[d34db33f/48h/1h/0h/2h]tpub...``.

A vault key is a BIP-32 extended *public* key plus where it came from (the master key fingerprint and
the hardened path from the master to it). Private keys never enter this service: ``xprv``/``tprv``
are refused with a clear error. Parsing validates with bip-utils (Base58Check checksum, length,
point on the curve), and ``str()`` gives the canonical text back with ``h`` as hardened marker.

As strict as Bitcoin Core's descriptor parser (``src/script/descriptor.cpp``, ``util/bip32.cpp``
``ParseKeyPathElement``): hardened steps are marked ``h`` or ``'`` (``H`` is refused), and no
whitespace inside a key. Stricter than Core where signers rely on it: an origin must agree with its
key (signing devices find their keys by origin), see :class:`ExtendedKey`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bip_utils import Base58Decoder, Bip32KeyNetVersions, Bip32Secp256k1

from custody.errors import InvalidInput
from custody.network import (
    TPRV_VERSION,
    TPUB_VERSION,
    XPRV_VERSION,
    XPUB_VERSION,
    Network,
    NetworkKind,
)

HARDENED = 0x8000_0000

_ORIGIN_RE = re.compile(r"^\[(?P<origin>[^\[\]]*)\](?P<rest>[^\[\]]*)$", re.DOTALL)
_STEP_RE = re.compile(r"(?P<num>[0-9]+)(?P<hard>[h']?)")
_EXTENDED_KEY_LENGTH = 78
MAX_HOLDER_LENGTH = 100
# What may not appear in a name printed to a terminal: C0 and C1 controls, DEL, line and paragraph
# separators, bidirectional overrides and isolates (the same set as ledger.journal.entry's text check).
_CONTROL_RE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def shorten(text: str, keep: int = 24) -> str:
    """``text`` cut to about ``keep`` characters for error messages (keys are long)."""
    return text if len(text) <= keep + 3 else f"{text[: keep - 8]}...{text[-8:]}"


def refuse_whitespace(text: str, what: str) -> None:
    """Raise :class:`InvalidInput` naming the first whitespace character inside ``text``.

    Bitcoin Core refuses whitespace inside descriptors and around their keys; a stray space or
    line break usually means the text was wrapped or pasted in pieces.
    """
    for position, char in enumerate(text):
        if char.isspace():
            around = text[max(0, position - 12) : position + 12]
            raise InvalidInput(
                f"{what} has whitespace ({char!r}) at position {position}, near {around!r}; "
                "Bitcoin Core refuses whitespace inside a descriptor or key: remove it "
                "(copy the text again in one piece if it was wrapped)"
            )


def parse_path(text: str) -> tuple[int, ...]:
    """Parse ``48h/1h/0'/2`` (no leading ``m/``) into BIP-32 indices with the hardened bit.

    Hardened steps are marked ``h`` or ``'``, as Bitcoin Core accepts; ``H`` is refused.
    """
    if text == "":
        return ()
    path: list[int] = []
    for step in text.split("/"):
        m = _STEP_RE.fullmatch(step)
        if m is None and re.fullmatch(r"[0-9]+H", step):
            raise InvalidInput(
                f"derivation step {step!r} in {shorten(text, 40)!r} marks hardened with 'H', "
                f"which Bitcoin Core refuses (it takes only h or '); write {step[:-1]}h"
            )
        if m is None:
            raise InvalidInput(
                f"derivation step {step!r} in {shorten(text, 40)!r} is not a number with an "
                "optional hardened marker h or '; write e.g. 48h/1h/0h/2h"
            )
        index = int(m["num"])
        if index >= HARDENED:
            raise InvalidInput(
                f"derivation step {step!r} is out of range; indices are below 2^31 "
                "(mark hardened steps with h instead of adding 2^31)"
            )
        path.append(index | HARDENED if m["hard"] else index)
    return tuple(path)


def format_path(path: tuple[int, ...]) -> str:
    """``(48|H, 1|H, 0|H, 2|H)`` → ``"48h/1h/0h/2h"``."""
    return "/".join(f"{i & ~HARDENED}h" if i & HARDENED else str(i) for i in path)


@dataclass(frozen=True, slots=True)
class KeyOrigin:
    """The master key fingerprint (4 bytes) and the path from the master to the key."""

    fingerprint: bytes
    path: tuple[int, ...]

    def __post_init__(self) -> None:
        if not isinstance(self.fingerprint, bytes) or len(self.fingerprint) != 4:
            raise InvalidInput(
                f"key origin fingerprint must be 4 bytes, got {self.fingerprint!r}; "
                "write it as 8 hex digits, e.g. [d34db33f/48h/1h/0h/2h]"
            )
        for index in self.path:
            if not 0 <= index < 2**32:
                raise InvalidInput(f"derivation index {index} is outside 0..2^32-1")

    @classmethod
    def parse(cls, text: str) -> KeyOrigin:
        """Parse the inside of the brackets: ``d34db33f/48h/1h/0h/2h``."""
        fp_text, _, path_text = text.partition("/")
        if not re.fullmatch(r"[0-9a-fA-F]{8}", fp_text):
            raise InvalidInput(
                f"key origin fingerprint {fp_text!r} is not 8 hex digits; "
                "write the master key fingerprint as e.g. [d34db33f/48h/1h/0h/2h]"
            )
        if text.endswith("/"):
            raise InvalidInput(f"key origin [{text}] ends with '/'; remove the trailing slash")
        return cls(bytes.fromhex(fp_text), parse_path(path_text))

    def __str__(self) -> str:
        path = format_path(self.path)
        return self.fingerprint.hex() + (f"/{path}" if path else "")


def _decode_extended(text: str) -> bytes:
    """Base58Check-decode an extended key, mapping every failure to :class:`InvalidInput`."""
    try:
        raw = bytes(Base58Decoder.CheckDecode(text))
    except Exception as exc:  # bip-utils raises ValueError or its own checksum error
        raise InvalidInput(
            f"extended key {shorten(text)!r} is not valid Base58Check ({exc}); "
            "copy the xpub/tpub again from the signing device, a character is wrong or missing"
        ) from exc
    if len(raw) != _EXTENDED_KEY_LENGTH:
        raise InvalidInput(
            f"extended key {shorten(text)!r} decodes to {len(raw)} bytes, not 78; "
            "it is not a BIP-32 extended key, export the xpub/tpub again"
        )
    return raw


@dataclass(frozen=True, slots=True)
class ExtendedKey:
    """A BIP-32 extended public key (``xpub`` or ``tpub``) with optional origin information.

    An origin must agree with the key: as many steps as the key's depth, the last step the key's
    child number, and at depth 1 (0) the fingerprint of the key's parent (of the key itself).
    """

    xpub: str
    origin: KeyOrigin | None = None

    def __post_init__(self) -> None:
        raw = _decode_extended(self.xpub)
        version = raw[:4]
        if version in (XPRV_VERSION, TPRV_VERSION):
            raise InvalidInput(
                f"{shorten(self.xpub)!r} is an extended PRIVATE key; private keys never enter "
                "this service: export the matching xpub/tpub from the signing device instead"
            )
        if version not in (XPUB_VERSION, TPUB_VERSION):
            raise InvalidInput(
                f"extended key {shorten(self.xpub)!r} has version bytes {version.hex()}, "
                "not xpub or tpub; convert SLIP-132 keys (Zpub, Vpub, ...) to xpub/tpub first"
            )
        node = self.node()  # bip-utils validates depth, fingerprint and that the point is on the curve
        if self.origin is not None:
            self._check_origin(raw, bytes(node.FingerPrint().ToBytes()))

    def _check_origin(self, raw: bytes, own_fingerprint: bytes) -> None:
        """Raise :class:`InvalidInput` unless the origin agrees with the key's serialized header.

        The origin path is the path from the master key to this key, so its length is the key's
        depth and its last step the key's child number; at depth 1 the parent is the master key, so
        the origin fingerprint is the key's parent fingerprint; at depth 0 it is the key's own.
        Signing devices find their key by origin: an origin that does not match its key makes a
        vault that nobody can sign for.
        """
        origin = self.origin
        if origin is None:
            return
        depth, parent_fingerprint = raw[4], raw[5:9]
        child_number = int.from_bytes(raw[9:13], "big")
        key = shorten(self.xpub)
        again = "export the key and its origin together again from the signing device"
        if len(origin.path) != depth:
            raise InvalidInput(
                f"key origin [{origin}] has {len(origin.path)} derivation step(s) but key {key!r} "
                f"is at depth {depth}: the origin must be the whole path from the master key to "
                f"this key (a BIP-48 P2WSH account key has 4: 48h/<coin>h/<account>h/2h); {again}"
            )
        if depth == 0:
            if origin.fingerprint != own_fingerprint:
                raise InvalidInput(
                    f"key origin [{origin}] names fingerprint {origin.fingerprint.hex()} but key "
                    f"{key!r} is a master key with fingerprint {own_fingerprint.hex()}; "
                    f"write [{own_fingerprint.hex()}] or {again}"
                )
            return
        if origin.path[-1] != child_number:
            raise InvalidInput(
                f"key origin [{origin}] ends in step {format_path(origin.path[-1:])} but key "
                f"{key!r} is child {format_path((child_number,))} of its parent: origin and key "
                f"do not belong together; {again}"
            )
        if depth == 1 and origin.fingerprint != parent_fingerprint:
            raise InvalidInput(
                f"key origin [{origin}] names master fingerprint {origin.fingerprint.hex()} but key "
                f"{key!r} at depth 1 was derived from master {parent_fingerprint.hex()}: origin "
                f"and key do not belong together; {again}"
            )

    @classmethod
    def parse(cls, text: str) -> ExtendedKey:
        """Parse ``[fingerprint/path]xpub`` or a bare ``xpub``/``tpub``; ``'`` or ``h`` mark hardened.

        Whitespace around the key is ignored, whitespace inside it refused.
        """
        raw = text.strip()
        refuse_whitespace(raw, f"key {shorten(raw, 40)!r}")
        origin: KeyOrigin | None = None
        if raw.startswith("["):
            m = _ORIGIN_RE.match(raw)
            if m is None:
                raise InvalidInput(
                    f"key {shorten(raw, 40)!r} has an unterminated or repeated key origin; "
                    "write [fingerprint/path] once, followed by the xpub"
                )
            origin = KeyOrigin.parse(m["origin"])
            raw = m["rest"]
        if raw == "":
            raise InvalidInput(f"key origin [{origin}] is not followed by an xpub/tpub")
        return cls(raw, origin)

    def __str__(self) -> str:
        return f"[{self.origin}]{self.xpub}" if self.origin is not None else self.xpub

    @property
    def is_mainnet(self) -> bool:
        """True for an ``xpub`` (mainnet), False for a ``tpub`` (any test network)."""
        return _decode_extended(self.xpub)[:4] == XPUB_VERSION

    @property
    def network_kind(self) -> NetworkKind:
        return "mainnet" if self.is_mainnet else "test"

    def check_network(self, network: Network) -> None:
        """Raise :class:`InvalidInput` unless this key may be used on ``network``."""
        if self.is_mainnet != network.is_mainnet:
            flavour = "a mainnet xpub" if self.is_mainnet else "a test-network tpub"
            wanted = "xpub" if network.is_mainnet else "tpub"
            raise InvalidInput(
                f"key {shorten(str(self), 40)!r} is {flavour} but the node is on {network.chain}; "
                f"use the {wanted} exported for {network.chain}"
            )

    def node(self) -> Bip32Secp256k1:
        """The bip-utils BIP-32 node of this key (public only), for child derivation."""
        version = _decode_extended(self.xpub)[:4]
        private = XPRV_VERSION if version == XPUB_VERSION else TPRV_VERSION
        try:
            return Bip32Secp256k1.FromExtendedKey(self.xpub, Bip32KeyNetVersions(version, private))
        except Exception as exc:  # Bip32KeyError, ValueError: bad point, depth or version
            raise InvalidInput(
                f"extended key {shorten(self.xpub)!r} is not a valid BIP-32 public key ({exc}); "
                "export the xpub/tpub again from the signing device"
            ) from exc

    @property
    def material(self) -> bytes:
        """The chain code and public key (65 bytes): every address derived from this key depends
        on them and nothing else, so two keys with the same material are one key whatever their
        version, depth, parent fingerprint or child number say."""
        return _decode_extended(self.xpub)[13:]

    @property
    def pubkey(self) -> bytes:
        """The 33-byte compressed public key of this node."""
        return bytes(self.node().PublicKey().RawCompressed().ToBytes())

    def derive_pubkey(self, path: tuple[int, ...]) -> bytes:
        """Compressed public key of a non-hardened child path (BIP-32 public derivation)."""
        node = self.node()
        for index in path:
            if index & HARDENED:
                raise InvalidInput(
                    f"cannot derive hardened step {format_path((index,))} from public key "
                    f"{shorten(self.xpub)!r}; hardened steps belong in the key origin"
                )
            node = node.ChildKey(index)
        return bytes(node.PublicKey().RawCompressed().ToBytes())


@dataclass(frozen=True, slots=True)
class HeldKey:
    """A vault key and the person (or device custodian) who holds its private half."""

    holder: str
    key: ExtendedKey

    def __post_init__(self) -> None:
        if (
            not self.holder
            or self.holder != self.holder.strip()
            or "=" in self.holder
            or len(self.holder) > MAX_HOLDER_LENGTH
        ):
            raise InvalidInput(
                f"key holder name {shorten(self.holder, 40)!r} must be 1-{MAX_HOLDER_LENGTH} "
                "characters, without surrounding spaces or '='; write HOLDER=[fingerprint/path]xpub"
            )
        control = _CONTROL_RE.search(self.holder)
        if control is not None:
            raise InvalidInput(
                f"key holder name {shorten(self.holder, 40)!r} contains the control character "
                f"U+{ord(control.group()):04X}; holder names are printed to terminals and reports: "
                "use letters, digits, spaces and punctuation only"
            )

    def __str__(self) -> str:
        return f"{self.holder}={self.key}"


def parse_held_key(text: str) -> HeldKey:
    """Parse ``HOLDER=[fingerprint/path]tpub...`` (as given on the command line)."""
    holder, sep, key = text.partition("=")
    if not sep:
        raise InvalidInput(
            f"held key {shorten(text, 40)!r} has no holder; write HOLDER=[fingerprint/path]xpub"
        )
    return HeldKey(holder.strip(), ExtendedKey.parse(key))
