"""The journal's idempotency check as a pure plan (``ledger.journal.book.plan_refs``).

Mutation testing (``scripts/mutation``) found no test of one batch reusing a ref with different
content; here every branch of the plan is pinned on plain values.
"""

from __future__ import annotations

import pytest

from ledger.errors import Conflict
from ledger.journal.book import RefPlan, plan_refs

A, B = b"a" * 32, b"b" * 32


def test_drafts_without_refs_are_all_new() -> None:
    assert plan_refs([None, None], [A, A], {}) == RefPlan({}, {}, (0, 1))
    assert plan_refs([], [], {}) == RefPlan({}, {}, ())


def test_a_stored_ref_with_the_same_content_is_the_stored_entry() -> None:
    assert plan_refs(["x", None, "y"], [A, B, B], {"x": (7, A)}) == RefPlan({0: 7}, {}, (1, 2))
    assert plan_refs(["x", "x"], [A, A], {"x": (7, A)}) == RefPlan({0: 7, 1: 7}, {}, ())


def test_a_ref_repeated_in_the_batch_with_the_same_content_is_one_entry() -> None:
    assert plan_refs([None, "x", "y", "x"], [B, A, A, A], {}) == RefPlan({}, {3: 1}, (0, 1, 2))


def test_one_batch_reusing_a_ref_with_different_content_is_a_conflict() -> None:
    with pytest.raises(Conflict) as e:
        plan_refs(["x", "y", "x"], [A, A, B], {})
    assert str(e.value) == (
        "ref 'x' was already used for an earlier entry of this batch with different content; "
        "a ref names one request: use a new ref for a new entry"
    )


def test_a_stored_ref_with_different_content_names_the_entry() -> None:
    with pytest.raises(Conflict) as e:
        plan_refs(["y", "x"], [A, B], {"x": (7, A)})
    assert str(e.value) == (
        "ref 'x' was already used for entry 7 with different content; "
        "a ref names one request: use a new ref for a new entry"
    )


def test_refs_and_hashes_must_pair_up() -> None:
    with pytest.raises(ValueError):
        plan_refs(["x"], [A, B], {})
