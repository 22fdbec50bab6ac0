"""``reserve policy show|set``, ``reserve policy allow add|remove`` and ``reserve policy
destination add|remove``: each vault's governed spending policy, allowlist and vault destinations.

- ``reserve policy show VAULT``: the limits in force at the node's tip, every change with the
  height it was requested at and the height it is (or becomes) active from, and the allowlist,
  active and pending.
- ``reserve policy set VAULT --max-per-spend 0.5 --loosen-delay 144 ...``: amounts in BTC (or
  ``NNNsat``), the fee rate in sat/vB with up to 3 decimals, windows and delays in blocks;
  ``none`` removes a cap (``--max-per-spend``, ``--velocity-limit``, ``--delay-above``) or every
  required holder (``--require-holder none``).
- ``reserve policy allow add VAULT NAME --address A | --descriptor D`` and ``allow remove VAULT NAME``.
- ``reserve policy destination add VAULT OTHER`` and ``destination remove VAULT OTHER``.

A change that tightens is in force at once; one that loosens (and every allowlist entry or vault
destination added) is a governed change (:mod:`ledger.cli.approve_cmds`): it writes
``change-N.psbt`` for the vault's holders and is in force the loosen delay after their quorum.
Every command gathers from the node first (its tip height, and for ``--descriptor`` the addresses
bitcoind derives), then writes in one short transaction. Bad
input is refused before the node is asked and changes nothing.
"""

from __future__ import annotations

import re
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from custody.amount import parse_btc
from ledger.cli.app import App, json_option, pass_app
from ledger.cli.approve_cmds import check_out, out_option, proposed
from ledger.cli.policy_text import value_text
from ledger.errors import InvalidInput

if TYPE_CHECKING:  # each command imports the services it runs: `reserve --help` loads none
    from custody.network import Network
    from custody.spend_policy import FieldValue, SpendLimits
    from ledger.spend.policy_store import AllowEntry, PolicyChange

NONE_WORDS = frozenset({"none", "off"})

UNITS = {  # field -> JSON key of its value, with its unit
    "max-per-spend": "max_per_spend_sat",
    "velocity-limit": "velocity_limit_sat",
    "velocity-window": "velocity_window_blocks",
    "max-fee-rate": "max_fee_rate_sat_per_kvb",
    "max-fee": "max_fee_sat",
    "delay-above": "delay_above_sat",
    "delay-blocks": "delay_blocks",
    "required-holders": "required_holders",
    "loosen-delay": "loosen_delay_blocks",
}


# --- parsing (pure; before the node or the database is touched) -----------------------------------


def parse_cap(option: str, text: str) -> int | None:
    """An amount in BTC (or ``NNNsat``) as int sat, or ``None`` for ``none``."""
    if text.strip().lower() in NONE_WORDS:
        return None
    try:
        return parse_btc(text, allow_zero=True)
    except InvalidInput as e:
        raise InvalidInput(f"{option}: {e} (or 'none' for no cap)") from None


def parse_amount(option: str, text: str) -> int:
    try:
        return parse_btc(text, allow_zero=True)
    except InvalidInput as e:
        raise InvalidInput(f"{option}: {e}") from None


def parse_blocks(option: str, text: str) -> int:
    raw = text.strip()
    if not re.fullmatch(r"[0-9]{1,9}", raw):
        raise InvalidInput(f"{option} {raw[:24]!r} is not a whole number of blocks (e.g. 144)")
    return int(raw)


def parse_sat_per_vb(option: str, text: str) -> int:
    """A fee rate in sat/vB with at most 3 decimals, exactly, as int sat/kvB (``2.5`` -> 2500)."""
    raw = text.strip()
    if not re.fullmatch(r"[0-9]{1,9}(\.[0-9]{1,3})?", raw):
        raise InvalidInput(
            f"{option} {raw[:24]!r} is not a fee rate in sat/vB with at most 3 decimals (e.g. 25 or 1.5)"
        )
    try:
        return int(Decimal(raw) * 1000)
    except InvalidOperation:  # pragma: no cover - the pattern admits only decimals
        raise InvalidInput(f"{option} {raw!r} is not a number") from None


def policy_changes(
    max_per_spend: str | None,
    velocity_limit: str | None,
    velocity_window: str | None,
    max_fee_rate: str | None,
    max_fee: str | None,
    delay_above: str | None,
    delay_blocks: str | None,
    require_holders: tuple[str, ...],
    loosen_delay: str | None,
) -> dict[str, FieldValue]:
    """The options given, as CLI field name -> value (int sat, sat/kvB, blocks, None, holders)."""
    changes: dict[str, FieldValue] = {}
    if max_per_spend is not None:
        changes["max-per-spend"] = parse_cap("--max-per-spend", max_per_spend)
    if velocity_limit is not None:
        changes["velocity-limit"] = parse_cap("--velocity-limit", velocity_limit)
    if velocity_window is not None:
        changes["velocity-window"] = parse_blocks("--velocity-window", velocity_window)
    if max_fee_rate is not None:
        changes["max-fee-rate"] = parse_sat_per_vb("--max-fee-rate", max_fee_rate)
    if max_fee is not None:
        changes["max-fee"] = parse_amount("--max-fee", max_fee)
    if delay_above is not None:
        changes["delay-above"] = parse_cap("--delay-above", delay_above)
    if delay_blocks is not None:
        changes["delay-blocks"] = parse_blocks("--delay-blocks", delay_blocks)
    if require_holders:
        names = tuple(h.strip() for h in require_holders)
        if any(n.lower() in NONE_WORDS for n in names):
            if len(names) > 1:
                raise InvalidInput("--require-holder none clears the list; do not combine it with names")
            changes["required-holders"] = ()
        else:
            changes["required-holders"] = tuple(sorted(names))
    if loosen_delay is not None:
        changes["loosen-delay"] = parse_blocks("--loosen-delay", loosen_delay)
    if not changes:
        raise InvalidInput(
            "nothing to set: give at least one of --max-per-spend, --velocity-limit, "
            "--velocity-window, --max-fee-rate, --max-fee, --delay-above, --delay-blocks, "
            "--require-holder, --loosen-delay"
        )
    from custody.spend_policy import SpendLimits

    SpendLimits().with_changes(changes)  # every value in range before the node is asked
    return changes


# --- rendering ----------------------------------------------------------------------------------


def limits_json(limits: SpendLimits) -> dict[str, Any]:
    from custody.spend_policy import FIELDS

    return {UNITS[f]: _json_value(limits.value(f)) for f in FIELDS}


def _json_value(value: Any) -> Any:
    return list(value) if isinstance(value, tuple) else value


def change_summary(change: PolicyChange) -> str:
    if change.change == "set":
        from custody.spend_policy import FIELDS

        fields = change.fields
        return "; ".join(f"{f} {value_text(f, fields[f])}" for f in FIELDS if f in fields)
    if change.change == "allow-add":
        return f"allow {change.body['name']} -> {change.body['target']}"
    return f"remove {change.body['name']} from the allowlist"


def change_status(change: PolicyChange, tip: int, superseded: frozenset[str]) -> str:
    if change.change == "set" and superseded and superseded >= set(change.fields):
        return "superseded"
    return "active" if change.in_force(tip) else "pending"


def change_json(change: PolicyChange, tip: int, superseded: frozenset[str]) -> dict[str, Any]:
    data: dict[str, Any] = {
        "id": change.id,
        "change": change.change,
        "loosens": change.loosens,
        "requested_height": change.requested_height,
        "effective_height": change.effective_height,
        "status": change_status(change, tip, superseded),
        "record_seq": change.record_seq,
    }
    if change.change == "set":
        data["fields"] = {UNITS[f]: _json_value(v) for f, v in change.fields.items()}
        data["superseded_fields"] = sorted(superseded)
    else:
        data["name"] = change.body["name"]
        if change.change == "allow-add":
            data["target"] = change.body["target"]
            data["target_kind"] = change.body["kind"]
            data["scripts"] = len(change.body["scripts"])
    return data


def entry_json(entry: AllowEntry, tip: int, with_scripts: bool) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": entry.name,
        "target": entry.target,
        "script_count": len(entry.scripts),
        "active_at": entry.active_at,
        "status": "active" if entry.active_at <= tip else "pending",
    }
    if with_scripts:
        data["scripts"] = [s.hex() for s in entry.scripts]
    return data


def _when(change: PolicyChange, tip: int) -> str:
    if change.in_force(tip):
        return f"in force now (height {tip})"
    wait = change.effective_height - tip
    return f"in force from height {change.effective_height} ({wait} blocks from now)"


# --- gathering ----------------------------------------------------------------------------------


def node_tip(app: App, vault: str) -> tuple[int, Network]:
    """The node's tip height, after checking the vault exists and is on the node's network."""
    from custody.network import Network
    from ledger.chain.vaults import get_vault
    from ledger.cli.vault_cmds import reading

    with reading(app) as s:
        v = get_vault(s, vault)
    info = app.rpc().get_blockchain_info()
    network = Network.from_chain(info.chain)
    if network is not v.network:
        raise InvalidInput(
            f"vault {vault} is on {v.network.chain} but the node is on {network.chain}; "
            "configure the vault's node (--rpc-url)"
        )
    return info.blocks, v.network


# --- commands -----------------------------------------------------------------------------------


@click.group()
def policy() -> None:
    """Per-vault spending policy and allowlists: show, set, allow add|remove, destination add|remove."""


@policy.command("show")
@click.argument("vault")
@click.option("--scripts", "with_scripts", is_flag=True, help="With --json: every allowlisted script (hex).")
@json_option
@pass_app
def policy_show(app: App, vault: str, with_scripts: bool, as_json: bool) -> None:
    """The limits in force now, every change (requested and active heights; active, pending or
    superseded) and the allowlist (active and pending)."""
    from ledger.chain.vaults import get_vault
    from ledger.cli.approve_cmds import change_json as governed_json
    from ledger.cli.approve_cmds import state_text, summary
    from ledger.cli.vault_cmds import reading
    from ledger.governance.changes import destinations, read_changes
    from ledger.spend.policy_store import allowlist, effective_limits, history, superseded_fields

    with reading(app) as s:  # the vault first: an unknown one is named without asking the node
        get_vault(s, vault)
    tip = app.rpc().get_block_count()
    with reading(app) as s:
        limits = effective_limits(s, vault, tip)
        changes = history(s, vault)
        active, pending = allowlist(s, vault, tip)
        to_active, to_pending = destinations(s, vault, tip)
        awaiting = [g for g in read_changes(s, vault) if g.applied is None]
    superseded = superseded_fields(changes)
    vaults = [
        {"vault": n, "active_from": h, "status": "active" if h <= tip else "pending"}
        for n, h in sorted({**to_active, **to_pending}.items())
    ]
    if as_json:
        app.print_json(
            {
                "vault": vault,
                "height": tip,
                "limits": limits_json(limits),
                "changes": [change_json(c, tip, superseded.get(c.id, frozenset())) for c in changes],
                "allowlist": [entry_json(e, tip, with_scripts) for e in (*active, *pending)],
                "destinations": vaults,
                "awaiting_approval": [governed_json(g) for g in awaiting],
            }
        )
        return
    from custody.spend_policy import FIELDS

    click.echo(f"vault {vault}: spending policy at height {tip}")
    for field in FIELDS:
        click.echo(f"  {field:<17}: {value_text(field, limits.value(field))}")
    click.echo("allowlist:" if active or pending else "allowlist: empty")
    for e in (*active, *pending):
        state = "active" if e.active_at <= tip else f"pending until height {e.active_at}"
        scripts = "" if len(e.scripts) == 1 else f" ({len(e.scripts):,} scripts)"
        click.echo(f"  {e.name:<17}: {e.target}{scripts} — {state}")
    click.echo("vault destinations:" if vaults else "vault destinations: none approved")
    for d in vaults:
        state = "active" if d["status"] == "active" else f"pending until height {d['active_from']}"
        click.echo(f"  {d['vault']:<17}: {state}")
    for g in awaiting:
        click.echo(f"awaiting approval: change {g.number}: {summary(g)} — {state_text(g)}")
    if not changes:
        click.echo("changes: none (the defaults apply)")
        return
    from rich.table import Table
    from rich.text import Text

    table = Table(title="changes")
    for column in ("#", "change", "requested", "active from", "status"):
        table.add_column(column)
    for c in changes:
        status = change_status(c, tip, superseded.get(c.id, frozenset()))
        start = str(c.effective_height) if c.loosens else f"{c.requested_height} (at once)"
        cells = (str(c.id), change_summary(c), str(c.requested_height), start, status)
        table.add_row(*(Text(cell) for cell in cells))  # literal text: "[fp/48h]" is no markup
    app.console.print(table)


@policy.command("set")
@click.argument("vault")
@click.option("--max-per-spend", metavar="BTC|none", help="Most that may leave in one spend.")
@click.option("--velocity-limit", metavar="BTC|none", help="Most that may leave per velocity window.")
@click.option("--velocity-window", metavar="BLOCKS", help="Blocks the velocity limit looks back over.")
@click.option("--max-fee-rate", metavar="SAT_PER_VB", help="Highest fee rate (up to 3 decimals).")
@click.option("--max-fee", metavar="BTC", help="Highest absolute fee.")
@click.option("--delay-above", metavar="BTC|none", help="Spends above this wait --delay-blocks after quorum.")
@click.option("--delay-blocks", metavar="N", help="Blocks a spend above --delay-above waits.")
@click.option(
    "--require-holder",
    "require_holders",
    multiple=True,
    metavar="NAME|none",
    help="A holder who must sign every spend; repeat (the full list), or 'none'.",
)
@click.option("--loosen-delay", metavar="N", help="Blocks before a loosening change is in force.")
@out_option
@json_option
@pass_app
def policy_set(
    app: App,
    vault: str,
    max_per_spend: str | None,
    velocity_limit: str | None,
    velocity_window: str | None,
    max_fee_rate: str | None,
    max_fee: str | None,
    delay_above: str | None,
    delay_blocks: str | None,
    require_holders: tuple[str, ...],
    loosen_delay: str | None,
    out: Path,
    as_json: bool,
) -> None:
    """Change VAULT's spending limits: tightening is in force at once; loosening is a governed
    change (change-N.psbt for the holders), in force the loosen delay after their quorum."""
    from ledger.cli.journal_cmds import journal_session
    from ledger.governance.changes import POLICY_SET, propose
    from ledger.spend.policy_store import set_policy

    check_out(out)
    changes = policy_changes(
        max_per_spend,
        velocity_limit,
        velocity_window,
        max_fee_rate,
        max_fee,
        delay_above,
        delay_blocks,
        require_holders,
        loosen_delay,
    )
    tip, _ = node_tip(app, vault)
    with journal_session(app) as s:
        stored, loose = set_policy(s, vault, changes, tip)
        pending = propose(s, vault, POLICY_SET, {"fields": loose}, tip) if loose else None
    result = {"vault": vault, "height": tip, "changes": [change_json(c, tip, frozenset()) for c in stored]}
    if not as_json:
        for c in stored:
            click.echo(f"vault {vault}: set {change_summary(c)} — {_when(c, tip)}")
    if pending is not None:
        proposed(app, out, pending, as_json, result)
    elif as_json:
        app.print_json({**result, "proposed": None})


@policy.group("allow")
def allow() -> None:
    """Destinations a vault may pay besides the reserve's own vaults."""


@allow.command("add")
@click.argument("vault")
@click.argument("name")
@click.option("--address", help="The counterparty's address (of the vault's network).")
@click.option("--descriptor", help="A descriptor bitcoind can derive (first 1,000 addresses if ranged).")
@out_option
@json_option
@pass_app
def allow_add_cmd(
    app: App, vault: str, name: str, address: str | None, descriptor: str | None, out: Path, as_json: bool
) -> None:
    """Propose that VAULT may pay NAME (a counterparty account) at an address or descriptor: a
    governed change (change-N.psbt for the holders), active the loosen delay after their quorum."""
    from custody.address import address_script
    from ledger.cli.journal_cmds import journal_session
    from ledger.governance.changes import ALLOW_ADD, propose
    from ledger.journal.entry import check_account_name
    from ledger.spend.policy_store import check_allow_add

    if (address is None) == (descriptor is None):
        raise InvalidInput("give the destination with exactly one of --address A or --descriptor D")
    check_account_name(name)
    check_out(out)
    tip, network = node_tip(app, vault)
    scripts: tuple[bytes, ...] | None = None
    if descriptor is not None:
        from custody.derived_target import derive_target

        derived = derive_target(app.rpc(), descriptor, network)
        target, scripts = derived.descriptor, derived.scripts
    else:
        target = (address or "").strip()
        address_script(target, network)  # wrong network or malformed: refused before writing
    with journal_session(app) as s:
        body = check_allow_add(s, vault, name, target, tip, scripts)
        change = propose(s, vault, ALLOW_ADD, body, tip)
    proposed(app, out, change, as_json, {"vault": vault, "height": tip})


@allow.command("remove")
@click.argument("vault")
@click.argument("name")
@json_option
@pass_app
def allow_remove_cmd(app: App, vault: str, name: str, as_json: bool) -> None:
    """Remove NAME from VAULT's allowlist, at once (pending or active)."""
    from ledger.cli.journal_cmds import journal_session
    from ledger.spend.policy_store import allow_remove

    tip, _ = node_tip(app, vault)
    with journal_session(app) as s:
        change = allow_remove(s, vault, name, tip)
    if as_json:
        app.print_json({"vault": vault, "height": tip, "change": change_json(change, tip, frozenset())})
        return
    click.echo(f"vault {vault}: {name} removed from the allowlist — in force now (height {tip})")


@policy.group("destination")
def destination() -> None:
    """Other vaults a vault may pay: governed (its holders approve each), removal at once."""


@destination.command("add")
@click.argument("vault")
@click.argument("other")
@out_option
@json_option
@pass_app
def destination_add_cmd(app: App, vault: str, other: str, out: Path, as_json: bool) -> None:
    """Propose vault OTHER as a destination of VAULT: a governed change (change-N.psbt for VAULT's
    holders), in force the loosen delay after their quorum."""
    from ledger.cli.journal_cmds import journal_session
    from ledger.governance.changes import propose_destination

    check_out(out)
    tip, _ = node_tip(app, vault)
    with journal_session(app) as s:
        change = propose_destination(s, vault, other, tip)
    proposed(app, out, change, as_json, {"vault": vault, "height": tip})


@destination.command("remove")
@click.argument("vault")
@click.argument("other")
@json_option
@pass_app
def destination_remove_cmd(app: App, vault: str, other: str, as_json: bool) -> None:
    """Take vault OTHER off VAULT's destinations, at once (a tightening needs no approval)."""
    from ledger.cli.journal_cmds import journal_session
    from ledger.governance.changes import remove_destination

    tip, _ = node_tip(app, vault)
    with journal_session(app) as s:
        remove_destination(s, vault, other, tip)
    if as_json:
        app.print_json({"vault": vault, "height": tip, "removed": other})
        return
    click.echo(f"vault {vault}: {other} is no longer a destination — in force now (height {tip})")


COMMANDS: tuple[click.Command, ...] = (policy,)
