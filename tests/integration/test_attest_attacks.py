"""Attestations attacked as a dishonest operator or a moving chain would, against a real regtest
node on SQLite and PostgreSQL: each document is re-signed with the ledger's own key (the operator
holds it), so only the named checks and the node stand between it and the auditor."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from ledger.attest.document import sign_document
from ledger.attest.verify_doc import canonical_bytes, document_sha256, verify_attestation
from ledger.store.db import make_engine
from regtest.node import RegtestNode
from tests.fixtures.reserve import Reserve
from tests.integration.test_attest import attest_to, funded, keys
from tests.integration.test_tx_shapes import spend


@pytest.fixture
def node(chain_node: RegtestNode) -> RegtestNode:
    return chain_node


def _outpoints(doc: dict[str, Any]) -> set[tuple[str, int]]:
    return {(o["txid"], o["vout"]) for v in doc["vaults"] for o in v["outputs"]}


def leave_out(doc: dict[str, Any], gone: Iterable[tuple[str, int]]) -> dict[str, Any]:
    """``doc`` without the outputs ``gone``, every sum made to agree (what a careful liar does)."""
    drop = set(gone)
    d = copy.deepcopy(doc)
    for v in d["vaults"]:
        v["outputs"] = [o for o in v["outputs"] if (o["txid"], o["vout"]) not in drop]
        v["chain_amount"] = sum(o["amount"] for o in v["outputs"])
        v["difference"] = v["chain_amount"] - v["ledger_amount"]
    d["totals"]["chain"] = sum(v["chain_amount"] for v in d["vaults"])
    d["totals"]["difference"] = d["totals"]["chain"] - d["totals"]["ledger"]
    return d


def verify_file(reserve: Reserve, path: Path, doc: dict[str, Any], *args: str) -> tuple[int, str]:
    path.write_text(json.dumps(doc))
    r = reserve.run("attest", "verify", str(path), *args)
    return r.code, r.out


def test_outputs_left_out_pass_offline_but_not_the_node(
    reserve: Reserve, node: RegtestNode, tmp_path: Path
) -> None:
    """An operator hides an output still unspent and one spent after H: offline the document
    only shows a difference against the books (it cannot know the chain holds more); the node
    finds both, in its UTXO set and in the blocks after H."""
    a, b = funded(reserve, node)
    doc = attest_to(reserve, tmp_path / "att.json")
    vaults = {v["name"]: v for v in doc["vaults"]}
    [big] = [o for o in vaults[a.name]["outputs"] if o["amount"] == 120_000_000]
    [warm] = vaults[b.name]["outputs"]
    spend(node, a, {str(node.miner().call("getnewaddress")): 125_000_000})
    node.mine(1)
    spent_later = (big["txid"], big["vout"])
    still_unspent = (warm["txid"], warm["vout"])
    assert node.rpc().call("gettxout", *spent_later) is None
    key, pems = keys(reserve)
    hidden = sign_document(leave_out(doc, [spent_later, still_unspent]), key)
    offline = verify_attestation(hidden, pems)
    assert offline.ok, offline.lines()  # honest about it: offline cannot see what is not listed
    assert hidden["totals"]["difference"] == -(120_000_000 + 7_000_000)
    code, out = verify_file(reserve, tmp_path / "hidden.json", hidden, "--node")
    assert code == 1, out
    for txid, vout in (spent_later, still_unspent):
        assert f"FAIL  node: output {txid}:{vout} " in out and "is not attested" in out, out
    # the honest document still verifies against the node
    assert verify_file(reserve, tmp_path / "honest.json", doc, "--node")[0] == 0


def test_holders_renamed_in_the_document_are_refused(
    reserve: Reserve, node: RegtestNode, tmp_path: Path
) -> None:
    """The holders a document names (whose signatures its proofs of control are counted as) must
    be those the vault's vault-added record gives its keys, in key order."""
    funded(reserve, node)
    doc = attest_to(reserve, tmp_path / "att.json")
    key, pems = keys(reserve)
    for holders in (["ministry", "ministry", "regulator"], ["regulator", "central-bank", "ministry"]):
        changed = copy.deepcopy(doc)
        changed["vaults"][0]["holders"] = holders
        result = verify_attestation(sign_document(changed, key), pems)
        assert "balances" in result.failed, (holders, result.lines())
        assert any("holders" in f for f in result.check("balances").findings), result.lines()


def _insert_row(reserve: Reserve, doc: dict[str, Any], record_seq: int) -> None:
    """What the runtime role may do behind the application's back: INSERT (never UPDATE)."""
    engine = make_engine(reserve.runtime_url)
    try:
        with engine.begin() as c:
            c.execute(
                text(
                    "INSERT INTO attestations (height, block_hash, document, sha256, record_seq) "
                    "VALUES (:h, :b, :d, :s, :r)"
                ),
                {
                    "h": doc["height"],
                    "b": doc["block_hash"],
                    "d": canonical_bytes(doc).decode("ascii"),
                    "s": document_sha256(doc),
                    "r": record_seq,
                },
            )
    finally:
        engine.dispose()


def _rows(reserve: Reserve) -> list[tuple[int, int]]:
    engine = make_engine(reserve.db_url)
    try:
        with engine.connect() as c:
            return [(int(i), int(s)) for i, s in c.execute(text("SELECT id, record_seq FROM attestations"))]
    finally:
        engine.dispose()


def test_attestation_rows_inserted_behind_the_books_are_never_published(
    reserve: Reserve, node: RegtestNode, tmp_path: Path
) -> None:
    """The runtime role may INSERT into attestations: a forged document naming an honest
    attestation's record, or a copy of an older attestation made to look like the latest, must be
    reported by attest list and never published by report site."""
    funded(reserve, node)
    old = attest_to(reserve, tmp_path / "old.json")
    node.mine(1)
    attest_to(reserve, tmp_path / "new.json")
    [(_, old_seq), _] = _rows(reserve)
    # a copy of the older attestation, inserted last: it would be "the latest"
    _insert_row(reserve, old, old_seq)
    r = reserve.run("attest", "list")
    assert r.code == 1 and f"names record #{old_seq}, but an earlier row" in r.out, r.out
    r = reserve.run("report", "site", str(tmp_path / "copy"), "--json")
    assert r.code == 2 and r.json()["error"]["code"] == "tamper-detected", r.out
    assert not (tmp_path / "copy").exists()


def test_a_forged_attestation_row_is_never_published(
    reserve: Reserve, node: RegtestNode, tmp_path: Path
) -> None:
    funded(reserve, node)
    doc = attest_to(reserve, tmp_path / "att.json")
    [(_, seq)] = _rows(reserve)
    key, _ = keys(reserve)
    forged = copy.deepcopy(doc)
    forged["totals"]["chain"] *= 10
    _insert_row(reserve, sign_document(forged, key), seq)
    r = reserve.run("attest", "list")
    assert r.code == 1 and "differs from its log record" in r.out, r.out
    r = reserve.run("report", "site", str(tmp_path / "forged"), "--json")
    assert r.code == 2 and r.json()["error"]["code"] == "tamper-detected", r.out
    assert not (tmp_path / "forged").exists()
