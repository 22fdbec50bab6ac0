"""Audit cost: batched RPC against a naive one-call-per-request audit, and how it scales.

In one run, on its own regtest node and a fresh SQLite ledger: 3 watched 2-of-3 vaults receive
N deposits (sent 20 per block, recorded with ``reserve sync``); then ``run_audit`` is timed

- with the project's client (JSON-RPC batches of up to 1,000 calls), and
- with the same audit through a client capped at one call per HTTP request (the naive audit:
  one round trip per entry and per lookup),

printing times, HTTP round trips and the ratio at 1,000 movements, and the batched audit's time at
100, 1,000 and 5,000 movements:

    .venv/bin/python -m bench.audit_bench [--sizes 100,1000,5000] [--naive-at 1000]
"""

from __future__ import annotations

import argparse
import secrets
import tempfile
import time
from pathlib import Path

from sqlalchemy.orm import Session

from custody.amount import btc_decimal
from custody.descriptor import MultisigDescriptor
from custody.keygen import test_key_from_seed
from custody.network import Network
from custody.rpc import RpcClient
from custody.wallet import ensure_watch_wallet
from ledger.chain.audit import run_audit
from ledger.chain.recording import VaultScripts, session_factories, wallet_ranges
from ledger.chain.sync import sync
from ledger.chain.vaults import add_vault, list_vaults, policy_of
from ledger.journal.checkpoint import create_signing_key, public_key_pem
from ledger.store.db import make_engine
from ledger.store.migrate import upgrade
from regtest.node import RegtestNode

PER_BLOCK = 20


def make_vaults(node: RegtestNode, session: Session, count: int) -> list[MultisigDescriptor]:
    out = []
    for i in range(count):
        keys = tuple(test_key_from_seed(secrets.token_bytes(32), Network.REGTEST) for _ in range(3))
        desc = MultisigDescriptor.from_keys(2, keys)
        vault = add_vault(
            session, f"v{i}", desc, ("a", "b", "c"), Network.REGTEST, policy_of(2, 2), birthday_height=None
        )
        ensure_watch_wallet(node.rpc(), vault.wallet_name, desc)
        out.append(desc)
    return out


def deposit(node: RegtestNode, vaults: list[MultisigDescriptor], start: int, count: int) -> None:
    miner = node.miner()
    done = 0
    while done < count:
        n = min(PER_BLOCK, count - done)
        calls = []
        for k in range(n):
            i = start + done + k
            address = vaults[i % len(vaults)].address(i // len(vaults), False, Network.REGTEST)
            calls.append(("sendtoaddress", (address, btc_decimal(10_000 + i))))
        miner.batch(calls)
        node.mine(1)
        done += n


def timed_audit(session: Session, client: RpcClient, pem: bytes) -> tuple[float, int, bool]:
    before = client.round_trips
    t0 = time.perf_counter()
    report = run_audit(session, client, pem)
    return time.perf_counter() - t0, client.round_trips - before, report.ok


def scan_seconds(session: Session, client: RpcClient) -> float:
    """The node's own share of the audit: one scantxoutset pass over the same descriptors."""
    vaults = list_vaults(session, include_retired=True)
    scripts = VaultScripts.of(vaults, wallet_ranges(client, vaults))
    objs = [
        {"desc": d, "range": [0, scripts.ranges[v.name] - 1]}
        for v in vaults
        for d in (v.descriptor.receive(), v.descriptor.change())
    ]
    t0 = time.perf_counter()
    client.call("scantxoutset", "start", objs)
    return time.perf_counter() - t0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="100,1000,5000")
    parser.add_argument("--naive-at", type=int, default=1000)
    args = parser.parse_args()
    sizes = sorted(int(s) for s in args.sizes.split(","))
    work = Path(tempfile.mkdtemp(prefix="audit-bench-"))
    key = create_signing_key(work / "key")
    pem = public_key_pem(key)
    engine = make_engine(f"sqlite:///{work / 'reserve.db'}")
    upgrade(engine)
    with RegtestNode(extra_args=["-maxmempool=1000"]) as node:
        node.ensure_mature_funds(200 * 100_000_000)  # 20 sends a block: always confirmed coins to spend
        with Session(engine) as s, s.begin():
            vaults = make_vaults(node, s, 3)
        have = 0
        print(f"{'movements':>10} {'audit (batched)':>16} {'round trips':>12} {'of which UTXO scan':>19}")
        for size in sizes:
            deposit(node, vaults, have, size - have)
            have = size
            sync(*session_factories(engine), node.rpc())
            with Session(engine) as s:
                seconds, trips, ok = timed_audit(s, node.rpc(), pem)
            assert ok, "the bench audit should reconcile"
            with Session(engine) as s:
                scan = scan_seconds(s, node.rpc())
            print(f"{size:>10} {seconds * 1000:>13.0f} ms {trips:>12} {scan * 1000:>16.0f} ms")
            if size == args.naive_at:
                naive = RpcClient(node.rpc_url, cookie_path=node.cookie_path, max_batch=1)
                with Session(engine) as s:
                    n_seconds, n_trips, n_ok = timed_audit(s, naive, pem)
                assert n_ok
                print(
                    f"{'':>10} naive (1 call per request): {n_seconds * 1000:.0f} ms, {n_trips} round trips"
                    f" -> batched is {n_seconds / seconds:.1f}x faster with {n_trips / trips:.0f}x fewer"
                    " round trips"
                )
                print(
                    f"{'':>10} without the node's UTXO scan: naive {(n_seconds - scan) * 1000:.0f} ms,"
                    f" batched {(seconds - scan) * 1000:.0f} ms"
                    f" -> ratio {(n_seconds - scan) / (seconds - scan):.1f}x"
                )
    engine.dispose()


if __name__ == "__main__":
    main()
