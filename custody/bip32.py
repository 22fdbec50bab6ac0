"""BIP-32 public derivation (``CKDpub``) on libsecp256k1 through ``coincurve``.

:class:`PublicNode` is a public key and chain code; :meth:`PublicNode.child` derives a
non-hardened child. Vaults derive each key's branch node once and then one child per address, so
the parsed curve point is kept with the node. bip-utils still parses and validates the extended
keys themselves (:class:`~custody.keys.ExtendedKey`); this module only steps down from them.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field

from coincurve import PublicKey

from custody.errors import InvalidInput
from custody.keys import HARDENED, ExtendedKey

SECP256K1_ORDER = 0xFFFFFFFF_FFFFFFFF_FFFFFFFF_FFFFFFFE_BAAEDCE6_AF48A03B_BFD25E8C_D0364141


@dataclass(frozen=True, slots=True)
class PublicNode:
    """A BIP-32 public node: compressed public key and chain code (no depth, no fingerprint).

    The parsed curve point is kept alongside (libsecp256k1's 64-byte form) so that deriving many
    children of one node parses its key once.
    """

    pubkey: bytes
    chain_code: bytes
    _point: PublicKey = field(init=False, repr=False, compare=False, hash=False)

    def __post_init__(self) -> None:
        if len(self.chain_code) != 32:
            raise InvalidInput(f"BIP-32 chain code must be 32 bytes, got {len(self.chain_code)}")
        try:
            point = PublicKey(self.pubkey)
        except ValueError as exc:
            raise InvalidInput(f"public key {self.pubkey.hex()} is not a point on secp256k1 ({exc})") from exc
        object.__setattr__(self, "_point", point)

    @classmethod
    def of(cls, key: ExtendedKey) -> PublicNode:
        """The node of a parsed (hence validated) extended public key."""
        node = key.node()
        return cls(bytes(node.PublicKey().RawCompressed().ToBytes()), bytes(node.ChainCode().ToBytes()))

    def child(self, index: int) -> PublicNode:
        """``CKDpub(self, index)``."""
        return PublicNode(*self._derive(index))

    def child_pubkey(self, index: int) -> bytes:
        """The compressed public key of ``CKDpub(self, index)`` (the chain code is dropped)."""
        return self._derive(index)[0]

    def _derive(self, index: int) -> tuple[bytes, bytes]:
        if isinstance(index, bool) or not 0 <= index < HARDENED:
            raise InvalidInput(
                f"cannot derive child {index} from a public key: only non-hardened indices "
                "0..2^31-1 can be; hardened steps belong in the key origin"
            )
        digest = hmac.digest(self.chain_code, self.pubkey + index.to_bytes(4, "big"), "sha512")
        tweak = digest[:32]
        if int.from_bytes(tweak, "big") >= SECP256K1_ORDER:
            raise InvalidInput(
                f"BIP-32 child {index} of public key {self.pubkey.hex()} is invalid (IL >= n); "
                "use the next index"
            )
        try:
            child = PublicKey.combine_keys([self._point, PublicKey.from_secret(tweak)])
        except ValueError as exc:  # IL = 0, or point(IL) + K is the point at infinity
            raise InvalidInput(
                f"BIP-32 child {index} of public key {self.pubkey.hex()} is invalid ({exc}); "
                "use the next index"
            ) from exc
        return child.format(compressed=True), digest[32:]


def ckd_pub(pubkey: bytes, chain_code: bytes, index: int) -> tuple[bytes, bytes]:
    """BIP-32 ``CKDpub``: the (compressed public key, chain code) of non-hardened child ``index``.

    ``I = HMAC-SHA512(chain_code, serP(K) || ser32(i))``; the child key is ``point(IL) + K`` and its
    chain code ``IR``. BIP-32 makes ``IL >= n`` or a child at infinity invalid (probability below
    2^-127); we raise :class:`InvalidInput` rather than skip to the next index, as bitcoind fails
    to derive such a child too.
    """
    child = PublicNode(pubkey, chain_code).child(index)
    return child.pubkey, child.chain_code
