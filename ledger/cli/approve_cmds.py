"""``reserve approve list|show|psbt|sign``: the holders' approvals of governed changes.

A change that widens what can leave a vault (``policy set`` loosening, ``policy allow add``,
``policy destination add``, ``vault retire``) is stored as pending and ``change-N.psbt`` is
written: a BIP-322 ``to_sign`` over the change's canonical bytes for the vault's first receive
address, which holders sign like a spend's PSBT. ``approve sign N FILE...`` imports their signed
files (every signature verified, each holder counted once); at the vault's threshold the change
applies (a loosening after the loosen delay, counted from the quorum).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from ledger.cli.app import App, json_option, pass_app

if TYPE_CHECKING:
    from ledger.governance.changes import Change

OUT_HELP = "Directory for change-N.psbt (the file the holders sign)."


def out_option(f: Any) -> Any:
    return click.option(
        "--out",
        "out",
        type=click.Path(file_okay=False, path_type=Path),
        default=Path("."),
        show_default=True,
        help=OUT_HELP,
    )(f)


def check_out(out: Path) -> None:
    """Refuse an --out where change-N.psbt cannot be made, before the change is proposed."""
    from ledger.errors import InvalidInput
    from ledger.files import check_directory

    if not out.is_dir():
        raise InvalidInput(f"--out {out} is not an existing directory; create it or give another")
    check_directory(out)


def summary(change: Change) -> str:
    """What a change does, for people: ``loosen max-per-spend 5.00000000 BTC``, ``allow ...``."""
    from ledger.cli.policy_text import value_text
    from ledger.governance.changes import ACKNOWLEDGE, ALLOW_ADD, DESTINATION_ADD, POLICY_SET

    p = change.params
    if change.action == POLICY_SET:
        return "loosen " + "; ".join(f"{f} {value_text(f, v)}" for f, v in p["fields"].items())
    if change.action == ALLOW_ADD:
        return f"allow {p['name']} -> {p['target']}"
    if change.action == DESTINATION_ADD:
        return f"vault {p['destination']} as a destination"
    if change.action == ACKNOWLEDGE:
        return f"acknowledge ungated spend {p['txid']} ({p['reason']})"
    return f"retire the vault ({p['reason']})"


def state_text(change: Change, tip: int | None = None) -> str:
    if change.applied is None:
        return f"pending: approved by {len(change.approvals)} of the {change.threshold} needed"
    a = change.applied
    if a.effective_height == a.height:
        return f"applied at height {a.height}"
    waiting = "" if tip is None or a.effective_height <= tip else " (waiting the loosen delay)"
    return f"approved at height {a.height}, in force from height {a.effective_height}{waiting}"


def change_json(change: Change) -> dict[str, Any]:
    return {
        "change": change.number,
        "vault": change.vault,
        "network": change.network,
        "action": change.action,
        "params": change.params,
        "requested_height": change.requested_height,
        "digest": change.digest,
        "message": change.message.decode("ascii"),
        "threshold": change.threshold,
        "approved_by": list(change.approved_by),
        "status": change.status,
        "applied_height": None if change.applied is None else change.applied.height,
        "effective_height": None if change.applied is None else change.applied.effective_height,
    }


def write_change_psbt(app: App, out: Path, change: Change) -> Path:
    """Write ``change-N.psbt`` (base64, one line) into ``out``; returns its path."""
    from ledger.chain.vaults import get_vault
    from ledger.governance.changes import proposal_psbt

    with app.read_session() as s:
        vault = get_vault(s, change.vault)
    from ledger.files import write_text

    path = out / f"change-{change.number}.psbt"
    write_text(path, proposal_psbt(vault, change).to_base64() + "\n", encoding="ascii")
    return path


def announce(change: Change, path: Path) -> None:
    """``change N awaits approval by M of the holders of VAULT; have them sign PATH``."""
    click.echo(
        f"change {change.number} ({summary(change)}) awaits approval by {change.threshold} of the "
        f"holders of {change.vault}; have them sign {path}"
    )
    click.echo(f"import their signed files with `reserve approve sign {change.number} FILE...`")


def proposed(app: App, out: Path, change: Change, as_json: bool, extra: dict[str, Any] | None = None) -> None:
    """Write a new change's PSBT and tell who must sign it (text or JSON)."""
    from ledger.errors import WriteFailed

    try:
        path = write_change_psbt(app, out, change)
    except WriteFailed as e:  # a full disk, say: the change is kept, its PSBT can be written again
        e.add_note(
            f"change {change.number} is proposed: write its PSBT with "
            f"`reserve approve psbt {change.number} --out DIR`"
        )
        raise
    if as_json:
        app.print_json({**(extra or {}), "proposed": {**change_json(change), "psbt_file": str(path)}})
    else:
        announce(change, path)


@click.group()
def approve() -> None:
    """Governed changes: list, show, write the PSBT to sign, import the holders' approvals."""


@approve.command("list")
@click.option("--vault", metavar="NAME", help="Only this vault's changes.")
@click.option("--all", "include_applied", is_flag=True, help="Applied changes too.")
@json_option
@pass_app
def approve_list(app: App, vault: str | None, include_applied: bool, as_json: bool) -> None:
    """Governed changes awaiting approval (with --all, applied ones too)."""
    from ledger.governance.changes import read_changes

    with app.read_session() as s:
        if vault is not None:
            from ledger.chain.vaults import get_vault

            get_vault(s, vault)
        changes = [c for c in read_changes(s, vault) if include_applied or c.applied is None]
    if as_json:
        app.print_json({"changes": [change_json(c) for c in changes]})
        return
    if not changes:
        click.echo("no governed change awaits approval" if not include_applied else "no governed change")
        return
    for c in changes:
        who = ", ".join(c.approved_by) or "nobody"
        click.echo(f"change {c.number} of {c.vault}: {summary(c)} — {state_text(c)} (approved by {who})")


@approve.command("show")
@click.argument("number", type=int)
@click.option(
    "--export",
    "export",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the offline approval document (python -m ledger.governance.verify_approval FILE).",
)
@json_option
@pass_app
def approve_show(app: App, number: int, export: Path | None, as_json: bool) -> None:
    """A change: what it does, the message the holders sign, who approved, when it applies."""
    import json

    from ledger.governance.changes import get_change
    from ledger.governance.document import approval_document

    with app.read_session() as s:
        change = get_change(s, number)
        document = approval_document(s, number) if export is not None else None
    if export is not None and document is not None:
        from ledger.files import write_text

        write_text(export, json.dumps(document, indent=2, sort_keys=True) + "\n")
    if as_json:
        app.print_json({**change_json(change), "export": None if export is None else str(export)})
        return
    click.echo(f"change {change.number} of vault {change.vault}: {summary(change)}")
    click.echo(f"  requested at height {change.requested_height}; {state_text(change)}")
    click.echo(f"  approved by: {', '.join(change.approved_by) or 'nobody'}")
    click.echo(f"  digest (SHA-256 of the change's canonical bytes): {change.digest}")
    click.echo("  the holders sign (BIP-322):")
    for line in change.message.decode("ascii").splitlines():
        click.echo(f"    {line}")
    if export is not None:
        click.echo(f"approval document written to {export}")


@approve.command("psbt")
@click.argument("number", type=int)
@out_option
@pass_app
def approve_psbt(app: App, number: int, out: Path) -> None:
    """Write change-N.psbt again, for holders who have not signed yet."""
    from ledger.governance.changes import get_change

    check_out(out)
    with app.read_session() as s:
        change = get_change(s, number)
    announce(change, write_change_psbt(app, out, change))


@approve.command("sign")
@click.argument("number", type=int)
@click.argument("files", nargs=-1, required=True, type=click.Path(dir_okay=False, path_type=Path))
@json_option
@pass_app
def approve_sign(app: App, number: int, files: tuple[Path, ...], as_json: bool) -> None:
    """Import holders' signed change-N.psbt files; every signature is verified, each holder counts
    once, and the change applies when the vault's threshold has approved."""
    from custody.psbt import Psbt
    from ledger.errors import InvalidInput
    from ledger.governance.changes import approve as approve_change
    from ledger.governance.changes import get_change
    from ledger.spend.signing import MAX_FILE_BYTES

    signed: list[Psbt] = []
    for f in files:
        try:
            size = f.stat().st_size
            if size > MAX_FILE_BYTES:
                raise InvalidInput(
                    f"{f}: {size:,} bytes is too large for a PSBT (at most {MAX_FILE_BYTES:,})"
                )
            data = f.read_bytes()
        except OSError as e:
            raise InvalidInput(f"cannot read {f}: {e.strerror}") from None
        try:
            signed.append(Psbt.parse(data))
        except InvalidInput as e:
            raise InvalidInput(f"{f} is not a PSBT: {e}") from None
    with app.read_session() as s:
        get_change(s, number)  # an unknown change is named without asking the node
    tip = app.rpc().get_block_count()
    with app.session() as s:
        result = approve_change(s, number, signed, tip)
    change = result.change
    if as_json:
        app.print_json({**change_json(change), "added": list(result.added), "already": list(result.already)})
        return
    for holder in result.added:
        click.echo(f"change {number}: approved by {holder}")
    for holder in result.already:
        click.echo(f"change {number}: {holder} had approved already (one holder counts once)")
    if not result.added:
        click.echo(f"change {number}: no new approval; nothing stored")
    click.echo(f"change {number} of {change.vault}: {state_text(change, tip)}")


@approve.command("acknowledge")
@click.argument("vault")
@click.argument("txid")
@click.option("--reason", required=True, help="What the holders say the spend was (recorded).")
@out_option
@json_option
@pass_app
def approve_acknowledge(app: App, vault: str, txid: str, reason: str, out: Path, as_json: bool) -> None:
    """Propose that VAULT's holders acknowledge the ungated spend TXID: a governed change
    (change-N.psbt); its `ungated-spend` finding clears once their threshold approves."""
    from ledger.chain.vaults import get_vault
    from ledger.governance.changes import propose_acknowledgement

    check_out(out)
    with app.read_session() as s:
        get_vault(s, vault)
    tip = app.rpc().get_block_count()
    with app.session() as s:
        change = propose_acknowledgement(s, vault, txid, reason, tip)
    proposed(app, out, change, as_json, {"vault": vault, "height": tip})


COMMANDS: tuple[click.Command, ...] = (approve,)
