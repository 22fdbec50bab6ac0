"""Records an insider appends with only INSERT rights, checked when read (issue 15, point 3).

Each test plays a database role that can INSERT but does not hold the ledger's key (the runtime
role on PostgreSQL; anyone who can open the file on SQLite): it appends rows and log records at
the end of the log with leaf hashes computed by the project's own canonical encoder, exactly as
the service would, so hashes and Merkle roots verify. What gives them away is their values: an
issued index outside 0..9,999, a key serving two vaults, ``spend_inputs`` rows no proposal
record lists, an entry number past a gap. Each must be a finding of ``reserve ledger verify``
naming its cause, and no reader may hang on it or diagnose it as something else.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest
from sqlalchemy import Engine, func, insert, select, text
from sqlalchemy.orm import Session

from custody.descriptor import MultisigDescriptor
from custody.network import Network
from custody.psbt import Psbt
from custody.wallet import vault_wallet_name
from ledger.journal.book import iter_leaf_hashes
from ledger.journal.canonical import content_hash, encode_entry_fields
from ledger.journal.entry import EntryDraft, Posting, RecordKind
from ledger.journal.merkle import leaf_hash, root_of
from ledger.journal.records import KeyFields, audit_body, canonical_json, vault_added_body
from ledger.store.audit_models import AuditRow
from ledger.store.db import make_engine
from ledger.store.models import AccountRow, EntryRow, PostingRow
from ledger.store.spend_models import SpendInputRow
from ledger.store.vault_models import VaultKeyRow, VaultRow
from regtest.node import RegtestNode
from tests.fixtures.reserve import Reserve
from tests.integration.test_spend_attacks import execute, protection_off
from tests.integration.test_spend_lifecycle import funded_vault
from tests.integration.test_spend_refusals import proposal

if TYPE_CHECKING:
    from tests.fixtures.reserve import TestVault


@pytest.fixture
def insider(reserve: Reserve) -> Iterator[Engine]:
    """The service's own database role: SELECT and INSERT only on PostgreSQL."""
    engine = make_engine(reserve.runtime_url)
    yield engine
    engine.dispose()


@pytest.fixture
def owner(reserve: Reserve) -> Iterator[Engine]:
    engine = make_engine(reserve.db_url)
    yield engine
    engine.dispose()


def append_entry(
    engine: Engine,
    kind: str,
    memo: str,
    postings: Sequence[tuple[str, int]] = (),
    *,
    seq: int | None = None,
) -> int:
    """Append an entry (``postings``: account name, amount) with the leaf hash the service would
    compute; at ``seq``, or right after the last entry. Returns its number."""
    with engine.begin() as c:
        if seq is None:
            seq = int(c.execute(select(func.max(EntryRow.seq))).scalar_one() or 0) + 1
        accounts = {
            str(n): (int(i), str(t))
            for i, n, t in c.execute(select(AccountRow.id, AccountRow.name, AccountRow.type))
        }
        day = dt.datetime.now(dt.UTC).date()
        fields = encode_entry_fields(
            seq=seq,
            kind=kind,
            date=day,
            memo=memo,
            ref=None,
            reverses_seq=None,
            txid=None,
            outputs=None,
            block_hash=None,
            block_height=None,
            postings=[(a, accounts[a][1], amount) for a, amount in postings],
        )
        c.execute(
            insert(EntryRow).values(
                seq=seq,
                kind=kind,
                date=day,
                memo=memo,
                content_hash=content_hash(
                    EntryDraft(kind=kind, memo=memo, postings=tuple(Posting(a, n) for a, n in postings))
                ),
                leaf_hash=leaf_hash(fields),
            )
        )
        for idx, (account, amount) in enumerate(postings):
            c.execute(
                insert(PostingRow).values(
                    entry_seq=seq, idx=idx, account_id=accounts[account][0], amount=amount
                )
            )
    return seq


def append_record(engine: Engine, kind: RecordKind, body: Mapping[str, Any]) -> int:
    return append_entry(engine, kind.value, canonical_json(body))


def verify_findings(reserve: Reserve) -> list[str]:
    r = reserve.run("ledger", "verify", "--json")
    assert r.code == 1, (r.code, r.out, r.err)
    report = r.json()
    assert report["ok"] is False
    return list(report["findings"])


def one(findings: Sequence[str], *parts: str) -> str:
    matching = [f for f in findings if all(p in f for p in parts)]
    assert len(matching) == 1, "\n".join(findings)
    return matching[0]


def watched_range(node: RegtestNode, vault: TestVault) -> int:
    """The end of the range the vault's watch-only wallet imported (both branches)."""
    listed = node.rpc().wallet(vault_wallet_name(vault.name)).call("listdescriptors")["descriptors"]
    return max(int(d["range"][1]) for d in listed if "range" in d)


# --- 1. an issued index out of bounds ---------------------------------------------------------------


def test_an_issued_index_out_of_bounds_is_a_finding_and_never_scanned(
    reserve: Reserve, node: RegtestNode, insider: Engine
) -> None:
    v = reserve.add_vault("idx")
    reserve.ok("vault", "address", v.name, "--index", "7")
    r = reserve.run("vault", "address", v.name, "--index", "10000")
    assert r.code == 2 and "go past 9,999" in r.err, (r.code, r.err)
    node.fund(v.address(3), 10_000_000)
    reserve.ok("sync")

    far = append_record(
        insider, RecordKind.ADDRESSES_ISSUED, {"vault": v.name, "change": False, "index": 10**12}
    )
    negative = append_record(
        insider, RecordKind.ADDRESSES_ISSUED, {"vault": v.name, "change": True, "index": -5}
    )

    findings = verify_findings(reserve)
    assert "1,000,000,000,000, outside 0..9,999" in one(findings, f"addresses-issued record #{far} ")
    assert "index -5, outside 0..9,999" in one(findings, f"addresses-issued record #{negative} ")
    assert "appended outside the service" in one(findings, f"#{far} ")

    # readers finish with what the valid records say: the audit names the records and scans to 8
    r = reserve.run("audit", "--json")
    assert r.code == 1, (r.code, r.err)
    messages = [f["message"] for f in r.json()["findings"] if f["code"] == "ledger-verification"]
    assert any(f"addresses-issued record #{far} " in m for m in messages), messages
    r = reserve.run("sync")  # scans as far as the valid records say (a write over them may be refused)
    assert r.code in (0, 2) and "Traceback" not in r.err, (r.code, r.err)
    reserve.ok("vault", "watch", v.name)
    listed = {x["name"]: x for x in reserve.ok("vault", "list", "--json").json()}
    assert listed[v.name]["addresses_issued"] == 8, listed[v.name]
    assert watched_range(node, v) < 10_000


# --- 2. a vault reusing another vault's keys in another order -----------------------------------------


def insert_vault(engine: Engine, name: str, descriptor: MultisigDescriptor, holders: Sequence[str]) -> int:
    """Rows of a vault and its vault-added record, as `vault add` would write them."""
    keys = [
        KeyFields(h, str(k), k.xpub, None if k.origin is None else k.origin.fingerprint.hex())
        for h, k in zip(holders, descriptor.keys, strict=True)
    ]
    with engine.begin() as c:
        account = c.execute(
            insert(AccountRow).values(name=name, type="vault").returning(AccountRow.id)
        ).scalar_one()
        vault = c.execute(
            insert(VaultRow)
            .values(
                name=name,
                account_id=account,
                kind="wsh",
                threshold=descriptor.threshold,
                descriptor=str(descriptor),
                network="regtest",
                birthday_height=None,
            )
            .returning(VaultRow.id)
        ).scalar_one()
        for position, k in enumerate(keys):
            c.execute(
                insert(VaultKeyRow).values(
                    vault_id=vault,
                    position=position,
                    holder=k.holder,
                    key=k.key,
                    xpub=k.xpub,
                    fingerprint=k.fingerprint,
                )
            )
    body = vault_added_body(
        vault=name,
        kind="wsh",
        threshold=descriptor.threshold,
        descriptor=str(descriptor),
        network="regtest",
        birthday=None,
        keys=keys,
    )
    return append_record(engine, RecordKind.VAULT_ADDED, body)


def test_a_vault_reusing_another_vaults_keys_in_another_order_is_a_finding(
    reserve: Reserve, node: RegtestNode, insider: Engine
) -> None:
    main = reserve.add_vault("main")
    holders = list(main.keys)
    reordered = MultisigDescriptor.from_keys(2, tuple(reversed(main.keys.values())))
    assert str(reordered) != str(main.descriptor)
    assert reordered.address(0, False, Network.REGTEST) == main.address(0)  # the same addresses
    args = ["vault", "add", "copy", "--threshold", "2"]
    for h, k in zip(reversed(holders), reversed(main.keys.values()), strict=True):
        args += ["--key", f"{h}={k}"]
    r = reserve.run(*args)
    assert r.code == 2 and "already used by active vault" in r.err, (r.code, r.err)

    seq = insert_vault(insider, "copy", reordered, list(reversed(holders)))
    with insider.connect() as c:
        main_seq = c.execute(
            select(func.min(EntryRow.seq)).where(EntryRow.kind == RecordKind.VAULT_ADDED.value)
        ).scalar_one()
    findings = verify_findings(reserve)
    finding = one(findings, f"vault 'copy' (record #{seq}): key 1 (")
    assert f"key 3 of vault {main.name!r} (record #{main_seq})" in finding
    assert "keys must be unique across vaults, in any order" in finding

    # every reader of the vaults refuses, saying why, instead of booking deposits to either vault
    node.fund(main.address(), 10_000_000)
    for argv in (("audit",), ("sync",), ("vault", "list")):
        r = reserve.run(*argv)
        assert r.code == 2 and "keys must be unique across vaults" in r.err, (argv, r.code, r.out, r.err)


# --- 3. spend_inputs held to the proposal records -----------------------------------------------------


def test_spend_inputs_inserted_or_deleted_are_findings_and_stop_the_spend_commands(
    reserve: Reserve, node: RegtestNode, insider: Engine, owner: Engine, tmp_path: Path
) -> None:
    setup = funded_vault(reserve, node)
    number, psbt_file = proposal(reserve, tmp_path, setup, "--pay", "exchange=0.3")
    held = Psbt.parse(psbt_file.read_text()).tx.inputs
    coins = node.rpc().wallet(vault_wallet_name(setup.vault.name)).call("listunspent", 0, 9999, [], True)
    free = next(
        f"{c['txid']}:{c['vout']}"
        for c in coins
        if (c["txid"], c["vout"]) not in {(i.txid, i.vout) for i in held}
    )
    reserve.ok("ledger", "verify")

    # a coin held by inserting rows: for the open spend, and for a spend that was never proposed
    txid, vout = free.split(":")
    with insider.begin() as c:
        c.execute(insert(SpendInputRow).values(spend=number, txid=txid, vout=int(vout)))
        c.execute(insert(SpendInputRow).values(spend=99, txid=txid, vout=int(vout)))
    findings = verify_findings(reserve)
    assert "which its proposal record #" in one(findings, f"spend {number} holds coin {free}")
    assert "no spend 99 was ever proposed" in one(findings, f"spend 99 holds coin {free}")
    r = reserve.run(
        "spend", "create", "--vault", setup.vault.name, "--pay", "exchange=0.1",
        "--fee-rate", "2", "--memo", "m", "--out", str(tmp_path),
    )  # fmt: skip
    assert r.code == 2 and "tamper" in r.err and f"spend 99 holds coin {free}" in r.err, (r.code, r.err)
    r = reserve.run(
        "spend", "cancel", str(number), "--reason", "free its coins"
    )  # would unlock the rows' coins
    assert r.code == 2 and f"spend {number} holds coin {free}" in r.err, (r.code, r.err)
    with insider.connect() as c:  # still only proposed
        assert (
            c.execute(text("SELECT count(*) FROM spend_events WHERE spend = :n"), {"n": number}).scalar_one()
            == 1
        )

    # a held coin freed by deleting its row (the owner's rights)
    protection_off(owner)
    execute(
        owner,
        "DELETE FROM spend_inputs WHERE spend IN (:n, 99) AND vout = :v AND txid = :t",
        n=number,
        t=txid,
        v=int(vout),
    )
    reserve.ok("ledger", "verify")
    gone = held[0]
    execute(owner, "DELETE FROM spend_inputs WHERE spend = :n AND txid = :t", n=number, t=gone.txid)
    findings = verify_findings(reserve)
    assert "its row is missing" in one(
        findings, f"spend {number}'s proposal record #", f"input {gone.outpoint}"
    )
    r = reserve.run("spend", "sign", str(number), str(psbt_file))
    assert r.code == 2 and gone.outpoint in r.err, (r.code, r.err)


# --- 4. an entry inserted past a gap ------------------------------------------------------------------


def test_an_entry_inserted_at_seq_9999_is_a_gap_finding_not_a_race(reserve: Reserve, insider: Engine) -> None:
    reserve.ok("account", "add", "acme", "--type", "counterparty")
    reserve.ok("account", "add", "owners", "--type", "equity")
    reserve.ok(
        "record", "--kind", "adjustment", "--memo", "books", "--posting", "acme=1", "--posting", "owners=-1"
    )
    with insider.connect() as c:
        last = int(c.execute(select(func.max(EntryRow.seq))).scalar_one())
    append_entry(insider, "adjustment", "slipped in", [("acme", 5), ("owners", -5)], seq=9999)

    findings = verify_findings(reserve)
    one(findings, f"entry 9999 follows {last}: seq must be contiguous (inserted outside the service")

    for _ in range(2):  # and every later audit says so, never "run again"
        r = reserve.run("audit", "--json")
        assert r.code == 1, (r.code, r.out, r.err)
        messages = [f["message"] for f in r.json()["findings"] if f["code"] == "ledger-verification"]
        one(messages, "entry 9999 follows", "seq must be contiguous")
        assert "changed while the audit ran" not in r.err + r.out


# --- 5. an audit saying ok for a block that never was ------------------------------------------------


def test_an_audit_record_for_a_block_that_never_was_is_a_finding_of_the_next_audit(
    reserve: Reserve, node: RegtestNode, insider: Engine
) -> None:
    reserve.add_vault("aud")
    reserve.ok("audit")
    tip = node.rpc().get_blockchain_info()
    never = "5e" * 32
    report = '{"ok": true}'
    with Session(insider) as s:  # the tree as it is, as the service would note it
        leaves = [h for _, h in iter_leaf_hashes(s)]
        size, root = len(leaves), root_of(leaves)
    with insider.begin() as c:
        audit_id = c.execute(
            insert(AuditRow)
            .values(
                tree_size=size,
                root=root,
                checkpoint_id=None,
                min_conf=1,
                height=tip.blocks + 1,
                best_block=never,
                findings=0,
                ok=True,
                report=report,
            )
            .returning(AuditRow.id)
        ).scalar_one()
    body = audit_body(
        audit_id=audit_id,
        tree_size=size,
        root=root,
        checkpoint_id=None,
        height=tip.blocks + 1,
        best_block=never,
        min_conf=1,
        findings=0,
        ok=True,
        report=report,
    )
    seq = append_record(insider, RecordKind.AUDIT, body)

    offline = reserve.run("ledger", "verify", "--json").json()["findings"]  # hashes and rows agree:
    assert not [f for f in offline if "node does not know" in f]  # only the node can tell that,
    uncovered = f"entries {seq}..{seq} are not covered by a head signed by the ledger key"
    assert [f for f in offline if f.startswith(uncovered)]  # but no tree head signed the record
    findings = reserve.run("ledger", "verify", "--node", "--json").json()["findings"]
    one(findings, f"audit #{audit_id} (record #{seq}) says it saw block {never}", "the node does not know")

    r = reserve.run("audit", "--json")
    assert r.code == 1, (r.code, r.out, r.err)
    found = r.json()
    [forged] = [f for f in found["findings"] if f["seq"] == seq and "says it saw" in f["message"]]
    assert forged["code"] == "ledger-verification"
    assert any(uncovered in f["message"] for f in found["findings"])
    assert f"audit #{audit_id} (record #{seq}) says it saw block {never}" in forged["message"]
    assert "which the node does not know" in forged["message"]
    assert found["checkpoint_id"] is None  # no checkpoint signs over the forged record
    assert not [f for f in found["findings"] if "audit #1 " in f["message"]]  # the real one is fine
