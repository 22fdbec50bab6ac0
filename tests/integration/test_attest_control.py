"""``reserve attest prepare`` / ``finish``: attestations carrying each vault's BIP-322 proof of
control, signed by its holders (DemoSigner wallets, one key each) through the PSBT file exchange,
on a real regtest node, SQLite and PostgreSQL. A proof one key short of the threshold is refused
and nothing is kept; a proof made for another block does not verify."""

from __future__ import annotations

import base64
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from ledger.attest.document import sign_document, with_controls
from ledger.attest.verify_doc import verify_attestation
from ledger.journal.checkpoint import load_signing_key, public_key_pem
from regtest.node import RegtestNode
from regtest.signers import DemoSigner
from tests.fixtures.db import snapshot
from tests.fixtures.reserve import Reserve, TestVault
from tests.integration.test_attest import funded


@pytest.fixture
def db(reserve: Reserve) -> Iterator[Engine]:
    engine = reserve.engine()
    yield engine
    engine.dispose()


def holders(node: RegtestNode, vault: TestVault, names: tuple[str, ...]) -> list[DemoSigner]:
    keys = tuple(vault.keys.values())
    out = []
    for name in names:
        s = DemoSigner(name, vault.seeds[name])
        s.import_vault(node.rpc(), 2, keys)
        out.append(s)
    return out


def prepare(reserve: Reserve, out: Path) -> list[dict[str, str]]:
    files: list[dict[str, str]] = reserve.ok("attest", "prepare", "--out", str(out), "--json").json()["psbts"]
    return files


def sign_all(
    node: RegtestNode, reserve: Reserve, files: list[dict[str, str]], names: tuple[str, ...], tmp: Path
) -> list[str]:
    """Each named holder of each file's vault signs it; returns the signed files."""
    signed = []
    for f in files:
        vault = reserve.vaults[f["vault"]]
        for signer in holders(node, vault, names):
            back = tmp / f"{Path(f['psbt']).stem}-{signer.holder}.psbt"
            text = signer.sign(node.rpc(), Path(f["psbt"]).read_text().strip())
            if signer.holder == "regulator":  # a signer that hands back a binary PSBT file
                back.write_bytes(base64.b64decode(text))
            else:
                back.write_text(text)
            signed.append(str(back))
    return signed


def finish(reserve: Reserve, draft: Path, signed: list[str], *extra: str) -> Any:
    args = ["attest", "finish", str(draft)]
    for s in signed:
        args += ["--signed", s]
    return reserve.run(*args, *extra)


def test_holders_prove_control_of_every_output(reserve: Reserve, node: RegtestNode, tmp_path: Path) -> None:
    a, b = funded(reserve, node)
    files = prepare(reserve, tmp_path / "draft")
    assert {f["vault"] for f in files} == {a.name, b.name}
    assert len([f for f in files if f["vault"] == a.name]) == 3  # one proof per funded address
    signed = sign_all(node, reserve, files, ("ministry", "regulator"), tmp_path)
    r = finish(reserve, tmp_path / "draft", signed, "--out", str(tmp_path / "att.json"), "--json")
    assert r.code == 0, r.err
    doc = json.loads((tmp_path / "att.json").read_text())
    assert all(v["control"]["proofs"] for v in doc["vaults"])
    v = reserve.run("attest", "verify", str(tmp_path / "att.json"), "--node")
    assert v.code == 0, v.out
    assert f"BIP-322 proofs of funds verified for {a.name}, {b.name}" in v.out or (
        f"BIP-322 proofs of funds verified for {b.name}, {a.name}" in v.out
    )
    assert len(reserve.ok("attest", "list", "--json").json()["attestations"]) == 1


def test_one_key_short_is_refused_and_nothing_is_kept(
    reserve: Reserve, node: RegtestNode, db: Engine, tmp_path: Path
) -> None:
    funded(reserve, node)
    files = prepare(reserve, tmp_path / "draft")
    signed = sign_all(node, reserve, files, ("ministry",), tmp_path)
    before = snapshot(db)
    r = finish(reserve, tmp_path / "draft", signed, "--json")
    assert r.code == 2 and json.loads(r.out)["error"]["code"] == "policy-violation", r.out
    assert snapshot(db) == before
    assert reserve.ok("attest", "list", "--json").json()["attestations"] == []


def test_a_proof_for_another_block_does_not_verify(
    reserve: Reserve, node: RegtestNode, tmp_path: Path
) -> None:
    funded(reserve, node)
    files = prepare(reserve, tmp_path / "one")
    signed = sign_all(node, reserve, files, ("ministry", "regulator"), tmp_path)
    assert finish(reserve, tmp_path / "one", signed, "--out", str(tmp_path / "one.json")).code == 0
    first = json.loads((tmp_path / "one.json").read_text())
    node.mine(1)
    prepare(reserve, tmp_path / "two")
    draft = json.loads((tmp_path / "two" / "attestation-draft.json").read_text())
    key = load_signing_key(reserve.key_path)
    # the holders' proofs of the first block, carried by a document for the next one
    moved = sign_document(with_controls(draft, {v["name"]: v["control"] for v in first["vaults"]}), key)
    result = verify_attestation(moved, [public_key_pem(key)])
    assert result.failed == ("control",), result.lines()
    assert any("message" in f for f in result.check("control").findings)
    # and finish refuses the first block's signatures for the second draft
    r = finish(reserve, tmp_path / "two", signed)
    assert r.code == 2 and "belongs to none of this attestation's proofs" in r.err
