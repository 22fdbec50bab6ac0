"""The audit's judgement on plain values: no node, no database."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace

from custody.chain import BlockPlace, ChainTx, TxInput, TxOutput
from custody.wallet import Balances, ScannedOutput, ScanResult, Utxo
from custody.wallet_txs import WalletTxState
from custody.wallet_view import WalletView
from ledger.chain.audit_judge import judge
from ledger.chain.audit_report import (
    AuditReport,
    BookedEntry,
    Books,
    ChainFacts,
    EntryStatus,
    FindingCode,
    VaultAccount,
    VaultFacts,
)
from ledger.chain.outflows import Outflow, Outflows

HEIGHT = 500
BEST = "bb" * 32
VAULT = "treasury"
WALLET = "reserve-vault-treasury"
SCRIPT = bytes.fromhex("0020" + "11" * 32)
SCRIPT2 = bytes.fromhex("0020" + "12" * 32)
OUTSIDE = bytes.fromhex("0014" + "99" * 20)


def txid(n: int) -> str:
    return f"{n:064x}"


def block(height: int) -> BlockPlace:
    return BlockPlace(f"{height:064x}", height, HEIGHT - height + 1)


def deposit(n: int, sat: int, height: int | None, script: bytes = SCRIPT) -> ChainTx:
    return ChainTx(
        txid(n),
        (TxInput(txid(9000 + n), 0, None),),
        (TxOutput(0, sat, script),),
        block(height) if height else None,
    )


def spend(n: int, prev: ChainTx, outputs: Sequence[tuple[int, bytes]], height: int | None) -> ChainTx:
    return ChainTx(
        txid(n),
        tuple(TxInput(prev.txid, o.index, o) for o in prev.outputs),
        tuple(TxOutput(i, sat, script) for i, (sat, script) in enumerate(outputs)),
        block(height) if height else None,
    )


def scanned(tx: ChainTx, vout: int = 0, coinbase: bool = False) -> ScannedOutput:
    assert tx.block is not None
    o = tx.outputs[vout]
    return ScannedOutput(
        tx.txid, vout, o.script_pubkey, o.value, tx.block.height, coinbase, tx.block.confirmations
    )


def utxo(tx: ChainTx, vout: int = 0) -> Utxo:
    o = tx.outputs[vout]
    return Utxo(tx.txid, vout, "bcrt1q", o.script_pubkey, o.value, tx.confirmations, True, "")


def state(tx: ChainTx, confirmations: int | None = None, **kw: object) -> WalletTxState:
    conf = tx.confirmations if confirmations is None else confirmations
    block_hash = tx.block.block_hash if tx.block and conf > 0 else None
    return WalletTxState(tx.txid, WALLET, conf, block_hash, **kw)  # type: ignore[arg-type]


def entry(seq: int, tx: ChainTx, legs: Mapping[str, int], kind: str = "deposit") -> BookedEntry:
    b = tx.block
    return BookedEntry(
        seq, tx.txid, kind, b.block_hash if b else None, b.height if b else None, tuple(sorted(legs.items()))
    )


def view(
    transactions: Sequence[WalletTxState], unspent: Sequence[Utxo], immature: int = 0, range_end: int = 1000
) -> WalletView:
    return WalletView(WALLET, tuple(transactions), tuple(unspent), Balances(0, 0, immature), range_end)


def books(
    entries: Sequence[BookedEntry],
    balance: int,
    *,
    extra_accounts: Sequence[VaultAccount] = (),
    vaults: Sequence[VaultFacts] = (VaultFacts(VAULT, VAULT, WALLET, False),),
    verification: tuple[tuple[str, int | None], ...] = (),
    key_problems: tuple[str, ...] = (),
) -> Books:
    accounts = (VaultAccount(VAULT, balance, tuple(e.seq for e in entries)), *extra_accounts)
    return Books(
        tree_size=len(entries),
        root="00" * 32,
        verification=verification,
        key_problems=key_problems,
        reserve=sum(a.balance for a in accounts),
        vaults=tuple(vaults),
        vault_accounts=accounts,
        entries=tuple(entries),
    )


def chain(
    txs: Sequence[ChainTx],
    outputs: Sequence[ScannedOutput],
    wallets: Mapping[str, WalletView | None],
    scripts: Mapping[bytes, str] | None = None,
    states: Sequence[WalletTxState] = (),
) -> ChainFacts:
    places = {t.block.block_hash: t.block for t in txs if t.block}
    return ChainFacts(
        chain="regtest",
        height=HEIGHT,
        best_block=BEST,
        scan=ScanResult(HEIGHT, BEST, tuple(outputs)),
        by_script=scripts or {SCRIPT: VAULT, SCRIPT2: VAULT},
        ranges={VAULT: 1000},
        wallets=wallets,
        entry_states={s.txid: s for s in states},
        txs={t.txid: t for t in txs},
        places=places,
    )


def audit(b: Books, c: ChainFacts, min_conf: int = 1, outflows: Outflows | None = None) -> AuditReport:
    return judge(b, c, min_conf=min_conf, audited_at="2026-11-25T00:00:00+00:00", outflows=outflows)


def codes(report: AuditReport) -> list[str]:
    return [f.code for f in report.findings]


def test_a_clean_reserve_reconciles_and_the_ledger_total_is_the_reserve_figure() -> None:
    d = deposit(1, 250_000_000, 400)
    report = audit(
        books([entry(1, d, {VAULT: 250_000_000})], 250_000_000),
        chain([d], [scanned(d)], {VAULT: view([state(d)], [utxo(d)])}),
    )
    assert report.ok, report.findings
    assert report.totals["ledger"] == 250_000_000 == report.totals["chain"]
    assert report.schema == "reserve-ledger-audit/v2"
    assert [e.status for e in report.entries] == [EntryStatus.OK]


def test_a_vault_account_without_a_definition_is_a_finding_and_counts_in_the_ledger_total() -> None:
    d = deposit(1, 1_000, 400)
    ghost = VaultAccount("ghost", 100_000_000_000, (2,))
    report = audit(
        books([entry(1, d, {VAULT: 1_000})], 1_000, extra_accounts=(ghost,)),
        chain([d], [scanned(d)], {VAULT: view([state(d)], [utxo(d)])}),
    )
    [f] = report.findings
    assert f.code == FindingCode.UNDEFINED_VAULT_ACCOUNT and "ghost" in f.message
    assert "reserve reverse 2" in f.advice
    assert report.totals["ledger"] == 100_000_001_000
    assert report.totals["ledger_undefined"] == 100_000_000_000
    assert [(u.account, u.entries) for u in report.undefined_accounts] == [("ghost", (2,))]


def test_an_empty_undefined_vault_account_is_not_a_finding() -> None:
    report = audit(
        books([], 0, extra_accounts=(VaultAccount("old", 0, ()),)), chain([], [], {VAULT: view([], [])})
    )
    assert report.ok


def test_a_pending_spend_is_pending_not_a_wallet_scan_mismatch() -> None:
    d = deposit(1, 100_000_000, 400)
    s = spend(2, d, [(30_000_000, OUTSIDE), (69_990_000, SCRIPT2)], None)
    wallet = view([state(d), state(s, 0)], [utxo(s, 1)])  # the wallet counts the coin as spent
    report = audit(
        books([entry(1, d, {VAULT: 100_000_000})], 100_000_000),
        chain([d, s], [scanned(d)], {VAULT: wallet}),  # the UTXO set still has it
    )
    assert report.ok, report.findings
    [p] = report.pending
    assert p.txid == s.txid and p.kind == "withdrawal" and p.fee == 10_000
    assert p.flows == ((VAULT, -30_010_000),)
    assert p.spends == (f"{d.txid}:0",)
    assert report.vaults[0].pending_out == 30_010_000
    assert report.to_json()["pending"][0]["flows"] == {VAULT: -30_010_000}


def test_a_pending_deposit_is_pending() -> None:
    d = deposit(1, 5_000, None)
    report = audit(books([], 0), chain([d], [], {VAULT: view([state(d, 0)], [utxo(d)])}))
    assert report.ok
    assert [(p.txid, p.kind) for p in report.pending] == [(d.txid, "deposit")]
    assert report.totals["pending_in"] == 5_000


def test_an_output_the_wallet_lacks_without_a_pending_spend_is_a_mismatch_with_rescan_advice() -> None:
    d = deposit(1, 100_000_000, 400)
    report = audit(
        books([entry(1, d, {VAULT: 100_000_000})], 100_000_000),
        chain([d], [scanned(d)], {VAULT: view([state(d)], [])}),
    )
    [f] = report.findings
    assert f.code == FindingCode.WALLET_SCAN_MISMATCH and f"{d.txid}:0" in f.message
    assert f.advice.endswith(f"`bitcoin-cli -rpcwallet={WALLET} rescanblockchain 400`")


def test_a_wallet_narrower_than_the_issued_addresses_is_told_to_watch_further() -> None:
    d = deposit(1, 100_000_000, 400)
    c = replace(chain([d], [scanned(d)], {VAULT: view([], [], range_end=1000)}), ranges={VAULT: 1501})
    found = {f.code: f for f in audit(books([], 0), c).findings}
    assert "reserve vault watch treasury --gap 1501" in found[FindingCode.WALLET_SCAN_MISMATCH].advice
    assert "--gap 1501" in found[FindingCode.UNRECORDED].advice


def test_a_conflicted_recorded_deposit_names_its_replacement_and_says_reverse() -> None:
    d = deposit(1, 30_000_000, 400)
    gone = replace(d, block=None)
    r = deposit(2, 30_000_000, 401)
    wallet = view([state(gone, -1, conflicts=(r.txid,)), state(r, conflicts=(d.txid,))], [utxo(r)])
    report = audit(
        books([entry(1, d, {VAULT: 30_000_000})], 30_000_000),
        chain([r], [scanned(r)], {VAULT: wallet}),
    )
    by_code = {f.code: f for f in report.findings}
    assert set(by_code) == {FindingCode.CONFLICTED, FindingCode.UNRECORDED}
    c = by_code[FindingCode.CONFLICTED]
    assert r.txid in c.message and "reserve reverse 1" in c.advice and c.seq == 1
    assert "no longer confirmed" not in c.message
    [check] = report.entries
    assert check.status == EntryStatus.CONFLICTED and check.replaced_by == r.txid


def test_min_conf_is_applied_to_entries_and_the_scan() -> None:
    d = deposit(1, 1_000, HEIGHT - 1)  # 2 confirmations
    b = books([entry(1, d, {VAULT: 1_000})], 1_000)
    c = chain([d], [scanned(d)], {VAULT: view([state(d)], [utxo(d)])})
    assert audit(b, c, min_conf=2).ok
    shallow = audit(b, c, min_conf=3)
    [f] = shallow.findings
    assert f.code == FindingCode.SHALLOW and f.advice.startswith("wait for 1 more block")
    assert shallow.vaults[0].scan_shallow == 1_000 and shallow.vaults[0].scan_confirmed == 0


def test_a_coinbase_at_100_confirmations_is_immature_and_counts_in_the_reserve() -> None:
    cb = ChainTx(
        txid(7), (TxInput("00" * 32, -1, None),), (TxOutput(0, 5_000_000_000, SCRIPT),), block(401), True
    )
    assert cb.confirmations == 100
    report = audit(
        books([entry(1, cb, {VAULT: 5_000_000_000}, "mining")], 5_000_000_000),
        chain([cb], [scanned(cb, coinbase=True)], {VAULT: view([state(cb)], [], immature=5_000_000_000)}),
    )
    assert report.ok, report.findings
    v = report.vaults[0]
    assert v.scan_immature == v.wallet_immature == v.chain_total == 5_000_000_000


def test_an_unclassifiable_transaction_is_a_finding_and_the_audit_goes_on() -> None:
    d = deposit(1, 100, 400)
    odd = spend(2, d, [(150, SCRIPT)], 450)  # pays out more than it spends: cannot be a movement
    report = audit(
        books([entry(1, d, {VAULT: 100})], 100),
        chain([d, odd], [scanned(odd)], {VAULT: view([state(d), state(odd)], [utxo(odd)])}),
    )
    assert FindingCode.UNCLASSIFIABLE in codes(report)
    assert [e.status for e in report.entries] == [EntryStatus.OK]


def test_every_finding_code_has_advice_that_fixes_it() -> None:
    """One reserve with every kind of problem; each finding's advice names its fix."""
    ok = deposit(1, 1_000, 400)
    twice = deposit(2, 2_000, 401)
    wrong = deposit(3, 3_000, 402)
    shallow = deposit(4, 4_000, HEIGHT)
    unconfirmed = deposit(5, 5_000, None)
    missing = deposit(6, 6_000, 403)
    conflicted = deposit(7, 7_000, 404)
    unrecorded = deposit(8, 8_000, 405)
    odd = spend(9, ok, [(1_500, SCRIPT)], 406)
    entries = [
        entry(1, ok, {VAULT: 1_000}),
        entry(2, twice, {VAULT: 2_000}),
        entry(3, twice, {VAULT: 2_000}),
        entry(4, wrong, {VAULT: 3_333}),
        entry(5, shallow, {VAULT: 4_000}),
        entry(6, replace(unconfirmed, block=block(390)), {VAULT: 5_000}),
        entry(7, missing, {VAULT: 6_000}),
        entry(8, conflicted, {VAULT: 7_000}),
    ]
    b = books(
        entries,
        99_999,
        extra_accounts=(VaultAccount("ghost", 10, (20,)),),
        vaults=(
            VaultFacts(VAULT, VAULT, WALLET, False),
            VaultFacts("cold", "cold", "reserve-vault-cold", False),
        ),
        verification=(("entry 3 no longer matches its leaf hash", 3),),
        key_problems=("key mismatch: 2 checkpoint(s) were signed by key abc",),
    )
    wallet = view(
        [state(unrecorded), state(replace(conflicted, block=None), -2), state(odd)],
        [],
    )
    c = chain(
        [ok, twice, wrong, shallow, unconfirmed, unrecorded, odd],
        [scanned(ok), scanned(unrecorded)],
        {VAULT: wallet, "cold": None},
    )
    sent_by_holders = Outflow(odd.txid, VAULT, 406, 405, 1_500, None, gated=False)
    gated = Outflow(ok.txid, VAULT, 400, 399, 1_000, None, gated=True, spend=1)
    report = audit(b, c, min_conf=2, outflows=Outflows((sent_by_holders, gated)))
    assert [(o.outflow.txid, o.failing) for o in report.outflows] == [(odd.txid, True)]  # gated: expected
    expected_advice = {
        FindingCode.LEDGER_VERIFICATION: "restore the database from a backup",
        FindingCode.SIGNING_KEY: "restore the original signing key file",
        FindingCode.UNDEFINED_VAULT_ACCOUNT: 'reserve reverse 20 --memo "ghost is not a vault"',
        FindingCode.VAULT_NOT_WATCHED: "`reserve vault watch cold`",
        FindingCode.BALANCE_MISMATCH: "reserve reverse SEQ",
        FindingCode.WALLET_SCAN_MISMATCH: f"bitcoin-cli -rpcwallet={WALLET} rescanblockchain",
        FindingCode.UNRECORDED: "`reserve sync`",
        FindingCode.RECORDED_TWICE: "reserve reverse 3 ",
        FindingCode.CONFLICTED: "reserve reverse 8 ",
        FindingCode.MISSING_TRANSACTION: "reserve reverse 7 ",
        FindingCode.NOT_IN_BEST_CHAIN: "wait for it to be mined again",
        FindingCode.SHALLOW: "wait for 1 more block(s)",
        FindingCode.AMOUNT_MISMATCH: "reserve reverse 4 ",
        FindingCode.UNCLASSIFIABLE: "reserve vault watch",
        FindingCode.UNGATED_SPEND: "acknowledge it",
    }
    assert set(expected_advice) == set(FindingCode)
    found = {f.code: f for f in report.findings}
    assert set(found) == set(FindingCode), sorted(set(FindingCode) - set(found))
    for code, fragment in expected_advice.items():
        assert fragment in found[code].advice, (code, found[code].advice)
    statuses = {e.seq: e.status for e in report.entries}
    assert statuses[6] == EntryStatus.NOT_IN_BEST_CHAIN and statuses[7] == EntryStatus.MISSING
    assert statuses[8] == EntryStatus.CONFLICTED and statuses[5] == EntryStatus.SHALLOW


def test_a_balance_mismatch_explained_by_a_reorg_says_wait() -> None:
    d = deposit(1, 40_000_000, 400)
    back_in_mempool = replace(d, block=None)
    report = audit(
        books([entry(1, d, {VAULT: 40_000_000})], 40_000_000),
        chain([back_in_mempool], [], {VAULT: view([state(back_in_mempool, 0)], [utxo(back_in_mempool)])}),
    )
    found = {f.code: f for f in report.findings}
    assert set(found) == {FindingCode.NOT_IN_BEST_CHAIN, FindingCode.BALANCE_MISMATCH}
    assert found[FindingCode.BALANCE_MISMATCH].advice.startswith("the difference is entries [1]")
    assert "wait for them to be mined again" in found[FindingCode.BALANCE_MISMATCH].advice
    assert report.pending == ()  # booked: reported as an entry finding, not as pending


def test_a_recorded_deposit_double_spent_away_is_conflicted_by_the_wallets_state() -> None:
    """listtransactions leaves such a deposit out; gettransaction says confirmations < 0."""
    d = deposit(1, 25_000_000, 400)
    stale = replace(d, block=BlockPlace(d.block.block_hash if d.block else "", 400, -1))
    report = audit(
        books([entry(1, d, {VAULT: 25_000_000})], 25_000_000),
        chain([stale], [], {VAULT: view([], [])}, states=[state(stale, -1)]),
    )
    found = {f.code: f for f in report.findings}
    assert set(found) == {FindingCode.CONFLICTED, FindingCode.BALANCE_MISMATCH}
    assert "reserve reverse 1" in found[FindingCode.CONFLICTED].advice
    assert report.entries[0].status == EntryStatus.CONFLICTED


def test_a_replaced_deposit_and_an_orphaned_coinbase_are_not_pending() -> None:
    """A deposit the mempool dropped for a replacement paying elsewhere (the wallet lists it with
    ``mempoolconflicts``) and a mining reward whose block left the chain never confirm: neither is
    pending, and neither is a finding while unbooked."""
    replaced = deposit(1, 5_000, None)
    orphan = ChainTx(
        txid(2), (TxInput("00" * 32, -1, None),), (TxOutput(0, 625_000_000, SCRIPT),), None, True
    )
    wallet = view(
        [
            state(replaced, 0, mempool_conflicts=(txid(3),), replaced_by=txid(3)),
            state(orphan, 0, coinbase=True),
        ],
        [],
    )
    report = audit(books([], 0), chain([replaced, orphan], [], {VAULT: wallet}))
    assert report.ok, report.findings
    assert report.pending == () and report.totals["pending_in"] == 0
    pending = state(replaced, 0)  # the same deposit before it was replaced: pending
    assert audit(books([], 0), chain([replaced], [], {VAULT: view([pending], [])})).pending


def test_a_coin_locked_by_an_open_spend_is_no_mismatch() -> None:
    """``listunspent`` leaves locked coins out; the wallet view lists them (``locked``), so a
    coin an open spend holds is in the wallet, not missing from it."""
    d = deposit(1, 100_000_000, 400)
    locked = replace(utxo(d), locked=True)
    report = audit(
        books([entry(1, d, {VAULT: 100_000_000})], 100_000_000),
        chain([d], [scanned(d)], {VAULT: view([state(d)], [locked])}),
    )
    assert report.ok, report.findings
    assert report.vaults[0].wallet_confirmed == 100_000_000
