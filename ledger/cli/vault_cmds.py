"""``reserve vault add|list|show|address|export|check|watch|retire``.

A vault is defined in one of three ways:

- keys: ``reserve vault add NAME --threshold 2 --key alice=[fp/48h/1h/0h/2h]tpub... --key ...``
  (one ``--key HOLDER=KEY`` per key; the descriptor is ``wsh(sortedmulti(m, KEY/<0;1>/*, ...))``);
- descriptor: ``reserve vault add NAME --descriptor 'wsh(sortedmulti(...))#checksum' --holder alice
  --holder bob --holder carol`` (one holder per key, in descriptor order; the checksum is required);
- file: ``reserve vault add --file vault.json`` with either form as JSON::

      {"name": "cold", "threshold": 2, "birthday": 120,
       "keys": [{"holder": "alice", "key": "[d34db33f/48h/1h/0h/2h]tpub..."}, ...]}
      {"name": "cold", "descriptor": "wsh(sortedmulti(2,...))#checksum",
       "holders": ["alice", "bob", "carol"]}

The network is read from the configured node (``getblockchaininfo``) and every key is checked
against it; an unreachable node stops the command before anything is stored.

Numbers on the command line (``--birthday``, ``--index``, ``--count``, ``--gap``) are read by
:class:`WholeNumber`: anything that is not a whole number in range is one line on stderr and
exit 2, never a traceback.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import click
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from sqlalchemy.exc import OperationalError, ProgrammingError
from sqlalchemy.orm import Session

from custody.bsms import bsms_descriptor_record
from custody.checksum import split_checksum
from custody.descriptor import MultisigDescriptor
from custody.errors import CustodyError, NodeUnreachable
from custody.keys import parse_held_key, shorten
from custody.network import Network
from custody.rpc import ChainInfo
from custody.wallet import DEFAULT_GAP, MAX_INDEX, WatchResult, check_birthday, ensure_watch_wallet
from ledger.chain.issuance import MAX_COUNT, MAX_ISSUE_INDEX, issue_addresses, issued_ranges
from ledger.chain.vaults import (
    Vault,
    add_vault,
    check_vaults,
    get_vault,
    list_vaults,
    policy_of,
)
from ledger.cli.app import App, json_option, pass_app
from ledger.cli.approve_cmds import check_out, out_option, proposed
from ledger.cli.journal_cmds import journal_session
from ledger.errors import InvalidInput, NotInitialised
from ledger.journal.entry import check_text

EXIT_FINDINGS = 1
MAX_GAP = 10_000  # each watched index is derived by the wallet and by every audit


class WholeNumber(click.ParamType):  # type: ignore[type-arg]
    """A whole number in ``minimum..maximum`` (inclusive); anything else is :class:`InvalidInput`.

    Raised as the ledger's own error (not click's usage error) so the CLI prints one line and
    exits 2; text longer than any integer in range is refused before Python converts it.
    """

    name = "integer"

    def __init__(
        self, option: str, minimum: int, maximum: int, hint: str = "", shown: tuple[int, int] | None = None
    ) -> None:
        self.option, self.minimum, self.maximum, self.hint = option, minimum, maximum, hint
        # The range a message names: the real limits when a later check owns them (see INDEX).
        self.shown = shown if shown is not None else (minimum, maximum)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int) and not isinstance(value, bool):
            number = value
        else:
            text = str(value).strip()
            if not re.fullmatch(r"[-+]?[0-9]{1,20}", text):
                raise InvalidInput(
                    f"{self.option} {shorten(text, 24)!r} is not a whole number in "
                    f"{self.shown[0]:,}..{self.shown[1]:,}{self.hint}"
                )
            number = int(text)
        if not self.minimum <= number <= self.maximum:
            raise InvalidInput(
                f"{self.option} {number} is out of range: give {self.minimum:,}..{self.maximum:,}{self.hint}"
            )
        return number


BIRTHDAY = WholeNumber("--birthday", 0, MAX_INDEX, " (a block height at or before the first deposit)")
GAP = WholeNumber("--gap", 1, MAX_GAP, " (addresses watched past the last one used or handed out)")
# Indexes and counts are judged by ledger.chain.issuance, whose messages say why a limit is there;
# text that is no number at all is refused here, naming the same real ranges.
INDEX = WholeNumber("--index", -(2**63), 2**63 - 1, shown=(0, MAX_ISSUE_INDEX))
COUNT = WholeNumber("--count", -(2**63), 2**63 - 1, shown=(1, MAX_COUNT))


# --- the vault definition from options or a file ---------------------------------------------------


@dataclass(frozen=True, slots=True)
class VaultDefinition:
    name: str
    descriptor: MultisigDescriptor
    holders: tuple[str, ...]
    birthday: int | None


def from_keys(
    name: str, threshold: int | None, keys: tuple[str, ...], birthday: int | None
) -> VaultDefinition:
    if threshold is None:
        raise InvalidInput("--key needs --threshold M (how many of the keys must sign)")
    held = [parse_held_key(k) for k in keys]
    descriptor = MultisigDescriptor.from_keys(threshold, [h.key for h in held])
    return VaultDefinition(name, descriptor, tuple(h.holder for h in held), birthday)


def from_descriptor(name: str, text: str, holders: tuple[str, ...], birthday: int | None) -> VaultDefinition:
    split_checksum(text.strip(), require=True)
    descriptor = MultisigDescriptor.parse(text)
    if len(holders) != len(descriptor.keys):
        raise InvalidInput(
            f"{len(holders)} --holder given for the descriptor's {len(descriptor.keys)} keys; "
            "name one holder per key, in descriptor order"
        )
    return VaultDefinition(name, descriptor, holders, birthday)


_FILE_FIELDS = {"name", "threshold", "keys", "descriptor", "holders", "birthday"}


def from_document(doc: Any, source: str, name: str | None, birthday: int | None) -> VaultDefinition:
    """A vault definition from the JSON document of ``--file`` (see the module docstring)."""
    if not isinstance(doc, dict):
        raise InvalidInput(f"{source}: expected a JSON object with name and keys or descriptor")
    unknown = sorted(set(doc) - _FILE_FIELDS)
    if unknown:
        raise InvalidInput(f"{source}: unknown field(s) {', '.join(unknown)}; known: {sorted(_FILE_FIELDS)}")
    doc_name = doc.get("name")
    if doc_name is not None and not isinstance(doc_name, str):
        raise InvalidInput(f"{source}: name must be a string")
    if name is not None and doc_name is not None and name != doc_name:
        raise InvalidInput(f"vault name {name!r} on the command line differs from {doc_name!r} in {source}")
    final_name = name or doc_name
    if not final_name:
        raise InvalidInput(f'{source} has no name; add "name" or give NAME on the command line')
    doc_birthday = doc.get("birthday")
    if doc_birthday is not None and (isinstance(doc_birthday, bool) or not isinstance(doc_birthday, int)):
        raise InvalidInput(f"{source}: birthday must be a block height (an integer)")
    final_birthday = birthday if birthday is not None else doc_birthday
    if ("keys" in doc) == ("descriptor" in doc):
        raise InvalidInput(
            f'{source}: give either "keys" (with "threshold") or "descriptor" (with "holders")'
        )
    if "keys" in doc:
        keys = doc["keys"]
        threshold = doc.get("threshold")
        if not isinstance(keys, list) or not all(
            isinstance(k, dict) and isinstance(k.get("holder"), str) and isinstance(k.get("key"), str)
            for k in keys
        ):
            raise InvalidInput(f'{source}: keys must be a list of {{"holder": ..., "key": ...}} objects')
        if isinstance(threshold, bool) or not isinstance(threshold, int):
            raise InvalidInput(f"{source}: threshold must be an integer")
        texts = tuple(f"{k['holder']}={k['key']}" for k in keys)
        return from_keys(final_name, threshold, texts, final_birthday)
    holders = doc.get("holders")
    if not isinstance(holders, list) or not all(isinstance(h, str) for h in holders):
        raise InvalidInput(f"{source}: holders must be a list of names, one per key in descriptor order")
    if not isinstance(doc["descriptor"], str):
        raise InvalidInput(f"{source}: descriptor must be a string")
    return from_descriptor(final_name, doc["descriptor"], tuple(holders), final_birthday)


def read_file(path: Path, name: str | None, birthday: int | None) -> VaultDefinition:
    try:
        doc = json.loads(path.read_text())
    except OSError as e:
        raise InvalidInput(f"cannot read vault file {path}: {e.strerror}") from None
    except ValueError as e:
        raise InvalidInput(f"vault file {path} is not valid JSON ({e})") from None
    return from_document(doc, str(path), name, birthday)


def node_chain(app: App) -> ChainInfo:
    """The configured node's chain (network, height, pruning); nothing is stored when it cannot
    be asked."""
    try:
        return app.rpc().get_blockchain_info()
    except NodeUnreachable as e:
        e.add_note("the network of the vault's keys is checked against the node, nothing was stored")
        raise


@contextmanager
def reading(app: App) -> Iterator[Session]:
    """``app.read_session()`` (no write lock), with ``journal_session``'s hint when the database
    has no tables yet."""
    try:
        with app.read_session() as s:
            yield s
    except (OperationalError, ProgrammingError) as e:
        text = str(e.orig).lower()
        if "no such table" in text or "does not exist" in text:
            raise NotInitialised("the database has no ledger tables; run `reserve init` first") from e
        raise


# --- rendering -------------------------------------------------------------------------------------


def vault_json(v: Vault, findings: tuple[str, ...] | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {
        "name": v.name,
        "account": v.account,
        "threshold": v.threshold,
        "keys": [{"position": i, "holder": h.holder, "key": str(h.key)} for i, h in enumerate(v.held_keys)],
        "descriptor": str(v.descriptor),
        "receive_descriptor": v.descriptor.receive(),
        "change_descriptor": v.descriptor.change(),
        "network": v.network.chain,
        "birthday_height": v.birthday,
        "retired": v.retired,
        "retired_reason": v.retired_reason,
        "wallet": v.wallet_name,
    }
    if findings is not None:
        data["policy_findings"] = list(findings)
    return data


def _watch_text(r: WatchResult) -> str:
    ranges = ", ".join(f"{b.branch} 0..{b.range_end} (next {b.next_index})" for b in r.branches)
    rescan = "; rescanned from the vault's birthday" if r.rescanned else ""
    return f"{r.status}: wallet {r.wallet_name}, {ranges}{rescan}"


# --- commands --------------------------------------------------------------------------------------


@click.group()
def vault() -> None:
    """Multisig vaults: define, inspect, check against the policy, watch on the node."""


@vault.command("add")
@click.argument("name", required=False)
@click.option("--threshold", "-m", type=int, help="Signatures needed (with --key).")
@click.option(
    "--key", "keys", multiple=True, metavar="HOLDER=[fp/path]xpub", help="A key and its holder; repeat."
)
@click.option(
    "--descriptor", metavar="DESC#CHECKSUM", help="wsh(sortedmulti(...))#checksum, multipath /<0;1>/*."
)
@click.option("--holder", "holders", multiple=True, help="Holder of each descriptor key, in order; repeat.")
@click.option(
    "--file", "file", type=click.Path(path_type=Path, dir_okay=False), help="Vault definition as JSON."
)
@click.option("--birthday", type=BIRTHDAY, help="Height of a block before the first deposit.")
@json_option
@pass_app
def vault_add(
    app: App,
    name: str | None,
    threshold: int | None,
    keys: tuple[str, ...],
    descriptor: str | None,
    holders: tuple[str, ...],
    file: Path | None,
    birthday: int | None,
    as_json: bool,
) -> None:
    """Register a vault after checking it against the multisig policy (nothing stored on refusal)."""
    forms = [f for f, given in (("--key", keys), ("--descriptor", descriptor), ("--file", file)) if given]
    if len(forms) != 1:
        raise InvalidInput(
            "define the vault with exactly one of --key HOLDER=KEY (repeat, with --threshold), "
            "--descriptor DESC --holder NAME (repeat) or --file vault.json "
            f"(got {', '.join(forms) or 'none'})"
        )
    if holders and descriptor is None:
        raise InvalidInput("--holder goes with --descriptor; with --key write HOLDER=KEY")
    if file is not None:
        if threshold is not None:
            raise InvalidInput("--threshold goes in the vault file with --file")
        definition = read_file(file, name, birthday)
    elif name is None:
        raise InvalidInput("give the vault a NAME: reserve vault add NAME ...")
    elif descriptor is not None:
        if threshold is not None:
            raise InvalidInput("--threshold is part of the descriptor; drop it with --descriptor")
        definition = from_descriptor(name, descriptor, holders, birthday)
    else:
        definition = from_keys(name, threshold, keys, birthday)

    chain = node_chain(app)
    network = Network.from_chain(chain.chain)
    if definition.birthday is not None:  # a block the node has, its data still on disk
        check_birthday(definition.birthday, chain)
    policy = policy_of(app.settings.policy.min_threshold, app.settings.policy.min_holders)
    with journal_session(app) as s:
        v = add_vault(
            s,
            definition.name,
            definition.descriptor,
            definition.holders,
            network,
            policy,
            definition.birthday,
        )
    if as_json:
        app.print_json(vault_json(v))
        return
    click.echo(f"vault {v.name} added: {v.label} on {v.network.chain}, account {v.account}")
    click.echo(f"  {v.descriptor}")
    click.echo(f"watch it on the node with: reserve vault watch {v.name}")


@vault.command("list")
@click.option("--all", "include_retired", is_flag=True, help="Include retired vaults.")
@json_option
@pass_app
def vault_list(app: App, include_retired: bool, as_json: bool) -> None:
    """The vaults (active ones unless --all): policy, holders, network, birthday, addresses
    issued (indexes handed out by `vault address`, receive and change) and status."""
    with reading(app) as s:
        vaults = list_vaults(s, include_retired=include_retired)
        issued = issued_ranges(s)
    if as_json:
        app.print_json([{**vault_json(v), "addresses_issued": issued.get(v.name, 0)} for v in vaults])
        return
    table = Table(title="vaults")
    for column in ("name", "policy", "holders", "network", "birthday", "issued", "status"):
        table.add_column(column)
    for v in vaults:
        status = f"retired: {v.retired_reason}" if v.retired else "active"
        birthday = "-" if v.birthday is None else str(v.birthday)
        count = issued.get(v.name, 0)
        handed_out = f"0..{count - 1}" if count else "-"
        table.add_row(v.name, v.label, ", ".join(v.holders), v.network.chain, birthday, handed_out, status)
    app.console.print(table)


@vault.command("show")
@click.argument("name")
@json_option
@pass_app
def vault_show(app: App, name: str, as_json: bool) -> None:
    """One vault: keys and holders, descriptors with checksum, policy status."""
    policy = policy_of(app.settings.policy.min_threshold, app.settings.policy.min_holders)
    with reading(app) as s:
        v = get_vault(s, name)
        findings = check_vaults(s, None, policy, name)[name]
        issued = issued_ranges(s).get(name, 0)
    if as_json:
        app.print_json({**vault_json(v, findings), "addresses_issued": issued})
        return
    status = f"retired ({v.retired_reason})" if v.retired else "active"
    click.echo(f"vault {v.name}: {v.label} P2WSH sortedmulti on {v.network.chain}, {status}")
    click.echo(f"  account   : {v.account}")
    click.echo(f"  wallet    : {v.wallet_name}")
    click.echo(f"  birthday  : {'-' if v.birthday is None else v.birthday}")
    click.echo(f"  issued    : {f'indexes 0..{issued - 1}' if issued else 'no address yet'}")
    for i, held in enumerate(v.held_keys, start=1):
        click.echo(f"  key {i:<6}: {held.holder} {held.key}")
    click.echo(f"  descriptor: {v.descriptor}")
    click.echo(f"  receive   : {v.descriptor.receive()}")
    click.echo(f"  change    : {v.descriptor.change()}")
    if findings:
        click.echo("  policy    : VIOLATED")
        for f in findings:
            click.echo(f"    - {f}")
    else:
        click.echo("  policy    : ok")


@vault.command("address")
@click.argument("name")
@click.option("--index", type=INDEX, default=0, show_default=True, help="First index to hand out.")
@click.option("--change", is_flag=True, help="Change branch instead of receive.")
@click.option("--count", type=COUNT, default=1, show_default=True, help=f"How many (at most {MAX_COUNT:,}).")
@json_option
@pass_app
def vault_address(app: App, name: str, index: int, change: bool, count: int, as_json: bool) -> None:
    """Hand out addresses of a vault; each is watched before it is printed.

    Indexes run 0..9,999, at most 1,000 addresses per request.

    The vault's watch-only wallet is first made to watch at least 1,000 addresses past the
    highest index handed out (its range is topped up; nothing is rescanned), and that index is
    recorded in the tamper-evident log, so the wallet, `reserve sync` and `reserve audit` all see
    a deposit to any address given out. This needs the node: when it cannot be reached nothing
    is printed and nothing is written (exit 2), because an address nobody watches must never be
    handed out. A vault not watched yet (no wallet on the node) still gets its addresses and the
    record; `reserve vault watch NAME` then imports at least that far.
    """
    rpc = app.rpc()
    issued = issue_addresses(
        lambda: reading(app), lambda: journal_session(app), rpc, name, index, count, change
    )
    plan = issued.plan
    if not issued.watched:
        click.echo(
            f"note: vault {name} is not watched by the node yet; run `reserve vault watch {name}` "
            "before these addresses are paid (it imports at least this far)",
            err=True,
        )
    if as_json:
        app.print_json(
            [
                {"index": plan.start + i, "branch": plan.branch, "address": a}
                for i, a in enumerate(plan.addresses)
            ]
        )
        return
    for i, address in enumerate(plan.addresses):
        click.echo(f"{plan.start + i}\t{address}")


@vault.command("export")
@click.argument("name")
@click.option("--bsms", is_flag=True, help="Print the BIP-129 (BSMS 1.0) descriptor record instead.")
@json_option
@pass_app
def vault_export(app: App, name: str, bsms: bool, as_json: bool) -> None:
    """The vault's descriptors (multipath, receive, change), or its BSMS record for signers."""
    with reading(app) as s:
        v = get_vault(s, name)
    record = bsms_descriptor_record(v.descriptor, v.network)
    if as_json:
        app.print_json(
            {
                "descriptor": str(v.descriptor),
                "receive": v.descriptor.receive(),
                "change": v.descriptor.change(),
                "bsms": record,
            }
        )
    elif bsms:
        click.echo(record)
    else:
        click.echo(str(v.descriptor))
        click.echo(v.descriptor.receive())
        click.echo(v.descriptor.change())


@vault.command("check")
@click.argument("name", required=False)
@json_option
@pass_app
def vault_check(app: App, name: str | None, as_json: bool) -> int:
    """Judge vaults against today's policy; exit 1 if any violates it."""
    policy = policy_of(app.settings.policy.min_threshold, app.settings.policy.min_holders)
    with reading(app) as s:
        results = check_vaults(s, None, policy, name)
    if as_json:
        app.print_json({n: list(f) for n, f in results.items()})
    else:
        if not results:
            click.echo("no active vaults")
        for vault_name, findings in results.items():
            click.echo(f"{vault_name}: {'ok' if not findings else f'{len(findings)} violation(s)'}")
            for f in findings:
                click.echo(f"  - {f}")
    return EXIT_FINDINGS if any(results.values()) else 0


@vault.command("watch")
@click.argument("name")
@click.option("--birthday", type=BIRTHDAY, help="Rescan from this height [the vault's birthday].")
@click.option("--gap", type=GAP, default=DEFAULT_GAP, show_default=True, help="Gap limit.")
@json_option
@pass_app
def vault_watch(app: App, name: str, birthday: int | None, gap: int, as_json: bool) -> None:
    """Create or update the vault's watch-only wallet on the node (idempotent).

    Each branch is watched at least GAP addresses past its last used index and past the highest
    index handed out by `reserve vault address`."""
    with reading(app) as s:
        v = get_vault(s, name)
        cover = issued_ranges(s).get(name, 0)
    rpc = app.rpc()
    network = Network.from_chain(rpc.get_blockchain_info().chain)
    if network is not v.network:
        raise InvalidInput(f"vault {name} is on {v.network.chain} but the node is on {network.chain}")
    height = birthday if birthday is not None else v.birthday
    with Progress(
        TextColumn("rescanning for vault " + name),
        BarColumn(),
        TextColumn("{task.percentage:>3.0f}%"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        transient=True,
    ) as progress:
        task = progress.add_task("rescan", total=1.0, visible=False)

        def on_progress(fraction: float) -> None:
            progress.update(task, completed=fraction, visible=True)

        try:
            result = ensure_watch_wallet(rpc, v.wallet_name, v.descriptor, height, gap, on_progress, cover)
        except CustodyError as e:
            e.add_note(f"cannot watch vault {name}")
            raise
    if as_json:
        app.print_json(
            {
                "vault": name,
                "wallet": result.wallet_name,
                "status": result.status,
                "rescanned": result.rescanned,
                "branches": [
                    {"branch": b.branch, "range_end": b.range_end, "next_index": b.next_index}
                    for b in result.branches
                ],
            }
        )
        return
    click.echo(f"vault {name}: {_watch_text(result)}")


@vault.command("retire")
@click.argument("name")
@click.option("--reason", required=True, help="Why (recorded with the retirement).")
@out_option
@json_option
@pass_app
def vault_retire(app: App, name: str, reason: str, out: Path, as_json: bool) -> None:
    """Propose retiring a vault: a governed change (change-N.psbt for its holders), retired, its
    keys never to serve another vault, when their threshold approves."""
    from ledger.errors import Conflict
    from ledger.governance.changes import propose_retirement

    check_text(reason, "--reason")
    if not reason.strip():
        raise InvalidInput("a retirement needs a reason (--reason TEXT), e.g. 'keys rotated to vault X'")
    check_out(out)
    with reading(app) as s:
        v = get_vault(s, name)
    if v.retired:
        raise Conflict(f"vault {name!r} is already retired ({v.retired_reason})")
    tip = app.rpc().get_block_count()
    with journal_session(app) as s:
        change = propose_retirement(s, name, reason, tip)
    proposed(app, out, change, as_json, {"vault": name, "height": tip})


COMMANDS: tuple[click.Command, ...] = (vault,)
