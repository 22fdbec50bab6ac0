"""``attest verify --node``: gather what the node says about a document, then judge it.

The node's part (:func:`custody.chain_at.node_view`: the best chain's block hashes, the attested
outputs' fate after H, and each vault's outputs in the UTXO set) is gathered here; the judgement is
:func:`ledger.attest.verify_doc.node_findings`, pure. Separate from the offline verifier because
deriving the vaults' scripts needs the project's descriptor code, which an auditor's offline check
does not.
"""

from __future__ import annotations

from typing import Any

from custody.chain_at import node_view, script_paths
from custody.descriptor import MultisigDescriptor
from custody.rpc import RpcClient
from ledger.attest.verify_doc import node_findings, search_end

DEFAULT_GAP = 1000  # addresses searched past a vault's highest attested index (`--gap`)


def check_against_node(rpc: RpcClient, doc: dict[str, Any], gap: int) -> tuple[list[str], int]:
    """The node's findings against ``doc`` (which verified offline) and how many outputs it lists.

    Every vault's addresses are searched up to ``gap`` past the highest index the document names
    (at most :data:`ledger.attest.verify_doc.SEARCH_LIMIT`)."""
    start, height = doc["headers"]["start"], doc["height"]
    outpoints = [(o["txid"], o["vout"]) for v in doc["vaults"] for o in v["outputs"]]
    vaults = [(MultisigDescriptor.parse(v["descriptor"]), search_end(v, gap)) for v in doc["vaults"]]
    scripts = {
        s: v["name"] for v, (d, end) in zip(doc["vaults"], vaults, strict=True) for s in script_paths(d, end)
    }
    view = node_view(rpc, list(range(start, height + 1)), outpoints, height, vaults)
    findings = node_findings(
        doc, view.best_hashes, view.unspent, view.spent_after, view.vault_unspent, scripts
    )
    return findings, len(outpoints)
