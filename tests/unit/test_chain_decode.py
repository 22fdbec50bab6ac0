"""Decoding raw transactions (custody.chain): txids recomputed, prevouts found or left unknown."""

from __future__ import annotations

import pytest
from bitcoin.core import CMutableTransaction, CMutableTxIn, CMutableTxOut, COutPoint, CScript, b2lx, lx

from custody.chain import ChainTx, TxInput, TxOutput, decode_checked, decode_raw, resolve_inputs
from custody.errors import InvalidInput

SCRIPT = CScript(bytes([0x00, 0x14]) + b"\x11" * 20)


def raw(inputs: list[tuple[str, int]], values: list[int]) -> str:
    tx = CMutableTransaction(
        [CMutableTxIn(COutPoint(lx(t), n)) for t, n in inputs],
        [CMutableTxOut(v, SCRIPT) for v in values],
    )
    return bytes(tx.serialize()).hex()


def test_the_txid_is_recomputed_and_checked() -> None:
    hex_tx = raw([("aa" * 32, 0)], [5_000])
    txid, tx = decode_raw(hex_tx)
    assert decode_checked(txid, hex_tx).GetTxid() == tx.GetTxid()
    with pytest.raises(InvalidInput, match=f"returned transaction {txid} when asked for"):
        decode_checked("bb" * 32, hex_tx)


def test_prevouts_found_and_unknown() -> None:
    prev_hex = raw([("cc" * 32, 3)], [7_000, 9_000])
    prev_id, prev = decode_raw(prev_hex)
    _, tx = decode_raw(raw([(prev_id, 1), ("dd" * 32, 0)], [15_000]))
    inputs = resolve_inputs(tx, {prev_id: prev})
    assert inputs[0] == TxInput(prev_id, 1, TxOutput(1, 9_000, bytes(SCRIPT)))
    assert inputs[1] == TxInput("dd" * 32, 0, None)
    known_only = ChainTx("ee" * 32, inputs[:1], (TxOutput(0, 8_000, bytes(SCRIPT)),), None)
    assert known_only.fee == 1_000
    assert ChainTx("ee" * 32, inputs, (TxOutput(0, 15_000, bytes(SCRIPT)),), None).fee is None
    # an output index beyond the previous transaction's outputs is unknown, not an error
    _, beyond = decode_raw(raw([(prev_id, 5)], [1]))
    assert resolve_inputs(beyond, {prev_id: prev})[0].prevout is None
    assert b2lx(prev.GetTxid()) == prev_id
