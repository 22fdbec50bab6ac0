"""Attestations attacked as a dishonest operator or a moving chain would, against a real regtest
node on SQLite and PostgreSQL: each document is re-signed with the ledger's own key (the operator
holds it), so only the named checks and the node stand between it and the auditor."""

from __future__ import annotations

import copy
import csv
import hashlib
import io
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import text

from ledger.attest.document import sign_document
from ledger.attest.verify_doc import canonical_bytes, document_sha256, verify_attestation
from regtest.node import RegtestNode
from tests.fixtures.governance import retire
from tests.fixtures.reserve import Reserve
from tests.integration.test_attest import attest_to, funded, keys
from tests.integration.test_tx_shapes import spend


@pytest.fixture
def node(chain_node: RegtestNode) -> RegtestNode:
    return chain_node


def _outpoints(doc: dict[str, Any]) -> set[tuple[str, int]]:
    return {(o["txid"], o["vout"]) for v in doc["vaults"] for o in v["outputs"]}


def leave_out(doc: dict[str, Any], gone: Iterable[tuple[str, int]]) -> dict[str, Any]:
    """``doc`` without the outputs ``gone``, their transactions and the proofs of blocks left with
    no output, every stated sum made to agree (what a careful liar does)."""
    drop = set(gone)
    d = copy.deepcopy(doc)
    for v in d["vaults"]:
        v["outputs"] = [o for o in v["outputs"] if (o["txid"], o["vout"]) not in drop]
        v["chain_amount"] = sum(o["amount"] for o in v["outputs"])
        v["difference"] = v["chain_amount"] - v["ledger_amount"]
    kept = [o for v in d["vaults"] for o in v["outputs"]]
    d["transactions"] = {t: x for t, x in d["transactions"].items() if t in {o["txid"] for o in kept}}
    d["proofs"] = {b: x for b, x in d["proofs"].items() if b in {o["block_hash"] for o in kept}}
    d["totals"]["chain"] = sum(v["chain_amount"] for v in d["vaults"])
    d["totals"]["difference"] = d["totals"]["chain"] - d["totals"]["ledger"]
    return d


def verify_file(reserve: Reserve, path: Path, doc: dict[str, Any], *args: str) -> tuple[int, str]:
    path.write_text(json.dumps(doc))
    r = reserve.run("attest", "verify", str(path), *args)
    return r.code, r.out


def test_outputs_left_out_are_a_shortfall_offline_and_named_by_the_node(
    reserve: Reserve, node: RegtestNode, tmp_path: Path
) -> None:
    """An operator hides an output still unspent and one spent after H (with their transactions
    and proofs) and re-signs: every integrity check passes, but each vault's line shows its chain
    below its books and the verdict fails ``reserves``, saying offline cannot see what was left
    out; the node finds both outputs, in its UTXO set and in the blocks after H. The honest
    document, made by this release, still verifies."""
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
    assert big["txid"] not in hidden["transactions"] and big["block_hash"] not in hidden["proofs"]
    offline = verify_attestation(hidden, pems)
    assert offline.failed == ("reserves",) and not offline.integrity_failed, offline.lines()
    assert hidden["totals"]["difference"] == -(120_000_000 + 7_000_000)

    code, out = verify_file(reserve, tmp_path / "hidden.json", hidden)
    assert code == 1, out
    assert (
        f"vault {a.name}: chain 0.30004500 BTC (2 outputs proven), books 1.50004500 BTC, "
        "difference -1.20000000 BTC (1.20000000 BTC SHORT)"
    ) in out, out
    assert f"vault {b.name}: chain 0.00000000 BTC (0 outputs proven), books 0.07000000 BTC" in out
    assert "outputs left out of the document cannot be seen" in out and "--node" in out
    assert out.rstrip().splitlines()[-1] == (
        f"FAIL: reserves (chain below the books: vault {a.name} 1.20000000 BTC short, "
        f"vault {b.name} 0.07000000 BTC short)"
    )
    r = reserve.run("attest", "verify", str(tmp_path / "hidden.json"), "--json")
    data = r.json()
    assert r.code == 1 and data["failed"] == ["reserves"] and not data["outputs_left_out_searched"]
    assert {v["name"]: v["difference"] for v in data["vaults"]} == {a.name: -120_000_000, b.name: -7_000_000}

    code, out = verify_file(reserve, tmp_path / "hidden.json", hidden, "--node")
    assert code == 1, out
    for txid, vout in (spent_later, still_unspent):  # the node names what is missing
        assert f"FAIL  node: output {txid}:{vout} " in out and "is not attested" in out, out
    assert "cannot be seen" not in out and out.rstrip().splitlines()[-1].startswith("FAIL: reserves, node (")
    # the honest document verifies, offline and against the node
    code, out = verify_file(reserve, tmp_path / "honest.json", doc, "--node")
    assert code == 0, out
    assert out.rstrip().splitlines()[-1] == "OK: the attestation verifies"
    assert "cannot be seen" not in out and f"vault {a.name}: chain 1.50004500 BTC" in out


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
    engine = reserve.engine(runtime=True)
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
    engine = reserve.engine()
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


def test_a_mempool_spend_a_retired_vault_and_the_genesis_height(
    reserve: Reserve, node: RegtestNode, tmp_path: Path
) -> None:
    """An output spent by a transaction still in the mempool was unspent at H: attested, and the
    node agrees before and after the spend confirms; a retired vault still holding coins is
    attested with them; --height 0 attests the genesis block and a negative height is bad input."""
    a, b = funded(reserve, node)
    retire(reserve, b, "keys rotated")
    height = node.rpc().get_block_count()
    spend(node, a, {str(node.miner().call("getnewaddress")): 125_000_000})  # not mined
    doc = attest_to(reserve, tmp_path / "att.json")
    assert doc["height"] == height
    vaults = {v["name"]: v for v in doc["vaults"]}
    assert sorted(o["amount"] for o in vaults[a.name]["outputs"]) == [4_500, 30_000_000, 120_000_000]
    assert [o["amount"] for o in vaults[b.name]["outputs"]] == [7_000_000]  # retired, still holding
    assert verify_file(reserve, tmp_path / "mempool.json", doc, "--node")[0] == 0
    node.mine(1)
    code, out = verify_file(reserve, tmp_path / "mined.json", doc, "--node")
    assert code == 0, out
    genesis = attest_to(reserve, tmp_path / "genesis.json", "--height", "0")
    assert genesis["height"] == 0 and genesis["block_hash"] == node.rpc().get_block_hash(0)
    assert all(v["outputs"] == [] for v in genesis["vaults"])
    assert genesis["totals"]["chain"] == 0 and genesis["totals"]["ledger"] == 157_004_500
    # a well-formed document the node agrees with, but the books of today against the chain of
    # block 0: every booked coin is missing there, which the verdict must not call OK
    code, out = verify_file(reserve, tmp_path / "g.json", genesis, "--node")
    assert code == 1 and "ok    node: 0 outputs unspent at 0 and none left out" in out, out
    assert out.rstrip().splitlines()[-1].startswith("FAIL: reserves (chain below the books: "), out
    r = reserve.run("attest", "--height", "-1")
    assert r.code == 2 and "-1" in r.err, (r.out, r.err)


def test_proofs_of_control_moved_between_vaults_or_dropped(
    reserve: Reserve, node: RegtestNode, tmp_path: Path
) -> None:
    """Each vault's proofs commit to its name and scripts: swapped between vaults they fail. A
    document may carry no proof for a vault (attest without prepare), but the verdict must then
    say which funded vaults are not proven rather than read as if all were."""
    from tests.integration.test_attest_control import finish, prepare, sign_all

    a, b = funded(reserve, node)
    files = prepare(reserve, tmp_path / "draft")
    signed = sign_all(node, reserve, files, ("ministry", "regulator"), tmp_path)
    assert finish(reserve, tmp_path / "draft", signed, "--out", str(tmp_path / "att.json")).code == 0
    doc = json.loads((tmp_path / "att.json").read_text())
    key, pems = keys(reserve)
    swapped = copy.deepcopy(doc)
    first, second = swapped["vaults"]
    first["control"], second["control"] = second["control"], first["control"]
    result = verify_attestation(sign_document(swapped, key), pems)
    assert result.failed == ("control",), result.lines()
    assert {a.name, b.name} <= {
        f.split(":")[0].removeprefix("vault ") for f in result.check("control").findings
    }
    dropped = copy.deepcopy(doc)
    [warm] = [v for v in dropped["vaults"] if v["name"] == b.name]
    warm["control"] = None
    result = verify_attestation(sign_document(dropped, key), pems)
    assert result.ok, result.lines()
    note = result.check("control").note
    assert f"verified for {a.name}" in note and f"no proof of control for {b.name}" in note, note


def test_the_site_never_writes_over_a_directory_it_did_not_write(reserve: Reserve, tmp_path: Path) -> None:
    """OUT may be new, empty or an earlier site; a directory holding other things (someone's web
    root with its own index.html, a home directory) is refused, nothing in it touched."""
    theirs = tmp_path / "www"
    theirs.mkdir()
    (theirs / "index.html").write_text("<h1>their page</h1>")
    r = reserve.run("report", "site", str(theirs))
    assert r.code == 2 and "not a site written by reserve report site" in r.err, (r.out, r.err)
    assert [p.name for p in theirs.iterdir()] == ["index.html"]
    assert (theirs / "index.html").read_text() == "<h1>their page</h1>"
    other = tmp_path / "home"
    other.mkdir()
    (other / "notes.txt").write_text("keep")
    assert reserve.run("report", "site", str(other)).code == 2
    assert [p.name for p in other.iterdir()] == ["notes.txt"]
    empty = tmp_path / "empty"
    empty.mkdir()
    reserve.ok("report", "site", str(empty))
    reserve.ok("report", "site", str(empty))  # an earlier site is written over
    assert sorted(p.name for p in empty.iterdir()) == ["index.html"]


def test_finish_refuses_a_draft_whose_block_was_reorganised_away(
    reserve: Reserve, node: RegtestNode, tmp_path: Path
) -> None:
    """Holders may take days to sign: if block H left the best chain meanwhile, finish must not
    sign and keep an attestation of a block that is no longer Bitcoin's (nothing is kept)."""
    from tests.integration.test_attest_control import finish, prepare, sign_all

    funded(reserve, node)
    files = prepare(reserve, tmp_path / "draft")
    signed = sign_all(node, reserve, files, ("ministry", "regulator"), tmp_path)
    draft = json.loads((tmp_path / "draft" / "attestation-draft.json").read_text())
    node.rpc().call("invalidateblock", draft["block_hash"])
    try:
        node.mine(2)
        r = finish(reserve, tmp_path / "draft", signed, "--json")
    finally:
        node.rpc().call("reconsiderblock", draft["block_hash"])
    assert r.code == 2 and json.loads(r.out)["error"]["code"] == "chain-mismatch", (r.out, r.err)
    assert f"block {draft['block_hash']}" in r.out and "best chain" in r.out
    assert reserve.ok("attest", "list", "--json").json()["attestations"] == []


def test_the_jsonl_export_holds_every_entry_kind_to_the_signed_root(
    reserve: Reserve, node: RegtestNode, tmp_path: Path
) -> None:
    """Entries and log records of every kind issue 11 and its neighbours write (mining, a manual
    entry with a formula-like memo and its reversal, a policy change, an attestation, a retired
    vault): each line's canonical bytes decode to its fields and the leaves fold into the root
    the checkpoint signs. The CSV's memo is the JSONL's behind one apostrophe."""
    from tests.integration.test_export_cli import decode_entry, rfc6962_root
    from tests.integration.test_statement_cli import report_groups  # noqa: F401

    a, b = funded(reserve, node)
    node.mine(1, a.address())
    reserve.ok("sync")
    reserve.ok("account", "add", "exchange", "--type", "counterparty")
    reserve.ok("account", "add", "owner", "--type", "equity")
    manual = reserve.ok(
        "record", "--kind", "adjustment", "--memo", '=HYPERLINK("http://x")', "--posting",
        "exchange=0.5", "--posting", "owner=-0.5", "--json",
    ).json()  # fmt: skip
    reserve.ok("reverse", str(manual["seq"]), "--memo", "+typo")
    reserve.ok("policy", "set", a.name, "--max-fee", "0.001")
    reserve.ok("attest")
    retire(reserve, b, "rotated")
    checkpoint = json.loads(reserve.ok("ledger", "checkpoint").out)
    lines = [json.loads(x) for x in reserve.ok("export", "entries", "--jsonl").out.splitlines()]
    leaves = []
    for x in lines:
        data = bytes.fromhex(x["canonical_hex"])
        decoded = decode_entry(data)
        assert {k: v for k, v in decoded.items() if k != "postings"} == {
            k: x[k] for k in decoded if k != "postings"
        }, x["seq"]
        leaves.append(hashlib.sha256(b"\x00" + data).digest())
    assert rfc6962_root(leaves[: checkpoint["tree_size"]]).hex() == checkpoint["root"]
    kinds = {x["kind"] for x in lines}
    assert {"mining", "adjustment", "reversal", "policy-changed", "attestation", "vault-retired"} <= kinds
    rows = list(csv.DictReader(io.StringIO(reserve.ok("export", "entries", "--csv").out)))
    memos = {int(r["seq"]): r["memo"] for r in rows}
    assert memos[manual["seq"]] == "'" + '=HYPERLINK("http://x")'
    [rev] = [x for x in lines if x["kind"] == "reversal"]
    assert rev["memo"] == "+typo" and memos[rev["seq"]] == "'+typo"


def test_one_holders_two_keys_do_not_make_a_proof_of_control_end_to_end(
    reserve: Reserve, node: RegtestNode, tmp_path: Path
) -> None:
    """`vault add` accepts a 3-of-5 vault where the ministry holds two keys (alone it cannot reach
    3). The ministry signing with both keys and the central bank with one is three keys but two
    holders: finish refuses it (policy-violation, nothing kept); with the regulator too it passes."""
    from custody.descriptor import MultisigDescriptor
    from custody.keygen import test_key_from_seed
    from custody.network import Network
    from regtest.signers import DemoSigner
    from tests.integration.test_attest_control import finish, prepare

    held = [("ministry", 1), ("ministry", 2), ("central-bank", 3), ("regulator", 4), ("auditor", 5)]
    seeds = [hashlib.sha256(f"{tmp_path} {n}".encode()).digest() for _, n in held]
    keys_ = [test_key_from_seed(s, Network.REGTEST) for s in seeds]
    name = f"shared-{hashlib.sha256(str(tmp_path).encode()).hexdigest()[:6]}"
    args = ["vault", "add", name, "--threshold", "3"]
    for (holder, _), k in zip(held, keys_, strict=True):
        args += ["--key", f"{holder}={k}"]
    reserve.ok(*args)
    reserve.ok("vault", "watch", name)
    descriptor = MultisigDescriptor.from_keys(3, tuple(keys_))
    node.fund(descriptor.address(0, False, Network.REGTEST), 50_000_000)
    reserve.ok("sync")
    files = prepare(reserve, tmp_path / "draft")
    signers = [DemoSigner(holder, seed) for (holder, _), seed in zip(held, seeds, strict=True)]
    for s in signers:
        s.import_vault(node.rpc(), 3, keys_)

    def signed_by(which: list[int]) -> list[str]:
        out = []
        for f in files:
            for i in which:
                back = tmp_path / f"{Path(f['psbt']).stem}-{i}.psbt"
                back.write_text(signers[i].sign(node.rpc(), Path(f["psbt"]).read_text().strip()))
                out.append(str(back))
        return out

    r = finish(reserve, tmp_path / "draft", signed_by([0, 1, 2]), "--json")
    assert r.code == 2 and json.loads(r.out)["error"]["code"] == "policy-violation", (r.out, r.err)
    assert "2 distinct holders" in r.out and "one holder's keys count once" in r.out, r.out
    assert reserve.ok("attest", "list", "--json").json()["attestations"] == []
    r = finish(reserve, tmp_path / "draft", signed_by([0, 1, 2, 3]), "--out", str(tmp_path / "att.json"))
    assert r.code == 0, (r.out, r.err)
    doc = json.loads((tmp_path / "att.json").read_text())
    [vault] = doc["vaults"]
    assert vault["holders"] == [h for h, _ in held]
    assert vault["control"]["proofs"][0]["signers"] == ["ministry", "central-bank", "regulator"]
    assert reserve.run("attest", "verify", str(tmp_path / "att.json"), "--node").code == 0


def test_statements_of_empty_and_far_periods_agree_in_every_format(
    reserve: Reserve, node: RegtestNode, tmp_path: Path
) -> None:
    """A period before anything happened, one beyond the tip and one mixing a date and a height:
    opening = closing, the three formats give the same figures, nothing invented."""
    from tests.integration.test_statement_cli import report_groups  # noqa: F401

    funded(reserve, node)
    total = 157_004_500
    for start, end, opening, closing in (
        ("2000-01-01", "2000-12-31", 0, 0),  # before the books
        ("999999", "9999999", total, total),  # far beyond the tip
        ("2000-01-01", "999999", 0, total),  # a date, then a height
    ):
        js = reserve.ok("report", "statement", "--from", start, "--to", end, "--json").json()
        assert (js["total"]["opening_sat"], js["total"]["closing_sat"]) == (opening, closing), js
        rows = list(csv.reader(io.StringIO(reserve.ok("report", "statement", "--from", start, "--to", end,
                                                       "--csv").out)))  # fmt: skip
        figures = {(r[0], r[1]): int(r[3]) for r in rows[1:] if r[1] in ("opening", "closing")}
        assert (figures[("total", "opening")], figures[("total", "closing")]) == (opening, closing)
        assert reserve.run("report", "statement", "--from", start, "--to", end).code == 0


def test_an_attestation_the_ledger_key_did_not_sign_is_never_published(
    reserve: Reserve, node: RegtestNode, tmp_path: Path
) -> None:
    """Someone with the database's runtime rights but not the ledger's key appends an attestation
    the application's own way (its log record, then its row: every row agrees with its record)
    signed with a key of their own, claiming ten times the reserve. The site must not publish it."""
    from sqlalchemy.orm import Session

    from ledger.attest.store import store_attestation

    funded(reserve, node)
    doc = attest_to(reserve, tmp_path / "att.json")
    forged = copy.deepcopy(doc)
    forged["totals"]["chain"] *= 10
    engine = reserve.engine(runtime=True)
    try:
        with Session(engine) as s, s.begin():
            store_attestation(s, sign_document(forged, Ed25519PrivateKey.generate()))
    finally:
        engine.dispose()
    r = reserve.run("attest", "list")  # rows and records agree, but the signature is not the ledger's
    assert r.code == 1 and "attestation #2: its document is not signed by a trusted ledger key" in r.out, (
        r.out
    )
    r = reserve.run("report", "site", str(tmp_path / "site"), "--json")
    assert r.code == 2 and r.json()["error"]["code"] == "tamper-detected", r.out
    assert "does not verify" in r.json()["error"]["message"]
    assert not (tmp_path / "site").exists()


def test_a_document_rewritten_in_the_database_is_never_published(
    reserve: Reserve, node: RegtestNode, tmp_path: Path
) -> None:
    """A real attestation whose stored document an owner rewrites (triggers dropped) with ten
    times the reserve: the site names both hashes and writes nothing."""
    from ledger.store.db import drop_append_only_ddl

    funded(reserve, node)
    doc = attest_to(reserve, tmp_path / "att.json")
    forged = copy.deepcopy(doc)
    forged["totals"]["chain"] *= 10
    engine = reserve.engine()
    try:
        with engine.begin() as c:
            if engine.dialect.name == "postgresql":
                c.exec_driver_sql("ALTER TABLE attestations DISABLE TRIGGER USER")
            else:
                for statement in drop_append_only_ddl("sqlite", "attestations"):
                    c.exec_driver_sql(statement)
            c.execute(
                text("UPDATE attestations SET document = :d"), {"d": canonical_bytes(forged).decode("ascii")}
            )
    finally:
        engine.dispose()
    r = reserve.run("report", "site", str(tmp_path / "forged"), "--json")
    assert r.code == 2 and r.json()["error"]["code"] == "tamper-detected", r.out
    assert f"not the stored {document_sha256(doc)}" in r.json()["error"]["message"]
    assert not (tmp_path / "forged").exists()
