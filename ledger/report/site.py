"""The static transparency site, rendered from plain values: HTML and an inline SVG chart.

:func:`render_site` turns a :class:`SiteData` (gathered by :mod:`ledger.report.site_data`) into
the files of the site: ``index.html`` and the documents it links to (the latest attestation and
the latest signed checkpoint, for auditors to download and verify). Nothing here reads a
database, the network or a file.

The page works offline and from a USB stick: one HTML file with its style inline, the chart as
inline SVG drawn by matplotlib with its text as paths (no font file, no web font), no script, no
image, no link to anywhere else. Every stored text (names, holders, reasons, fields of a
document) reaches the page only through :func:`html.escape`. Amounts are integer satoshis until
they are written, each as the exact BTC string (:func:`custody.amount.format_btc`) with its
satoshis in a ``data-sat`` attribute, so a reader (or a test) can compare the page with the
ledger's ``reserve balance --json`` to the satoshi.
"""

from __future__ import annotations

import datetime as dt
import html
import io
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from custody.amount import format_btc

# --- the values --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Address:
    """An address handed out (``reserve vault address``): branch ``receive`` or ``change``."""

    branch: str
    index: int
    address: str


@dataclass(frozen=True, slots=True)
class VaultView:
    """One vault as the site shows it: its policy, holders, descriptor, balance and addresses."""

    name: str
    label: str  # "2-of-3"
    holders: tuple[str, ...]
    descriptor: str  # with its checksum
    network: str
    balance: int  # satoshis, the vault's account in the books
    retired: bool = False
    retired_reason: str | None = None
    addresses: tuple[Address, ...] = ()


@dataclass(frozen=True, slots=True)
class ReservePoint:
    """The reserve after entry ``seq``: in total and per vault (satoshis)."""

    seq: int
    date: dt.date
    total: int
    per_vault: tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class Sat:
    """A table cell holding an amount: written as exact BTC, with its satoshis as data."""

    value: int


Cell = str | int | Sat


@dataclass(frozen=True, slots=True)
class Table:
    """A titled table of a statement: a header row, rows of cells, a note under it."""

    title: str
    header: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]
    note: str = ""

    def __post_init__(self) -> None:
        for row in self.rows:
            if len(row) != len(self.header):
                raise ValueError(f"table {self.title!r}: row {row!r} has not {len(self.header)} cells")


@dataclass(frozen=True, slots=True)
class AttestedVault:
    """One vault of an attestation: what the chain held at the block and what the books said."""

    name: str
    outputs: int  # unspent outputs found at the block
    chain: int  # satoshis
    ledger: int
    difference: int  # chain - ledger
    control: bool  # whether the document carries the vault's proof of control


@dataclass(frozen=True, slots=True)
class AttestationView:
    """The latest attestation (``reserve attest``): where, what it sums up, and its document."""

    number: int
    height: int
    block_hash: str
    sha256: str  # of ``document``, as stored
    document: str  # the document's JSON text, as stored (published as a file beside the page)
    totals: tuple[tuple[str, int], ...]  # (what, satoshis): on chain, in the books, difference
    created_at: str
    network: str = ""
    key_id: str = ""  # of the ledger key that signed the document
    checkpoint: tuple[int, str] | None = None  # (tree size, root) of the ledger checkpoint it carries
    vaults: tuple[AttestedVault, ...] = ()

    @property
    def file_name(self) -> str:
        return f"attestation-{self.height}-{self.number}.json"


@dataclass(frozen=True, slots=True)
class CheckpointView:
    """The latest signed checkpoint of the journal; ``exported`` is its ``ledger checkpoint
    --export`` document (with the public key) when the key is at hand, else ``None``."""

    tree_size: int
    root: str
    timestamp: int
    key_id: str
    signature: str
    exported: str | None = None

    FILE_NAME = "checkpoint.json"


@dataclass(frozen=True, slots=True)
class SiteData:
    """Everything the site shows, gathered at one moment (after entry ``as_of``)."""

    title: str
    network: str
    generated_at: dt.datetime
    as_of: int
    reserve: int
    vaults: tuple[VaultView, ...]
    series: tuple[ReservePoint, ...]
    statements: tuple[Table, ...]
    statement_source: str  # how the statements were made (which command gives the same figures)
    attestation: AttestationView | None = None
    checkpoint: CheckpointView | None = None
    notes: tuple[str, ...] = field(default=())


# --- the chart ---------------------------------------------------------------------------------------

GENERATOR = '<meta name="generator" content="reserve-ledger report site">'
"""In every page written: how ``report site`` knows a directory holds a site it wrote."""
SITE_FILES = re.compile(r"^(index\.html|checkpoint\.json|attestation-[0-9]+-[0-9]+\.json)$")
"""The names of the files a site is made of (``report site`` writes over these only)."""

_SVG_PROLOG = re.compile(r"^.*?(?=<svg\b)", re.DOTALL)
_SVG_COMMENT = re.compile(r"<!--.*?-->", re.DOTALL)
_SVG_NAMESPACES = re.compile(r'\s+xmlns(?::xlink)?="[^"]*"')
_SVG_SIZE = re.compile(r'\s(width|height)="[^"]*"')


def _btc_tick(value: float, _position: int) -> str:
    """A tick of the satoshi axis as BTC text (the tick positions are the plotting library's)."""
    text = format_btc(round(value)).rstrip("0")
    return text[:-1] if text.endswith(".") else text


def _chart_label(name: str) -> str:
    """A legend label shown as written: no mathtext (``$``), no hidden ``_`` label."""
    label = name.replace("$", r"\$")
    return f" {label}" if label.startswith("_") else label


def reserve_chart(series: Sequence[ReservePoint]) -> str:
    """The reserve after each entry, in total and per vault, as an inline ``<svg>`` element.

    Each value holds from its entry to the next one; the last holds on to the right edge.

    Drawn by matplotlib's SVG backend with every text as paths (no font needed to show it), no
    metadata, no comments and no namespace URLs (HTML needs none), the same bytes for the same
    values. The y axis is in satoshis, labelled in BTC.
    """
    try:
        import matplotlib
    except ImportError as e:  # the optional extra `charts`
        from ledger.errors import LedgerError

        raise LedgerError(
            f"the transparency site's chart needs matplotlib, which is not installed ({e}): "
            "pip install 'reserve-ledger[charts]'"
        ) from None
    from matplotlib.backends.backend_svg import FigureCanvasSVG
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    seqs: list[float] = [p.seq for p in series]
    seqs.append(seqs[-1] + 0.6)  # the last values, held until now
    series = [*series, series[-1]]
    vaults = sorted({name for p in series for name, _ in p.per_vault})
    with matplotlib.rc_context(
        {"svg.fonttype": "path", "svg.hashsalt": "reserve-ledger", "font.family": "DejaVu Sans"}
    ):
        figure = Figure(figsize=(9.6, 4.0), layout="constrained")
        FigureCanvasSVG(figure)
        axes = figure.add_subplot()
        for name in vaults:
            values = [dict(p.per_vault).get(name, 0) for p in series]
            axes.step(seqs, values, where="post", linewidth=1.2, label=_chart_label(name))
        axes.step(seqs, [p.total for p in series], where="post", linewidth=2.6, color="#111", label="reserve")
        axes.set_xlabel("journal entry")
        axes.set_ylabel("BTC")
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
        axes.yaxis.set_major_locator(MaxNLocator(nbins=6, steps=[1, 2, 2.5, 5, 10]))
        axes.yaxis.set_major_formatter(FuncFormatter(_btc_tick))
        values = [p.total for p in series] + [n for p in series for _, n in p.per_vault]
        axes.set_ylim(min(*values, 0) * 1.08, max(*values, 1) * 1.08)  # a negative balance shows too
        axes.set_xlim(seqs[0] - 0.2, seqs[-1])
        axes.grid(True, color="#ddd", linewidth=0.6)
        figure.legend(loc="outside right upper", fontsize="small", frameon=False)
        out = io.StringIO()
        figure.savefig(
            out, format="svg", metadata={"Creator": None, "Date": None, "Format": None, "Type": None}
        )
    svg = _SVG_COMMENT.sub("", _SVG_PROLOG.sub("", out.getvalue(), count=1))
    head, sep, body = svg.partition(">")
    head = _SVG_SIZE.sub("", _SVG_NAMESPACES.sub("", head))
    return (
        head + ' role="img" aria-labelledby="chart-title" class="chart"' + sep + '<title id="chart-title">'
        "The reserve after each journal entry, in total and per vault</title>" + body.strip()
    )


# --- the page ----------------------------------------------------------------------------------------

_CSS = """
:root { color-scheme: light; }
body { font-family: system-ui, sans-serif; margin: 0 auto; max-width: 72rem; padding: 1.5rem;
       color: #111; background: #fff; line-height: 1.45; }
h1 { font-size: 1.7rem; margin-bottom: .2rem; }
h2 { border-bottom: 2px solid #111; padding-bottom: .2rem; margin-top: 2.2rem; }
h3 { margin-bottom: .3rem; }
.meta { color: #555; margin-top: 0; }
.total { font-size: 2.2rem; font-weight: 700; margin: .4rem 0; }
table { border-collapse: collapse; margin: .6rem 0 1rem; width: 100%; font-size: .92rem; }
th, td { border-bottom: 1px solid #ddd; padding: .3rem .5rem; text-align: left; vertical-align: top; }
th { background: #f3f3f3; }
td.btc, th.btc { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
code, .mono { font-family: ui-monospace, monospace; font-size: .85rem; overflow-wrap: anywhere; }
pre { background: #f6f6f6; padding: .7rem; overflow-x: auto; }
.chart { width: 100%; height: auto; }
.retired { color: #a00; }
details { margin: .4rem 0 1rem; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: .2rem 1rem; }
dt { font-weight: 600; }
dd { margin: 0; }
"""


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _btc(sat: int, css_id: str | None = None) -> str:
    """An amount: the exact BTC string, its satoshis in ``data-sat``."""
    ident = f' id="{_e(css_id)}"' if css_id else ""
    return f'<span class="amount"{ident} data-sat="{sat}">{format_btc(sat)}</span>'


def _cell(value: Cell) -> str:
    if isinstance(value, Sat):
        return f'<td class="btc" data-sat="{value.value}">{format_btc(value.value)}</td>'
    return f"<td>{_e(value)}</td>"


def _table(table: Table) -> str:
    amounts = [i for i in range(len(table.header)) if table.rows and isinstance(table.rows[0][i], Sat)]
    head = "".join(
        f'<th scope="col"{" class=btc" if i in amounts else ""}>{_e(h)}</th>'
        for i, h in enumerate(table.header)
    )
    body = "\n".join("<tr>" + "".join(_cell(c) for c in row) + "</tr>" for row in table.rows)
    note = f'<p class="meta">{_e(table.note)}</p>' if table.note else ""
    if not table.rows:
        body = f'<tr><td colspan="{len(table.header)}">no movements</td></tr>'
    return (
        f"<h3>{_e(table.title)}</h3>\n<table>\n<thead><tr>{head}</tr></thead>\n"
        f"<tbody>\n{body}\n</tbody>\n</table>{note}"
    )


def _summary(data: SiteData) -> str:
    return f"""<section id="summary">
<p class="total">{_btc(data.reserve, "reserve-total")} BTC</p>
<p>held in {len([v for v in data.vaults if not v.retired])} active vault(s) on {_e(data.network)},
after journal entry <span id="as-of">{data.as_of}</span>.
Figures are exact: 1 BTC = 100,000,000 satoshis.</p>
</section>"""


def _chart_section(data: SiteData) -> str:
    if not data.series:
        return '<section id="history"><h2>The reserve over time</h2><p>No vault has moved yet.</p></section>'
    rows = "\n".join(
        f"<tr><td>{p.seq}</td><td>{p.date.isoformat()}</td>"
        f'<td class="btc" data-sat="{p.total}">{format_btc(p.total)}</td></tr>'
        for p in data.series
    )
    return f"""<section id="history">
<h2>The reserve over time</h2>
<figure>{reserve_chart(data.series)}
<figcaption class="meta">The reserve after each journal entry that moved a vault (BTC).</figcaption></figure>
<details><summary>The same figures as a table</summary>
<table id="history-table">
<thead><tr><th>entry</th><th>date</th><th class="btc">reserve (BTC)</th></tr></thead>
<tbody>
{rows}
</tbody></table></details>
</section>"""


def _vault_section(vault: VaultView) -> str:
    status = f'<p class="retired">retired: {_e(vault.retired_reason or "")}</p>' if vault.retired else ""
    holders = ", ".join(_e(h) for h in vault.holders)
    if vault.addresses:
        rows = "\n".join(
            f"<tr><td>{_e(a.branch)}</td><td>{a.index}</td><td class=mono>{_e(a.address)}</td></tr>"
            for a in vault.addresses
        )
        addresses = (
            f"<details><summary>{len(vault.addresses)} address(es) handed out</summary>\n"
            "<table><thead><tr><th>branch</th><th>index</th><th>address</th></tr></thead>\n"
            f"<tbody>\n{rows}\n</tbody></table></details>"
        )
    else:
        addresses = "<p>No address handed out yet.</p>"
    return f"""<article class="vault" data-vault="{_e(vault.name)}">
<h3>{_e(vault.name)}</h3>{status}
<dl>
<dt>balance</dt><dd>{_btc(vault.balance)} BTC</dd>
<dt>policy</dt><dd>{_e(vault.label)} multisig (P2WSH), {_e(vault.network)}</dd>
<dt>key holders</dt><dd>{holders}</dd>
<dt>descriptor</dt><dd><code>{_e(vault.descriptor)}</code></dd>
</dl>
{addresses}
</article>"""


def _vaults(data: SiteData) -> str:
    rows = "\n".join(
        f'<tr data-vault="{_e(v.name)}"><td>{_e(v.name)}</td><td>{_e(v.label)}</td>'
        f"<td>{'retired' if v.retired else 'active'}</td>"
        f'<td class="btc" data-sat="{v.balance}">{format_btc(v.balance)}</td></tr>'
        for v in data.vaults
    )
    total = (
        f'<tr><th colspan="3">reserve</th>'
        f'<td class="btc" data-sat="{data.reserve}">{format_btc(data.reserve)}</td></tr>'
    )
    details = "\n".join(_vault_section(v) for v in data.vaults)
    return f"""<section id="vaults">
<h2>Holdings per vault</h2>
<table id="vault-table">
<thead><tr><th>vault</th><th>policy</th><th>status</th><th class="btc">balance (BTC)</th></tr></thead>
<tbody>
{rows}
</tbody>
<tfoot>{total}</tfoot></table>
<p>Anyone can derive every address of a vault from its descriptor (e.g. Bitcoin Core's
<code>deriveaddresses</code>) and check on their own node what it holds.</p>
{details}
</section>"""


def _statements(data: SiteData) -> str:
    tables = "\n".join(_table(t) for t in data.statements) or "<p>No movements yet.</p>"
    return f"""<section id="statements">
<h2>Period statements</h2>
<p class="meta">{_e(data.statement_source)}</p>
{tables}
</section>"""


def _attestation(data: SiteData) -> str:
    a = data.attestation
    if a is None:
        return """<section id="attestation">
<h2>Latest attestation</h2>
<p id="no-attestation">No attestation has been issued yet. <code>reserve attest</code> binds the books to
the chain at a block: every unspent output of each vault, with its Merkle proof, and proofs of control
signed by each vault's key holders.</p>
</section>"""
    totals = "\n".join(f"<dt>{_e(what)}</dt><dd>{_btc(sat)} BTC</dd>" for what, sat in a.totals)
    books = (
        f"<dt>books at</dt><dd>checkpoint of tree size {a.checkpoint[0]}, root "
        f'<span class="mono">{_e(a.checkpoint[1])}</span></dd>'
        if a.checkpoint is not None
        else ""
    )
    signed = (
        f'<dt>signed by</dt><dd>ledger key <span class="mono">{_e(a.key_id)}</span></dd>' if a.key_id else ""
    )
    rows = "\n".join(
        f'<tr data-attested-vault="{_e(v.name)}"><td>{_e(v.name)}</td><td>{v.outputs}</td>'
        f'<td class="btc" data-sat="{v.chain}">{format_btc(v.chain)}</td>'
        f'<td class="btc" data-sat="{v.ledger}">{format_btc(v.ledger)}</td>'
        f'<td class="btc" data-sat="{v.difference}">{format_btc(v.difference)}</td>'
        f"<td>{'yes' if v.control else 'no'}</td></tr>"
        for v in a.vaults
    )
    vaults = (
        '<table id="attested-vaults"><thead><tr><th>vault</th><th>unspent outputs</th>'
        '<th class="btc">on chain (BTC)</th><th class="btc">in the books (BTC)</th>'
        '<th class="btc">difference (BTC)</th><th>proof of control</th></tr></thead>\n'
        f"<tbody>\n{rows}\n</tbody></table>"
        if a.vaults
        else ""
    )
    name = _e(a.file_name)
    return f"""<section id="attestation">
<h2>Latest attestation</h2>
<p>The books bound to the chain at one block: every unspent output of each vault with the Merkle
proof of its transaction and the block headers up to that block, the ledger's signed checkpoint and
balances at the same moment, and each vault's proof of control (BIP-322, signed by at least the
vault's threshold of key holders), signed by the ledger's key.</p>
<dl>
<dt>attestation</dt><dd>#{a.number}, issued {_e(a.created_at)}</dd>
<dt>network</dt><dd>{_e(a.network)}</dd>
<dt>block height</dt><dd id="attestation-height">{a.height}</dd>
<dt>block hash</dt><dd class="mono" id="attestation-block">{_e(a.block_hash)}</dd>
{totals}
{books}
{signed}
<dt>document</dt><dd><a href="{name}">{name}</a></dd>
<dt>SHA-256</dt><dd class="mono" id="attestation-sha256">{_e(a.sha256)}</dd>
</dl>
{vaults}
<p>To verify it yourself, offline, download the document and check its hash, then run the
verifier with the ledger's public key (obtained from the reserve's operator, not from this page):
with the verifier's few hash-pinned dependencies from the reserve-ledger repository, or with
reserve-ledger installed, where <code>--node</code> also checks against your own node that the outputs
were unspent at that block and its headers are on your best chain:</p>
<pre>sha256sum {name}    # must print {_e(a.sha256)}
pip install --require-hashes -r docs/auditor-requirements.txt
python3 -m ledger.attest.verify_doc {name} --pubkey ledger-key.pem
reserve attest verify {name} --pubkey ledger-key.pem --node</pre>
</section>"""


def _checkpoint(data: SiteData) -> str:
    c = data.checkpoint
    if c is None:
        return """<section id="checkpoint">
<h2>Latest signed checkpoint</h2>
<p>No checkpoint has been signed yet (<code>reserve ledger checkpoint</code>).</p>
</section>"""
    when = dt.datetime.fromtimestamp(c.timestamp, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    name = CheckpointView.FILE_NAME
    if c.exported is None:
        download = ""
        check = (
            "<p>The operator publishes it with <code>reserve ledger checkpoint --export FILE</code>; "
            "anyone then checks its signature offline with <code>verify_proof.py</code>.</p>"
        )
    else:
        download = f'<dt>document</dt><dd><a href="{name}">{name}</a> (with the public key)</dd>'
        check = f"""<p>Anyone can check its signature offline with the project's standalone verifier
(standard library and <code>cryptography</code> only), given the ledger's public key with key id
<code>{_e(c.key_id)}</code> obtained from the reserve's operator (<code>reserve ledger pubkey</code>),
not from this page:</p>
<pre>python3 verify_proof.py {name} --pubkey ledger-key.pem</pre>
<p>The operator checks the whole journal against it with
<code>reserve ledger verify --checkpoint {name}</code>.</p>"""
    return f"""<section id="checkpoint">
<h2>Latest signed checkpoint</h2>
<p>The journal is an append-only Merkle log (RFC 6962 hashing); the ledger's Ed25519 key signs its
size and root. Every entry up to the tree size can be proven included in it
(<code>reserve ledger prove SEQ</code>, checked with <code>verify_proof.py</code>).</p>
<dl>
<dt>tree size</dt><dd id="checkpoint-size">{c.tree_size}</dd>
<dt>root</dt><dd class="mono" id="checkpoint-root">{_e(c.root)}</dd>
<dt>signed at</dt><dd>{when}</dd>
<dt>key id</dt><dd class="mono">{_e(c.key_id)}</dd>
<dt>signature</dt><dd class="mono">{_e(c.signature)}</dd>
{download}
</dl>
{check}
</section>"""


def render_page(data: SiteData) -> str:
    """``index.html``: the whole site in one self-contained page."""
    generated = data.generated_at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    notes = "".join(f'<p class="meta">{_e(n)}</p>' for n in data.notes)
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta http-equiv="Content-Security-Policy"
 content="default-src 'none'; style-src 'unsafe-inline'; img-src 'self'">
<meta name="referrer" content="no-referrer">
{GENERATOR}
<title>{_e(data.title)}</title>
<style>{_CSS}</style>
</head>
<body>
<header>
<h1>{_e(data.title)}</h1>
<p class="meta">Generated {generated} from the reserve's ledger, after journal entry {data.as_of}.</p>
{notes}
</header>
<main>
{_summary(data)}
{_chart_section(data)}
{_vaults(data)}
{_statements(data)}
{_attestation(data)}
{_checkpoint(data)}
</main>
<footer><p class="meta">A static page written by <code>reserve report site</code>: no scripts, no
external resources. Amounts are exact BTC with 8 decimals.</p></footer>
</body>
</html>
"""


def render_site(data: SiteData) -> dict[str, str]:
    """The site's files by name: ``index.html`` and the documents it links to."""
    files = {"index.html": render_page(data)}
    if data.attestation is not None:
        files[data.attestation.file_name] = data.attestation.document
    if data.checkpoint is not None and data.checkpoint.exported is not None:
        files[CheckpointView.FILE_NAME] = data.checkpoint.exported
    return files
