"""One error edge: one :class:`InvalidInput`, and one table in the CLI that gives every error class
of both packages its exit code and its error code for programs."""

from __future__ import annotations

import re

import click
import pytest
from sqlalchemy.exc import OperationalError

import custody.errors
import ledger.errors
from custody.errors import CustodyError, InvalidInput, NodeUnreachable, PolicyViolation, rpc_error
from ledger.cli.main import ERRORS, EXIT_ERROR, describe_error
from ledger.errors import Conflict, LedgerError, NotFound
from ledger.settings import build_settings


def subclasses(root: type[Exception]) -> set[type[Exception]]:
    found = {root}
    for sub in root.__subclasses__():
        found |= subclasses(sub)
    return found


ERROR_CLASSES = sorted(
    (
        c
        for c in subclasses(LedgerError) | subclasses(CustodyError)
        if c.__module__ in ("ledger.errors", "custody.errors")
    ),
    key=lambda c: c.__name__,
)


def test_both_error_modules_are_walked() -> None:
    names = {c.__name__ for c in ERROR_CLASSES}
    assert {"LedgerError", "CustodyError", "InvalidInput", "NotInitialised", "NodeWarmingUp"} <= names
    defined = {
        v for m in (custody.errors, ledger.errors) for v in vars(m).values()
        if isinstance(v, type) and issubclass(v, Exception)
    }  # fmt: skip
    assert defined == set(ERROR_CLASSES)  # every class either module defines or re-exports


@pytest.mark.parametrize("cls", ERROR_CLASSES, ids=lambda c: c.__name__)
def test_every_error_class_has_its_own_row(cls: type[Exception]) -> None:
    kind = ERRORS[cls]  # its own row, not one inherited from a base class
    assert kind.exit_code == EXIT_ERROR
    assert re.fullmatch("[a-z]+(-[a-z]+)*", kind.code), kind.code


def test_one_invalid_input_for_both_packages() -> None:
    assert ledger.errors.InvalidInput is custody.errors.InvalidInput
    with pytest.raises(InvalidInput):
        raise ledger.errors.InvalidInput("bad date")
    assert issubclass(InvalidInput, ValueError) and issubclass(InvalidInput, CustodyError)
    assert sum(c.__name__ == "InvalidInput" for c in ERROR_CLASSES) == 1


@pytest.mark.parametrize(
    ("error", "code"),
    [
        (InvalidInput("amount 'abc' is not a number"), "invalid-input"),
        (NotFound("no account 'acme'"), "not-found"),
        (Conflict("ref r1 reused"), "conflict"),
        (PolicyViolation(("threshold 1 is below 2",)), "policy-violation"),
        (NodeUnreachable("cannot reach bitcoind at http://127.0.0.1:1"), "node-unreachable"),
        (rpc_error(-28, "Loading block index", "getblockchaininfo"), "node-warming-up"),
        (rpc_error(-18, "Requested wallet does not exist", "getwalletinfo"), "wallet-not-found"),
        (rpc_error(-1, "something else", "getblock"), "node-error"),
        (LedgerError("the chain kept moving"), "ledger-error"),
        (click.UsageError("No such option: --bogus"), "usage"),
        (KeyboardInterrupt(), "interrupted"),
        (OverflowError("int too large"), "invalid-input"),
        (RuntimeError("nobody expected this"), "internal"),
    ],
    ids=lambda v: v if isinstance(v, str) else type(v).__name__,
)
def test_errors_are_classified_by_the_table(error: BaseException, code: str) -> None:
    kind, message = describe_error(error)
    assert kind.code == code
    assert message and "\n" not in message


def test_interrupt_exits_130_everything_else_2() -> None:
    assert describe_error(KeyboardInterrupt())[0].exit_code == 130
    assert describe_error(RuntimeError("x"))[0].exit_code == EXIT_ERROR


def test_context_added_on_the_way_keeps_the_type_and_shows_in_the_message() -> None:
    error = NodeUnreachable("cannot reach bitcoind at http://127.0.0.1:1")
    error.add_note("nothing was stored")
    kind, message = describe_error(error)
    assert kind.code == "node-unreachable"
    assert message == "cannot reach bitcoind at http://127.0.0.1:1; nothing was stored"


def test_a_multi_line_message_is_one_line() -> None:
    _, message = describe_error(PolicyViolation(("threshold 1 is below 2", "one holder")))
    assert message == "multisig policy violated: - threshold 1 is below 2 - one holder"


def test_database_errors_are_database_with_the_password_masked() -> None:
    url = "postgresql+psycopg://reserve:never-show-this-pw-42@127.0.0.1:1/books"
    refused = OperationalError("SELECT 1", {}, Exception(f"{url}: Connection refused"))
    kind, message = describe_error(refused, (build_settings(db=url),))
    assert kind.code == "database"
    assert "cannot connect to the database server at 127.0.0.1:1" in message
    assert "never-show-this-pw-42" not in message
    kind, message = describe_error(InvalidInput(f"bad URL {url}"), (build_settings(db=url),))
    assert kind.code == "invalid-input" and "never-show-this-pw-42" not in message
