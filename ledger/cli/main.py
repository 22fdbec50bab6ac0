"""Entry point of the ``reserve`` command: global options, subcommands and exit codes.

Exit codes: 0 success; 1 the command ran and found problems (verify, audit findings);
2 the command could not do what was asked (bad input, unknown name, conflict, node unreachable).
Errors are printed as one clear message on stderr, never as a traceback.
"""

from __future__ import annotations

import sys

import click
from rich.console import Console

from custody.errors import CustodyError
from ledger import __version__
from ledger.cli.app import App
from ledger.cli.commands import register
from ledger.errors import LedgerError
from ledger.settings import build_settings

EXIT_FINDINGS = 1
EXIT_ERROR = 2


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="reserve")
@click.option("--db", metavar="URL", help="Database URL or SQLite file [env RESERVE_DB; ./reserve.db].")
@click.option(
    "--signing-key",
    metavar="FILE",
    help="Ed25519 checkpoint key [env RESERVE_SIGNING_KEY; ./reserve-signing.key].",
)
@click.option("--rpc-url", metavar="URL", help="bitcoind RPC URL [env RESERVE_RPC_URL].")
@click.option(
    "--rpc-cookie",
    metavar="FILE",
    help="bitcoind .cookie file [env RESERVE_RPC_COOKIE]; or RESERVE_RPC_USER/RESERVE_RPC_PASSWORD.",
)
@click.pass_context
def cli(
    ctx: click.Context,
    db: str | None,
    signing_key: str | None,
    rpc_url: str | None,
    rpc_cookie: str | None,
) -> None:
    """reserve: append-only, chain-verified books for a Bitcoin reserve in multisig vaults."""
    settings = build_settings(db=db, signing_key=signing_key, rpc_url=rpc_url, rpc_cookie=rpc_cookie)
    # Piped output (logs, the demo's transcript) gets room for full 8-decimal amounts.
    console = Console() if sys.stdout.isatty() else Console(width=160)
    ctx.obj = App(settings=settings, console=console)


register(cli)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and map errors to exit codes."""
    try:
        rv = cli.main(args=argv, prog_name="reserve", standalone_mode=False)
    except click.exceptions.Exit as e:
        return int(e.exit_code)
    except click.ClickException as e:
        e.show()
        return EXIT_ERROR
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return EXIT_ERROR
    except (LedgerError, CustodyError) as e:
        click.echo(f"error: {e}", err=True)
        return EXIT_ERROR
    return rv if isinstance(rv, int) else 0


if __name__ == "__main__":
    sys.exit(main())
