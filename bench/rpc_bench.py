"""1,000 ``getblockhash`` calls one by one against the same calls in JSON-RPC batches.

Starts its own regtest node (``regtest/install-bitcoind`` must have run, or set $BITCOIND) and
prints both times and the ratio, measured in this one run:

    .venv/bin/python -m bench.rpc_bench [--calls 1000] [--batch 1000]
"""

from __future__ import annotations

import argparse
import time

from custody.rpc import RpcClient
from regtest.node import RegtestNode


def run(calls: int, batch: int) -> None:
    with RegtestNode() as node:
        node.mine(200)
        height = node.rpc().get_block_count()
        heights = [i % (height + 1) for i in range(calls)]

        single = node.rpc()
        t0 = time.perf_counter()
        one_by_one = [single.get_block_hash(h) for h in heights]
        t_single = time.perf_counter() - t0

        batched = RpcClient(node.rpc_url, cookie_path=node.cookie_path, max_batch=batch)
        t0 = time.perf_counter()
        in_batches = batched.get_block_hashes(heights)
        t_batch = time.perf_counter() - t0

        assert one_by_one == in_batches, "batched results differ from single calls"
        print(f"getblockhash x{calls}")
        print(f"  one by one : {t_single * 1000:8.1f} ms  ({single.round_trips} HTTP round trips)")
        print(
            f"  batched    : {t_batch * 1000:8.1f} ms  ({batched.round_trips} HTTP round trips,"
            f" batch size {batch})"
        )
        print(f"  ratio      : batched is {t_single / t_batch:.1f}x faster")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=1000)
    args = parser.parse_args()
    run(args.calls, args.batch)


if __name__ == "__main__":
    main()
