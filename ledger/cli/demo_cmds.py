"""``reserve demo``: the end-to-end regtest demo (see :mod:`ledger.cli.demo`).

The demo and the regtest signers it plays (:mod:`regtest.signers`) load only when the command
runs: no other command, and not ``--help``, imports them.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click

from ledger.cli.app import CLI_ENTRY, App, pass_app


@click.command("demo")
@click.option(
    "--workdir",
    type=click.Path(path_type=Path, file_okay=False),
    help="Where to keep the demo's database and signing key [./.reserve-demo/run-<UTC time>/].",
)
@pass_app
def demo(app: App, workdir: Path | None) -> int:
    """Run the whole life of a reserve on the regtest node, printing every step.

    Needs a regtest node (`scripts/demo` starts one). Exit 0 when every step behaved as expected.
    """
    from ledger.cli.demo import Cli, default_workdir, run_demo

    cli: Cli = click.get_current_context().meta[CLI_ENTRY]
    rpc = app.rpc()
    node_args: list[str] = []
    if app.settings.rpc is not None:
        node_args += ["--rpc-url", app.settings.rpc.url]
        if app.settings.rpc.cookie_path is not None:
            node_args += ["--rpc-cookie", str(app.settings.rpc.cookie_path)]
    now = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return run_demo(rpc, workdir or default_workdir(now), click.echo, cli=cli, node_args=node_args)


COMMANDS: tuple[click.Command, ...] = (demo,)
