"""The multisig policy returns every violation, each naming the value and what to do."""

from __future__ import annotations

import pytest
from bip_utils import Bip32KeyNetVersions, Bip32Secp256k1

from custody.descriptor import MultisigDescriptor
from custody.errors import InvalidInput, PolicyViolation
from custody.keygen import test_key_from_seed
from custody.keys import ExtendedKey, KeyOrigin, parse_path
from custody.network import Network
from custody.policy import Policy, check_vault_policy, enforce

POLICY = Policy()
KEYS = tuple(test_key_from_seed(bytes([i]) * 32, Network.REGTEST) for i in range(1, 17))
HOLDERS = ("alice", "bob", "carol")


def vault(m: int, keys: tuple[ExtendedKey, ...] = KEYS[:3]) -> MultisigDescriptor:
    return MultisigDescriptor.from_keys(m, keys)


def check(
    descriptor: MultisigDescriptor,
    holders: tuple[str, ...] = HOLDERS,
    network: Network = Network.REGTEST,
    others: dict[str, str] | None = None,
) -> tuple[str, ...]:
    return check_vault_policy(descriptor, holders, network, POLICY, others or {})


def test_a_good_2_of_3_passes() -> None:
    assert check(vault(2)) == ()
    enforce(check(vault(2)))  # does not raise
    assert check(vault(2), network=Network.SIGNET) == ()


def test_threshold_below_minimum() -> None:
    threshold, *alone = check(vault(1))
    assert "threshold 1 is below the policy minimum of 2" in threshold
    assert [f.split(" holds")[0] for f in alone] == [f"holder {h!r}" for h in sorted(HOLDERS)]


def test_more_than_15_keys() -> None:
    holders = tuple(f"holder{i}" for i in range(16))
    (finding,) = check(vault(9, KEYS[:16]), holders)
    assert "16 keys exceed the policy maximum of 15" in finding


def test_single_holder_reaching_threshold_and_too_few_holders() -> None:
    findings = check(vault(2), ("alice", "alice", "alice"))
    assert any("only 1 distinct holder(s) (alice)" in f for f in findings)
    assert any("holder 'alice' holds 3 of the 3 keys and alone reaches the threshold" in f for f in findings)


def test_holder_with_threshold_keys_among_others() -> None:
    (finding,) = check(vault(2), ("alice", "alice", "bob"))
    assert "holder 'alice' holds 2 of the 3 keys" in finding
    assert check(vault(3), ("alice", "alice", "bob")) == ()


def test_holder_count_must_match_keys() -> None:
    (finding,) = check(vault(2), ("alice", "bob"))
    assert "2 holders given for 3 keys" in finding


def test_duplicate_key_and_fingerprint() -> None:
    findings = check(vault(2, (KEYS[0], KEYS[1], KEYS[0])))
    assert any(f"key {KEYS[0].xpub[:16]}" in f and "appears 2 times" in f for f in findings)
    assert any("master fingerprint" in f and "appears on 2 keys" in f for f in findings)


def test_duplicate_fingerprint_from_another_account_of_the_same_seed() -> None:
    same_seed = test_key_from_seed(bytes([1]) * 32, Network.REGTEST, account=1)
    (finding,) = check(vault(2, (KEYS[0], same_seed, KEYS[2])))
    assert KEYS[0].origin is not None
    assert f"master fingerprint {KEYS[0].origin.fingerprint.hex()} appears on 2 keys" in finding


def test_key_without_origin() -> None:
    bare = ExtendedKey(KEYS[2].xpub)
    (finding,) = check(vault(2, (KEYS[0], KEYS[1], bare)))
    assert "key 3 (" in finding and "has no origin" in finding


def bip48_key(seed: bytes, path: str, network: Network = Network.REGTEST) -> ExtendedKey:
    """The public key at ``m/path`` of ``seed``, with its origin (any BIP-48 script type)."""
    master = Bip32Secp256k1.FromSeed(seed, Bip32KeyNetVersions(network.xpub_version, network.xprv_version))
    node = master.DerivePath("m/" + path.replace("h", "'"))
    origin = KeyOrigin(bytes(master.FingerPrint().ToBytes()), parse_path(path))
    return ExtendedKey(node.PublicKey().ToExtended(), origin)


def test_bip48_p2sh_p2wsh_key_in_a_p2wsh_vault() -> None:
    nested = bip48_key(b"\x07" * 32, "48h/1h/0h/1h")
    (finding,) = check(vault(2, (KEYS[0], nested, KEYS[2])))
    assert "key 2 (" in finding
    assert "is a BIP-48 P2SH-P2WSH account key (script type 1h in its origin 48h/1h/0h/1h)" in finding
    assert "export the key at m/48h/<coin>h/<account>h/2h" in finding
    native = bip48_key(b"\x07" * 32, "48h/1h/0h/2h")
    assert native == test_key_from_seed(b"\x07" * 32, Network.REGTEST)
    assert check(vault(2, (KEYS[0], native, KEYS[2]))) == ()


@pytest.mark.parametrize("path", ["48h/1h/0h/1", "49h/1h/0h/1h", "48h/1h/1h", "1h"])
def test_only_the_bip48_script_type_1h_is_judged_nested(path: str) -> None:
    """Script type 1 unhardened, another purpose or a shorter path: not BIP-48 P2SH-P2WSH."""
    assert check(vault(2, (KEYS[0], bip48_key(b"\x07" * 32, path), KEYS[2]))) == ()


def test_key_shared_with_another_active_vault() -> None:
    (finding,) = check(vault(2), others={KEYS[1].xpub: "cold-2024"})
    assert "key 2 (" in finding and "already used by active vault 'cold-2024'" in finding
    (finding,) = check(vault(2), others={str(KEYS[0]): "hot"})
    assert "key 1 (" in finding and "'hot'" in finding


def test_wrong_network_names_every_key() -> None:
    findings = check(vault(2), network=Network.MAINNET)
    assert len(findings) == 3
    assert all("is a test-network tpub but the node is on main" in f for f in findings)
    main_keys = tuple(test_key_from_seed(bytes([i]) * 32, Network.MAINNET) for i in (1, 2, 3))
    findings = check(vault(2, main_keys), network=Network.REGTEST)
    assert len(findings) == 3 and "is a mainnet xpub but the node is on regtest" in findings[0]


def test_every_violation_is_reported_at_once() -> None:
    bare = ExtendedKey(KEYS[0].xpub)
    findings = check(
        vault(1, (KEYS[0], bare, KEYS[1])),
        ("alice", "alice", "alice"),
        others={KEYS[1].xpub: "old"},
    )
    expected = (
        "below the policy minimum",
        "distinct holder",
        "alone reaches the threshold",
        "appears 2 times",
        "has no origin",
        "already used by active vault",
    )
    assert len(findings) == len(expected)
    assert all(part in finding for part, finding in zip(expected, findings, strict=True))
    with pytest.raises(PolicyViolation) as info:
        enforce(findings)
    assert info.value.findings == findings
    assert "already used by active vault 'old'" in str(info.value)


def test_policy_values_are_checked() -> None:
    assert Policy(min_threshold=3, min_holders=3, max_keys=5).max_keys == 5
    with pytest.raises(InvalidInput):
        Policy(min_threshold=0)
    with pytest.raises(InvalidInput):
        Policy(max_keys=16)
    with pytest.raises(InvalidInput):
        Policy(min_holders=0)


def test_stricter_policy() -> None:
    strict = Policy(min_threshold=3, min_holders=3, max_keys=5)
    findings = check_vault_policy(vault(2), ("a", "b", "b"), Network.REGTEST, strict, {})
    assert any("below the policy minimum of 3" in f for f in findings)
    assert any("only 2 distinct holder(s)" in f for f in findings)
