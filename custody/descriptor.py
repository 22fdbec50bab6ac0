"""Output script descriptors of multisig vaults: ``wsh(sortedmulti(m,KEY/<0;1>/*,...))#checksum``.

- BIP-380 checksums: :func:`descriptor_checksum`, :func:`add_checksum`, :func:`split_checksum`.
- :class:`MultisigDescriptor` parses and prints (``str()`` round-trips, with checksum) the one
  descriptor shape our vaults use: P2WSH ``sortedmulti`` over BIP-32 account keys, each followed by
  a receive/change branch and ``/*``; either the BIP-389 multipath ``/<0;1>/*`` or a single branch
  (``/0/*``). ``receive()``/``change()`` give the single-branch descriptors that ``importdescriptors``
  takes, and addresses are derived locally so they can be compared one-for-one with bitcoind's
  ``deriveaddresses``.
- Local derivation is BIP-32 ``CKDpub`` (:func:`ckd_pub`) on libsecp256k1 through ``coincurve``,
  with each key's branch node cached, and a table-driven BIP-173 encoder
  (:func:`segwit_v0_address`): 10,000 addresses of a 2-of-3 take about half the time bitcoind's
  ``deriveaddresses`` takes (``python -m bench.derive_bench``). bip-utils still parses and
  validates the xpubs (:class:`~custody.keys.ExtendedKey`).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from bitcoin.core.script import OP_0, OP_CHECKMULTISIG, CScript
from coincurve import PublicKey

from custody.errors import InvalidInput
from custody.keys import HARDENED, ExtendedKey, shorten
from custody.network import Network, NetworkKind

# --- BIP-380 checksum -----------------------------------------------------------------------------

INPUT_CHARSET = (
    "0123456789()[],'/*abcdefgh@:$%{}IJKLMNOPQRSTUVWXYZ&+-.;<=>?!^_|~ijklmnopqrstuvwxyzABCDEFGH`#\"\\ "
)
CHECKSUM_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_GENERATOR = (0xF5DEE51989, 0xA9FDCA3312, 0x1BAB10E32D, 0x3706B1677A, 0x644D626FFD)
_CHECKSUM_LENGTH = 8


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
    chk = _polymod([*_expand(desc), *([0] * _CHECKSUM_LENGTH)]) ^ 1
    return "".join(CHECKSUM_CHARSET[(chk >> (5 * (7 - i))) & 31] for i in range(_CHECKSUM_LENGTH))


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
    if len(given) != _CHECKSUM_LENGTH:
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


# --- scripts and addresses ------------------------------------------------------------------------

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


_BECH32_CHARSET = "qpzry9x8gf2tvdw0s3jn54khce6mua7l"
_BECH32_GENERATOR = (0x3B6A57B2, 0x26508E6D, 0x1EA119FA, 0x3D4233DD, 0x2A1462B3)


def _bech32_table() -> tuple[int, ...]:
    """For each 5-bit value shifted out of the checksum, the XOR of the generators it selects."""
    table = []
    for top in range(32):
        value = 0
        for i, generator in enumerate(_BECH32_GENERATOR):
            if (top >> i) & 1:
                value ^= generator
        table.append(value)
    return tuple(table)


_BECH32_TABLE = _bech32_table()


def _bech32_polymod(symbols: Iterable[int], chk: int = 1) -> int:
    table = _BECH32_TABLE
    for value in symbols:
        chk = ((chk & 0x1FF_FFFF) << 5) ^ value ^ table[chk >> 25]
    return chk


def _hrp_state(hrp: str) -> int:
    return _bech32_polymod([*(ord(c) >> 5 for c in hrp), 0, *(ord(c) & 31 for c in hrp)])


# RFC 4648 base32 splits bytes into 5-bit groups exactly as BIP-173's convertbits(8, 5, pad=True);
# only the alphabet differs. These tables turn its output into symbol values and bech32 letters.
_B32_ALPHABET = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"
_B32_TO_VALUE = bytes.maketrans(_B32_ALPHABET, bytes(range(32)))
_B32_TO_BECH32 = bytes.maketrans(_B32_ALPHABET, _BECH32_CHARSET.encode())


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
    chk = (
        _bech32_polymod(groups.translate(_B32_TO_VALUE) + bytes(6), _bech32_polymod((0,), _hrp_state(hrp)))
        ^ 1
    )
    checksum = "".join(_BECH32_CHARSET[(chk >> (5 * (5 - i))) & 31] for i in range(6))
    return f"{hrp}1q{groups.translate(_B32_TO_BECH32).decode()}{checksum}"


# --- BIP-32 public derivation ---------------------------------------------------------------------

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


# --- multisig descriptors -------------------------------------------------------------------------

_WSH_RE = re.compile(r"^wsh\(sortedmulti\((?P<args>[^()]*)\)\)$")
_SUFFIX_RE = re.compile(r"^(?P<key>[^/]+)/(?:<(?P<a>[0-9]+);(?P<b>[0-9]+)>|(?P<one>[0-9]+))/\*$")


def _parse_key_expression(text: str) -> tuple[ExtendedKey, tuple[int, ...]]:
    """``[fp/path]xpub/<0;1>/*`` or ``[fp/path]xpub/0/*`` → (key, branches)."""
    origin_end = text.find("]") + 1
    m = _SUFFIX_RE.match(text[origin_end:])
    if m is None:
        raise InvalidInput(
            f"key expression {shorten(text, 40)!r} must end in /<0;1>/* or /N/* (an account "
            "xpub followed by its receive/change branch); hardened or deeper paths are not "
            "supported for vault keys"
        )
    key = ExtendedKey.parse(text[:origin_end] + m["key"])
    if m["one"] is not None:
        return key, (int(m["one"]),)
    return key, (int(m["a"]), int(m["b"]))


def _branch_text(branches: tuple[int, ...]) -> str:
    return f"<{branches[0]};{branches[1]}>" if len(branches) == 2 else str(branches[0])


@dataclass(frozen=True, slots=True)
class MultisigDescriptor:
    """``wsh(sortedmulti(threshold, key/branch/*, ...))``: an m-of-n P2WSH vault.

    ``branches`` is ``(receive, change)`` (printed as the multipath ``/<0;1>/*``) or a single branch
    (``/0/*``), shared by every key. Keys keep their given order (it is part of the text and its
    checksum); ``sortedmulti`` sorts the derived public keys in each script.
    """

    kind: str
    threshold: int
    keys: tuple[ExtendedKey, ...]
    branches: tuple[int, ...] = (0, 1)
    _nodes: dict[int, tuple[PublicNode, ...]] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )

    def __post_init__(self) -> None:
        if self.kind != "wsh":
            raise InvalidInput(f"vault descriptor kind {self.kind!r} is not supported; use 'wsh'")
        if not isinstance(self.keys, tuple) or not all(isinstance(k, ExtendedKey) for k in self.keys):
            raise InvalidInput("descriptor keys must be a tuple of ExtendedKey")
        n = len(self.keys)
        if isinstance(self.threshold, bool) or not 1 <= self.threshold <= n <= MAX_MULTISIG_KEYS:
            raise InvalidInput(
                f"sortedmulti({self.threshold}, {n} keys) is impossible: the threshold must be "
                f"between 1 and the number of keys, and at most {MAX_MULTISIG_KEYS} keys"
            )
        kinds = {k.network_kind for k in self.keys}
        if len(kinds) > 1:
            raise InvalidInput(
                "descriptor mixes mainnet xpubs and test-network tpubs; every key of a vault "
                "must be exported for the same network"
            )
        if len(self.branches) not in (1, 2) or len(set(self.branches)) != len(self.branches):
            raise InvalidInput(
                f"descriptor branches {self.branches} must be one branch or a distinct "
                "(receive, change) pair such as (0, 1)"
            )
        for branch in self.branches:
            if not 0 <= branch < HARDENED:
                raise InvalidInput(f"branch {branch} must be a non-hardened index below 2^31")

    # --- construction and text ---

    @classmethod
    def from_keys(
        cls, threshold: int, keys: Sequence[ExtendedKey], branches: tuple[int, ...] = (0, 1)
    ) -> MultisigDescriptor:
        """An m-of-n P2WSH sortedmulti vault over ``keys`` (multipath ``/<0;1>/*`` by default)."""
        return cls("wsh", threshold, tuple(keys), branches)

    @classmethod
    def parse(cls, text: str) -> MultisigDescriptor:
        """Parse ``wsh(sortedmulti(m,KEY/<0;1>/*,...))`` with optional (but verified) ``#checksum``."""
        body, _ = split_checksum(text.strip())
        m = _WSH_RE.match(body)
        if m is None:
            raise InvalidInput(
                f"descriptor {shorten(body, 48)!r} is not wsh(sortedmulti(m,KEY,...)); vaults "
                "are P2WSH sortedmulti over xpubs/tpubs with origin, e.g. "
                "wsh(sortedmulti(2,[fp/48h/1h/0h/2h]tpub.../<0;1>/*,...))"
            )
        threshold_text, *key_texts = m["args"].split(",")
        if not threshold_text.isdigit() or not threshold_text.isascii():
            raise InvalidInput(f"multisig threshold {threshold_text!r} is not a whole number")
        parsed = [_parse_key_expression(k) for k in key_texts]
        branch_sets = {branches for _, branches in parsed}
        if len(branch_sets) > 1:
            raise InvalidInput(
                "descriptor keys use different branches "
                f"({', '.join('/' + _branch_text(b) + '/*' for b in sorted(branch_sets))}); "
                "every key of a vault must use the same suffix, e.g. /<0;1>/*"
            )
        branches = branch_sets.pop() if branch_sets else (0, 1)
        return cls("wsh", int(threshold_text), tuple(k for k, _ in parsed), branches)

    @classmethod
    def from_pair(cls, receive: str, change: str) -> MultisigDescriptor:
        """Join a receive (``/0/*``) and a change (``/1/*``) descriptor of the same keys."""
        r, c = cls.parse(receive), cls.parse(change)
        if (r.threshold, r.keys) != (c.threshold, c.keys) or len(r.branches + c.branches) != 2:
            raise InvalidInput(
                "receive and change descriptors must be single-branch descriptors with the same "
                "threshold and keys in the same order; export both from the same wallet"
            )
        return cls("wsh", r.threshold, r.keys, (r.branches[0], c.branches[0]))

    def _text(self, branch: str) -> str:
        keys = ",".join(f"{key}/{branch}/*" for key in self.keys)
        return add_checksum(f"{self.kind}(sortedmulti({self.threshold},{keys}))")

    def __str__(self) -> str:
        return self._text(_branch_text(self.branches))

    @property
    def is_multipath(self) -> bool:
        return len(self.branches) == 2

    def _branch(self, change: bool) -> int:
        if not change:
            return self.branches[0]
        if not self.is_multipath:
            raise InvalidInput(
                f"descriptor {shorten(str(self), 48)!r} has only the /{self.branches[0]}/* branch; "
                "give the /<0;1>/* multipath form or join receive and change with from_pair"
            )
        return self.branches[1]

    def receive(self) -> str:
        """The single-branch receive descriptor with checksum, as ``importdescriptors`` takes it."""
        return self._text(str(self._branch(False)))

    def change(self) -> str:
        """The single-branch change descriptor with checksum (``internal: true`` on import)."""
        return self._text(str(self._branch(True)))

    @property
    def network_kind(self) -> NetworkKind:
        """``"mainnet"`` for xpub keys, ``"test"`` for tpub keys."""
        return self.keys[0].network_kind

    def check_network(self, network: Network) -> None:
        """Raise :class:`InvalidInput` naming the first key that does not belong on ``network``."""
        for key in self.keys:
            key.check_network(network)

    # --- derivation ---

    def _branch_nodes(self, branch: int) -> tuple[PublicNode, ...]:
        nodes = self._nodes.get(branch)
        if nodes is None:
            nodes = tuple(PublicNode.of(key).child(branch) for key in self.keys)
            self._nodes[branch] = nodes
        return nodes

    def pubkeys(self, index: int, change: bool) -> tuple[bytes, ...]:
        """Compressed public keys at ``branch/index``, in key order (not sorted)."""
        if isinstance(index, bool) or not 0 <= index < HARDENED:
            raise InvalidInput(f"address index {index} must be in 0..2^31-1")
        nodes = self._branch_nodes(self._branch(change))
        return tuple(n.child_pubkey(index) for n in nodes)

    def witness_script(self, index: int, change: bool) -> bytes:
        return sortedmulti_witness_script(self.threshold, self.pubkeys(index, change))

    def script_pubkey(self, index: int, change: bool) -> bytes:
        return p2wsh_script_pubkey(self.witness_script(index, change))

    def address(self, index: int, change: bool, network: Network) -> str:
        self.check_network(network)
        return segwit_v0_address(self.script_pubkey(index, change), network)

    def addresses(self, start: int, count: int, change: bool, network: Network) -> list[str]:
        """Addresses ``start .. start+count-1``, as ``deriveaddresses desc [start, start+count-1]``."""
        if count < 0:
            raise InvalidInput(f"address count {count} must not be negative")
        if isinstance(start, bool) or start < 0 or start + count > HARDENED:
            raise InvalidInput(f"address range {start}..{start + count - 1} must lie in 0..2^31-1")
        self.check_network(network)
        nodes = self._branch_nodes(self._branch(change))
        threshold = self.threshold
        return [
            segwit_v0_address(
                p2wsh_script_pubkey(
                    sortedmulti_witness_script(threshold, [n.child_pubkey(i) for n in nodes])
                ),
                network,
            )
            for i in range(start, start + count)
        ]


def bsms_descriptor_record(descriptor: MultisigDescriptor, network: Network) -> str:
    """The BIP-129 (BSMS 1.0) descriptor record a coordinator hands to each signer.

    Four lines: the version, the descriptor template (each key followed by ``/**``, meaning the
    receive and change branches given on the next line, with its own checksum), the path
    restrictions (``/0/*,/1/*``) and the first receive address, for the signer to check.
    """
    if not descriptor.is_multipath:
        raise InvalidInput("a BSMS record describes receive and change: give the /<0;1>/* form")
    keys = ",".join(f"{key}/**" for key in descriptor.keys)
    template = add_checksum(f"{descriptor.kind}(sortedmulti({descriptor.threshold},{keys}))")
    restrictions = ",".join(f"/{branch}/*" for branch in descriptor.branches)
    return "\n".join(("BSMS 1.0", template, restrictions, descriptor.address(0, False, network)))
