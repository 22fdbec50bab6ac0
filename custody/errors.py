"""The one error hierarchy of :mod:`custody`, and the one :class:`InvalidInput` of the project.

Every message says what was wrong, with the offending value, and what to do about it. Checks that
judge (policy) return findings instead of raising; these exceptions mean "cannot go on".

A caller that adds what it was doing keeps the type: ``e.add_note("...")`` then ``raise``, never a
new root error wrapping this one (the ``reserve`` CLI shows the notes after the message).
"""

from __future__ import annotations


class CustodyError(Exception):
    """Root of every error raised by :mod:`custody`."""


class InvalidInput(CustodyError, ValueError):
    """Malformed input, anywhere: a wrong-network key, address, descriptor, amount or parameter,
    postings that do not balance, a bad date or name.

    The one such class in the project: :mod:`ledger.errors` re-exports it (``custody`` never imports
    ``ledger``), so ``except InvalidInput`` catches bad input from either package. It is a
    :class:`CustodyError` and a :class:`ValueError`, not a ``LedgerError``.
    """


class PolicyViolation(CustodyError):
    """A vault definition breaks the multisig policy; ``findings`` lists every violation."""

    def __init__(self, findings: tuple[str, ...]) -> None:
        self.findings = findings
        super().__init__("multisig policy violated:\n  - " + "\n  - ".join(findings))


class NodeUnreachable(CustodyError):
    """The node could not be reached or refused our credentials (no RPC answer at all)."""


class NodeTimedOut(NodeUnreachable):
    """The node took the connection but did not answer within the client's timeout: it is there
    but busy (a rescan, a UTXO scan, many wallets), which is not "cannot reach"."""


class RpcError(CustodyError):
    """Bitcoin Core answered with a JSON-RPC error; ``code`` is Core's error code."""

    code: int

    def __init__(self, code: int, message: str, method: str) -> None:
        self.code = code
        self.rpc_message = message
        self.method = method
        super().__init__(f"bitcoind {method}: {message} (RPC error {code})")


class BlockNotAvailable(RpcError):
    """The node has the block's header but not its data on disk: pruned (``-prune``), or not
    downloaded yet (RPC_MISC_ERROR "Block not available", "... (pruned data)", or
    RPC_INTERNAL_ERROR "Can't read block from disk"). :func:`custody.chain.block_not_available`
    names the block, its height, the transactions wanted and the height the node would need."""


class ScanInProgress(RpcError):
    """``scantxoutset`` refused to start: another scan is running on the node (one at a time)."""


class InvalidAddressOrKey(RpcError):
    """RPC_INVALID_ADDRESS_OR_KEY (-5): unknown txid, bad address or key."""


class InvalidParameter(RpcError):
    """RPC_INVALID_PARAMETER (-8) or RPC_TYPE_ERROR (-3) / RPC_INVALID_PARAMS (-32602)."""


class WalletNotFound(RpcError):
    """RPC_WALLET_NOT_FOUND (-18): the wallet is not loaded (or does not exist)."""


class WalletAlreadyLoaded(RpcError):
    """RPC_WALLET_ALREADY_LOADED (-35) or RPC_WALLET_ALREADY_EXISTS (-4 on createwallet)."""


class NodeWarmingUp(RpcError):
    """RPC_IN_WARMUP (-28): the node is starting; try again shortly."""


class MethodNotFound(RpcError):
    """RPC_METHOD_NOT_FOUND (-32601): the node does not know this method (or wallet is disabled)."""


_BY_CODE: dict[int, type[RpcError]] = {
    -5: InvalidAddressOrKey,
    -3: InvalidParameter,
    -8: InvalidParameter,
    -32602: InvalidParameter,
    -18: WalletNotFound,
    -35: WalletAlreadyLoaded,
    -28: NodeWarmingUp,
    -32601: MethodNotFound,
}


_BLOCK_NOT_AVAILABLE = (
    "Block not available",  # getrawtransaction with a block hash; getblock "... (pruned data)"
    "Undo data not available",  # getblock verbosity 3
    "Can't read block from disk",  # gettxoutproof
)


def rpc_error(code: int, message: str, method: str) -> RpcError:
    """Map a Bitcoin Core error code to the most specific :class:`RpcError` subclass (and, for
    the codes Core shares among many errors, its message: a block not on disk)."""
    if code in (-1, -32603) and message.startswith(_BLOCK_NOT_AVAILABLE):
        return BlockNotAvailable(code, message, method)
    return _BY_CODE.get(code, RpcError)(code, message, method)
