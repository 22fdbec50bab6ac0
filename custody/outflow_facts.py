"""The gate's facts about a transaction already signed and sent: what a vault outflow really did.

``reserve spend broadcast`` judges a PSBT before it goes out. A transaction the key holders
combined and sent themselves (their own payment, a fee bump of a gated spend, a child spending a
vault's unconfirmed output, a proposal sent before its quorum) never met the gate; the audit judges
it afterwards by the same rules (:func:`custody.spend_gate.evaluate`) on the same facts
(:func:`custody.spend_facts.gather_facts`), built here from the signed transaction itself:

- :func:`decode_signed` reads the network serialization: the transaction without its witnesses
  (what the signatures commit to), each input's witness stack and the real vsize (weight / 4,
  rounded up);
- :func:`transaction_facts` turns each input's P2WSH multisig witness into the partial signatures
  a PSBT would carry (each signature matched to the key it verifies under, in the witness script
  re-derived from the vault's descriptor), hands that PSBT to ``gather_facts`` (so every signature
  is verified again and attributed to a holder exactly as for a spend) and puts the real vsize in
  place of the estimate.

Pure: plain values in, :class:`~custody.spend_gate.GateFacts` out.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

from bitcoin.core import CTransaction, b2lx

from custody.descriptor import MultisigDescriptor
from custody.errors import InvalidInput
from custody.network import Network
from custody.psbt import Psbt, PsbtInput, PsbtOutput, TxIn, TxOut, UnsignedTx
from custody.sighash import SIGHASH_ALL, segwit_v0_sighash, verify_ecdsa
from custody.spend_facts import Outpoint, Path, gather_facts, input_script
from custody.spend_gate import GateFacts


@dataclass(frozen=True, slots=True)
class SignedTx:
    """A network transaction: its unsigned part, each input's witness stack and its vsize."""

    tx: UnsignedTx
    witnesses: tuple[tuple[bytes, ...], ...]
    vsize: int

    def __post_init__(self) -> None:
        if len(self.witnesses) != len(self.tx.inputs):
            raise InvalidInput(f"{len(self.witnesses)} witness stack(s) for {len(self.tx.inputs)} input(s)")
        if self.vsize <= 0:
            raise InvalidInput(f"vsize {self.vsize} must be positive")

    @property
    def txid(self) -> str:
        return self.tx.txid


def decode_signed(raw: bytes) -> SignedTx:
    """Decode a network serialization (with or without witnesses); :class:`InvalidInput` when it
    is not one transaction."""
    try:
        tx = CTransaction.deserialize(bytes(raw))
    except Exception as exc:  # python-bitcoinlib raises several types on bad bytes
        raise InvalidInput(f"not a transaction: {exc}") from None
    unsigned = UnsignedTx(
        version=int(tx.nVersion) & 0xFFFFFFFF,
        locktime=int(tx.nLockTime),
        inputs=tuple(TxIn(b2lx(i.prevout.hash), int(i.prevout.n), int(i.nSequence)) for i in tx.vin),
        outputs=tuple(TxOut(int(o.nValue), bytes(o.scriptPubKey)) for o in tx.vout),
    )
    witnesses: list[tuple[bytes, ...]] = []
    for n in range(len(tx.vin)):
        stack: tuple[bytes, ...] = ()
        if tx.has_witness() and n < len(tx.wit.vtxinwit):
            stack = tuple(bytes(item) for item in tx.wit.vtxinwit[n].scriptWitness.stack)
        witnesses.append(stack)
    weight = int(tx.calc_weight())
    return SignedTx(unsigned, tuple(witnesses), -(-weight // 4))


def witness_signatures(
    tx: UnsignedTx,
    index: int,
    witness: Sequence[bytes],
    pubkeys: Sequence[bytes],
    witness_script: bytes,
    amount: int,
) -> tuple[tuple[bytes, bytes], ...]:
    """``(pubkey, signature)`` for each signature of a P2WSH multisig ``witness`` (``<empty>
    <sig>... <witness script>``) that verifies under one of ``pubkeys`` (SIGHASH_ALL over
    ``amount``). Nothing when the witness is not one spending ``witness_script``; a signature of
    another sighash type is kept with the first key, for ``gather_facts`` to refuse by name."""
    if len(witness) < 2 or witness[-1] != witness_script:
        return ()
    digest = segwit_v0_sighash(tx, index, witness_script, amount, SIGHASH_ALL)
    matched: dict[bytes, bytes] = {}
    for sig in witness[1:-1]:
        if not sig:
            continue
        if sig[-1] != SIGHASH_ALL:
            free = next((k for k in pubkeys if k not in matched), None)
            if free is not None:
                matched[free] = sig
            continue
        for pubkey in pubkeys:
            if pubkey not in matched and verify_ecdsa(pubkey, sig[:-1], digest):
                matched[pubkey] = sig
                break
    return tuple(matched.items())


def transaction_facts(
    signed: SignedTx,
    *,
    vault: str,
    descriptor: MultisigDescriptor,
    holders: Sequence[str],
    network: Network,
    prevouts: Mapping[Outpoint, tuple[int, bytes] | None],
    vault_scripts: Mapping[bytes, Path],
    other_vaults: Mapping[bytes, str],
    allowlist: Mapping[bytes, str],
    pending: Mapping[bytes, tuple[str, int]],
    locks: Mapping[Outpoint, int],
    velocity_used: int,
    tip_height: int,
    quorum_height: int | None,
    spend: int | None = None,
) -> GateFacts:
    """The gate's facts about ``signed`` as a spend from ``vault`` (the parameters as for
    :func:`custody.spend_facts.gather_facts`; ``prevouts`` are the outputs the transaction spent,
    from the chain, since they are no longer unspent). ``vsize`` is the transaction's own."""
    inputs: list[PsbtInput] = []
    for n, txin in enumerate(signed.tx.inputs):
        sigs: tuple[tuple[bytes, bytes], ...] = ()
        prevout = prevouts.get((txin.txid, txin.vout))
        path = None if prevout is None else vault_scripts.get(prevout[1])
        if prevout is not None and path is not None:
            pubkeys, script = input_script(descriptor, path)
            sigs = witness_signatures(signed.tx, n, signed.witnesses[n], pubkeys, script, prevout[0])
        inputs.append(PsbtInput(partial_sigs=sigs))
    psbt = Psbt(signed.tx, inputs=tuple(inputs), outputs=tuple(PsbtOutput() for _ in signed.tx.outputs))
    facts = gather_facts(
        psbt,
        vault=vault,
        descriptor=descriptor,
        holders=holders,
        network=network,
        prevouts=prevouts,
        vault_scripts=vault_scripts,
        other_vaults=other_vaults,
        allowlist=allowlist,
        pending=pending,
        locks=locks,
        velocity_used=velocity_used,
        tip_height=tip_height,
        quorum_height=quorum_height,
        spend=spend,
    )
    return replace(facts, vsize=signed.vsize)
