"""``reserve spend sign N FILE...``: import holders' signed PSBTs into a proposal.

A signed PSBT is evidence only for the signatures in it, and each of those is checked here before
it counts: the file must parse (:class:`custody.psbt.Psbt`), be for the vault's network (its
global xpubs) and carry exactly the proposal's unsigned transaction (each difference named:
version, locktime, inputs, outputs' amounts and scripts); each partial signature must be by a key
of the vault at the input's path (re-derived from the descriptor, never from the file) and verify
over the proposal's own amounts (BIP-143 sighash, ECDSA, SIGHASH_ALL, low S). A key of another
vault is named with that vault and holder. Any refusal refuses the whole import, with every
reason, and stores nothing.

Only the verified signatures are copied into the stored PSBT (nothing else of the file is taken),
stored as a ``signed`` event; the height at which the spend first reached quorum (every input
signed by the vault's threshold of distinct holders) is stored with it, for the delay rule.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from custody.errors import InvalidInput
from custody.psbt import Psbt, PsbtInput, UnsignedTx
from custody.rpc import RpcClient
from custody.spend_gate import btc
from custody.spend_node import outpoint_text
from ledger.chain.vaults import Vault, get_vault, list_vaults
from ledger.errors import Conflict
from ledger.spend.events import (
    BROADCAST,
    PROPOSED,
    SIGNED,
    Spend,
    append_event,
    check_untampered,
    get_spend,
)
from ledger.spend.gate import SigCheck, check_input_signatures, find_path, signers_of
from ledger.store.db import lock_journal

SessionFactory = Callable[[], AbstractContextManager[Session]]
MAX_FILE_BYTES = 4_000_000
"""A signed PSBT file larger than this is refused before parsing (a 200-input PSBT is ~100 kB)."""


def tx_differences(want: UnsignedTx, got: UnsignedTx) -> list[str]:
    """How ``got`` differs from the proposal's unsigned transaction ``want``, field by field (pure)."""
    out: list[str] = []
    if got.version != want.version:
        out.append(f"version {got.version} instead of {want.version}")
    if got.locktime != want.locktime:
        out.append(f"locktime {got.locktime} instead of {want.locktime}")
    if len(got.inputs) != len(want.inputs):
        out.append(f"{len(got.inputs)} inputs instead of {len(want.inputs)}")
    for n, (a, b) in enumerate(zip(want.inputs, got.inputs, strict=False)):
        if (a.txid, a.vout) != (b.txid, b.vout):
            out.append(f"input {n} spends {b.outpoint} instead of {a.outpoint}")
        elif a.sequence != b.sequence:
            out.append(f"input {n} has sequence {b.sequence:#x} instead of {a.sequence:#x}")
    if len(got.outputs) != len(want.outputs):
        out.append(f"{len(got.outputs)} outputs instead of {len(want.outputs)}")
    for n, (c, d) in enumerate(zip(want.outputs, got.outputs, strict=False)):
        if c.value != d.value:
            out.append(f"output {n} amount {btc(d.value)} instead of {btc(c.value)}")
        if c.script_pubkey != d.script_pubkey:
            out.append(f"output {n} pays script {d.script_pubkey.hex()} instead of {c.script_pubkey.hex()}")
    return out


def _foreign_owner(
    pubkey: bytes, claim: PsbtInput, path: tuple[int, int] | None, vault: Vault, others: Sequence[Vault]
) -> str | None:
    """``"<holder>'s key of vault <name>"`` when ``pubkey`` is a key of another vault, at this
    input's path or at the path the file claims for it (re-derived to check)."""
    candidates: list[tuple[int, int]] = [] if path is None else [path]
    for d in claim.derivations:
        if d.pubkey == pubkey and len(d.path) >= 2 and d.path[-2] in (0, 1) and d.path[-1] < 2**31:
            candidates.append((d.path[-2], d.path[-1]))
    for other in others:
        if other.name == vault.name:
            continue
        for branch, index in dict.fromkeys(candidates):
            keys = other.descriptor.pubkeys(index, bool(branch))
            if pubkey in keys:
                position = keys.index(pubkey)
                return f"{other.holders[position]}'s key of vault {other.name}"
    return None


@dataclass(frozen=True, slots=True)
class SignResult:
    """What an import did: the spend as stored now, the signatures added, and quorum."""

    spend: Spend
    added: tuple[SigCheck, ...]
    signers: tuple[tuple[str, ...], ...]  # per input, distinct holders with a valid signature
    quorum: bool
    quorum_height: int | None

    @property
    def stored(self) -> bool:
        return bool(self.added)


def _judge_file(
    name: str, data: bytes, proposal: Psbt, vault: Vault, others: Sequence[Vault], paths: Sequence[Any]
) -> tuple[list[tuple[int, tuple[bytes, bytes], SigCheck]], list[str]]:
    """The verified new signatures of one file, and every reason to refuse it."""
    if len(data) > MAX_FILE_BYTES:
        return [], [f"{name}: {len(data):,} bytes is too large for a PSBT (at most {MAX_FILE_BYTES:,})"]
    try:
        psbt = Psbt.parse(data)
    except InvalidInput as e:
        return [], [f"{name}: not a PSBT this service can read: {e}"]
    refusals: list[str] = []
    wrong_net = sorted(k for k in psbt.networks() if k != vault.network.kind)
    if wrong_net:
        refusals.append(
            f"{name}: its global xpubs are for {', '.join(wrong_net)}, but vault {vault.name} is on "
            f"{vault.network.chain}: it is a PSBT for another network"
        )
    diffs = tx_differences(proposal.tx, psbt.tx)
    if diffs:
        refusals.append(
            f"{name}: its unsigned transaction differs from spend proposal {proposal.tx.txid}: "
            + "; ".join(diffs)
            + " (edited after it was proposed? have the holder sign the spend's own PSBT file)"
        )
    if refusals:
        return [], refusals
    found: list[tuple[int, tuple[bytes, bytes], SigCheck]] = []
    for i, (stored, given) in enumerate(zip(proposal.inputs, psbt.inputs, strict=True)):
        have = dict(stored.partial_sigs)
        new = [(pk, sig) for pk, sig in given.partial_sigs if have.get(pk) != sig]
        if not new:
            continue
        utxo = proposal.input_utxo(i)
        amount = None if utxo is None else utxo.value
        for check in check_input_signatures(proposal, i, new, vault, paths[i], amount):
            if check.reason is None:
                if check.pubkey in have:  # a second, different valid signature of a key: keep ours
                    continue
                found.append((i, (check.pubkey, check.signature), check))
                continue
            owner = None if check.holder else _foreign_owner(check.pubkey, given, paths[i], vault, others)
            outpoint = outpoint_text((proposal.tx.inputs[i].txid, proposal.tx.inputs[i].vout))
            if owner is not None:
                refusals.append(
                    f"{name}: input {i} ({outpoint}) carries a signature by {owner}, not by a key of "
                    f"vault {vault.name}: it can never count towards this spend"
                )
            else:
                refusals.append(f"{name}: input {i}: {check.reason}")
    return found, refusals


def sign_spend(
    read: SessionFactory,
    write: SessionFactory,
    rpc: RpcClient,
    number: int,
    files: Sequence[tuple[str, bytes]],
) -> SignResult:
    """Import the signatures of ``files`` (name, content) into spend ``number`` (module doc)."""
    if not files:
        raise InvalidInput("give at least one signed PSBT file")
    with read() as s:
        spend = get_spend(s, number)
        vault = get_vault(s, spend.vault)
        others = list_vaults(s, include_retired=True)
        check_untampered(s, vault.name)
    if spend.state not in (PROPOSED, SIGNED):
        raise Conflict(
            f"spend #{number} is {spend.state}; signatures are imported only while it is proposed or signed"
            + (" (it is on the network already)" if spend.state == BROADCAST else "")
        )
    proposal = Psbt.parse(spend.psbt)
    paths = []
    for i in range(len(proposal.inputs)):
        utxo = proposal.input_utxo(i)
        paths.append(
            None if utxo is None else find_path(vault, utxo.script_pubkey, proposal.inputs[i].derivations)
        )
    accepted: dict[int, dict[bytes, bytes]] = {}
    added: list[SigCheck] = []
    refusals: list[str] = []
    for name, data in files:
        found, refused = _judge_file(name, data, proposal, vault, others, paths)
        refusals += refused
        for i, (pk, sig), check in found:
            if pk not in accepted.setdefault(i, {}):
                accepted[i][pk] = sig
                added.append(check)
    if refusals:
        raise InvalidInput(
            f"spend #{number}: nothing was imported:\n  - " + "\n  - ".join(dict.fromkeys(refusals))
        )
    signed = proposal
    for i, sigs in sorted(accepted.items()):
        signed = signed.with_partial_sigs(i, sorted(sigs.items()))
    signers = tuple(
        signers_of(
            check_input_signatures(
                signed, i, signed.inputs[i].partial_sigs, vault, paths[i], _amount(signed, i)
            )
        )
        for i in range(len(signed.inputs))
    )
    quorum = bool(signers) and all(len(h) >= vault.descriptor.threshold for h in signers)
    if not added:
        return SignResult(spend, (), signers, quorum, spend.quorum_height)
    tip = rpc.get_block_count()
    quorum_height = spend.quorum_height if spend.quorum_height is not None else (tip if quorum else None)
    detail: dict[str, Any] = {
        "added": [
            {"input": c.input, "holder": c.holder, "fingerprint": c.fingerprint, "pubkey": c.pubkey.hex()}
            for c in added
        ],
        "signers": [list(h) for h in signers],
        "quorum": quorum,
    }
    if quorum and spend.quorum_height is None:
        detail["quorum_height"] = tip
    with write() as s:
        lock_journal(s)
        now = get_spend(s, number)
        if now.latest.step != spend.latest.step:
            raise Conflict(
                f"spend #{number} changed while the signatures were checked (now {now.state}); "
                "nothing was imported: run the command again"
            )
        append_event(
            s,
            spend=number,
            state=SIGNED,
            vault=spend.vault,
            txid=spend.txid,
            psbt=signed.to_base64(),
            amount=spend.amount,
            height=tip,
            detail=detail,
        )
        stored = get_spend(s, number)
    return SignResult(stored, tuple(added), signers, quorum, quorum_height)


def _amount(psbt: Psbt, index: int) -> int | None:
    utxo = psbt.input_utxo(index)
    return None if utxo is None else utxo.value
