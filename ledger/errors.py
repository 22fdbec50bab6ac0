"""The one error hierarchy of :mod:`ledger`.

Every message says what was wrong, with the offending value, and what to do. Checks that judge
(verification, audit) return findings; these exceptions mean "cannot go on". Any of them raised
by a service function means nothing was written.

Bad input is :class:`InvalidInput`, the one class both packages raise: it lives in
:mod:`custody.errors` (``custody`` never imports ``ledger``) and is re-exported here. It is not a
:class:`LedgerError`: code that must catch any error of the reserve catches
``(LedgerError, CustodyError)``. Errors of the node or of custody are never re-wrapped as a
:class:`LedgerError`: a caller that adds what it was doing uses ``e.add_note(...)`` and re-raises.
The ``reserve`` CLI maps each class to its exit code and error code in one table
(:data:`ledger.cli.main.ERRORS`).
"""

from __future__ import annotations

from custody.errors import InvalidInput

__all__ = [
    "ChainMismatch",
    "Conflict",
    "DatabaseUnavailable",
    "InvalidInput",
    "LedgerError",
    "NotFound",
    "NotInitialised",
    "TamperDetected",
    "WriteFailed",
]


class LedgerError(Exception):
    """Root of every error raised by :mod:`ledger` (bad input aside: :class:`InvalidInput`)."""


class NotFound(LedgerError):
    """An unknown account, vault, entry or checkpoint."""


class Conflict(LedgerError):
    """The request contradicts what is stored: a reused reference with different content, an
    entry already reversed, a name already taken, a transaction already recorded."""


class TamperDetected(LedgerError):
    """The stored journal does not match its own hashes or signed checkpoints."""


class ChainMismatch(LedgerError):
    """A movement could not be verified against the chain (wrong vault, amount mismatch, ...)."""


class NotInitialised(LedgerError):
    """The database has no schema or no signing key yet: run ``reserve init``."""


class DatabaseUnavailable(LedgerError):
    """The database cannot be used: its server unreachable, the credentials refused, the database
    missing or not a reserve database, or its schema made by a newer reserve-ledger."""


class WriteFailed(LedgerError):
    """A file (or standard output) could not be written: the message names the path and the
    cause. Nothing partial is left behind: the old file, if any, is untouched
    (:mod:`ledger.files`)."""
