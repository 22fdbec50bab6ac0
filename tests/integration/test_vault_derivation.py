"""Local vault address derivation equals bitcoind's ``deriveaddresses``, index for index."""

from __future__ import annotations

import os

from custody.descriptor import MultisigDescriptor
from custody.keygen import test_key_from_seed
from custody.network import Network
from custody.rpc import RpcClient


def _fresh_vault() -> MultisigDescriptor:
    keys = [test_key_from_seed(os.urandom(32), Network.REGTEST) for _ in range(3)]
    return MultisigDescriptor.from_keys(2, keys)


def test_first_thousand_receive_and_change_addresses_match_bitcoind(rpc: RpcClient) -> None:
    vault = _fresh_vault()
    before = rpc.round_trips
    receive = rpc.call("deriveaddresses", vault.receive(), [0, 999])
    change = rpc.call("deriveaddresses", vault.change(), [0, 999])
    assert rpc.round_trips - before == 2

    assert vault.addresses(0, 1000, False, Network.REGTEST) == receive
    assert vault.addresses(0, 1000, True, Network.REGTEST) == change
    assert vault.address(999, True, Network.REGTEST) == change[999]
    assert len(set(receive) | set(change)) == 2000


def test_core_accepts_our_descriptor_text_and_checksums(rpc: RpcClient) -> None:
    vault = _fresh_vault()
    for text in (vault.receive(), vault.change()):
        info = rpc.call("getdescriptorinfo", text)
        assert info["checksum"] == text.rsplit("#", 1)[1]
        assert info["isrange"] is True
        assert info["issolvable"] is True
        assert info["hasprivatekeys"] is False
    # The multipath form: Core expands it into the receive and change descriptors.
    both = rpc.call("deriveaddresses", str(vault), [5, 6])
    assert both == [
        vault.addresses(5, 2, False, Network.REGTEST),
        vault.addresses(5, 2, True, Network.REGTEST),
    ]


def test_script_pubkeys_match_getaddressinfo(rpc: RpcClient) -> None:
    vault = _fresh_vault()
    for index in (0, 17, 2**31 - 1):
        address = vault.address(index, False, Network.REGTEST)
        assert rpc.call("deriveaddresses", vault.receive(), [index, index]) == [address]
        info = rpc.call("validateaddress", address)
        assert bytes.fromhex(info["scriptPubKey"]) == vault.script_pubkey(index, False)
