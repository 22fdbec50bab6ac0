"""The one coinbase maturity rule.

Consensus (``COINBASE_MATURITY`` in Bitcoin Core's ``consensus/consensus.h``): a coinbase output
may be spent only by a transaction in a block at least 100 blocks after the coinbase's own, so
the earliest spend is mined when the coinbase has 100 confirmations and the spending block makes
it 101 deep. Bitcoin Core's wallet counts a coinbase as ``immature`` until then
(``CWallet::GetTxBlocksToMaturity``: ``max(0, COINBASE_MATURITY + 1 - depth)``), and so does
this project: a coinbase output is spendable (mature) from 101 confirmations.
"""

from __future__ import annotations

COINBASE_MATURITY = 100
"""Blocks after its own before a coinbase output may be spent (consensus)."""


def blocks_to_maturity(confirmations: int) -> int:
    """Blocks still to be mined before a coinbase with ``confirmations`` confirmations is
    spendable (0 when it is), as Bitcoin Core's wallet counts them."""
    return max(0, COINBASE_MATURITY + 1 - confirmations)


def is_immature(*, coinbase: bool, confirmations: int) -> bool:
    """Whether an output is an immature coinbase output: a coinbase below 101 confirmations."""
    return coinbase and blocks_to_maturity(confirmations) > 0
