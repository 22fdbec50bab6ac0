"""``reserve node status`` and ``reserve regtest start|stop|status`` through the real CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from ledger.cli.main import main
from regtest.node import RegtestNode


def test_node_status(node: RegtestNode, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["--rpc-url", node.rpc_url, "--rpc-cookie", str(node.cookie_path), "node", "status"]
    assert main([*argv, "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["chain"] == "regtest"
    assert data["blocks"] == node.rpc().get_block_count()
    assert data["best_block_hash"] == node.rpc().get_block_hash(data["blocks"])
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "regtest" in out and data["best_block_hash"] in out


def test_node_status_unreachable_is_exit_2_with_advice(
    node: RegtestNode, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["--rpc-url", "http://127.0.0.1:1", "--rpc-cookie", str(node.cookie_path)]
    assert main([*argv, "node", "status"]) == 2
    err = capsys.readouterr().err
    assert "cannot reach bitcoind at http://127.0.0.1:1" in err


def test_node_status_without_settings(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("RESERVE_RPC_URL", raising=False)
    assert main(["node", "status"]) == 2
    assert "RESERVE_RPC_URL" in capsys.readouterr().err


def test_password_from_environment_never_printed(
    node: RegtestNode, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("RESERVE_RPC_USER", "u")
    monkeypatch.setenv("RESERVE_RPC_PASSWORD", "pw-from-env-xyz")
    assert main(["--rpc-url", node.rpc_url, "node", "status"]) == 2
    captured = capsys.readouterr()
    assert "401" in captured.err
    assert "pw-from-env-xyz" not in captured.err + captured.out


def test_regtest_start_status_stop(
    node: RegtestNode, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BITCOIND", str(node.bitcoind))
    datadir = tmp_path / "demo-node"
    try:
        assert main(["regtest", "start", "--dir", str(datadir)]) == 0
        out = capsys.readouterr().out
        assert "running, height 0" in out
        assert "export RESERVE_RPC_URL=http://127.0.0.1:" in out
        assert f"export RESERVE_RPC_COOKIE={datadir.resolve()}/regtest/.cookie" in out
        assert main(["regtest", "start", "--dir", str(datadir)]) == 0  # already running: no-op
        assert "running" in capsys.readouterr().out
    finally:
        assert main(["regtest", "stop", "--dir", str(datadir)]) == 0
    assert "not running" in capsys.readouterr().out
    assert main(["regtest", "status", "--dir", str(datadir)]) == 0
    assert "not running" in capsys.readouterr().out
