"""The period statement's core on plain entries: the split rule, the identity on randomized ledgers
(hypothesis), periods that partition, reversals that net out, and JSON, CSV and table agreeing."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import re
from collections import defaultdict
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rich.console import Console

from ledger.chain import movement
from ledger.cli.app import App
from ledger.cli.report_cmds import _print_statement
from ledger.errors import InvalidInput
from ledger.journal.entry import Entry, Posting
from ledger.report.statement import (
    ADDITIONS,
    Bound,
    CheckpointRef,
    Nature,
    Place,
    Split,
    Statement,
    build_statement,
    csv_rows,
    entry_lines,
    statement_json,
    summary_rows,
)

LEAF = b"\x00" * 32
DAY0 = dt.date(2026, 1, 1)
VAULTS = ("v-a", "v-b", "v-c")
TYPES = {
    "v-a": "vault",
    "v-b": "vault",
    "v-c": "vault",
    "acme": "counterparty",
    "bob": "counterparty",
    "custody-co": "custodian",
    "mining-income": "income",
    "network-fees": "expense",
    "owner": "equity",
    "office": "expense",
}


def p(account: str, amount: int) -> Posting:
    return Posting(account, amount, TYPES[account])


def entry(seq: int, kind: str, legs: list[tuple[str, int]], **kw: Any) -> Entry:
    kw.setdefault("date", DAY0)
    return Entry(
        seq=seq,
        kind=kind,
        memo=f"{kind} {seq}",
        postings=tuple(p(a, n) for a, n in legs),
        leaf_hash=LEAF,
        **kw,
    )


def chain(height: int) -> dict[str, Any]:
    return {"txid": f"{height:064x}", "block_hash": f"{height + 1:064x}", "block_height": height}


def splits(legs: list[tuple[str, int]]) -> list[tuple[str, str, str, int]]:
    return [
        (s.vault, str(s.nature), s.account, s.amount) for s in entry_lines(tuple(p(a, n) for a, n in legs))
    ]


# --- the split rule ---------------------------------------------------------------------------------


def test_system_accounts_are_chain_recordings() -> None:
    from ledger.report import statement

    assert (statement.MINING_INCOME, statement.NETWORK_FEES) == (
        movement.MINING_INCOME,
        movement.NETWORK_FEES,
    )


def test_a_deposit_to_two_vaults_is_two_deposits() -> None:
    assert splits([("v-a", 150), ("v-b", 25), ("acme", -175)]) == [
        ("v-a", "deposit", "acme", 150),
        ("v-b", "deposit", "acme", 25),
    ]


def test_mining_and_other_additions_by_account() -> None:
    assert splits([("v-a", 50), ("mining-income", -50)]) == [("v-a", "mining", "mining-income", 50)]
    assert splits([("v-a", 7), ("owner", -7)]) == [("v-a", "other-addition", "owner", 7)]
    assert splits([("v-a", 7), ("custody-co", -7)]) == [("v-a", "deposit", "custody-co", 7)]


def test_a_spend_paying_another_vault_and_outside() -> None:
    # tests/integration/test_tx_shapes.py's shape: a -(3 BTC + fee), b +1 BTC, buyer 2 BTC, fee
    assert splits([("v-a", -310), ("v-b", 100), ("bob", 200), ("network-fees", 10)]) == [
        ("v-a", "fee", "network-fees", 10),
        ("v-a", "disposition", "bob", 200),
        ("v-a", "transfer-out", "v-b", 100),
        ("v-b", "transfer-in", "v-a", 100),
    ]


def test_two_paying_vaults_fill_fee_then_dispositions_in_posting_order() -> None:
    assert splits([("v-a", -60), ("v-b", -51), ("acme", 100), ("network-fees", 11)]) == [
        ("v-a", "fee", "network-fees", 11),
        ("v-a", "disposition", "acme", 49),
        ("v-b", "disposition", "acme", 51),
    ]


def test_a_payjoin_deposit_is_an_addition_and_a_transfer() -> None:
    # the vault a spent 3 as an input, b received 5, the sender's inputs brought 2
    assert splits([("v-a", -3), ("v-b", 5), ("acme", -2)]) == [
        ("v-b", "deposit", "acme", 2),
        ("v-a", "transfer-out", "v-b", 3),
        ("v-b", "transfer-in", "v-a", 3),
    ]


def test_an_addition_beyond_every_gain_goes_to_the_first_vault() -> None:
    assert splits([("v-a", -1), ("acme", -5), ("bob", 6)]) == [
        ("v-a", "deposit", "acme", 5),
        ("v-a", "disposition", "bob", 6),
    ]


def test_an_entry_touching_no_vault_has_no_lines() -> None:
    assert splits([("office", 5), ("acme", -5)]) == []


# --- bounds -----------------------------------------------------------------------------------------


def test_bounds_parse() -> None:
    assert Bound.parse("2026-02-28") == Bound(date=dt.date(2026, 2, 28))
    assert Bound.parse(" 840000 ") == Bound(height=840000)
    assert Bound.parse("0") == Bound(height=0)
    for bad in ("2026-02-30", "-1", "1.5", "", "yesterday", "2026-2-1", "01", "99999999999"):
        with pytest.raises(InvalidInput):
            Bound.parse(bad)


def test_reversed_bounds_are_refused() -> None:
    with pytest.raises(InvalidInput, match="swap them"):
        build_statement([], Bound(height=5), Bound(height=4))
    with pytest.raises(InvalidInput, match="swap them"):
        build_statement([], Bound(date=DAY0), Bound(date=DAY0 - dt.timedelta(days=1)))


def test_a_manual_entry_goes_by_the_last_block_booked_before_it() -> None:
    es = [
        entry(1, "deposit", [("v-a", 100), ("acme", -100)], **chain(10)),
        entry(2, "reversal", [("v-a", -100), ("acme", 100)], reverses_seq=1),
        entry(3, "mining", [("v-b", 50), ("mining-income", -50)], **chain(11)),
    ]
    upto10 = build_statement(es, Bound(height=0), Bound(height=10))
    assert upto10.entries == (1, 2) and upto10.total.closing == 0
    from11 = build_statement(es, Bound(height=11), Bound(height=11))
    assert from11.entries == (3,) and from11.total.opening == 0 and from11.total.closing == 50


# --- randomized ledgers -----------------------------------------------------------------------------

amounts = st.integers(min_value=1, max_value=10**9)


@st.composite
def ledgers(draw: st.DrawFn) -> list[Entry]:
    """Journals of chain movements of every shape, manual entries, records and reversals."""
    out: list[Entry] = []
    height = draw(st.integers(0, 5))
    day = DAY0
    reversible: list[Entry] = []
    for seq in range(1, draw(st.integers(1, 30)) + 1):
        height += draw(st.integers(0, 2))
        day += dt.timedelta(days=draw(st.integers(0, 1)))
        shape = draw(
            st.sampled_from(
                [
                    "deposit",
                    "mining",
                    "withdrawal",
                    "transfer",
                    "fee",
                    "payjoin",
                    "adjust",
                    "reverse",
                    "record",
                    "other",
                ]
            )
        )
        a, b = draw(st.permutations(VAULTS))[:2]
        x, y, fee = draw(amounts), draw(amounts), draw(st.integers(1, 10**5))
        who = draw(st.sampled_from(["acme", "bob", "custody-co"]))
        e: Entry
        if shape == "reverse" and reversible:
            target = draw(st.sampled_from(reversible))
            reversible.remove(target)
            legs = [(q.account, -q.amount) for q in target.postings]
            e = entry(seq, "reversal", legs, reverses_seq=target.seq, date=day)
        elif shape == "record" or shape == "reverse":
            e = Entry(seq=seq, kind="vault-added", date=day, memo='{"name":"x"}', postings=(), leaf_hash=LEAF)
        elif shape == "other":
            e = entry(seq, "adjustment", [("office", x), (who, -x)], date=day)
        elif shape == "adjust":
            e = entry(seq, "adjustment", [(a, x), ("owner", -x)], date=day)
        else:
            legs = {
                "deposit": [(a, x), (b, y), (who, -x - y)],
                "mining": [(a, x), ("mining-income", -x)],
                "withdrawal": [(a, -x - y - fee), (who, x + y), ("network-fees", fee)],
                "transfer": [(a, -x - y - fee), (b, x), (who, y), ("network-fees", fee)],
                "fee": [(a, -fee), ("network-fees", fee)],
                "payjoin": [(a, -x), (b, x + y), (who, -y)],
            }[shape]
            kind = "deposit" if shape == "payjoin" else shape
            e = entry(seq, kind, legs, date=day, **chain(height))
        if e.postings and e.kind != "reversal":
            reversible.append(e)
        out.append(e)
    return out


def vault_sums(entries: list[Entry], keep: Any) -> dict[str, int]:
    """Brute force: each vault's postings over the entries ``keep(place)`` selects."""
    sums: dict[str, int] = defaultdict(int)
    tip = -1
    for e in entries:
        place = Place(e.date, e.block_height if e.block_height is not None else tip)
        if e.block_height is not None:
            tip = max(tip, e.block_height)
        if keep(place):
            for q in e.postings:
                if q.account_type == "vault":
                    sums[q.account] += q.amount
    return sums


def check_identities(es: list[Entry], s: Statement, start: Bound, end: Bound) -> None:
    for sec in (*s.vaults, s.total):
        assert sec.closing == sec.computed_closing, sec.name
    assert s.total.transfers_in == s.total.transfers_out == ()
    opening = vault_sums(es, lambda pl: not pl.at_or_after(start))
    closing = vault_sums(es, lambda pl: not pl.at_or_after(start) or pl.at_or_before(end))
    for sec in s.vaults:
        assert sec.opening == opening.get(sec.name, 0)
        assert sec.closing == closing.get(sec.name, 0)
    assert s.total.opening == sum(opening.values())
    assert s.total.closing == sum(closing.values())
    # the total's lines are the vaults' lines added up; transfers cancel
    for group in ("additions", "dispositions", "fees"):
        by_vaults: dict[tuple[str, str], int] = defaultdict(int)
        for sec in s.vaults:
            for sub in getattr(sec, group):
                by_vaults[(sub.nature, sub.account)] += sub.amount
        assert {(x.nature, x.account): x.amount for x in getattr(s.total, group)} == {
            k: v
            for k, v in by_vaults.items()
            if k in {(x.nature, x.account) for x in getattr(s.total, group)}
        }
        assert sum(by_vaults.values()) == s.total.total(group)
    assert sum(sec.total("transfers_in") for sec in s.vaults) == sum(
        sec.total("transfers_out") for sec in s.vaults
    )
    assert sum(t.amount for t in s.transfers) == sum(sec.total("transfers_out") for sec in s.vaults)
    # every line names an entry of the period, with its txid
    seqs = {e.seq: e for e in es}
    for line in s.lines:
        assert line.seq in s.entries and line.txid == seqs[line.seq].txid
    assert set(s.entries) == {x.seq for x in s.lines}


def figures_from_json(doc: dict[str, Any]) -> dict[tuple[str, str, str], int]:
    out: dict[tuple[str, str, str], int] = {}
    for sec in (*doc["vaults"], doc["total"]):
        out[(sec["name"], "opening", "")] = sec["opening_sat"]
        out[(sec["name"], "closing", "")] = sec["closing_sat"]
        for group in ("additions", "dispositions", "fees", "transfers_in", "transfers_out"):
            for sub in sec.get(group, []):
                out[(sec["name"], sub["nature"], sub["account"])] = sub["amount_sat"]
    return out


def figures_from_csv(text: str) -> dict[tuple[str, str, str], int]:
    rows = list(csv.reader(io.StringIO(text)))
    assert rows[0] == ["section", "item", "account", "amount_sat", "amount_btc", "entries", "txids"]
    out = {}
    for section, item, account, sat, btc, _entries, _txids in rows[1:]:
        assert btc == f"{'-' if int(sat) < 0 else ''}{abs(int(sat)) // 10**8}.{abs(int(sat)) % 10**8:08d}"
        out[(section, item, account)] = int(sat)
    return out


def figures_from_table(text: str) -> dict[tuple[str, str, str], int]:
    out = {}
    section = ""
    for line in text.split("internal transfers")[0].splitlines():
        cells = [c.strip() for c in line.split("│")[1:-1]]
        if len(cells) != 5 or cells[0] == "section" or not re.fullmatch(r"-?\d+\.\d{8}", cells[3]):
            continue
        section = cells[0] or section
        whole, frac = cells[3].lstrip("-").split(".")
        sat = int(whole) * 10**8 + int(frac)
        out[(section, cells[1], cells[2])] = -sat if cells[3].startswith("-") else sat
    return out


def table_text(s: Statement) -> str:
    buf = io.StringIO()
    app = App(settings=None, console=Console(file=buf, width=400, color_system=None))  # type: ignore[arg-type]
    _print_statement(app, s)
    return buf.getvalue()


bounds = st.one_of(
    st.builds(lambda n: Bound(height=n), st.integers(0, 40)),
    st.builds(lambda n: Bound(date=DAY0 + dt.timedelta(days=n)), st.integers(0, 30)),
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ledgers(), bounds, bounds)
def test_statement_identities_on_random_ledgers(es: list[Entry], start: Bound, end: Bound) -> None:
    if (start.height is not None and end.height is not None and start.height > end.height) or (
        start.date is not None and end.date is not None and start.date > end.date
    ):
        start, end = end, start
    s = build_statement(es, start, end, vaults=VAULTS)
    check_identities(es, s, start, end)
    # the three renderings show the same figures
    doc = json.loads(json.dumps(statement_json(s)))
    assert doc["schema"] == "reserve-ledger-statement/v1"
    from_rows = {(r.section, r.item, r.account): r.amount for r in summary_rows(s)}
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerows(csv_rows(s))
    assert figures_from_json(doc) == from_rows == figures_from_csv(buf.getvalue())
    assert figures_from_table(table_text(s)) == from_rows


@settings(max_examples=150, deadline=None)
@given(ledgers(), st.integers(0, 40), st.integers(0, 40), st.integers(0, 40))
def test_consecutive_height_periods_partition(es: list[Entry], a: int, b: int, c: int) -> None:
    a, b, c = sorted((a, b, c))
    first = build_statement(es, Bound(height=a), Bound(height=b), vaults=VAULTS)
    second = build_statement(es, Bound(height=b + 1), Bound(height=c + 1), vaults=VAULTS)
    both = build_statement(es, Bound(height=a), Bound(height=c + 1), vaults=VAULTS)
    assert [v.closing for v in first.vaults] == [v.opening for v in second.vaults]
    assert set(first.entries).isdisjoint(second.entries)
    assert set(first.entries) | set(second.entries) == set(both.entries)
    assert second.total.closing == both.total.closing


@settings(max_examples=150, deadline=None)
@given(ledgers(), st.integers(0, 30), st.integers(0, 30))
def test_consecutive_date_periods_partition(es: list[Entry], a: int, b: int) -> None:
    a, b = sorted((a, b))
    d = DAY0 + dt.timedelta(days=b)
    first = build_statement(es, Bound(date=DAY0 + dt.timedelta(days=a)), Bound(date=d), vaults=VAULTS)
    second = build_statement(es, Bound(date=d + dt.timedelta(days=1)), Bound(date=d + dt.timedelta(days=99)))
    assert first.total.closing == second.total.opening
    assert set(first.entries).isdisjoint(second.entries)


@settings(max_examples=150, deadline=None)
@given(ledgers())
def test_an_entry_and_its_reversal_in_one_period_net_out(es: list[Entry]) -> None:
    """Reverse every entry of the ledger that can be, in the same period: every subtotal is zero
    and every vault closes where it opened."""
    seq = len(es)
    reversed_ = {e.reverses_seq for e in es if e.reverses_seq is not None}
    extra = []
    for e in es:
        if e.postings and e.kind != "reversal" and e.seq not in reversed_:
            seq += 1
            legs = [(q.account, -q.amount) for q in e.postings]
            extra.append(entry(seq, "reversal", legs, reverses_seq=e.seq, date=e.date))
    s = build_statement(es + extra, Bound(date=DAY0), Bound(height=2**32 - 1), vaults=VAULTS)
    for sec in (*s.vaults, s.total):
        assert sec.opening == sec.closing == 0
        for group in ("additions", "dispositions", "fees", "transfers_in", "transfers_out"):
            assert all(sub.amount == 0 for sub in getattr(sec, group)), (sec.name, group)
    assert {line.reversed_by for line in s.lines if line.reverses is None} <= {x.seq for x in es + extra}


def test_a_reversal_of_an_earlier_period_is_a_negative_line() -> None:
    es = [
        entry(1, "deposit", [("v-a", 100), ("acme", -100)], **chain(10)),
        entry(2, "mining", [("v-b", 50), ("mining-income", -50)], **chain(12)),
        entry(3, "reversal", [("v-a", -100), ("acme", 100)], reverses_seq=1),
    ]
    s = build_statement(es, Bound(height=11), Bound(height=12), vaults=VAULTS)
    a = s.vaults[0]
    assert (a.opening, a.closing) == (100, 0)
    assert [(x.nature, x.account, x.amount, x.entries) for x in a.additions] == [
        (Nature.DEPOSIT, "acme", -100, (3,))
    ]
    assert s.reversals == ((3, 1),)
    [line] = [x for x in s.lines if x.vault == "v-a"]
    assert line.reverses == 1 and line.amount == -100
    earlier = build_statement(es, Bound(height=0), Bound(height=10))
    assert earlier.lines[0].reversed_by == 3
    assert all(n in ADDITIONS for n in (Nature.DEPOSIT, Nature.MINING, Nature.OTHER_ADDITION))


def test_the_covering_checkpoint_is_the_latest_holding_the_last_entry_counted() -> None:
    es = [entry(i, "mining", [("v-a", 5), ("mining-income", -5)], **chain(i)) for i in range(1, 6)]
    cps = [CheckpointRef(2, b"\x01" * 32, 100, "k"), CheckpointRef(4, b"\x02" * 32, 200, "k")]
    assert build_statement(es, Bound(height=1), Bound(height=2), checkpoints=cps).checkpoint == cps[1]
    assert build_statement(es, Bound(height=1), Bound(height=4), checkpoints=cps).checkpoint == cps[1]
    assert build_statement(es, Bound(height=1), Bound(height=5), checkpoints=cps).checkpoint is None
    s = build_statement(es, Bound(height=1), Bound(height=5), checkpoints=cps)
    assert "no signed checkpoint covers entry 5" in table_text(s)


def test_a_bad_reversal_is_refused() -> None:
    es = [
        entry(1, "deposit", [("v-a", 100), ("acme", -100)], **chain(10)),
        entry(2, "reversal", [("v-a", -90), ("acme", 90)], reverses_seq=1),
    ]
    with pytest.raises(InvalidInput, match="exact opposite"):
        build_statement(es, Bound(height=0), Bound(height=10))


def test_split_amounts_are_positive_for_original_entries() -> None:
    legs = [("v-a", -310), ("v-b", 100), ("bob", 200), ("network-fees", 10)]
    assert all(isinstance(s, Split) and s.amount > 0 for s in entry_lines(tuple(p(a, n) for a, n in legs)))


# --- the documented JSON schema ---------------------------------------------------------------------


def documented_schema() -> dict[str, Any]:
    from pathlib import Path

    text = (Path(__file__).parents[2] / "docs" / "statement.md").read_text()
    block = text.split("```json schema\n", 1)[1].split("```", 1)[0]
    schema: dict[str, Any] = json.loads(block)
    return schema


def conforms(value: Any, schema: dict[str, Any], root: dict[str, Any], where: str = "$") -> None:
    """The JSON Schema keywords docs/statement.md uses: $ref, type, const, enum, required,
    properties (no other keys than those named), items."""
    if "$ref" in schema:
        schema = root["$defs"][schema["$ref"].rsplit("/", 1)[1]]
    if "const" in schema:
        assert value == schema["const"], where
    if "enum" in schema:
        assert value in schema["enum"], where
    kinds = schema.get("type")
    if kinds is not None:
        python = {"object": dict, "array": list, "string": str, "integer": int, "null": type(None)}
        allowed = kinds if isinstance(kinds, list) else [kinds]
        assert any(isinstance(value, python[k]) and not isinstance(value, bool) for k in allowed), where
    if isinstance(value, dict) and "properties" in schema:
        assert set(schema.get("required", ())) <= set(value), (where, set(schema["required"]) - set(value))
        assert set(value) <= set(schema["properties"]), (where, set(value) - set(schema["properties"]))
        for key, sub in schema["properties"].items():
            if key in value:
                conforms(value[key], sub, root, f"{where}.{key}")
    if isinstance(value, list) and "items" in schema:
        for i, item in enumerate(value):
            conforms(item, schema["items"], root, f"{where}[{i}]")


@settings(max_examples=100, deadline=None)
@given(ledgers(), bounds, bounds)
def test_the_json_follows_the_documented_schema(es: list[Entry], start: Bound, end: Bound) -> None:
    schema = documented_schema()
    assert schema["$id"] == "reserve-ledger-statement/v1"
    try:
        s = build_statement(es, start, end, vaults=VAULTS, checkpoints=[CheckpointRef(99, LEAF, 1, "ab" * 8)])
    except InvalidInput:
        return  # reversed bounds
    conforms(json.loads(json.dumps(statement_json(s))), schema, schema)
