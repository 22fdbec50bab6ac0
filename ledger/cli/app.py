"""What every ``reserve`` command shares: settings, database sessions, the node client, output.

Commands get an :class:`App` through ``@pass_app``; they parse arguments, call one service
function inside ``app.session()`` and render the result as a table or, with ``--json``, as JSON.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, TypeVar

import click
from rich.console import Console
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from custody.rpc import RpcClient
from ledger.db import make_engine, read_only
from ledger.errors import LedgerError
from ledger.settings import Settings

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(slots=True)
class App:
    settings: Settings
    console: Console
    _engine: Engine | None = None

    @property
    def engine(self) -> Engine:
        if self._engine is None:
            self._engine = make_engine(self.settings.db_url)
        return self._engine

    @contextmanager
    def session(self) -> Iterator[Session]:
        """One transaction: committed when the block ends, rolled back on any error."""
        with Session(self.engine) as s, s.begin():
            yield s

    @contextmanager
    def read_session(self) -> Iterator[Session]:
        """A short read-only transaction that takes no write lock (SQLite: deferred ``BEGIN``).

        Commands that talk to the node gather with this, judge, then write in :meth:`session`.
        """
        with Session(read_only(self.engine)) as s, s.begin():
            yield s

    def rpc(self) -> RpcClient:
        if self.settings.rpc is None:
            raise LedgerError(
                "no node configured: pass --rpc-url or set RESERVE_RPC_URL "
                "(with RESERVE_RPC_COOKIE, or RESERVE_RPC_USER/RESERVE_RPC_PASSWORD); "
                "`reserve regtest start` prints ready-made settings"
            )
        r = self.settings.rpc
        return RpcClient(
            r.url, cookie_path=r.cookie_path, user=r.user, password=r.password, timeout=r.timeout
        )

    def print_json(self, data: Any) -> None:
        click.echo(json.dumps(data, indent=2, sort_keys=True, default=str))


pass_app = click.make_pass_decorator(App)


def json_option(f: F) -> F:
    """The ``--json`` flag every reporting command takes."""
    return click.option("--json", "as_json", is_flag=True, help="Print JSON for programs.")(f)
