"""What a spend really does, from a PSBT, the vault's descriptor and the node: the gate's facts.

A PSBT is the signers' work sheet, not evidence: its ``witness_utxo`` amounts, witness scripts and
BIP-32 derivations are claims anyone could have edited. The facts here come from elsewhere:

- an input's amount and script from the **node** (``prevouts``, the caller's ``gettxout``);
- its path (branch, index) from the vault's **descriptor**, re-derived (``vault_scripts``, made by
  :func:`derive_vault_scripts`), and checked again by deriving the witness script at that path;
- who signed from **verifying** each partial signature (BIP-143 sighash over the node's amount and
  the re-derived witness script, ECDSA) and mapping its key to a holder through the descriptor's key
  order (``descriptor.pubkeys(index, change)[i]`` belongs to ``holders[i]``). One holder with two
  keys counts once.

A claim that disagrees with these facts (an amount, a witness script, a sighash type other than ALL)
and a signature that does not verify or whose key is not in the input's script is a *refusal*,
listed with its reason; :mod:`custody.spend_gate` fails the ``approvals`` rule on any refusal.

:func:`gather_facts` takes plain values (the caller gathers them from the node and the database
first) and returns :class:`~custody.spend_gate.GateFacts`; :func:`estimate_vsize` gives the final
transaction's vsize with worst-case signatures, so the fee-rate rule judges what will be broadcast.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from custody.address import script_address
from custody.descriptor import MultisigDescriptor
from custody.errors import InvalidInput
from custody.network import Network
from custody.psbt import Psbt, PsbtInput, UnsignedTx
from custody.script import p2wsh_script_pubkey, sortedmulti_witness_script
from custody.sighash import SIGHASH_ALL, check_signature, segwit_v0_sighash, verify_ecdsa
from custody.spend_gate import Destination, GateFacts, InputFact, OutputFact, btc

Outpoint = tuple[str, int]
"""(txid in display hex, vout)"""
Path = tuple[int, int]
"""(branch, index) of a vault address: branch 0 receive, 1 change"""

MAX_SIGNATURE_SIZE = 72
"""Worst-case DER ECDSA signature (r and s of 33 bytes each); the sighash byte comes on top."""


def _key(pubkey: bytes) -> str:
    return pubkey.hex()[:16] + "…"


def _branch_change(descriptor: MultisigDescriptor, branch: int) -> bool:
    """Whether ``branch`` is the descriptor's change branch; refuse a branch it does not have."""
    if branch not in descriptor.branches:
        raise InvalidInput(
            f"branch {branch} is not one of the vault descriptor's branches {descriptor.branches}"
        )
    return branch != descriptor.branches[0]


def input_script(descriptor: MultisigDescriptor, path: Path) -> tuple[tuple[bytes, ...], bytes]:
    """The child public keys (in key order) and the witness script at ``path``, re-derived."""
    branch, index = path
    pubkeys = descriptor.pubkeys(index, _branch_change(descriptor, branch))
    return pubkeys, sortedmulti_witness_script(descriptor.threshold, pubkeys)


def derive_vault_scripts(descriptor: MultisigDescriptor, count: int) -> dict[bytes, Path]:
    """Output script → (branch, index) for indices ``0..count-1`` of each branch of the vault."""
    found: dict[bytes, Path] = {}
    for branch in descriptor.branches:
        change = _branch_change(descriptor, branch)
        for index in range(count):
            found[descriptor.script_pubkey(index, change)] = (branch, index)
    return found


def _foreign_key(
    psbt_input: PsbtInput, pubkey: bytes, descriptor: MultisigDescriptor, holders: Sequence[str], path: Path
) -> str:
    """Why ``pubkey`` is not in this input's script: another path of this vault, or not its key."""
    where = f"{path[0]}/{path[1]}"
    fingerprints = {k.origin.fingerprint for k in descriptor.keys if k.origin is not None}
    for claim in psbt_input.derivations:
        if claim.pubkey != pubkey or len(claim.path) < 2:
            continue
        branch, index = claim.path[-2:]
        if branch in descriptor.branches and index < 2**31:
            keys = descriptor.pubkeys(index, _branch_change(descriptor, branch))
            if pubkey in keys:
                holder = holders[keys.index(pubkey)]
                return (
                    f"key {_key(pubkey)} is {holder}'s key at {branch}/{index}, not at this "
                    f"input's path {where}: the signature is for another address"
                )
        if claim.fingerprint not in fingerprints:
            return (
                f"key {_key(pubkey)} is another key entirely: its derivation names master "
                f"fingerprint {claim.fingerprint.hex()}, which is none of this vault's keys"
            )
    return (
        f"key {_key(pubkey)} is another key entirely: not one of this vault's keys at this "
        f"input's path {where}"
    )


def _attribute(
    tx: UnsignedTx,
    index: int,
    psbt_input: PsbtInput,
    descriptor: MultisigDescriptor,
    holders: Sequence[str],
    path: Path,
    pubkeys: Sequence[bytes],
    witness_script: bytes,
    amount: int,
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    holder_of = dict(zip(pubkeys, holders, strict=True))
    signed: set[str] = set()
    refusals: list[str] = []
    digest: bytes | None = None
    if psbt_input.sighash_type is not None and psbt_input.sighash_type != SIGHASH_ALL:
        refusals.append(
            f"the PSBT asks for sighash type {psbt_input.sighash_type:#x}; only ALL (0x01) is accepted"
        )
    for pubkey, sig in psbt_input.partial_sigs:
        holder = holder_of.get(pubkey)
        if holder is None:
            refusals.append(_foreign_key(psbt_input, pubkey, descriptor, holders, path))
            continue
        if not sig or sig[-1] != SIGHASH_ALL:
            kind = f"{sig[-1]:#04x}" if sig else "none"
            refusals.append(
                f"{holder}'s signature (key {_key(pubkey)}) has sighash type {kind}; only ALL "
                "(0x01) is accepted, sign again with SIGHASH_ALL"
            )
            continue
        if digest is None:  # one BIP-143 digest per input serves all its SIGHASH_ALL signatures
            digest = segwit_v0_sighash(tx, index, witness_script, amount, SIGHASH_ALL)
        if verify_ecdsa(pubkey, sig[:-1], digest):  # strict DER, low S, valid: what check_signature accepts
            signed.add(holder)
            continue
        reason = check_signature(tx, index, witness_script, amount, pubkey, sig)  # why not
        refusals.append(
            f"{holder}'s signature (key {_key(pubkey)}) does not verify over {btc(amount)} at path "
            f"{path[0]}/{path[1]}: {reason or 'ECDSA verification failed'}"
        )
    signers = tuple(dict.fromkeys(h for h in holders if h in signed))
    return signers, tuple(refusals)


def attribute_signatures(
    psbt: Psbt,
    index: int,
    descriptor: MultisigDescriptor,
    holders: Sequence[str],
    path: Path,
    amount: int,
) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(signers, refusals) of input ``index``: the holders whose partial signature verifies, each
    once and in key order, and every refused signature with its reason.

    ``path`` and ``amount`` must come from the vault's descriptor and the node, never the PSBT.
    ``holders`` are the vault's holders in key order, one per descriptor key.
    """
    if len(holders) != len(descriptor.keys):
        raise InvalidInput(f"{len(holders)} holders for {len(descriptor.keys)} descriptor keys")
    if not 0 <= index < len(psbt.inputs):
        raise InvalidInput(f"input {index} does not exist; the PSBT has {len(psbt.inputs)} input(s)")
    pubkeys, witness_script = input_script(descriptor, path)
    return _attribute(
        psbt.tx, index, psbt.inputs[index], descriptor, holders, path, pubkeys, witness_script, amount
    )


def _compact_size(n: int) -> int:
    return 1 if n < 0xFD else 3 if n <= 0xFFFF else 5 if n <= 0xFFFF_FFFF else 9


def estimate_vsize(tx: UnsignedTx, threshold: int, n_keys: int) -> int:
    """The vsize of ``tx`` once every input is a finalized P2WSH ``threshold``-of-``n_keys``
    multisig spend, with worst-case signatures (72 bytes + the sighash byte each).

    Witness per input: item count, the empty item ``OP_CHECKMULTISIG`` consumes, ``threshold``
    signatures and the witness script. Segwit marker and flag weigh 1 each; vsize rounds up.
    """
    base = len(tx.serialize())
    script_len = len(sortedmulti_witness_script(threshold, [bytes([2]) + bytes(32)] * n_keys))
    per_input = (
        _compact_size(threshold + 2)
        + 1  # the empty first item
        + threshold * (1 + MAX_SIGNATURE_SIZE + 1)
        + _compact_size(script_len)
        + script_len
    )
    weight = 4 * base + 2 + per_input * len(tx.inputs)
    return -(-weight // 4)


def _claims(psbt_input: PsbtInput, amount: int, script: bytes, witness_script: bytes) -> tuple[str, ...]:
    """Where the PSBT's own claims about an input disagree with the node and the descriptor."""
    out: list[str] = []
    claimed = psbt_input.witness_utxo
    if claimed is not None and claimed.value != amount:
        out.append(
            f"the PSBT claims {btc(claimed.value)} for this input but the node has {btc(amount)}: "
            "signers shown the PSBT would sign the wrong amount"
        )
    if claimed is not None and claimed.script_pubkey != script:
        out.append("the PSBT claims another output script for this input than the node's")
    if psbt_input.witness_script is not None and psbt_input.witness_script != witness_script:
        out.append(
            "the PSBT's witness script for this input is not the one re-derived from the vault's descriptor"
        )
    return tuple(out)


def _address(script: bytes, network: Network) -> str:
    """The output's address, or ``script <hex>`` for a script that has none (e.g. OP_RETURN)."""
    try:
        return script_address(script, network)
    except InvalidInput:
        return f"script {script.hex()}"


def gather_facts(
    psbt: Psbt,
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
    retired_vaults: Mapping[bytes, str] | None = None,
) -> GateFacts:
    """The gate's facts about ``psbt`` as a spend from ``vault``.

    ``prevouts``: the node's unspent outputs by outpoint, (amount sat, script), absent or None when
    the node has no such unspent output. ``vault_scripts``: this vault's scripts → (branch, index)
    (:func:`derive_vault_scripts`). ``other_vaults``: other vaults' scripts → vault name.
    ``allowlist``: scripts of the vault's active allowlist entries → entry name; ``pending``: those
    still in their delay → (name, height at which it becomes active). ``locks``: outpoints held by
    open spends → spend number (``spend``'s own locks are not counted against it).
    ``velocity_used``: sat that already left the vault in the velocity window.
    ``retired_vaults``: retired vaults' scripts → vault name (a destination the gate refuses,
    saying so).
    """
    if len(holders) != len(descriptor.keys):
        raise InvalidInput(
            f"vault {vault}: {len(holders)} holders for {len(descriptor.keys)} descriptor keys"
        )
    tx = psbt.tx
    inputs: list[InputFact] = []
    total_in = 0
    for i, txin in enumerate(tx.inputs):
        outpoint = (txin.txid, txin.vout)
        text = f"{txin.txid}:{txin.vout}"
        locked = locks.get(outpoint)
        locked_by = None if locked is None or locked == spend else locked
        prevout = prevouts.get(outpoint)
        if prevout is None:
            inputs.append(InputFact(text, None, None, (), locked_by))
            continue
        amount, script = prevout
        total_in += amount
        path = vault_scripts.get(script)
        if path is None:
            inputs.append(InputFact(text, amount, None, (), locked_by))
            continue
        pubkeys, witness_script = input_script(descriptor, path)
        if p2wsh_script_pubkey(witness_script) != script:  # a wrong map is not a path
            inputs.append(InputFact(text, amount, None, (), locked_by))
            continue
        signers, refusals = _attribute(
            tx, i, psbt.inputs[i], descriptor, holders, path, pubkeys, witness_script, amount
        )
        claims = _claims(psbt.inputs[i], amount, script, witness_script)
        inputs.append(InputFact(text, amount, path, signers, locked_by, claims + refusals))

    change_branch = descriptor.branches[-1] if descriptor.is_multipath else None
    outputs: list[OutputFact] = []
    for n, txout in enumerate(tx.outputs):
        script = txout.script_pubkey
        address = _address(script, network)
        own = vault_scripts.get(script)
        name: str | None = None
        active_at: int | None = None
        if own is not None and own[0] == change_branch:
            destination = Destination.CHANGE
        elif own is None and script in other_vaults:
            destination, name = Destination.VAULT, other_vaults[script]
        elif own is None and script in allowlist:
            destination, name = Destination.ALLOWLIST, allowlist[script]
        elif own is None and script in pending:
            destination = Destination.PENDING_ALLOWLIST
            name, active_at = pending[script]
        elif own is None and retired_vaults and script in retired_vaults:
            destination, name = Destination.RETIRED_VAULT, retired_vaults[script]
        else:
            destination = Destination.UNKNOWN
        outputs.append(
            OutputFact(
                n,
                txout.value,
                address,
                destination,
                name,
                active_at,
                own if destination is Destination.UNKNOWN else None,
            )
        )

    return GateFacts(
        vault=vault,
        threshold=descriptor.threshold,
        inputs=tuple(inputs),
        outputs=tuple(outputs),
        fee=total_in - sum(o.amount for o in outputs),
        vsize=estimate_vsize(tx, descriptor.threshold, len(descriptor.keys)),
        velocity_used=velocity_used,
        tip_height=tip_height,
        quorum_height=quorum_height,
        holders=tuple(dict.fromkeys(holders)),
    )
