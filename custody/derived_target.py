"""The node's reading of an output descriptor given as an allowlist destination.

A counterparty may be named by a descriptor (its deposit wallet's ``wpkh([fp/84h/1h/0h]tpub.../0/*)``
or a single ``addr(...)``) instead of one address. Whatever bitcoind's ``deriveaddresses`` can
derive is accepted: the first :data:`DERIVE_RANGE` addresses of a ranged descriptor (of each branch
of a multipath one), or the one address of a non-ranged descriptor. Descriptors holding private
keys are refused before they are derived, and every address is decoded locally
(:func:`custody.address.address_script`) for the vault's network, so a script from another network
can never enter the allowlist.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from custody.address import address_script, script_kind
from custody.errors import InvalidInput, RpcError
from custody.keys import shorten
from custody.network import Network

if TYPE_CHECKING:
    from custody.rpc import RpcClient

DERIVE_RANGE = 1000
"""Addresses derived (indexes 0..999) from a ranged descriptor, per branch."""
MAX_DESCRIPTOR_LENGTH = 10_000


@dataclass(frozen=True, slots=True)
class DerivedTarget:
    """A descriptor as bitcoind normalised it (public keys only, with checksum; a multipath one as
    given, with its checksum), and its scripts in derivation order (no duplicates)."""

    descriptor: str
    ranged: bool
    scripts: tuple[bytes, ...]

    def __post_init__(self) -> None:
        if not self.scripts:
            raise InvalidInput(f"descriptor {shorten(self.descriptor, 40)!r} derives no address")


def _named(text: str) -> str:
    """How a message names a descriptor: its outer function and length, never its keys (a pasted
    descriptor may hold a private key, which must not reach a terminal or log)."""
    head, paren, _ = text.partition("(")
    return f"{shorten(head, 20)}{paren}...) ({len(text):,} characters)"


def _refused(text: str, e: RpcError) -> InvalidInput:
    return InvalidInput(
        f"descriptor {_named(text)} was refused by bitcoind: {e.rpc_message}; give a descriptor "
        "with public keys only that `bitcoin-cli deriveaddresses` can derive"
    )


def _addresses(result: Any) -> list[str]:
    """``deriveaddresses`` answers a list of addresses, or for a multipath descriptor a list of
    such lists (one per branch)."""
    if not isinstance(result, list):
        raise InvalidInput(f"bitcoind's deriveaddresses answered {shorten(repr(result), 60)}, not a list")
    out: list[str] = []
    for item in result:
        if isinstance(item, list):
            out.extend(_addresses(item))
        elif isinstance(item, str):
            out.append(item)
        else:
            raise InvalidInput(f"bitcoind's deriveaddresses answered {shorten(repr(item), 60)}")
    return out


def derive_target(rpc: RpcClient, text: str, network: Network) -> DerivedTarget:
    """Ask the node what ``text`` derives; refuse private keys, underivable descriptors and
    addresses of another network or without a standard script."""
    text = text.strip()
    if not text or len(text) > MAX_DESCRIPTOR_LENGTH:
        raise InvalidInput(
            f"a descriptor of 1..{MAX_DESCRIPTOR_LENGTH:,} characters is needed, got {len(text):,}"
        )
    if any(not 32 <= ord(c) <= 126 for c in text):
        bad = next(c for c in text if not 32 <= ord(c) <= 126)
        raise InvalidInput(f"descriptor {_named(text)} contains {bad!r}; a descriptor is ASCII text")
    try:
        info = rpc.call("getdescriptorinfo", text)
    except RpcError as e:
        raise _refused(text, e) from None
    if info.get("hasprivatekeys"):
        raise InvalidInput(
            "the descriptor holds a private key; never paste one here: give the descriptor with "
            "public keys only (xpub/tpub), e.g. from `listdescriptors` without private=true"
        )
    if info.get("multipath_expansion"):  # "descriptor" would be the first branch alone
        normalised = f"{text.partition('#')[0]}#{info['checksum']}"
    else:
        normalised = str(info["descriptor"])
    ranged = bool(info["isrange"])
    try:
        if ranged:
            result = rpc.call("deriveaddresses", normalised, [0, DERIVE_RANGE - 1])
        else:
            result = rpc.call("deriveaddresses", normalised)
    except RpcError as e:
        raise _refused(text, e) from None
    scripts: list[bytes] = []
    seen: set[bytes] = set()
    for address in _addresses(result):
        script = address_script(address, network)
        if script_kind(script) is None:
            raise InvalidInput(
                f"descriptor {shorten(normalised, 40)!r} derives {address}, an output no wallet can spend "
                "today (not P2PKH, P2SH, P2WPKH, P2WSH or P2TR)"
            )
        if script not in seen:
            seen.add(script)
            scripts.append(script)
    return DerivedTarget(descriptor=normalised, ranged=ranged, scripts=tuple(scripts))
