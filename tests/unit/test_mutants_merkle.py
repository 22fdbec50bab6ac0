"""Merkle tree inputs and messages that mutation testing found untested (``scripts/mutation``)."""

from __future__ import annotations

import hashlib

import pytest

from ledger.errors import InvalidInput
from ledger.journal.merkle import MerkleAccumulator, consistency_proof, inclusion_proof, leaf_hash

LEAVES = [leaf_hash(hashlib.sha256(bytes([i])).digest()) for i in range(5)]


def test_refusing_data_says_to_pass_its_leaf_hash() -> None:
    with pytest.raises(InvalidInput) as e:
        MerkleAccumulator().append(b"2021")
    assert (
        str(e.value) == "a leaf hash must be 32 bytes, got b'2021'; pass leaf_hash(data), not the data itself"
    )


@pytest.mark.parametrize("index", [True, False, 1.0, "1"])
def test_inclusion_proof_index_must_be_an_int(index: object) -> None:
    with pytest.raises(InvalidInput, match="is not in the tree of size 5"):
        inclusion_proof(index, LEAVES)  # type: ignore[arg-type]


def test_inclusion_proof_names_the_valid_range() -> None:
    with pytest.raises(InvalidInput) as e:
        inclusion_proof(5, LEAVES)
    assert str(e.value) == "leaf index 5 is not in the tree of size 5 (0..4)"


@pytest.mark.parametrize("old_size", [True, False, 1.0, "1"])
def test_consistency_old_size_must_be_an_int(old_size: object) -> None:
    with pytest.raises(InvalidInput, match="must be between 0 and the new size 5"):
        consistency_proof(old_size, LEAVES)  # type: ignore[arg-type]
