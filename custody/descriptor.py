"""Output script descriptors of multisig vaults: ``wsh(sortedmulti(m,KEY/<0;1>/*,...))#checksum``.

:class:`MultisigDescriptor` parses and prints (``str()`` round-trips, with checksum) the one
descriptor shape our vaults use: P2WSH ``sortedmulti`` over BIP-32 account keys, each followed by a
receive/change branch and ``/*``; either the BIP-389 multipath ``/<0;1>/*`` or a single branch
(``/0/*``). ``receive()``/``change()`` give the single-branch descriptors that ``importdescriptors``
takes, and addresses are derived locally so they can be compared one-for-one with bitcoind's
``deriveaddresses``: 10,000 addresses of a 2-of-3 take about half the time bitcoind's takes
(``python -m bench.derive_bench``).

As strict as Bitcoin Core's parser where it matters to a vault: no whitespace inside the text (the
checksum covers a space, so only the parser catches one), hardened steps marked ``h`` or ``'``
only, and every key's origin agreeing with the key (:class:`~custody.keys.ExtendedKey`). Stricter
than Core: a multipath pair must be ``<0;1>`` (receive 0, change 1), so a swapped ``<1;0>`` cannot
turn change addresses into receive addresses.

The pieces live by idea: the BIP-380 checksum in :mod:`custody.checksum`, keys and origins in
:mod:`custody.keys`, ``CKDpub`` in :mod:`custody.bip32`, the scripts in :mod:`custody.script`, bech32
in :mod:`custody.bech32`, and the BIP-129 record in :mod:`custody.bsms`.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from custody.bech32 import segwit_v0_address
from custody.bip32 import PublicNode
from custody.checksum import add_checksum, split_checksum
from custody.errors import InvalidInput
from custody.keys import HARDENED, ExtendedKey, refuse_whitespace, shorten
from custody.network import Network, NetworkKind
from custody.script import MAX_MULTISIG_KEYS, p2wsh_script_pubkey, sortedmulti_witness_script

RECEIVE_CHANGE = (0, 1)  # the multipath pair: receive branch 0, change branch 1 (BIP-44/48)
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

    ``branches`` is ``(0, 1)``, receive and change (printed as the multipath ``/<0;1>/*``; any other
    pair, swapped ``<1;0>`` included, is refused), or a single branch (``/0/*``), shared by every
    key. Keys keep their given order (it is part of the text and its checksum); ``sortedmulti``
    sorts the derived public keys in each script.
    """

    kind: str
    threshold: int
    keys: tuple[ExtendedKey, ...]
    branches: tuple[int, ...] = RECEIVE_CHANGE
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
            if isinstance(branch, bool) or not 0 <= branch < HARDENED:
                raise InvalidInput(f"branch {branch} must be a non-hardened index below 2^31")
        if self.branches == (1, 0):
            raise InvalidInput(
                "descriptor branches are swapped (receive 1, change 0: /<1;0>/*): receive must be "
                "branch 0 and change branch 1, as wallets and signing devices derive them; write "
                "/<0;1>/* (or give the /0/* descriptor as receive and the /1/* one as change)"
            )
        if len(self.branches) == 2 and self.branches != RECEIVE_CHANGE:
            raise InvalidInput(
                f"descriptor branches /{_branch_text(self.branches)}/* are not receive 0 and "
                "change 1, which wallets and signing devices derive (BIP-44/48); write /<0;1>/*"
            )

    # --- construction and text ---

    @classmethod
    def from_keys(
        cls, threshold: int, keys: Sequence[ExtendedKey], branches: tuple[int, ...] = RECEIVE_CHANGE
    ) -> MultisigDescriptor:
        """An m-of-n P2WSH sortedmulti vault over ``keys`` (multipath ``/<0;1>/*`` by default)."""
        return cls("wsh", threshold, tuple(keys), branches)

    @classmethod
    def parse(cls, text: str) -> MultisigDescriptor:
        """Parse ``wsh(sortedmulti(m,KEY/<0;1>/*,...))`` with optional (but verified) ``#checksum``.

        Whitespace around the text (a pasted line's newline) is ignored; whitespace inside it is
        refused, as Bitcoin Core refuses it.
        """
        stripped = text.strip()
        refuse_whitespace(stripped, f"descriptor {shorten(stripped, 48)!r}")
        body, _ = split_checksum(stripped)
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
        branches = branch_sets.pop() if branch_sets else RECEIVE_CHANGE
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


# regtest.signers still imports add_checksum from here; it belongs to custody.checksum.
__all__ = ["RECEIVE_CHANGE", "MultisigDescriptor", "add_checksum"]
