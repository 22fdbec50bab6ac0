"""The verifier's pure judgements (``ledger.journal.verify``) on plain values.

Mutation testing (``scripts/mutation``) found that a zero-amount posting slipped in by tampering
(still two or more postings, still summing to zero) was caught by no test of the double-entry
check itself; and that the checkpoint-signature judgement was only reached through the database.
"""

from __future__ import annotations

import dataclasses

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ledger.journal.checkpoint import public_key_pem, sign_checkpoint
from ledger.journal.verify import _shape_problem, _signature_problem
from ledger.verify_proof import key_id

KEY, OTHER = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
PEM, OTHER_PEM = public_key_pem(KEY), public_key_pem(OTHER)
ROOT = bytes(range(32))


@pytest.mark.parametrize(
    ("amounts", "total"),
    [([5, 0, -5], 0), ([0, 0], 0), ([5], 5), ([], 0), ([5, -4], 1)],
)
def test_postings_that_break_double_entry(amounts: list[int], total: int) -> None:
    assert _shape_problem("deposit", "memo", amounts) == (
        f"breaks double entry: postings {amounts} (need two or more non-zero "
        f"amounts summing to zero; they sum to {total})"
    )


def test_balanced_postings_and_well_formed_records_pass() -> None:
    assert _shape_problem("transfer", "memo", [5, -3, -2]) is None
    assert _shape_problem("deposit", "memo", [5, -5]) is None
    assert _shape_problem("audit", '{"ok":true}', []) is None


@pytest.mark.parametrize(
    ("memo", "amounts", "problem"),
    [
        ("{}", [1, -1], "is a audit record but has postings [1, -1]; records have none"),
        ("[]", [], "is a audit record but its memo is not a JSON object"),
        ("not json", [], "is a audit record but its memo is not a JSON object"),
    ],
)
def test_records_with_postings_or_a_memo_that_is_not_an_object(
    memo: str, amounts: list[int], problem: str
) -> None:
    assert _shape_problem("audit", memo, amounts) == problem


def test_a_checkpoint_signed_by_a_trusted_key_has_no_problem() -> None:
    cp = sign_checkpoint(KEY, 3, ROOT, 1_700_000_000)
    assert _signature_problem({key_id(PEM): PEM}, cp) is None
    assert _signature_problem({key_id(OTHER_PEM): OTHER_PEM, key_id(PEM): PEM}, cp) is None


def test_a_changed_checkpoint_says_what_does_not_verify() -> None:
    cp = dataclasses.replace(sign_checkpoint(KEY, 3, ROOT, 1_700_000_000), tree_size=4)
    problem = _signature_problem({key_id(PEM): PEM}, cp)
    assert problem is not None
    assert problem.startswith(f"checkpoint signature over size 4, root {ROOT.hex()}, timestamp 1700000000")


def test_with_one_trusted_key_a_foreign_checkpoint_names_both_keys() -> None:
    cp = sign_checkpoint(OTHER, 3, ROOT, 1_700_000_000)
    assert _signature_problem({key_id(PEM): PEM}, cp) == (
        f"checkpoint of size 3 names key {key_id(OTHER_PEM)}, but the given public key is {key_id(PEM)}"
    )


def test_with_several_trusted_keys_a_foreign_checkpoint_lists_them() -> None:
    third = public_key_pem(Ed25519PrivateKey.generate())
    cp = sign_checkpoint(OTHER, 3, ROOT, 1_700_000_000)
    keys = {key_id(PEM): PEM, key_id(third): third}
    assert _signature_problem(keys, cp) == (
        f"it names key {key_id(OTHER_PEM)}, which is not one of the trusted keys ({', '.join(keys)})"
    )
