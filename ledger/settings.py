"""Settings: one frozen object built once from flags, environment and defaults.

Nothing here reads the environment at import time; :func:`build_settings` is called by the CLI
(or a test) with what it parsed. Secrets (the RPC password, database URLs with passwords) are kept
out of ``repr``.

Databases. ``RESERVE_DB`` (``--db``) is the URL the service runs with. On PostgreSQL that is a
*runtime* role that may only SELECT and INSERT; the tables belong to an *owner* role whose URL,
``RESERVE_DB_OWNER`` (``reserve init --owner-db``), only ``reserve init`` uses: it migrates as the
owner and grants the runtime role its rights. The runtime role is ``RESERVE_DB_RUNTIME_ROLE`` or,
by default, the user of the runtime URL.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from ledger.errors import InvalidInput

DEFAULT_DB_URL = "sqlite:///reserve.db"
DEFAULT_SIGNING_KEY = "reserve-signing.key"
MAX_SETTING_LENGTH = 100  # numeric settings: refuse absurd input before converting it


@dataclass(frozen=True, slots=True)
class RpcSettings:
    """How to reach bitcoind. Credentials come from the cookie file or the environment only."""

    url: str
    cookie_path: Path | None = None
    user: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout: float = 30.0


@dataclass(frozen=True, slots=True)
class PolicySettings:
    """The reserve's multisig policy knobs (see :mod:`custody.policy`)."""

    min_threshold: int = 2
    min_holders: int = 2


@dataclass(frozen=True, slots=True)
class Settings:
    db_url: str = field(default=DEFAULT_DB_URL, repr=False)
    signing_key_path: Path = Path(DEFAULT_SIGNING_KEY)
    rpc: RpcSettings | None = None
    policy: PolicySettings = PolicySettings()
    owner_db_url: str | None = field(default=None, repr=False)
    """The owner role's URL, used only by ``reserve init`` (None: migrate with ``db_url``)."""
    runtime_role: str | None = None
    """The PostgreSQL role ``init`` grants SELECT and INSERT to (None: the runtime URL's user)."""


SUPPORTED_DATABASES = {"sqlite": "pysqlite", "postgresql": "psycopg"}  # backend: driver


def normalise_db_url(value: str, what: str = "the database URL") -> str:
    """Accept a SQLAlchemy URL or a bare file path (taken as SQLite).

    Raises :class:`InvalidInput` for an empty value (``what`` names it: an empty ``--db`` is not
    ``./reserve.db``), a URL that cannot be parsed or names another database; the message never
    repeats the URL (it may hold a password).
    """
    if not value.strip():
        raise InvalidInput(
            f"{what} is empty; give a database URL (postgresql://USER:PASSWORD@HOST:PORT/DB, "
            "sqlite:///FILE) or a SQLite file path"
        )
    if "://" not in value:
        return f"sqlite:///{value}"
    if value.startswith("postgresql://"):
        value = "postgresql+psycopg://" + value.removeprefix("postgresql://")
    from sqlalchemy import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        url = make_url(value)
        backend, driver = url.get_backend_name(), url.get_driver_name()
        url.port  # noqa: B018  (parsed lazily by some versions: check it now)
    except (ArgumentError, ValueError) as e:
        raise InvalidInput(
            f"the database URL is not a valid URL ({type(e).__name__}); write "
            "postgresql://USER:PASSWORD@HOST:PORT/DB or sqlite:///FILE (or just a file path)"
        ) from None
    if SUPPORTED_DATABASES.get(backend) != driver:
        raise InvalidInput(
            f"the database URL names {backend}+{driver}; reserve runs on PostgreSQL with psycopg "
            "(postgresql://USER:PASSWORD@HOST:PORT/DB) or SQLite (sqlite:///FILE or a file path)"
        )
    return value


def _number_setting(env: Mapping[str, str], name: str, default: str, what: str) -> str:
    value = env.get(name, default).strip()
    if len(value) > MAX_SETTING_LENGTH:
        raise InvalidInput(f"{name} is {len(value)} characters long; it must be {what}")
    return value


def int_setting(env: Mapping[str, str], name: str, default: int, *, minimum: int = 1) -> int:
    """An integer environment setting, refused with a clear message when it is not one."""
    value = _number_setting(env, name, str(default), f"a whole number of at least {minimum}")
    try:
        number = int(value)
    except ValueError:
        raise InvalidInput(
            f"{name}={value!r} is not a whole number; set it to a number of at least {minimum} "
            f"or unset it (default {default})"
        ) from None
    if number < minimum:
        raise InvalidInput(f"{name}={number} is below {minimum}; set it to at least {minimum}")
    return number


def seconds_setting(env: Mapping[str, str], name: str, default: float) -> float:
    """A positive number of seconds from the environment (e.g. ``30`` or ``2.5``)."""
    value = _number_setting(env, name, str(default), "a number of seconds")
    try:
        seconds = float(value)
    except ValueError:
        seconds = float("nan")
    if not 0 < seconds < 86_400:  # also refuses nan and inf
        raise InvalidInput(
            f"{name}={value!r} is not a number of seconds between 0 and 86400; "
            f"set it to e.g. 30 or unset it (default {default:g})"
        )
    return seconds


def _chosen(
    flag: str | None, flag_name: str, env: Mapping[str, str], env_name: str, what: str, default: str
) -> str | None:
    """The flag, else the environment variable, else None (the default). An empty one is
    refused, never taken for "unset": ``--db ''`` must not quietly mean ``./reserve.db``."""
    if flag is not None:
        if not flag.strip():
            raise InvalidInput(
                f"{flag_name} is empty; give {what}, or leave {flag_name} out to use {env_name} "
                f"or the default ({default})"
            )
        return flag
    value = env.get(env_name)
    if value is not None and not value.strip():
        raise InvalidInput(
            f"{env_name} is set but empty; set it to {what}, or unset it to use the default ({default})"
        )
    return value


def build_settings(
    *,
    db: str | None = None,
    signing_key: str | None = None,
    rpc_url: str | None = None,
    rpc_cookie: str | None = None,
    owner_db: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Settings:
    """Flags win over environment, environment over defaults. Raises :class:`InvalidInput` for
    a setting that is not what it must be (e.g. ``RESERVE_RPC_TIMEOUT=abc``)."""
    e = os.environ if env is None else env
    url_or_file = "a database URL or a SQLite file path"
    db_url = normalise_db_url(
        _chosen(db, "--db", e, "RESERVE_DB", url_or_file, "./reserve.db") or DEFAULT_DB_URL
    )
    owner = _chosen(owner_db, "--owner-db", e, "RESERVE_DB_OWNER", url_or_file, "the --db URL")
    key_file = _chosen(
        signing_key, "--signing-key", e, "RESERVE_SIGNING_KEY", "a key file path", f"./{DEFAULT_SIGNING_KEY}"
    )
    key = Path(key_file or DEFAULT_SIGNING_KEY)
    url = rpc_url or e.get("RESERVE_RPC_URL")
    timeout = seconds_setting(e, "RESERVE_RPC_TIMEOUT", 30.0)  # checked even when unused
    rpc = None
    if url:
        cookie = rpc_cookie or e.get("RESERVE_RPC_COOKIE")
        rpc = RpcSettings(
            url=url,
            cookie_path=Path(cookie) if cookie else None,
            user=e.get("RESERVE_RPC_USER"),
            password=e.get("RESERVE_RPC_PASSWORD"),
            timeout=timeout,
        )
    policy = PolicySettings(
        min_threshold=int_setting(e, "RESERVE_POLICY_MIN_THRESHOLD", 2),
        min_holders=int_setting(e, "RESERVE_POLICY_MIN_HOLDERS", 2),
    )
    return Settings(
        db_url=db_url,
        signing_key_path=key,
        rpc=rpc,
        policy=policy,
        owner_db_url=normalise_db_url(owner) if owner else None,
        runtime_role=e.get("RESERVE_DB_RUNTIME_ROLE") or None,
    )
