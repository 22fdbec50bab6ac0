"""The JSON-RPC client against a real regtest bitcoind: calls, batches and every failure mode."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest

from custody.amount import sat_from_rpc
from custody.errors import (
    InvalidAddressOrKey,
    InvalidInput,
    InvalidParameter,
    MethodNotFound,
    NodeUnreachable,
    RpcError,
    WalletNotFound,
)
from custody.rpc import LONG_CALL_TIMEOUT_S, RpcClient
from regtest.node import RegtestNode, free_port


def test_single_calls_return_typed_values(rpc: RpcClient, node: RegtestNode) -> None:
    chain = rpc.get_blockchain_info()
    assert chain.chain == "regtest"
    assert chain.blocks == rpc.get_block_count() >= 101
    assert chain.best_block_hash == rpc.get_block_hash(chain.blocks)
    info = rpc.get_network_info()
    assert info.version >= 280000
    assert info.version_text.count(".") == 2


def test_amounts_arrive_as_decimal_and_convert_exactly(node: RegtestNode) -> None:
    balances = node.miner().call("getbalances")
    trusted = balances["mine"]["trusted"]
    assert isinstance(trusted, Decimal)
    assert sat_from_rpc(trusted) > 0
    assert isinstance(sat_from_rpc(trusted), int)


def test_batch_matches_single_calls_in_one_round_trip(rpc: RpcClient) -> None:
    heights = list(range(0, 50))
    singles = [rpc.get_block_hash(h) for h in heights]
    before = rpc.round_trips
    assert rpc.get_block_hashes(heights) == singles
    assert rpc.round_trips - before == 1


def test_batches_are_capped_and_split(node: RegtestNode) -> None:
    client = RpcClient(node.rpc_url, cookie_path=node.cookie_path, max_batch=7)
    heights = list(range(0, 50))
    assert client.get_block_hashes(heights) == [node.rpc().get_block_hash(h) for h in heights]
    assert client.round_trips == 8  # ceil(50 / 7)


def test_batch_results_keep_each_error_in_place(rpc: RpcClient) -> None:
    out = rpc.batch_results([("getblockhash", (0,)), ("getblockhash", (10**6,)), ("nosuch", ())])
    assert isinstance(out[0], str) and len(out[0]) == 64
    assert isinstance(out[1], InvalidParameter) and out[1].code == -8
    assert isinstance(out[2], MethodNotFound) and out[2].code == -32601
    with pytest.raises(InvalidParameter):
        rpc.batch([("getblockhash", (0,)), ("getblockhash", (10**6,))])


def test_unknown_method(rpc: RpcClient) -> None:
    with pytest.raises(MethodNotFound) as e:
        rpc.call("getnothing")
    assert e.value.code == -32601
    assert "getnothing" in str(e.value)


def test_bad_parameters(rpc: RpcClient) -> None:
    with pytest.raises(InvalidParameter) as e:
        rpc.call("getblockhash", -1)
    assert e.value.code == -8
    with pytest.raises(RpcError) as e2:
        rpc.call("getblockhash", "not a number")
    assert e2.value.code in (-1, -3)


def test_invalid_address(rpc: RpcClient) -> None:
    with pytest.raises(InvalidAddressOrKey) as e:
        rpc.call("getrawtransaction", "00" * 32)
    assert e.value.code == -5


def test_unknown_wallet(rpc: RpcClient) -> None:
    with pytest.raises(WalletNotFound) as e:
        rpc.wallet("no-such-wallet").call("getbalances")
    assert e.value.code == -18


def test_wallet_endpoint(new_wallet: Callable[..., RpcClient]) -> None:
    wallet = new_wallet()
    assert wallet.endpoint.endswith("/wallet/" + str(wallet.wallet_name))
    assert wallet.call("getwalletinfo")["walletname"] == wallet.wallet_name


def test_closed_port_is_unreachable_and_names_the_url(node: RegtestNode) -> None:
    port = free_port()
    client = RpcClient(f"http://127.0.0.1:{port}", cookie_path=node.cookie_path, timeout=5)
    with pytest.raises(NodeUnreachable) as e:
        client.call("getblockcount")
    assert f"127.0.0.1:{port}" in str(e.value)
    assert "running" in str(e.value)


def test_wrong_cookie_is_refused_without_leaking_it(node: RegtestNode, tmp_path: Path) -> None:
    cookie = tmp_path / ".cookie"
    cookie.write_text("__cookie__:s3cr3t-value")
    with pytest.raises(NodeUnreachable) as e:
        RpcClient(node.rpc_url, cookie_path=cookie).call("getblockcount")
    assert "401" in str(e.value)
    assert "s3cr3t-value" not in str(e.value)


def test_wrong_password_never_appears_in_errors(node: RegtestNode) -> None:
    client = RpcClient(node.rpc_url, user="someone", password="hunter2-secret")
    with pytest.raises(NodeUnreachable) as e:
        client.call("getblockcount")
    assert "hunter2-secret" not in str(e.value) and "hunter2-secret" not in repr(client)


def test_missing_cookie_file(node: RegtestNode, tmp_path: Path) -> None:
    with pytest.raises(NodeUnreachable, match="cookie file"):
        RpcClient(node.rpc_url, cookie_path=tmp_path / "absent").call("getblockcount")


def test_credentials_in_url_are_refused() -> None:
    with pytest.raises(InvalidInput) as e:
        RpcClient("http://user:pw-in-url@127.0.0.1:18443")
    assert "pw-in-url" not in str(e.value)


def test_multi_argument_calls_take_named_parameters(rpc: RpcClient) -> None:
    name = f"named-{uuid.uuid4().hex[:12]}"
    rpc.createwallet(name)  # defaults: blank, watch-only, descriptors, not loaded on startup
    wallet = rpc.wallet(name)
    info = wallet.call("getwalletinfo")
    assert (info["private_keys_enabled"], info["descriptors"]) == (False, True)
    assert wallet.call("listdescriptors")["descriptors"] == []  # blank
    assert wallet.listtransactions() == []
    assert name in rpc.list_wallets() and name in rpc.list_wallet_dir()
    rpc.call("unloadwallet", name)
    assert name not in rpc.list_wallets() and name in rpc.list_wallet_dir()
    rpc.loadwallet(name)
    assert name in rpc.list_wallets()

    hot = f"named-{uuid.uuid4().hex[:12]}"
    rpc.createwallet(hot, disable_private_keys=False, blank=False)
    assert rpc.wallet(hot).call("getwalletinfo")["private_keys_enabled"] is True
    for w in (name, hot):
        rpc.call("unloadwallet", w)


def test_call_named_leaves_out_none_and_maps_errors(rpc: RpcClient) -> None:
    tip = rpc.get_block_hash(0)
    assert rpc.call_named("getblockhash", height=0) == tip
    header = rpc.call_named("getblockheader", blockhash=tip, verbose=None)  # Core's default: verbose
    assert header["height"] == 0
    with pytest.raises(InvalidParameter, match="nosuch"):
        rpc.call_named("getblockhash", height=0, nosuch=1)


def test_long_calls_get_their_own_client_with_a_long_timeout(rpc: RpcClient) -> None:
    wallet = rpc.wallet("some-vault")
    long = wallet.long_call_client()
    assert (long.timeout, long.wallet_name) == (LONG_CALL_TIMEOUT_S, "some-vault")
    assert wallet.timeout == rpc.timeout < LONG_CALL_TIMEOUT_S  # the others keep theirs
    node_wide = long.clone(wallet=None)
    assert node_wide.endpoint == rpc.endpoint and node_wide.timeout == LONG_CALL_TIMEOUT_S
    assert node_wide.get_block_count() == rpc.get_block_count()
