"""Registers every command group on the root ``reserve`` group.

Each group lives in its own module, named after what it drives.
"""

from __future__ import annotations

import click


def register(cli: click.Group) -> None:
    from ledger.cli import chain_cmds, demo_cmds, journal_cmds, node_cmds, vault_cmds

    for module in (node_cmds, journal_cmds, chain_cmds, demo_cmds, vault_cmds):
        for command in module.COMMANDS:
            cli.add_command(command)
    for sub in chain_cmds.RECORD_SUBCOMMANDS:
        journal_cmds.record.add_command(sub)
