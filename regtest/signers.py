"""Demo key holders: private keys on the regtest node, so the demo can spend from its vaults.

The service never holds private keys. For the regtest demo and its tests, each key holder
(institution) is played by a :class:`DemoSigner`: it derives its BIP-48 account key
``m/48h/1h/{account}h/2h`` from a seed (the same key ``custody.keygen.test_key_from_seed`` returns,
public half only) and keeps the private half in a bitcoind descriptor wallet of its own, where
``walletprocesspsbt`` can sign with it.

:meth:`DemoSigner.sign_file` is the holder's side of ``reserve spend`` and ``reserve attest``: it
takes a PSBT file the service wrote and hands back a signed one. :func:`spend_from_vault` is a
test tool that moves coins with no policy at all (the vault's watch-only wallet builds the PSBT,
the signers sign, the node combines, finalizes and broadcasts it): tests use it to make the chain
shapes the books must handle; the demo spends only through ``reserve spend``.

Dev tooling only: ``custody/`` never imports this module; in ``ledger/`` only the regtest demo
(:mod:`ledger.cli.demo`) does, and that module is loaded only when ``reserve demo`` runs
(:mod:`ledger.cli.demo_cmds`). The integration tests import it to spend from vaults.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bip_utils import Bip32KeyNetVersions, Bip32Secp256k1

from custody.amount import btc_decimal
from custody.checksum import add_checksum
from custody.errors import CustodyError
from custody.keygen import bip48_path
from custody.keys import ExtendedKey, KeyOrigin, format_path
from custody.network import Network
from custody.rpc import RpcClient

SIGNER_WALLET_PREFIX = "demo-signer-"
IMPORT_RANGE = 1000
DEMO_FEE_RATE = 2  # sat/vB; explicit so the demo does not depend on fee estimation


class SigningError(CustodyError):
    """A demo spend could not be signed by enough key holders, or could not be broadcast."""


class DemoSigner:
    """One key holder of the demo: a seed, its BIP-48 account key and a signing wallet."""

    def __init__(
        self, holder: str, seed: bytes, *, network: Network = Network.REGTEST, account: int = 0
    ) -> None:
        if not holder or "=" in holder or holder != holder.strip():
            raise SigningError(f"holder name {holder!r} must be non-empty, without '=' or spaces")
        versions = Bip32KeyNetVersions(network.xpub_version, network.xprv_version)
        master = Bip32Secp256k1.FromSeed(seed, versions)
        path = bip48_path(network, account)
        node = master.DerivePath("m/" + format_path(path).replace("h", "'"))
        self.holder = holder
        self.network = network
        self.account = account
        self.origin = KeyOrigin(bytes(master.FingerPrint().ToBytes()), path)
        self.public_key = ExtendedKey(node.PublicKey().ToExtended(), self.origin)
        self._tprv = str(node.PrivateKey().ToExtended())
        self.wallet_name: str | None = None

    def __repr__(self) -> str:  # never show the private key
        return f"DemoSigner({self.holder!r}, {self.public_key})"

    def private_expression(self) -> str:
        """``[fp/48h/1h/0h/2h]tprv...``: this holder's key with its private half, for import."""
        return f"[{self.origin}]{self._tprv}"

    def descriptor(self, threshold: int, keys: Sequence[ExtendedKey], branch: int) -> str:
        """The vault's single-branch descriptor with this holder's key in private form."""
        if self.public_key not in keys:
            raise SigningError(
                f"{self.holder}'s key {self.public_key} is not one of the vault's keys; "
                "a signer can only sign for vaults it holds a key of"
            )
        parts = [
            (self.private_expression() if key == self.public_key else str(key)) + f"/{branch}/*"
            for key in keys
        ]
        return add_checksum(f"wsh(sortedmulti({threshold},{','.join(parts)}))")

    def wallet(self, rpc: RpcClient) -> RpcClient:
        """This holder's signing wallet, created on first use as ``demo-signer-<holder>-<random>``."""
        if self.wallet_name is None:
            name = f"{SIGNER_WALLET_PREFIX}{self.holder}-{secrets.token_hex(4)}"
            # createwallet name disable_private_keys blank passphrase avoid_reuse descriptors
            rpc.createwallet(name, disable_private_keys=False, blank=True, load_on_startup=False)
            self.wallet_name = name
        return rpc.wallet(self.wallet_name)

    def import_vault(self, rpc: RpcClient, threshold: int, keys: Sequence[ExtendedKey]) -> None:
        """Import the vault's receive (``/0/*``) and change (``/1/*``) descriptors for signing."""
        requests: list[dict[str, Any]] = [
            {
                "desc": self.descriptor(threshold, keys, branch),
                "range": [0, IMPORT_RANGE - 1],
                "timestamp": "now",
                "internal": branch == 1,
            }
            for branch in (0, 1)
        ]
        results = self.wallet(rpc).call("importdescriptors", requests)
        failed = [r.get("error", {}).get("message", "unknown error") for r in results if not r["success"]]
        if failed:
            raise SigningError(f"{self.holder} could not import the vault descriptors: {failed}")

    def sign(self, rpc: RpcClient, psbt: str) -> str:
        """Add this holder's signatures to ``psbt`` (base64) and return it (never finalized)."""
        result = self.wallet(rpc).call("walletprocesspsbt", psbt, True, "ALL", True, False)
        return str(result["psbt"])

    def sign_file(self, rpc: RpcClient, psbt_file: Path, out_dir: Path) -> Path:
        """What a holder does with a PSBT file the service wrote: sign it on their own device and
        hand back ``<name>-<holder>.psbt`` (base64, as Bitcoin Core and Sparrow write them)."""
        signed = self.sign(rpc, psbt_file.read_text(encoding="ascii").strip())
        out = out_dir / f"{psbt_file.stem}-{self.holder}.psbt"
        out.write_text(signed + "\n", encoding="ascii")
        return out

    def unload(self, rpc: RpcClient) -> None:
        """Unload the signing wallet (its files stay in the node's datadir)."""
        if self.wallet_name is not None:
            rpc.call("unloadwallet", self.wallet_name)
            self.wallet_name = None


def spend_from_vault(
    rpc: RpcClient,
    vault_wallet_name: str,
    signers: Sequence[DemoSigner],
    outputs: Mapping[str, int],
) -> str:
    """Pay ``outputs`` (address → satoshis) from a vault; return the broadcast txid.

    The vault's watch-only wallet selects coins and adds change to its own change descriptor;
    each signer signs; the node combines and finalizes the PSBT. Raises :class:`SigningError`
    naming who signed when the signatures do not reach the vault's threshold.
    """
    if not outputs:
        raise SigningError("a spend needs at least one output")
    if not signers:
        raise SigningError("a spend needs at least one signer")
    vault = rpc.wallet(vault_wallet_name)
    funded = vault.call(
        "walletcreatefundedpsbt",
        [],
        [{address: btc_decimal(sat)} for address, sat in outputs.items()],
        0,
        {"includeWatching": True, "fee_rate": DEMO_FEE_RATE},
    )
    signed = [signer.sign(rpc, str(funded["psbt"])) for signer in signers]
    combined = str(rpc.call("combinepsbt", signed))
    final = rpc.call("finalizepsbt", combined, True)
    if not final["complete"]:
        names = ", ".join(s.holder for s in signers)
        raise SigningError(
            f"the spend from {vault_wallet_name} is not fully signed: {len(signers)} signer(s) "
            f"({names}) signed, fewer than the vault's threshold; have more key holders sign"
        )
    return str(rpc.call("sendrawtransaction", final["hex"]))
