"""Policy boundaries and finding texts that mutation testing found untested (``scripts/mutation``)."""

from __future__ import annotations

import pytest

from custody.descriptor import MultisigDescriptor
from custody.errors import InvalidInput
from custody.keygen import test_key_from_seed
from custody.keys import ExtendedKey, shorten
from custody.network import Network
from custody.policy import P2WSH_MAX_STANDARD_KEYS, Policy, check_vault_policy

KEYS = tuple(test_key_from_seed(bytes([i]) * 32, Network.REGTEST) for i in range(1, 6))


def vault(m: int, keys: tuple[ExtendedKey, ...]) -> MultisigDescriptor:
    return MultisigDescriptor.from_keys(m, keys)


def test_policy_bounds_are_inclusive() -> None:
    assert Policy().max_keys == P2WSH_MAX_STANDARD_KEYS == 15
    assert Policy(min_threshold=1, min_holders=1).min_threshold == 1
    assert Policy(min_threshold=3, max_keys=3).max_keys == 3
    with pytest.raises(InvalidInput) as e:
        Policy(min_threshold=4, max_keys=3)
    assert str(e.value) == (
        "policy min_threshold=4, max_keys=3 must satisfy 1 <= min_threshold <= max_keys <= 15"
    )
    with pytest.raises(InvalidInput) as e:
        Policy(min_holders=0)
    assert str(e.value) == "policy min_holders=0 must be at least 1"


def test_a_custom_key_limit_allows_exactly_that_many_keys() -> None:
    limit = Policy(max_keys=3)
    holders = ("a", "b", "c", "d")
    assert check_vault_policy(vault(2, KEYS[:3]), holders[:3], Network.REGTEST, limit, {}) == ()
    (finding,) = check_vault_policy(vault(2, KEYS[:4]), holders, Network.REGTEST, limit, {})
    assert finding == "4 keys exceed the policy maximum of 3 for P2WSH; use fewer keys"


def test_every_finding_says_what_to_do() -> None:
    bare = ExtendedKey(KEYS[0].xpub)
    findings = check_vault_policy(
        vault(1, (KEYS[0], bare, KEYS[1])),
        ("bob", "alice"),
        Network.REGTEST,
        Policy(),
        {KEYS[1].xpub: "old"},
    )
    label2 = f"key 2 ({shorten(str(bare), 40)})"
    label3 = f"key 3 ({shorten(str(KEYS[1]), 40)})"
    assert label3 != f"key 3 ({shorten(str(KEYS[1]))})" and len(str(KEYS[1])) > 43
    no_origin = findings[5]
    assert no_origin.startswith(f"{label2} has no origin; write it as [fingerprint/48h/")
    assert no_origin.endswith("]xpub so signing devices can recognise it")
    assert findings[:5] + findings[6:] == (
        "threshold 1 is below the policy minimum of 2: one compromised key must never move funds; "
        "use at least 2-of-n",
        "2 holders given for 3 keys; name exactly one holder per key, in descriptor order",
        "holder 'alice' holds 1 of the 3 keys and alone reaches the threshold of 1; give those keys "
        "to different holders or raise the threshold",
        "holder 'bob' holds 1 of the 3 keys and alone reaches the threshold of 1; give those keys "
        "to different holders or raise the threshold",
        f"key {shorten(KEYS[0].xpub)} appears 2 times; every key of a vault must be different, "
        "replace the duplicate with another holder's key",
        f"{label3} is already used by active vault 'old'; a key serves one vault, "
        "use a fresh account key (another BIP-48 account index)",
    )


def test_too_few_holders_and_same_seed_findings_in_full() -> None:
    same_seed = test_key_from_seed(bytes([1]) * 32, Network.REGTEST, account=1)
    assert KEYS[0].origin is not None
    findings = check_vault_policy(
        vault(3, (KEYS[0], same_seed, KEYS[2])), ("x", "y", "y"), Network.REGTEST, Policy(min_holders=3), {}
    )
    assert findings == (
        "only 2 distinct holder(s) (x, y); the policy needs at least 3: give keys to more people",
        f"master fingerprint {KEYS[0].origin.fingerprint.hex()} appears on 2 keys: they come from "
        "the same seed; use keys from different signing devices",
    )


def test_a_p2sh_p2wsh_account_key_finding_in_full() -> None:
    from tests.unit.test_policy import bip48_key

    nested = bip48_key(b"\x07" * 32, "48h/1h/0h/1h")
    (finding,) = check_vault_policy(
        vault(2, (KEYS[0], nested, KEYS[2])), ("a", "b", "c"), Network.REGTEST, Policy(), {}
    )
    assert finding == (
        f"key 2 ({shorten(str(nested), 40)}) is a BIP-48 P2SH-P2WSH account key (script type 1h in its "
        "origin 48h/1h/0h/1h); this vault is native P2WSH, whose keys are the script type 2h accounts: "
        "export the key at m/48h/<coin>h/<account>h/2h from the signing device"
    )
