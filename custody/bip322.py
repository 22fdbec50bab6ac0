"""BIP-322 proof of funds (full format) for P2WSH multisig outputs, pure.

A proof of control over the outputs of one vault address is BIP-322's *full* signature with the
*proof of funds* extension:

- ``to_spend`` (virtual, version 0, locktime 0): one input spending ``000...000:0xFFFFFFFF`` with
  ``scriptSig = OP_0 PUSH32[message_hash]`` and sequence 0, one output of 0 sat paying the
  *challenge* (the address's ``scriptPubKey``). ``message_hash`` is the BIP-340 tagged hash
  ``sha256_tag("BIP0322-signed-message", message)``.
- ``to_sign`` (version 0, locktime 0): input 0 spends ``to_spend:0``; inputs 1.. are the outputs
  being proven; every sequence is 0; one output, 0 sat, ``OP_RETURN``.
- The proof is ``base64(to_sign)`` in network serialization with every input's witness.

``to_sign`` can never be mined: its input 0 spends a transaction that spends the null outpoint and
is no coinbase (its scriptSig pushes height 0, which BIP-34 refuses). Signatures are SIGHASH_ALL
only, so each commits to input 0 and no signature can be lifted into a transaction that moves coins.

:func:`verify_proof` is the verifier for the one script shape the reserve uses,
``OP_m <keys> OP_n OP_CHECKMULTISIG`` behind P2WSH: it checks the framing, then each input's
witness the way the interpreter would under BIP-322's required rules (NULLDUMMY, CLEANSTACK,
strict DER, low S, SIGHASH_ALL, signatures in key order), with BIP-143 sighashes and ECDSA
(:mod:`custody.sighash`). Any other script is refused, never guessed at. It imports only the
standard library, :mod:`custody.psbt` and :mod:`custody.sighash` (``coincurve``).
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from custody.errors import InvalidInput
from custody.psbt import Derivation, GlobalXpub, Psbt, PsbtInput, PsbtOutput, TxIn, TxOut, UnsignedTx
from custody.sighash import SIGHASH_ALL, check_signature

TAG = b"BIP0322-signed-message"
NULL_TXID = "00" * 32
NULL_VOUT = 0xFFFFFFFF
OP_RETURN = b"\x6a"
OP_CHECKMULTISIG = 0xAE
MAX_PROOF_CHARS = 20_000_000  # about 100,000 inputs of a 2-of-3: far above any vault address
MAX_STACK_ITEM = 520  # consensus: a witness stack element pushed for the script


# --- hashing and the two virtual transactions ---


def tagged_hash(tag: bytes, data: bytes) -> bytes:
    """BIP-340 tagged hash: ``sha256(sha256(tag) || sha256(tag) || data)``."""
    tag_digest = hashlib.sha256(tag).digest()
    return hashlib.sha256(tag_digest + tag_digest + data).digest()


def message_hash(message: bytes) -> bytes:
    """``sha256_tag("BIP0322-signed-message", message)``: the message as is, no length prefix."""
    if not isinstance(message, bytes):
        raise InvalidInput("a BIP-322 message is bytes; encode text as UTF-8 first")
    return tagged_hash(TAG, message)


def compact_size(n: int) -> bytes:
    """Bitcoin's CompactSize encoding of ``n`` (the shortest form)."""
    if n < 0xFD:
        return bytes((n,))
    if n <= 0xFFFF:
        return b"\xfd" + n.to_bytes(2, "little")
    if n <= 0xFFFFFFFF:
        return b"\xfe" + n.to_bytes(4, "little")
    return b"\xff" + n.to_bytes(8, "little")


def _txid(raw: bytes) -> str:
    return hashlib.sha256(hashlib.sha256(raw).digest()).digest()[::-1].hex()


def to_spend_bytes(message: bytes, challenge: bytes) -> bytes:
    """The serialized ``to_spend`` transaction of ``message`` and the challenge script."""
    script_sig = b"\x00\x20" + message_hash(message)
    return b"".join(
        (
            (0).to_bytes(4, "little"),  # nVersion 0
            b"\x01",
            bytes.fromhex(NULL_TXID),
            NULL_VOUT.to_bytes(4, "little"),
            compact_size(len(script_sig)) + script_sig,
            (0).to_bytes(4, "little"),  # nSequence 0
            b"\x01",
            (0).to_bytes(8, "little"),  # nValue 0
            compact_size(len(challenge)) + challenge,
            (0).to_bytes(4, "little"),  # nLockTime 0
        )
    )


def to_spend_txid(message: bytes, challenge: bytes) -> str:
    """The txid (display order) of ``to_spend``: what ``to_sign``'s input 0 spends."""
    return _txid(to_spend_bytes(message, challenge))


@dataclass(frozen=True, slots=True)
class Prevout:
    """An output being proven: its outpoint, amount (sat) and ``scriptPubKey``."""

    txid: str
    vout: int
    amount: int
    script_pubkey: bytes

    def __post_init__(self) -> None:
        if len(self.txid) != 64 or self.txid != self.txid.lower() or not _is_hex(self.txid):
            raise InvalidInput(f"txid {self.txid!r} is not 64 lowercase hex digits")
        if isinstance(self.vout, bool) or not 0 <= self.vout < NULL_VOUT:
            raise InvalidInput(f"output index {self.vout} of {self.txid} is out of range")
        if isinstance(self.amount, bool) or not 0 <= self.amount <= 21_000_000 * 100_000_000:
            raise InvalidInput(f"amount {self.amount} sat of {self.outpoint} is out of range")

    @property
    def outpoint(self) -> str:
        return f"{self.txid}:{self.vout}"


def _is_hex(text: str) -> bool:
    return all(c in "0123456789abcdef" for c in text)


def to_sign(message: bytes, challenge: bytes, prevouts: Sequence[Prevout] = ()) -> UnsignedTx:
    """The unsigned ``to_sign``: input 0 spends ``to_spend:0``, then the proven outputs in order."""
    outpoints = [p.outpoint for p in prevouts]
    if len(set(outpoints)) != len(outpoints):
        raise InvalidInput("an output to prove is listed twice; give each outpoint once")
    first = TxIn(to_spend_txid(message, challenge), 0, 0)
    inputs = (first, *(TxIn(p.txid, p.vout, 0) for p in prevouts))
    return UnsignedTx(version=0, locktime=0, inputs=inputs, outputs=(TxOut(0, OP_RETURN),))


# --- the multisig witness script ---


def p2wsh(witness_script: bytes) -> bytes:
    """``OP_0 PUSH32[sha256(witness script)]``."""
    return b"\x00\x20" + hashlib.sha256(witness_script).digest()


def multisig_keys(witness_script: bytes) -> tuple[int, tuple[bytes, ...]]:
    """``(m, keys)`` of ``OP_m <33-byte key>... OP_n OP_CHECKMULTISIG``; anything else is refused."""
    s = witness_script
    n_keys = len(s) - 3
    if len(s) < 37 or n_keys % 34 or s[-1] != OP_CHECKMULTISIG:
        raise InvalidInput(f"witness script {s.hex()[:40]}... is not OP_m <keys> OP_n OP_CHECKMULTISIG")
    n = n_keys // 34
    m, n_op = s[0] - 0x50, s[-2] - 0x50
    if not 1 <= n <= 16 or n_op != n or not 1 <= m <= n:
        raise InvalidInput(
            f"witness script {s.hex()[:40]}... is not an m-of-n multisig with 1 <= m <= n <= 16 "
            "written with OP_1..OP_16"
        )
    keys = []
    for i in range(n):
        push = s[1 + 34 * i : 1 + 34 * (i + 1)]
        if push[0] != 33 or push[1] not in (2, 3):
            raise InvalidInput(f"witness script key {i + 1} is not a 33-byte compressed public key")
        keys.append(push[1:])
    return m, tuple(keys)


def multisig_witness(witness_script: bytes, partial_sigs: Sequence[tuple[bytes, bytes]]) -> tuple[bytes, ...]:
    """``(empty, sig..., witness script)``: the first ``m`` signatures in the script's key order.

    ``partial_sigs`` are (pubkey, DER signature + sighash byte) pairs, already checked by the caller.
    """
    m, keys = multisig_keys(witness_script)
    by_key = dict(partial_sigs)
    sigs = [by_key[k] for k in keys if k in by_key][:m]
    if len(sigs) < m:
        raise InvalidInput(
            f"{len(sigs)} signature(s) of the script's keys, {m} needed; have more key holders sign"
        )
    return (b"", *sigs, witness_script)


# --- the signed transaction: serialization and strict parsing ---


@dataclass(frozen=True, slots=True)
class SignedTx:
    """A transaction with one witness stack per input (every scriptSig empty)."""

    tx: UnsignedTx
    witnesses: tuple[tuple[bytes, ...], ...]

    def __post_init__(self) -> None:
        if len(self.witnesses) != len(self.tx.inputs):
            raise InvalidInput(f"{len(self.witnesses)} witnesses for {len(self.tx.inputs)} inputs")

    def serialize(self) -> bytes:
        """Network serialization with the segwit marker (BIP-144)."""
        tx = self.tx
        parts = [tx.version.to_bytes(4, "little"), b"\x00\x01", compact_size(len(tx.inputs))]
        for txin in tx.inputs:
            parts += [bytes.fromhex(txin.txid)[::-1], txin.vout.to_bytes(4, "little"), b"\x00"]
            parts.append(txin.sequence.to_bytes(4, "little"))
        parts.append(compact_size(len(tx.outputs)))
        for out in tx.outputs:
            parts += [
                out.value.to_bytes(8, "little"),
                compact_size(len(out.script_pubkey)),
                out.script_pubkey,
            ]
        for stack in self.witnesses:
            parts.append(compact_size(len(stack)))
            parts += [compact_size(len(item)) + item for item in stack]
        parts.append(tx.locktime.to_bytes(4, "little"))
        return b"".join(parts)

    def to_base64(self) -> str:
        return base64.b64encode(self.serialize()).decode("ascii")


class _Reader:
    def __init__(self, data: bytes) -> None:
        self.data, self.pos = data, 0

    def take(self, n: int, what: str) -> bytes:
        if n > len(self.data) - self.pos:
            raise InvalidInput(f"proof transaction truncated in {what} at byte {self.pos}")
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def int_le(self, n: int, what: str) -> int:
        return int.from_bytes(self.take(n, what), "little")

    def size(self, what: str) -> int:
        start = self.pos
        first = self.take(1, what)[0]
        width = {0xFD: 2, 0xFE: 4, 0xFF: 8}.get(first, 0)
        n = self.int_le(width, what) if width else first
        if compact_size(n) != self.data[start : self.pos]:
            raise InvalidInput(f"proof transaction has a non-minimal length in {what} at byte {start}")
        if n > len(self.data):
            raise InvalidInput(f"proof transaction claims {n} items in {what} at byte {start}")
        return n


def parse_signed(raw: bytes) -> SignedTx:
    """Parse a segwit transaction strictly: canonical, no trailing bytes, every scriptSig empty."""
    r = _Reader(raw)
    version = r.int_le(4, "version")
    if r.take(2, "segwit marker") != b"\x00\x01":
        raise InvalidInput("proof transaction has no witness (no segwit marker after the version)")
    inputs = []
    for i in range(r.size("input count")):
        txid = r.take(32, f"input {i}")[::-1].hex()
        vout = r.int_le(4, f"input {i}")
        if r.size(f"input {i} scriptSig") != 0:
            raise InvalidInput(f"proof input {i} has a scriptSig; P2WSH inputs are spent by witness only")
        inputs.append(TxIn(txid, vout, r.int_le(4, f"input {i} sequence")))
    outputs = []
    for i in range(r.size("output count")):
        value = r.int_le(8, f"output {i}")
        outputs.append(TxOut(value, r.take(r.size(f"output {i} script"), f"output {i} script")))
    witnesses = []
    for i in range(len(inputs)):
        stack = tuple(
            r.take(r.size(f"witness {i} item"), f"witness {i} item") for _ in range(r.size(f"witness {i}"))
        )
        witnesses.append(stack)
    locktime = r.int_le(4, "locktime")
    if r.pos != len(raw):
        raise InvalidInput(f"proof transaction has {len(raw) - r.pos} trailing byte(s)")
    if not inputs:
        raise InvalidInput("proof transaction has no inputs")
    tx = UnsignedTx(version=version, locktime=locktime, inputs=tuple(inputs), outputs=tuple(outputs))
    return SignedTx(tx, tuple(witnesses))


def decode_proof(proof: str) -> SignedTx:
    """The signed ``to_sign`` of a full-format proof (canonical base64, one spelling per proof)."""
    text = proof.strip()
    if len(text) > MAX_PROOF_CHARS:
        raise InvalidInput(f"proof is {len(text)} characters, more than {MAX_PROOF_CHARS}")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise InvalidInput(f"proof is not base64 ({exc})") from exc
    if base64.b64encode(raw).decode("ascii") != text:
        raise InvalidInput("proof is not canonical base64 (padding or unused bits set)")
    return parse_signed(raw)


# --- the PSBT signers sign, and the finished proof ---


@dataclass(frozen=True, slots=True)
class SpendInfo:
    """How an output is spent: its witness script and every key's BIP-32 derivation."""

    witness_script: bytes
    derivations: tuple[Derivation, ...]

    @property
    def script_pubkey(self) -> bytes:
        return p2wsh(self.witness_script)


@dataclass(frozen=True, slots=True)
class ProvenInput:
    """An output to prove, how to spend it and (optionally) its whole funding transaction."""

    prevout: Prevout
    spend: SpendInfo
    funding_tx: bytes | None = None

    def __post_init__(self) -> None:
        if self.prevout.script_pubkey != self.spend.script_pubkey:
            raise InvalidInput(f"output {self.prevout.outpoint} is not paid to the given witness script")
        if self.funding_tx is not None and _txid(self.funding_tx) != self.prevout.txid:
            raise InvalidInput(f"the funding transaction given for {self.prevout.outpoint} has another txid")


def proof_psbt(
    message: bytes, challenge: SpendInfo, proven: Sequence[ProvenInput], xpubs: Sequence[GlobalXpub] = ()
) -> Psbt:
    """The PSBT of ``to_sign`` for signers (BIP-174 v0, Bitcoin Core's ``walletprocesspsbt`` signs it).

    Input 0 carries ``to_spend`` both as ``non_witness_utxo`` and as ``witness_utxo`` (0 sat, the
    challenge), with the challenge's witness script and key derivations; the proven inputs carry
    their ``witness_utxo`` (and funding transaction when given) and the same. Sighash ALL.
    """
    script = challenge.script_pubkey
    tx = to_sign(message, script, [p.prevout for p in proven])
    first = PsbtInput(
        non_witness_utxo=to_spend_bytes(message, script),
        witness_utxo=TxOut(0, script),
        partial_sigs=(),
        sighash_type=SIGHASH_ALL,
        witness_script=challenge.witness_script,
        derivations=challenge.derivations,
        final_script_witness=None,
        unknown=(),
    )
    rest = tuple(
        PsbtInput(
            non_witness_utxo=p.funding_tx,
            witness_utxo=TxOut(p.prevout.amount, p.prevout.script_pubkey),
            partial_sigs=(),
            sighash_type=SIGHASH_ALL,
            witness_script=p.spend.witness_script,
            derivations=p.spend.derivations,
            final_script_witness=None,
            unknown=(),
        )
        for p in proven
    )
    return Psbt(
        tx=tx,
        xpubs=tuple(xpubs),
        inputs=(first, *rest),
        outputs=(PsbtOutput(witness_script=None, derivations=(), unknown=()),),
        unknown=(),
    )


def check_proof_psbt(psbt: Psbt, message: bytes) -> tuple[str, ...]:
    """What a holder checks before signing: this PSBT is a BIP-322 proof over ``message``, not a spend.

    Bitcoin Core signs any PSBT its keys can sign. A ``to_sign`` whose input 0 were a real output
    would be a valid transaction paying every input to fees; it is harmless only because input 0
    spends ``to_spend``, which cannot exist. So: input 0 carries exactly ``to_spend`` of
    ``message`` and its challenge, the transaction is version 0, locktime 0, with the one empty
    OP_RETURN output, and every input asks for SIGHASH_ALL (or nothing, which Core signs as ALL).
    Empty findings: safe to sign.
    """
    findings = []
    tx = psbt.tx
    first = psbt.inputs[0]
    challenge = first.witness_utxo.script_pubkey if first.witness_utxo is not None else b""
    if first.witness_utxo != TxOut(0, challenge) or not challenge:
        findings.append("input 0 does not spend a 0-sat output to the challenge (witness_utxo)")
    elif first.non_witness_utxo != to_spend_bytes(message, challenge):
        findings.append("input 0's previous transaction is not to_spend of this message and challenge")
    elif tx.inputs[0] != TxIn(to_spend_txid(message, challenge), 0, 0):
        findings.append("input 0 does not spend to_spend:0 with sequence 0")
    if (tx.version, tx.locktime) != (0, 0):
        findings.append(
            f"the transaction is version {tx.version}, locktime {tx.locktime}; BIP-322 gives 0, 0"
        )
    if tx.outputs != (TxOut(0, OP_RETURN),):
        findings.append("the transaction has outputs other than one 0-sat bare OP_RETURN")
    outpoints = [(i.txid, i.vout) for i in tx.inputs]
    if len(set(outpoints)) != len(outpoints) or (NULL_TXID, NULL_VOUT) in outpoints:
        findings.append("the transaction spends an outpoint twice or the null outpoint")
    for index, inp in enumerate(psbt.inputs):
        if inp.sighash_type not in (None, SIGHASH_ALL):
            findings.append(f"input {index} asks for sighash type {inp.sighash_type}, not ALL")
    return tuple(findings)


def input_prevout(psbt: Psbt, index: int) -> tuple[int, bytes]:
    """(amount, scriptPubKey) the PSBT says input ``index`` spends (its ``witness_utxo``)."""
    utxo = psbt.inputs[index].witness_utxo
    if utxo is None:
        raise InvalidInput(f"PSBT input {index} has no witness_utxo; it is not a P2WSH proof input")
    return utxo.value, utxo.script_pubkey


def finalize_psbt(psbt: Psbt) -> Psbt:
    """BIP-174 finalizer: each input's witness from its partial signatures (script key order).

    Signatures are taken as given; check them first (:func:`check_partial_sigs`). The partial
    signatures, witness scripts and derivations are dropped, as BIP-174 says a finalizer does.
    """
    inputs = []
    for index, inp in enumerate(psbt.inputs):
        if inp.final_script_witness is not None:
            inputs.append(inp)
            continue
        if inp.witness_script is None:
            raise InvalidInput(f"PSBT input {index} has no witness script; it cannot be finalized")
        try:
            witness = multisig_witness(inp.witness_script, inp.partial_sigs)
        except InvalidInput as exc:
            exc.add_note(f"PSBT input {index}")
            raise
        inputs.append(
            dataclasses.replace(
                inp,
                partial_sigs=(),
                sighash_type=None,
                witness_script=None,
                derivations=(),
                final_script_witness=witness,
            )
        )
    return dataclasses.replace(psbt, inputs=tuple(inputs))


def signed_tx(psbt: Psbt) -> SignedTx:
    """The finished ``to_sign`` of a finalized PSBT."""
    witnesses = []
    for index, inp in enumerate(psbt.inputs):
        if inp.final_script_witness is None:
            raise InvalidInput(f"PSBT input {index} is not finalized")
        witnesses.append(tuple(inp.final_script_witness))
    return SignedTx(psbt.tx, tuple(witnesses))


def check_partial_sigs(psbt: Psbt, index: int) -> tuple[tuple[bytes, ...], tuple[str, ...]]:
    """(keys whose signature verifies, refusals) for input ``index``'s partial signatures.

    A signature counts when its key is one of the input's witness script keys, the script hashes
    to the input's ``scriptPubKey``, and it verifies (BIP-143, strict DER, low S, SIGHASH_ALL).
    """
    inp = psbt.inputs[index]
    amount, script_pubkey = input_prevout(psbt, index)
    if inp.witness_script is None or p2wsh(inp.witness_script) != script_pubkey:
        return (), (f"input {index}: the witness script does not hash to the output it spends",)
    _, keys = multisig_keys(inp.witness_script)
    good: list[bytes] = []
    refusals: list[str] = []
    for pubkey, sig in inp.partial_sigs:
        if pubkey not in keys:
            refusals.append(f"input {index}: key {pubkey.hex()} is not one of the script's keys")
            continue
        reason = check_signature(psbt.tx, index, inp.witness_script, amount, pubkey, sig)
        if reason is None:
            good.append(pubkey)
        else:
            refusals.append(f"input {index}: signature of key {pubkey.hex()}: {reason}")
    return tuple(good), tuple(refusals)


# --- verification ---


@dataclass(frozen=True, slots=True)
class ProofCheck:
    """What :func:`verify_proof` found: ``findings`` (empty when valid) and, per input, the keys
    whose signatures the witness consumed, in script order."""

    findings: tuple[str, ...]
    signers: tuple[tuple[bytes, ...], ...]
    to_sign_txid: str | None = None  # of the decoded proof

    @property
    def ok(self) -> bool:
        return not self.findings


def verify_proof(
    message: bytes,
    challenge: bytes,
    proof: str,
    prevouts: Sequence[Prevout],
    witness_scripts: Mapping[bytes, bytes] | None = None,
) -> ProofCheck:
    """Check a full-format proof of funds of ``prevouts`` for ``challenge`` over ``message``.

    ``prevouts`` are the outputs the proof claims, each exactly once (amounts and scripts as the
    chain has them: the signatures commit to them). ``witness_scripts`` maps a ``scriptPubKey`` to
    the witness script it must be spent with (from the vault's descriptor); without it the
    witness's own script is accepted when it hashes to the ``scriptPubKey``.
    """
    try:
        signed = decode_proof(proof)
    except InvalidInput as exc:
        return ProofCheck((f"proof does not decode: {exc}",), ())
    tx = signed.tx
    findings = _framing_findings(message, challenge, tx, prevouts)
    if findings:
        return ProofCheck(tuple(findings), (), tx.txid)
    spent = [(0, challenge)] + [(p.amount, p.script_pubkey) for p in prevouts]
    signers: list[tuple[bytes, ...]] = []
    for index, (amount, script_pubkey) in enumerate(spent):
        wanted = None if witness_scripts is None else witness_scripts.get(script_pubkey)
        if witness_scripts is not None and wanted is None:
            findings.append(f"input {index}: no witness script known for its script {script_pubkey.hex()}")
            signers.append(())
            continue
        keys, problems = _witness_findings(tx, index, amount, script_pubkey, signed.witnesses[index], wanted)
        signers.append(keys)
        findings += [f"input {index}: {p}" for p in problems]
    return ProofCheck(tuple(findings), tuple(signers), tx.txid)


def _framing_findings(
    message: bytes, challenge: bytes, tx: UnsignedTx, prevouts: Sequence[Prevout]
) -> list[str]:
    """BIP-322's shape of ``to_sign``; the proven inputs exactly the claimed outputs, in order."""
    findings = []
    if tx.version != 0:
        findings.append(f"to_sign version is {tx.version}, not 0")
    if tx.locktime != 0 or tx.inputs[0].sequence != 0:
        findings.append(
            f"to_sign is time-locked (nLockTime {tx.locktime}, input 0 nSequence "
            f"{tx.inputs[0].sequence}); a proof of control here has neither"
        )
    expected = to_spend_txid(message, challenge)
    first = tx.inputs[0]
    if (first.txid, first.vout) != (expected, 0):
        findings.append(
            f"to_sign input 0 spends {first.txid}:{first.vout}, not to_spend {expected}:0 of this "
            "message and challenge: the proof is for another message, block or address"
        )
    if len(tx.outputs) != 1 or tx.outputs[0].value != 0 or tx.outputs[0].script_pubkey != OP_RETURN:
        findings.append("to_sign must have exactly one output: 0 sat to a bare OP_RETURN")
    proven = [(i.txid, i.vout) for i in tx.inputs[1:]]
    claimed = [(p.txid, p.vout) for p in prevouts]
    if proven != claimed:
        missing = sorted(f"{t}:{v}" for t, v in set(claimed) - set(proven))
        extra = sorted(f"{t}:{v}" for t, v in set(proven) - set(claimed))
        findings.append(
            "to_sign's inputs 1.. are not the claimed outputs in order"
            + (f"; not proven: {', '.join(missing)}" if missing else "")
            + (f"; not claimed: {', '.join(extra)}" if extra else "")
        )
    outpoints = [(i.txid, i.vout) for i in tx.inputs]
    if len(set(outpoints)) != len(outpoints):
        findings.append("to_sign spends the same outpoint twice")
    if any((t, v) in ((NULL_TXID, NULL_VOUT), (expected, 0)) for t, v in proven):
        findings.append("an additional input spends to_spend or the null outpoint")
    return findings


def _witness_findings(
    tx: UnsignedTx,
    index: int,
    amount: int,
    script_pubkey: bytes,
    witness: tuple[bytes, ...],
    wanted: bytes | None,
) -> tuple[tuple[bytes, ...], list[str]]:
    """Evaluate one P2WSH multisig input as OP_CHECKMULTISIG would under BIP-322's required rules."""
    if len(script_pubkey) != 34 or script_pubkey[:2] != b"\x00\x20":
        return (), [f"spends {script_pubkey.hex()}, not a P2WSH output; only wsh(multisig) is checked"]
    if not witness:
        return (), ["no witness"]
    witness_script = witness[-1]
    if p2wsh(witness_script) != script_pubkey:
        return (), ["the witness script does not hash to the output's P2WSH program"]
    if wanted is not None and witness_script != wanted:
        return (), ["the witness script is not the one the vault's descriptor gives for this output"]
    try:
        m, keys = multisig_keys(witness_script)
    except InvalidInput as exc:
        return (), [str(exc)]
    stack = witness[:-1]
    if len(stack) != m + 1:
        return (), [f"witness has {len(stack) - 1} signature(s) for a {m}-of-{len(keys)} script (CLEANSTACK)"]
    if stack[0] != b"":
        return (), ["the OP_CHECKMULTISIG dummy element is not empty (NULLDUMMY)"]
    if any(len(item) > MAX_STACK_ITEM for item in stack):
        return (), [f"a witness element is larger than {MAX_STACK_ITEM} bytes"]
    signed: list[bytes] = []
    key_pos = 0
    for number, sig in enumerate(stack[1:], start=1):
        reasons = []
        while key_pos < len(keys):
            key = keys[key_pos]
            key_pos += 1
            reason = check_signature(tx, index, witness_script, amount, key, sig)
            if reason is None:
                signed.append(key)
                break
            reasons.append(reason)
        else:
            detail = f" ({reasons[0]})" if len(set(reasons)) == 1 else ""
            return tuple(signed), [
                f"signature {number} of {m} verifies against none of the remaining keys in script "
                f"order{detail}: {m} of {len(keys)} distinct keys must sign"
            ]
    return tuple(signed), []
