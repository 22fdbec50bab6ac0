"""Settings: one frozen object built once from flags, environment and defaults.

Nothing here reads the environment at import time; :func:`build_settings` is called by the CLI
(or a test) with what it parsed. Secrets (the RPC password) are kept out of ``repr``.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_DB_URL = "sqlite:///reserve.db"
DEFAULT_SIGNING_KEY = "reserve-signing.key"


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
    db_url: str = DEFAULT_DB_URL
    signing_key_path: Path = Path(DEFAULT_SIGNING_KEY)
    rpc: RpcSettings | None = None
    policy: PolicySettings = PolicySettings()


def normalise_db_url(value: str) -> str:
    """Accept a SQLAlchemy URL or a bare file path (taken as SQLite)."""
    if "://" in value:
        if value.startswith("postgresql://"):
            return "postgresql+psycopg://" + value.removeprefix("postgresql://")
        return value
    return f"sqlite:///{value}"


def build_settings(
    *,
    db: str | None = None,
    signing_key: str | None = None,
    rpc_url: str | None = None,
    rpc_cookie: str | None = None,
    env: Mapping[str, str] | None = None,
) -> Settings:
    """Flags win over environment, environment over defaults."""
    e = os.environ if env is None else env
    db_url = normalise_db_url(db or e.get("RESERVE_DB") or DEFAULT_DB_URL)
    key = Path(signing_key or e.get("RESERVE_SIGNING_KEY") or DEFAULT_SIGNING_KEY)
    url = rpc_url or e.get("RESERVE_RPC_URL")
    rpc = None
    if url:
        cookie = rpc_cookie or e.get("RESERVE_RPC_COOKIE")
        rpc = RpcSettings(
            url=url,
            cookie_path=Path(cookie) if cookie else None,
            user=e.get("RESERVE_RPC_USER"),
            password=e.get("RESERVE_RPC_PASSWORD"),
            timeout=float(e.get("RESERVE_RPC_TIMEOUT", "30")),
        )
    policy = PolicySettings(
        min_threshold=int(e.get("RESERVE_POLICY_MIN_THRESHOLD", "2")),
        min_holders=int(e.get("RESERVE_POLICY_MIN_HOLDERS", "2")),
    )
    return Settings(db_url=db_url, signing_key_path=key, rpc=rpc, policy=policy)
