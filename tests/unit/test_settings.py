"""Settings from flags and environment: bad numbers are refused with one clear message, the
owner and runtime database URLs are kept apart, and no password shows in ``repr``."""

from __future__ import annotations

import pytest

from ledger.errors import InvalidInput
from ledger.settings import build_settings, normalise_db_url


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("RESERVE_RPC_TIMEOUT", "abc"),
        ("RESERVE_RPC_TIMEOUT", "-1"),
        ("RESERVE_RPC_TIMEOUT", "nan"),
        ("RESERVE_RPC_TIMEOUT", "inf"),
        ("RESERVE_RPC_TIMEOUT", "9" * 5000),
        ("RESERVE_POLICY_MIN_THRESHOLD", "x"),
        ("RESERVE_POLICY_MIN_THRESHOLD", "0"),
        ("RESERVE_POLICY_MIN_THRESHOLD", "9" * 5000),
        ("RESERVE_POLICY_MIN_HOLDERS", "2.5"),
    ],
)
def test_bad_numeric_setting_names_the_variable(name: str, value: str) -> None:
    env = {"RESERVE_RPC_URL": "http://127.0.0.1:18443", name: value}
    with pytest.raises(InvalidInput, match=name) as e:
        build_settings(env=env)
    assert len(str(e.value)) < 300


def test_numeric_settings_are_read() -> None:
    s = build_settings(
        env={
            "RESERVE_RPC_URL": "http://127.0.0.1:18443",
            "RESERVE_RPC_TIMEOUT": "2.5",
            "RESERVE_POLICY_MIN_THRESHOLD": "3",
            "RESERVE_POLICY_MIN_HOLDERS": " 4 ",
        }
    )
    assert s.rpc is not None and s.rpc.timeout == 2.5
    assert (s.policy.min_threshold, s.policy.min_holders) == (3, 4)


def test_timeout_is_checked_even_without_a_node() -> None:
    with pytest.raises(InvalidInput, match="RESERVE_RPC_TIMEOUT"):
        build_settings(env={"RESERVE_RPC_TIMEOUT": "abc"})


def test_owner_and_runtime_urls() -> None:
    s = build_settings(
        env={
            "RESERVE_DB": "postgresql://app:runtime-secret@db/books",
            "RESERVE_DB_OWNER": "postgresql://owner:owner-secret@db/books",
            "RESERVE_DB_RUNTIME_ROLE": "app",
        }
    )
    assert s.db_url == "postgresql+psycopg://app:runtime-secret@db/books"
    assert s.owner_db_url == "postgresql+psycopg://owner:owner-secret@db/books"
    assert s.runtime_role == "app"
    assert "secret" not in repr(s)


def test_flags_win_over_environment() -> None:
    s = build_settings(
        db="flag.db", owner_db="owner.db", env={"RESERVE_DB": "env.db", "RESERVE_DB_OWNER": "x.db"}
    )
    assert (s.db_url, s.owner_db_url) == ("sqlite:///flag.db", "sqlite:///owner.db")
    assert build_settings(env={}).owner_db_url is None


@pytest.mark.parametrize(
    "url",
    [
        "mysql://u:hunter2-secret@x/db",
        "foo://bar",
        "postgresql://u:hunter2-secret@[::1/db",
        "postgresql+asyncpg://u:hunter2-secret@h/d",
    ],
)
def test_unsupported_or_malformed_database_url_is_refused_without_echoing_it(url: str) -> None:
    with pytest.raises(InvalidInput, match="database URL") as e:
        build_settings(env={"RESERVE_DB": url})
    assert "hunter2" not in str(e.value)


def test_database_url_forms() -> None:
    assert normalise_db_url("books.db") == "sqlite:///books.db"
    assert normalise_db_url("postgresql://u@h/d") == "postgresql+psycopg://u@h/d"
    assert normalise_db_url("sqlite:////abs/books.db") == "sqlite:////abs/books.db"


@pytest.mark.parametrize(
    ("flags", "env", "named"),
    [
        ({"db": ""}, {}, "--db is empty"),
        ({"db": " "}, {"RESERVE_DB": "books.db"}, "--db is empty"),
        ({}, {"RESERVE_DB": ""}, "RESERVE_DB is set but empty"),
        ({"owner_db": ""}, {}, "--owner-db is empty"),
        ({}, {"RESERVE_DB_OWNER": ""}, "RESERVE_DB_OWNER is set but empty"),
        ({"signing_key": ""}, {}, "--signing-key is empty"),
        ({}, {"RESERVE_SIGNING_KEY": ""}, "RESERVE_SIGNING_KEY is set but empty"),
    ],
)
def test_an_empty_setting_is_refused_not_taken_for_the_default(
    flags: dict[str, str], env: dict[str, str], named: str
) -> None:
    with pytest.raises(InvalidInput, match=named):
        build_settings(**flags, env=env)
    with pytest.raises(InvalidInput, match="--db is empty"):
        normalise_db_url("", "--db")
    flag_wins = build_settings(db="books.db", env={"RESERVE_DB": ""})
    assert flag_wins.db_url == "sqlite:///books.db"
