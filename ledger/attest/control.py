"""Proof of control: each funded vault address proves, by BIP-322, that its keys control its coins.

For an attestation at block H, :func:`control_message` is the text every proof signs: it commits to
H's hash and the ledger root, so a proof cannot have been made before H existed nor be replayed for
another state of the books. For each vault, :func:`prepare` builds one PSBT per funded address
(the address is the challenge, its unspent outputs the additional inputs of ``to_sign``,
:mod:`custody.bip322`); holders sign it as they sign a spend (their wallet's
``walletprocesspsbt``, a file exchange); :func:`add_signed` accepts a holder's signatures only
when the transaction is unchanged and every signature verifies for a key of the vault;
:func:`finalize` assembles the witnesses and returns the proof as a plain dict for the attestation
document; :func:`verify` checks one against the vault's descriptor and the message, offline.

Importing this module needs only the standard library and ``coincurve`` (the offline verifier
imports it); the service side reads :class:`~ledger.chain.vaults.Vault` and
:class:`~custody.descriptor.MultisigDescriptor`, passed in by the caller.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Protocol

from custody import bip322
from custody.bech32 import segwit_v0_address
from custody.errors import InvalidInput, PolicyViolation
from custody.network import Network
from custody.psbt import Derivation, GlobalXpub, Psbt
from ledger.attest import wsh_descriptor

if TYPE_CHECKING:
    from custody.descriptor import MultisigDescriptor
    from ledger.chain.vaults import Vault

MESSAGE_TITLE = "reserve-ledger proof of control v1"
PROOF_FORMAT = "bip322-full-proof-of-funds/v1"
DEFAULT_RANGE_END = 1000  # addresses searched per branch when locating a proven output's script
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_NAME = re.compile(r"^[\x21-\x7e]+$")


def control_message(block_hash: str, height: int, ledger_root: str, vault: str) -> bytes:
    """The message a vault's proofs sign at block ``height`` (its ``block_hash``) and ``ledger_root``.

    Four ASCII lines, short enough for a hardware signer's screen::

        reserve-ledger proof of control v1
        vault: <vault name>
        block: <height> <block hash>
        ledger root: <Merkle root of the journal, 64 hex>
    """
    if not _HEX64.match(block_hash) or not _HEX64.match(ledger_root):
        raise InvalidInput(
            f"block hash {block_hash!r} and ledger root {ledger_root!r} must each be 64 lowercase hex digits"
        )
    if isinstance(height, bool) or not 0 <= height < 2**31:
        raise InvalidInput(f"block height {height} is out of range")
    if not _NAME.match(vault):
        raise InvalidInput(f"vault name {vault!r} must be printable ASCII without spaces")
    text = f"{MESSAGE_TITLE}\nvault: {vault}\nblock: {height} {block_hash}\nledger root: {ledger_root}"
    return text.encode("ascii")


class Unspent(Protocol):
    """An unspent output as the chain reports it (:class:`custody.wallet.ScannedOutput` is one)."""

    @property
    def txid(self) -> str: ...
    @property
    def vout(self) -> int: ...
    @property
    def amount(self) -> int: ...
    @property
    def script_pubkey(self) -> bytes: ...


# --- service side: build, collect signatures, finish ---


def locate(
    descriptor: MultisigDescriptor, scripts: Collection[bytes], range_end: int = DEFAULT_RANGE_END
) -> dict[bytes, tuple[bool, int]]:
    """``script -> (change, index)`` for each script the descriptor derives within ``0..range_end``."""
    wanted = set(scripts)
    found: dict[bytes, tuple[bool, int]] = {}
    branches = (False, True) if descriptor.is_multipath else (False,)
    for index in range(range_end + 1):
        for change in branches:
            script = descriptor.script_pubkey(index, change)
            if script in wanted:
                found[script] = (change, index)
        if len(found) == len(wanted):
            break
    return found


def spend_info(descriptor: MultisigDescriptor, change: bool, index: int) -> bip322.SpendInfo:
    """The witness script at ``(change, index)`` and every key's derivation from its origin."""
    branch = descriptor.branches[1 if change else 0]
    derivations = []
    for key, pubkey in zip(descriptor.keys, descriptor.pubkeys(index, change), strict=True):
        if key.origin is None:
            raise InvalidInput(f"vault key {key} has no origin; signers need [fingerprint/path]")
        derivations.append(Derivation(pubkey, key.origin.fingerprint, (*key.origin.path, branch, index)))
    return bip322.SpendInfo(descriptor.witness_script(index, change), tuple(derivations))


def global_xpubs(descriptor: MultisigDescriptor) -> tuple[GlobalXpub, ...]:
    """The vault's account keys as PSBT global xpubs (signing devices register the wallet from them)."""
    return tuple(
        GlobalXpub(wsh_descriptor.extended_key_bytes(key.xpub), key.origin.fingerprint, key.origin.path)
        for key in descriptor.keys
        if key.origin is not None
    )


def prepare(
    vault: Vault,
    utxos_by_address: Mapping[str, Sequence[Unspent]],
    message: bytes,
    *,
    funding_txs: Mapping[str, bytes] | None = None,
    range_end: int = DEFAULT_RANGE_END,
) -> list[tuple[str, Psbt]]:
    """One ``(address, PSBT)`` per funded address of ``vault``, in address order.

    Each PSBT proves the address's outputs (sorted by outpoint) over ``message``. ``funding_txs``
    (txid -> raw transaction) adds each output's funding transaction for signers that want it.
    Raises :class:`InvalidInput` for an address that is not the vault's (within ``range_end``), an
    output paid to another script, or an address without outputs.
    """
    descriptor = vault.descriptor
    paths = locate(descriptor, {u.script_pubkey for us in utxos_by_address.values() for u in us}, range_end)
    xpubs = global_xpubs(descriptor)
    proposals = []
    for address in sorted(utxos_by_address):
        utxos = sorted(utxos_by_address[address], key=lambda u: (u.txid, u.vout))
        if not utxos:
            raise InvalidInput(f"address {address} has no outputs to prove; leave it out")
        script = utxos[0].script_pubkey
        if script not in paths:
            raise InvalidInput(
                f"address {address} is not one of vault {vault.name}'s first {range_end + 1} receive or "
                "change addresses; only the vault's own outputs can be proven"
            )
        if segwit_v0_address(script, vault.network) != address:
            raise InvalidInput(
                f"outputs listed under {address} pay {segwit_v0_address(script, vault.network)}"
            )
        odd = [f"{u.txid}:{u.vout}" for u in utxos if u.script_pubkey != script]
        if odd:
            raise InvalidInput(f"outputs {', '.join(odd)} listed under {address} pay another script")
        info = spend_info(descriptor, *paths[script])
        proven = [
            bip322.ProvenInput(
                bip322.Prevout(u.txid, u.vout, u.amount, u.script_pubkey),
                info,
                None if funding_txs is None else funding_txs.get(u.txid),
            )
            for u in utxos
        ]
        proposals.append((address, bip322.proof_psbt(message, info, proven, xpubs)))
    return proposals


def add_signed(proposal: Psbt, signed: Psbt) -> Psbt:
    """``proposal`` with the signatures ``signed`` adds, each checked; the same checks as a spend's.

    The unsigned transaction must be byte-identical; every partial signature in ``signed`` must be
    by a key of the input's witness script (the vault's, as :func:`prepare` wrote it) and verify
    (BIP-143, strict DER, low S, SIGHASH_ALL). Any failure raises :class:`PolicyViolation`
    naming each, and nothing is merged.
    """
    if signed.tx.serialize() != proposal.tx.serialize():
        raise InvalidInput(
            f"the signed PSBT is for transaction {signed.tx.txid}, not this proof's {proposal.tx.txid}; "
            "sign the PSBT this proof was prepared with"
        )
    merged = proposal
    refusals: list[str] = []
    for index, inp in enumerate(signed.inputs):
        if inp.final_script_witness is not None and not inp.partial_sigs:
            refusals.append(f"input {index} was finalized by the signer; sign without finalizing")
            continue
        candidate = proposal.with_partial_sigs(index, inp.partial_sigs)
        _, bad = bip322.check_partial_sigs(candidate, index)
        refusals += bad
        if not bad:
            merged = merged.with_partial_sigs(index, inp.partial_sigs)
    if refusals:
        raise PolicyViolation(tuple(refusals))
    return merged


def _path_of(psbt: Psbt, descriptor: MultisigDescriptor) -> tuple[bool, int]:
    """The (change, index) the challenge input's derivations name, checked against the descriptor."""
    first = psbt.inputs[0]
    if not first.derivations or first.witness_script is None:
        raise InvalidInput("the proof PSBT's input 0 has no key derivations or witness script")
    branch, index = first.derivations[0].path[-2:]
    if branch not in descriptor.branches:
        raise InvalidInput(f"the proof PSBT names branch {branch}, not one of the vault's")
    change = descriptor.branches.index(branch) == 1
    if descriptor.witness_script(index, change) != first.witness_script:
        raise InvalidInput("the proof PSBT's witness script is not the vault's at the path it names")
    return change, index


def finalize(psbt: Psbt, vault: Vault, message: bytes) -> dict[str, Any]:
    """The finished proof as a JSON-ready dict, after checking every signature and the whole proof.

    Keys: ``format``, ``address``, ``challenge`` (scriptPubKey hex), ``branch``, ``index``,
    ``witness_script`` (hex), ``utxos`` (``txid``, ``vout``, ``amount`` sat, ``script_pubkey`` hex),
    ``proof`` (base64 of the signed ``to_sign``), ``to_sign_txid``, ``signers`` (holders whose
    signatures the witnesses carry, in key order). The message is not in it: a verifier rebuilds it
    from the attestation's block and ledger root.
    """
    descriptor = vault.descriptor
    change, index = _path_of(psbt, descriptor)
    refusals = [r for i in range(len(psbt.inputs)) for r in bip322.check_partial_sigs(psbt, i)[1]]
    if refusals:
        raise PolicyViolation(tuple(refusals))
    try:
        signed = bip322.signed_tx(bip322.finalize_psbt(psbt))
    except InvalidInput as exc:
        raise PolicyViolation((f"vault {vault.name}: {exc}",)) from exc
    amount_script = [bip322.input_prevout(psbt, i) for i in range(1, len(psbt.inputs))]
    utxos = [
        {"txid": txin.txid, "vout": txin.vout, "amount": amount, "script_pubkey": script.hex()}
        for txin, (amount, script) in zip(signed.tx.inputs[1:], amount_script, strict=True)
    ]
    challenge = bip322.input_prevout(psbt, 0)[1]
    proof = {
        "format": PROOF_FORMAT,
        "address": segwit_v0_address(challenge, vault.network),
        "challenge": challenge.hex(),
        "branch": descriptor.branches[1 if change else 0],
        "index": index,
        "witness_script": descriptor.witness_script(index, change).hex(),
        "utxos": utxos,
        "proof": signed.to_base64(),
        "to_sign_txid": signed.tx.txid,
        "signers": [],
    }
    check = _check(proof, str(descriptor), message, vault.holders)
    if check[0]:
        raise PolicyViolation(check[0])
    proof["signers"] = list(check[1])
    return proof


# --- verification (offline: standard library and coincurve) ---


def verify(
    proof: Mapping[str, Any], descriptor: str, message: bytes, holders: Sequence[str] | None = None
) -> tuple[str, ...]:
    """Findings against one proof (empty: valid). ``descriptor`` is the vault's, with checksum.

    Checks: the address, challenge and witness script are the descriptor's at the stated branch and
    index; every claimed output pays the challenge; the proof is BIP-322 full format for exactly
    those outputs over ``message`` (:func:`custody.bip322.verify_proof`: framing, BIP-143 sighash,
    ECDSA, threshold of distinct keys on every input); with ``holders`` (in key order), the
    ``signers`` listed are the holders whose keys signed.
    """
    findings, signers = _check(proof, descriptor, message, holders)
    if holders is not None and not findings and list(signers) != list(proof.get("signers", ())):
        findings += (
            f"signers listed as {proof.get('signers')}, but the keys that signed are "
            f"those of {list(signers)}",
        )
    return findings


def _check(
    proof: Mapping[str, Any], descriptor: str, message: bytes, holders: Sequence[str] | None
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(findings, signing holders in key order; key fingerprints when holders are not given)."""
    try:
        parsed = _read(proof, descriptor)
    except (InvalidInput, KeyError, TypeError, ValueError) as exc:
        return (f"proof of {proof.get('address', '?')} cannot be read: {exc}",), ()
    desc, challenge, witness_script, prevouts, key_order = parsed
    where = f"proof of {proof['address']}"
    check = bip322.verify_proof(message, challenge, proof["proof"], prevouts, {challenge: witness_script})
    if not check.ok:
        return tuple(f"{where}: {f}" for f in check.findings), ()
    common = set(check.signers[0]).intersection(*check.signers[1:])
    names = list(holders) if holders is not None else [k.fingerprint.hex() for k in desc.keys]
    if len(names) != len(key_order):
        return (f"{where}: {len(names)} holders for {len(key_order)} keys",), ()
    return (), tuple(name for name, key in zip(names, key_order, strict=True) if key in common)


def _read(
    proof: Mapping[str, Any], descriptor: str
) -> tuple[wsh_descriptor.WshMultisig, bytes, bytes, list[bip322.Prevout], tuple[bytes, ...]]:
    """Parse the proof dict and rebuild its scripts from the descriptor; raise on any mismatch."""
    if proof.get("format") != PROOF_FORMAT:
        raise InvalidInput(f"format is {proof.get('format')!r}, not {PROOF_FORMAT!r}")
    desc = wsh_descriptor.parse(descriptor)
    branch, index = proof["branch"], proof["index"]
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (branch, index)):
        raise InvalidInput("branch and index must be integers")
    key_order = desc.pubkeys(branch, index)
    witness_script = desc.witness_script(branch, index)
    challenge = bip322.p2wsh(witness_script)
    if proof["witness_script"] != witness_script.hex() or proof["challenge"] != challenge.hex():
        raise InvalidInput(f"witness script or challenge is not the descriptor's at {branch}/{index}")
    networks = [n for n in Network if n.is_mainnet == desc.mainnet]
    if proof["address"] not in {segwit_v0_address(challenge, n) for n in networks}:
        raise InvalidInput(f"address {proof['address']} is not the descriptor's at {branch}/{index}")
    prevouts = []
    for utxo in proof["utxos"]:
        if not isinstance(utxo["amount"], int) or isinstance(utxo["amount"], bool):
            raise InvalidInput(f"amount {utxo['amount']!r} is not an integer of satoshis")
        if utxo["script_pubkey"] != challenge.hex():
            raise InvalidInput(f"output {utxo['txid']}:{utxo['vout']} does not pay the proven address")
        prevouts.append(bip322.Prevout(utxo["txid"], utxo["vout"], utxo["amount"], challenge))
    if not prevouts:
        raise InvalidInput("no outputs are claimed")
    if not isinstance(proof["proof"], str):
        raise InvalidInput("proof is not base64 text")
    return desc, challenge, witness_script, prevouts, key_order
