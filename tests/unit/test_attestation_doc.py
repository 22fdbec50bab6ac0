"""The attestation document and its offline verifier on synthetic chains and ledgers (no node).

A vault's outputs are put in transactions built here, the transactions in a regtest-difficulty
block with a real partial Merkle tree, the ledger's entries encoded as the journal encodes them:
the document built from these must verify, and each change must fail the check that names it.
The verifier must import nothing beyond the auditor's hash-pinned list (checked in a subprocess).
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import json
import struct
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from custody.chain_at import ConfirmedTx, OutputAt, Snapshot, outputs_at, script_paths
from custody.descriptor import MultisigDescriptor
from custody.keygen import test_key_from_seed
from custody.merkleblock import RawTx
from custody.network import Network
from ledger.attest.document import LedgerAt, VaultInfo, build_document, sign_document, with_controls
from ledger.attest.verify_doc import (
    FORMAT,
    decode_entry,
    document_sha256,
    node_findings,
    rfc6962_root,
    signing_message,
    verify_attestation,
)
from ledger.journal.canonical import encode_entry_fields
from ledger.journal.checkpoint import public_key_pem, sign_checkpoint
from ledger.journal.merkle import leaf_hash, root_of
from tests.unit.test_merkleblock import build, compact, header_with_root, sha256d

VAULT = "cold"


def raw_tx(prev: bytes, outputs: list[tuple[int, bytes]]) -> bytes:
    body = struct.pack("<i", 2) + b"\x01" + prev + struct.pack("<I", 0) + b"\x00" + b"\xff\xff\xff\xff"
    body += compact(len(outputs))
    for amount, script in outputs:
        body += struct.pack("<q", amount) + compact(len(script)) + script
    return body + b"\x00\x00\x00\x00"


def descriptor(tag: bytes = b"") -> MultisigDescriptor:
    keys = [test_key_from_seed(hashlib.sha256(tag + bytes([i])).digest(), Network.REGTEST) for i in range(3)]
    return MultisigDescriptor.from_keys(2, keys)


def synthetic(key: Ed25519PrivateKey) -> dict[str, Any]:
    """A signed document: vault 'cold' holds 3 outputs (two transactions in block 1), block 2 on top;
    the journal has its vault-added record and the deposits."""
    desc = descriptor()
    paths = script_paths(desc, 5)
    s0, s3 = desc.script_pubkey(0, False), desc.script_pubkey(3, True)
    other = b"\x00\x14" + bytes(20)
    t1 = RawTx.parse(raw_tx(b"\x11" * 32, [(50_000, s0), (7_000, other), (1_200, s3)]))
    t2 = RawTx.parse(raw_tx(b"\x22" * 32, [(300_000, s0)]))
    filler = sha256d(b"coinbase")
    txids = [filler, bytes.fromhex(t1.txid)[::-1], bytes.fromhex(t2.txid)[::-1]]
    root, hashes, flags = build(txids, [False, True, True])
    h1 = header_with_root(root, prev=sha256d(b"genesis"))
    h2 = header_with_root(sha256d(b"empty"), prev=sha256d(h1))
    hash1, hash2 = sha256d(h1)[::-1].hex(), sha256d(h2)[::-1].hex()
    proof = h1 + struct.pack("<I", 3) + compact(len(hashes)) + b"".join(hashes) + compact(len(flags)) + flags
    found = outputs_at([ConfirmedTx(t1, hash1, 1), ConfirmedTx(t2, hash1, 1)], paths, 2)
    assert sorted(o.amount for o in found) == [1_200, 50_000, 300_000]
    chain = Snapshot(
        network="regtest",
        height=2,
        block_hash=hash2,
        header_start=1,
        headers=(h1.hex(), h2.hex()),
        outputs={VAULT: found},
        transactions={t1.txid: t1.stripped.hex(), t2.txid: t2.stripped.hex()},
        proofs={hash1: proof.hex()},
    )
    day = dt.date(2026, 1, 1)
    record = json.dumps({"vault": VAULT, "descriptor": str(desc)}, sort_keys=True, separators=(",", ":"))
    entries = (
        encode_entry_fields(
            seq=1,
            kind="vault-added",
            date=day,
            memo=record,
            ref=None,
            reverses_seq=None,
            txid=None,
            outputs=None,
            block_hash=None,
            block_height=None,
            postings=(),
        ),
        encode_entry_fields(
            seq=2,
            kind="deposit",
            date=day,
            memo="in",
            ref=None,
            reverses_seq=None,
            txid=t1.txid,
            outputs="0,2",
            block_hash=hash1,
            block_height=1,
            postings=((VAULT, "vault", 51_200), ("exchange", "counterparty", -51_200)),
        ),
        encode_entry_fields(
            seq=3,
            kind="deposit",
            date=day,
            memo="in",
            ref=None,
            reverses_seq=None,
            txid=t2.txid,
            outputs="0",
            block_hash=hash1,
            block_height=1,
            postings=((VAULT, "vault", 300_000), ("exchange", "counterparty", -300_000)),
        ),
    )
    cp = sign_checkpoint(key, 3, root_of(leaf_hash(e) for e in entries), 1_700_000_000)
    info = VaultInfo(VAULT, VAULT, str(desc), 2, ("a", "b", "c"))
    doc = build_document(
        chain, [info], LedgerAt(cp, entries, {VAULT: 351_200}), created_at="2026-01-01T00:00:00+00:00"
    )
    return sign_document(doc, key)


@pytest.fixture(scope="module")
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture(scope="module")
def doc(key: Ed25519PrivateKey) -> dict[str, Any]:
    return synthetic(key)


def test_a_synthetic_attestation_verifies(doc: dict[str, Any], key: Ed25519PrivateKey) -> None:
    result = verify_attestation(doc, [public_key_pem(key)])
    assert result.ok, result.lines()
    assert doc["format"] == FORMAT and doc["totals"] == {"chain": 351_200, "ledger": 351_200, "difference": 0}
    assert result.check("control").note == "no proof of control in this document"
    assert [c.name for c in result.checks][:2] == ["format", "signature"]


def test_unrelated_outputs_and_spent_ones_are_left_out() -> None:
    desc = descriptor(b"x")
    mine = desc.script_pubkey(1, False)
    fund = RawTx.parse(raw_tx(b"\x01" * 32, [(10, mine), (20, b"\x51"), (30, mine)]))
    spend = RawTx.parse(raw_tx(bytes.fromhex(fund.txid)[::-1], [(9, b"\x51")]))  # spends vout 0
    txs = [ConfirmedTx(fund, "aa" * 32, 5), ConfirmedTx(spend, "bb" * 32, 7)]
    paths = script_paths(desc, 3)
    at = {h: [(o.vout, o.amount) for o in outputs_at(txs, paths, h)] for h in (4, 5, 6, 7)}
    assert at == {4: [], 5: [(0, 10), (2, 30)], 6: [(0, 10), (2, 30)], 7: [(2, 30)]}
    assert outputs_at(txs, paths, 7)[0].branch == 0 and outputs_at(txs, paths, 7)[0].index == 1


def test_signed_bytes_leave_the_signature_out_and_the_hash_covers_everything(
    doc: dict[str, Any], key: Ed25519PrivateKey
) -> None:
    assert signing_message(doc) == signing_message({k: v for k, v in doc.items() if k != "signature"})
    assert signing_message(doc).startswith(b"reserve-ledger attestation v1\n{")
    other = sign_document(doc, Ed25519PrivateKey.generate())
    assert document_sha256(other) != document_sha256(doc)
    assert sign_document(doc, key) == doc  # Ed25519 is deterministic


@pytest.mark.parametrize(
    ("what", "change", "check"),
    [
        ("amount", lambda d: d["vaults"][0]["outputs"][0].__setitem__("amount", 1), "outputs"),
        ("script path", lambda d: d["vaults"][0]["outputs"][0].__setitem__("index", 4), "outputs"),
        ("height", lambda d: d["vaults"][0]["outputs"][0].__setitem__("height", 2), "outputs"),
        ("coinbase flag", lambda d: d["vaults"][0]["outputs"][0].__setitem__("coinbase", True), "outputs"),
        ("duplicate", lambda d: d["vaults"][0]["outputs"].append(d["vaults"][0]["outputs"][0]), "outputs"),
        (
            "transaction",
            lambda d: d["transactions"].__setitem__(next(iter(d["transactions"])), "00"),
            "transactions",
        ),
        ("proof", lambda d: d["proofs"].__setitem__(next(iter(d["proofs"])), "00" * 90), "proofs"),
        ("header", lambda d: d["headers"]["hex"].reverse(), "headers"),
        ("headers cut", lambda d: d["headers"].__setitem__("start", 0), "headers"),
        ("network", lambda d: d.__setitem__("network", "main"), "headers"),
        ("block hash", lambda d: d.__setitem__("block_hash", "00" * 32), "headers"),
        ("chain sum", lambda d: d["vaults"][0].__setitem__("chain_amount", 1), "sums"),
        ("total", lambda d: d["totals"].__setitem__("ledger", 0), "sums"),
        ("checkpoint root", lambda d: d["ledger"]["checkpoint"].__setitem__("root", "00" * 32), "checkpoint"),
        ("entry", lambda d: d["ledger"]["entries"].__setitem__(2, d["ledger"]["entries"][1]), "checkpoint"),
        ("balance", lambda d: d["ledger"]["balances"].__setitem__(VAULT, 1), "balances"),
        ("descriptor", lambda d: d["vaults"][0].__setitem__("descriptor", str(descriptor(b"y"))), "outputs"),
        ("vault left out", lambda d: d.__setitem__("vaults", []), "balances"),
        ("account swapped", lambda d: d["vaults"][0].__setitem__("account", "exchange"), "balances"),
        ("control", lambda d: d["vaults"][0].__setitem__("control", {"format": "x"}), "control"),
    ],
)
def test_each_change_fails_its_check(
    doc: dict[str, Any], key: Ed25519PrivateKey, what: str, change: Any, check: str
) -> None:
    changed = copy.deepcopy(doc)
    change(changed)
    assert "signature" in verify_attestation(changed, [public_key_pem(key)]).failed, what
    result = verify_attestation(sign_document(changed, key), [public_key_pem(key)])
    assert check in result.failed and "signature" not in result.failed, (what, result.lines())


@pytest.mark.parametrize(
    "bad", [None, [], "x", {"format": "other"}, {"format": FORMAT}, {"format": FORMAT, "signature": {}}]
)
def test_malformed_documents_fail_format_never_raise(bad: Any, key: Ed25519PrivateKey) -> None:
    result = verify_attestation(bad, [public_key_pem(key)])
    assert not result.ok and ("format" in result.failed or "signature" in result.failed)


def test_untrusted_key_fails_signature_and_checkpoint(doc: dict[str, Any]) -> None:
    result = verify_attestation(doc, [public_key_pem(Ed25519PrivateKey.generate())])
    assert {"signature", "checkpoint"} <= set(result.failed)
    assert not verify_attestation(doc, []).ok


def test_with_controls_refuses_unknown_vaults(doc: dict[str, Any]) -> None:
    from ledger.errors import InvalidInput

    with pytest.raises(InvalidInput, match="ghost"):
        with_controls(doc, {"ghost": {}})
    assert "signature" not in with_controls(doc, {})


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(min_size=32, max_size=32), max_size=40))
def test_rfc6962_root_is_the_journals(leaves: list[bytes]) -> None:
    assert rfc6962_root(leaves) == root_of(leaves)


@settings(max_examples=60, deadline=None)
@given(
    st.integers(1, 2**40),
    st.text(max_size=30),
    st.one_of(st.none(), st.text(max_size=10)),
    st.lists(
        st.tuples(
            st.text(min_size=1, max_size=10),
            st.sampled_from(["vault", "income"]),
            st.integers(-(2**62), 2**62),
        ),
        max_size=4,
    ),
)
def test_entries_decode_as_encoded(
    seq: int, memo: str, ref: str | None, postings: list[tuple[str, str, int]]
) -> None:
    data = encode_entry_fields(
        seq=seq,
        kind="deposit",
        date=dt.date(2026, 2, 3),
        memo=memo,
        ref=ref,
        reverses_seq=None,
        txid="ab" * 32,
        outputs="0,1",
        block_hash=None,
        block_height=7,
        postings=postings,
    )
    e = decode_entry(data)
    assert (e.seq, e.kind, e.memo, e.postings) == (seq, "deposit", memo, tuple(postings))
    with pytest.raises(ValueError):
        decode_entry(data + b"\x00")


def test_node_findings(doc: dict[str, Any]) -> None:
    outs = [(o["txid"], o["vout"]) for o in doc["vaults"][0]["outputs"]]
    hashes = {1: json_hash(doc, 0), 2: doc["block_hash"]}
    assert node_findings(doc, hashes, set(outs), {}) == []
    assert node_findings(doc, hashes, set(outs[1:]), {outs[0]: ("cd" * 32, 3)}) == []
    [spent] = node_findings(doc, hashes, set(outs[1:]), {outs[0]: ("cd" * 32, 2)})
    assert f"output {outs[0][0]}:{outs[0][1]}" in spent and "not unspent at height 2" in spent
    [stale] = node_findings(doc, {1: hashes[1], 2: "ee" * 32}, set(outs), {})
    assert "is not on the node's best chain" in stale
    [behind] = node_findings(doc, {1: hashes[1]}, set(outs), {})
    assert "the node is behind" in behind


def json_hash(doc: dict[str, Any], i: int) -> str:
    return sha256d(bytes.fromhex(doc["headers"]["hex"][i]))[::-1].hex()


ALLOWED = {"cryptography", "coincurve", "cffi", "_cffi_backend", "custody", "ledger"}
GUARD = """
import sys, importlib.abc
allowed = set(sys.argv[2].split(",")) | set(sys.stdlib_module_names)
class Guard(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] not in allowed:
            raise ImportError(f"the auditor's verifier imported {name}")
        return None
sys.meta_path.insert(0, Guard())
from ledger.attest.verify_doc import main
from ledger.attest import control  # the proofs of control's verifier, imported when a document has one
sys.exit(main([sys.argv[1], "--pubkey", sys.argv[3]]))
"""


def test_the_verifier_needs_only_the_pinned_packages(
    doc: dict[str, Any], key: Ed25519PrivateKey, tmp_path: Path
) -> None:
    path, pem = tmp_path / "att.json", tmp_path / "pub.pem"
    path.write_text(json.dumps(doc))
    pem.write_bytes(public_key_pem(key))
    root = Path(__file__).resolve().parents[2]
    r = subprocess.run(
        [sys.executable, "-c", GUARD, str(path), ",".join(sorted(ALLOWED)), str(pem)],
        capture_output=True,
        text=True,
        cwd=root,
        check=False,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout.rstrip().endswith("OK: the attestation verifies")
    path.write_text(json.dumps({**doc, "height": 3}))
    r = subprocess.run(
        [sys.executable, "-c", GUARD, str(path), ",".join(sorted(ALLOWED)), str(pem)],
        capture_output=True,
        text=True,
        cwd=root,
        check=False,
    )
    assert r.returncode == 1 and "FAIL  signature:" in r.stdout and "FAIL: " in r.stdout


def test_output_values_are_checked_on_construction() -> None:
    from custody.errors import InvalidInput

    with pytest.raises(InvalidInput):
        OutputAt("ab" * 32, 0, -1, b"", 0, 0, "cd" * 32, 1, False)
