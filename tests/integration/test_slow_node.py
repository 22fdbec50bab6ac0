"""Gather, judge, write: no command holds the database's write lock while it waits on the node.

The chain-touching commands, ``reserve audit``, ``reserve sync``, ``reserve record deposit`` and
``reserve vault address``, run as their own processes against a slow node: each talks to a
JSON-RPC proxy on loopback that holds every request it forwards until the test lets it go (or
:data:`HOLD_S` passes). Each time all of them are waiting on a reply, the test records a manual
entry between non-vault accounts on the same database (SQLite file, or PostgreSQL) and checks it
completes at once, while every request is still held. A command that kept a write transaction
open across any one of its RPC calls makes that record (or another command) wait (SQLite: the
write lock taken by ``BEGIN IMMEDIATE``) until the proxy gives up holding, and the test fails.

Then the write steps re-check what they relied on: sync and record book their deposits, the
addresses are handed out, and the audit, whose journal grew while it read the chain, refuses to
store itself.
"""

from __future__ import annotations

import http.client
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

from regtest.node import RegtestNode
from tests.fixtures.reserve import Reserve, Result

REPO = Path(__file__).resolve().parents[2]

HOLD_S = 10.0
"""The longest the proxy holds one request (it then forwards it anyway): the node's delay."""

AT_ONCE_S = HOLD_S / 5
"""A record made while the commands wait on the node must finish well within the delay."""

RUN_DEADLINE_S = 300.0
"""How long both commands may take in all (every one of their calls is held once)."""


@dataclass
class HoldingProxy:
    """A threaded HTTP proxy in front of the node that holds each request until :meth:`release`.

    :meth:`wait_held` returns once a request is held (or the command's process has ended); the
    ``expired`` count says how many requests were forwarded because nobody released them within
    :data:`HOLD_S`.
    """

    node_host: str
    node_port: int
    held_methods: list[str] = field(default_factory=list)
    expired: int = 0
    _held: int = 0
    _generation: int = 0
    _cond: threading.Condition = field(default_factory=threading.Condition)
    _server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def start(self) -> None:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                proxy.hold(_methods(body))
                status, reply = proxy.forward(self.path, self.headers.get("Authorization", ""), body)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (stdlib's name)
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="slow-node", daemon=True).start()

    def stop(self) -> None:
        self.release()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def forward(self, path: str, authorization: str, body: bytes) -> tuple[int, bytes]:
        conn = http.client.HTTPConnection(self.node_host, self.node_port, timeout=600)
        try:
            conn.request(
                "POST", path, body, {"Authorization": authorization, "Content-Type": "application/json"}
            )
            response = conn.getresponse()
            return response.status, response.read()
        finally:
            conn.close()

    def hold(self, method: str) -> None:
        with self._cond:
            generation = self._generation
            self._held += 1
            self.held_methods.append(method)
            self._cond.notify_all()
            if not self._cond.wait_for(lambda: self._generation != generation, timeout=HOLD_S):
                self._held -= 1
                self.expired += 1

    def release(self) -> None:
        """Let every request held now go on to the node."""
        with self._cond:
            self._generation += 1
            self._held = 0
            self._cond.notify_all()

    def wait_held(self, done: threading.Event, deadline: float) -> bool:
        """True once a request is held, False once the command has ended (``done``)."""
        with self._cond:
            while not self._held:
                if done.is_set():
                    return False
                left = deadline - time.monotonic()
                assert left > 0, f"the command neither called the node nor ended (calls: {self.held_methods})"
                self._cond.wait(left)
            return True

    def notify(self) -> None:
        with self._cond:
            self._cond.notify_all()


def _methods(body: bytes) -> str:
    payload = json.loads(body)
    calls = payload if isinstance(payload, list) else [payload]
    return "+".join(sorted({str(c.get("method")) for c in calls}))


@dataclass
class Command:
    """One ``reserve`` process whose node is a :class:`HoldingProxy`."""

    name: str
    proxy: HoldingProxy
    proc: subprocess.Popen[str]
    done: threading.Event = field(default_factory=threading.Event)
    out: str = ""
    err: str = ""

    def watch(self) -> None:
        """Collect the output on a thread and wake :meth:`HoldingProxy.wait_held` at the end."""

        def run() -> None:
            self.out, self.err = self.proc.communicate()
            self.done.set()
            self.proxy.notify()

        threading.Thread(target=run, name=f"watch-{self.name}", daemon=True).start()


@pytest.fixture
def slow_node(node: RegtestNode) -> Iterator[Callable[[], HoldingProxy]]:
    """Factory: a new :class:`HoldingProxy` in front of the node (one per command)."""
    host, port = node.rpc_url.removeprefix("http://").rsplit(":", 1)
    proxies: list[HoldingProxy] = []

    def make() -> HoldingProxy:
        proxy = HoldingProxy(host, int(port))
        proxy.start()
        proxies.append(proxy)
        return proxy

    try:
        yield make
    finally:
        for p in proxies:
            p.stop()


def start(reserve: Reserve, proxy: HoldingProxy, *args: str) -> Command:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "ledger.cli.main",
            "--signing-key",
            str(reserve.key_path),
            "--rpc-url",
            proxy.url,
            "--rpc-cookie",
            str(reserve.node.cookie_path),
            *args,
        ],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    command = Command(" ".join(args[:2]), proxy, proc)
    command.watch()
    return command


def record_manual(reserve: Reserve, ref: str, results: list[Result]) -> None:
    """A manual entry between two non-vault accounts (no node involved); its result is appended
    to ``results``."""
    r = reserve.run(
        "record",
        "--kind",
        "adjustment",
        "--memo",
        "fee refund owed",
        "--posting",
        "exchange-a=1000sat",
        "--posting",
        "owner=-1000sat",
        "--ref",
        ref,
    )
    results.append(r)


def test_record_completes_at_once_while_chain_commands_wait_on_a_slow_node(
    reserve: Reserve, node: RegtestNode, slow_node: Callable[[], HoldingProxy]
) -> None:
    synced, recorded = reserve.add_vault("slow-sync"), reserve.add_vault("slow-record")
    deposit = node.fund(synced.address(), 70_000_000)  # confirmed, not booked: sync books it
    other_deposit = node.fund(recorded.address(), 20_000_000)  # and `record deposit` this one
    reserve.ok("account", "add", "exchange-a", "--type", "custodian")
    reserve.ok("account", "add", "owner", "--type", "equity")

    commands = [
        start(reserve, slow_node(), "audit", "--json"),
        start(reserve, slow_node(), "sync", "--vault", synced.name, "--json"),
        start(reserve, slow_node(), "record", "deposit", "--vault", recorded.name, "--txid", other_deposit),
        # far past the watched range: the wallet's range is topped up (keypoolrefill) first
        start(reserve, slow_node(), "vault", "address", synced.name, "--index", "1500", "--json"),
    ]
    deadline = time.monotonic() + RUN_DEADLINE_S
    records = 0
    results: list[Result] = []
    recorder: threading.Thread | None = None
    try:
        while True:
            waiting = [c for c in commands if c.proxy.wait_held(c.done, deadline)]
            if not waiting:
                break
            late = {c.name: c.proxy.expired for c in commands if c.proxy.expired}
            assert not late, (
                f"calls held {HOLD_S} s and let go while the test waited for the other command to "
                f"call the node ({late}): one command blocked the other (a write lock across RPC?)"
            )
            calls = {c.name: c.proxy.held_methods[-1] for c in waiting}
            recorder = threading.Thread(
                target=record_manual, args=(reserve, f"slow-node-{records}", results), name="record"
            )
            began = time.monotonic()
            recorder.start()
            recorder.join(AT_ONCE_S)
            took = time.monotonic() - began
            assert not recorder.is_alive(), (
                f"record still waits after {took:.1f} s while {calls} wait on the node (step "
                f"{records}): a command holds the database's write lock across its RPC call"
            )
            r = results[-1]
            assert r.code == 0, f"record failed while {calls} waited on the node: {r.err}"
            assert all(c.proxy.expired == 0 for c in waiting), (
                f"a held call was let go before the record finished ({calls}): the record waited on it"
            )
            records += 1
            for c in waiting:
                c.proxy.release()
    finally:
        for c in commands:
            if c.proc.poll() is None:
                c.proc.kill()
                c.done.wait(30)
        if recorder is not None:
            recorder.join(90)  # the commands are gone: a blocked record ends (or times out) now

    audit, sync, record, address = commands
    assert {"scantxoutset", "listtransactions"} <= set(audit.proxy.held_methods), audit.proxy.held_methods
    assert "listtransactions" in sync.proxy.held_methods, sync.proxy.held_methods
    assert "keypoolrefill" in address.proxy.held_methods, address.proxy.held_methods
    assert records >= max(len(c.proxy.held_methods) for c in commands), records
    # each write step re-checks what it relied on, and books
    assert sync.proc.returncode == 0, sync.err
    assert [m["txid"] for m in json.loads(sync.out)["movements"]] == [deposit]
    assert record.proc.returncode == 0, record.err
    assert other_deposit in record.out
    assert address.proc.returncode == 0, address.err
    assert json.loads(address.out) == [{"index": 1500, "branch": "receive", "address": synced.address(1500)}]
    # the audit read a journal that grew meanwhile: its write step refuses to store it
    assert audit.proc.returncode not in (0, 1), (audit.out, audit.err)
    assert "changed while the audit ran" in audit.err + audit.out, (audit.out, audit.err)
    assert reserve.ok("ledger", "verify").code == 0
