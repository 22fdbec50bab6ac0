"""The journal service on SQLite and PostgreSQL: double entry, reversals, idempotency, balances,
and bad input that changes nothing.

Most tests are about the journal's mechanics and post to vault accounts as :mod:`ledger.chain.recording`
does, once a transaction is verified on chain (``chain_verified=True``, vault accounts opened with
their definition); the refusals of manual vault postings and of forged records are tested too."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable

import pytest
from alembic import command
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from custody.amount import parse_btc
from ledger.errors import Conflict, InvalidInput, LedgerError, NotFound
from ledger.journal import book
from ledger.journal.accounts import add_account, get_account, list_accounts
from ledger.journal.balances import balance
from ledger.journal.book import get_entry, iter_entries, reverse
from ledger.journal.entry import Entry, EntryDraft, Posting
from ledger.journal.records import RecordKind, append_record, records
from ledger.store.migrate import alembic_config, current_revision
from tests.fixtures.db import snapshot

BTC = 100_000_000


def append(s: Session, draft: EntryDraft) -> Entry:
    """Append as :mod:`ledger.chain.recording` does after checking the transaction on chain."""
    return book.append(s, draft, chain_verified=True)


def append_many(s: Session, drafts: list[EntryDraft]) -> tuple[Entry, ...]:
    return book.append_many(s, drafts, chain_verified=True)


def seed(engine: Engine) -> None:
    with Session(engine) as s, s.begin():
        add_account(s, "vault:cold", "vault", vault_definition=True)
        add_account(s, "vault:hot", "vault", vault_definition=True)
        add_account(s, "acme", "counterparty")
        add_account(s, "fees", "expense")


def deposit(amount: int, ref: str | None = None, memo: str = "deposit from acme") -> EntryDraft:
    return EntryDraft(
        kind="deposit",
        memo=memo,
        postings=(Posting("vault:cold", amount), Posting("acme", -amount)),
        ref=ref,
        date=dt.date(2024, 5, 1),
    )


def test_alembic_check_is_clean_and_upgrade_idempotent(engine: Engine) -> None:
    from ledger.store.migrate import upgrade

    upgrade(engine)
    assert current_revision(engine) is not None
    cfg = alembic_config()
    with engine.connect() as connection:
        cfg.attributes["connection"] = connection
        command.check(cfg)  # raises if the models and the migrated schema differ


def test_accounts(engine: Engine) -> None:
    seed(engine)
    with Session(engine) as s, s.begin():
        assert [a.name for a in list_accounts(s)] == ["acme", "fees", "vault:cold", "vault:hot"]
        assert get_account(s, "vault:cold").type == "vault"
        with pytest.raises(NotFound, match="reserve account add nope"):
            get_account(s, "nope")
    with pytest.raises(Conflict, match="already exists"), Session(engine) as s, s.begin():
        add_account(s, "acme", "counterparty")
    with pytest.raises(InvalidInput, match="unknown"), Session(engine) as s, s.begin():
        add_account(s, "x", "asset")


def test_double_entry_and_sequence(engine: Engine) -> None:
    seed(engine)
    with Session(engine) as s, s.begin():
        e1 = append(s, deposit(2 * BTC))
        e2 = append(
            s,
            EntryDraft(
                kind="transfer",
                memo="to hot wallet",
                postings=(
                    Posting("vault:hot", BTC // 2),
                    Posting("fees", 1000),
                    Posting("vault:cold", -(BTC // 2) - 1000),
                ),
            ),
        )
    assert (e1.seq, e2.seq) == (1, 2)
    assert e2.postings[0].account_type == "vault"
    with Session(engine) as s, s.begin():
        assert get_entry(s, 2) == e2
        assert [e.seq for e in iter_entries(s)] == [1, 2]
        b = balance(s)
        amounts = {a.name: a.amount for a in b.accounts}
        assert amounts == {
            "acme": -2 * BTC,
            "fees": 1000,
            "vault:cold": 2 * BTC - BTC // 2 - 1000,
            "vault:hot": BTC // 2,
        }
        assert b.reserve == 2 * BTC - 1000
        assert sum(amounts.values()) == 0


def test_balance_as_of(engine: Engine) -> None:
    seed(engine)
    with Session(engine) as s, s.begin():
        append_many(s, [deposit(BTC), deposit(3 * BTC), deposit(5 * BTC)])
    with Session(engine) as s, s.begin():
        assert balance(s, as_of=0).reserve == 0
        assert balance(s, as_of=2).reserve == 4 * BTC
        assert balance(s, "acme", as_of=1).accounts[0].amount == -BTC
        one = balance(s, "vault:cold")
        assert [a.name for a in one.accounts] == ["vault:cold"] and one.reserve == 9 * BTC
        with pytest.raises(NotFound, match="no entry 4"):
            balance(s, as_of=4)


def test_reversal_is_exact_and_once_only(engine: Engine) -> None:
    seed(engine)
    with Session(engine) as s, s.begin():
        original = append(s, deposit(123_456_789))
        rev = reverse(s, original.seq, "entered twice by mistake", ref="rev-1")
    assert rev.kind == "reversal" and rev.reverses_seq == 1
    assert [(p.account, p.amount) for p in rev.postings] == [
        (p.account, -p.amount) for p in original.postings
    ]
    with Session(engine) as s, s.begin():
        assert balance(s).reserve == 0
        # same ref, same request: the same reversal back, nothing written
        assert reverse(s, 1, "entered twice by mistake", ref="rev-1") == rev
    with pytest.raises(Conflict, match="already reversed by entry 2"), Session(engine) as s, s.begin():
        reverse(s, 1, "again")
    with pytest.raises(Conflict, match="itself a reversal"), Session(engine) as s, s.begin():
        reverse(s, 2, "undo the undo")
    # a hand-made "reversal" that does not negate exactly is refused
    bad = EntryDraft(
        kind="reversal",
        memo="sloppy",
        postings=(Posting("vault:cold", -1), Posting("acme", 1)),
        reverses_seq=1,
    )
    with pytest.raises((LedgerError, InvalidInput)), Session(engine) as s, s.begin():
        append(s, bad)


def test_idempotent_ref(engine: Engine) -> None:
    seed(engine)
    with Session(engine) as s, s.begin():
        first = append(s, deposit(BTC, ref="bank-42"))
    before = snapshot(engine)
    with Session(engine) as s, s.begin():
        again = append(s, deposit(BTC, ref="bank-42"))
        both = append_many(s, [deposit(BTC, ref="bank-42"), deposit(BTC, ref="bank-42")])
    assert again == first and both == (first, first)
    assert snapshot(engine) == before
    with pytest.raises(Conflict, match=r"bank-42.*entry 1"), Session(engine) as s, s.begin():
        append(s, deposit(2 * BTC, ref="bank-42"))
    # duplicated inside one batch: same content is one entry
    with Session(engine) as s, s.begin():
        pair = append_many(s, [deposit(7, ref="b-1"), deposit(7, ref="b-1")])
    assert pair[0] == pair[1] and pair[0].seq == 2


def test_append_many_is_all_or_nothing(engine: Engine) -> None:
    seed(engine)
    before = snapshot(engine)
    with pytest.raises(NotFound, match="nobody"), Session(engine) as s, s.begin():
        append_many(
            s,
            [
                deposit(BTC),
                EntryDraft(
                    kind="deposit",
                    memo="x",
                    postings=(Posting("vault:cold", 1), Posting("nobody", -1)),
                ),
            ],
        )
    assert snapshot(engine) == before


def _bad_drafts() -> dict[str, Callable[[Session], object]]:
    return {
        "unbalanced": lambda s: append(
            s, EntryDraft(kind="deposit", memo="m", postings=(Posting("vault:cold", 2), Posting("acme", -1)))
        ),
        "unknown account": lambda s: append(
            s, EntryDraft(kind="deposit", memo="m", postings=(Posting("vault:cold", 1), Posting("ghost", -1)))
        ),
        "9 decimals": lambda s: append(s, deposit(parse_btc("0.000000001"))),
        "negative": lambda s: append(s, deposit(parse_btc("-1"))),
        "above 21M": lambda s: append(s, deposit(parse_btc("21000000.00000001"))),
        "ref reused with other content": lambda s: append(s, deposit(5, ref="r1")),
        "reversed twice": lambda s: reverse(s, 1, "again"),
        "unknown seq": lambda s: reverse(s, 99, "nothing there"),
        "one posting": lambda s: append(
            s, EntryDraft(kind="deposit", memo="m", postings=(Posting("acme", 1),))
        ),
        "zero amount": lambda s: append(s, deposit(0)),
        "bad kind": lambda s: append(
            s, EntryDraft(kind="gift", memo="m", postings=(Posting("vault:cold", 1), Posting("acme", -1)))
        ),
    }


@pytest.mark.parametrize("case", sorted(_bad_drafts()))
def test_bad_input_changes_nothing(engine: Engine, case: str) -> None:
    seed(engine)
    with Session(engine) as s, s.begin():
        append(s, deposit(BTC, ref="r1"))
        reverse(s, 1, "undo")
    before = snapshot(engine)
    with pytest.raises((LedgerError, InvalidInput)), Session(engine) as s, s.begin():
        _bad_drafts()[case](s)
    assert snapshot(engine) == before


def test_manual_vault_posting_is_refused(engine: Engine) -> None:
    """Vault accounts move only through chain-verified entries: a manual draft (``reserve
    record --posting vault=...``) posting to one is refused and changes nothing."""
    seed(engine)
    with Session(engine) as s, s.begin():
        append(s, deposit(BTC))
    before = snapshot(engine)
    refused = "posting to vault account 'vault:cold' refused"
    with pytest.raises(InvalidInput, match=refused), Session(engine) as s, s.begin():
        book.append(s, deposit(1000))
    only_with = "a vault account is opened only with its vault definition"
    with pytest.raises(InvalidInput, match=only_with), Session(engine) as s, s.begin():
        add_account(s, "ghost", "vault")
    assert snapshot(engine) == before


def test_records_are_leaves_without_postings(engine: Engine) -> None:
    seed(engine)
    with Session(engine) as s, s.begin():
        append(s, deposit(BTC))
        entry = append_record(s, RecordKind.AUDIT, {"audit_id": 1, "ok": True, "note": "caf\u00e9"})
        append(s, deposit(2 * BTC))
    assert (entry.seq, entry.kind, entry.postings) == (2, "audit", ())
    assert entry.memo == '{"audit_id":1,"note":"caf\\u00e9","ok":true}'
    with Session(engine) as s, s.begin():
        assert get_entry(s, 2) == entry
        assert [r.body for r in records(s)] == [{"audit_id": 1, "note": "caf\u00e9", "ok": True}]
        assert records(s, RecordKind.VAULT_ADDED) == []
        assert balance(s).reserve == 3 * BTC


def _forged_records() -> dict[str, Callable[[Session], object]]:
    return {
        "record kind through append": lambda s: book.append(
            s, EntryDraft(kind="vault-added", memo='{"vault":"x"}', postings=())
        ),
        "record kind with postings": lambda s: book.append(
            s,
            EntryDraft(kind="audit", memo='{"ok":true}', postings=(Posting("acme", 1), Posting("fees", -1))),
        ),
        "money kind through append_records": lambda s: book.append_records(s, [deposit(BTC)]),
        "record memo not canonical": lambda s: book.append_records(
            s, [EntryDraft(kind="audit", memo='{"ok": true}', postings=())]
        ),
        "record with a txid": lambda s: book.append_records(
            s, [EntryDraft(kind="audit", memo='{"ok":true}', postings=(), txid="ab" * 32)]
        ),
        "record body with a float": lambda s: append_record(s, RecordKind.AUDIT, {"ratio": 0.5}),
        "reverse a record": lambda s: reverse(s, 2, "undo the vault"),
        "hand-made reversal of a record": lambda s: book.append(
            s, EntryDraft(kind="reversal", memo="undo", postings=(), reverses_seq=2)
        ),
    }


@pytest.mark.parametrize("case", sorted(_forged_records()))
def test_record_refusals_change_nothing(engine: Engine, case: str) -> None:
    seed(engine)
    with Session(engine) as s, s.begin():
        append(s, deposit(BTC))
        append_record(s, RecordKind.AUDIT, {"audit_id": 1})
    before = snapshot(engine)
    with pytest.raises((LedgerError, InvalidInput)), Session(engine) as s, s.begin():
        _forged_records()[case](s)
    assert snapshot(engine) == before


@pytest.mark.parametrize(
    ("memo", "ref", "code_point"),
    [
        ("paid \x1b[31mred", None, "U+001B"),
        ("two\nlines", None, "U+000A"),
        ("tab\there", None, "U+0009"),
        ("del\x7f", None, "U+007F"),
        ("c1 \x9b", None, "U+009B"),
        ("line\u2028sep", None, "U+2028"),
        ("para\u2029sep", None, "U+2029"),
        ("bidi \u202eevil", None, "U+202E"),
        ("isolate \u2066x", None, "U+2066"),
        ("fine", "ref\x00", "U+0000"),
        ("fine", "ref\u202a", "U+202A"),
    ],
)
def test_control_characters_are_refused(engine: Engine, memo: str, ref: str | None, code_point: str) -> None:
    seed(engine)
    before = snapshot(engine)
    refused = re.escape(f"control character {code_point}")
    with pytest.raises(InvalidInput, match=refused), Session(engine) as s, s.begin():
        append(s, deposit(BTC, ref=ref, memo=memo))
    assert snapshot(engine) == before
