"""Attestation cost: batched reads and per-block proofs against a naive one-call-per-UTXO version.

In one run, on its own regtest node and a fresh SQLite ledger: 3 watched 2-of-3 vaults receive
1,000 outputs in total (one deposit transaction each, 20 a block), booked
with ``reserve sync``. Then, each timed and its HTTP round trips counted (every JSON-RPC request to
the node, wallet endpoints included):

- **attest**: read the chain at the tip (:func:`custody.chain_at.snapshot_at`: the vaults' wallet
  histories, transactions, one ``gettxoutproof`` per block, the headers) and write the signed
  attestation (checkpoint, document, record). Batched: the project's client (JSON-RPC batches);
  naive: the same code through a client capped at one call per HTTP request, so every
  transaction, proof and header is its own round trip;
- **offline verification**: :func:`ledger.attest.verify_doc.verify_attestation` (everything: the
  signature, proofs, headers, outputs, sums, checkpoint and entries) against a naive verifier
  that checks output by output: its own Merkle proof walk, its transaction parsed and hashed, its
  descriptor parsed and its script derived, its header chain walked up to H;
- **verification against the node** (``attest verify --node``): UTXO set, spends after H, best chain.

Printed as times, round trips and ratios (one run)::

    .venv/bin/python -m bench.attest_bench [--utxos 1000]
"""

from __future__ import annotations

import argparse
import datetime as dt
import secrets
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from custody.amount import btc_decimal
from custody.chain_at import snapshot_at
from custody.descriptor import MultisigDescriptor
from custody.keygen import test_key_from_seed
from custody.merkleblock import BlockHeader, MerkleBlock, RawTx, header_chain_findings
from custody.network import Network
from custody.rpc import RpcClient
from custody.wallet import ensure_watch_wallet
from ledger.attest import wsh_descriptor
from ledger.attest.node_check import DEFAULT_GAP, check_against_node
from ledger.attest.store import read_vaults, write_attestation
from ledger.attest.verify_doc import verify_attestation
from ledger.chain.recording import session_factories
from ledger.chain.sync import sync
from ledger.chain.vaults import add_vault, policy_of
from ledger.journal.checkpoint import create_signing_key, public_key_pem
from ledger.store.db import make_engine
from ledger.store.migrate import upgrade
from regtest.node import RegtestNode

PER_BLOCK = 20
T = TypeVar("T")
_trips = [0]


@contextmanager
def counting() -> Iterator[None]:
    """Count every HTTP request any :class:`RpcClient` sends (clones for wallets included)."""
    original = RpcClient._post

    def post(self: RpcClient, payload: Any) -> Any:
        _trips[0] += 1
        return original(self, payload)

    RpcClient._post = post  # type: ignore[method-assign]
    try:
        yield
    finally:
        RpcClient._post = original  # type: ignore[method-assign]


def measured(f: Callable[[], T]) -> tuple[T, float, int]:
    before = _trips[0]
    t0 = time.perf_counter()
    out = f()
    return out, time.perf_counter() - t0, _trips[0] - before


def make_vaults(node: RegtestNode, session: Session) -> list[MultisigDescriptor]:
    out = []
    for i in range(3):
        keys = tuple(test_key_from_seed(secrets.token_bytes(32), Network.REGTEST) for _ in range(3))
        desc = MultisigDescriptor.from_keys(2, keys)
        vault = add_vault(
            session, f"v{i}", desc, ("a", "b", "c"), Network.REGTEST, policy_of(2, 2), birthday_height=None
        )
        ensure_watch_wallet(node.rpc(), vault.wallet_name, desc)
        out.append(desc)
    return out


def deposit(node: RegtestNode, vaults: list[MultisigDescriptor], count: int) -> None:
    """One transaction per output (as deposits arrive), ``PER_BLOCK`` a block."""
    miner = node.miner()
    for start in range(0, count, PER_BLOCK):
        calls = []
        for i in range(start, min(start + PER_BLOCK, count)):
            address = vaults[i % len(vaults)].address(i // len(vaults), False, Network.REGTEST)
            calls.append(("sendtoaddress", (address, btc_decimal(10_000 + i))))
        miner.batch(calls)
        node.mine(1)


def naive_offline(doc: dict[str, Any]) -> int:
    """Output by output: its proof walked, its transaction parsed, its script derived from a freshly
    parsed descriptor, its header chain from its block up to H. Returns the outputs checked."""
    headers = [BlockHeader.from_hex(h) for h in doc["headers"]["hex"]]
    start, checked = doc["headers"]["start"], 0
    for v in doc["vaults"]:
        for o in v["outputs"]:
            assert o["txid"] in MerkleBlock.from_hex(doc["proofs"][o["block_hash"]]).matched_txids()
            tx = RawTx.from_hex(doc["transactions"][o["txid"]])
            assert tx.txid == o["txid"] and tx.outputs[o["vout"]][0] == o["amount"]
            desc = wsh_descriptor.parse(v["descriptor"])
            assert desc.witness_script(o["branch"], o["index"])
            assert not header_chain_findings(headers[o["height"] - start :], doc["block_hash"])
            checked += 1
    return checked


def node_check(rpc: RpcClient, doc: dict[str, Any]) -> list[str]:
    """What `attest verify --node` does (outputs unspent at H, none left out, best chain)."""
    return check_against_node(rpc, doc, DEFAULT_GAP)[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--utxos", type=int, default=1000)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="attest-bench-"))
    key = create_signing_key(work / "key")
    engine = make_engine(f"sqlite:///{work / 'reserve.db'}")
    upgrade(engine)
    with RegtestNode(extra_args=["-maxmempool=1000"]) as node, counting():
        node.ensure_mature_funds(50 * 100_000_000)
        with Session(engine) as s, s.begin():
            vaults = make_vaults(node, s)
        deposit(node, vaults, args.utxos)
        sync(*session_factories(engine), node.rpc())
        with Session(engine) as s, s.begin():
            specs, infos = read_vaults(s)
        batched = node.rpc()
        naive = RpcClient(node.rpc_url, cookie_path=node.cookie_path, max_batch=1)

        def attest(client: RpcClient) -> dict[str, Any]:
            chain = snapshot_at(client, specs, None)
            with Session(engine) as s, s.begin():
                doc, _ = write_attestation(s, key, chain, infos, dt.datetime.now(dt.UTC).isoformat())
            return doc

        doc, a_s, a_trips = measured(lambda: attest(batched))
        _, na_s, na_trips = measured(lambda: attest(naive))
        n_outputs = sum(len(v["outputs"]) for v in doc["vaults"])
        assert n_outputs == args.utxos, n_outputs
        result, v_s, _ = measured(lambda: verify_attestation(doc, [public_key_pem(key)]))
        assert result.ok, result.lines()
        _, nv_s, _ = measured(lambda: naive_offline(doc))
        found, c_s, c_trips = measured(lambda: node_check(batched, doc))
        assert not found, found
        _, nc_s, nc_trips = measured(lambda: node_check(naive, doc))

    size = len(json_bytes(doc))
    print(
        f"{n_outputs} UTXOs in 3 vaults, {len(doc['proofs'])} blocks, {len(doc['transactions'])} "
        f"transactions, {len(doc['ledger']['entries'])} journal entries; document {size / 1e6:.2f} MB"
    )
    print(f"{'':<26} {'batched':>18} {'naive':>22} {'ratio':>16}")
    rows = [
        ("attest", a_s, a_trips, na_s, na_trips),
        ("verify offline", v_s, 0, nv_s, 0),
        ("verify against the node", c_s, c_trips, nc_s, nc_trips),
    ]
    for name, s1, t1, s2, t2 in rows:
        trips = f"{t2 / t1:>5.0f}x trips" if t1 else ""
        print(
            f"{name:<26} {s1 * 1000:>8.0f} ms {t1:>4} rt {s2 * 1000:>10.0f} ms {t2:>6} rt "
            f"{s2 / s1:>5.1f}x time {trips}"
        )
    total_1, total_2 = a_s + v_s, na_s + nv_s
    name = "attest + offline verify"
    print(
        f"{name:<26} {total_1 * 1000:>8.0f} ms {a_trips:>4} rt {total_2 * 1000:>10.0f} ms "
        f"{na_trips:>6} rt {total_2 / total_1:>5.1f}x time {na_trips / a_trips:>5.0f}x trips"
    )
    engine.dispose()


def json_bytes(doc: dict[str, Any]) -> bytes:
    from ledger.attest.verify_doc import canonical_bytes

    return canonical_bytes(doc)


if __name__ == "__main__":
    main()
