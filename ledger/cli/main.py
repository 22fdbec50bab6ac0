"""Entry point of the ``reserve`` command: global options, subcommands and the one error edge.

Exit codes: 0 success; 1 the command ran and found problems (verify, audit, vault check findings:
the command returns :data:`EXIT_FINDINGS`, the one way a command sets its exit code); 2 the
command could not do what was asked (bad input, unknown name, conflict, node or database
unreachable, a bad setting, a file or standard output that could not be written); 130
interrupted. Every error ends in :func:`_run`, which finds its
exit code and error code in one table, :data:`ERRORS`, as HWI's ``_cli.py`` does. The error is one
clear line on stderr (``error: MESSAGE``), or, when the command line has ``--json``, one JSON
object on stdout: ``{"error": {"code": CODE, "message": MESSAGE}}``. Never a traceback
(``RESERVE_DEBUG=1`` shows the traceback of an error that is not the reserve's own). Passwords in
database URLs are masked in every message.

Output never carries raw control characters from stored text: click's streams are wrapped in
:class:`~ledger.cli.app.EscapingStream` and the rich console escapes them before layout.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import click

from custody.errors import (
    BlockNotAvailable,
    CustodyError,
    InvalidAddressOrKey,
    InvalidParameter,
    MethodNotFound,
    NodeTimedOut,
    NodeUnreachable,
    NodeWarmingUp,
    PolicyViolation,
    RpcError,
    ScanInProgress,
    WalletAlreadyLoaded,
    WalletNotFound,
)
from ledger import __version__
from ledger.cli.app import CLI_ENTRY, App, EscapingStream, SafeConsole, escaping_streams
from ledger.cli.commands import register
from ledger.errors import (
    ChainMismatch,
    Conflict,
    DatabaseUnavailable,
    InvalidInput,
    LedgerError,
    NotFound,
    NotInitialised,
    TamperDetected,
    WriteFailed,
)
from ledger.settings import Settings, build_settings, normalise_db_url

EXIT_OK = 0
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

    runtime_url = normalise_db_url(db, "--db") if db is not None else settings.db_url
    owner_url = normalise_db_url(owner_db, "--owner-db") if owner_db is not None else settings.owner_db_url
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
        except (NotInitialised, InvalidInput):  # gone again, or not all written yet
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


# --- One error edge: exit codes, error codes, one line or one JSON object ----------------------


@dataclasses.dataclass(frozen=True, slots=True)
class ErrorKind:
    """How ``reserve`` ends on an error: its exit code and the stable code programs read."""

    exit_code: int
    code: str


def _fails(code: str) -> ErrorKind:
    return ErrorKind(EXIT_ERROR, code)


ERRORS: dict[type[BaseException], ErrorKind] = {
    # bad input from either package: the one class, custody's, re-exported by ledger.errors
    InvalidInput: _fails("invalid-input"),
    # ledger.errors
    LedgerError: _fails("ledger-error"),
    NotFound: _fails("not-found"),
    Conflict: _fails("conflict"),
    NotInitialised: _fails("not-initialised"),
    DatabaseUnavailable: _fails("database"),
    TamperDetected: _fails("tamper-detected"),
    ChainMismatch: _fails("chain-mismatch"),
    WriteFailed: _fails("write-failed"),
    # custody.errors
    CustodyError: _fails("custody-error"),
    PolicyViolation: _fails("policy-violation"),
    NodeUnreachable: _fails("node-unreachable"),
    NodeTimedOut: _fails("node-timeout"),
    NodeWarmingUp: _fails("node-warming-up"),
    WalletNotFound: _fails("wallet-not-found"),
    RpcError: _fails("node-error"),
    ScanInProgress: _fails("scan-in-progress"),
    BlockNotAvailable: _fails("block-not-available"),
    InvalidAddressOrKey: _fails("node-error"),
    InvalidParameter: _fails("node-error"),
    WalletAlreadyLoaded: _fails("node-error"),
    MethodNotFound: _fails("node-error"),
    # the command line
    click.ClickException: _fails("usage"),  # usage errors, and a file argument that cannot be opened
    click.exceptions.Abort: _fails("aborted"),
    KeyboardInterrupt: ErrorKind(EXIT_INTERRUPTED, "interrupted"),
    # Python's own; a database error (SQLAlchemy's, recognised by describe_database_error) is DATABASE
    OverflowError: _fails("invalid-input"),
    OSError: _fails("os-error"),
    Exception: _fails("internal"),
}
"""Each error class, its exit code and its error code; an error takes the row of the first class
of its MRO found here. Under ``--json`` the error is ``{"error": {"code": ..., "message": ...}}``
on stdout; otherwise ``error: MESSAGE`` on stderr."""

DATABASE = ERRORS[DatabaseUnavailable]
RESERVE_ERRORS = (LedgerError, CustodyError)


def main(argv: list[str] | None = None) -> int:
    """Run the CLI and map errors to exit codes; output goes through the escaping streams.

    Standard output is flushed before the exit code is decided: output that could not be
    written (a full disk, a closed pipe) is an error, exit 2, never a silent exit 0."""
    args = sys.argv[1:] if argv is None else list(argv)
    with escaping_streams():
        code = _run(args)
        stdout = sys.stdout
        try:
            stdout.flush()
        except WriteFailed as e:
            code = code or _report(e, None, as_json=False)
        if isinstance(stdout, EscapingStream) and stdout.broken:
            _drop_pending_output(stdout)
    return code


def _drop_pending_output(stdout: EscapingStream) -> None:
    """After a failed write to the process's standard output, point its descriptor at
    ``/dev/null``: Python flushes what is left at exit and would fail again, with a traceback
    and exit 120 (what the Python documentation advises for ``EPIPE``)."""
    process_stdout = sys.__stdout__
    if process_stdout is None or stdout.raw is not process_stdout:
        return  # a stream of a caller (tests, the demo): theirs to handle
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, process_stdout.fileno())
        os.close(devnull)


def _run(argv: list[str]) -> int:
    ctx: click.Context | None = None
    try:
        ctx = cli.make_context("reserve", argv)
        with ctx:
            rv = cli.invoke(ctx)
    except click.exceptions.Exit as e:  # --help, --version
        return int(e.exit_code)
    except (Exception, KeyboardInterrupt) as e:
        if os.environ.get("RESERVE_DEBUG") == "1" and not isinstance(
            e, (*RESERVE_ERRORS, click.ClickException, click.exceptions.Abort, KeyboardInterrupt)
        ):
            raise
        return _report(e, ctx, as_json=json_requested(argv))
    return rv if isinstance(rv, int) else EXIT_OK


def json_requested(argv: list[str]) -> bool:
    """Whether the command line asks for JSON (``--json`` before any ``--``)."""
    return "--json" in (argv[: argv.index("--")] if "--" in argv else argv)


def _report(e: BaseException, ctx: click.Context | None, *, as_json: bool) -> int:
    """Say what went wrong (JSON on stdout, or one line on stderr); the exit code."""
    kind, message = describe_error(e, _settings(ctx))
    try:
        if as_json:
            error = {"code": kind.code, "message": message}
            click.echo(json.dumps({"error": error}, indent=2, sort_keys=True))
        elif isinstance(e, click.ClickException):
            e.show()  # with the usage line and the --help hint
        elif isinstance(e, (click.exceptions.Abort, KeyboardInterrupt)):
            click.echo(message, err=True)
        else:
            click.echo(f"error: {message}", err=True)
    except WriteFailed:  # standard output (or error) is what failed: say it where it can be seen
        with contextlib.suppress(WriteFailed):
            click.echo(f"error: {message}", err=True)
    return kind.exit_code


def describe_error(e: BaseException, settings: tuple[Settings, ...] = ()) -> tuple[ErrorKind, str]:
    """The table's row for ``e`` and one line saying what went wrong and what to do, with every
    known password masked (``settings``: those the command ran with)."""
    kind = next(ERRORS[c] for c in type(e).__mro__ if c in ERRORS)
    if isinstance(e, click.ClickException):
        message = e.format_message()
    elif isinstance(e, click.exceptions.Abort):
        message = "aborted"
    elif isinstance(e, KeyboardInterrupt):
        message = "interrupted"
    elif isinstance(e, RESERVE_ERRORS):
        message = str(e)
    else:
        kind, message = _explain(e, kind, settings[0].db_url if settings else None)
    notes = getattr(e, "__notes__", ())  # what callers added on the way up (e.add_note)
    line = "; ".join((message, *notes))
    return kind, _mask(" ".join(line.split()) if "\n" in line else line, settings)


def _settings(ctx: click.Context | None) -> tuple[Settings, ...]:
    """The settings the command ran with (and those ``init`` switched to, e.g. the owner URL)."""
    if ctx is None:
        return ()
    app = ctx.find_object(App)
    found = (app.settings,) if app is not None else ()
    init_settings = ctx.meta.get(INIT_SETTINGS)
    return (init_settings, *found) if isinstance(init_settings, Settings) else found


def _mask(text: str, settings: tuple[Settings, ...]) -> str:
    if not settings:
        return text
    from ledger.store.db import mask_secrets

    for s in settings:
        text = mask_secrets(text, s.db_url, s.owner_db_url)
    return text


def _explain(e: BaseException, kind: ErrorKind, db_url: str | None) -> tuple[ErrorKind, str]:
    """What went wrong and what to do, for errors that are not the reserve's own."""
    from ledger.store.db import describe_database_error

    described = describe_database_error(e, db_url)
    if described is not None:
        return DATABASE, described
    if isinstance(e, OverflowError):
        return kind, f"a number is too large ({e}); give a smaller value"
    if isinstance(e, OSError):
        what = f"cannot use {e.filename}" if e.filename else "a file or network operation failed"
        return kind, f"{what}: {e.strerror or e}; check the path or its permissions"
    first = str(e).splitlines()[0] if str(e) else ""
    return kind, (
        f"internal error ({type(e).__name__}: {first}); "
        "rerun with RESERVE_DEBUG=1 to see the traceback, and report it"
    )


if __name__ == "__main__":
    sys.exit(main())
