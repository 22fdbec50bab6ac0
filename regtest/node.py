"""A regtest bitcoind under our control, after Bitcoin Core's functional-test ``TestNode``.

``RegtestNode`` writes a ``bitcoin.conf`` into a datadir (a fresh temporary one unless given), picks
free ports, starts ``bitcoind``, polls RPC with a deadline while checking that the process is still
alive (a node that dies is reported with the tail of its log), and stops it with ``stop`` then
waits, killing it after a timeout. As a context manager it keeps the datadir when the block raised
(or when ``keep=True``) so a failure can be inspected.

The node keeps a transaction index (``txindex=1``) unless ``txindex=False``: the service must
work against nodes without one too, and the tests run both.

It also has the helpers tests and the demo need: a miner wallet, ``mine`` and ``fund``.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path
from types import TracebackType

from custody.amount import btc_decimal
from custody.errors import CustodyError, NodeUnreachable, NodeWarmingUp, WalletAlreadyLoaded, WalletNotFound
from custody.rpc import RpcClient

MINER_WALLET = "miner"
INSTALLER = Path(__file__).resolve().parent / "install-bitcoind"
CACHE_GLOB = "reserve-ledger/bitcoin-*/bin/bitcoind"


class NodeError(CustodyError):
    """The regtest node could not be found, started or stopped."""


def find_bitcoind() -> Path:
    """The bitcoind to use, in the installer's order, without building anything.

    ``$BITCOIND``; a ``bitcoind`` on PATH; the installer's cache. Raises :class:`NodeError` saying
    how to get one when there is none.
    """
    if env := os.environ.get("BITCOIND"):
        path = Path(env)
        if not (path.is_file() and os.access(path, os.X_OK)):
            raise NodeError(f"$BITCOIND={env} is not an executable file")
        return path.resolve()
    cache = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
    cached = sorted(p for p in cache.glob(CACHE_GLOB) if (p.parent.parent / ".complete").exists())
    if cached:
        return cached[-1]
    if on_path := shutil.which("bitcoind"):
        return Path(on_path).resolve()
    raise NodeError(
        "no bitcoind found: run `regtest/install-bitcoind` (builds Bitcoin Core into ~/.cache, about "
        "15 minutes the first time) or set BITCOIND=/path/to/bitcoind (Bitcoin Core v28 or newer)"
    )


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RegtestNode:
    def __init__(
        self,
        bitcoind: Path | None = None,
        datadir: Path | None = None,
        *,
        keep: bool = False,
        extra_args: Sequence[str] = (),
        rpc_timeout: float = 60.0,
        txindex: bool = True,
    ) -> None:
        self.bitcoind = bitcoind or find_bitcoind()
        self._temp = datadir is None
        self.datadir = Path(tempfile.mkdtemp(prefix="reserve-regtest-")) if datadir is None else datadir
        self.keep = keep
        self.extra_args = tuple(extra_args)
        self.rpc_timeout = rpc_timeout
        self.txindex = txindex
        self.process: subprocess.Popen[bytes] | None = None
        self.rpc_port, self.p2p_port = self._ports()

    # ---- configuration -------------------------------------------------------------------------
    @property
    def conf_path(self) -> Path:
        return self.datadir / "bitcoin.conf"

    @property
    def cookie_path(self) -> Path:
        return self.datadir / "regtest" / ".cookie"

    @property
    def log_path(self) -> Path:
        return self.datadir / "regtest" / "debug.log"

    @property
    def rpc_url(self) -> str:
        return f"http://127.0.0.1:{self.rpc_port}"

    def _ports(self) -> tuple[int, int]:
        """Reuse the ports of an existing conf (a persistent demo node), else pick free ones."""
        if self.conf_path.exists():
            values = dict(
                line.split("=", 1) for line in self.conf_path.read_text().splitlines() if "=" in line
            )
            return int(values["rpcport"]), int(values["port"])
        return free_port(), free_port()

    def write_conf(self) -> None:
        self.datadir.mkdir(parents=True, exist_ok=True)
        self.conf_path.write_text(
            "regtest=1\n"
            "[regtest]\n"
            f"rpcport={self.rpc_port}\n"
            f"port={self.p2p_port}\n"
            "rpcbind=127.0.0.1\n"
            "rpcallowip=127.0.0.1\n"
            "server=1\n"
            "listen=0\n"
            "dnsseed=0\n"
            "fixedseeds=0\n"
            f"txindex={int(self.txindex)}\n"
            "fallbackfee=0.0001\n"
            "rpcworkqueue=64\n"
            "printtoconsole=0\n"
        )

    # ---- life cycle ----------------------------------------------------------------------------
    def rpc(self, wallet: str | None = None, timeout: float | None = None) -> RpcClient:
        client = RpcClient(self.rpc_url, cookie_path=self.cookie_path, timeout=timeout or self.rpc_timeout)
        return client if wallet is None else client.wallet(wallet)

    def start(self, timeout: float = 60.0, *, detach: bool = False) -> None:
        """Start bitcoind and wait until RPC answers; ``detach`` leaves it running after we exit."""
        if not self.conf_path.exists():
            self.write_conf()
        self.cookie_path.unlink(missing_ok=True)
        stderr = (self.datadir / "stderr.log").open("ab")
        self.process = subprocess.Popen(
            [str(self.bitcoind), f"-datadir={self.datadir}", *self.extra_args],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
            start_new_session=detach,
        )
        stderr.close()
        self.wait_for_rpc(timeout)

    def wait_for_rpc(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        last: Exception | None = None
        while time.monotonic() < deadline:
            if self.process is not None and self.process.poll() is not None:
                raise NodeError(
                    f"bitcoind exited with code {self.process.returncode} while starting; "
                    f"datadir {self.datadir}\n{self.log_tail()}"
                )
            if self.cookie_path.exists():
                try:
                    self.rpc(timeout=5).get_block_count()
                    return
                except (NodeUnreachable, NodeWarmingUp) as e:
                    last = e
            time.sleep(0.05)
        raise NodeError(
            f"bitcoind RPC did not answer within {timeout:.0f}s ({last}); datadir {self.datadir}\n"
            f"{self.log_tail()}"
        )

    def is_running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def check_alive(self) -> None:
        """Raise with the log tail if the process has died (e.g. killed with SIGKILL)."""
        if self.process is not None and self.process.poll() is not None:
            raise NodeError(
                f"bitcoind died (exit code {self.process.returncode}); datadir {self.datadir}\n"
                f"{self.log_tail()}"
            )

    def stop(self, timeout: float = 30.0) -> None:
        """Ask the node to stop, wait for it, kill it if it does not stop in time."""
        if self.process is None:
            return
        if self.process.poll() is None:
            try:
                self.rpc(timeout=10).call("stop")
            except CustodyError:
                self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)
        self.process = None

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def cleanup(self) -> None:
        if self._temp and not self.keep:
            shutil.rmtree(self.datadir, ignore_errors=True)

    def __enter__(self) -> RegtestNode:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
        if exc_type is not None:
            self.keep = True
        self.cleanup()

    def log_tail(self, lines: int = 25) -> str:
        chunks = []
        for path in (self.datadir / "stderr.log", self.log_path):
            if path.exists():
                tail = path.read_text(errors="replace").splitlines()[-lines:]
                chunks.append(f"--- last lines of {path} ---\n" + "\n".join(tail))
        return "\n".join(chunks) or "(no log written)"

    # ---- helpers for tests and the demo --------------------------------------------------------
    def miner(self) -> RpcClient:
        """The miner wallet (created on first use)."""
        client = self.rpc()
        loaded = client.call("listwallets")
        if MINER_WALLET not in loaded:
            try:
                client.call("loadwallet", MINER_WALLET)
            except WalletNotFound:
                client.createwallet(MINER_WALLET, disable_private_keys=False, blank=False)
            except WalletAlreadyLoaded:
                pass
        return client.wallet(MINER_WALLET)

    def mine(self, blocks: int = 1, address: str | None = None) -> list[str]:
        """Mine ``blocks`` blocks to ``address`` (default: the miner wallet)."""
        if address is None:
            address = str(self.miner().call("getnewaddress"))
        hashes = [str(h) for h in self.rpc().call("generatetoaddress", blocks, address)]
        self.sync_wallets()
        return hashes

    def sync_wallets(self) -> None:
        """Wait until every wallet has seen what the node has (blocks and mempool transactions
        reach wallets through a queue; Core's tests wait on it the same way)."""
        self.rpc().call("syncwithvalidationinterfacequeue")

    def ensure_mature_funds(self, sat: int) -> None:
        """Make sure the miner wallet can spend ``sat`` (mines 101+ blocks on a new chain)."""
        miner = self.miner()
        while Decimal(miner.call("getbalances")["mine"]["trusted"]) < btc_decimal(sat):
            self.mine(101 if self.rpc().get_block_count() < 101 else 10)

    def fund(self, address: str, sat: int, *, confirm: bool = True) -> str:
        """Send ``sat`` from the miner wallet to ``address``; mine one block if ``confirm``."""
        self.ensure_mature_funds(sat + 1_000_000)
        txid = str(self.miner().call("sendtoaddress", address, btc_decimal(sat)))
        if confirm:
            self.mine(1)
        else:
            self.sync_wallets()
        return txid
