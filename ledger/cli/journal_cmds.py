"""``reserve init``, ``account``, ``record``, ``reverse``, ``balance`` and ``ledger ...``.

Thin shell: parse arguments, call one service function inside ``app.session()``, render a rich
table for people or JSON (``--json``) for programs. Amounts are exact BTC strings for people and
integer satoshis in JSON.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import click
from rich.table import Table
from sqlalchemy import make_url
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.orm import Session

from custody.amount import format_btc, parse_btc
from ledger.accounts import add_account, list_accounts
from ledger.balances import balance
from ledger.checkpoint import create_signing_key, load_signing_key, public_key_pem
from ledger.cli.app import App, json_option, pass_app
from ledger.entry import ACCOUNT_TYPES, ENTRY_KINDS, Entry, EntryDraft, Posting
from ledger.errors import InvalidInput, NotInitialised
from ledger.journal import append, iter_entries, last_seq, reverse
from ledger.migrate import upgrade
from ledger.proofs import consistency_document, inclusion_document, make_checkpoint
from ledger.settings import normalise_db_url
from ledger.verify import verify_ledger
from ledger.verify_proof import key_id


@contextmanager
def journal_session(app: App) -> Iterator[Session]:
    """``app.session()``, turning "no such table" into a hint to run ``reserve init``."""
    try:
        with app.session() as s:
            yield s
    except (OperationalError, ProgrammingError) as e:
        text = str(e.orig).lower()
        if "no such table" in text or "does not exist" in text:
            raise NotInitialised(
                f"the database {_shown_url(app)} has no ledger tables; run `reserve init` first"
            ) from e
        raise


def _shown_url(app: App) -> str:
    return make_url(app.settings.db_url).render_as_string(hide_password=True)


def entry_to_json(entry: Entry) -> dict[str, Any]:
    return {
        "seq": entry.seq,
        "kind": entry.kind,
        "date": entry.date.isoformat(),
        "memo": entry.memo,
        "ref": entry.ref,
        "reverses_seq": entry.reverses_seq,
        "txid": entry.txid,
        "outputs": entry.outputs,
        "block_hash": entry.block_hash,
        "block_height": entry.block_height,
        "leaf_hash": entry.leaf_hash.hex(),
        "postings": [
            {"account": p.account, "type": p.account_type, "amount_sat": p.amount} for p in entry.postings
        ],
    }


def show_entry(app: App, entry: Entry, as_json: bool) -> None:
    """Render one recorded entry (shared with other ``record`` subcommands)."""
    if as_json:
        app.print_json(entry_to_json(entry))
        return
    table = Table(title=f"entry {entry.seq}: {entry.kind} on {entry.date} — {entry.memo}")
    table.add_column("account")
    table.add_column("type")
    table.add_column("amount (BTC)", justify="right")
    for p in entry.postings:
        table.add_row(p.account, p.account_type or "", format_btc(p.amount))
    app.console.print(table)
    click.echo(f"leaf hash {entry.leaf_hash.hex()}")


def parse_posting(text: str) -> Posting:
    account, sep, amount = text.rpartition("=")
    if not sep or not account:
        raise InvalidInput(f"posting {text!r} must be ACCOUNT=AMOUNT, e.g. vault:cold=1.5 or fees=-0.0001")
    return Posting(account.strip(), parse_btc(amount, signed=True))


def parse_date(text: str | None) -> dt.date | None:
    if text is None:
        return None
    try:
        return dt.date.fromisoformat(text)
    except ValueError as e:
        raise InvalidInput(f"date {text!r} is not a YYYY-MM-DD date") from e


@click.command("init")
@click.option("--db", metavar="URL", help="Database URL or SQLite file (same as the global --db).")
@pass_app
def init(app: App, db: str | None) -> None:
    """Create or upgrade the database tables and the checkpoint signing key (idempotent)."""
    if db is not None:
        app = App(
            settings=dataclasses.replace(app.settings, db_url=normalise_db_url(db)), console=app.console
        )
    upgrade(app.engine)
    click.echo(f"database:    {_shown_url(app)} (migrated to the latest revision)")
    path = app.settings.signing_key_path
    if path.exists():
        key = load_signing_key(path)
        click.echo(f"signing key: {path} (kept, key id {key_id(public_key_pem(key))})")
    else:
        key = create_signing_key(path)
        click.echo(f"signing key: {path} (created, mode 0600, key id {key_id(public_key_pem(key))})")
    click.echo("publish the public key for auditors with `reserve ledger pubkey`")


@click.group("account")
def account() -> None:
    """Accounts of the books."""


@account.command("add")
@click.argument("name")
@click.option("--type", "account_type", required=True, type=click.Choice(ACCOUNT_TYPES))
@pass_app
def account_add(app: App, name: str, account_type: str) -> None:
    """Open account NAME of the given type."""
    with journal_session(app) as s:
        acc = add_account(s, name, account_type)
    click.echo(f"account {acc.name} ({acc.type}) added")


@account.command("list")
@json_option
@pass_app
def account_list(app: App, as_json: bool) -> None:
    """List the accounts."""
    with journal_session(app) as s:
        accounts = list_accounts(s)
    if as_json:
        app.print_json([{"name": a.name, "type": a.type} for a in accounts])
        return
    table = Table(title="accounts")
    table.add_column("name")
    table.add_column("type")
    for a in accounts:
        table.add_row(a.name, a.type)
    app.console.print(table)


@click.group("record", invoke_without_command=True)
@click.option("--kind", type=click.Choice(ENTRY_KINDS[:-1]), help="What kind of movement.")
@click.option("--memo", help="What happened, in words.")
@click.option("--posting", "postings", multiple=True, metavar="ACCOUNT=AMOUNT", help="BTC; repeat.")
@click.option("--ref", help="Idempotency key: recording again with it returns the first entry.")
@click.option("--txid", help="Bitcoin transaction id this entry is about.")
@click.option("--outputs", help="Output indexes of --txid, e.g. 0,2.")
@click.option("--date", "date_text", metavar="YYYY-MM-DD", help="Booking date [today, UTC].")
@json_option
@click.pass_context
def record(
    ctx: click.Context,
    kind: str | None,
    memo: str | None,
    postings: tuple[str, ...],
    ref: str | None,
    txid: str | None,
    outputs: str | None,
    date_text: str | None,
    as_json: bool,
) -> None:
    """Record a balanced entry: --kind, --memo and two or more --posting ACCOUNT=AMOUNT."""
    if ctx.invoked_subcommand is not None:
        return
    missing = [name for name, value in (("--kind", kind), ("--memo", memo)) if not value]
    if not postings:
        missing.append("--posting")
    if missing:
        raise click.UsageError(f"missing {', '.join(missing)}; see `reserve record --help`")
    assert kind is not None and memo is not None
    draft = EntryDraft(
        kind=kind,
        memo=memo,
        postings=tuple(parse_posting(p) for p in postings),
        date=parse_date(date_text),
        ref=ref,
        txid=txid.lower() if txid else None,
        outputs=outputs,
    )
    app = ctx.find_object(App)
    assert app is not None
    with journal_session(app) as s:
        entry = append(s, draft)
    show_entry(app, entry, as_json)


@click.command("reverse")
@click.argument("seq", type=int)
@click.option("--memo", required=True, help="Why the entry is reversed.")
@click.option("--ref", help="Idempotency key.")
@click.option("--date", "date_text", metavar="YYYY-MM-DD", help="Booking date [today, UTC].")
@json_option
@pass_app
def reverse_cmd(app: App, seq: int, memo: str, ref: str | None, date_text: str | None, as_json: bool) -> None:
    """Record the exact opposite of entry SEQ (once per entry; a reversal is not reversible)."""
    with journal_session(app) as s:
        entry = reverse(s, seq, memo, ref=ref, date=parse_date(date_text))
    show_entry(app, entry, as_json)


@click.command("balance")
@click.argument("account_name", metavar="[ACCOUNT]", required=False)
@click.option("--as-of", type=int, metavar="SEQ", help="Count entries 1..SEQ only.")
@json_option
@pass_app
def balance_cmd(app: App, account_name: str | None, as_of: int | None, as_json: bool) -> None:
    """Balances per account and the reserve (all vault accounts)."""
    with journal_session(app) as s:
        b = balance(s, account_name, as_of)
    if as_json:
        app.print_json(
            {
                "as_of": b.as_of,
                "reserve_sat": b.reserve,
                "accounts": [{"name": a.name, "type": a.type, "balance_sat": a.amount} for a in b.accounts],
            }
        )
        return
    table = Table(title=f"balances after entry {b.as_of}")
    table.add_column("account")
    table.add_column("type")
    table.add_column("balance (BTC)", justify="right")
    for a in b.accounts:
        table.add_row(a.name, a.type, format_btc(a.amount))
    app.console.print(table)
    click.echo(f"reserve (all vault accounts): {format_btc(b.reserve)} BTC")


@click.group("ledger")
def ledger() -> None:
    """The journal's log, checkpoints, proofs and verification."""


@ledger.command("log")
@click.option("--limit", type=click.IntRange(min=1), default=50, show_default=True, help="Last N entries.")
@json_option
@pass_app
def ledger_log(app: App, limit: int, as_json: bool) -> None:
    """The last entries, oldest first."""
    with journal_session(app) as s:
        start = max(1, last_seq(s) - limit + 1)
        entries = list(iter_entries(s, start=start))
    if as_json:
        app.print_json([entry_to_json(e) for e in entries])
        return
    table = Table(title="journal")
    for col in ("seq", "date", "kind", "memo", "postings (BTC)", "ref"):
        table.add_column(col)
    for e in entries:
        legs = "\n".join(f"{p.account} {format_btc(p.amount)}" for p in e.postings)
        kind = e.kind if e.reverses_seq is None else f"reversal of {e.reverses_seq}"
        table.add_row(str(e.seq), e.date.isoformat(), kind, e.memo, legs, e.ref or "")
    app.console.print(table)


@ledger.command("checkpoint")
@pass_app
def ledger_checkpoint(app: App) -> None:
    """Sign and store a checkpoint of the journal as it is now; prints it as JSON."""
    key = load_signing_key(app.settings.signing_key_path)
    with journal_session(app) as s:
        cp = make_checkpoint(s, key)
    app.print_json(cp.to_json())


@ledger.command("prove")
@click.argument("seq", type=int)
@pass_app
def ledger_prove(app: App, seq: int) -> None:
    """Inclusion proof of entry SEQ against the latest checkpoint (JSON for verify_proof.py)."""
    with journal_session(app) as s:
        doc = inclusion_document(s, seq)
    click.echo(json.dumps(doc, indent=2))


@ledger.command("consistency")
@click.argument("old_size", type=int)
@click.argument("new_size", type=int)
@pass_app
def ledger_consistency(app: App, old_size: int, new_size: int) -> None:
    """Proof that the checkpoint of OLD_SIZE entries is a prefix of the one of NEW_SIZE."""
    with journal_session(app) as s:
        doc = consistency_document(s, old_size, new_size)
    click.echo(json.dumps(doc, indent=2))


@ledger.command("verify")
@click.option(
    "--pubkey",
    "pubkey_file",
    type=click.File("rb"),
    help="Verify with this public key PEM instead of the signing key's public half.",
)
@json_option
@pass_app
def ledger_verify(app: App, pubkey_file: Any, as_json: bool) -> int:
    """Recheck every entry and checkpoint; exit 1 naming the first bad entry if anything is off."""
    if pubkey_file is not None:
        pem = pubkey_file.read()
    else:
        pem = public_key_pem(load_signing_key(app.settings.signing_key_path))
    with journal_session(app) as s:
        report = verify_ledger(s, pem)
    if as_json:
        app.print_json(report.to_json())
    elif report.ok:
        click.echo(
            f"OK: {report.entries} entries, root {report.root.hex()}, "
            f"{report.checkpoints} checkpoint(s) verified"
        )
    else:
        first = f" (first bad entry: {report.first_bad_seq})" if report.first_bad_seq else ""
        click.echo(f"FAIL: {len(report.findings)} problem(s){first}", err=True)
        for finding in report.findings:
            click.echo(f"  - {finding}", err=True)
    return 0 if report.ok else 1


@ledger.command("pubkey")
@pass_app
def ledger_pubkey(app: App) -> None:
    """Print the checkpoint public key (PEM) for auditors."""
    click.echo(public_key_pem(load_signing_key(app.settings.signing_key_path)).decode(), nl=False)


COMMANDS: tuple[click.Command, ...] = (init, account, record, reverse_cmd, balance_cmd, ledger)
