"""A typed Bitcoin Core JSON-RPC client.

Transport after Bitcoin Core's ``test_framework/authproxy.py``: the standard library's
``http.client`` over one kept-alive connection, HTTP Basic auth from the node's cookie file or
from a user/password given by the caller (taken from the environment, never argv), a timeout on
every request, and ``/wallet/<name>`` endpoints for wallet calls. JSON is parsed with
``parse_float=Decimal`` so that no amount ever becomes a float; :mod:`custody.amount` converts to
satoshis.

Many calls go out as JSON-RPC batches (one HTTP round trip per ``max_batch`` calls). Errors map
to :mod:`custody.errors`: :class:`NodeUnreachable` when there is no usable answer (the message
names the URL, never the credentials), :class:`NodeTimedOut` when the node took the connection
but did not answer in time (busy, not gone: the message says how long was waited and for what),
and :class:`RpcError` subclasses carrying Core's code.
"""

from __future__ import annotations

import base64
import http.client
import json
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlsplit

from custody.errors import InvalidInput, NodeTimedOut, NodeUnreachable, RpcError, rpc_error

DEFAULT_MAX_BATCH = 1000
LONG_CALL_TIMEOUT_S = 24 * 3600.0
"""The timeout of one call that may read the whole chain or UTXO set (``scantxoutset``, an
``importdescriptors`` that rescans, a large ``keypoolrefill``): on mainnet such a call takes
minutes to hours, so it goes out on its own connection (:meth:`RpcClient.long_call_client`)."""

Call = tuple[str, Sequence[Any]]
_SAME: Any = object()  # "keep the current value" for RpcClient.clone


def _encode_default(o: object) -> Any:
    if isinstance(o, Decimal):
        return str(o)  # Core's AmountFromValue accepts amounts as strings: exact, no float
    raise TypeError(f"{type(o).__name__} is not JSON serialisable")


@dataclass(frozen=True, slots=True)
class ChainInfo:
    chain: str
    blocks: int
    headers: int
    best_block_hash: str
    initial_block_download: bool
    pruned: bool = False
    prune_height: int | None = None
    """pruned: the lowest height whose block is still on disk (every block below it is gone)"""

    def pruned_below(self, height: int) -> bool:
        """Whether the node no longer has the block at ``height`` (pruned away)."""
        return self.prune_height is not None and height < self.prune_height


@dataclass(frozen=True, slots=True)
class NodeInfo:
    version: int
    subversion: str

    @property
    def version_text(self) -> str:
        major, rest = divmod(self.version, 10000)
        minor, patch = divmod(rest, 100)
        return f"{major}.{minor}.{patch}"


class RpcClient:
    """One node (optionally one of its wallets). Not thread-safe: one client per thread."""

    def __init__(
        self,
        url: str,
        *,
        cookie_path: Path | None = None,
        user: str | None = None,
        password: str | None = None,
        timeout: float = 30.0,
        wallet: str | None = None,
        max_batch: int = DEFAULT_MAX_BATCH,
    ) -> None:
        bad = "the RPC URL must be http://HOST:PORT, e.g. http://127.0.0.1:18443"
        try:
            parts = urlsplit(url)
            port = parts.port  # parsed here: raises ValueError when out of range or not a number
        except ValueError as e:  # e.g. "http://[::1" or port 99999; never echo the URL (credentials)
            raise InvalidInput(f"{bad} ({e})") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            shown = f"{parts.scheme}://{parts.hostname}..." if parts.scheme else "no http:// scheme"
            raise InvalidInput(f"{bad} (got {shown})")
        if parts.username or parts.password:
            raise InvalidInput(
                "the RPC URL must not carry credentials; use the cookie file "
                "(RESERVE_RPC_COOKIE) or RESERVE_RPC_USER/RESERVE_RPC_PASSWORD"
            )
        if max_batch < 1:
            raise InvalidInput(f"max_batch must be at least 1, got {max_batch}")
        self._scheme = parts.scheme
        self._host = parts.hostname
        self._port = port or 8332
        self.url = f"{parts.scheme}://{self._host}:{self._port}"
        self._cookie_path = cookie_path
        self._user = user
        self._password = password
        self.timeout = timeout
        self.wallet_name = wallet
        self.max_batch = max_batch
        self._conn: http.client.HTTPConnection | None = None
        self._next_id = 0
        self.round_trips = 0
        """HTTP requests sent so far (benchmarks and tests count batching with it)."""

    # ---- construction --------------------------------------------------------------------------
    def clone(self, *, wallet: str | None = _SAME, timeout: float = _SAME) -> RpcClient:
        """A new client (its own connection) on the same node with the same credentials; the
        wallet (``None``: the node's endpoint) and the timeout as given, else as this one's."""
        return RpcClient(
            self.url,
            cookie_path=self._cookie_path,
            user=self._user,
            password=self._password,
            timeout=self.timeout if timeout is _SAME else timeout,
            wallet=self.wallet_name if wallet is _SAME else wallet,
            max_batch=self.max_batch,
        )

    def wallet(self, name: str) -> RpcClient:
        """A client for ``/wallet/<name>`` on the same node with the same credentials."""
        return self.clone(wallet=name)

    def long_call_client(self) -> RpcClient:
        """A client of the same endpoint for one call that may run as long as a chain rescan
        (:data:`LONG_CALL_TIMEOUT_S`), on its own connection: close it after the call."""
        return self.clone(timeout=LONG_CALL_TIMEOUT_S)

    @property
    def endpoint(self) -> str:
        return self.url + self._path

    @property
    def _path(self) -> str:
        return "/" if self.wallet_name is None else "/wallet/" + quote(self.wallet_name, safe="")

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> RpcClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"RpcClient({self.endpoint!r})"

    # ---- calls ---------------------------------------------------------------------------------
    def call(self, method: str, *params: Any) -> Any:
        """One call; returns Core's ``result`` or raises the mapped :class:`RpcError`."""
        reply = self._post({"jsonrpc": "2.0", "id": self._id(), "method": method, "params": params})
        if not isinstance(reply, dict):
            raise NodeUnreachable(f"bitcoind at {self.endpoint} sent a non-object reply ({method})")
        return self._result(method, reply)

    def call_named(self, method: str, **params: Any) -> Any:
        """One call with named parameters (a JSON object as ``params``; ``None`` values are left
        out so that Core applies its defaults). Multi-argument calls go out this way: no caller
        has to remember the position of a seventh argument."""
        named = {k: v for k, v in params.items() if v is not None}
        reply = self._post({"jsonrpc": "2.0", "id": self._id(), "method": method, "params": named})
        if not isinstance(reply, dict):
            raise NodeUnreachable(f"bitcoind at {self.endpoint} sent a non-object reply ({method})")
        return self._result(method, reply)

    def batch(self, calls: Sequence[Call]) -> list[Any]:
        """Many calls in as few round trips as ``max_batch`` allows; raises the first error."""
        out = []
        for item in self.batch_results(calls):
            if isinstance(item, RpcError):
                raise item
            out.append(item)
        return out

    def batch_results(self, calls: Sequence[Call]) -> list[Any]:
        """Like :meth:`batch` but returns each call's :class:`RpcError` in its place."""
        results: list[Any] = []
        for start in range(0, len(calls), self.max_batch):
            chunk = calls[start : start + self.max_batch]
            ids = [self._id() for _ in chunk]
            body = [
                {"jsonrpc": "2.0", "id": i, "method": m, "params": list(p)}
                for i, (m, p) in zip(ids, chunk, strict=True)
            ]
            reply = self._post(body)
            if not isinstance(reply, list):
                if isinstance(reply, dict) and reply.get("error"):
                    raise self._error(chunk[0][0], reply["error"])
                raise NodeUnreachable(f"bitcoind at {self.endpoint} sent a non-list batch reply")
            by_id = {r.get("id"): r for r in reply if isinstance(r, dict)}
            for i, (method, _params) in zip(ids, chunk, strict=True):
                r = by_id.get(i)
                if r is None:
                    raise NodeUnreachable(f"bitcoind at {self.endpoint} omitted batch reply {i}")
                try:
                    results.append(self._result(method, r))
                except RpcError as e:
                    results.append(e)
        return results

    # ---- typed helpers -------------------------------------------------------------------------
    def get_blockchain_info(self) -> ChainInfo:
        r = self.call("getblockchaininfo")
        return ChainInfo(
            chain=r["chain"],
            blocks=int(r["blocks"]),
            headers=int(r["headers"]),
            best_block_hash=r["bestblockhash"],
            initial_block_download=bool(r["initialblockdownload"]),
            pruned=bool(r.get("pruned", False)),
            prune_height=int(r["pruneheight"]) if r.get("pruned") and "pruneheight" in r else None,
        )

    def get_network_info(self) -> NodeInfo:
        r = self.call("getnetworkinfo")
        return NodeInfo(version=int(r["version"]), subversion=r["subversion"])

    def get_block_count(self) -> int:
        return int(self.call("getblockcount"))

    def get_block_hash(self, height: int) -> str:
        return str(self.call("getblockhash", height))

    def get_block_hashes(self, heights: Sequence[int]) -> list[str]:
        return [str(h) for h in self.batch([("getblockhash", (h,)) for h in heights])]

    # ---- wallets: calls with several parameters, named ----------------------------------------
    def list_wallets(self) -> tuple[str, ...]:
        """The wallets loaded now (``listwallets``)."""
        return tuple(str(w) for w in self.call("listwallets"))

    def list_wallet_dir(self) -> tuple[str, ...]:
        """The wallets on disk, loaded or not (``listwalletdir``)."""
        return tuple(str(w["name"]) for w in self.call("listwalletdir")["wallets"])

    def createwallet(
        self,
        name: str,
        *,
        disable_private_keys: bool = True,
        blank: bool = True,
        descriptors: bool = True,
        load_on_startup: bool = False,
        avoid_reuse: bool = False,
    ) -> None:
        """Create and load a wallet; by default a blank watch-only descriptor wallet that is not
        loaded again when the node restarts (no passphrase: it holds no private key)."""
        self.call_named(
            "createwallet",
            wallet_name=name,
            disable_private_keys=disable_private_keys,
            blank=blank,
            avoid_reuse=avoid_reuse,
            descriptors=descriptors,
            load_on_startup=load_on_startup,
        )

    def loadwallet(self, name: str, *, load_on_startup: bool | None = None) -> None:
        """Load a wallet from disk (``load_on_startup``: ``None`` leaves the node's setting)."""
        self.call_named("loadwallet", filename=name, load_on_startup=load_on_startup)

    def listtransactions(
        self,
        *,
        label: str = "*",
        count: int = 1_000_000,
        skip: int = 0,
        include_watchonly: bool = True,
    ) -> list[dict[str, Any]]:
        """This wallet's ``listtransactions`` lines (one per address and category, oldest
        first); :func:`custody.wallet_txs.list_wallet_txs` reads them as typed values."""
        lines: list[dict[str, Any]] = self.call_named(
            "listtransactions",
            label=label,
            count=count,
            skip=skip,
            include_watchonly=include_watchonly,
        )
        return lines

    def importdescriptors(self, requests: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
        """This wallet's ``importdescriptors``: one result (``success``, ``error``) per request.
        May rescan: call it on a :meth:`long_call_client` when a timestamp is in the past."""
        results: list[dict[str, Any]] = self.call_named("importdescriptors", requests=list(requests))
        return results

    # ---- transport -----------------------------------------------------------------------------
    def _id(self) -> int:
        self._next_id += 1
        return self._next_id

    def _auth_header(self) -> str:
        if self._cookie_path is not None:
            try:
                token = self._cookie_path.read_text().strip()
            except OSError as e:
                raise NodeUnreachable(
                    f"cannot read the RPC cookie file {self._cookie_path} ({e.strerror}): is "
                    "bitcoind running with this datadir, and is RESERVE_RPC_COOKIE right?"
                ) from None
        elif self._user is not None and self._password is not None:
            token = f"{self._user}:{self._password}"
        else:
            raise NodeUnreachable(
                f"no credentials for bitcoind at {self.url}: set RESERVE_RPC_COOKIE to the node's "
                ".cookie file, or RESERVE_RPC_USER and RESERVE_RPC_PASSWORD"
            )
        return "Basic " + base64.b64encode(token.encode()).decode()

    def _connection(self) -> http.client.HTTPConnection:
        if self._conn is None:
            if self._scheme == "https":
                self._conn = http.client.HTTPSConnection(self._host, self._port, timeout=self.timeout)
            else:
                self._conn = http.client.HTTPConnection(self._host, self._port, timeout=self.timeout)
        return self._conn

    def _post(self, payload: Any) -> Any:
        data = json.dumps(payload, default=_encode_default).encode()
        headers = {"Authorization": self._auth_header(), "Content-Type": "application/json"}
        for attempt in (1, 2):  # a kept-alive connection may have been closed by the node
            conn = self._connection()
            try:
                conn.request("POST", self._path, data, headers)
                response = conn.getresponse()
                body = response.read()
                break
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError) as e:
                self.close()
                if attempt == 2:
                    raise self._unreachable(e) from None
            except (OSError, http.client.HTTPException) as e:
                connected = conn.sock is not None  # the request went out: the answer is late
                self.close()
                if connected and isinstance(e, socket.timeout | TimeoutError):
                    raise self._timed_out(payload) from None
                raise self._unreachable(e) from None
        self.round_trips += 1
        if response.status == 401:
            raise NodeUnreachable(
                f"bitcoind at {self.url} refused the credentials (HTTP 401): check the cookie file "
                "(RESERVE_RPC_COOKIE) or RESERVE_RPC_USER/RESERVE_RPC_PASSWORD"
            )
        try:
            return json.loads(body, parse_float=Decimal)
        except ValueError:
            raise NodeUnreachable(
                f"bitcoind at {self.endpoint} answered HTTP {response.status} without JSON: "
                f"{body[:200].decode(errors='replace')!r}"
            ) from None

    def _timed_out(self, payload: Any) -> NodeTimedOut:
        if isinstance(payload, dict):
            what = str(payload.get("method"))
        else:
            methods = list(dict.fromkeys(str(c.get("method")) for c in payload))
            what = f"a batch of {len(payload)} calls: {', '.join(methods[:3])}" + (
                ", ..." if len(methods) > 3 else ""
            )
        return NodeTimedOut(
            f"bitcoind did not answer within {self.timeout:g} seconds ({what}) at {self.endpoint}: "
            "it took the request but is busy (a rescan, a UTXO scan, or a large wallet); try again "
            "when it is less busy, or give it longer with RESERVE_RPC_TIMEOUT"
        )

    def _unreachable(self, e: BaseException) -> NodeUnreachable:
        timed_out = isinstance(e, socket.timeout | TimeoutError)
        reason = "timed out" if timed_out else str(e) or type(e).__name__
        return NodeUnreachable(
            f"cannot reach bitcoind at {self.url} ({reason}): check that bitcoind is running, "
            "that the RPC port is right (RESERVE_RPC_URL / --rpc-url) and that rpcallowip "
            "permits this host"
        )

    def _result(self, method: str, reply: dict[str, Any]) -> Any:
        err = reply.get("error")
        if err:
            raise self._error(method, err)
        return reply.get("result")

    def _error(self, method: str, err: Any) -> RpcError:
        if isinstance(err, dict):
            return rpc_error(int(err.get("code", 0)), str(err.get("message", "")), method)
        return RpcError(0, str(err), method)
