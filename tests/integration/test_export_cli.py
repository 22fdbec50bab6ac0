"""``reserve export entries``: the JSONL alone lets an auditor recompute every leaf hash and the
Merkle root that ``reserve ledger checkpoint`` signed (RFC 6962, hashlib only: nothing of this
project is used to check it), its canonical bytes decode to the fields beside them, and the CSV
has one row per posting with the same amounts. On SQLite and PostgreSQL, a ledger built through
the CLI against a regtest node (with log records: vault definitions, an audit)."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from regtest.node import RegtestNode
from tests.fixtures.db import snapshot
from tests.fixtures.reserve import Reserve
from tests.integration.test_statement_cli import report_groups  # noqa: F401 (autouse fixture)
from tests.integration.test_tx_shapes import spend, ungated_only

BTC = 100_000_000


@pytest.fixture
def db(reserve: Reserve) -> Iterator[Engine]:
    engine = reserve.engine()
    yield engine
    engine.dispose()


# --- an auditor's code: the standard library only -----------------------------------------------------


def rfc6962_root(leaves: list[bytes]) -> bytes:
    """MTH(D[n]) of RFC 6962 section 2.1 over leaf hashes."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return leaves[0]
    k = 1
    while k * 2 < len(leaves):
        k *= 2
    return hashlib.sha256(b"\x01" + rfc6962_root(leaves[:k]) + rfc6962_root(leaves[k:])).digest()


def decode_entry(data: bytes) -> dict[str, Any]:
    """The canonical entry bytes (docs/ledger-format.md), field by field."""
    pos = 0

    def take(n: int) -> bytes:
        nonlocal pos
        chunk = data[pos : pos + n]
        assert len(chunk) == n, "truncated"
        pos += n
        return chunk

    def u32() -> int:
        return int(struct.unpack(">I", take(4))[0])

    def text() -> str:
        return take(u32()).decode("utf-8")

    def opt(read: Any) -> Any:
        return read() if take(1) == b"\x01" else None

    assert take(4) == b"RLE\x01"
    out: dict[str, Any] = {
        "seq": struct.unpack(">Q", take(8))[0],
        "kind": text(),
        "date": text(),
        "memo": text(),
    }
    out["ref"] = opt(text)
    out["reverses_seq"] = opt(lambda: struct.unpack(">Q", take(8))[0])
    out["txid"] = opt(lambda: take(32).hex())
    out["outputs"] = opt(text)
    out["block_hash"] = opt(lambda: take(32).hex())
    out["block_height"] = opt(u32)
    out["postings"] = [
        {"account": text(), "type": text(), "amount_sat": struct.unpack(">q", take(8))[0]}
        for _ in range(u32())
    ]
    assert pos == len(data), "trailing bytes"
    return out


# --- the tests --------------------------------------------------------------------------------------


def build_ledger(reserve: Reserve, node: RegtestNode) -> None:
    a = reserve.add_vault("exp-a")
    b = reserve.add_vault("exp-b")
    reserve.ok("account", "add", "acme", "--type", "counterparty")
    reserve.ok("account", "add", "office", "--type", "expense")
    d = node.fund(a.address(), 3 * BTC)
    reserve.ok("record", "deposit", "--vault", a.name, "--txid", d, "--from", "acme", "--amount", "3")
    moved = spend(node, a, {b.address(): BTC})
    node.mine(1)
    reserve.ok("sync")
    memo = "rent, 'quoted', \"twice\", and a comma; ünïcode"
    reserve.ok(
        "record",
        "--kind",
        "adjustment",
        "--memo",
        memo,
        "--posting",
        "office=0.001",
        "--posting",
        "acme=-0.001",
    )
    assert ungated_only(reserve) == {moved}  # the holders' own transfer: the audit's one finding


def test_jsonl_recomputes_the_signed_root(
    reserve: Reserve, node: RegtestNode, db: Engine, tmp_path: Path
) -> None:
    build_ledger(reserve, node)
    checkpoint = json.loads(reserve.ok("ledger", "checkpoint").out)
    out = tmp_path / "entries.jsonl"
    before = snapshot(db)
    reserve.ok("export", "entries", "--jsonl", "--out", str(out))
    assert snapshot(db) == before

    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert [x["seq"] for x in lines] == list(range(1, len(lines) + 1))
    assert len(lines) == checkpoint["tree_size"]
    leaves = []
    for x in lines:
        data = bytes.fromhex(x["canonical_hex"])
        leaf = hashlib.sha256(b"\x00" + data).digest()
        assert leaf.hex() == x["leaf_hash"], x["seq"]
        leaves.append(leaf)
        decoded = decode_entry(data)
        assert decoded["postings"] == [
            {k: p[k] for k in ("account", "type", "amount_sat")} for p in x["postings"]
        ]
        for p in x["postings"]:
            sat = p["amount_sat"]
            assert p["amount_btc"] == f"{'-' if sat < 0 else ''}{abs(sat) // BTC}.{abs(sat) % BTC:08d}"
        assert {k: v for k, v in decoded.items() if k != "postings"} == {
            k: x[k] for k in decoded if k != "postings"
        }
        assert sum(p["amount_sat"] for p in x["postings"]) == 0
    assert rfc6962_root(leaves).hex() == checkpoint["root"]
    kinds = {x["kind"] for x in lines}
    assert {"vault-added", "deposit", "transfer", "adjustment", "audit"} <= kinds

    # the same to standard output
    assert reserve.ok("export", "entries", "--jsonl").out == out.read_text()


def test_csv_has_one_row_per_posting(reserve: Reserve, node: RegtestNode, db: Engine, tmp_path: Path) -> None:
    build_ledger(reserve, node)
    jsonl = [json.loads(x) for x in reserve.ok("export", "entries", "--jsonl").out.splitlines()]
    text = reserve.ok("export", "entries", "--csv").out
    rows = list(csv.DictReader(io.StringIO(text)))
    expected = []
    for x in jsonl:
        if not x["postings"]:
            expected.append((x["seq"], x["kind"], x["memo"], "", "", None))
        for i, p in enumerate(x["postings"]):
            expected.append((x["seq"], x["kind"], x["memo"], str(i), p["account"], p["amount_sat"]))
    got = [
        (
            int(r["seq"]),
            r["kind"],
            r["memo"],
            r["posting"],
            r["account"],
            int(r["amount_sat"]) if r["amount_sat"] else None,
        )
        for r in rows
    ]
    assert got == expected
    assert all(r["leaf_hash"] == jsonl[int(r["seq"]) - 1]["leaf_hash"] for r in rows)
    out = tmp_path / "entries.csv"
    reserve.ok("export", "entries", "--csv", "--out", str(out))
    assert out.read_text() == text


def test_bad_export_input_exits_2_and_writes_nothing(
    reserve: Reserve, node: RegtestNode, db: Engine, tmp_path: Path
) -> None:
    build_ledger(reserve, node)
    before = snapshot(db)
    for args in (
        (),
        ("--csv", "--jsonl"),
        ("--csv", "--out", str(tmp_path / "missing-dir" / "x.csv")),
        ("--jsonl", "--out", str(tmp_path)),
    ):
        r = reserve.run("export", "entries", *args)
        assert r.code == 2, (args, r.out, r.err)
    assert snapshot(db) == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".")) == []
