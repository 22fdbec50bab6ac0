"""Signed tree heads (:mod:`ledger.journal.heads`), attack style, on SQLite and on PostgreSQL as the
runtime role (SELECT and INSERT only).

The insider has the database role's rights but not the ledger key. Rows it appends with correctly
computed leaf hashes (here through the service's own functions on an engine without the key,
:func:`~tests.fixtures.db.unsealed`) are covered by no head the key signed: ``ledger verify`` names
them, ``ledger checkpoint`` and every later write of the service refuse to sign over them. A forged
head (a copied signature, or a head of an older size replayed) does not verify.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session

from custody.rpc import RpcClient
from ledger.cli.main import main
from ledger.errors import TamperDetected
from ledger.journal.accounts import add_account
from ledger.journal.balances import verified_balance
from ledger.journal.book import append, iter_leaf_hashes
from ledger.journal.checkpoint import create_signing_key, public_key_pem
from ledger.journal.entry import EntryDraft, Posting
from ledger.journal.heads import TreeHead, balances_json, latest_head_row, parse_head, sign_head, store_head
from ledger.journal.keychain import trusted_public_keys
from ledger.journal.merkle import MerkleAccumulator
from ledger.journal.proofs import make_checkpoint, rotate_key
from ledger.journal.records import RecordKind, append_record, audit_body
from ledger.journal.verify import verify_ledger
from ledger.store.audit_models import AuditRow
from ledger.store.db import make_engine
from ledger.store.migrate import upgrade
from ledger.store.models import TreeHeadRow
from ledger.verify_proof import key_id
from tests.fixtures.db import snapshot, unsealed
from tests.fixtures.reserve import Reserve
from tests.integration.test_tamper import disable_append_only
from tests.integration.test_watch_only import wait_for_wallet

NOT_COVERED = "are not covered by a head signed by the ledger key (written outside the service)"


def _draft(i: int) -> EntryDraft:
    return EntryDraft(
        kind="adjustment", memo=f"books {i}", postings=(Posting("acme", i), Posting("owners", -i))
    )


@pytest.fixture
def books(runtime_engine: Engine) -> Engine:
    """Two accounts and three entries in two transactions, written by the service (sealed)."""
    with Session(runtime_engine) as s, s.begin():
        add_account(s, "acme", "counterparty")
        add_account(s, "owners", "equity")
        append(s, _draft(1))
        append(s, _draft(2))
    with Session(runtime_engine) as s, s.begin():
        append(s, _draft(3))
    return runtime_engine


def _verify(engine: Engine, key: Ed25519PrivateKey) -> tuple[str, ...]:
    with Session(engine) as s, s.begin():
        return verify_ledger(s, public_key_pem(key)).findings


def _refused_everywhere(books: Engine, key: Ed25519PrivateKey, match: str) -> None:
    """``ledger checkpoint`` and the service's next write refuse, and change nothing."""
    before = snapshot(books)
    with pytest.raises(TamperDetected, match=match), Session(books) as s, s.begin():
        make_checkpoint(s, key)
    with pytest.raises(TamperDetected, match=match), Session(books) as s, s.begin():
        append(s, _draft(9))
    assert snapshot(books) == before


def test_service_writes_are_sealed_one_head_per_transaction(
    books: Engine, signing_key: Ed25519PrivateKey
) -> None:
    with Session(books) as s:
        heads = [parse_head(r) for r in s.scalars(select(TreeHeadRow).order_by(TreeHeadRow.tree_size))]
        leaves = [h for _, h in iter_leaf_hashes(s)]
    assert [h.tree_size for h in heads] == [2, 3]
    assert heads[-1].balances == (("acme", "counterparty", 6), ("owners", "equity", -6))
    acc = MerkleAccumulator()
    for h in leaves:
        acc.append(h)
    assert heads[-1].root == acc.root() and heads[-1].frontier == acc.frontier
    assert _verify(books, signing_key) == ()
    with Session(books) as s, s.begin():
        make_checkpoint(s, signing_key)
    with Session(books) as s, s.begin():  # a transaction that appends nothing signs nothing
        add_account(s, "bank", "custodian")
    with Session(books) as s:
        assert latest_head_row(s) is not None and s.scalar(select(TreeHeadRow.tree_size).limit(1)) == 2
        assert len(s.scalars(select(TreeHeadRow)).all()) == 2


def test_an_audit_saying_ok_appended_by_the_database_role_is_caught(
    books: Engine, signing_key: Ed25519PrivateKey
) -> None:
    """The issue's scenario: an audit row and its record saying ``ok`` for a block that never was,
    with a correct leaf hash, inserted with the runtime role's rights."""
    insider = unsealed(books)
    with Session(insider) as s, s.begin():
        root = MerkleAccumulator()
        for _, h in iter_leaf_hashes(s):
            root.append(h)
        row = AuditRow(
            tree_size=3,
            root=root.root(),
            checkpoint_id=None,
            min_conf=1,
            height=999_999,
            best_block="ee" * 32,
            findings=0,
            ok=True,
            report='{"ok": true}',
        )
        s.add(row)
        s.flush()
        fields = {
            c: getattr(row, c) for c in ("tree_size", "checkpoint_id", "height", "best_block", "min_conf")
        }
        append_record(
            s,
            RecordKind.AUDIT,
            audit_body(audit_id=row.id, root=row.root, findings=0, ok=True, report=row.report, **fields),
        )
    assert _verify(books, signing_key) == (f"entries 4..4 {NOT_COVERED}",)
    _refused_everywhere(books, signing_key, "entries 4..4 are not covered")


def test_a_journal_entry_appended_by_the_database_role_is_caught(
    books: Engine, signing_key: Ed25519PrivateKey
) -> None:
    with Session(unsealed(books)) as s, s.begin():
        append(s, _draft(100))
        append(s, _draft(200))
    findings = _verify(books, signing_key)
    assert findings == (f"entries 4..5 {NOT_COVERED}",)
    _refused_everywhere(books, signing_key, "entries 4..5 are not covered")


def test_a_forged_head_does_not_verify(books: Engine, signing_key: Ed25519PrivateKey) -> None:
    """The insider appends an entry and a head for it: with the latest head's signature copied, or
    signed by a key of its own; an older head replayed at the new size does not verify either."""
    with Session(unsealed(books)) as s, s.begin():
        append(s, _draft(100))
    with Session(books) as s:
        latest = parse_head(latest_head_row(s, 3))  # type: ignore[arg-type]
        acc = latest.accumulator()
        for _, h in iter_leaf_hashes(s, after=3):
            acc.append(h)
    balances = (("acme", "counterparty", 106), ("owners", "equity", -106))
    forged = TreeHead(
        4, acc.root(), acc.frontier, balances, latest.timestamp, latest.key_id, latest.signature
    )
    with Session(unsealed(books)) as s, s.begin():
        s.add(
            TreeHeadRow(
                tree_size=forged.tree_size,
                root=forged.root,
                frontier=b"".join(forged.frontier),
                balances=balances_json(forged.balances),
                timestamp=forged.timestamp,
                key_id=forged.key_id,
                signature=forged.signature,
            )
        )
    findings = _verify(books, signing_key)
    assert findings[0] == "tree head of size 4 does not verify: its signature does not verify with key " + (
        f"{latest.key_id}: it was forged or changed, or was not signed by this ledger's key"
    )
    assert findings[1:] == (f"entries 4..4 {NOT_COVERED}",)
    _refused_everywhere(books, signing_key, "tree head of size 4 does not verify")


def test_a_head_signed_by_a_key_of_the_insiders_own_does_not_verify(
    books: Engine, signing_key: Ed25519PrivateKey
) -> None:
    own_key = Ed25519PrivateKey.generate()
    with Session(unsealed(books)) as s, s.begin():
        append(s, _draft(100))
    with Session(books) as s:
        latest = parse_head(latest_head_row(s))  # type: ignore[arg-type]
        acc = MerkleAccumulator()
        for _, h in iter_leaf_hashes(s):
            acc.append(h)
    with Session(unsealed(books)) as s, s.begin():
        store_head(s, sign_head(own_key, acc, {"acme": ("counterparty", 106), "owners": ("equity", -106)}, 1))
    assert _verify(books, signing_key) == (
        f"tree head of size 4 does not verify: it names key {key_id(public_key_pem(own_key))}, which is "
        f"not one of the trusted keys ({latest.key_id}): it was forged or changed, or was not signed "
        "by this ledger's key",
        f"entries 4..4 {NOT_COVERED}",
    )
    _refused_everywhere(books, signing_key, "tree head of size 4 does not verify|names key")


def test_a_head_signed_by_a_retired_key_does_not_verify(
    books: Engine, signing_key: Ed25519PrivateKey
) -> None:
    """After `ledger rotate-key` the new key signs every head; the old key, handed over, signs
    nothing the service or a reader accepts: not the service's next write, not a head an insider
    holding it stores over an entry of its own."""
    new = Ed25519PrivateKey.generate()
    with Session(books) as s, s.begin():
        record, _ = rotate_key(s, signing_key, new)
    with pytest.raises(TamperDetected, match="was handed over to key"), Session(books) as s, s.begin():
        append(s, _draft(9))  # the engine still seals with the old key
    with Session(unsealed(books)) as s, s.begin():
        append(s, _draft(100))
    with Session(books) as s:
        acc = MerkleAccumulator()
        for _, h in iter_leaf_hashes(s):
            acc.append(h)
    totals = {"acme": ("counterparty", 106), "owners": ("equity", -106)}
    with Session(unsealed(books)) as s, s.begin():
        store_head(s, sign_head(signing_key, acc, totals, 1))
    retired = (
        f"tree head of size 5 does not verify: it was signed by key {key_id(public_key_pem(signing_key))}, "
        f"which entry {record.seq} handed over to another key: a retired key signed it"
    )
    for pem in (public_key_pem(new), public_key_pem(signing_key)):  # the new key, or an old auditor's
        with Session(books) as s:
            findings = verify_ledger(s, trusted_public_keys(s, pem)).findings
            v = verified_balance(s, pem)
        assert findings == (
            f"{retired}: it was forged or changed, or was not signed by this ledger's key",
            f"entries 5..5 {NOT_COVERED}",
        )
        assert v.balances.as_of == 4 and v.head is not None and v.head.tree_size == 4
        assert dict((a.name, a.amount) for a in v.balances.accounts)["acme"] == 6
        assert v.findings[0].startswith(retired)


def test_a_0005_database_upgraded_by_init_verifies(
    db_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Books written before tree heads: `reserve init` migrates, then signs one head over them
    (what came before is covered by a head signed at upgrade time); verify and balance pass, and
    a second `init` signs nothing."""
    key_path = tmp_path / "signing.key"
    key = create_signing_key(key_path)
    old = make_engine(db_url)
    upgrade(old, "0005_spending")
    with Session(old) as s, s.begin():  # as the release before tree heads wrote them
        add_account(s, "acme", "counterparty")
        add_account(s, "owners", "equity")
        append(s, _draft(5))
        append(s, _draft(7))
    old.dispose()
    monkeypatch.setenv("RESERVE_DB", db_url)
    monkeypatch.delenv("RESERVE_DB_OWNER", raising=False)

    def run(*args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(["--signing-key", str(key_path), *args])
        out = capsys.readouterr()
        return code, out.out, out.err

    code, out, err = run("ledger", "verify")
    assert code == 2 and "run `reserve init`" in err  # older than this release: init first
    code, out, err = run("init")
    assert code == 0 and "tree head:   entries 1..2, written before tree heads, signed now" in out, err
    code, out, err = run("ledger", "verify")
    assert code == 0 and out.startswith("OK: 2 entries"), err
    code, out, err = run("balance", "--json")
    assert code == 0 and out and '"balance_sat": 12' in out and '"tree_size": 2' in out, err
    code, out, _ = run("init")
    assert code == 0 and "tree head" not in out
    code, _, err = run(
        "record", "--kind", "adjustment", "--memo", "m", "--posting", "acme=1sat", "--posting", "owners=-1sat"
    )
    assert code == 0, err
    with Session(make_engine(db_url)) as s:
        assert [h.tree_size for h in s.scalars(select(TreeHeadRow).order_by(TreeHeadRow.tree_size))] == [2, 3]
        assert verify_ledger(s, public_key_pem(key)).ok


# --- through the CLI, with a real vault on the regtest node -----------------------------------------


def _funded_vault(reserve: Reserve, rpc: RpcClient) -> str:
    hot = reserve.add_vault("hot")
    txid = reserve.node.fund(hot.address(), 50_000_000)
    wait_for_wallet(rpc, rpc.wallet(f"reserve-vault-{hot.name}"), [txid])
    reserve.ok("sync")
    assert reserve.ok("balance", "--json").json()["reserve_sat"] == 50_000_000
    return hot.name


def test_an_insider_deposit_inflating_a_vault_is_named_and_never_counted(
    reserve: Reserve, rpc: RpcClient
) -> None:
    """As the runtime role, a deposit doubling the vault, leaf hash correct: `balance` prints the
    signed figure and names the entry (exit 1), `audit` reports it (exit 1, not stored), `ledger
    checkpoint` refuses, statements and the site say so (exit 1, no site written)."""
    vault = _funded_vault(reserve, rpc)
    insider = unsealed(reserve.engine(runtime=True))
    with Session(insider) as s, s.begin():
        forged = append(
            s,
            EntryDraft(
                kind="deposit",
                memo="deposit",
                postings=(Posting(vault, 50_000_000), Posting("unattributed", -50_000_000)),
                txid="ab" * 32,
                outputs="0",
                block_hash="cd" * 32,
                block_height=1,
            ),
            chain_verified=True,
        )
    insider.dispose()
    named = f"entries {forged.seq}..{forged.seq} are not covered by a head signed by the ledger key"
    r = reserve.run("balance", "--json")
    assert r.code == 1 and r.json()["reserve_sat"] == 50_000_000 and r.json()["as_of"] == forged.seq - 1
    assert any(f.startswith(named) for f in r.json()["findings"])
    r = reserve.run("balance")
    assert r.code == 1 and "reserve (all vault accounts): 0.50000000 BTC" in r.out and named in r.err
    r = reserve.run("audit", "--json")
    assert r.code == 1 and r.json()["audit_id"] is None
    assert any(named in f["message"] for f in r.json()["findings"]), r.out
    r = reserve.run("ledger", "checkpoint")
    assert r.code == 2 and named in r.err
    r = reserve.run("ledger", "verify")
    assert r.code == 1 and named in r.err
    r = reserve.run("report", "statement", "--from", "0", "--to", "100000")
    assert r.code == 1 and named in r.err
    site = reserve.key_path.parent / "site"
    r = reserve.run("report", "site", str(site))
    assert r.code == 1 and named in r.err and not site.exists()


def test_a_posting_rewritten_by_the_owner_never_changes_the_figure(reserve: Reserve, rpc: RpcClient) -> None:
    """The tamper that made `balance` print 101.83 instead of 51.83: a posting's amount doubled
    with the database owner's rights. The figure comes from the signed head, so it stays what
    the key signed; `ledger verify` names the entry."""
    vault = _funded_vault(reserve, rpc)
    engine = reserve.engine()
    disable_append_only(engine)
    with engine.begin() as c:
        seq = c.execute(
            text(
                "SELECT p.entry_seq FROM postings p JOIN accounts a ON a.id = p.account_id WHERE a.name = :v"
            ),
            {"v": vault},
        ).scalar_one()
        c.execute(text("UPDATE postings SET amount = amount * 2 WHERE entry_seq = :s"), {"s": seq})
    engine.dispose()
    r = reserve.run("balance", "--json")
    assert r.code == 0 and r.json()["reserve_sat"] == 50_000_000, r.out + r.err
    r = reserve.run("ledger", "verify")
    assert r.code == 1 and f"entry {seq} does not match its leaf hash" in r.err
    r = reserve.run("report", "statement", "--from", "0", "--to", "100000")  # reads every entry
    assert r.code == 1 and f"entry {seq} does not match its leaf hash" in r.err


def test_appends_rolled_back_to_a_savepoint_seal_nothing(
    books: Engine, signing_key: Ed25519PrivateKey
) -> None:
    """Sync books each transaction in a savepoint: one whose entries all rolled back has nothing
    to seal, and one that kept some seals exactly those."""
    with Session(books) as s, s.begin(), pytest.raises(RuntimeError), s.begin_nested():
        append(s, _draft(50))
        raise RuntimeError("refused")
    with Session(books) as s, s.begin():
        with pytest.raises(RuntimeError), s.begin_nested():
            append(s, _draft(51))
            raise RuntimeError("refused")
        append(s, _draft(52))
    with Session(books) as s:
        sizes = [h.tree_size for h in s.scalars(select(TreeHeadRow).order_by(TreeHeadRow.tree_size))]
    assert sizes == [2, 3, 4] and _verify(books, signing_key) == ()
