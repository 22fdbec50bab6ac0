"""``reserve init``, ``account``, ``record``, ``reverse``, ``balance`` and ``ledger ...``.

Thin shell: parse arguments, call one service function inside ``app.session()``, render a rich
table for people or JSON (``--json``) for programs. Amounts are exact BTC strings for people and
integer satoshis in JSON. Stored text (memos, names, refs) reaches the terminal only escaped
(:func:`~ledger.cli.app.escape_controls`) and as plain :class:`~rich.text.Text`, never as markup,
so a memo can never send control sequences to it; integer arguments are bounded to what the
database holds (:class:`DbInt`), so a huge number is one clear error.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.table import Table
from rich.text import Text

from custody.amount import format_btc, parse_btc
from ledger.cli.app import App, json_option, pass_app
from ledger.cli.app import escape_controls as printable  # shown stored text
from ledger.errors import InvalidInput, NotFound, NotInitialised, WriteFailed
from ledger.journal.checkpoint import (
    Checkpoint,
    create_signing_key,
    load_signing_key,
    parse_exported,
    public_key_pem,
)
from ledger.journal.entry import ACCOUNT_TYPES, ENTRY_KINDS, Entry, EntryDraft, Posting
from ledger.settings import normalise_db_url
from ledger.verify_proof import ProofError, key_id

if TYPE_CHECKING:  # each command imports the services it runs: `reserve --help` loads none
    from collections.abc import Sequence

    from sqlalchemy.orm import Session

    from ledger.chain.audit_report import PastAudit
    from ledger.journal.verify import VerifyReport

DB_INT_MAX = 2**63 - 1  # BIGINT: the largest entry number or tree size the database can hold


def cell(text: str | None) -> Text:
    """Stored text for a rich table: control characters escaped, never read as rich markup."""
    return Text(printable(text or ""))


class DbInt(click.ParamType[int, Any]):
    """A whole number from ``low`` to 2^63-1 (BIGINT); anything else is one clear error, exit 2."""

    name = "integer"

    def __init__(self, what: str, low: int) -> None:
        self.what = what
        self.low = low

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        else:
            text = str(value).strip()
            if not re.fullmatch(r"[+-]?[0-9]{1,30}", text):
                shown = text if len(text) <= 30 else f"{text[:20]}... ({len(text)} characters)"
                raise InvalidInput(
                    f"{self.what} {printable(shown)!r} is not a number from {self.low} to {DB_INT_MAX}"
                )
            number = int(text)
        if not self.low <= number <= DB_INT_MAX:
            raise InvalidInput(
                f"{self.what} {number} is out of range: give a number from {self.low} to {DB_INT_MAX}"
            )
        return number


ENTRY_NUMBER = DbInt("entry number", 1)
TREE_SIZE = DbInt("tree size", 0)


@contextmanager
def journal_session(app: App, *, read_only: bool = False) -> Iterator[Session]:
    """``app.session()`` (or ``app.read_session()``), turning "no such table" into a hint to run
    ``reserve init``."""
    from sqlalchemy.exc import OperationalError, ProgrammingError

    try:
        with app.read_session() if read_only else app.session() as s:
            yield s
    except (OperationalError, ProgrammingError) as e:
        text = str(e.orig).lower()
        if "no such table" in text or "does not exist" in text:
            raise NotInitialised(
                f"the database {_shown_url(app)} has no ledger tables; run `reserve init` first"
            ) from e
        raise


def _shown_url(app: App) -> str:
    from sqlalchemy import make_url

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
    table = Table(title=cell(f"entry {entry.seq}: {entry.kind} on {entry.date} — {entry.memo}"))
    table.add_column("account")
    table.add_column("type")
    table.add_column("amount (BTC)", justify="right")
    for p in entry.postings:
        table.add_row(cell(p.account), cell(p.account_type), format_btc(p.amount))
    app.console.print(table)
    click.echo(f"leaf hash {entry.leaf_hash.hex()}")


def parse_posting(text: str) -> Posting:
    account, sep, amount = text.rpartition("=")
    if not sep or not account:
        raise InvalidInput(
            f"posting {printable(text)!r} must be ACCOUNT=AMOUNT, e.g. exchange-a=1.5 or owner=-150000000sat"
        )
    if len(amount) > 40:  # 21,000,000 BTC is 19 characters at most; spare the big-int parser
        raise InvalidInput(
            f"posting amount for {printable(account.strip())!r} has {len(amount)} characters; "
            "an amount is at most 21,000,000 BTC with 8 decimals"
        )
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
    from ledger.store.migrate import upgrade

    if db is not None:
        settings = dataclasses.replace(app.settings, db_url=normalise_db_url(db, "--db"))
        app = App(settings=settings, console=app.console)
    upgrade(app.engine)
    click.echo(f"database:    {_shown_url(app)} (migrated to the latest revision)")
    path = app.settings.signing_key_path
    if path.exists():
        key = load_signing_key(path)
        click.echo(f"signing key: {path} (kept, key id {key_id(public_key_pem(key))})")
    else:
        key = create_signing_key(path)
        click.echo(f"signing key: {path} (created, mode 0600, key id {key_id(public_key_pem(key))})")
    from ledger.journal.proofs import seal_existing

    with journal_session(app) as s:
        head = seal_existing(s, key)
    if head is not None and head.tree_size:
        click.echo(f"tree head:   entries 1..{head.tree_size}, written before tree heads, signed now")
    click.echo(
        "publish the public key for auditors with `reserve ledger pubkey`, and checkpoints with "
        "`reserve ledger checkpoint --export FILE`"
    )


@click.group("account")
def account() -> None:
    """Accounts of the books."""


@account.command("add")
@click.argument("name")
@click.option("--type", "account_type", required=True, type=click.Choice(ACCOUNT_TYPES))
@pass_app
def account_add(app: App, name: str, account_type: str) -> None:
    """Open account NAME of the given type."""
    from ledger.journal.accounts import add_account

    with journal_session(app) as s:
        acc = add_account(s, name, account_type)
    click.echo(f"account {acc.name} ({acc.type}) added")


@account.command("list")
@json_option
@pass_app
def account_list(app: App, as_json: bool) -> None:
    """List the accounts."""
    from ledger.journal.accounts import list_accounts

    with journal_session(app) as s:
        accounts = list_accounts(s)
    if as_json:
        app.print_json([{"name": a.name, "type": a.type} for a in accounts])
        return
    table = Table(title="accounts")
    table.add_column("name")
    table.add_column("type")
    for a in accounts:
        table.add_row(cell(a.name), cell(a.type))
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
    """Record a balanced entry: --kind, --memo and two or more --posting ACCOUNT=AMOUNT.

    Manual entries move only non-vault accounts (custodian, counterparty, income, expense,
    equity), e.g. `reserve record --kind adjustment --memo "fee refund owed" --posting
    exchange-a=0.5 --posting owner=-50000000sat`. Vault balances, the reserve, move only through
    transactions verified on chain: the subcommands below (deposit, withdrawal, transfer, mining;
    each with --txid) or `reserve sync`. To correct a vault entry, `reserve reverse SEQ`.
    """
    if ctx.invoked_subcommand is not None:
        return
    from ledger.journal.book import append

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
@click.argument("seq", type=ENTRY_NUMBER)
@click.option("--memo", required=True, help="Why the entry is reversed.")
@click.option("--ref", help="Idempotency key.")
@click.option("--date", "date_text", metavar="YYYY-MM-DD", help="Booking date [today, UTC].")
@json_option
@pass_app
def reverse_cmd(app: App, seq: int, memo: str, ref: str | None, date_text: str | None, as_json: bool) -> None:
    """Record the exact opposite of entry SEQ (once per entry; a reversal is not reversible)."""
    from ledger.journal.book import reverse

    with journal_session(app) as s:
        entry = reverse(s, seq, memo, ref=ref, date=parse_date(date_text))
    show_entry(app, entry, as_json)


@click.command("balance")
@click.argument("account_name", metavar="[ACCOUNT]", required=False)
@click.option(
    "--as-of", type=DbInt("--as-of entry number", 0), metavar="SEQ", help="Count entries 1..SEQ only."
)
@click.option(
    "--pubkey",
    "pubkey_file",
    type=click.File("rb"),
    help="Verify with this public key PEM instead of the signing key's public half.",
)
@json_option
@pass_app
def balance_cmd(
    app: App, account_name: str | None, as_of: int | None, pubkey_file: Any, as_json: bool
) -> int:
    """Balances per account and the reserve (all vault accounts), verified: taken from the latest
    tree head signed by the ledger key, plus the entries after it, each checked against its leaf
    hash. Anything that does not verify is named and not counted; exit 1."""
    from ledger.journal.balances import verified_balance

    with journal_session(app, read_only=True) as s:  # the database's errors first, then the key's
        v = verified_balance(s, verifying_key(app, pubkey_file), account_name, as_of)
    b = v.balances
    if as_json:
        app.print_json(
            {
                "as_of": b.as_of,
                "reserve_sat": b.reserve,
                "accounts": [{"name": a.name, "type": a.type, "balance_sat": a.amount} for a in b.accounts],
                "verified_by": None
                if v.head is None
                else {"tree_size": v.head.tree_size, "key_id": v.head.key_id, "timestamp": v.head.timestamp},
                "findings": list(v.findings),
            }
        )
        return 0 if v.ok else 1
    table = Table(title=f"balances after entry {b.as_of}")
    table.add_column("account")
    table.add_column("type")
    table.add_column("balance (BTC)", justify="right")
    for a in b.accounts:
        table.add_row(cell(a.name), cell(a.type), format_btc(a.amount))
    app.console.print(table)
    click.echo(f"reserve (all vault accounts): {format_btc(b.reserve)} BTC")
    if v.head is not None:
        when = dt.datetime.fromtimestamp(v.head.timestamp, dt.UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        click.echo(
            f"verified up to entry {b.as_of}: tree head of size {v.head.tree_size} signed by key "
            f"{v.head.key_id} at {when}"
        )
    if not v.ok:
        click.echo(f"NOT VERIFIED: {len(v.findings)} problem(s); the figures above leave them out", err=True)
        for finding in v.findings:
            click.echo(f"  - {printable(finding)}", err=True)
    return 0 if v.ok else 1


def verifying_key(app: App, pubkey_file: Any) -> bytes:
    """The public key to verify with: ``--pubkey FILE``, or the signing key file's public half."""
    if pubkey_file is None:
        return public_key_pem(load_signing_key(app.settings.signing_key_path))
    pem: bytes = pubkey_file.read()
    try:
        key_id(pem)  # a bad PEM is bad input, before anything is read
    except ProofError as e:
        raise InvalidInput(f"--pubkey {pubkey_file.name}: {e}") from e
    return pem


@click.group("ledger")
def ledger() -> None:
    """The journal's log, checkpoints, proofs and verification."""


@ledger.command("log")
@click.option("--limit", type=DbInt("--limit", 1), default=50, show_default=True, help="Last N entries.")
@json_option
@pass_app
def ledger_log(app: App, limit: int, as_json: bool) -> None:
    """The last entries, oldest first."""
    from ledger.journal.book import iter_entries, last_seq

    with journal_session(app, read_only=True) as s:
        start = max(1, last_seq(s) - limit + 1)
        entries = list(iter_entries(s, start=start))
    if as_json:
        app.print_json([entry_to_json(e) for e in entries])
        return
    table = Table(title="journal")
    for col in ("seq", "date", "kind", "memo", "postings (BTC)", "ref"):
        table.add_column(col)
    for e in entries:
        legs = "\n".join(f"{printable(p.account)} {format_btc(p.amount)}" for p in e.postings)
        kind = e.kind if e.reverses_seq is None else f"reversal of {e.reverses_seq}"
        table.add_row(str(e.seq), e.date.isoformat(), kind, cell(e.memo), Text(legs), cell(e.ref))
    app.console.print(table)


@ledger.command("checkpoint")
@click.option(
    "--export",
    "export_path",
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="Also write the signed checkpoint with the public key to FILE, for publishing.",
)
@pass_app
def ledger_checkpoint(app: App, export_path: Path | None) -> None:
    """Sign and store a checkpoint of the journal as it is now; prints it as JSON.

    Refuses when the key file holds another key than the one that signed the stored checkpoints
    (see `reserve ledger rotate-key`). Publish exported checkpoints where the database's
    operator cannot change them; `reserve ledger verify --checkpoint FILE` checks against one.
    The export is written (whole, or not at all) before the checkpoint is kept: when it cannot
    be written, exit 2 and no checkpoint is stored.
    """
    from ledger.files import check_target
    from ledger.journal.proofs import make_checkpoint

    if export_path is not None:
        check_target(export_path)
    key = load_signing_key(app.settings.signing_key_path)
    with journal_session(app) as s:
        cp = make_checkpoint(s, key)
        if export_path is not None:
            _export(export_path, json.dumps(cp.to_export(public_key_pem(key)), indent=2, sort_keys=True))
    app.print_json(cp.to_json())
    if export_path is not None:
        click.echo(
            f"exported to {export_path}: publish it, then `reserve ledger verify --checkpoint {export_path}`"
        )


def _export(path: Path, text: str) -> None:
    """Write the exported checkpoint inside the transaction that keeps it (a failure rolls it back)."""
    from ledger.files import write_text

    try:
        write_text(path, text + "\n")
    except WriteFailed as e:
        e.add_note("no checkpoint was kept; give a FILE that can be written")
        raise


@ledger.command("prove")
@click.argument("seq", type=ENTRY_NUMBER)
@pass_app
def ledger_prove(app: App, seq: int) -> None:
    """Inclusion proof of entry SEQ against the latest checkpoint (JSON for verify_proof.py)."""
    from ledger.journal.proofs import inclusion_document

    with journal_session(app, read_only=True) as s:
        doc = inclusion_document(s, seq)
    click.echo(json.dumps(doc, indent=2))


@ledger.command("consistency")
@click.argument("old_size", type=TREE_SIZE)
@click.argument("new_size", type=TREE_SIZE)
@pass_app
def ledger_consistency(app: App, old_size: int, new_size: int) -> None:
    """Proof that the checkpoint of OLD_SIZE entries is a prefix of the one of NEW_SIZE."""
    from ledger.journal.proofs import consistency_document

    with journal_session(app, read_only=True) as s:
        doc = consistency_document(s, old_size, new_size)
    click.echo(json.dumps(doc, indent=2))


def read_exported(path: Path) -> tuple[Checkpoint, bytes]:
    """An exported checkpoint file as (checkpoint, public key PEM); bad files are bad input."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise InvalidInput(f"cannot read checkpoint file {path}: {e.strerror}") from e
    from ledger.verify_proof import ProofError, strict_json_loads

    try:
        doc = strict_json_loads(data)
    except ProofError as e:
        raise InvalidInput(f"checkpoint file {path}: {e}") from e
    try:
        return parse_exported(doc)
    except InvalidInput as e:
        raise InvalidInput(f"checkpoint file {path}: {e}") from e


@ledger.command("verify")
@click.option(
    "--pubkey",
    "pubkey_file",
    type=click.File("rb"),
    help="Verify with this public key PEM instead of the signing key's public half.",
)
@click.option(
    "--checkpoint",
    "checkpoint_paths",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="Also check against this exported checkpoint (`ledger checkpoint --export`); repeat.",
)
@click.option(
    "--node",
    "with_node",
    is_flag=True,
    help="Also ask the node (--rpc-url) for the block each stored audit says it saw.",
)
@json_option
@pass_app
def ledger_verify(
    app: App, pubkey_file: Any, checkpoint_paths: tuple[Path, ...], with_node: bool, as_json: bool
) -> int:
    """Recheck every entry, checkpoint and signing key; exit 1 naming the first bad entry if anything
    is off.

    Checkpoints by any key linked to the verifying key by key-rotation records verify. With
    --checkpoint FILE, a history rewritten or cut after that exported checkpoint is found even
    when every checkpoint in the database was deleted. With --node, an audit record naming a
    block the node does not know (or at another height) is a finding too.
    """
    from ledger.chain.audit_history import past_audits
    from ledger.journal.keychain import key_findings, trusted_public_keys
    from ledger.journal.verify import verify_ledger

    pem = verifying_key(app, pubkey_file)
    exported = [read_exported(path) for path in checkpoint_paths]
    with journal_session(app, read_only=True) as s:
        keys = trusted_public_keys(s, pem)
        trusted = {key_id(k) for k in keys}
        report = verify_ledger(s, keys, extra_checkpoints=[cp for cp, _ in exported])
        extra = key_findings(s, pem, from_key_file=pubkey_file is None)
        audited = past_audits(s) if with_node else ()
    if with_node:  # the node is asked with no transaction open
        extra += _audits_off_chain(app, audited)
    for path, (cp, _) in zip(checkpoint_paths, exported, strict=True):
        if cp.key_id not in trusted:
            extra.append(
                f"key mismatch: exported checkpoint {path} (tree size {cp.tree_size}) was signed by "
                f"key {cp.key_id}, which is neither key {key_id(pem)} nor a key linked to it by a "
                "key-rotation record: the signing key was replaced, or the file is of another ledger"
            )
    if extra:
        report = dataclasses.replace(report, ok=False, findings=(*report.findings, *extra))
    if as_json:
        app.print_json(report.to_json())
    elif report.ok:
        click.echo(_verified_line(report, len(exported)))
    else:
        first = f" (first bad entry: {report.first_bad_seq})" if report.first_bad_seq else ""
        click.echo(f"FAIL: {len(report.findings)} problem(s){first}", err=True)
        for finding in report.findings:
            click.echo(f"  - {printable(finding)}", err=True)
    return 0 if report.ok else 1


def _audits_off_chain(app: App, audited: Sequence[PastAudit]) -> list[str]:
    """Each stored audit whose block the node does not know, or knows at another height."""
    from custody.chain import block_places
    from ledger.chain.audit_history import judge_past_audits

    rpc = app.rpc()  # no node configured: said so, even with no audit to look up
    if not audited:
        return []
    places = block_places(rpc, [a.best_block for a in audited])
    return [text for text, _seq in judge_past_audits(audited, places)]


def _verified_line(report: VerifyReport, exported: int) -> str:
    line = f"OK: {report.entries} entries, root {report.root.hex()}, "
    if report.checkpoints:
        line += f"{report.checkpoints} checkpoint(s) verified"
    elif report.entries == 0:
        line += "no checkpoints yet (the journal is empty)"
    else:
        line += (
            "but no checkpoint is stored: none was signed yet, or all were deleted; only a checkpoint "
            "kept outside the database (--checkpoint FILE) can tell"
        )
    if exported:
        line += f"; consistent with {exported} exported checkpoint(s)"
    return line


@ledger.command("pubkey")
@pass_app
def ledger_pubkey(app: App) -> None:
    """Print the current checkpoint public key (PEM) for auditors.

    After `reserve ledger rotate-key`, auditors check the handover with the key they already
    hold: `reserve ledger rotation > rotation.json`, then `python3 verify_proof.py rotation.json
    --pubkey OLD.pem`, which names the new key id; this command prints that new key.
    """
    click.echo(public_key_pem(load_signing_key(app.settings.signing_key_path)).decode(), nl=False)


@ledger.command("rotate-key")
@click.option(
    "--new-key",
    "new_key_path",
    required=True,
    type=click.Path(dir_okay=False, path_type=Path),
    metavar="FILE",
    help="The new Ed25519 key file; created (mode 0600) if it does not exist.",
)
@json_option
@pass_app
def ledger_rotate_key(app: App, new_key_path: Path, as_json: bool) -> None:
    """Hand the ledger over to a new signing key, signed by the current one.

    The current key (--signing-key) signs a key-rotated record naming the new key and the tree it
    hands over; the new key then signs a checkpoint covering it. Afterwards only the new key
    signs: point --signing-key or RESERVE_SIGNING_KEY at FILE (or move FILE into place).
    """
    from ledger.journal.keychain import check_signing_key
    from ledger.journal.proofs import rotate_key

    old_path = app.settings.signing_key_path
    if new_key_path.absolute() == old_path.absolute():
        raise InvalidInput(f"--new-key {new_key_path} is the current key file; give a new file name")
    old = load_signing_key(old_path)
    with journal_session(app, read_only=True) as s:
        check_signing_key(s, public_key_pem(old))  # refuse before creating a key file
    created = not new_key_path.exists()
    new = create_signing_key(new_key_path) if created else load_signing_key(new_key_path)
    with journal_session(app) as s:
        entry, cp = rotate_key(s, old, new)
    old_id, new_id = key_id(public_key_pem(old)), key_id(public_key_pem(new))
    if as_json:
        app.print_json(
            {"record_seq": entry.seq, "old_key_id": old_id, "new_key_id": new_id, "checkpoint": cp.to_json()}
        )
        return
    click.echo(f"new key {new_key_path} ({'created, mode 0600' if created else 'existing'}), key id {new_id}")
    click.echo(f"entry {entry.seq}: key {old_id} handed the ledger over to key {new_id} (signed by {old_id})")
    click.echo(f"checkpoint of tree size {cp.tree_size} signed by {new_id}")
    click.echo(
        f"from now on sign with {new_key_path}: set RESERVE_SIGNING_KEY={new_key_path} or --signing-key "
        f"(or move it to {old_path}); key {old_id} signs nothing more. For auditors: "
        "`reserve ledger rotation` (the handover, checked with the old public key) and "
        "`reserve ledger pubkey`"
    )


@ledger.command("rotation")
@click.argument("seq", type=ENTRY_NUMBER, required=False)
@pass_app
def ledger_rotation(app: App, seq: int | None) -> None:
    """Print the key handover of entry SEQ (default: the latest) as a document for verify_proof.py."""
    from ledger.journal.records import RecordKind, records

    with journal_session(app, read_only=True) as s:
        found = records(s, RecordKind.KEY_ROTATED)
    if seq is not None:
        found = [r for r in found if r.seq == seq]
    if not found:
        raise NotFound(
            "no key rotation recorded"
            + (f" at entry {seq}" if seq is not None else "")
            + "; `reserve ledger rotate-key --new-key FILE` hands the ledger over to a new key"
        )
    click.echo(json.dumps(found[-1].body, indent=2, sort_keys=True))


COMMANDS: tuple[click.Command, ...] = (init, account, record, reverse_cmd, balance_cmd, ledger)
