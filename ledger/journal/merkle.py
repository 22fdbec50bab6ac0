"""The RFC 6962 Merkle tree over the journal: hashing, the streaming root and proof building.

- ``leaf_hash(data) = SHA-256(0x00 || data)``, ``node_hash(l, r) = SHA-256(0x01 || l || r)``,
  the empty tree's root is ``SHA-256("")``.
- :class:`MerkleAccumulator` computes the root of any number of leaves in O(log n) memory.
- :func:`inclusion_proof` and :func:`consistency_proof` build RFC 6962 section 2.1.1 / 2.1.2
  proofs from the leaf hashes.

Verification lives in :mod:`ledger.verify_proof` (a file auditors can copy on its own) and is
re-exported here, so there is exactly one implementation of it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

from ledger.errors import InvalidInput
from ledger.verify_proof import (
    EMPTY_ROOT,
    HASH_SIZE,
    ProofError,
    verify_consistency,
    verify_inclusion,
)

__all__ = [
    "EMPTY_ROOT",
    "MerkleAccumulator",
    "ProofError",
    "consistency_proof",
    "inclusion_proof",
    "leaf_hash",
    "node_hash",
    "root_of",
    "verify_consistency",
    "verify_inclusion",
]


def leaf_hash(data: bytes) -> bytes:
    """RFC 6962 leaf hash: ``SHA-256(0x00 || data)``."""
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    """RFC 6962 interior node hash: ``SHA-256(0x01 || left || right)``."""
    return hashlib.sha256(b"\x01" + left + right).digest()


class MerkleAccumulator:
    """Streaming Merkle tree root: append leaf hashes one by one, ask for the root at any time.

    Keeps only the roots of the perfect subtrees that make up the tree so far (one per set bit
    of ``size``, largest first), so memory is O(log n) however many leaves pass through.
    """

    __slots__ = ("_size", "_stack")

    def __init__(self) -> None:
        self._size = 0
        self._stack: list[bytes] = []

    @classmethod
    def from_frontier(cls, size: int, frontier: Sequence[bytes]) -> MerkleAccumulator:
        """The accumulator of a tree of ``size`` leaves from its :attr:`frontier`, to extend it
        in O(log n) without reading its leaves (a tree head stores one)."""
        if isinstance(size, bool) or not isinstance(size, int) or size < 0:
            raise InvalidInput(f"a tree size must be a non-negative integer, got {size!r}")
        if len(frontier) != size.bit_count() or any(
            not isinstance(h, bytes) or len(h) != HASH_SIZE for h in frontier
        ):
            raise InvalidInput(
                f"a tree of {size} leaves has a frontier of {size.bit_count()} hashes of "
                f"{HASH_SIZE} bytes, got {len(frontier)}"
            )
        acc = cls()
        acc._size = size
        acc._stack = list(frontier)
        return acc

    @property
    def size(self) -> int:
        """Number of leaves appended so far."""
        return self._size

    @property
    def frontier(self) -> tuple[bytes, ...]:
        """The roots of the perfect subtrees the tree is made of, largest first (one per set
        bit of :attr:`size`): the right edge that the next leaf extends."""
        return tuple(self._stack)

    def append(self, leaf_hash: bytes) -> None:
        """Add the next leaf (its leaf hash, not its data)."""
        if not isinstance(leaf_hash, bytes) or len(leaf_hash) != HASH_SIZE:
            raise InvalidInput(
                f"a leaf hash must be {HASH_SIZE} bytes, got {leaf_hash!r}; "
                "pass leaf_hash(data), not the data itself"
            )
        h = leaf_hash
        n = self._size
        while n & 1:  # each trailing 1 bit is a perfect subtree of equal height to merge with
            h = node_hash(self._stack.pop(), h)
            n >>= 1
        self._stack.append(h)
        self._size += 1

    def root(self) -> bytes:
        """Root of the tree of the leaves appended so far (``EMPTY_ROOT`` when there are none)."""
        if not self._stack:
            return EMPTY_ROOT
        r = self._stack[-1]
        for h in reversed(self._stack[:-1]):
            r = node_hash(h, r)
        return r


def root_of(leaf_hashes: Iterable[bytes]) -> bytes:
    """Root of the tree whose leaves have these hashes, in O(log n) memory."""
    acc = MerkleAccumulator()
    for h in leaf_hashes:
        acc.append(h)
    return acc.root()


def _split(n: int) -> int:
    """The largest power of two strictly smaller than ``n`` (``n >= 2``)."""
    return 1 << ((n - 1).bit_length() - 1)


def _subtree_root(leaves: Sequence[bytes], lo: int, hi: int) -> bytes:
    acc = MerkleAccumulator()
    for i in range(lo, hi):
        acc.append(leaves[i])
    return acc.root()


def inclusion_proof(index: int, leaves: Sequence[bytes]) -> tuple[bytes, ...]:
    """RFC 6962 PATH(index, D[n]) for the tree of ``len(leaves)`` leaf hashes, leaf level first."""
    n = len(leaves)
    if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < n:
        raise InvalidInput(f"leaf index {index!r} is not in the tree of size {n} (0..{n - 1})")
    path: list[bytes] = []
    lo, hi = 0, n
    while hi - lo > 1:  # walk down from the root, collecting the sibling subtree at each level
        k = _split(hi - lo)
        if index < lo + k:
            path.append(_subtree_root(leaves, lo + k, hi))
            hi = lo + k
        else:
            path.append(_subtree_root(leaves, lo, lo + k))
            lo = lo + k
    path.reverse()
    return tuple(path)


def consistency_proof(old_size: int, leaves: Sequence[bytes]) -> tuple[bytes, ...]:
    """RFC 6962 PROOF(old_size, D[n]) from the tree of ``old_size`` leaves to ``len(leaves)``.

    Empty when ``old_size`` is 0 or equal to the new size.
    """
    n = len(leaves)
    if isinstance(old_size, bool) or not isinstance(old_size, int) or not 0 <= old_size <= n:
        raise InvalidInput(f"old tree size {old_size!r} must be between 0 and the new size {n}")
    if old_size in (0, n):
        return ()
    proof: list[bytes] = []
    m, lo, hi = old_size, 0, n
    complete = True  # SUBPROOF's b: the old tree so far is a complete subtree of the new one
    while m != hi - lo:  # SUBPROOF(m, D[lo:hi], complete)
        k = _split(hi - lo)
        if m <= k:
            proof.append(_subtree_root(leaves, lo + k, hi))
            hi = lo + k
        else:
            proof.append(_subtree_root(leaves, lo, lo + k))
            m, lo, complete = m - k, lo + k, False
    if not complete:
        proof.append(_subtree_root(leaves, lo, hi))
    proof.reverse()
    return tuple(proof)
