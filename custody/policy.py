"""The multisig policy a vault must meet before it is registered.

:func:`check_vault_policy` judges a vault definition and returns *every* violation as a message
naming the offending value and what to do (never raises); :func:`enforce` turns a non-empty result
into :class:`~custody.errors.PolicyViolation`. Impossible scripts (threshold above the number of
keys, more than 20 keys) never get this far: :class:`~custody.descriptor.MultisigDescriptor` refuses
them on construction, and :class:`~custody.keys.ExtendedKey` refuses an origin that does not agree
with its key. The policy judges what is possible but unwise: too low a threshold, too few holders,
reused keys or seeds, keys without origin or from the BIP-48 P2SH-P2WSH account (script type 1h).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from custody.descriptor import MultisigDescriptor
from custody.errors import InvalidInput, PolicyViolation
from custody.keygen import BIP48_P2SH_P2WSH_SCRIPT_TYPE, BIP48_PURPOSE
from custody.keys import HARDENED, ExtendedKey, format_path, shorten
from custody.network import Network

P2WSH_MAX_STANDARD_KEYS = 15  # wallets and signing devices interoperate up to 15 keys


@dataclass(frozen=True, slots=True)
class Policy:
    """Thresholds of the multisig policy; the defaults are the house rules."""

    min_threshold: int = 2
    min_holders: int = 2
    max_keys: int = P2WSH_MAX_STANDARD_KEYS

    def __post_init__(self) -> None:
        if not 1 <= self.min_threshold <= self.max_keys <= P2WSH_MAX_STANDARD_KEYS:
            raise InvalidInput(
                f"policy min_threshold={self.min_threshold}, max_keys={self.max_keys} must satisfy "
                f"1 <= min_threshold <= max_keys <= {P2WSH_MAX_STANDARD_KEYS}"
            )
        if self.min_holders < 1:
            raise InvalidInput(f"policy min_holders={self.min_holders} must be at least 1")


def check_vault_policy(
    descriptor: MultisigDescriptor,
    holders: Sequence[str],
    network: Network,
    policy: Policy,
    other_active_keys: Mapping[str, str],
) -> tuple[str, ...]:
    """Every way this vault breaks ``policy``; an empty tuple means it may be registered.

    ``holders`` names the holder of each key, in the descriptor's key order.
    ``other_active_keys`` maps the extended public key text (``ExtendedKey.xpub``, or the full
    ``str(key)`` with origin) of every key in other active vaults to that vault's name.
    """
    m, keys = descriptor.threshold, descriptor.keys
    n = len(keys)
    findings: list[str] = []

    if m < policy.min_threshold:
        findings.append(
            f"threshold {m} is below the policy minimum of {policy.min_threshold}: one compromised "
            f"key must never move funds; use at least {policy.min_threshold}-of-n"
        )
    if n > policy.max_keys:
        findings.append(f"{n} keys exceed the policy maximum of {policy.max_keys} for P2WSH; use fewer keys")

    if len(holders) != n:
        findings.append(
            f"{len(holders)} holders given for {n} keys; name exactly one holder per key, in descriptor order"
        )
    distinct_holders = set(holders)
    if len(distinct_holders) < policy.min_holders:
        findings.append(
            f"only {len(distinct_holders)} distinct holder(s) ({', '.join(sorted(distinct_holders))}); "
            f"the policy needs at least {policy.min_holders}: give keys to more people"
        )
    for holder, count in sorted(Counter(holders).items()):
        if count >= m:
            findings.append(
                f"holder {holder!r} holds {count} of the {n} keys and alone reaches the threshold "
                f"of {m}; give those keys to different holders or raise the threshold"
            )

    for material, count in Counter(k.material for k in keys).items():
        if count > 1:
            xpub = next(k.xpub for k in keys if k.material == material)
            findings.append(
                f"key {shorten(xpub)} appears {count} times; every key of a vault must be "
                "different, replace the duplicate with another holder's key"
            )
    fingerprints = Counter(k.origin.fingerprint for k in keys if k.origin is not None)
    for fingerprint, count in sorted(fingerprints.items()):
        if count > 1:
            findings.append(
                f"master fingerprint {fingerprint.hex()} appears on {count} keys: they come from "
                "the same seed; use keys from different signing devices"
            )

    used = keys_by_material(other_active_keys)
    for position, key in enumerate(keys, start=1):
        label = f"key {position} ({shorten(str(key), 40)})"
        if key.origin is None:
            findings.append(
                f"{label} has no origin; write it as [fingerprint/48h/<coin>h/<account>h/2h]xpub "
                "so signing devices can recognise it"
            )
        elif _is_bip48_p2sh_p2wsh(key.origin.path):
            findings.append(
                f"{label} is a BIP-48 P2SH-P2WSH account key (script type 1h in its origin "
                f"{format_path(key.origin.path)}); this vault is native P2WSH, whose keys are the "
                "script type 2h accounts: export the key at m/48h/<coin>h/<account>h/2h from "
                "the signing device"
            )
        vault = other_active_keys.get(key.xpub) or other_active_keys.get(str(key)) or used.get(key.material)
        if vault is not None:
            findings.append(
                f"{label} is already used by active vault {vault!r}; a key serves one vault, "
                "use a fresh account key (another BIP-48 account index)"
            )
        if key.is_mainnet != network.is_mainnet:
            flavour = "a mainnet xpub" if key.is_mainnet else "a test-network tpub"
            findings.append(
                f"{label} is {flavour} but the node is on {network.chain}; export the key for {network.chain}"
            )
    return tuple(findings)


def keys_by_material(keys: Mapping[str, str]) -> dict[bytes, str]:
    """``key text -> vault`` as ``chain code and public key -> vault``
    (:attr:`~custody.keys.ExtendedKey.material`): the same key written with other header fields
    (version, depth, parent fingerprint, child number) derives the same addresses."""
    out: dict[bytes, str] = {}
    for text, vault in keys.items():
        try:
            out[ExtendedKey.parse(text).material] = vault
        except InvalidInput:
            continue  # not a key: nothing it could derive
    return out


def _is_bip48_p2sh_p2wsh(path: tuple[int, ...]) -> bool:
    """Whether ``path`` lies under a BIP-48 P2SH-P2WSH account, ``48h/<coin>h/<account>h/1h``."""
    return (
        len(path) >= 4
        and path[0] == BIP48_PURPOSE | HARDENED
        and path[3] == BIP48_P2SH_P2WSH_SCRIPT_TYPE | HARDENED
    )


def enforce(findings: Sequence[str]) -> None:
    """Raise :class:`PolicyViolation` carrying every finding, if there are any."""
    if findings:
        raise PolicyViolation(tuple(findings))
