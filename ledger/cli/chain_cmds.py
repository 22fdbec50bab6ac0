"""Chain-verified recording (``reserve record deposit|withdrawal|transfer|mining``),
``reserve sync`` and ``reserve audit``."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click
from rich.table import Table

from custody.amount import format_btc, parse_btc
from ledger.cli.app import App, json_option, pass_app
from ledger.cli.app import escape_controls as printable
from ledger.errors import TamperDetected
from ledger.journal.entry import Entry

if TYPE_CHECKING:  # each command imports the services it runs: `reserve --help` loads none
    from ledger.chain.audit import AuditReport
    from ledger.chain.recording import Claim
    from ledger.chain.sync import SyncReport

EXIT_FINDINGS = 1


def _show_entry(app: App, entry: Entry, as_json: bool) -> None:
    if as_json:
        app.print_json(
            {
                "seq": entry.seq,
                "kind": entry.kind,
                "txid": entry.txid,
                "block_hash": entry.block_hash,
                "block_height": entry.block_height,
                "outputs": entry.outputs,
                "postings": [{"account": p.account, "amount_sat": p.amount} for p in entry.postings],
            }
        )
        return
    click.echo(f"recorded entry #{entry.seq}: {entry.kind} — {entry.memo}")
    click.echo(f"  txid {entry.txid}, block {entry.block_height} {entry.block_hash}")
    for p in entry.postings:
        click.echo(f"  {p.account:<24} {format_btc(p.amount):>20}")


def _record(app: App, as_json: bool, claim: Claim) -> None:
    from ledger.chain.recording import record_movement

    entry = record_movement(app.read_session, app.session, app.rpc(), claim)
    _show_entry(app, entry, as_json)


_txid = click.option("--txid", required=True, help="The transaction, verified against the chain.")
_memo = click.option("--memo", help="Description (default: what the chain shows).")


@click.command("deposit")
@click.option("--vault", required=True, help="Receiving vault.")
@_txid
@click.option("--from", "counterparty", help="Counterparty account (default: unattributed).")
@click.option("--amount", help="Expected amount in BTC (or NNNsat); refused if the chain differs.")
@_memo
@json_option
@pass_app
def record_deposit(
    app: App,
    vault: str,
    txid: str,
    counterparty: str | None,
    amount: str | None,
    memo: str | None,
    as_json: bool,
) -> None:
    """Record a deposit into VAULT after checking the transaction pays it."""
    from ledger.chain.recording import Claim

    sat = parse_btc(amount) if amount is not None else None
    claim = Claim("deposit", txid, vault, counterparty=counterparty, amount=sat, memo=memo)
    _record(app, as_json, claim)


@click.command("withdrawal")
@click.option("--vault", required=True, help="Spending vault.")
@_txid
@click.option("--to", "counterparty", required=True, help="Counterparty account paid.")
@click.option(
    "--amount", help="Expected amount paid outside in BTC (or NNNsat); refused if the chain differs."
)
@_memo
@json_option
@pass_app
def record_withdrawal(
    app: App,
    vault: str,
    txid: str,
    counterparty: str,
    amount: str | None,
    memo: str | None,
    as_json: bool,
) -> None:
    """Record a withdrawal; amount and network fee come from the transaction.

    The whole transaction is booked: a spend that also pays another vault books that vault's
    gain in the same entry."""
    from ledger.chain.recording import Claim

    sat = parse_btc(amount) if amount is not None else None
    _record(app, as_json, Claim("withdrawal", txid, vault, counterparty=counterparty, amount=sat, memo=memo))


@click.command("transfer")
@click.option("--from-vault", required=True)
@click.option("--to-vault", required=True)
@_txid
@click.option(
    "--amount",
    help="Expected amount the target vault gains in BTC (or NNNsat); refused if the chain differs.",
)
@_memo
@json_option
@pass_app
def record_transfer(
    app: App,
    from_vault: str,
    to_vault: str,
    txid: str,
    amount: str | None,
    memo: str | None,
    as_json: bool,
) -> None:
    """Record a transfer between two vaults (fee posted to network-fees; anything paid outside
    in the same transaction to unattributed)."""
    from ledger.chain.recording import Claim

    sat = parse_btc(amount) if amount is not None else None
    _record(app, as_json, Claim("transfer", txid, from_vault, to_vault=to_vault, amount=sat, memo=memo))


@click.command("mining")
@click.option("--vault", required=True)
@_txid
@_memo
@json_option
@pass_app
def record_mining(app: App, vault: str, txid: str, memo: str | None, as_json: bool) -> None:
    """Record a coinbase paying VAULT (immature for 100 blocks)."""
    from ledger.chain.recording import Claim

    _record(app, as_json, Claim("mining", txid, vault, memo=memo))


RECORD_SUBCOMMANDS: tuple[click.Command, ...] = (
    record_deposit,
    record_withdrawal,
    record_transfer,
    record_mining,
)


@click.command("sync")
@click.option("--vault", help="Only the transactions this vault's wallet lists (booked whole).")
@click.option("--dry-run", is_flag=True, help="List what would be recorded; write nothing.")
@json_option
@pass_app
def sync(app: App, vault: str | None, dry_run: bool, as_json: bool) -> None:
    """Record the on-chain movements of watched vaults that are not in the ledger yet."""
    from ledger.chain.movement import describe
    from ledger.chain.outflows import describe as outflow_line
    from ledger.chain.sync import sync as run_sync

    report = run_sync(app.read_session, app.session, app.rpc(), vault=vault, dry_run=dry_run)
    if as_json:
        app.print_json(_sync_json(report))
        return
    verb = "would record" if dry_run else "recorded"
    for i in report.items:
        where = "" if i.seq is None else f" as entry #{i.seq}"
        click.echo(f"{verb} {describe(i.movement)}: {i.movement.txid} (block {i.block_height}){where}")
    for txid in report.pending:
        click.echo(f"pending: {txid} is unconfirmed; sync again after it confirms")
    for skip in report.skipped:
        if not skip.final:
            click.echo(f"skipped: {skip.txid or 'vault ' + str(skip.vault)}: {skip.reason}")
    if final := sum(s.final for s in report.skipped):
        click.echo(
            f"skipped: {final} transaction(s) the vaults' wallets keep listing that can never be "
            "booked (replaced, double-spent, or mining rewards of blocks that left the best chain): "
            "nothing to do; `reserve sync --json` lists them"
        )
    for c in report.ungated:
        state = "acknowledged" if c.acknowledged else "a finding of every audit until acknowledged"
        click.echo(f"ungated spend ({state}): {outflow_line(c)}")
    for st in report.spends:
        if st.state == "confirmed":
            click.echo(
                f"spend #{st.spend} confirmed: {st.txid}" + ("" if st.seq is None else f" as entry #{st.seq}")
            )
        else:
            by = f" (by {st.by})" if st.by else ""
            click.echo(f"spend #{st.spend} {st.state}: {st.reason or st.txid}{by}")
    click.echo(
        f"{len(report.items)} movement(s) {verb}; {report.already_recorded} already recorded; "
        f"{len(report.pending)} pending (unconfirmed); {len(report.skipped)} skipped"
    )


def _sync_json(report: SyncReport) -> dict[str, object]:
    from ledger.chain.movement import headline_amount

    return {
        "dry_run": report.dry_run,
        "already_recorded": report.already_recorded,
        "unconfirmed": report.unconfirmed,
        "pending": list(report.pending),
        "skipped": [
            {"txid": s.txid, "vault": s.vault, "reason": s.reason, "final": s.final} for s in report.skipped
        ],
        "ungated": [c.to_json() for c in report.ungated],
        "spends": [
            {
                "spend": st.spend,
                "state": st.state,
                "txid": st.txid,
                "entry": st.seq,
                "by": st.by,
                "reason": st.reason,
            }
            for st in report.spends
        ],
        "movements": [
            {
                "kind": i.movement.kind,
                "txid": i.movement.txid,
                "flows_sat": i.movement.flow,
                "sources": list(i.movement.sources),
                "targets": list(i.movement.targets),
                "amount_sat": headline_amount(i.movement),
                "external_sat": i.movement.external,
                "fee_sat": i.movement.fee,
                "block_height": i.block_height,
                "seq": i.seq,
            }
            for i in report.items
        ],
    }


def render_audit(app: App, report: AuditReport) -> None:
    from ledger.chain.outflows import describe as outflow_line

    t = Table(title=f"Audit at height {report.height} (min-conf {report.min_conf})")
    for col in (
        "vault",
        "ledger",
        "chain total",
        f"conf≥{report.min_conf}",
        "shallow",
        "immature",
        "pending in",
        "pending out",
    ):
        t.add_column(col, justify="right" if col != "vault" else "left")
    for v in report.vaults:
        t.add_row(
            v.vault,
            format_btc(v.ledger),
            format_btc(v.chain_total),
            format_btc(v.scan_confirmed),
            format_btc(v.scan_shallow),
            format_btc(v.scan_immature),
            format_btc(v.pending_in),
            format_btc(v.pending_out),
        )
    for u in report.undefined_accounts:
        t.add_row(f"{u.account} (no vault definition)", format_btc(u.ledger), *("-",) * 6)
    tot = report.totals
    t.add_row(
        "TOTAL",
        format_btc(tot["ledger"]),
        format_btc(tot["chain"]),
        format_btc(tot["scan_confirmed"]),
        format_btc(tot["scan_shallow"]),
        format_btc(tot["scan_immature"]),
        format_btc(tot["pending_in"]),
        format_btc(tot["pending_out"]),
        style="bold",
    )
    app.console.print(t)
    for e in report.entries:
        if e.status == "moved":
            click.echo(
                f"note: entry #{e.seq} ({e.txid}) was recorded in block {e.recorded_block} at height "
                f"{e.recorded_height}; it is now in block {e.current_block} at height {e.current_height}"
            )
    for p in report.pending:
        click.echo(f"pending (unconfirmed, not a finding): {p.description}, transaction {p.txid}")
    for c in report.outflows:
        if c.acknowledged and not c.outflow.gated:
            click.echo(f"acknowledged by the vault's holders (not a finding): {outflow_line(c)}")
    click.echo(
        f"ledger: {report.tree_size} entries, root {report.root}; "
        f"{len(report.entries)} on-chain entries checked"
    )
    if report.ok:
        click.echo("OK: the books reconcile with the chain; no findings.")
    else:
        click.echo(f"FINDINGS ({len(report.findings)}):")
        for f in report.findings:
            click.echo(f"  [{f.code}] {f.message}")
            click.echo(f"      fix: {f.advice}")


MAX_MIN_CONF = 1_000_000
"""More confirmations than any chain has blocks for decades; refused up front (a stored audit keeps it)."""


@click.command("audit")
@click.option(
    "--min-conf",
    default=1,
    show_default=True,
    type=click.IntRange(min=1, max=MAX_MIN_CONF),
    help=f"Confirmations a recorded transaction needs (1..{MAX_MIN_CONF:,}); shallower ones are findings.",
)
@json_option
@pass_app
def audit(app: App, min_conf: int, as_json: bool) -> int:
    """Reconcile every vault's ledger balance with the chain.

    Every vault-type account is compared (the ledger total is `reserve balance`'s reserve);
    immature coinbase counts in the reserve; unconfirmed movements are shown as pending and are
    not findings. Each finding says how to fix it. The audit is stored, with a signed checkpoint,
    in the tamper-evident log. JSON: docs/audit.md (reserve-ledger-audit/v2).

    Exit 0 when everything reconciles, 1 when there are findings, 2 when the audit could not run.
    """
    from ledger.chain.audit import audit_of, read_books, read_chain, read_outflows, store_audit
    from ledger.journal.checkpoint import load_signing_key, public_key_pem

    rpc = app.rpc()
    key = load_signing_key(app.settings.signing_key_path)
    with app.read_session() as s:  # gather: reads only, no write lock held across the node calls
        gathered = read_books(s, public_key_pem(key))
    chain = read_chain(rpc, gathered)
    with app.read_session() as s:  # the vault outflows against the gate: a short read
        outflows = read_outflows(s, gathered, chain)
    report = audit_of(gathered.books, chain, min_conf=min_conf, outflows=outflows)
    stored: tuple[int | None, int | None] = (None, None)
    not_stored = None
    try:
        with app.session() as s:  # write: one short transaction
            written = store_audit(s, report, key)
        stored = written  # committed, its record sealed
    except TamperDetected as e:
        # its record cannot be sealed (entries no signed head covers, a key that may not sign):
        # the findings say why; a clean audit that cannot be stored is an error
        if report.ok:
            raise
        not_stored = str(e)
    audit_id, checkpoint_id = stored
    if as_json:
        data = report.to_json()
        data["audit_id"] = audit_id
        data["checkpoint_id"] = checkpoint_id
        app.print_json(data)
    else:
        render_audit(app, report)
        if not_stored is not None:
            click.echo(f"not stored: {printable(not_stored)}")
        else:
            signed = f" with checkpoint #{checkpoint_id}" if checkpoint_id else ""
            click.echo(f"stored as audit #{audit_id}{signed}")
    return 0 if report.ok else EXIT_FINDINGS


COMMANDS: tuple[click.Command, ...] = (sync, audit)
