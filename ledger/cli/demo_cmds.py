"""``reserve demo``: the end-to-end regtest demo (see :mod:`ledger.demo`)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import click

from ledger.cli.app import App, pass_app
from ledger.demo import default_workdir, run_demo


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
    rpc = app.rpc()
    node_args: list[str] = []
    if app.settings.rpc is not None:
        node_args += ["--rpc-url", app.settings.rpc.url]
        if app.settings.rpc.cookie_path is not None:
            node_args += ["--rpc-cookie", str(app.settings.rpc.cookie_path)]
    now = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
    return run_demo(rpc, workdir or default_workdir(now), click.echo, node_args=node_args)


COMMANDS: tuple[click.Command, ...] = (demo,)
