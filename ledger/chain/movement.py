"""What a chain transaction means for the reserve's vaults, and the entry that books it. Pure.

Given a decoded transaction (:class:`custody.chain.ChainTx`) and the scripts of every vault
(``script_pubkey -> vault name``), :func:`classify` works output by output and input by input:

- each vault's **net flow** is what its scripts received minus what its inputs spent (a vault that
  only moves coins between its own scripts, a consolidation, has a net flow of minus the fee);
- **external** is what went to scripts of no vault;
- the **fee** is the transaction's fee when every input is the reserve's (the reserve paid it);
  when inputs of others are mixed in (a payjoin, a deposit) the reserve does not pay the fee.

The kind follows from the flows: ``mining`` (a coinbase), ``deposit`` (no vault input),
``transfer`` (some vault received more than it spent while vault inputs were spent), ``withdrawal``
(vault inputs, coins left for outside scripts), ``fee`` (only the fee left, e.g. a consolidation).
One transaction can pay several vaults, spend from several vaults and pay outside at once: every
vault gets exactly its own net flow, so the books match the chain to the satoshi whatever the
shape. :func:`postings_for` turns a movement into balanced postings (positive = into the account).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from custody.amount import format_btc
from custody.chain import ChainTx
from ledger.journal.entry import AccountType, Posting

MINING_INCOME = "mining-income"
NETWORK_FEES = "network-fees"
UNATTRIBUTED = "unattributed"
SYSTEM_ACCOUNTS = (
    (MINING_INCOME, AccountType.INCOME),
    (NETWORK_FEES, AccountType.EXPENSE),
    (UNATTRIBUTED, AccountType.COUNTERPARTY),
)


class MovementKind(StrEnum):
    MINING = "mining"
    DEPOSIT = "deposit"
    WITHDRAWAL = "withdrawal"
    TRANSFER = "transfer"
    FEE = "fee"  # only the network fee left the reserve (a consolidation inside a vault)


@dataclass(frozen=True, slots=True)
class Movement:
    """The reserve's side of one transaction, in satoshis.

    ``flows`` is each touched vault's net change (non-zero, sorted by vault name); ``external``
    what the reserve's inputs paid to outside scripts (0 for deposits and mining); ``fee`` the
    network fee the reserve paid (0 when it paid none); ``outputs`` the indexes of outputs
    paying any vault. ``foreign_inputs`` says whether inputs of others were spent too.
    """

    kind: MovementKind
    txid: str
    flows: tuple[tuple[str, int], ...]
    external: int
    fee: int
    outputs: tuple[int, ...]
    foreign_inputs: bool = False

    def __post_init__(self) -> None:
        if any(n == 0 for _, n in self.flows):
            raise ValueError(f"movement {self.txid}: a zero vault flow")
        if self.external < 0 or self.fee < 0:
            raise ValueError(f"movement {self.txid}: negative external amount or fee")

    @property
    def flow(self) -> dict[str, int]:
        return dict(self.flows)

    @property
    def vaults(self) -> tuple[str, ...]:
        return tuple(v for v, _ in self.flows)

    @property
    def sources(self) -> tuple[str, ...]:
        """Vaults that lost coins."""
        return tuple(v for v, n in self.flows if n < 0)

    @property
    def targets(self) -> tuple[str, ...]:
        """Vaults that gained coins."""
        return tuple(v for v, n in self.flows if n > 0)

    @property
    def net(self) -> int:
        """The change of the reserve as a whole (negative when coins left it)."""
        return sum(n for _, n in self.flows)

    @property
    def counterparty_amount(self) -> int:
        """What the counterparty side receives (+) or gives (-): everything the vaults' net does
        not explain besides the fee."""
        return -self.net - self.fee


def classify(tx: ChainTx, scripts: Mapping[bytes, str]) -> Movement | None:
    """The vault movement of ``tx``, or ``None`` if it moves no vault's coins.

    A transaction that touches vault scripts but leaves every vault's balance unchanged (and
    pays no fee from the reserve) is ``None`` too: there is nothing to book.
    """
    spent: dict[str, int] = defaultdict(int)
    foreign = False
    for i in tx.inputs:
        if i.prevout is not None and (v := scripts.get(i.prevout.script_pubkey)) is not None:
            spent[v] += i.prevout.value
        elif not tx.is_coinbase:
            foreign = True
    received: dict[str, int] = defaultdict(int)
    vault_outputs: list[int] = []
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
    nets = {v: received.get(v, 0) - spent.get(v, 0) for v in set(spent) | set(received)}
    flows = tuple(sorted((v, n) for v, n in nets.items() if n != 0))
    outputs = tuple(vault_outputs)
    if tx.is_coinbase:
        return Movement(MovementKind.MINING, tx.txid, flows, 0, 0, outputs) if flows else None
    if not spent:
        return Movement(MovementKind.DEPOSIT, tx.txid, flows, 0, 0, outputs, foreign) if flows else None
    if foreign:
        # Others' inputs are mixed in: the fee is not the reserve's to book; whatever the vaults'
        # net is, the counterparty side explains it.
        if not flows:
            return None
        net = sum(n for _, n in flows)
        kind = (
            MovementKind.DEPOSIT if net > 0 else MovementKind.WITHDRAWAL if net < 0 else MovementKind.TRANSFER
        )
        return Movement(kind, tx.txid, flows, max(0, -net), 0, outputs, True)
    fee = tx.fee
    assert fee is not None  # every input's previous output is known (they are the vaults')
    if any(n > 0 for _, n in flows):
        kind = MovementKind.TRANSFER
    elif external:
        kind = MovementKind.WITHDRAWAL
    else:
        kind = MovementKind.FEE
    if not flows:
        return None
    return Movement(kind, tx.txid, flows, external, fee, outputs)


def postings_for(m: Movement, counterparty: str | None = None) -> tuple[Posting, ...]:
    """Balanced postings for a movement: each vault its net flow, the fee to
    :data:`NETWORK_FEES`, the rest to the counterparty (mining: :data:`MINING_INCOME`;
    otherwise ``counterparty``, default :data:`UNATTRIBUTED`)."""
    legs = [Posting(v, n) for v, n in m.flows]
    other = MINING_INCOME if m.kind is MovementKind.MINING else (counterparty or UNATTRIBUTED)
    if m.counterparty_amount:
        legs.append(Posting(other, m.counterparty_amount))
    if m.fee:
        legs.append(Posting(NETWORK_FEES, m.fee))
    return tuple(legs)


def headline_amount(m: Movement) -> int:
    """The one amount people quote for a movement: what the vaults gained (deposit, mining, and
    the target side of a transfer), what left for outside (withdrawal), or the fee (consolidation)."""
    if m.kind in (MovementKind.DEPOSIT, MovementKind.MINING):
        return sum(n for _, n in m.flows if n > 0)
    if m.kind is MovementKind.WITHDRAWAL:
        return m.external
    if m.kind is MovementKind.TRANSFER:
        return sum(n for _, n in m.flows if n > 0)
    return m.fee


def _flows_text(m: Movement) -> str:
    return ", ".join(f"{v} {'+' if n > 0 else ''}{format_btc(n)}" for v, n in m.flows)


def describe(m: Movement) -> str:
    """One line for people, e.g. ``deposit of 0.5 BTC to vault cold``."""
    fee = f" (fee {format_btc(m.fee)})" if m.fee else ""
    if m.kind is MovementKind.MINING:
        return f"mining reward of {format_btc(m.net)} BTC to {_vault_list(m.targets)}"
    if m.kind is MovementKind.DEPOSIT and len(m.flows) == 1:
        return f"deposit of {format_btc(m.net)} BTC to vault {m.targets[0]}"
    if m.kind is MovementKind.WITHDRAWAL and len(m.flows) == 1:
        return f"withdrawal of {format_btc(m.external)} BTC from vault {m.sources[0]}{fee}"
    if m.kind is MovementKind.TRANSFER and len(m.flows) == 2 and not m.external and not m.foreign_inputs:
        ((src, _), (dst, n)) = sorted(m.flows, key=lambda f: f[1])
        return f"transfer of {format_btc(n)} BTC from vault {src} to vault {dst}{fee}"
    if m.kind is MovementKind.FEE:
        return f"consolidation in {_vault_list(m.sources)}{fee}"
    outside = f", {format_btc(m.external)} BTC paid outside" if m.external else ""
    return f"{m.kind} ({_flows_text(m)}{outside}){fee}"


def _vault_list(names: tuple[str, ...]) -> str:
    return ("vault " if len(names) == 1 else "vaults ") + ", ".join(names)
