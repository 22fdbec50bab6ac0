"""reserve-ledger: the append-only, chain-verified books of a Bitcoin reserve."""

__version__ = "0.1.0"
