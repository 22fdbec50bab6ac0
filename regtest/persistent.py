"""The persistent demo node behind ``reserve regtest start|stop|status``.

It lives in ``./.reserve-regtest/`` (git-ignored), keeps its chain and ports between runs and runs
detached, so the CLI can be pointed at it with the two settings :func:`env_lines` prints.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

from custody.errors import CustodyError
from regtest.node import NodeError, RegtestNode

DEFAULT_DIR = Path(".reserve-regtest")


@dataclass(frozen=True, slots=True)
class DemoNodeStatus:
    datadir: Path
    running: bool
    rpc_url: str | None
    cookie_path: Path | None
    height: int | None


def _node(datadir: Path) -> RegtestNode:
    return RegtestNode(datadir=datadir.resolve(), keep=True)


def env_lines(status: DemoNodeStatus) -> list[str]:
    return [
        f"export RESERVE_RPC_URL={status.rpc_url}",
        f"export RESERVE_RPC_COOKIE={status.cookie_path}",
    ]


def status(datadir: Path = DEFAULT_DIR) -> DemoNodeStatus:
    if not (datadir / "bitcoin.conf").exists():
        return DemoNodeStatus(datadir.resolve(), False, None, None, None)
    node = _node(datadir)
    try:
        height = node.rpc(timeout=5).get_block_count()
    except CustodyError:
        return DemoNodeStatus(node.datadir, False, node.rpc_url, node.cookie_path, None)
    return DemoNodeStatus(node.datadir, True, node.rpc_url, node.cookie_path, height)


def start(datadir: Path = DEFAULT_DIR) -> DemoNodeStatus:
    """Start the demo node if it is not running; either way return its status."""
    current = status(datadir)
    if current.running:
        return current
    node = _node(datadir)
    node.start(detach=True)
    return status(datadir)


def stop(datadir: Path = DEFAULT_DIR, timeout: float = 60.0) -> DemoNodeStatus:
    current = status(datadir)
    if not current.running:
        return current
    node = _node(datadir)
    node.rpc(timeout=10).call("stop")
    deadline = time.monotonic() + timeout
    pidfile = node.datadir / "regtest" / "bitcoind.pid"
    while time.monotonic() < deadline:
        if not pidfile.exists() and not status(datadir).running:
            return status(datadir)
        time.sleep(0.1)
    raise NodeError(f"the demo node in {node.datadir} did not stop within {timeout:.0f}s")
