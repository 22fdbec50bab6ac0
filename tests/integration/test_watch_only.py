"""Watch-only vault wallets and one-pass UTXO scans against a real regtest bitcoind.

A 2-of-3 vault from fresh random test keys is watched by its own descriptor wallet without
private keys; coins sent to it (confirmed, unconfirmed, an immature coinbase) show up in the
wallet, and one ``scantxoutset`` over its descriptors gives the same totals.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
import uuid
from collections.abc import Iterable

import pytest

from custody.amount import sat_from_rpc
from custody.descriptor import MultisigDescriptor
from custody.errors import CustodyError, InvalidAddressOrKey, InvalidInput, ScanInProgress
from custody.keygen import test_key_from_seed
from custody.network import Network
from custody.rpc import RpcClient
from custody.wallet import (
    DEFAULT_GAP,
    cover_range,
    ensure_watch_wallet,
    list_unspent,
    scan_vaults,
    vault_scan_objects,
    vault_wallet_name,
    wallet_balances,
)
from regtest.node import RegtestNode

R = Network.REGTEST
WALLET_SYNC_TIMEOUT_S = 60.0


def wait_for_wallet(rpc: RpcClient, wallet: RpcClient, txids: Iterable[str] = ()) -> None:
    """Wait until ``wallet`` has processed the node's tip and knows each of ``txids``.

    bitcoind hands blocks and mempool transactions to its wallets through the validation
    interface queue, on another thread: a wallet read right after a send or a mined block can
    miss it (under load, ``untrusted_pending`` still 0). So flush that queue
    (``syncwithvalidationinterfacequeue``, which blocks until it is empty), then check the
    wallet's last processed block and ``gettransaction`` of each txid; repeat until the
    deadline.
    """
    deadline = time.monotonic() + WALLET_SYNC_TIMEOUT_S
    pending = set(txids)
    while True:
        rpc.call("syncwithvalidationinterfacequeue")
        tip = rpc.call("getbestblockhash")
        processed = wallet.call("getwalletinfo").get("lastprocessedblock", {}).get("hash")
        for txid in sorted(pending):
            try:
                wallet.call("gettransaction", txid, True)
            except InvalidAddressOrKey:
                continue
            pending.discard(txid)
        if processed == tip and not pending:
            return
        if time.monotonic() > deadline:
            raise AssertionError(
                f"wallet {wallet.wallet_name} did not catch up within {WALLET_SYNC_TIMEOUT_S:.0f} s: "
                f"last processed block {processed}, tip {tip}, unknown transactions {sorted(pending)}"
            )


def _vault() -> MultisigDescriptor:
    return MultisigDescriptor.from_keys(2, [test_key_from_seed(os.urandom(32), R) for _ in range(3)])


def _name() -> str:
    return vault_wallet_name(uuid.uuid4().hex[:12])


def _coinbase_value(rpc: RpcClient, block_hash: str) -> int:
    block = rpc.call("getblock", block_hash, 2)
    return sum(sat_from_rpc(o["value"]) for o in block["tx"][0]["vout"])


def test_coins_show_up_in_wallet_and_in_one_scan(node: RegtestNode, rpc: RpcClient) -> None:
    vault, name = _vault(), _name()
    result = ensure_watch_wallet(rpc, name, vault)
    assert (result.status, result.imported, result.rescanned) == ("created", ("receive", "change"), False)
    wallet = rpc.wallet(name)
    info = wallet.call("getwalletinfo")
    assert info["private_keys_enabled"] is False and info["descriptors"] is True

    sent = [
        node.fund(vault.address(0, False, R), 100_000_000),
        node.fund(vault.address(3, True, R), 50_000_000),
        node.fund(vault.address(2, False, R), 25_000_000, confirm=False),
    ]
    coinbase_hash = node.mine(1, vault.address(4, False, R))[0]
    # The block mined to the vault confirmed the 0.25 BTC; send another unconfirmed one.
    sent.append(node.fund(vault.address(5, False, R), 10_000_000, confirm=False))
    reward = _coinbase_value(rpc, coinbase_hash)

    wait_for_wallet(rpc, wallet, sent)
    balances = wallet_balances(wallet)
    assert balances.trusted == 175_000_000
    assert balances.untrusted_pending == 10_000_000
    assert balances.immature == reward > 0

    unspent = list_unspent(wallet)
    assert sorted(u.amount for u in unspent) == [10_000_000, 25_000_000, 50_000_000, 100_000_000]
    assert all(u.solvable for u in unspent)
    assert {u.script_pubkey for u in unspent} <= {
        *(vault.script_pubkey(i, False) for i in range(6)),
        vault.script_pubkey(3, True),
    }

    for address in (vault.address(0, False, R), vault.address(3, True, R), vault.address(999, False, R)):
        a = wallet.call("getaddressinfo", address)
        # Core v31 descriptor wallet without private keys: ismine, solvable, not "iswatchonly".
        assert (a["ismine"], a["solvable"], a["iswatchonly"]) == (True, True, False)
    assert wallet.call("getaddressinfo", vault.address(3, True, R))["ischange"] is True

    node.mine(1)  # scantxoutset reads the UTXO set: confirm the pending 0.1 BTC first
    wait_for_wallet(rpc, wallet)
    balances = wallet_balances(wallet)
    scan = scan_vaults(rpc, vault_scan_objects(vault, 100))
    totals = scan.totals()
    assert scan.height == rpc.get_block_count()
    assert totals.mature == balances.trusted == 185_000_000
    assert totals.immature == balances.immature == reward
    assert totals.count == 5
    [coinbase] = [o for o in scan.outputs if o.coinbase]
    assert coinbase.immature and coinbase.confirmations == 2


def test_scan_over_many_vaults_is_one_pass_grouped_by_scripts(node: RegtestNode, rpc: RpcClient) -> None:
    a, b = _vault(), _vault()
    node.fund(a.address(1, False, R), 30_000_000, confirm=False)
    node.fund(b.address(0, True, R), 20_000_000)
    before = rpc.round_trips
    scan = scan_vaults(rpc, [*vault_scan_objects(a, 10), *vault_scan_objects(b, 10)])
    assert rpc.round_trips == before  # the scan uses its own connection ...
    scripts_a = {a.script_pubkey(i, c) for i in range(11) for c in (False, True)}
    scripts_b = {b.script_pubkey(i, c) for i in range(11) for c in (False, True)}
    assert scan.totals(scripts_a).mature == 30_000_000
    assert scan.totals(scripts_b).mature == 20_000_000
    assert scan.totals().total == 50_000_000  # ... and is a single scantxoutset over both vaults


def test_coinbase_matures_at_101_confirmations_like_the_wallet(node: RegtestNode, rpc: RpcClient) -> None:
    vault, name = _vault(), _name()
    ensure_watch_wallet(rpc, name, vault)
    wallet = rpc.wallet(name)
    node.mine(1, vault.address(0, False, R))
    node.mine(99)
    scan = scan_vaults(rpc, vault_scan_objects(vault, 5))
    [out] = scan.outputs
    assert out.confirmations == 100 and out.immature
    wait_for_wallet(rpc, wallet)
    assert wallet_balances(wallet).immature == out.amount
    node.mine(1)
    [out] = scan_vaults(rpc, vault_scan_objects(vault, 5)).outputs
    assert out.confirmations == 101 and not out.immature
    wait_for_wallet(rpc, wallet)
    assert wallet_balances(wallet).trusted == out.amount


def test_watching_twice_imports_and_rescans_nothing(rpc: RpcClient) -> None:
    vault, name = _vault(), _name()
    first = ensure_watch_wallet(rpc, name, vault)
    listed = rpc.wallet(name).call("listdescriptors")["descriptors"]
    second = ensure_watch_wallet(rpc, name, vault)
    assert second.status == "already watching"
    assert (second.created, second.imported, second.extended, second.rescanned) == (False, (), (), False)
    assert rpc.wallet(name).call("listdescriptors")["descriptors"] == listed
    assert len(listed) == 2
    assert first.branch("receive").range_end == second.branch("receive").range_end == DEFAULT_GAP - 1

    rpc.call("unloadwallet", name)  # the next run loads it from disk and still imports nothing
    third = ensure_watch_wallet(rpc, name, vault)
    assert (third.status, third.loaded) == ("already watching", True)
    assert rpc.wallet(name).call("listdescriptors")["descriptors"] == listed


def test_birthday_rescan_finds_earlier_coins_and_reports_progress(node: RegtestNode, rpc: RpcClient) -> None:
    vault, name = _vault(), _name()
    birthday = rpc.get_block_count()
    node.fund(vault.address(7, False, R), 40_000_000)
    node.mine(3)

    late, late_name = _vault(), _name()
    assert ensure_watch_wallet(rpc, late_name, late).rescanned is False  # "now": no rescan ...
    late_txid = node.fund(late.address(0, False, R), 1_000_000)
    wait_for_wallet(rpc, rpc.wallet(late_name), [late_txid])
    assert wallet_balances(rpc.wallet(late_name)).trusted == 1_000_000  # ... yet later coins count

    progress: list[float] = []
    result = ensure_watch_wallet(rpc, name, vault, birthday_height=birthday, on_progress=progress.append)
    assert result.rescanned is True
    assert progress[0] == 0.0 and progress[-1] == 1.0
    assert all(0.0 <= p <= 1.0 for p in progress)
    assert wallet_balances(rpc.wallet(name)).trusted == 40_000_000


def test_gap_limit_extension_rescans_from_the_original_timestamp(node: RegtestNode, rpc: RpcClient) -> None:
    vault, name = _vault(), _name()
    gap = 1500  # wider than bitcoind's keypool (1000), which it keeps topped up by itself
    first = ensure_watch_wallet(rpc, name, vault, gap=gap)
    assert first.branch("receive").range_end == gap - 1
    wallet = rpc.wallet(name)
    stamps = {d["desc"]: d["timestamp"] for d in wallet.call("listdescriptors")["descriptors"]}

    near_end = node.fund(vault.address(1400, False, R), 10_000_000)  # near the end of the range
    wait_for_wallet(rpc, wallet, [near_end])
    topped = {d["internal"]: d for d in wallet.call("listdescriptors")["descriptors"]}
    assert topped[False]["range"] == [0, 1400 + 1000]  # bitcoind's own top-up: next + keypool
    node.fund(vault.address(2800, False, R), 20_000_000)  # not yet watched
    wait_for_wallet(rpc, wallet)
    assert wallet_balances(wallet).trusted == 10_000_000

    second = ensure_watch_wallet(rpc, name, vault, gap=gap)
    assert (second.status, second.extended, second.imported) == ("extended", ("receive",), ())
    assert second.rescanned is True
    assert second.branch("receive").range_end >= 1400 + gap
    assert second.branch("change").range_end == gap - 1
    listed = wallet.call("listdescriptors")["descriptors"]
    assert len(listed) == 2
    assert {d["desc"]: d["timestamp"] for d in listed} == stamps  # birth time kept
    assert wallet_balances(wallet).trusted == 30_000_000  # the rescan found the coin at 2800

    assert ensure_watch_wallet(rpc, name, vault, gap=gap).status == "already watching"


def test_a_wallet_of_something_else_is_refused(rpc: RpcClient) -> None:
    vault, other, name = _vault(), _vault(), _name()
    ensure_watch_wallet(rpc, name, other)
    with pytest.raises(InvalidInput, match="one wallet watches one vault"):
        ensure_watch_wallet(rpc, name, vault)

    hot = _name()
    rpc.call("createwallet", hot)  # a wallet with private keys under a vault wallet's name
    with pytest.raises(InvalidInput, match="not a watch-only descriptor wallet"):
        ensure_watch_wallet(rpc, hot, vault)


def test_bad_birthday_is_refused_before_anything_is_created(rpc: RpcClient) -> None:
    vault, name = _vault(), _name()
    tip = rpc.get_block_count()
    with pytest.raises(InvalidInput, match=f"birthday height {tip + 5} is not on the node's chain"):
        ensure_watch_wallet(rpc, name, vault, birthday_height=tip + 5)
    assert name not in {w["name"] for w in rpc.call("listwalletdir")["wallets"]}


def test_cover_range_tops_up_without_a_rescan_and_keeps_the_birth_time(
    node: RegtestNode, rpc: RpcClient
) -> None:
    vault, name = _vault(), _name()
    assert cover_range(rpc, name, vault, 1501) == ()  # no wallet yet: nothing created
    assert name not in {w["name"] for w in rpc.call("listwalletdir")["wallets"]}

    birthday = rpc.get_block_count()
    ensure_watch_wallet(rpc, name, vault, birthday_height=birthday)
    wallet = rpc.wallet(name)
    stamps = {d["desc"]: d["timestamp"] for d in wallet.call("listdescriptors")["descriptors"]}
    assert not wallet.call("getaddressinfo", vault.address(2400, False, R))["ismine"]

    branches = cover_range(rpc, name, vault, 1501)  # index 1500 handed out
    assert [(b.branch, b.range_end >= 1500 + DEFAULT_GAP) for b in branches] == [
        ("receive", True),
        ("change", True),
    ]
    listed = wallet.call("listdescriptors")["descriptors"]
    assert {d["desc"]: d["timestamp"] for d in listed} == stamps  # birth time kept, no re-import
    assert "scanning" not in wallet.call("getwalletinfo") or not wallet.call("getwalletinfo")["scanning"]
    for change in (False, True):
        assert wallet.call("getaddressinfo", vault.address(2400, change, R))["ismine"] is True

    txid = node.fund(vault.address(1500, False, R), 3_000_000)
    wait_for_wallet(rpc, wallet, [txid])
    assert wallet_balances(wallet).trusted == 3_000_000
    listed = wallet.call("listdescriptors")["descriptors"]
    again = cover_range(rpc, name, vault, 1501)  # already covered: nothing to do
    assert wallet.call("listdescriptors")["descriptors"] == listed
    assert again[0].next_index == 1501 and again[0].range_end == 1501 + DEFAULT_GAP - 1
    # a later `vault watch` keeps what issuance needs and imports nothing
    assert ensure_watch_wallet(rpc, name, vault, cover=1501).status == "already watching"


def test_a_new_wallet_is_imported_past_the_issued_range(rpc: RpcClient) -> None:
    vault, name = _vault(), _name()
    result = ensure_watch_wallet(rpc, name, vault, cover=1501)
    assert result.status == "created"
    assert result.branch("receive").range_end == result.branch("change").range_end == 1500 + DEFAULT_GAP


def test_a_scan_already_running_is_scan_in_progress_and_a_finished_scan_is_consistent(
    node: RegtestNode, rpc: RpcClient
) -> None:
    vault = _vault()
    # 60,000 2-of-3 scripts to derive keep the node's one scan slot busy for seconds
    slow = [{"desc": vault.receive(), "range": [0, 59_999]}]
    other = threading.Thread(target=_scan_until_aborted, args=(node, slow), daemon=True)
    other.start()
    try:
        deadline = time.monotonic() + 30
        while node.rpc().call("scantxoutset", "status") is None:  # poll until it runs
            assert other.is_alive() and time.monotonic() < deadline, "the slow scan never started"
        with pytest.raises(ScanInProgress, match="scantxoutset abort"):
            scan_vaults(rpc, vault_scan_objects(vault, 10))
    finally:
        deadline = time.monotonic() + 120
        while other.is_alive() and time.monotonic() < deadline:  # abort is seen once it scans
            node.rpc().call("scantxoutset", "abort")
            other.join(timeout=0.5)
    assert not other.is_alive()
    scan = scan_vaults(rpc, vault_scan_objects(vault, 10))  # the slot is free again
    assert scan.outputs == () and scan.best_block == rpc.get_block_hash(scan.height)


def _scan_until_aborted(node: RegtestNode, objects: list[dict[str, object]]) -> None:
    with contextlib.suppress(CustodyError):
        node.rpc().long_call_client().call_named("scantxoutset", action="start", scanobjects=objects)
