"""10,000 receive addresses of a 2-of-3 vault derived locally against bitcoind's ``deriveaddresses``.

Starts its own regtest node (``regtest/install-bitcoind`` must have run, or set $BITCOIND), makes
a 2-of-3 ``wsh(sortedmulti)`` vault from three random test keys, derives the same range both ways
in this one run, checks the addresses are equal and prints both times and the ratio:

    .venv/bin/python -m bench.derive_bench [--count 10000]

The goal is local derivation at least as fast as bitcoind's (ratio >= 1).
"""

from __future__ import annotations

import argparse
import os
import time

from custody.descriptor import MultisigDescriptor
from custody.keygen import test_key_from_seed
from custody.network import Network
from regtest.node import RegtestNode


def run(count: int) -> None:
    keys = [test_key_from_seed(os.urandom(32), Network.REGTEST) for _ in range(3)]
    vault = MultisigDescriptor.from_keys(2, keys)
    with RegtestNode(rpc_timeout=600) as node:
        rpc = node.rpc()
        t0 = time.perf_counter()
        by_node = rpc.call("deriveaddresses", vault.receive(), [0, count - 1])
        t_node = time.perf_counter() - t0

        fresh = MultisigDescriptor.parse(str(vault))  # no cached branch nodes: count them in
        t0 = time.perf_counter()
        local = fresh.addresses(0, count, False, Network.REGTEST)
        t_local = time.perf_counter() - t0

    assert local == by_node, "local addresses differ from bitcoind's deriveaddresses"
    print(f"2-of-3 wsh(sortedmulti) receive addresses 0..{count - 1}")
    print(f"  bitcoind deriveaddresses : {t_node * 1000:8.1f} ms (one RPC call)")
    print(f"  local (coincurve)        : {t_local * 1000:8.1f} ms")
    verdict = "faster" if t_node >= t_local else "SLOWER"
    print(f"  ratio                    : local is {t_node / t_local:.2f}x as fast ({verdict})")


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--count", type=int, default=10_000)
    args = parser.parse_args()
    run(args.count)


if __name__ == "__main__":
    main()
