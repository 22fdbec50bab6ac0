"""The regtest harness: clean start and stop, death reported rather than hung on, the installer."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from custody.errors import NodeUnreachable
from regtest.node import INSTALLER, NodeError, RegtestNode
from tests.fixtures.node import _NodeSlot


def test_start_stop_cleanly_removes_temp_datadir(node: RegtestNode) -> None:
    with RegtestNode(node.bitcoind) as n:
        datadir = n.datadir
        assert n.rpc().get_blockchain_info().chain == "regtest"
        assert (datadir / "bitcoin.conf").read_text().count("rpcport=") == 1
        assert n.rpc_port != node.rpc_port
    assert not n.is_running()
    assert not datadir.exists()


def test_datadir_is_kept_when_the_block_fails(node: RegtestNode) -> None:
    with pytest.raises(RuntimeError), RegtestNode(node.bitcoind) as n:
        raise RuntimeError("boom")
    assert n.datadir.exists()
    assert (n.datadir / "bitcoin.conf").exists()
    subprocess.run(["rm", "-rf", str(n.datadir)], check=True)


def test_sigkill_mid_test_is_reported_not_hung(node: RegtestNode) -> None:
    n = RegtestNode(node.bitcoind, rpc_timeout=5)
    n.start()
    try:
        n.mine(1)
        assert n.process is not None
        os.kill(n.process.pid, signal.SIGKILL)
        n.process.wait(10)
        started = time.monotonic()
        with pytest.raises(NodeUnreachable):
            n.rpc().get_block_count()
        with pytest.raises(NodeError, match="died") as e:
            n.check_alive()
        assert "exit code -9" in str(e.value)
        assert time.monotonic() - started < 10
    finally:
        n.stop()
        n.cleanup()


def test_a_node_that_cannot_start_is_reported_with_its_log(node: RegtestNode, tmp_path: Path) -> None:
    n = RegtestNode(node.bitcoind, datadir=tmp_path / "bad", extra_args=["-nosuchoption=1"])
    with pytest.raises(NodeError) as e:
        n.start(timeout=30)
    assert "exited with code" in str(e.value)
    assert "nosuchoption" in str(e.value)


def test_mine_and_fund(node: RegtestNode) -> None:
    client = node.rpc()
    height = client.get_block_count()
    hashes = node.mine(2)
    assert client.get_block_count() == height + 2
    assert client.get_block_hash(height + 2) == hashes[-1]
    address = node.miner().call("getnewaddress")
    txid = node.fund(address, 12_345_678)
    tx = client.call("getrawtransaction", txid, True)
    assert tx["confirmations"] == 1


def test_installer_second_call_is_instant_and_prints_the_same_path() -> None:
    env = {k: v for k, v in os.environ.items() if k != "BITCOIND"}
    first = subprocess.run([str(INSTALLER)], capture_output=True, text=True, env=env, check=True)
    started = time.monotonic()
    second = subprocess.run([str(INSTALLER)], capture_output=True, text=True, env=env, check=True)
    elapsed = time.monotonic() - started
    path = first.stdout.strip().splitlines()[-1]
    assert second.stdout.strip().splitlines()[-1] == path
    assert Path(path).is_absolute() and os.access(path, os.X_OK)
    assert (Path(path).parent / "bitcoin-cli").exists() or Path(path).name == "bitcoind"
    assert elapsed < 5, f"second installer run took {elapsed:.1f}s"


def test_installer_honours_bitcoind_env(node: RegtestNode) -> None:
    env = dict(os.environ, BITCOIND=str(node.bitcoind))
    out = subprocess.run([str(INSTALLER)], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.strip().splitlines()[-1] == str(node.bitcoind.resolve())
    bad = subprocess.run(
        [str(INSTALLER)], capture_output=True, text=True, env=dict(env, BITCOIND="/nonexistent")
    )
    assert bad.returncode != 0 and "not an executable" in bad.stderr


def _installer_env(tmp_path: Path, fake_python: str) -> dict[str, str]:
    """An environment where the installer finds no bitcoind and must build into ``tmp_path``;
    ``python3`` (used for the source download) is replaced by ``fake_python``."""
    fakebin = tmp_path / "bin"
    fakebin.mkdir()
    (fakebin / "python3").write_text(f"#!/bin/sh\n{fake_python}\n")
    (fakebin / "python3").chmod(0o755)
    path = ":".join(p for p in os.environ["PATH"].split(":") if not (Path(p) / "bitcoind").exists())
    env = {k: v for k, v in os.environ.items() if k != "BITCOIND"}
    return dict(env, PATH=f"{fakebin}:{path}", XDG_CACHE_HOME=str(tmp_path / "cache"))


def _leftovers(tmp_path: Path) -> list[str]:
    root = tmp_path / "cache" / "reserve-ledger"
    return sorted(p.name for p in root.iterdir()) if root.exists() else []


def test_installer_failed_build_leaves_no_cache(tmp_path: Path) -> None:
    env = _installer_env(tmp_path, "echo 'no network' >&2; exit 1")
    out = subprocess.run([str(INSTALLER)], capture_output=True, text=True, env=env)
    assert out.returncode != 0
    assert "could not download" in out.stderr
    assert out.stdout == ""
    assert _leftovers(tmp_path) == []


def test_installer_interrupted_build_leaves_no_cache(tmp_path: Path) -> None:
    started = tmp_path / "download-started"
    env = _installer_env(tmp_path, f"touch {started}; sleep 30")
    proc = subprocess.Popen(
        [str(INSTALLER)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
        start_new_session=True,
    )
    # Interrupt once the download runs, so the whole process group (as with Ctrl-C) gets the signal.
    deadline = time.monotonic() + 20
    while not started.exists():
        assert proc.poll() is None, "the installer ended before the download started"
        assert time.monotonic() < deadline, "the download did not start within 20 s"
        time.sleep(0.02)
    assert _leftovers(tmp_path), "the build directory should exist while the build runs"
    os.killpg(proc.pid, signal.SIGTERM)
    proc.wait(20)
    assert proc.returncode != 0
    assert _leftovers(tmp_path) == []


def test_a_session_node_is_renewed_before_its_block_reward_runs_out(
    _txindex_slot: _NodeSlot, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Regtest halves the reward every 150 blocks; a node whose chain passed the limit is replaced
    by a fresh one (with mature funds) for the next test, so mining rewards stay bookable."""
    old = _txindex_slot.get()
    height = old.rpc().get_block_count()
    monkeypatch.setattr("tests.fixtures.node.FRESH_NODE_ABOVE", height)
    assert _txindex_slot.get() is old  # not past the limit yet
    old.mine(1)
    new = _txindex_slot.get()
    assert new is not old
    assert new.rpc().get_block_count() <= height
    assert not old.datadir.exists() or old.keep
