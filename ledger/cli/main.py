"""Entry point of the ``reserve`` command: global options, subcommands and exit codes.

Exit codes: 0 success; 1 the command ran and found problems (verify, audit findings);
2 the command could not do what was asked (bad input, unknown name, conflict, node or database
unreachable, a bad setting). Errors are printed as one clear line on stderr, never as a traceback
(``RESERVE_DEBUG=1`` shows the traceback of an unexpected error). Passwords in database URLs are
masked in every message.

Output never carries raw control characters from stored text: click's streams are wrapped in
:class:`~ledger.cli.app.EscapingStream` and the rich console escapes them before layout.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from pathlib import Path
from typing import Any

import click

from custody.errors import CustodyError
from ledger import __version__
from ledger.cli.app import CLI_ENTRY, App, SafeConsole, escaping_streams
from ledger.cli.commands import register
from ledger.errors import Conflict, InvalidInput, LedgerError
from ledger.settings import Settings, build_settings, normalise_db_url

EXIT_FINDINGS = 1
EXIT_ERROR = 2
EXIT_INTERRUPTED = 130
INIT_SETTINGS = "reserve.init_settings"
KEY_WAIT_S = 5.0  # how long an `init` waits for a concurrent `init` to finish writing the key


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="reserve")
@click.option(
    "--db",
    metavar="URL",
    help="Database URL or SQLite file the service runs with [env RESERVE_DB; ./reserve.db].",
)
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
    console = SafeConsole() if sys.stdout.isatty() else SafeConsole(width=160)
    ctx.obj = App(settings=settings, console=console)
    ctx.meta[CLI_ENTRY] = main  # `reserve demo` runs commands through it (no import back)


register(cli)


# --- reserve init --owner-db ------------------------------------------------------------------


def _add_owner_option(init: click.Command) -> None:
    """``reserve init --owner-db URL``: migrate as the owner role, grant the runtime role.

    ``init`` itself migrates ``app.engine``; this option hands it an App whose database URL is
    the owner's and whose engine names the runtime role to grant rights to. It also makes two
    ``init`` at once end cleanly when both try to create the signing key.
    """
    init.params.append(
        click.Option(
            ["--owner-db"],
            metavar="URL",
            help="PostgreSQL URL of the role that owns the tables; only init uses it "
            "[env RESERVE_DB_OWNER; default: the --db URL].",
        )
    )
    run_init = init.callback
    assert run_init is not None

    def callback(**kwargs: Any) -> None:
        ctx = click.get_current_context()
        app = ctx.find_object(App)
        assert app is not None
        settings = _init_settings(app.settings, kwargs.pop("owner_db"), kwargs.get("db"))
        if "db" in kwargs:
            kwargs["db"] = None  # already in `settings`
        ctx.obj = App(settings=settings, console=app.console)
        ctx.meta[INIT_SETTINGS] = settings  # for error messages: mask and name the owner URL
        try:
            run_init(**kwargs)
        except (Conflict, InvalidInput) as e:  # the key file: made or being written by another init?
            path = settings.signing_key_path
            if str(path) not in str(e) or not _await_concurrent_key(path):
                raise
        _show_runtime_role(settings)

    init.callback = callback


def _init_settings(settings: Settings, owner_db: str | None, db: str | None) -> Settings:
    """The settings ``init`` runs with: the owner URL as its database (when one is given), and
    the runtime role (explicit, or the runtime URL's user) to grant rights to."""
    from sqlalchemy import make_url

    runtime_url = normalise_db_url(db) if db else settings.db_url
    owner_url = normalise_db_url(owner_db) if owner_db else settings.owner_db_url
    if owner_url is None or owner_url == runtime_url:
        return dataclasses.replace(settings, db_url=runtime_url)
    role = settings.runtime_role or make_url(runtime_url).username
    return dataclasses.replace(settings, db_url=owner_url, runtime_role=role)


def _show_runtime_role(settings: Settings) -> None:
    from sqlalchemy import make_url

    owner = make_url(settings.db_url)
    role = settings.runtime_role
    if owner.get_backend_name() == "postgresql" and role and role != owner.username:
        click.echo(
            f"runtime role: {role} (granted SELECT and INSERT only: run the service with its URL "
            "in RESERVE_DB; only `reserve init` uses the owner's)"
        )


def _await_concurrent_key(path: Path) -> bool:
    """After this ``init`` lost the race to create the signing key: wait for the winner to finish
    writing it, load it and say so. False when there is no such key (a real error)."""
    from ledger.journal.checkpoint import load_signing_key, public_key_pem
    from ledger.verify_proof import key_id

    deadline = time.monotonic() + KEY_WAIT_S
    while path.exists():
        try:
            key = load_signing_key(path)
        except LedgerError:
            if time.monotonic() > deadline or time.time() - path.stat().st_mtime > KEY_WAIT_S:
                return False
            time.sleep(0.05)  # the other init is writing the file; there is nothing to poll
            continue
        click.echo(
            f"signing key: {path} (created by another `reserve init` at the same time, "
            f"key id {key_id(public_key_pem(key))})"
        )
        click.echo("publish the public key for auditors with `reserve ledger pubkey`")
        return True
    return False


_add_owner_option(cli.commands["init"])


# --- Exit codes and one-line errors -----------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and map errors to exit codes; output goes through the escaping streams."""
    with escaping_streams():
        return _run(sys.argv[1:] if argv is None else list(argv))


def _run(argv: list[str]) -> int:
    ctx: click.Context | None = None
    try:
        ctx = cli.make_context("reserve", argv)
        with ctx:
            rv = cli.invoke(ctx)
    except click.exceptions.Exit as e:
        return int(e.exit_code)
    except click.ClickException as e:
        e.show()
        return EXIT_ERROR
    except click.exceptions.Abort:
        click.echo("aborted", err=True)
        return EXIT_ERROR
    except KeyboardInterrupt:
        click.echo("interrupted", err=True)
        return EXIT_INTERRUPTED
    except (LedgerError, CustodyError) as e:
        _error(str(e), ctx)
        return EXIT_ERROR
    except Exception as e:
        if os.environ.get("RESERVE_DEBUG") == "1":
            raise
        _error(_explain(e, ctx), ctx)
        return EXIT_ERROR
    return rv if isinstance(rv, int) else 0


def _settings(ctx: click.Context | None) -> tuple[Settings, ...]:
    """The settings the command ran with (and those ``init`` switched to, e.g. the owner URL)."""
    if ctx is None:
        return ()
    app = ctx.find_object(App)
    found = (app.settings,) if app is not None else ()
    init_settings = ctx.meta.get(INIT_SETTINGS)
    return (init_settings, *found) if isinstance(init_settings, Settings) else found


def _error(message: str, ctx: click.Context | None) -> None:
    """One line on stderr, with every known password masked."""
    line = " ".join(message.split()) if "\n" in message else message
    click.echo(f"error: {_mask(line, _settings(ctx))}", err=True)


def _mask(text: str, settings: tuple[Settings, ...]) -> str:
    from ledger.store.db import mask_secrets

    for s in settings:
        text = mask_secrets(text, s.db_url, s.owner_db_url)
    return text


def _explain(e: Exception, ctx: click.Context | None) -> str:
    """What went wrong and what to do, for errors that are not the ledger's own."""
    from ledger.store.db import describe_database_error

    settings = _settings(ctx)
    described = describe_database_error(e, settings[0].db_url if settings else None)
    if described is not None:
        return described
    if isinstance(e, OverflowError):
        return f"a number is too large ({e}); give a smaller value"
    if isinstance(e, OSError):
        what = f"cannot use {e.filename}" if e.filename else "a file or network operation failed"
        return f"{what}: {e.strerror or e}; check the path or its permissions"
    first = str(e).splitlines()[0] if str(e) else ""
    return (
        f"internal error ({type(e).__name__}: {first}); "
        "rerun with RESERVE_DEBUG=1 to see the traceback, and report it"
    )


if __name__ == "__main__":
    sys.exit(main())
