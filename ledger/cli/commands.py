"""Registers every command group on the root ``reserve`` group.

Each group lives in its own module, named after what it drives. Building the command tree
imports no service: each command imports what it needs when it runs, so ``reserve --help``
pays for neither SQLAlchemy, Alembic nor the key libraries. The ``vault`` group's module needs
the descriptor and wallet code to declare its options (and ``node_cmds`` the regtest harness),
so those groups are registered as :class:`LazyGroup` stand-ins and imported only when one of
their commands runs or they list their subcommands.
"""

from __future__ import annotations

import importlib
from collections.abc import MutableMapping
from typing import Any

import click


class LazyGroup(click.Group):
    """A command group that stands in for ``module:attribute`` until it is used.

    The root help needs only its name and help (the real group's docstring, kept equal to it by
    ``tests/unit/test_cli_imports.py``); running it, or listing or looking up its subcommands,
    imports the module and hands over to the real group.
    """

    def __init__(self, name: str, target: str, help: str) -> None:  # noqa: A002 (click's name)
        super().__init__(name, help=help)
        self.target = target

    def real(self) -> click.Group:
        module, _, attribute = self.target.partition(":")
        group = getattr(importlib.import_module(module), attribute)
        if not isinstance(group, click.Group):
            raise TypeError(f"{self.target} is not a click group")
        return group

    @property
    def commands(self) -> MutableMapping[str, click.Command]:
        return self.real().commands

    @commands.setter
    def commands(self, value: MutableMapping[str, click.Command]) -> None:
        if value:  # click.Group.__init__ sets an empty mapping; subcommands live on the real group
            raise TypeError(f"add commands to {self.target}, not to its stand-in")

    def make_context(
        self, info_name: str | None, args: list[str], parent: click.Context | None = None, **extra: Any
    ) -> click.Context:
        return self.real().make_context(info_name, args, parent, **extra)


LAZY_GROUPS = (  # name, where the group is, its docstring (what the root help shows)
    (
        "vault",
        "ledger.cli.vault_cmds:vault",
        "Multisig vaults: define, inspect, check against the policy, watch on the node.",
    ),
    ("node", "ledger.cli.node_cmds:node", "The configured bitcoind."),
    (
        "report",
        "ledger.cli.report_cmds:report",
        "Period statements of the reserve (and the transparency site).",
    ),
    ("export", "ledger.cli.report_cmds:export", "Every entry of the journal for accountants and auditors."),
    (
        "spend",
        "ledger.cli.spend_cmds:spend",
        "Spends under policy: propose, sign, broadcast, cancel; PSBT files for the key holders.",
    ),
    (
        "policy",
        "ledger.cli.policy_cmds:policy",
        "Per-vault spending policy and allowlists: show, set, allow add|remove, destination add|remove.",
    ),
    (
        "approve",
        "ledger.cli.approve_cmds:approve",
        "Governed changes: list, show, write the PSBT to sign, import the holders' approvals.",
    ),
    (
        "attest",
        "ledger.cli.attest_cmds:attest",
        "Proof of reserves at a block: attest, prepare/finish with proofs of control, list, verify.",
    ),
    (
        "regtest",
        "ledger.cli.node_cmds:regtest",
        "A persistent regtest node for demos, in ./.reserve-regtest/.",
    ),
)


def register(cli: click.Group) -> None:
    from ledger.cli import chain_cmds, demo_cmds, journal_cmds

    for module in (journal_cmds, chain_cmds, demo_cmds):
        for command in module.COMMANDS:
            cli.add_command(command)
    for name, target, text in LAZY_GROUPS:
        cli.add_command(LazyGroup(name, target, help=text))
    for sub in chain_cmds.RECORD_SUBCOMMANDS:
        journal_cmds.record.add_command(sub)
