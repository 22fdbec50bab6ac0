"""The Bitcoin networks a node can run, and what each one needs from us.

``Network.from_chain(getblockchaininfo()["chain"])`` maps bitcoind's chain name to a member. Extended
public keys come in two flavours: ``xpub`` (mainnet only) and ``tpub`` (every test network: testnet,
testnet4, signet and regtest share the version bytes), so a key is either mainnet or "test-like".
"""

from __future__ import annotations

from enum import Enum
from typing import Literal

from custody.errors import InvalidInput

NetworkKind = Literal["mainnet", "test"]

XPUB_VERSION = bytes.fromhex("0488b21e")
XPRV_VERSION = bytes.fromhex("0488ade4")
TPUB_VERSION = bytes.fromhex("043587cf")
TPRV_VERSION = bytes.fromhex("04358394")


class Network(Enum):
    """A Bitcoin network: its bitcoind chain name, bech32 HRP and extended-key version bytes."""

    MAINNET = ("main", "bc")
    TESTNET = ("test", "tb")
    TESTNET4 = ("testnet4", "tb")
    SIGNET = ("signet", "tb")
    REGTEST = ("regtest", "bcrt")

    @property
    def chain(self) -> str:
        """The chain name bitcoind reports in ``getblockchaininfo`` (``-chain=`` value)."""
        return self.value[0]

    @property
    def hrp(self) -> str:
        """The bech32 human-readable part of segwit addresses on this network."""
        return self.value[1]

    @property
    def is_mainnet(self) -> bool:
        return self is Network.MAINNET

    @property
    def kind(self) -> NetworkKind:
        """``"mainnet"`` or ``"test"``: which extended keys (xpub or tpub) belong here."""
        return "mainnet" if self.is_mainnet else "test"

    @property
    def xpub_version(self) -> bytes:
        """BIP-32 version bytes of public extended keys (xpub on mainnet, tpub elsewhere)."""
        return XPUB_VERSION if self.is_mainnet else TPUB_VERSION

    @property
    def xprv_version(self) -> bytes:
        """BIP-32 version bytes of private extended keys; used only to recognise and refuse them."""
        return XPRV_VERSION if self.is_mainnet else TPRV_VERSION

    @property
    def coin_type(self) -> int:
        """BIP-44 coin type used in derivation paths: 0 on mainnet, 1 on every test network."""
        return 0 if self.is_mainnet else 1

    @classmethod
    def from_chain(cls, chain: str) -> Network:
        """The network for bitcoind's chain name ("main", "test", "testnet4", "signet", "regtest")."""
        for network in cls:
            if network.chain == chain:
                return network
        known = ", ".join(repr(n.chain) for n in cls)
        raise InvalidInput(f"unknown bitcoind chain {chain!r}; expected one of {known}")

    def __str__(self) -> str:
        return self.chain
