"""The RPC client's transport errors against real local sockets (no bitcoind, no mock): a server
that takes the connection and never answers is a node that *did not answer within N seconds*,
which is not one that cannot be reached."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from custody.errors import NodeTimedOut, NodeUnreachable
from custody.rpc import RpcClient
from ledger.cli.main import describe_error


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A listening socket that completes TCP connections (the kernel's backlog) and never replies."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        yield int(server.getsockname()[1])


def client(port: int, timeout: float = 0.3) -> RpcClient:
    return RpcClient(f"http://127.0.0.1:{port}", user="u", password="secret-pw", timeout=timeout)


def test_a_node_that_takes_the_request_and_never_answers_timed_out(silent_port: int) -> None:
    with pytest.raises(NodeTimedOut) as e:
        client(silent_port).call("getblockcount")
    text = str(e.value)
    assert text.startswith("bitcoind did not answer within 0.3 seconds (getblockcount) at http://127.0.0.1:")
    assert "cannot reach" not in text and "secret-pw" not in text
    assert "RESERVE_RPC_TIMEOUT" in text
    assert describe_error(e.value)[0].code == "node-timeout"
    assert isinstance(e.value, NodeUnreachable)  # callers that give up on a silent node still do


def test_a_batch_that_times_out_names_its_calls(silent_port: int) -> None:
    calls = [("getblockhash", (h,)) for h in range(5)] + [("getblockheader", ("00" * 32,))]
    with pytest.raises(
        NodeTimedOut, match=r"within 0.2 seconds \(a batch of 6 calls: getblockhash, getblockheader\)"
    ):
        client(silent_port, timeout=0.2).batch(calls)


def test_a_closed_port_cannot_be_reached_and_is_no_timeout() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = int(s.getsockname()[1])  # bound, not listening: connections are refused
        with pytest.raises(NodeUnreachable) as e:
            client(port).call("getblockcount")
    assert not isinstance(e.value, NodeTimedOut)
    assert "cannot reach bitcoind" in str(e.value)
    assert describe_error(e.value)[0].code == "node-unreachable"
