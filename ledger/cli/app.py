"""What every ``reserve`` command shares: settings, database sessions, the node client, output.

Commands get an :class:`App` through ``@pass_app``; they parse arguments, call one service
function inside ``app.session()`` and render the result as a table or, with ``--json``, as JSON.

Output never carries raw control characters: :func:`escaping_streams` wraps ``sys.stdout`` and
``sys.stderr`` (what ``click.echo`` writes to) in :class:`EscapingStream`, and :class:`SafeConsole`
escapes text before rich lays it out, then writes to the real stream (its own styling codes pass).

Before the first session a command checks that the database exists and is at the latest
revision; only ``reserve init`` creates or upgrades one.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, TypeVar, cast

import click
from rich.console import Console
from rich.segment import Segment
from rich.text import Text

from ledger.errors import DatabaseUnavailable, InvalidInput, NotInitialised
from ledger.files import GuardedStream
from ledger.settings import Settings

if TYPE_CHECKING:  # imported when a command runs: `reserve --help` pays for none of them
    from sqlalchemy import Engine
    from sqlalchemy.orm import Session

    from custody.rpc import RpcClient

F = TypeVar("F", bound=Callable[..., Any])

CLI_ENTRY = "reserve.entry"  # ctx.meta key: the CLI entry point (main), handed to the demo


@dataclass(slots=True)
class App:
    settings: Settings
    console: Console
    _engine: Engine | None = None
    _ready: bool = False

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            from ledger.journal.heads import Sealer, sealing
            from ledger.store.db import RUNTIME_ROLE, make_engine

            engine = make_engine(self.settings.db_url)
            if self.settings.runtime_role:
                engine = engine.execution_options(**{RUNTIME_ROLE: self.settings.runtime_role})
            # every write transaction ends with a tree head signed by the ledger key (the key
            # file is read only when a transaction has appended entries)
            self._engine = sealing(engine, Sealer(path=self.settings.signing_key_path))
        return self._engine

    def ready_engine(self) -> Engine:
        """The engine, after checking the database exists and is initialised (once)."""
        if not self._ready:
            from sqlalchemy.exc import DBAPIError

            from ledger.store.db import describe_database_error
            from ledger.store.migrate import check_ready

            check_database_file(self.settings.db_url)
            try:
                check_ready(self.engine)
            except DBAPIError as e:  # unreachable, wrong password, missing database, not a database
                raise DatabaseUnavailable(describe_database_error(e, self.settings.db_url)) from e
            self._ready = True
        return self.engine

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction: committed when the block ends, rolled back on any error. If it
        appended entries, a tree head signed by the ledger key covering them is stored just before
        it commits (:func:`ledger.journal.heads.seal`); a failure to seal rolls everything back."""
        from sqlalchemy.orm import Session

        with Session(self.ready_engine()) as s, s.begin():
            yield s

    @contextmanager
    def read_session(self) -> Iterator[Session]:
        """A short read-only transaction that takes no write lock (SQLite: deferred ``BEGIN``).

        Commands that talk to the node gather with this, judge, then write in :meth:`session`.
        """
        from sqlalchemy.orm import Session

        from ledger.store.db import read_only

        with Session(read_only(self.ready_engine())) as s, s.begin():
            yield s

    def rpc(self) -> RpcClient:
        if self.settings.rpc is None:
            raise InvalidInput(
                "no node configured: pass --rpc-url or set RESERVE_RPC_URL "
                "(with RESERVE_RPC_COOKIE, or RESERVE_RPC_USER/RESERVE_RPC_PASSWORD); "
                "`reserve regtest start` prints ready-made settings"
            )
        from custody.rpc import RpcClient

        r = self.settings.rpc
        return RpcClient(
            r.url, cookie_path=r.cookie_path, user=r.user, password=r.password, timeout=r.timeout
        )

    def print_json(self, data: Any) -> None:
        click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


def check_database_file(db_url: str) -> None:
    """A SQLite database must be an existing file: never create one silently (a typo in
    ``--db`` would start empty books), never open a directory."""
    from ledger.store.db import shown_url, sqlite_path

    path = sqlite_path(db_url)
    if path is None:
        return
    if path.is_dir():
        raise InvalidInput(f"--db {path} is a directory; give the database file, e.g. {path / 'reserve.db'}")
    if not path.exists():
        raise NotInitialised(
            f"no database at {shown_url(db_url)} (the file {path} does not exist); check the path, "
            f"or run `reserve init --db {path}` to create it"
        )


# --- Output that never sends raw control characters to a terminal ------------------------------

_CONTROLS = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")
"""C0 controls but tab and newline, DEL, C1 controls (ESC and CSI among them), and the line,
paragraph and bidirectional-override characters that reorder or break what a reader sees."""


def escape_controls(text: str) -> str:
    """``text`` with every control character but tab and newline shown as ``\\xNN`` (``\\uNNNN``
    above U+00FF), so stored text can never drive the terminal."""
    return _CONTROLS.sub(_escape, text)


def _escape(m: re.Match[str]) -> str:
    code = ord(m[0])
    return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"


STDOUT = "to standard output"  # as the error says it: "cannot write to standard output: ..."


class EscapingStream(GuardedStream):
    """A text stream that escapes control characters on their way to ``raw``; a failed write or
    flush is :class:`~ledger.errors.WriteFailed` naming the stream (``standard output``).

    Rich consoles writing to ``sys.stdout`` find the real stream through ``rich_proxied_file``:
    they escape text themselves (:class:`SafeConsole`) and keep their styling codes.
    """

    def __init__(self, raw: IO[str] | None, name: str = STDOUT) -> None:
        super().__init__(raw, name)
        self._plain = GuardedStream(raw, name)  # what rich writes to

    @property
    def rich_proxied_file(self) -> IO[str]:
        return cast("IO[str]", self._plain)

    @property
    def broken(self) -> bool:
        """Whether a write or flush to the stream failed (through rich or not)."""
        return self.failed is not None or self._plain.failed is not None

    def write(self, text: str) -> int:
        if not isinstance(text, str):  # click probes streams with b"": a text stream refuses bytes
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        super().write(escape_controls(text))
        return len(text)


@contextmanager
def escaping_streams() -> Iterator[None]:
    """``sys.stdout`` and ``sys.stderr`` escape control characters until the block ends."""
    out, err = sys.stdout, sys.stderr
    sys.stdout, sys.stderr = EscapingStream(out, STDOUT), EscapingStream(err, "to standard error")
    try:
        yield
    finally:
        sys.stdout, sys.stderr = out, err


class SafeConsole(Console):
    """A rich console that shows control characters in text escaped, measured as they print."""

    def render_str(self, text: str, **kwargs: Any) -> Text:
        return super().render_str(escape_controls(text), **kwargs)

    def _render_buffer(self, buffer: Iterable[Segment]) -> str:
        # Text objects built by callers bypass render_str: escape what reaches the terminal.
        safe = (s if s.control else Segment(escape_controls(s.text), s.style) for s in buffer)
        return super()._render_buffer(safe)


pass_app = click.make_pass_decorator(App)


def json_option(f: F) -> F:
    """The ``--json`` flag every reporting command takes."""
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for programs.")(f)
