"""The audit's values: the facts it judges and the report it returns (``reserve-ledger-audit/v2``).

Facts in: :class:`Books` (what the database says) and :class:`ChainFacts` (what the node says),
gathered by :mod:`ledger.chain.audit`. Report out: :class:`AuditReport` with per-vault balances,
vault accounts without a definition, checked entries, pending movements and findings, each
:class:`Finding` with a :class:`FindingCode` and the ``advice`` that fixes it. The JSON form is
documented in ``docs/audit.md``. Pure values, no I/O.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from custody.chain import BlockPlace, ChainTx
from custody.wallet import ScanResult
from custody.wallet_txs import WalletTxState
from custody.wallet_view import WalletView
from ledger.chain.movement import MovementKind

if TYPE_CHECKING:
    from ledger.chain.outflow_values import OutflowCheck

SCHEMA = "reserve-ledger-audit/v2"


class FindingCode(StrEnum):
    LEDGER_VERIFICATION = "ledger-verification"
    SIGNING_KEY = "signing-key"
    UNDEFINED_VAULT_ACCOUNT = "undefined-vault-account"
    VAULT_NOT_WATCHED = "vault-not-watched"
    BALANCE_MISMATCH = "balance-mismatch"
    WALLET_SCAN_MISMATCH = "wallet-scan-mismatch"
    UNRECORDED = "unrecorded"
    RECORDED_TWICE = "recorded-twice"
    CONFLICTED = "conflicted"
    MISSING_TRANSACTION = "missing-transaction"
    NOT_IN_BEST_CHAIN = "not-in-best-chain"
    SHALLOW = "shallow"
    AMOUNT_MISMATCH = "amount-mismatch"
    UNCLASSIFIABLE = "unclassifiable"
    UNGATED_SPEND = "ungated-spend"


class EntryStatus(StrEnum):
    OK = "ok"
    MOVED = "moved"  # re-mined in another block after a reorg: not a finding
    SHALLOW = "shallow"
    NOT_IN_BEST_CHAIN = "not-in-best-chain"
    CONFLICTED = "conflicted"
    MISSING = "missing"


@dataclass(frozen=True, slots=True)
class Finding:
    code: FindingCode
    message: str
    advice: str
    vault: str | None = None
    txid: str | None = None
    seq: int | None = None


# --- facts in ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VaultFacts:
    name: str
    account: str
    wallet_name: str
    retired: bool


@dataclass(frozen=True, slots=True)
class VaultAccount:
    """A vault-type account of the books: its balance and the live entries posting to it
    (neither reversals nor reversed)."""

    name: str
    balance: int
    live_seqs: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class BookedEntry:
    """A live recorded on-chain entry and what it posts to vault-type accounts."""

    seq: int
    txid: str
    kind: str
    block_hash: str | None
    block_height: int | None
    vault_legs: tuple[tuple[str, int], ...]


@dataclass(frozen=True, slots=True)
class PastAudit:
    """What an ``audit`` record of the log says its audit saw."""

    seq: int  # the record's entry number
    audit_id: object  # as recorded (an int when the service wrote it)
    height: object
    best_block: str  # 64 hex digits


@dataclass(frozen=True, slots=True)
class Books:
    tree_size: int
    root: str
    verification: tuple[tuple[str, int | None], ...]  # (finding text, first bad seq)
    key_problems: tuple[str, ...]  # the signing key against the checkpoints and key rotations
    reserve: int  # ledger.journal.balances.balance(...).reserve: the reserve figure of `reserve balance`
    vaults: tuple[VaultFacts, ...]
    vault_accounts: tuple[VaultAccount, ...]
    entries: tuple[BookedEntry, ...]
    past_audits: tuple[PastAudit, ...] = ()  # what each audit record says it saw (ledger.chain.audit_history)


@dataclass(frozen=True, slots=True)
class ChainFacts:
    chain: str
    height: int
    best_block: str
    scan: ScanResult
    by_script: Mapping[bytes, str]  # every vault script matched: script_pubkey -> vault name
    ranges: Mapping[str, int]  # vault -> indexes 0..n-1 scanned and matched, receive and change
    wallets: Mapping[str, WalletView | None]  # vault -> its wallet's view (None: not loaded)
    entry_states: Mapping[str, WalletTxState]  # unconfirmed recorded txids as a vault wallet has them
    txs: Mapping[str, ChainTx]  # booked, unrecorded and pending transactions the node found
    places: Mapping[str, BlockPlace]  # recorded block hash -> where it stands now


# --- report out -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class VaultBalances:
    vault: str
    ledger: int
    wallet_confirmed: int
    wallet_unconfirmed: int
    wallet_immature: int
    scan_confirmed: int  # >= min_conf confirmations, mature
    scan_shallow: int  # 1 .. min_conf-1 confirmations, mature
    scan_immature: int  # coinbase with fewer than 101 confirmations (the wallet's rule)
    utxos: int
    scanned_range: int  # receive and change indexes 0..scanned_range-1 were scanned
    pending_in: int
    pending_out: int

    @property
    def chain_total(self) -> int:
        return self.scan_confirmed + self.scan_shallow + self.scan_immature


@dataclass(frozen=True, slots=True)
class UndefinedAccount:
    account: str
    ledger: int
    entries: tuple[int, ...]


@dataclass(frozen=True, slots=True)
class EntryCheck:
    seq: int
    txid: str
    kind: str
    recorded_block: str | None
    recorded_height: int | None
    current_block: str | None
    current_height: int | None
    confirmations: int
    recorded_block_in_best_chain: bool
    status: EntryStatus
    replaced_by: str | None = None


@dataclass(frozen=True, slots=True)
class Pending:
    """An unconfirmed movement of watched vaults (not a finding)."""

    txid: str
    kind: MovementKind
    flows: tuple[tuple[str, int], ...]
    fee: int
    description: str
    spends: tuple[str, ...]  # vault outpoints it spends, "txid:vout"


@dataclass(frozen=True, slots=True)
class AuditReport:
    schema: str
    audited_at: str
    min_conf: int
    chain: str
    height: int
    best_block: str
    tree_size: int
    root: str
    vaults: tuple[VaultBalances, ...]
    undefined_accounts: tuple[UndefinedAccount, ...]
    entries: tuple[EntryCheck, ...]
    pending: tuple[Pending, ...]
    findings: tuple[Finding, ...]
    totals: dict[str, int] = field(default_factory=dict)
    outflows: tuple[OutflowCheck, ...] = ()  # ungated transactions spending a vault's outputs, judged

    @property
    def ok(self) -> bool:
        return not self.findings

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["ok"] = self.ok
        for v, row in zip(data["vaults"], self.vaults, strict=True):
            v["chain_total"] = row.chain_total
        for p in data["pending"]:
            p["flows"] = dict(p["flows"])
        data["outflows"] = [c.to_json() for c in self.outflows]
        return data
