"""What a chain transaction means for the reserve's vaults, and the entry that books it. Pure.

Given a decoded transaction (:class:`custody.chain.ChainTx`) and the scripts of every vault
(``script_pubkey -> vault name``), :func:`classify` says what moved:

- **mining**: a coinbase paying one vault (the reward, immature for 100 blocks);
- **deposit**: no vault input, outputs paying one vault;
- **withdrawal**: inputs from one vault, nothing to another vault; the amount is what left for
  outside scripts, the network fee is the transaction's fee (paid by the vault), change back to
  the same vault is netted out;
- **transfer**: inputs from one vault, outputs to another vault (plus optional change); anything
  paid outside on top is booked as a withdrawal leg to the counterparty.

:func:`postings_for` turns a movement into balanced postings (positive = into the account).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass

from custody.amount import format_btc
from custody.chain import ChainTx
from ledger.entry import Posting
from ledger.errors import ChainMismatch

MINING_INCOME = "mining-income"
NETWORK_FEES = "network-fees"
UNATTRIBUTED = "unattributed"
SYSTEM_ACCOUNTS = ((MINING_INCOME, "income"), (NETWORK_FEES, "expense"), (UNATTRIBUTED, "counterparty"))


@dataclass(frozen=True, slots=True)
class Movement:
    kind: str  # deposit | withdrawal | transfer | mining
    txid: str
    source: str | None  # vault spending (withdrawal, transfer)
    target: str | None  # vault receiving (deposit, transfer, mining)
    amount: int  # to target, or (withdrawal) paid outside
    external: int  # paid to non-vault scripts (withdrawal part of a transfer too)
    fee: int
    outputs: tuple[int, ...]  # indexes of outputs paying any vault


def classify(tx: ChainTx, scripts: Mapping[bytes, str]) -> Movement | None:
    """The vault movement of ``tx``, or ``None`` if it touches no vault."""
    spent: dict[str, int] = defaultdict(int)
    for i in tx.inputs:
        if i.prevout is not None and (v := scripts.get(i.prevout.script_pubkey)) is not None:
            spent[v] += i.prevout.value
    received: dict[str, int] = defaultdict(int)
    vault_outputs = []
    external = 0
    for o in tx.outputs:
        v = scripts.get(o.script_pubkey)
        if v is None:
            external += o.value
        else:
            received[v] += o.value
            vault_outputs.append(o.index)
    if not spent and not received:
        return None
    outputs = tuple(vault_outputs)
    if not spent:
        if len(received) != 1:
            raise ChainMismatch(
                f"transaction {tx.txid} pays several vaults ({', '.join(sorted(received))}) at once; "
                "record it with `reserve record --kind deposit` and explicit postings"
            )
        ((target, amount),) = received.items()
        kind = "mining" if tx.is_coinbase else "deposit"
        return Movement(kind, tx.txid, None, target, amount, 0, 0, outputs)
    if len(spent) != 1:
        raise ChainMismatch(
            f"transaction {tx.txid} spends from several vaults ({', '.join(sorted(spent))}); "
            "record it with explicit postings"
        )
    ((source, spent_sat),) = spent.items()
    change = received.pop(source, 0)
    fee = tx.fee
    if not received:
        amount = spent_sat - change - fee
        return Movement("withdrawal", tx.txid, source, None, amount, amount, fee, outputs)
    if len(received) != 1:
        raise ChainMismatch(f"transaction {tx.txid} pays several other vaults; record it by hand")
    ((target, amount),) = received.items()
    return Movement("transfer", tx.txid, source, target, amount, external, fee, outputs)


def postings_for(m: Movement, counterparty: str | None = None) -> tuple[Posting, ...]:
    """Balanced postings for a movement; ``counterparty`` defaults to :data:`UNATTRIBUTED`."""
    other = counterparty or UNATTRIBUTED
    legs: list[Posting] = []
    if m.kind == "mining":
        assert m.target is not None
        legs = [Posting(m.target, m.amount), Posting(MINING_INCOME, -m.amount)]
    elif m.kind == "deposit":
        assert m.target is not None
        legs = [Posting(m.target, m.amount), Posting(other, -m.amount)]
    else:
        assert m.source is not None
        out_of_source = m.external + m.fee + (m.amount if m.kind == "transfer" else 0)
        legs.append(Posting(m.source, -out_of_source))
        if m.kind == "transfer":
            assert m.target is not None
            legs.append(Posting(m.target, m.amount))
        if m.external:
            legs.append(Posting(other, m.external))
        if m.fee:
            legs.append(Posting(NETWORK_FEES, m.fee))
    return tuple(legs)


def describe(m: Movement) -> str:
    if m.kind == "mining":
        return f"mining reward of {format_btc(m.amount)} BTC to vault {m.target}"
    if m.kind == "deposit":
        return f"deposit of {format_btc(m.amount)} BTC to vault {m.target}"
    if m.kind == "withdrawal":
        return f"withdrawal of {format_btc(m.amount)} BTC from vault {m.source} (fee {format_btc(m.fee)})"
    return (
        f"transfer of {format_btc(m.amount)} BTC from vault {m.source} to vault {m.target} "
        f"(fee {format_btc(m.fee)})"
    )
