"""The transparency site's rendering: self-contained, escaped, figures exact to the satoshi."""

from __future__ import annotations

import datetime as dt
import html.parser
import json
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from custody.amount import format_btc
from ledger.journal.entry import Entry, Posting
from ledger.report.site import (
    Address,
    AttestationView,
    CheckpointView,
    ReservePoint,
    Sat,
    SiteData,
    Table,
    VaultView,
    render_page,
    render_site,
    reserve_chart,
)
from ledger.report.site_data import attestation_view, month_bounds, monthly_statements, reserve_series
from ledger.report.statement import Bound, build_statement, summary_rows

EVIL = "<script>alert('x')</script>&\"quoted\" <img src=https://evil.example/x.png>"
DATE = dt.date(2026, 3, 14)
NOW = dt.datetime(2026, 3, 15, 12, 0, tzinfo=dt.UTC)


def entry(seq: int, date: dt.date, *postings: tuple[str, str, int]) -> Entry:
    return Entry(
        seq=seq,
        kind="adjustment" if all(t != "vault" for _, t, _ in postings) else "deposit",
        date=date,
        memo="m",
        postings=tuple(Posting(a, n, t) for a, t, n in postings),
        leaf_hash=bytes(32),
    )


def vault(name: str, balance: int, **kw: object) -> VaultView:
    return VaultView(
        name=name,
        label="2-of-3",
        holders=("ministry", "central-bank", "regulator"),
        descriptor="wsh(sortedmulti(2,tpubA,tpubB,tpubC))#abcdefgh",
        network="regtest",
        balance=balance,
        addresses=(Address("receive", 0, "bcrt1qexample0"), Address("change", 0, "bcrt1qexample1")),
        **kw,  # type: ignore[arg-type]
    )


def site(**kw: object) -> SiteData:
    values: dict[str, object] = {
        "title": "Reserve of Testland",
        "network": "regtest",
        "generated_at": NOW,
        "as_of": 7,
        "reserve": 150_000_001,
        "vaults": (vault("cold", 150_000_000), vault("hot", 1)),
        "series": (
            ReservePoint(3, DATE, 150_000_000, (("cold", 150_000_000),)),
            ReservePoint(5, DATE, 150_000_001, (("cold", 150_000_000), ("hot", 1))),
        ),
        "statements": (Table("2026-03", ("vault", "opening (BTC)"), (("cold", Sat(0)), ("hot", Sat(1)))),),
        "statement_source": "from the postings",
        "attestation": AttestationView(
            number=2,
            height=101,
            block_hash="ab" * 32,
            sha256="cd" * 32,
            document='{"height":101}',
            totals=(("chain total", 150_000_001), ("ledger total", 150_000_001)),
            created_at="2026-03-15 11:00:00",
        ),
        "checkpoint": CheckpointView(7, "ee" * 32, 1_773_000_000, "0123456789abcdef", "ff" * 64, "{}\n"),
    }
    values.update(kw)
    return SiteData(**values)  # type: ignore[arg-type]


class Collect(html.parser.HTMLParser):
    """Every start tag with its attributes, and the text of the page."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []
        self.styles: list[str] = []
        self._in_style = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))
        self._in_style = tag == "style"

    def handle_endtag(self, tag: str) -> None:
        self._in_style = False

    def handle_data(self, data: str) -> None:
        (self.styles if self._in_style else self.text).append(data)


def parse(page: str) -> Collect:
    c = Collect()
    c.feed(page)
    c.close()
    return c


def referencing_tags(page: str) -> list[str]:
    """Tags and attributes that could make a browser fetch something: scripts, stylesheets,
    frames, images, and any src/href/srcset/action/xlink:href that is not in the page or beside it,
    any ``url(...)`` that is not a ``#fragment`` and any ``@import`` in a style."""
    found: list[str] = []
    parsed = parse(page)
    for tag, attrs in parsed.tags:
        if tag in ("script", "link", "iframe", "frame", "object", "embed", "img", "image", "base"):
            found.append(f"<{tag}>")
        for name, value in attrs.items():
            if value is None:
                continue
            local = value.startswith("#") or re.fullmatch(r"[A-Za-z0-9._-]+\.json", value)
            if name in ("src", "href", "srcset", "action", "xlink:href", "poster", "data") and not local:
                found.append(f"<{tag} {name}={value}>")
            found += [f"<{tag} {name}={value}>" for m in _REMOTE_URL.finditer(value)]
    found += [f"in a style: {m.group()}" for m in _REMOTE_URL.finditer("".join(parsed.styles))]
    found += ["@import" for style in parsed.styles if "@import" in style.lower()]
    return found


_REMOTE_URL = re.compile(r"(?i)url\s*\(\s*['\"]?(?!#)[^)]*\)")


def external_references(page: str) -> list[str]:
    """:func:`referencing_tags`, and any URL at all written in the page (``http(s)://``, ``//host``,
    ``data:``): a page of plain figures has none."""
    found = referencing_tags(page)
    found += [m.group() for m in re.finditer(r"(?i)(?:https?:|ftp:|file:)?//[^\s\"'<>]*|data:", page)]
    return found


def test_the_page_has_no_external_reference() -> None:
    page = render_page(site())
    assert external_references(page) == []
    assert "<svg" in page and 'role="img"' in page


def test_the_reference_check_finds_each_kind() -> None:
    for bad in (
        '<script src="a.js"></script>',
        '<link rel="stylesheet" href="https://x/y.css">',
        "<style>@import 'x.css';</style>",
        "<style>body{background:url(x.png)}</style>",
        "<div style=\"background: url('x.png')\">",
        "<base href=x>",
        '<a href="https://example.org">x</a>',
        '<a href="//example.org">x</a>',
        '<img src="a.png">',
        '<svg><use xlink:href="other.svg#a"/></svg>',
    ):
        assert external_references(bad), bad


def test_every_stored_text_is_escaped() -> None:
    evil_vault = vault("cold", 5, retired=True, retired_reason=EVIL)
    data = site(
        title=EVIL,
        vaults=(
            evil_vault,
            VaultView(
                name=EVIL,
                label=EVIL,
                holders=(EVIL, "b"),
                descriptor=EVIL,
                network=EVIL,
                balance=1,
                addresses=(Address(EVIL, 1, EVIL),),
            ),
        ),
        statements=(Table(EVIL, (EVIL, EVIL), ((EVIL, Sat(1)),), note=EVIL),),
        statement_source=EVIL,
        notes=(EVIL,),
    )
    page = render_page(data)
    assert "<script" not in page and "<img" not in page
    assert referencing_tags(page) == []  # the URL in the text is text, never a link
    parsed = parse(page)
    assert {t for t, _ in parsed.tags} <= {
        "html", "head", "meta", "title", "style", "body", "header", "h1", "h2", "h3", "p", "main",
        "section", "span", "figure", "figcaption", "details", "summary", "table", "thead", "tbody",
        "tfoot", "tr", "th", "td", "article", "dl", "dt", "dd", "code", "pre", "a", "footer",
        "svg", "defs", "g", "path", "use", "clippath", "rect",
    }  # fmt: skip
    text = "".join(parsed.text)
    assert text.count(EVIL) >= 10  # shown as text, each time it is stored


def test_vault_names_in_the_chart_are_drawn_not_written() -> None:
    series = (ReservePoint(1, DATE, 5, (("$x_1$", 2), ("_hidden", 3))),)
    svg = reserve_chart(series)
    assert "$x_1$" not in svg and "_hidden" not in svg  # text is paths; names left no trace
    assert "<!--" not in svg and "xmlns" not in svg and "http" not in svg
    assert svg.startswith("<svg") and svg.rstrip().endswith("</svg>")
    assert svg == reserve_chart(series)  # byte-stable


def test_a_chart_of_one_point_or_of_a_negative_balance_is_drawn() -> None:
    for series in (
        (ReservePoint(1, DATE, 0, (("cold", 0),)),),
        (
            ReservePoint(4, DATE, -5, (("cold", -5),)),
            ReservePoint(9, DATE, 21 * 10**14, (("cold", 21 * 10**14),)),
        ),
    ):
        svg = reserve_chart(series)
        assert svg.startswith("<svg") and "<path" in svg and "http" not in svg


def amounts(page: str) -> list[tuple[int, str]]:
    """Every (data-sat, shown text) pair of the page."""
    return [(int(m.group(1)), m.group(2)) for m in re.finditer(r'data-sat="(-?[0-9]+)">([^<]*)<', page)]


def test_figures_equal_the_values_to_the_satoshi() -> None:
    page = render_page(site())
    pairs = amounts(page)
    assert pairs and all(format_btc(sat) == shown for sat, shown in pairs)
    assert re.search(r'id="reserve-total" data-sat="150000001">1\.50000001<', page)
    vault_rows = dict(re.findall(r'<tr data-vault="([^"]+)">.*?data-sat="(-?[0-9]+)"', page))
    assert vault_rows == {"cold": "150000000", "hot": "1"}
    assert 'id="attestation-height">101<' in page and "cd" * 32 in page
    assert "reserve attest verify attestation-101-2.json --pubkey ledger-key.pem --node" in page
    assert 'id="checkpoint-size">7<' in page and "ee" * 32 in page and "0123456789abcdef" in page


@settings(max_examples=200, deadline=None)
@given(st.integers(min_value=-(21_000_000 * 10**8), max_value=21_000_000 * 10**8))
def test_any_amount_is_shown_exactly(sat: int) -> None:
    page = render_page(site(reserve=sat, series=(), statements=(), attestation=None, checkpoint=None))
    (shown,) = re.findall(r'id="reserve-total" data-sat="([^"]+)">([^<]+)<', page)
    assert shown == (str(sat), format_btc(sat))


def test_without_attestation_checkpoint_or_movements_the_page_says_so() -> None:
    data = site(series=(), statements=(), attestation=None, checkpoint=None, vaults=(), reserve=0)
    files = render_site(data)
    assert set(files) == {"index.html"}
    page = files["index.html"]
    assert 'id="no-attestation"' in page and "No attestation has been issued yet" in page
    assert "No checkpoint has been signed yet" in page
    assert "No vault has moved yet" in page and "<svg" not in page
    assert external_references(page) == []


def test_documents_are_written_beside_the_page_as_stored() -> None:
    files = render_site(site())
    assert files["attestation-101-2.json"] == '{"height":101}'
    assert files["checkpoint.json"] == "{}\n"
    assert 'href="attestation-101-2.json"' in files["index.html"]


# --- the figures gathered from entries ---------------------------------------------------------------


def test_series_from_entries() -> None:
    march, april = dt.date(2026, 3, 2), dt.date(2026, 4, 1)
    entries = [
        entry(1, march, ("cold", "vault", 100), ("acme", "counterparty", -100)),
        entry(2, march, ("acme", "counterparty", 5), ("fees", "expense", -5)),  # no vault: skipped
        entry(3, march, ("cold", "vault", -30), ("hot", "vault", 29), ("network-fees", "expense", 1)),
        entry(4, april, ("hot", "vault", -9), ("acme", "counterparty", 9)),
    ]
    series = reserve_series(entries)
    assert [(p.seq, p.total, p.per_vault) for p in series] == [
        (1, 100, (("cold", 100),)),
        (3, 99, (("cold", 70), ("hot", 29))),
        (4, 90, (("cold", 70), ("hot", 20))),
    ]
    assert month_bounds(entries) == (
        (dt.date(2026, 3, 1), dt.date(2026, 3, 31)),
        (dt.date(2026, 4, 1), dt.date(2026, 4, 30)),
    )


def test_statements_are_the_period_statements_of_each_month() -> None:
    dates = [dt.date(2026, 1, 31), dt.date(2026, 2, 1), dt.date(2026, 2, 28), dt.date(2028, 2, 29)]
    entries = [
        entry(1, dates[0], ("cold", "vault", 100), ("acme", "counterparty", -100)),
        entry(2, dates[1], ("cold", "vault", -30), ("hot", "vault", 29), ("network-fees", "expense", 1)),
        entry(3, dates[2], ("acme", "counterparty", 5), ("fees", "expense", -5)),
        entry(4, dates[3], ("hot", "vault", -9), ("acme", "counterparty", 9)),
    ]
    tables = monthly_statements(entries, ("cold", "hot"))
    assert [t.title for t in tables] == ["February 2028", "February 2026", "January 2026"]  # newest first
    assert "--from 2028-02-01 --to 2028-02-29:" in tables[0].note
    for table, (first, last) in zip(tables, reversed(month_bounds(entries)), strict=True):
        rows = summary_rows(
            build_statement(entries, Bound(date=first), Bound(date=last), vaults=("cold", "hot"))
        )
        assert [(c[1], c[2], c[3]) for c in table.rows] == [(r.item, r.account, Sat(r.amount)) for r in rows]
        sections = [c[0] for c in table.rows]
        assert [x for x in sections if x] == list(dict.fromkeys(r.section for r in rows))  # each named once
    closing = tables[0].rows[-1]
    assert closing[:2] == ("", "closing") and closing[3] == Sat(90)
    assert monthly_statements([]) == ()


ATTESTATION_DOC = {
    "format": "reserve-ledger-attestation/v1",
    "network": "regtest",
    "height": 101,
    "block_hash": "ab" * 32,
    "vaults": [
        {"name": "cold", "outputs": [{}, {}], "chain_amount": 150_000_000, "ledger_amount": 150_000_000,
         "difference": 0, "control": {"proof": "..."}},
        {"name": EVIL, "outputs": [], "chain_amount": 1, "ledger_amount": 2, "difference": -1,
         "control": None},
    ],
    "totals": {"chain": 150_000_001, "ledger": 150_000_002, "difference": -1},
    "ledger": {"checkpoint": {"tree_size": 7, "root": "ee" * 32}},
    "signature": {"key_id": "0123456789abcdef", "signature": "00"},
}  # fmt: skip


def test_an_attestation_document_is_shown_by_its_figures() -> None:
    text = json.dumps(ATTESTATION_DOC)
    view = attestation_view(3, 101, "ab" * 32, "cd" * 32, text, "2026-03-15 11:00:00 UTC", json.loads(text))
    assert view.totals == (
        ("on chain at the block", 150_000_001),
        ("in the books", 150_000_002),
        ("difference", -1),
    )
    assert [(v.name, v.outputs, v.chain, v.ledger, v.difference, v.control) for v in view.vaults] == [
        ("cold", 2, 150_000_000, 150_000_000, 0, True),
        (EVIL, 0, 1, 2, -1, False),
    ]
    assert (view.network, view.key_id, view.checkpoint) == ("regtest", "0123456789abcdef", (7, "ee" * 32))
    page = render_page(site(attestation=view))
    assert referencing_tags(page) == [] and "<script" not in page
    assert 'data-attested-vault="cold"' in page and 'data-sat="-1">-0.00000001<' in page
    assert "python3 -m ledger.attest.verify_doc attestation-101-3.json --pubkey" in page
    assert render_site(site(attestation=view))["attestation-101-3.json"] == text


def test_a_document_of_another_shape_shows_what_it_has() -> None:
    for doc in ([1], {"totals": [1], "vaults": {"a": 1}, "ledger": 3}, {"vaults": [{"name": 5}, 3]}):
        view = attestation_view(1, 5, "ab" * 32, "cd" * 32, json.dumps(doc), "now", doc)
        assert (view.totals, view.vaults, view.checkpoint, view.network) == ((), (), None, "")
        assert 'id="attestation-height">5<' in render_page(site(attestation=view))
