"""The attestation document (``reserve-ledger-attestation/v1``): built from gathered values, signed.

Pure: plain values in (the chain at block H from :func:`custody.chain_at.snapshot_at`, the vaults,
the ledger's checkpoint with its entries and vault balances), a JSON-ready ``dict`` out. The
format, the signed bytes and every check an auditor runs are in :mod:`ledger.attest.verify_doc`;
``docs/attestation.md`` describes each field.

Amounts are integer satoshis; the differences are chain minus ledger (positive: the chain holds
more than the books say).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from custody.chain_at import OutputAt, Snapshot
from ledger.attest.verify_doc import FORMAT, signing_message
from ledger.errors import InvalidInput
from ledger.journal.checkpoint import Checkpoint, public_key_pem
from ledger.verify_proof import key_id


@dataclass(frozen=True, slots=True)
class VaultInfo:
    """A vault as the document names it."""

    name: str
    account: str
    descriptor: str  # with checksum
    threshold: int
    holders: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class LedgerAt:
    """The books at the attestation's checkpoint: its entries' canonical bytes (1..tree size)
    and every vault-type account's balance after them."""

    checkpoint: Checkpoint
    entries: tuple[bytes, ...]
    balances: Mapping[str, int]

    def __post_init__(self) -> None:
        if len(self.entries) != self.checkpoint.tree_size:
            raise InvalidInput(f"{len(self.entries)} entries for a checkpoint of {self.checkpoint.tree_size}")


def _output(o: OutputAt) -> dict[str, Any]:
    return {
        "txid": o.txid,
        "vout": o.vout,
        "amount": o.amount,
        "script_pubkey": o.script_pubkey.hex(),
        "branch": o.branch,
        "index": o.index,
        "block_hash": o.block_hash,
        "height": o.height,
        "coinbase": o.coinbase,
    }


def build_document(
    chain: Snapshot,
    vaults: Sequence[VaultInfo],
    ledger: LedgerAt,
    *,
    created_at: str,
    controls: Mapping[str, dict[str, Any] | None] | None = None,
) -> dict[str, Any]:
    """The unsigned document (no ``signature`` field); ``controls``: vault -> its proofs of control."""
    controls = controls or {}
    vault_docs = []
    for v in vaults:
        outputs = chain.outputs.get(v.name, ())
        on_chain = sum(o.amount for o in outputs)
        in_books = ledger.balances.get(v.account, 0)
        vault_docs.append(
            {
                "name": v.name,
                "account": v.account,
                "descriptor": v.descriptor,
                "threshold": v.threshold,
                "holders": list(v.holders),
                "outputs": [_output(o) for o in outputs],
                "chain_amount": on_chain,
                "ledger_amount": in_books,
                "difference": on_chain - in_books,
                "control": controls.get(v.name),
            }
        )
    total_chain = sum(o.amount for found in chain.outputs.values() for o in found)
    total_ledger = sum(ledger.balances.values())
    return {
        "format": FORMAT,
        "network": chain.network,
        "height": chain.height,
        "block_hash": chain.block_hash,
        "created_at": created_at,
        "headers": {"start": chain.header_start, "hex": list(chain.headers)},
        "transactions": dict(sorted(chain.transactions.items())),
        "proofs": dict(sorted(chain.proofs.items())),
        "vaults": vault_docs,
        "totals": {"chain": total_chain, "ledger": total_ledger, "difference": total_chain - total_ledger},
        "ledger": {
            "checkpoint": ledger.checkpoint.to_json(),
            "entries": [e.hex() for e in ledger.entries],
            "balances": dict(sorted(ledger.balances.items())),
        },
    }


def with_controls(doc: dict[str, Any], controls: Mapping[str, dict[str, Any]]) -> dict[str, Any]:
    """A copy of ``doc`` (unsigned) with each named vault's proofs of control set."""
    unknown = sorted(set(controls) - {v["name"] for v in doc["vaults"]})
    if unknown:
        raise InvalidInput(f"proofs of control for vaults the document does not attest: {', '.join(unknown)}")
    out = {k: v for k, v in doc.items() if k != "signature"}
    out["vaults"] = [{**v, "control": controls.get(v["name"], v.get("control"))} for v in doc["vaults"]]
    return out


def sign_document(doc: dict[str, Any], key: Ed25519PrivateKey) -> dict[str, Any]:
    """``doc`` with its ``signature``: Ed25519 by the ledger's key over
    :func:`~ledger.attest.verify_doc.signing_message`."""
    unsigned = {k: v for k, v in doc.items() if k != "signature"}
    return {
        **unsigned,
        "signature": {
            "key_id": key_id(public_key_pem(key)),
            "signature": key.sign(signing_message(unsigned)).hex(),
        },
    }


def summary(doc: Mapping[str, Any]) -> dict[str, Any]:
    """The figures a person reads first: block, per-vault and total amounts, outputs."""
    return {
        "network": doc["network"],
        "height": doc["height"],
        "block_hash": doc["block_hash"],
        "checkpoint": {k: doc["ledger"]["checkpoint"][k] for k in ("tree_size", "root")},
        "vaults": [
            {
                "name": v["name"],
                "outputs": len(v["outputs"]),
                "chain": v["chain_amount"],
                "ledger": v["ledger_amount"],
                "difference": v["difference"],
                "control": v.get("control") is not None,
            }
            for v in doc["vaults"]
        ],
        "totals": doc["totals"],
    }
