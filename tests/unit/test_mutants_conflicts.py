"""``conflicted_txids`` on plain wallet states (``scripts/mutation`` survivors): which recorded
transactions can never confirm, and what replaced them."""

from __future__ import annotations

from custody.wallet import Balances
from custody.wallet_txs import WalletTxState
from custody.wallet_view import WalletView
from ledger.chain.audit_judge import conflicted_txids


def tx(n: int) -> str:
    return f"{n:064x}"


def wallet(*states: WalletTxState) -> WalletView:
    return WalletView("w", states, (), Balances(0, 0, 0), 10)


def state(
    n: int, confirmations: int, conflicts: tuple[int, ...] = (), by: int | None = None
) -> WalletTxState:
    return WalletTxState(
        tx(n), "w", confirmations, None, tuple(tx(c) for c in conflicts), tx(by) if by else None
    )


def test_a_transaction_one_block_deep_double_spends_its_conflicts() -> None:
    views = {"a": wallet(state(1, 1, conflicts=(2,))), "b": None}
    assert conflicted_txids(views, {}) == {tx(2): tx(1)}


def test_a_conflicted_transaction_names_its_confirmed_double_spend() -> None:
    views = {"a": wallet(state(2, -1, conflicts=(1,)), state(1, 1))}
    assert conflicted_txids(views, {}) == {tx(2): tx(1)}


def test_the_wallets_replacement_comes_first() -> None:
    views = {"a": wallet(state(2, -1, conflicts=(1,), by=3), state(1, 1))}
    assert conflicted_txids(views, {}) == {tx(2): tx(3)}


def test_a_conflict_with_nothing_confirmed_has_no_known_replacement() -> None:
    views = {"a": wallet(state(2, -2, conflicts=(5,)))}
    assert conflicted_txids(views, {}) == {tx(2): None}


def test_an_unconfirmed_transaction_conflicts_nothing() -> None:
    views = {"a": wallet(state(1, 0, conflicts=(2,)), state(2, 0, conflicts=(1,)))}
    assert conflicted_txids(views, {}) == {}


def test_every_wallet_is_read_past_an_unloaded_one() -> None:
    views = {"a": None, "b": wallet(state(1, 2, conflicts=(2,)))}
    assert conflicted_txids(views, {}) == {tx(2): tx(1)}


def test_states_of_recorded_transactions_come_first_and_are_completed_by_the_wallets() -> None:
    recorded = {tx(2): state(2, -1), tx(4): state(4, 0)}
    views = {"a": wallet(state(2, -1, conflicts=(1,)), state(1, 3))}
    assert conflicted_txids(views, recorded) == {tx(2): tx(1)}
    known = {tx(2): state(2, -1, by=7)}
    assert conflicted_txids(views, known) == {tx(2): tx(7)}
