"""Public test keys from fixed seeds, for tests and the regtest demo.

``test_key_from_seed(seed, network)`` makes the BIP-48 P2WSH account key ``m/48h/{coin}h/{account}h/2h``
from a seed and returns only its public half with origin, e.g. ``[fp/48h/1h/0h/2h]tpub...``. The
private material is discarded on return: real vault keys are made on signing devices, never here.
"""

from __future__ import annotations

from bip_utils import Bip32KeyNetVersions, Bip32Secp256k1

from custody.errors import InvalidInput
from custody.keys import HARDENED, ExtendedKey, KeyOrigin, format_path
from custody.network import Network

BIP48_PURPOSE = 48
BIP48_P2SH_P2WSH_SCRIPT_TYPE = 1  # m/48h/coin'/account'/1h: nested segwit, not for wsh() vaults
BIP48_P2WSH_SCRIPT_TYPE = 2  # m/48h/coin'/account'/2h: native segwit multisig, our vaults


def bip48_path(network: Network, account: int = 0) -> tuple[int, ...]:
    """The BIP-48 P2WSH account path ``48h/{coin}h/{account}h/2h`` (coin 0 mainnet, 1 test)."""
    if not 0 <= account < HARDENED:
        raise InvalidInput(f"account index {account} must be in 0..2^31-1 (it becomes {account}h)")
    steps = (BIP48_PURPOSE, network.coin_type, account, BIP48_P2WSH_SCRIPT_TYPE)
    return tuple(step | HARDENED for step in steps)


def test_key_from_seed(seed: bytes, network: Network, account: int = 0) -> ExtendedKey:
    """For tests and the regtest demo: the public BIP-48 account key of ``seed``.

    The result is ``[master-fingerprint/48h/{coin}h/{account}h/2h]xpub-or-tpub``; the private key
    is discarded.
    """
    versions = Bip32KeyNetVersions(network.xpub_version, network.xprv_version)
    master = Bip32Secp256k1.FromSeed(seed, versions)
    path = bip48_path(network, account)
    account_node = master.DerivePath("m/" + format_path(path).replace("h", "'"))
    origin = KeyOrigin(bytes(master.FingerPrint().ToBytes()), path)
    return ExtendedKey(account_node.PublicKey().ToExtended(), origin)


test_key_from_seed.__test__ = False  # type: ignore[attr-defined]  # not a pytest test when imported
