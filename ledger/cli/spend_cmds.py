"""``reserve spend create|show|sign|broadcast|cancel|list``: spends under the vault's policy.

The service never holds a private key: ``create`` writes ``spend-N.psbt`` (base64 BIP-174, what
hardware wallets, Sparrow and Caravan import) for the key holders, ``sign`` imports the files they
return, ``broadcast`` sends only when every rule of the vault's policy holds on the stored PSBT
(exit 1 listing every violation otherwise).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ledger.cli.app import App, json_option, pass_app

if TYPE_CHECKING:
    from custody.spend_gate import RuleResult
    from ledger.chain.outflows import OutflowCheck
    from ledger.spend.view import SpendView

EXIT_FINDINGS = 1


@click.group()
def spend() -> None:
    """Spends under policy: propose, sign, broadcast, cancel; PSBT files for the key holders."""


def _btc(sat: int | None) -> str:
    from custody.amount import format_btc

    return "?" if sat is None else f"{format_btc(sat)} BTC"


def _rate(sat_per_kvb: int) -> str:
    from custody.spend_gate import sat_per_vb

    return sat_per_vb(sat_per_kvb)


def _rules(results: tuple[RuleResult, ...]) -> None:
    for r in results:
        click.echo(f"  [{'pass' if r.ok else 'FAIL'}] {r.rule}: {r.detail}")


@spend.command("create")
@click.option("--vault", "vault", required=True, metavar="NAME", help="The vault that pays.")
@click.option(
    "--pay",
    "pays",
    multiple=True,
    required=True,
    metavar="DEST=AMOUNT",
    help="An allowlist entry, another vault or an allowlisted address, and BTC (repeatable).",
)
@click.option(
    "--fee-rate", metavar="SAT_PER_VB", help="Fee rate in sat/vB (up to 3 decimals) [node estimate]."
)
@click.option("--memo", required=True, help="What the spend is for; the booked entry's memo.")
@click.option(
    "--input",
    "inputs",
    multiple=True,
    metavar="TXID:VOUT",
    help="Spend exactly these coins of the vault (repeatable) [the wallet chooses].",
)
@click.option(
    "--out",
    "out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Directory for spend-N.psbt.",
)
@json_option
@pass_app
def create(
    app: App,
    vault: str,
    pays: tuple[str, ...],
    fee_rate: str | None,
    memo: str,
    inputs: tuple[str, ...],
    out: Path,
    as_json: bool,
) -> None:
    """Propose a spend: the vault's wallet builds the PSBT, the gate checks it, spend-N.psbt is written."""
    from ledger.errors import InvalidInput, WriteFailed
    from ledger.files import check_directory
    from ledger.spend.proposal import (
        Request,
        create_spend,
        parse_fee_rate,
        parse_outpoint,
        parse_payment,
        write_psbt_file,
    )

    if not out.is_dir():
        raise InvalidInput(f"--out {out} is not an existing directory; create it or give another")
    check_directory(out)  # before the spend is proposed and its coins locked
    request = Request(
        vault=vault,
        payments=tuple(parse_payment(p) for p in pays),
        memo=memo,
        fee_rate=None if fee_rate is None else parse_fee_rate(fee_rate),
        inputs=tuple(parse_outpoint(i) for i in inputs),
    )
    created = create_spend(app.read_session, app.session, app.rpc(), request)
    try:
        path = write_psbt_file(out, created.spend)
    except WriteFailed as e:
        n = created.spend.number
        e.add_note(
            f"spend #{n} is proposed and its coins locked: write its PSBT with "
            f"`reserve spend psbt {n} --out DIR`, or `reserve spend cancel {n}`"
        )
        raise
    s = created.spend
    if as_json:
        app.print_json(
            {
                "spend": s.number,
                "vault": s.vault,
                "txid": s.txid,
                "psbt_file": str(path),
                "amount_sat": s.amount,
                "destinations": [
                    {
                        "index": d.index,
                        "kind": d.kind,
                        "name": d.name,
                        "address": d.address,
                        "amount_sat": d.amount,
                    }
                    for d in s.destinations
                ],
                "fee_sat": created.fee,
                "vsize": created.vsize,
                "rules": [{"rule": r.rule, "ok": r.ok, "detail": r.detail} for r in created.results],
            }
        )
        return
    click.echo(f"spend #{s.number} proposed from vault {s.vault}: transaction {s.txid}")
    for d in s.destinations:
        click.echo(f"  pays {_btc(d.amount)} to {d.kind} {d.name} ({d.address})")
    click.echo(f"  fee {_btc(created.fee)} for ~{created.vsize} vB")
    _rules(created.results)
    click.echo(f"PSBT for the key holders: {path}")
    click.echo(f"import their signed files with `reserve spend sign {s.number} FILE...`")


def _show_text(v: SpendView) -> None:
    s = v.spend
    click.echo(f"spend #{s.number} from vault {s.vault}: {s.state}")
    click.echo(f"  transaction {s.txid}")
    if any(e.detail.get("outside_gate") for e in s.events):
        click.echo(
            "  it never passed the gate: the key holders sent it themselves, so no rule was applied; "
            "`reserve audit` reports it as an ungated spend until the vault's holders acknowledge it"
        )
    click.echo(f"  memo: {s.memo}")
    for d in s.destinations:
        click.echo(f"  pays {_btc(d.amount)} to {d.kind} {d.name} ({d.address}) [output {d.index}]")
    click.echo(f"  fee {_btc(v.fee)}, {_rate(v.fee_rate)} over ~{v.vsize} vB")
    if s.quorum_height is not None:
        click.echo(f"  quorum reached at height {s.quorum_height}")
    if v.unjudged is not None:
        click.echo(f"rules: not judged now, the node cannot be asked ({v.unjudged})")
    if v.verdict is not None:
        click.echo("rules (on the stored PSBT, at the node's tip):")
        _rules(v.verdict.results)
        click.echo("signatures:")
        for i in v.inputs:
            signed = ", ".join(f"{h} ({f})" for h, f in i.signed) or "nobody"
            missing = ", ".join(f"{h} ({f})" for h, f in i.missing) or "nobody"
            click.echo(f"  input {i.outpoint} ({_btc(i.amount)}): signed by {signed}; missing {missing}")
    click.echo("history:")
    for e in s.events:
        extra = ""
        if "reason" in e.detail:
            extra = f": {e.detail['reason']}"
        if e.detail.get("entry_seq") is not None:
            extra = f": booked as entry #{e.detail['entry_seq']}"
        if e.detail.get("outside_gate"):
            extra += " (sent outside the service: it never passed the gate of `reserve spend broadcast`)"
        if e.detail.get("added"):
            extra = ": " + ", ".join(f"{a['holder']} on input {a['input']}" for a in e.detail["added"])
        at = "" if e.created_at is None else f" {e.created_at:%Y-%m-%d %H:%M}"
        click.echo(f"  {e.step}. {e.state} at height {e.height}{at}{extra}")


@spend.command("show")
@click.argument("number", type=int)
@json_option
@pass_app
def show(app: App, number: int, as_json: bool) -> None:
    """A spend: destinations, fee, every rule pass/fail, who signed and who is missing, its history."""
    from ledger.spend.view import inspect_spend, view_json

    view = inspect_spend(app.read_session, app.rpc(), number)
    if as_json:
        app.print_json(view_json(view))
    else:
        _show_text(view)


@spend.command("sign")
@click.argument("number", type=int)
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@json_option
@pass_app
def sign(app: App, number: int, files: tuple[Path, ...], as_json: bool) -> None:
    """Import signed PSBT files from key holders; every signature is verified before it counts."""
    from ledger.errors import InvalidInput
    from ledger.spend.signing import MAX_FILE_BYTES, sign_spend

    loaded: list[tuple[str, bytes]] = []
    for f in files:
        try:
            size = f.stat().st_size
        except OSError as e:
            raise InvalidInput(f"cannot read {f}: {e.strerror}") from None
        if size > MAX_FILE_BYTES:
            raise InvalidInput(f"{f}: {size:,} bytes is too large for a PSBT (at most {MAX_FILE_BYTES:,})")
        loaded.append((str(f), f.read_bytes()))
    result = sign_spend(app.read_session, app.session, app.rpc(), number, loaded)
    if as_json:
        app.print_json(
            {
                "spend": number,
                "state": result.spend.state,
                "added": [
                    {"input": c.input, "holder": c.holder, "fingerprint": c.fingerprint} for c in result.added
                ],
                "signers": [list(h) for h in result.signers],
                "quorum": result.quorum,
                "quorum_height": result.quorum_height,
            }
        )
        return
    if not result.added:
        click.echo(f"spend #{number}: no new signature in {len(files)} file(s); nothing stored")
    for c in result.added:
        click.echo(f"spend #{number}: input {c.input} signed by {c.holder} (key {c.fingerprint})")
    holders = sorted({h for hs in result.signers for h in hs})
    state = "has quorum" if result.quorum else "needs more signatures"
    click.echo(f"spend #{number} {state} (signed by {', '.join(holders) or 'nobody'})")


@spend.command("broadcast")
@click.argument("number", type=int)
@json_option
@pass_app
def broadcast(app: App, number: int, as_json: bool) -> int:
    """Send a spend, only if every rule of the vault's policy holds on the stored PSBT (else exit 1)."""
    from ledger.spend.broadcast import broadcast_spend

    result = broadcast_spend(app.read_session, app.session, app.rpc(), number)
    if as_json:
        app.print_json(
            {
                "spend": number,
                "broadcast": result.sent,
                "txid": result.txid,
                "violations": list(result.violations),
                "rules": [{"rule": r.rule, "ok": r.ok, "detail": r.detail} for r in result.results],
            }
        )
    elif result.sent:
        click.echo(f"spend #{number} broadcast: transaction {result.txid}")
        click.echo("`reserve sync` books it once it confirms")
    else:
        click.echo(f"spend #{number} refused; nothing was broadcast:", err=True)
        for v in result.violations:
            click.echo(f"  - {v}", err=True)
    return 0 if result.sent else EXIT_FINDINGS


@spend.command("cancel")
@click.argument("number", type=int)
@click.option("--reason", required=True, help="Why the spend is cancelled (stored).")
@json_option
@pass_app
def cancel(app: App, number: int, reason: str, as_json: bool) -> None:
    """Cancel a spend that is not on the network; its coins are unlocked."""
    from custody.spend_node import outpoint_text
    from ledger.spend.settle import cancel_spend

    done = cancel_spend(app.read_session, app.session, app.rpc(), number, reason)
    if as_json:
        app.print_json(
            {
                "spend": number,
                "state": done.spend.state,
                "unlocked": [outpoint_text(o) for o in done.unlocked],
                "note": done.note,
            }
        )
        return
    click.echo(f"spend #{number} cancelled; {len(done.unlocked)} coin(s) unlocked")
    if done.note:
        click.echo(f"note: {done.note}", err=True)


@spend.command("psbt")
@click.argument("number", type=int)
@click.option(
    "--out",
    "out",
    type=click.Path(file_okay=False, path_type=Path),
    default=Path("."),
    show_default=True,
    help="Directory for spend-N.psbt.",
)
@pass_app
def psbt_cmd(app: App, number: int, out: Path) -> None:
    """Write spend-N.psbt again: the PSBT as stored now, with every signature imported so far."""
    from ledger.cli.journal_cmds import journal_session
    from ledger.errors import InvalidInput
    from ledger.spend.events import get_spend
    from ledger.spend.proposal import write_psbt_file

    if not out.is_dir():
        raise InvalidInput(f"--out {out} is not an existing directory; create it or give another")
    with journal_session(app, read_only=True) as s:
        found = get_spend(s, number)
    click.echo(f"spend #{number} ({found.state}): {write_psbt_file(out, found)}")


@spend.command("list")
@click.option("--vault", metavar="NAME", help="Only this vault's spends.")
@click.option("--open", "open_only", is_flag=True, help="Only spends that are not finished.")
@json_option
@pass_app
def list_cmd(app: App, vault: str | None, open_only: bool, as_json: bool) -> None:
    """Every spend with its state, and every transaction spending the vaults' coins: gated (sent by
    `spend broadcast` after the gate passed) or not, with the rules it breaks (asks the node)."""
    from ledger.cli.journal_cmds import journal_session
    from ledger.spend.events import list_spends
    from ledger.spend.view import summary

    with journal_session(app, read_only=True) as s:
        spends = list_spends(s, vault, open_only=open_only)
    rows: list[dict[str, Any]] = [summary(x) for x in spends]
    outflows, unseen = _outflows(app, vault)
    if as_json:
        app.print_json(
            {"spends": rows, "outflows": [c.to_json() for c in outflows], "outflows_unseen": unseen}
        )
        return
    if not rows:
        click.echo("no spends")
    for r in rows:
        outside = "" if r["gated"] or r["state"] != "confirmed" else " (sent outside: never passed the gate)"
        click.echo(
            f"#{r['spend']} {r['state']:<10} {r['vault']} -> {', '.join(r['to'])}: "
            f"{_btc(r['amount_sat'])} {r['memo']}{outside}"
        )
    _outflows_text(outflows, unseen)


def _outflows(app: App, vault: str | None) -> tuple[tuple[OutflowCheck, ...], str | None]:
    """Every transaction spending the vaults' coins, judged against the gate; or why not."""
    from custody.errors import NodeUnreachable
    from ledger.chain.outflows import list_outflows

    if app.settings.rpc is None:
        return (), "no node configured (--rpc-url): transactions spending the vaults' coins are not shown"
    try:
        return list_outflows(app.read_session, app.rpc(), vault), None
    except NodeUnreachable as e:
        return (), f"the node cannot be asked ({e}): transactions spending the vaults' coins are not shown"


def _outflows_text(outflows: tuple[OutflowCheck, ...], unseen: str | None) -> None:
    if unseen is not None:
        click.echo(unseen)
        return
    if not outflows:
        return
    click.echo("transactions spending the vaults' coins:")
    for c in outflows:
        o = c.outflow
        where = "mempool" if o.height is None else f"block {o.height}"
        if o.gated:
            click.echo(f"  gated    {o.txid} {o.vault}: {_btc(o.amount)} ({where}), spend #{o.spend}")
            continue
        label = "ungated (acknowledged)" if c.acknowledged else "UNGATED"
        rules = ", ".join(r.rule for r in c.broken) or "no rule broken as the chain shows it"
        if o.unjudged is not None:
            rules = f"not judged: {o.unjudged}"
        spend = "" if o.spend is None else f", spend #{o.spend} sent by its holders"
        click.echo(f"  {label} {o.txid} {o.vault}: {_btc(o.amount)} ({where}{spend}); breaks: {rules}")


COMMANDS: tuple[click.Command, ...] = (spend,)
