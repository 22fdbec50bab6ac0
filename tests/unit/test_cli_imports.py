"""Building the ``reserve`` command tree and printing its help imports no heavy library.

A command imports the services it needs when it runs (STYLE.md, "Edges"); groups whose modules
need them to declare options are :class:`~ledger.cli.commands.LazyGroup` stand-ins, which must
show exactly what the real group would.
"""

from __future__ import annotations

import inspect
import json
import subprocess
import sys

import click
from click.testing import CliRunner

from ledger.cli.commands import LazyGroup
from ledger.cli.main import cli

HEAVY = ("sqlalchemy", "alembic", "bip_utils", "coincurve", "bitcoin")

_PROBE = f"""
import json, sys
from ledger.cli.main import main
code = main(["--help"])
loaded = sorted(m for m in sys.modules if m.split(".")[0] in {HEAVY!r})
print(json.dumps({{"code": code, "loaded": loaded}}))
"""


def test_help_imports_no_database_or_key_library() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _PROBE], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    assert "Commands:" in done.stdout  # the help was rendered, every command listed
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["code"] == 0
    assert result["loaded"] == [], f"`reserve --help` imported {result['loaded']}"


def _stand_ins() -> list[LazyGroup]:
    found = [c for c in cli.commands.values() if isinstance(c, LazyGroup)]
    assert found, "no lazy groups registered"
    return found


def test_lazy_groups_show_what_the_real_groups_would() -> None:
    for stand_in in _stand_ins():
        real = stand_in.real()
        assert not isinstance(real, LazyGroup)
        assert stand_in.name == real.name
        first_paragraph = inspect.cleandoc(real.help or "").split("\n\n")[0]
        assert stand_in.help == first_paragraph, (
            f"LAZY_GROUPS help of {stand_in.name} differs from its docstring"
        )
        for limit in (30, 45, 80):
            assert stand_in.get_short_help_str(limit) == real.get_short_help_str(limit)
        assert dict(stand_in.commands) == dict(real.commands)
        ctx = click.Context(stand_in)
        assert stand_in.list_commands(ctx) == real.list_commands(ctx)


def test_lazy_groups_run_their_real_commands() -> None:
    runner = CliRunner()
    for stand_in in _stand_ins():
        real = stand_in.real()
        shown = runner.invoke(cli, [stand_in.name or "", "--help"], prog_name="reserve")
        assert shown.exit_code == 0, shown.output
        command = "[COMMAND]" if real.invoke_without_command else "COMMAND"  # `reserve attest` runs alone too
        assert f"Usage: reserve {stand_in.name} [OPTIONS] {command} [ARGS]..." in shown.output
        for name in real.commands:
            assert name in shown.output
    shown = runner.invoke(cli, ["regtest", "status", "--dir", "/nonexistent/reserve-regtest"])
    assert shown.exit_code == 0, shown.output
    assert "not running" in shown.output


def test_every_command_of_a_lazily_loaded_module_is_registered() -> None:
    """A command added to ``vault_cmds.COMMANDS`` or ``node_cmds.COMMANDS`` must be listed in
    ``LAZY_GROUPS`` too, or ``reserve`` would not offer it."""
    import importlib

    by_module: dict[str, set[str]] = {}
    for stand_in in _stand_ins():
        module = stand_in.target.partition(":")[0]
        by_module.setdefault(module, set()).add(stand_in.name or "")
    for module, names in by_module.items():
        commands = importlib.import_module(module).COMMANDS
        assert {c.name for c in commands} == names, module
