"""Each audit judgement on its own, on plain values (ledger.chain.audit_judge), and the balance
arithmetic as properties: what test_audit_judge.py's whole-audit cases leave out."""

from __future__ import annotations

from dataclasses import replace

import hypothesis.strategies as st
from hypothesis import given, settings

from custody.chain import BlockPlace, TxOutput
from ledger.chain.audit_judge import conflicted_txids, judge_accounts, judge_unrecorded
from ledger.chain.audit_report import EntryStatus, FindingCode, VaultAccount, VaultFacts
from tests.unit.test_audit_judge import (
    HEIGHT,
    OUTSIDE,
    SCRIPT,
    VAULT,
    audit,
    books,
    chain,
    codes,
    deposit,
    entry,
    scanned,
    spend,
    state,
    utxo,
    view,
)

# --- entries ------------------------------------------------------------------------------------


def test_an_entry_re_mined_in_another_block_is_moved_not_a_finding() -> None:
    d = deposit(1, 70_000, 400)
    remined = replace(d, block=BlockPlace("cd" * 32, 402, HEIGHT - 402 + 1))
    report = audit(
        books([entry(1, d, {VAULT: 70_000})], 70_000),
        chain([remined], [scanned(remined)], {VAULT: view([state(remined)], [utxo(remined)])}),
    )
    assert report.ok, report.findings
    [check] = report.entries
    assert check.status == EntryStatus.MOVED
    assert (check.recorded_block, check.current_block) == (d.block.block_hash if d.block else None, "cd" * 32)
    assert (check.recorded_height, check.current_height) == (400, 402)
    assert check.recorded_block_in_best_chain is False


def test_an_entry_with_the_right_amount_on_the_wrong_vault_is_an_amount_mismatch() -> None:
    d = deposit(1, 5_000, 400)
    report = audit(
        books([entry(1, d, {"cold": 5_000})], 0),
        chain([d], [scanned(d)], {VAULT: view([state(d)], [utxo(d)])}),
    )
    mismatch = [f for f in report.findings if f.code == FindingCode.AMOUNT_MISMATCH]
    assert len(mismatch) == 1 and mismatch[0].seq == 1
    assert "cold 0.00005" in mismatch[0].message and "treasury 0.00005" in mismatch[0].message


@settings(max_examples=100)
@given(st.integers(min_value=1, max_value=10**12), st.integers(min_value=-(10**6), max_value=10**6))
def test_an_amount_mismatch_is_found_exactly_when_the_booked_flow_differs(sat: int, delta: int) -> None:
    d = deposit(1, sat, 400)
    booked = sat + delta
    report = audit(
        books([entry(1, d, {VAULT: booked})], booked),
        chain([d], [scanned(d)], {VAULT: view([state(d)], [utxo(d)])}),
    )
    found = codes(report)
    assert (FindingCode.AMOUNT_MISMATCH in found) == (delta != 0)
    assert (FindingCode.BALANCE_MISMATCH in found) == (delta != 0)
    assert [e.status for e in report.entries] == [EntryStatus.OK]


def test_booking_one_transaction_three_times_names_both_extra_entries() -> None:
    d = deposit(1, 1_000, 400)
    report = audit(
        books([entry(4, d, {VAULT: 1_000}), entry(9, d, {VAULT: 1_000}), entry(2, d, {VAULT: 1_000})], 3_000),
        chain([d], [scanned(d)], {VAULT: view([state(d)], [utxo(d)])}),
    )
    [twice] = [f for f in report.findings if f.code == FindingCode.RECORDED_TWICE]
    assert "entries [2, 4, 9]" in twice.message and twice.seq == 4
    assert "reserve reverse 4 " in twice.advice and "reserve reverse 9 " in twice.advice
    assert "reserve reverse 2 " not in twice.advice


# --- balances -----------------------------------------------------------------------------------


@settings(max_examples=100)
@given(
    st.lists(st.tuples(st.integers(1, 10**10), st.integers(HEIGHT - 20, HEIGHT)), min_size=1, max_size=6),
    st.integers(min_value=1, max_value=25),
)
def test_the_scan_splits_into_confirmed_and_shallow_by_min_conf_and_sums_to_the_chain_total(
    coins: list[tuple[int, int]], min_conf: int
) -> None:
    txs = [deposit(n + 1, sat, height) for n, (sat, height) in enumerate(coins)]
    total = sum(sat for sat, _ in coins)
    report = audit(
        books([entry(n + 1, t, {VAULT: t.outputs[0].value}) for n, t in enumerate(txs)], total),
        chain(txs, [scanned(t) for t in txs], {VAULT: view([state(t) for t in txs], [utxo(t) for t in txs])}),
        min_conf=min_conf,
    )
    [row] = report.vaults
    deep = sum(sat for sat, height in coins if HEIGHT - height + 1 >= min_conf)
    assert (row.scan_confirmed, row.scan_shallow, row.scan_immature) == (deep, total - deep, 0)
    assert row.chain_total == row.ledger == total == report.totals["chain"] == report.totals["ledger"]
    assert FindingCode.BALANCE_MISMATCH not in codes(report)
    assert (FindingCode.SHALLOW in codes(report)) == (deep != total)


@settings(max_examples=100)
@given(st.integers(min_value=1, max_value=10**10), st.integers(min_value=-(10**8), max_value=10**8))
def test_a_ledger_that_differs_from_the_chain_is_one_balance_mismatch_with_the_difference(
    sat: int, delta: int
) -> None:
    d = deposit(1, sat, 400)
    ledger = sat + delta
    report = audit(
        books([entry(1, d, {VAULT: sat})], ledger),  # the account balance disagrees with its entry
        chain([d], [scanned(d)], {VAULT: view([state(d)], [utxo(d)])}),
    )
    mismatches = [f for f in report.findings if f.code == FindingCode.BALANCE_MISMATCH]
    assert len(mismatches) == (1 if delta else 0)
    if delta:
        [f] = mismatches
        book = (
            "book the movements the books lack"
            if delta < 0
            else "reverse the entries the chain does not back"
        )
        assert book in f.advice and f.vault == VAULT


def test_a_retired_empty_vault_that_is_not_watched_is_not_a_finding() -> None:
    retired = VaultFacts("old", "old", "reserve-vault-old", True)
    live = VaultFacts(VAULT, VAULT, "reserve-vault-treasury", False)
    report = audit(books([], 0, vaults=(live, retired)), chain([], [], {VAULT: view([], []), "old": None}))
    assert report.ok, report.findings
    still_holding = books([], 0, vaults=(live, retired), extra_accounts=(VaultAccount("old", 7, (3,)),))
    found = audit(still_holding, chain([], [], {VAULT: view([], []), "old": None})).findings
    assert [(f.code, f.vault) for f in found if f.code == FindingCode.VAULT_NOT_WATCHED] == [
        (FindingCode.VAULT_NOT_WATCHED, "old")
    ]


# --- accounts -----------------------------------------------------------------------------------


def test_an_undefined_vault_account_whose_postings_cancel_is_still_a_finding() -> None:
    b = books([], 0, extra_accounts=(VaultAccount("ghost", 0, (5, 6)),))
    undefined, [f] = judge_accounts(b)
    assert [(u.account, u.ledger, u.entries) for u in undefined] == [("ghost", 0, (5, 6))]
    assert "reserve reverse 5 " in f.advice and "reserve reverse 6 " in f.advice


def test_an_undefined_vault_account_with_coins_but_no_live_entry_says_post_them_back() -> None:
    b = books([], 0, extra_accounts=(VaultAccount("ghost", 123, ()),))
    _, [f] = judge_accounts(b)
    assert "post the opposite amount back" in f.advice and "through entries" not in f.message


def test_a_defined_vault_account_is_never_undefined() -> None:
    assert judge_accounts(books([], 10**8)) == ([], [])


# --- conflicts ----------------------------------------------------------------------------------


def test_conflicts_come_from_the_wallet_states_and_from_confirmed_double_spends() -> None:
    a, b, c = deposit(1, 1, None), deposit(2, 1, 400), deposit(3, 1, None)
    states = {a.txid: state(a, -1, replaced_by=b.txid)}
    wallet = view(
        [state(b, conflicts=(c.txid,)), state(c, -1, conflicts=(b.txid,))],
        [],
    )
    assert conflicted_txids({VAULT: wallet, "cold": None}, states) == {a.txid: b.txid, c.txid: b.txid}


def test_a_conflict_with_no_confirmed_winner_has_no_replacement() -> None:
    a, b = deposit(1, 1, None), deposit(2, 1, None)
    wallet = view([state(a, -1, conflicts=(b.txid,)), state(b, 0, conflicts=(a.txid,))], [])
    assert conflicted_txids({VAULT: wallet}, {}) == {a.txid: None}


def test_two_confirmed_transactions_never_conflict_each_other() -> None:
    a, b = deposit(1, 1, 400), deposit(2, 1, 401)
    wallet = view([state(a, conflicts=(b.txid,)), state(b, conflicts=(a.txid,))], [])
    assert conflicted_txids({VAULT: wallet}, {}) == {}


# --- unrecorded ---------------------------------------------------------------------------------


def test_unrecorded_skips_the_booked_the_conflicted_the_unconfirmed_and_what_moves_nothing() -> None:
    booked, conflicted, pending = deposit(1, 1_000, 400), deposit(2, 2_000, 401), deposit(3, 3_000, None)
    new = deposit(4, 4_000, 402)
    nothing = spend(5, deposit(6, 10, 300, OUTSIDE), [(10, OUTSIDE)], 403)  # no vault coins move
    txs = [booked, conflicted, pending, new, nothing]
    wallet = view([state(t) for t in txs], [])
    c = chain(txs, [], {VAULT: wallet})
    found = judge_unrecorded(books([], 0), c, {booked.txid}, {conflicted.txid: None})
    assert [(f.code, f.txid, f.vault) for f in found] == [(FindingCode.UNRECORDED, new.txid, VAULT)]
    assert (
        "deposit of 0.00004000 BTC to vault treasury" in found[0].message and "block 402" in found[0].message
    )


def test_an_unknown_transaction_of_a_wallet_is_unrecorded_under_that_vault() -> None:
    ghost = deposit(1, 1_000, 400)
    wallet = view([state(ghost)], [])
    found = judge_unrecorded(books([], 0), chain([], [], {VAULT: wallet}), set(), {})
    assert [(f.txid, f.vault) for f in found] == [(ghost.txid, VAULT)]
    assert f"a transaction of vault {VAULT}" in found[0].message


def test_a_scanned_output_is_unrecorded_once_per_transaction_and_not_when_a_wallet_knows_it() -> None:
    d = deposit(1, 5, 400)
    two = replace(d, outputs=(*d.outputs, TxOutput(1, 6, SCRIPT)))
    known = deposit(2, 9, 401)
    c = chain(
        [two, known],
        [scanned(two, 0), scanned(two, 1), scanned(known)],
        {VAULT: view([state(known, 0)], [])},  # known to the wallet, in the mempool as it saw it
    )
    found = judge_unrecorded(books([], 0), c, set(), {})  # the wallet knows `known` (unconfirmed then)
    assert [f.txid for f in found] == [two.txid]
    assert "neither the books nor the vault's watch-only wallet know its transaction" in found[0].message
