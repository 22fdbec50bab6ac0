"""``reserve node status`` and ``reserve regtest start|stop|status``."""

from __future__ import annotations

from pathlib import Path

import click

from ledger.cli.app import App, json_option, pass_app
from regtest import persistent


@click.group()
def node() -> None:
    """The configured bitcoind."""


@node.command("status")
@json_option
@pass_app
def node_status(app: App, as_json: bool) -> None:
    """Chain, height, best block hash, pruning and version of the configured node.

    A pruned node keeps blocks from its prune height up only: transactions in older blocks
    cannot be read (recording, sync, audit and attestations need them) and vaults born below it
    cannot be rescanned."""
    client = app.rpc()
    chain = client.get_blockchain_info()
    info = client.get_network_info()
    data: dict[str, object] = {
        "url": client.url,
        "chain": chain.chain,
        "blocks": chain.blocks,
        "best_block_hash": chain.best_block_hash,
        "pruned": chain.pruned,
        "prune_height": chain.prune_height,
        "version": info.version_text,
        "subversion": info.subversion,
    }
    if as_json:
        app.print_json(data)
        return
    shown = {**data, "pruned": "yes" if chain.pruned else "no"}
    if not chain.pruned:
        del shown["prune_height"]
    for key, value in shown.items():
        click.echo(f"{key:>16}: {value}")
    if chain.pruned:
        click.echo(f"{'':>16}  (blocks below height {chain.prune_height} are no longer on disk)")


@click.group()
def regtest() -> None:
    """A persistent regtest node for demos, in ./.reserve-regtest/."""


_dir_option = click.option(
    "--dir",
    "datadir",
    type=click.Path(path_type=Path, file_okay=False),
    default=persistent.DEFAULT_DIR,
    show_default=True,
    help="Datadir of the demo node.",
)


def _show(status: persistent.DemoNodeStatus) -> None:
    state = f"running, height {status.height}" if status.running else "not running"
    click.echo(f"regtest node in {status.datadir}: {state}")
    if status.rpc_url:
        click.echo("Point the CLI at it with:")
        for line in persistent.env_lines(status):
            click.echo(f"  {line}")


@regtest.command("start")
@_dir_option
def regtest_start(datadir: Path) -> None:
    """Start the demo node (or report that it runs) and print the settings for it."""
    _show(persistent.start(datadir))


@regtest.command("stop")
@_dir_option
def regtest_stop(datadir: Path) -> None:
    """Stop the demo node and wait for it to exit."""
    _show(persistent.stop(datadir))


@regtest.command("status")
@_dir_option
def regtest_status(datadir: Path) -> None:
    """Whether the demo node runs, its height and its settings."""
    _show(persistent.status(datadir))


COMMANDS: tuple[click.Command, ...] = (node, regtest)
