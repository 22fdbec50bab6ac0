"""RFC 6962 Merkle tree: published test vectors and properties.

The vectors are copied from transparency-dev/merkle (``rfc6962/rfc6962_test.go`` and
``proof/verify_test.go``), the same data google/certificate-transparency publishes. Inclusion
vectors there number leaves from 1; here ``index`` counts from 0.
"""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ledger.errors import InvalidInput
from ledger.journal.merkle import (
    EMPTY_ROOT,
    MerkleAccumulator,
    ProofError,
    consistency_proof,
    inclusion_proof,
    leaf_hash,
    node_hash,
    root_of,
    verify_consistency,
    verify_inclusion,
)

H = bytes.fromhex

LEAVES = [
    H(""),
    H("00"),
    H("10"),
    H("2021"),
    H("3031"),
    H("40414243"),
    H("5051525354555657"),
    H("606162636465666768696a6b6c6d6e6f"),
]

ROOTS = [  # ROOTS[i] is the root of the tree of the first i + 1 leaves
    H("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
    H("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"),
    H("aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77"),
    H("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
    H("4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4"),
    H("76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef"),
    H("ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c"),
    H("5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"),
]

INCLUSION_VECTORS = [  # (index from 0, tree size, proof)
    (0, 1, ()),
    (
        0,
        8,
        (
            H("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
            H("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            H("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
        ),
    ),
    (
        5,
        8,
        (
            H("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
            H("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
            H("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ),
    ),
    (2, 3, (H("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"),)),
    (
        1,
        5,
        (
            H("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d"),
            H("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            H("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
        ),
    ),
]

CONSISTENCY_VECTORS = [  # (old size, new size, proof)
    (1, 1, ()),
    (
        1,
        8,
        (
            H("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7"),
            H("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            H("6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"),
        ),
    ),
    (
        6,
        8,
        (
            H("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
            H("ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0"),
            H("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ),
    ),
    (
        2,
        5,
        (
            H("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e"),
            H("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"),
        ),
    ),
    (
        6,
        7,
        (
            H("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a"),
            H("b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f"),
            H("d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"),
        ),
    ),
]

SOME_HASH = H("abacaba000000000000000000000000000000000000000000060061e00123456")
LEAF_HASHES = [leaf_hash(d) for d in LEAVES]


# --- Hashing vectors (rfc6962_test.go) ------------------------------------------------------


def test_hash_vectors() -> None:
    assert H("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855") == EMPTY_ROOT
    assert leaf_hash(b"") == H("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d")
    assert leaf_hash(b"L123456") == H("395aa064aa4c29f7010acfe3f25db9485bbd4b91897b6ad7ad547639252b4d56")
    assert node_hash(b"N123", b"N456") == H(
        "aa217fe888e47007fa15edab33c2b492a722cb106c64667fc2b044444de66bbb"
    )


def test_leaf_and_node_hashes_are_domain_separated() -> None:
    a, b = leaf_hash(b"Hello"), leaf_hash(b"World")
    assert a != b
    assert node_hash(a, b) != leaf_hash(a + b)
    assert node_hash(a, b) != node_hash(b, a)


# --- Roots ----------------------------------------------------------------------------------


def test_root_of_empty_tree() -> None:
    assert root_of([]) == EMPTY_ROOT
    assert MerkleAccumulator().root() == EMPTY_ROOT
    assert MerkleAccumulator().size == 0


@pytest.mark.parametrize("size", range(1, 9))
def test_root_vectors(size: int) -> None:
    assert root_of(LEAF_HASHES[:size]) == ROOTS[size - 1]


def test_accumulator_gives_every_intermediate_root() -> None:
    acc = MerkleAccumulator()
    for i, h in enumerate(LEAF_HASHES):
        acc.append(h)
        assert acc.size == i + 1
        assert acc.root() == ROOTS[i]


def test_accumulator_refuses_data_instead_of_a_leaf_hash() -> None:
    with pytest.raises(InvalidInput, match="32 bytes"):
        MerkleAccumulator().append(b"2021")


def test_accumulator_memory_is_logarithmic() -> None:
    acc = MerkleAccumulator()
    for i in range(1000):
        acc.append(leaf_hash(i.to_bytes(4, "big")))
        assert len(acc._stack) == bin(acc.size).count("1")


def _reference_root(hashes: list[bytes]) -> bytes:
    """MTH straight from RFC 6962 section 2.1, recursive and slow, to cross-check the accumulator."""
    n = len(hashes)
    if n == 0:
        return EMPTY_ROOT
    if n == 1:
        return hashes[0]
    k = 1
    while k * 2 < n:
        k *= 2
    return node_hash(_reference_root(hashes[:k]), _reference_root(hashes[k:]))


@given(st.integers(min_value=0, max_value=300))
def test_accumulator_matches_rfc_definition(size: int) -> None:
    hashes = [leaf_hash(i.to_bytes(2, "big")) for i in range(size)]
    assert root_of(hashes) == _reference_root(hashes)


# --- Inclusion ------------------------------------------------------------------------------


@pytest.mark.parametrize(("index", "size", "proof"), INCLUSION_VECTORS)
def test_inclusion_proof_vectors(index: int, size: int, proof: tuple[bytes, ...]) -> None:
    assert inclusion_proof(index, LEAF_HASHES[:size]) == proof
    verify_inclusion(LEAF_HASHES[index], index, size, proof, ROOTS[size - 1])


def _corrupt_inclusion(
    index: int, size: int, proof: tuple[bytes, ...], root: bytes, leaf: bytes
) -> list[tuple[str, bytes, int, int, tuple[bytes, ...], bytes]]:
    """The probes of verify_test.go's corruptInclusionProof, plus every single-bit flip."""
    probes = [
        ("index - 1", leaf, index - 1, size, proof, root),
        ("index + 1", leaf, index + 1, size, proof, root),
        ("index ^ 2", leaf, index ^ 2, size, proof, root),
        ("size * 2", leaf, index, size * 2, proof, root),
        ("size // 2", leaf, index, size // 2, proof, root),
        ("wrong leaf", leaf_hash(b"WrongLeaf"), index, size, proof, root),
        ("empty root", leaf, index, size, proof, EMPTY_ROOT),
        ("random root", leaf, index, size, proof, SOME_HASH),
        ("trailing root", leaf, index, size, (*proof, root), root),
        ("preceding root", leaf, index, size, (root, *proof), root),
        ("trailing garbage", leaf, index, size, (*proof, b""), root),
    ]
    for i in range(len(proof)):
        for bit in (0, 3, 7):
            for byte in (0, 31):
                flipped = bytearray(proof[i])
                flipped[byte] ^= 1 << bit
                wrong = (*proof[:i], bytes(flipped), *proof[i + 1 :])
                probes.append((f"proof[{i}] byte {byte} bit {bit}", leaf, index, size, wrong, root))
        probes.append((f"dropped proof[{i}]", leaf, index, size, proof[:i] + proof[i + 1 :], root))
        probes.append((f"inserted at {i}", leaf, index, size, (*proof[:i], SOME_HASH, *proof[i:]), root))
    return probes


def _assert_all_rejected(probes: list[tuple[str, bytes, int, int, tuple[bytes, ...], bytes]]) -> None:
    accepted = []
    for desc, leaf, index, size, proof, root in probes:
        try:
            verify_inclusion(leaf, index, size, proof, root)
        except ProofError:
            continue
        accepted.append(desc)
    assert accepted == []


@pytest.mark.parametrize(("index", "size", "proof"), INCLUSION_VECTORS)
def test_inclusion_vectors_corrupted_are_rejected(index: int, size: int, proof: tuple[bytes, ...]) -> None:
    _assert_all_rejected(_corrupt_inclusion(index, size, proof, ROOTS[size - 1], LEAF_HASHES[index]))


@pytest.mark.parametrize(("index", "size"), [(0, 0), (0, 1), (1, 0), (2, 1)])
def test_inclusion_invalid_root_or_leaf(index: int, size: int) -> None:
    # verify_test.go TestVerifyInclusion probes: never verifies with an empty proof.
    for leaf, root in [(SOME_HASH, b""), (b"", EMPTY_ROOT), (SOME_HASH, EMPTY_ROOT)]:
        with pytest.raises(ProofError):
            verify_inclusion(leaf, index, size, (), root)


def test_inclusion_single_entry() -> None:
    h = leaf_hash(b"data")
    verify_inclusion(h, 0, 1, (), h)
    for leaf, root in [(h, b""), (b"", h), (b"", b"")]:
        with pytest.raises(ProofError):
            verify_inclusion(leaf, 0, 1, (), root)


def test_inclusion_error_messages_are_specific() -> None:
    proof = inclusion_proof(1, LEAF_HASHES)
    with pytest.raises(ProofError, match="outside the tree of size 8"):
        verify_inclusion(LEAF_HASHES[1], 8, 8, proof, ROOTS[7])
    with pytest.raises(ProofError, match="too long"):
        verify_inclusion(LEAF_HASHES[1], 1, 8, (*proof, SOME_HASH), ROOTS[7])
    with pytest.raises(ProofError, match="too short"):
        verify_inclusion(LEAF_HASHES[1], 1, 8, proof[:-1], ROOTS[7])
    with pytest.raises(ProofError, match="leads to root"):
        verify_inclusion(LEAF_HASHES[1], 1, 8, proof, ROOTS[6])
    with pytest.raises(ProofError, match="element 1"):
        verify_inclusion(LEAF_HASHES[1], 1, 8, (proof[0], b"x", proof[2]), ROOTS[7])
    with pytest.raises(ProofError, match="non-negative integer"):
        verify_inclusion(LEAF_HASHES[1], -1, 8, proof, ROOTS[7])


def test_inclusion_proof_refuses_index_outside_tree() -> None:
    with pytest.raises(InvalidInput, match="not in the tree of size 8"):
        inclusion_proof(8, LEAF_HASHES)
    with pytest.raises(InvalidInput):
        inclusion_proof(-1, LEAF_HASHES)
    with pytest.raises(InvalidInput):
        inclusion_proof(0, [])


# --- Consistency ----------------------------------------------------------------------------


@pytest.mark.parametrize(("old", "new", "proof"), CONSISTENCY_VECTORS)
def test_consistency_proof_vectors(old: int, new: int, proof: tuple[bytes, ...]) -> None:
    assert consistency_proof(old, LEAF_HASHES[:new]) == proof
    verify_consistency(old, new, ROOTS[old - 1], ROOTS[new - 1], proof)


def _corrupt_consistency(
    old: int, new: int, r1: bytes, r2: bytes, proof: tuple[bytes, ...]
) -> list[tuple[str, int, int, bytes, bytes, tuple[bytes, ...]]]:
    """The probes of verify_test.go's corruptConsistencyProof, plus every single-bit flip."""
    probes = [
        ("old - 1", old - 1, new, r1, r2, proof),
        ("old + 1", old + 1, new, r1, r2, proof),
        ("old ^ 2", old ^ 2, new, r1, r2, proof),
        ("new * 2", old, new * 2, r1, r2, proof),
        ("new // 2", old, new // 2, r1, r2, proof),
        ("wrong root1", old, new, SOME_HASH, r2, proof),
        ("wrong root2", old, new, r1, SOME_HASH, proof),
        ("swapped roots", old, new, r2, r1, proof),
        ("empty proof", old, new, r1, r2, ()),
        ("trailing garbage", old, new, r1, r2, (*proof, b"")),
        ("trailing root1", old, new, r1, r2, (*proof, r1)),
        ("trailing root2", old, new, r1, r2, (*proof, r2)),
        ("preceding garbage", old, new, r1, r2, (b"", *proof)),
        ("preceding root1", old, new, r1, r2, (r1, *proof)),
        ("preceding root2", old, new, r1, r2, (r2, *proof)),
        ("preceding proof[0]", old, new, r1, r2, (proof[0], *proof)),
    ]
    for i in range(len(proof)):
        for bit in (0, 4, 7):
            for byte in (0, 31):
                flipped = bytearray(proof[i])
                flipped[byte] ^= 1 << bit
                wrong = (*proof[:i], bytes(flipped), *proof[i + 1 :])
                probes.append((f"proof[{i}] byte {byte} bit {bit}", old, new, r1, r2, wrong))
        probes.append((f"dropped proof[{i}]", old, new, r1, r2, proof[:i] + proof[i + 1 :]))
        probes.append((f"inserted at {i}", old, new, r1, r2, (*proof[:i], SOME_HASH, *proof[i:])))
    return probes


def _assert_all_consistency_rejected(
    probes: list[tuple[str, int, int, bytes, bytes, tuple[bytes, ...]]],
) -> None:
    accepted = []
    for desc, old, new, r1, r2, proof in probes:
        try:
            verify_consistency(old, new, r1, r2, proof)
        except ProofError:
            continue
        accepted.append(desc)
    assert accepted == []


@pytest.mark.parametrize(("old", "new", "proof"), [v for v in CONSISTENCY_VECTORS if v[2]])
def test_consistency_vectors_corrupted_are_rejected(old: int, new: int, proof: tuple[bytes, ...]) -> None:
    _assert_all_consistency_rejected(_corrupt_consistency(old, new, ROOTS[old - 1], ROOTS[new - 1], proof))


def test_consistency_edge_cases() -> None:
    # Adapted from verify_test.go TestVerifyConsistency, with one deliberate strictening: a
    # tree of size 0 must have the empty-tree root (the Go verifier accepts any root there).
    r1, r2 = ROOTS[0], ROOTS[1]
    verify_consistency(0, 0, EMPTY_ROOT, EMPTY_ROOT, ())
    verify_consistency(0, 1, EMPTY_ROOT, r2, ())
    verify_consistency(1, 1, r2, r2, ())
    for old, new, root1, root2, proof, message in [
        (0, 0, r1, r1, (), "empty-tree root"),
        (1, 1, r1, r2, (), "different roots"),
        (1, 0, r1, r2, (), "larger than new"),
        (2, 1, r1, r2, (), "larger than new"),
        (1, 2, r1, r2, (), "is empty"),
        (0, 0, EMPTY_ROOT, r2, (), "different roots"),
        (1, 1, EMPTY_ROOT, r2, (), "different roots"),
        (0, 0, EMPTY_ROOT, EMPTY_ROOT, (EMPTY_ROOT,), "must be empty"),
        (0, 1, EMPTY_ROOT, EMPTY_ROOT, (EMPTY_ROOT,), "must be empty"),
        (1, 1, EMPTY_ROOT, EMPTY_ROOT, (EMPTY_ROOT,), "must be empty"),
    ]:
        with pytest.raises(ProofError, match=message):
            verify_consistency(old, new, root1, root2, proof)


def test_consistency_proof_refuses_bad_old_size() -> None:
    assert consistency_proof(0, LEAF_HASHES) == ()
    assert consistency_proof(8, LEAF_HASHES) == ()
    with pytest.raises(InvalidInput, match="between 0 and the new size 8"):
        consistency_proof(9, LEAF_HASHES)
    with pytest.raises(InvalidInput):
        consistency_proof(-1, LEAF_HASHES)


# --- Properties over random trees -----------------------------------------------------------


def _tree(size: int) -> list[bytes]:
    return [leaf_hash(hashlib.sha256(i.to_bytes(4, "big")).digest()) for i in range(size)]


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_every_inclusion_proof_verifies_and_every_mutation_fails(data: st.DataObject) -> None:
    size = data.draw(st.integers(min_value=1, max_value=200), label="size")
    index = data.draw(st.integers(min_value=0, max_value=size - 1), label="index")
    leaves = _tree(size)
    root = root_of(leaves)
    proof = inclusion_proof(index, leaves)
    verify_inclusion(leaves[index], index, size, proof, root)
    probes = _corrupt_inclusion(index, size, proof, root, leaves[index])
    # Another leaf at the claimed position must not verify either.
    other = data.draw(st.integers(min_value=0, max_value=size - 1), label="other")
    if other != index:
        probes.append(("other leaf", leaves[other], index, size, proof, root))
        probes.append(("other index", leaves[index], other, size, proof, root))
    _assert_all_rejected(probes)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_every_consistency_proof_verifies_and_every_mutation_fails(data: st.DataObject) -> None:
    new = data.draw(st.integers(min_value=1, max_value=200), label="new")
    old = data.draw(st.integers(min_value=0, max_value=new), label="old")
    leaves = _tree(new)
    r1, r2 = root_of(leaves[:old]), root_of(leaves)
    proof = consistency_proof(old, leaves)
    verify_consistency(old, new, r1, r2, proof)
    if 0 < old < new:
        _assert_all_consistency_rejected(_corrupt_consistency(old, new, r1, r2, proof))
        changed = list(leaves)
        changed[data.draw(st.integers(min_value=0, max_value=old - 1), label="rewritten")] = SOME_HASH
        with pytest.raises(ProofError):
            verify_consistency(old, new, r1, root_of(changed), consistency_proof(old, changed))


def test_all_proofs_in_small_trees_verify() -> None:
    for size in range(1, 40):
        leaves = _tree(size)
        roots = [root_of(leaves[:m]) for m in range(size + 1)]
        for index in range(size):
            verify_inclusion(leaves[index], index, size, inclusion_proof(index, leaves), roots[size])
        for old in range(size + 1):
            verify_consistency(old, size, roots[old], roots[size], consistency_proof(old, leaves))
