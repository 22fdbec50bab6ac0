"""The one error hierarchy of :mod:`ledger`.

Every message says what was wrong, with the offending value, and what to do. Checks that judge
(verification, audit) return findings; these exceptions mean "cannot go on". Any of them raised
by a service function means nothing was written.
"""

from __future__ import annotations


class LedgerError(Exception):
    """Root of every error raised by :mod:`ledger`."""


class InvalidInput(LedgerError, ValueError):
    """Malformed input: amounts, postings that do not balance, bad dates, bad names."""


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
