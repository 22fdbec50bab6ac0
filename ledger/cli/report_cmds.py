"""``reserve report statement`` and ``reserve export entries``.

Thin shell: parse the arguments, read in one short read-only transaction
(:func:`ledger.report.statement.read_statement`, or the stored entries for an export), render: a rich
table for people, ``--json`` (``reserve-ledger-statement/v1``) or ``--csv`` for programs. The three
statement renderings come from the same :class:`~ledger.report.statement.Statement` and its
:func:`~ledger.report.statement.summary_rows`, so they show the same figures.
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.table import Table
from rich.text import Text

from custody.amount import format_btc
from ledger.cli import site_cmds
from ledger.cli.app import App, pass_app
from ledger.cli.app import escape_controls as printable
from ledger.errors import InvalidInput

if TYPE_CHECKING:
    from ledger.report.statement import Bound, Statement


class BoundParam(click.ParamType[Any, Any]):
    """A date (YYYY-MM-DD) or a block height."""

    name = "DATE|HEIGHT"

    def __init__(self, what: str) -> None:
        self.what = what

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Bound:
        from ledger.report.statement import Bound

        if isinstance(value, Bound):
            return value
        return Bound.parse(str(value), self.what)


@click.group("report")
def report() -> None:
    """Period statements of the reserve (and the transparency site)."""


for _command in site_cmds.COMMANDS:  # `reserve report site OUT/`: the static transparency site
    report.add_command(_command)


@report.command("statement")
@click.option(
    "--from", "start", type=BoundParam("--from"), required=True, help="First day or block (inclusive)."
)
@click.option("--to", "end", type=BoundParam("--to"), required=True, help="Last day or block (inclusive).")
@click.option("--json", "as_json", is_flag=True, help="Print the reserve-ledger-statement/v1 JSON document.")
@click.option("--csv", "as_csv", is_flag=True, help="Print the summary as CSV.")
@pass_app
def statement_cmd(app: App, start: Bound, end: Bound, as_json: bool, as_csv: bool) -> int:
    """The reserve's statement for a period, per vault and in total.

    Each bound is a date (YYYY-MM-DD) or a block height; both are inclusive. Chain entries go by
    their block height against a height bound, entries without a block (manual, reversals) by
    their date against a date bound (docs/statement.md says the rest). Shows opening balance,
    additions by nature and counterparty, dispositions by counterparty, network fees, internal
    transfers (apart, never additions in total) and closing balance, each with its entry numbers,
    and the signed checkpoint that covers the entries counted.
    """
    from ledger.cli.journal_cmds import journal_session, verifying_key
    from ledger.report.statement import csv_rows, read_statement, statement_json

    if as_json and as_csv:
        raise InvalidInput("--json and --csv each print the statement; give one of them")
    with journal_session(app, read_only=True) as s:
        st, check = read_statement(s, start, end, verifying_key(app, None))
    if as_json:
        app.print_json(statement_json(st))
    elif as_csv:
        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerows(csv_rows(st))
    else:
        _print_statement(app, st)
        if check.head is not None and not check.findings:
            click.echo(
                f"verified: every entry read matches its leaf hash and the tree head of size "
                f"{check.head.tree_size} signed by key {check.head.key_id}"
            )
    if check.findings:
        click.echo(
            f"NOT VERIFIED: {len(check.findings)} problem(s) in the entries this statement read:", err=True
        )
        for finding in check.findings:
            click.echo(f"  - {printable(finding)}", err=True)
        return 1  # findings
    return 0


def _entries_text(entries: tuple[int, ...]) -> str:
    if len(entries) > 12:
        return " ".join(f"#{s}" for s in entries[:12]) + f" … (+{len(entries) - 12}, see --json)"
    return " ".join(f"#{s}" for s in entries)


def _print_statement(app: App, st: Statement) -> None:
    from ledger.report.statement import summary_rows

    def say(text: str) -> None:
        app.console.print(Text(text), soft_wrap=True)

    title = f"reserve statement {st.start} .. {st.end} (both inclusive)"
    table = Table(title=title)
    for col in ("section", "item", "account", "amount (BTC)", "entries"):
        table.add_column(col, justify="right" if col == "amount (BTC)" else "left")
    section = None
    for r in summary_rows(st):
        shown = r.section if r.section != section else ""
        if r.section != section and section is not None:
            table.add_section()
        section = r.section
        table.add_row(
            Text(printable(shown)),
            r.item,
            Text(printable(r.account)),
            format_btc(r.amount),
            _entries_text(r.entries),
        )
    app.console.print(table)
    if st.transfers:
        moves = Table(title="internal transfers between the reserve's vaults (not additions in total)")
        for col in ("entry", "from vault", "to vault", "amount (BTC)", "txid"):
            moves.add_column(col, justify="right" if col == "amount (BTC)" else "left")
        for t in st.transfers:
            entry = f"#{t.seq}" + (f" (reverses #{t.reverses})" if t.reverses else "")
            moves.add_row(
                entry,
                Text(printable(t.source)),
                Text(printable(t.target)),
                format_btc(t.amount),
                t.txid or "",
            )
        app.console.print(moves)
    for seq, original in st.reversals:
        say(f"entry #{seq} reverses entry #{original}: its lines are #{original}'s, negated")
    say(f"entries in the period: {len(st.entries)}; entries counted: 1..{st.last_entry}")
    cp = st.checkpoint
    if cp is None:
        say(f"no signed checkpoint covers entry {st.last_entry} yet: run `reserve ledger checkpoint`")
    else:
        say(f"covered by signed checkpoint: tree size {cp.tree_size}, root {cp.root.hex()}, key {cp.key_id}")


@click.group("export")
def export() -> None:
    """Every entry of the journal for accountants and auditors."""


@export.command("entries")
@click.option("--csv", "as_csv", is_flag=True, help="CSV: one row per posting with its entry's fields.")
@click.option(
    "--jsonl", "as_jsonl", is_flag=True, help="JSON Lines: one entry a line, with its canonical bytes."
)
@click.option(
    "--out",
    "out_path",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="Write to FILE (whole or not at all) instead of standard output.",
)
@pass_app
def export_entries(app: App, as_csv: bool, as_jsonl: bool, out_path: Path | None) -> None:
    """Every entry with its postings, amounts in integer satoshis (and exact BTC).

    The JSONL carries each entry's canonical bytes (hex) and leaf hash: SHA-256 of 0x00 and the
    bytes is the leaf hash, and the leaf hashes fold into the root of `reserve ledger checkpoint`
    (RFC 6962). docs/statement.md describes both formats.
    """
    from ledger.cli.journal_cmds import journal_session
    from ledger.files import check_target, open_atomic
    from ledger.journal.book import iter_stored
    from ledger.report.export import write_csv, write_jsonl

    if as_csv == as_jsonl:
        raise InvalidInput("give one format: --csv or --jsonl")
    write = write_csv if as_csv else write_jsonl
    if out_path is None:
        with journal_session(app, read_only=True) as s:
            write(iter_stored(s), sys.stdout)
        return
    check_target(out_path)
    with journal_session(app, read_only=True) as s, open_atomic(out_path, newline="") as f:
        count = write(iter_stored(s), f)
    click.echo(f"wrote {count} entries to {out_path}", err=True)


COMMANDS: tuple[click.Command, ...] = (report, export)
