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

import dataclasses
import re
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

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
CONTROL_FORMAT = "reserve-ledger-proof-of-control/v1"
PROOF_FORMAT = "bip322-full-proof-of-funds/v1"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_NAME = re.compile(r"^[\x21-\x7e]+$")

# An unspent output of a vault at the attested block, with the path its script derives at:
# (txid, vout, amount sat, scriptPubKey, branch (0 receive, 1 change), index).
Output = tuple[str, int, int, bytes, int, int]
# The same for the offline verifier, with the witness script it derived from the descriptor:
# (txid, vout, amount sat, scriptPubKey, witness script).
CheckedOutput = tuple[str, int, int, bytes, bytes]


def control_message(
    *, network: str, height: int, block_hash: str, tree_size: int, root: str, vault: str
) -> bytes:
    """The message every proof of ``vault`` signs for an attestation at block ``height``.

    Five ASCII lines, short enough for a hardware signer's screen (no newline at the end)::

        reserve-ledger proof of control v1
        network: <chain name, e.g. main or regtest>
        vault: <vault name>
        block: <height> <block hash>
        ledger: <tree size> <Merkle root of the journal>

    The block hash makes the proof younger than the block; the ledger root ties it to one state
    of the books (the attestation's signed checkpoint).
    """
    if not _HEX64.match(block_hash) or not _HEX64.match(root):
        raise InvalidInput(
            f"block hash {block_hash!r} and ledger root {root!r} must each be 64 lowercase hex digits"
        )
    for what, number in (("block height", height), ("ledger tree size", tree_size)):
        if isinstance(number, bool) or not isinstance(number, int) or not 0 <= number < 2**63:
            raise InvalidInput(f"{what} {number!r} is not a whole number in range")
    for what, name in (("network", network), ("vault name", vault)):
        if not isinstance(name, str) or not _NAME.match(name):
            raise InvalidInput(f"{what} {name!r} must be printable ASCII without spaces")
    lines = (
        MESSAGE_TITLE,
        f"network: {network}",
        f"vault: {vault}",
        f"block: {height} {block_hash}",
        f"ledger: {tree_size} {root}",
    )
    return "\n".join(lines).encode("ascii")


# --- service side: build, collect signatures, finish ---


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


def _by_script(vault: Vault, outputs: Sequence[Output]) -> dict[bytes, tuple[bool, int, list[Output]]]:
    """Group ``outputs`` by script, checking each script is the vault's at the path given."""
    descriptor = vault.descriptor
    groups: dict[bytes, tuple[bool, int, list[Output]]] = {}
    for out in outputs:
        txid, vout, _, script, branch, index = out
        if branch not in descriptor.branches:
            raise InvalidInput(f"output {txid}:{vout}: branch {branch} is not one of vault {vault.name}'s")
        change = descriptor.branches.index(branch) == 1
        if script not in groups:
            if descriptor.script_pubkey(index, change) != script:
                raise InvalidInput(
                    f"output {txid}:{vout} does not pay vault {vault.name}'s script at {branch}/{index}; "
                    "only the vault's own outputs can be proven"
                )
            groups[script] = (change, index, [])
        elif groups[script][:2] != (change, index):
            raise InvalidInput(f"output {txid}:{vout} names another path for the same script")
        groups[script][2].append(out)
    return groups


def prepare(
    vault: Vault,
    outputs: Sequence[Output],
    message: bytes,
    *,
    funding_txs: Mapping[str, bytes] | None = None,
) -> list[tuple[str, Psbt]]:
    """One ``(address, PSBT)`` per funded address of ``vault``, in address order.

    Each PSBT proves the address's outputs (sorted by outpoint) over ``message``: the address is
    the challenge, its outputs the additional inputs. ``funding_txs`` (txid -> raw transaction)
    adds each output's funding transaction for signers that want it. Deterministic: the same
    arguments give the same PSBTs. Raises :class:`InvalidInput` for an output that is not the
    vault's at the path given, and for no outputs at all.
    """
    if not outputs:
        raise InvalidInput(f"vault {vault.name} has no outputs to prove")
    outpoints = [(o[0], o[1]) for o in outputs]
    if len(set(outpoints)) != len(outpoints):
        raise InvalidInput("an output is listed twice; give each outpoint once")
    xpubs = global_xpubs(vault.descriptor)
    proposals = []
    for script, (change, index, outs) in _by_script(vault, outputs).items():
        info = spend_info(vault.descriptor, change, index)
        proven = [
            bip322.ProvenInput(
                bip322.Prevout(txid, vout, amount, script),
                info,
                None if funding_txs is None else funding_txs.get(txid),
            )
            for txid, vout, amount, *_ in sorted(outs)
        ]
        address = segwit_v0_address(script, vault.network)
        proposals.append((address, bip322.proof_psbt(message, info, proven, xpubs)))
    return sorted(proposals, key=lambda pair: pair[0])


def prepare_control(vault: Vault, outputs: Sequence[Output], message: bytes) -> list[tuple[str, str]]:
    """:func:`prepare` as text: ``(address, base64 PSBT)`` for the holders to sign."""
    return [(address, psbt.to_base64()) for address, psbt in prepare(vault, outputs, message)]


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
    """The finished proof of one address as a JSON-ready dict, after checking every signature and
    verifying the whole proof (a proof that would not verify is never handed out).

    Keys: ``format``, ``address``, ``challenge`` (scriptPubKey hex), ``branch``, ``index``,
    ``witness_script`` (hex), ``utxos`` (``txid``, ``vout``, ``amount`` sat, ``script_pubkey`` hex),
    ``proof`` (base64 of the signed ``to_sign``), ``to_sign_txid``, ``signers`` (holders whose
    signatures every witness carries, in key order, each once: at least the threshold of distinct
    holders must have signed, one holder's keys count once).
    """
    descriptor = vault.descriptor
    change, index = _path_of(psbt, descriptor)
    address = segwit_v0_address(descriptor.script_pubkey(index, change), vault.network)
    refusals = [r for i in range(len(psbt.inputs)) for r in bip322.check_partial_sigs(psbt, i)[1]]
    if refusals:
        raise PolicyViolation(tuple(f"{address}: {r}" for r in refusals))
    key_names = _key_names(descriptor, vault.holders, change, index)
    psbt = _distinct_holders_first(psbt, key_names, descriptor.threshold)
    try:
        signed = bip322.signed_tx(bip322.finalize_psbt(psbt))
    except InvalidInput as exc:
        raise PolicyViolation((f"vault {vault.name}, address {address}: {exc}",)) from exc
    amount_script = [bip322.input_prevout(psbt, i) for i in range(1, len(psbt.inputs))]
    utxos = [
        {"txid": txin.txid, "vout": txin.vout, "amount": amount, "script_pubkey": script.hex()}
        for txin, (amount, script) in zip(signed.tx.inputs[1:], amount_script, strict=True)
    ]
    witness_script = descriptor.witness_script(index, change)
    proof: dict[str, Any] = {
        "format": PROOF_FORMAT,
        "address": address,
        "challenge": bip322.p2wsh(witness_script).hex(),
        "branch": descriptor.branches[1 if change else 0],
        "index": index,
        "witness_script": witness_script.hex(),
        "utxos": utxos,
        "proof": signed.to_base64(),
        "to_sign_txid": signed.tx.txid,
        "signers": [],
    }
    findings, signers = _check(proof, witness_script, message, key_names)
    if findings:
        raise PolicyViolation(findings)
    proof["signers"] = list(signers)
    return proof


def _distinct_holders_first(psbt: Psbt, key_names: Sequence[tuple[bytes, str]], threshold: int) -> Psbt:
    """``psbt`` keeping, on every input, the signatures of ``threshold`` keys that signed every
    input, chosen for as many distinct holders as possible (one key per holder first, in key
    order): a witness holds exactly m signatures, and one holder's second key must not take the
    place of another holder's. Unchanged when fewer than ``threshold`` keys signed every input."""
    signed = set.intersection(*(set(dict(i.partial_sigs)) for i in psbt.inputs))
    first: list[bytes] = []
    rest: list[bytes] = []
    holders: set[str] = set()
    for key, name in key_names:
        if key in signed:
            (rest if name in holders else first).append(key)
            holders.add(name)
    chosen = set((first + rest)[:threshold])
    if len(chosen) < threshold:
        return psbt
    inputs = tuple(
        dataclasses.replace(i, partial_sigs=tuple((k, sig) for k, sig in i.partial_sigs if k in chosen))
        for i in psbt.inputs
    )
    return dataclasses.replace(psbt, inputs=inputs)


def finish_control(
    vault: Vault, outputs: Sequence[Output], message: bytes, psbts: Sequence[str | bytes]
) -> dict[str, Any]:
    """The vault's control object from the holders' signed PSBTs (any order, several per address).

    Rebuilds the proposals (:func:`prepare` is deterministic), adds each signed PSBT's signatures
    to the proposal with the same unsigned transaction (:func:`add_signed`), and finalizes every
    address's proof. Raises :class:`InvalidInput` for a PSBT that matches no proposal and
    :class:`PolicyViolation` naming each address whose signatures do not reach the threshold.
    """
    proposals = {psbt.tx.txid: (address, psbt) for address, psbt in prepare(vault, outputs, message)}
    merged = {txid: psbt for txid, (_, psbt) in proposals.items()}
    for text in psbts:
        signed = Psbt.parse(text)
        if signed.tx.txid not in proposals:
            raise InvalidInput(
                f"a signed PSBT (transaction {signed.tx.txid}) is for none of vault {vault.name}'s "
                "proofs at this block and ledger state; sign the PSBTs prepared for this attestation"
            )
        try:
            merged[signed.tx.txid] = add_signed(merged[signed.tx.txid], signed)
        except PolicyViolation as exc:
            address = proposals[signed.tx.txid][0]
            raise PolicyViolation(
                tuple(f"vault {vault.name}, address {address}: {f}" for f in exc.findings)
            ) from exc
    proofs: list[dict[str, Any]] = []
    short: list[str] = []
    for txid in sorted(proposals, key=lambda t: proposals[t][0]):
        try:
            proofs.append(finalize(merged[txid], vault, message))
        except PolicyViolation as exc:
            short += exc.findings
    if short:
        raise PolicyViolation(tuple(short))
    return {"format": CONTROL_FORMAT, "message": message.decode("ascii"), "proofs": proofs}


# --- verification (offline: standard library and coincurve) ---


def verify(
    proof: Mapping[str, Any], descriptor: str, message: bytes, holders: Sequence[str] | None = None
) -> tuple[str, ...]:
    """Findings against one address's proof (empty: valid). ``descriptor``: the vault's, with checksum.

    Checks: the address, challenge and witness script are the descriptor's at the stated branch and
    index; every claimed output pays the challenge; the proof is BIP-322 full format for exactly
    those outputs over ``message`` (:func:`custody.bip322.verify_proof`: framing, BIP-143 sighash,
    ECDSA, threshold of distinct keys on every input); with ``holders`` (in key order), the
    ``signers`` listed are the holders whose keys signed.
    """
    where = f"proof of {proof.get('address', '?')}"
    try:
        desc = wsh_descriptor.parse(descriptor)
        branch, index = proof["branch"], proof["index"]
        if not all(isinstance(v, int) and not isinstance(v, bool) for v in (branch, index)):
            raise InvalidInput("branch and index must be integers")
        witness_script = desc.witness_script(branch, index)
        if proof.get("witness_script") != witness_script.hex():
            raise InvalidInput(f"its witness script is not the descriptor's at {branch}/{index}")
        networks = [n for n in Network if n.is_mainnet == desc.mainnet]
        if proof.get("address") not in {segwit_v0_address(bip322.p2wsh(witness_script), n) for n in networks}:
            raise InvalidInput(f"its address is not the descriptor's at {branch}/{index}")
        key_order = desc.pubkeys(branch, index)
    except (InvalidInput, KeyError, TypeError) as exc:
        return (f"{where}: {exc}",)
    names = list(holders) if holders is not None else [k.fingerprint.hex() for k in desc.keys]
    if len(names) != len(key_order):
        return (f"{where}: {len(names)} holders for {len(key_order)} keys",)
    findings, signers = _check(proof, witness_script, message, tuple(zip(key_order, names, strict=True)))
    if holders is not None and not findings and proof.get("signers") != list(signers):
        findings += (f"{where}: signers listed as {proof.get('signers')}, but {list(signers)} signed",)
    return findings


def verify_control(
    control: Mapping[str, Any],
    *,
    network: str,
    height: int,
    block_hash: str,
    tree_size: int,
    root: str,
    vault: str,
    threshold: int,
    outputs: Sequence[CheckedOutput],
    descriptor: str | None = None,
    holders: Sequence[str] | None = None,
) -> list[str]:
    """Findings against a vault's control object (empty: every output at the block is proven).

    ``outputs`` are the vault's unspent outputs at the block as the verifier established them,
    each with the witness script it derived from the descriptor. The message is rebuilt from the
    block and ledger state (a proof for another block or state fails); the proofs together must
    cover exactly ``outputs``, each once; every proof must verify (:func:`custody.bip322.verify_proof`)
    with a witness script of ``threshold`` keys. With ``descriptor`` (and ``holders``) each proof
    is also checked by :func:`verify` (path, address, signer names).
    """
    try:
        message = control_message(
            network=network, height=height, block_hash=block_hash, tree_size=tree_size, root=root, vault=vault
        )
        chain = Network.from_chain(network)
    except InvalidInput as exc:
        return [f"the proof of control cannot be checked: {exc}"]
    if not isinstance(control, Mapping) or control.get("format") != CONTROL_FORMAT:
        return [f"the proof of control is not {CONTROL_FORMAT}"]
    proofs = control.get("proofs")
    if not isinstance(proofs, list) or not proofs:
        return ["the proof of control holds no proofs"]
    findings: list[str] = []
    if control.get("message") != message.decode("ascii"):
        findings.append("its message is not the one this block and ledger state give")
    expected = {(o[0], o[1]): o for o in outputs}
    scripts = {o[3]: o[4] for o in outputs}
    proven: list[tuple[str, int]] = []
    for proof in proofs:
        where = f"proof of {proof.get('address', '?') if isinstance(proof, Mapping) else '?'}"
        try:
            challenge = bytes.fromhex(proof["challenge"])
            witness_script = scripts.get(challenge)
            if witness_script is None:
                raise InvalidInput("its address holds none of the vault's outputs at this block")
            if bip322.multisig_keys(witness_script)[0] != threshold:
                raise InvalidInput(f"its witness script is not {threshold}-of-n")
            if proof.get("address") != segwit_v0_address(challenge, chain):
                raise InvalidInput(f"its address does not encode its challenge on {network}")
            for utxo in proof["utxos"]:
                key = (utxo["txid"], utxo["vout"])
                out = expected.get(key)
                if out is None or (out[2], out[3].hex()) != (utxo["amount"], utxo["script_pubkey"]):
                    raise InvalidInput(
                        f"it claims {key[0]}:{key[1]}, not an output of the vault at this block"
                    )
                proven.append(key)
        except (InvalidInput, KeyError, TypeError, ValueError, AttributeError) as exc:
            findings.append(f"{where}: {exc}")
            continue
        if descriptor is not None:
            findings += verify(proof, descriptor, message, holders)
        else:
            findings += _check(proof, witness_script, message, None)[0]
    missing = sorted(f"{t}:{v}" for t, v in set(expected) - set(proven))
    if missing:
        findings.append(f"outputs not proven: {', '.join(missing)}")
    if len(proven) != len(set(proven)):
        findings.append("an output is proven twice")
    return findings


def _key_names(
    descriptor: MultisigDescriptor, holders: Sequence[str], change: bool, index: int
) -> tuple[tuple[bytes, str], ...]:
    return tuple(zip(descriptor.pubkeys(index, change), holders, strict=True))


def _check(
    proof: Mapping[str, Any],
    witness_script: bytes,
    message: bytes,
    key_names: Sequence[tuple[bytes, str]] | None,
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(findings, names of the keys that signed every input, in key order) for one address's proof."""
    where = f"proof of {proof.get('address', '?')}"
    challenge = bip322.p2wsh(witness_script)
    try:
        if proof.get("format") != PROOF_FORMAT:
            raise InvalidInput(f"format is {proof.get('format')!r}, not {PROOF_FORMAT!r}")
        if proof.get("challenge") != challenge.hex():
            raise InvalidInput("its challenge is not the P2WSH of the vault's witness script")
        prevouts = []
        for utxo in proof["utxos"]:
            amount = utxo["amount"]
            if not isinstance(amount, int) or isinstance(amount, bool):
                raise InvalidInput(f"amount {amount!r} is not an integer of satoshis")
            if utxo["script_pubkey"] != challenge.hex():
                raise InvalidInput(f"output {utxo['txid']}:{utxo['vout']} does not pay the proven address")
            prevouts.append(bip322.Prevout(utxo["txid"], utxo["vout"], amount, challenge))
        if not prevouts:
            raise InvalidInput("no outputs are claimed")
        text = proof["proof"]
        if not isinstance(text, str):
            raise InvalidInput("its proof is not base64 text")
    except (InvalidInput, KeyError, TypeError) as exc:
        return (f"{where} cannot be read: {exc}",), ()
    check = bip322.verify_proof(message, challenge, text, prevouts, {challenge: witness_script})
    if not check.ok:
        return tuple(f"{where}: {f}" for f in check.findings), ()
    if proof.get("to_sign_txid") != check.to_sign_txid:
        return (f"{where}: to_sign_txid is not the txid of its proof ({check.to_sign_txid})",), ()
    common = set(check.signers[0]).intersection(*check.signers[1:])
    if key_names is None:
        return (), tuple(key.hex() for key in check.signers[0] if key in common)
    # one holder's keys count once, as in a spend's approvals (custody.spend_gate)
    names = tuple(dict.fromkeys(name for key, name in key_names if key in common))
    threshold = bip322.multisig_keys(witness_script)[0]
    if len(names) < threshold:
        return (
            f"{where}: signed by {len(names)} distinct holders ({', '.join(names)}) of the {threshold} "
            "needed; one holder's keys count once",
        ), ()
    return (), names
