"""Offline verifier of reserve-ledger attestations (``reserve-ledger-attestation/v1``).

An auditor runs it with no node and few dependencies: the Python standard library,
``cryptography`` (Ed25519) and ``coincurve`` (secp256k1: BIP-32 derivation of the vaults'
scripts, and the BIP-322 proofs of control), installed from the hash-pinned
``docs/auditor-requirements.txt``, plus three files of this repository it imports:
:mod:`ledger.verify_proof` (checkpoint signatures), :mod:`custody.merkleblock` (headers, Merkle
proofs, transactions) and, for the proofs of control, :mod:`custody.bip322` (with the small
modules these use, such as :mod:`custody.errors` and :mod:`custody.amount` for the BTC text of
the figures)::

    pip install --require-hashes -r docs/auditor-requirements.txt
    python -m ledger.attest.verify_doc ATTESTATION.json --pubkey LEDGER-PUB.pem

prints one line per check (``ok``/``FAIL`` and what) and exits 0 when every check passes, 1 when
one fails. The format and every check are described in ``docs/attestation.md``.

The checks, by name (a failure names its check and the offending value):

- ``format``: the document's shape and types, and no field the format does not define, at any
  level (:data:`SCHEMA`); the file is read with :func:`ledger.verify_proof.strict_json_loads`
  (a key repeated at any depth, ``NaN`` or a fraction is refused before any check);
- ``signature``: Ed25519 over :func:`signing_message` by a trusted key (``--pubkey``);
- ``headers``: the headers link by previous-block hash from ``headers.start`` up to ``height``,
  each meets its own ``nBits`` target (within the network's limit), the last is ``block_hash``;
- ``transactions``: each transaction's bytes hash to its txid;
- ``proofs``: each ``gettxoutproof`` is a valid partial Merkle tree whose header is the document's
  header of that block, leading to its Merkle root;
- ``outputs``: each output's amount and script are those of its transaction's output, its block
  and height agree with the headers, its txid is proven in that block, its script is the vault's
  descriptor derived at its (branch, index), no outpoint twice, none spent by another attested
  transaction;
- ``sums``: per-vault and total chain amounts, ledger amounts and differences add up;
- ``checkpoint``: the ledger checkpoint's signature by a trusted key, and the journal entries
  carried in the document rebuild its tree size and root (RFC 6962);
- ``balances``: the vault accounts' balances summed from those entries equal the stated ones;
  each vault's descriptor and holders are those its ``vault-added`` record in the journal
  defines, its account has its name, and every vault the journal defines is attested;
- ``control``: each vault's BIP-322 proof of control (when the document carries one);
- ``reserves``: per vault, the proven chain amount (the outputs that verified) against the books
  (its account's balance recomputed from the entries) and the document's stated difference
  against that recomputation; the chain below the books is a shortfall and fails. Each vault's
  figures are printed whatever the outcome, and a vault holding more on chain than in its books
  turns the verdict into "OK ... with differences" naming it.

Offline, an output left out of the document cannot be seen: it shows only as a vault's chain
amount below its books (a ``reserves`` failure) and not at all if the books miss it too; the
verdict says so (:data:`OFFLINE_NOTE`). ``reserve attest verify --node`` searches the node's
UTXO set and the blocks after H for such outputs.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import hashlib
import json
import re
import struct
import sys
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from custody.amount import format_btc
from custody.errors import InvalidInput
from custody.merkleblock import (
    POW_LIMITS,
    BlockHeader,
    MerkleBlock,
    RawTx,
    header_chain_findings,
    retarget_findings,
)
from ledger.attest import wsh_descriptor
from ledger.verify_proof import (
    CHECKPOINT_FIELDS,
    ProofError,
    key_id,
    strict_json_loads,
    unknown_fields,
    verify_checkpoint_signature,
)

FORMAT = "reserve-ledger-attestation/v1"
SIGNED_HEADER = b"reserve-ledger attestation v1\n"
ENTRY_MAGIC = b"RLE\x01"
VAULT_ACCOUNT_TYPE = "vault"
CHECKS = (
    "format",
    "signature",
    "headers",
    "transactions",
    "proofs",
    "outputs",
    "sums",
    "checkpoint",
    "balances",
    "control",
    "reserves",
)
INTEGRITY_CHECKS = CHECKS[:-1]
"""The checks that the document is what the ledger signed and what the chain holds; ``reserves``
judges the figures it proves."""
OFFLINE_NOTE = (
    "note: offline, outputs left out of the document cannot be seen: a vault's chain amount counts "
    "only the outputs listed, so one left out shows only as a shortfall against the books, and not "
    "at all if the books miss it too; `reserve attest verify --node` searches the node's UTXO set "
    "and the blocks after the attested height for them"
)

Schema = dict[str, "Schema | None"]
"""An object's fields, each with the schema of its value when that is an object or a list of
objects (``None``: anything else, or a map whose keys are data: txids, block hashes, accounts)."""
_CONTROL_PROOF: Schema = dict.fromkeys(
    (
        "format",
        "address",
        "challenge",
        "branch",
        "index",
        "witness_script",
        "proof",
        "to_sign_txid",
        "signers",
    )
) | {"utxos": dict.fromkeys(("txid", "vout", "amount", "script_pubkey"))}
_VAULT: Schema = dict.fromkeys(
    ("name", "account", "descriptor", "threshold", "holders", "chain_amount", "ledger_amount", "difference")
) | {
    "outputs": dict.fromkeys(
        ("txid", "vout", "amount", "script_pubkey", "branch", "index", "block_hash", "height", "coinbase")
    ),
    "control": {"format": None, "message": None, "proofs": _CONTROL_PROOF},
}
SCHEMA: Schema = dict.fromkeys(
    ("format", "network", "height", "block_hash", "created_at", "transactions", "proofs")
) | {
    "headers": dict.fromkeys(("start", "hex")),
    "vaults": _VAULT,
    "totals": dict.fromkeys(("chain", "ledger", "difference")),
    "ledger": {"checkpoint": dict.fromkeys(CHECKPOINT_FIELDS), "entries": None, "balances": None},
    "signature": dict.fromkeys(("key_id", "signature")),
}
"""Every field of ``reserve-ledger-attestation/v1``, at every level: a document with any other
field fails ``format`` (the signature covers it, but no verifier would read it)."""


def schema_findings(value: Any, schema: Schema, path: tuple[str | int, ...] = ()) -> list[str]:
    """Each field of ``value`` (an object, or a list of objects) that ``schema`` does not define
    (as deep as the schema, never deeper: a list nested in a list is not followed)."""
    if isinstance(value, list):
        items = [(i, item) for i, item in enumerate(value) if isinstance(item, dict)]
        return [f for i, item in items for f in schema_findings(item, schema, (*path, i))]
    if not isinstance(value, dict):
        return []
    found = [f"unknown field {u}" for u in unknown_fields(value, schema, path)]
    for name, inner in schema.items():
        if inner is not None and name in value:
            found += schema_findings(value[name], inner, (*path, name))
    return found


# --- the signed bytes -------------------------------------------------------------------------


def canonical_bytes(doc: dict[str, Any]) -> bytes:
    """``json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True)`` as ASCII."""
    return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def signing_message(doc: dict[str, Any]) -> bytes:
    """What the ledger's Ed25519 key signs: the header line, then the canonical JSON of the
    document without its ``signature`` field."""
    return SIGNED_HEADER + canonical_bytes({k: v for k, v in doc.items() if k != "signature"})


def document_sha256(doc: dict[str, Any]) -> str:
    """SHA-256 (hex) of the whole document's canonical JSON: what the ledger's log records."""
    return hashlib.sha256(canonical_bytes(doc)).hexdigest()


# --- results ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Check:
    name: str
    findings: tuple[str, ...]
    note: str = ""

    @property
    def ok(self) -> bool:
        return not self.findings


@dataclass(frozen=True, slots=True)
class VaultFigures:
    """A vault's amounts as the verifier recomputed them, in satoshis: ``chain`` the sum of the
    outputs the document proves, ``books`` its account's balance summed from the checkpointed
    entries."""

    name: str
    outputs: int
    chain: int
    books: int

    @property
    def difference(self) -> int:
        """Chain minus books: negative is a shortfall, positive more on chain than booked."""
        return self.chain - self.books

    def line(self) -> str:
        d = self.difference
        verdict = (
            "equal"
            if d == 0
            else f"{format_btc(-d)} BTC SHORT"
            if d < 0
            else f"{format_btc(d)} BTC more on chain than in the books"
        )
        return (
            f"vault {self.name}: chain {format_btc(self.chain)} BTC ({self.outputs} outputs proven), "
            f"books {format_btc(self.books)} BTC, difference {'+' if d > 0 else ''}{format_btc(d)} BTC "
            f"({verdict})"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "outputs": self.outputs,
            "chain": self.chain,
            "books": self.books,
            "difference": self.difference,
        }


@dataclass(frozen=True, slots=True)
class Verification:
    checks: tuple[Check, ...]
    figures: tuple[VaultFigures, ...] = ()

    @property
    def ok(self) -> bool:
        return all(c.ok for c in self.checks)

    @property
    def failed(self) -> tuple[str, ...]:
        """Names of the checks that failed."""
        return tuple(c.name for c in self.checks if not c.ok)

    @property
    def integrity_failed(self) -> tuple[str, ...]:
        """The failed checks that say the document is not what the ledger signed or the chain
        holds (every check but ``reserves``)."""
        return tuple(n for n in self.failed if n in INTEGRITY_CHECKS)

    def check(self, name: str) -> Check:
        return next(c for c in self.checks if c.name == name)

    def lines(self) -> list[str]:
        """One line per check (``ok``) or finding (``FAIL``), then each vault's recomputed chain,
        books and difference; the document's text in them is the other side's, so control
        characters are shown escaped (:func:`printable`)."""
        out = []
        for c in self.checks:
            if c.ok:
                out.append(printable(f"ok    {c.name}" + (f": {c.note}" if c.note else "")))
            for f in c.findings:
                out.append(printable(f"FAIL  {c.name}: {f}"))
        out += [printable(f"      {v.line()}") for v in self.figures]
        return out

    def verdict(self, failed: Sequence[str] | None = None) -> str:
        """The last line: ``FAIL: <checks>`` (``failed``: these instead of :attr:`failed`, e.g.
        with ``node``), ``OK ... with differences`` naming each vault holding more on chain than
        in its books, or ``OK: the attestation verifies``."""
        failed = self.failed if failed is None else failed
        short = [v for v in self.figures if v.difference < 0] if "reserves" in failed else []
        if failed:
            return printable(
                f"FAIL: {', '.join(failed)}"
                + (
                    " (chain below the books: "
                    + ", ".join(f"vault {v.name} {format_btc(-v.difference)} BTC short" for v in short)
                    + ")"
                    if short
                    else ""
                )
            )
        more = [v for v in self.figures if v.difference > 0]
        if more:
            return printable(
                "OK: the attestation verifies, with differences not explained by the document: "
                + ", ".join(
                    f"vault {v.name} holds {format_btc(v.difference)} BTC more on chain" for v in more
                )
                + " than in the books (deposits not yet booked, or spends booked before they confirmed)"
            )
        return "OK: the attestation verifies"


_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]")


def printable(text: str) -> str:
    """``text`` with every control character (terminal escapes, line breaks, bidirectional
    overrides) written as a Python escape: a hostile document cannot draw on the auditor's terminal."""
    return _CONTROL.sub(lambda m: m.group().encode("unicode_escape").decode("ascii"), text)


class _Malformed(Exception):
    """The document's shape is wrong: nothing further can be checked."""


# --- field readers ----------------------------------------------------------------------------


def _get(d: Any, name: str, kind: type | tuple[type, ...], where: str) -> Any:
    if not isinstance(d, dict):
        raise _Malformed(f"{where} must be a JSON object")
    if name not in d:
        raise _Malformed(f"{where} has no field {name!r}")
    value = d[name]
    if (isinstance(value, bool) and kind is int) or not isinstance(value, kind):
        raise _Malformed(f"{where} field {name!r} has the wrong type ({type(value).__name__})")
    return value


def _nat(d: Any, name: str, where: str) -> int:
    value: int = _get(d, name, int, where)
    if value < 0:
        raise _Malformed(f"{where} field {name!r} is negative ({value})")
    return value


def _hexstr(value: Any, where: str, size: int | None = None) -> bytes:
    if not isinstance(value, str) or not re.fullmatch(r"(?:[0-9a-f]{2})*", value):
        raise _Malformed(f"{where} must be lowercase hex, got {str(value)[:40]!r}")
    raw = bytes.fromhex(value)
    if size is not None and len(raw) != size:
        raise _Malformed(f"{where} must be {size} bytes, got {len(raw)}")
    return raw


def _timestamp(text: str) -> None:
    try:
        stamp = dt.datetime.fromisoformat(text)
    except ValueError:
        stamp = None
    if stamp is None or stamp.tzinfo is None:
        raise _Malformed(f"created_at {text[:40]!r} is not an ISO 8601 time with its UTC offset")


def _hash_hex(value: Any, where: str) -> str:
    _hexstr(value, where, 32)
    return str(value)


def p2wsh(witness_script: bytes) -> bytes:
    return b"\x00\x20" + hashlib.sha256(witness_script).digest()


# --- journal entries (docs/ledger-format.md) --------------------------------------------------


@dataclass(frozen=True, slots=True)
class JournalEntry:
    seq: int
    kind: str
    memo: str
    postings: tuple[tuple[str, str, int], ...]  # (account, account type, amount)


def decode_entry(data: bytes) -> JournalEntry:
    """The fields of an entry's canonical bytes (format 1) that the balances need."""
    pos = 0

    def take(n: int) -> bytes:
        nonlocal pos
        if pos + n > len(data):
            raise ValueError("entry bytes are truncated")
        pos += n
        return data[pos - n : pos]

    def text() -> str:
        return take(struct.unpack(">I", take(4))[0]).decode("utf-8")

    def opt(read: Callable[[], object]) -> None:
        flag = take(1)[0]
        if flag not in (0, 1):
            raise ValueError("bad presence byte")
        if flag:
            read()

    if take(4) != ENTRY_MAGIC:
        raise ValueError("entry bytes do not start with RLE\\x01")
    seq = struct.unpack(">Q", take(8))[0]
    kind, _date, memo = text(), text(), text()
    opt(text)  # ref
    opt(lambda: take(8))  # reverses_seq
    opt(lambda: take(32))  # txid
    opt(text)  # outputs
    opt(lambda: take(32))  # block_hash
    opt(lambda: take(4))  # block_height
    postings = []
    for _ in range(struct.unpack(">I", take(4))[0]):
        account, account_type = text(), text()
        postings.append((account, account_type, struct.unpack(">q", take(8))[0]))
    if pos != len(data):
        raise ValueError("entry bytes have trailing data")
    return JournalEntry(seq, kind, memo, tuple(postings))


def rfc6962_root(leaves: Sequence[bytes]) -> bytes:
    """RFC 6962 Merkle tree hash of ``leaves`` (leaf hashes), bottom up (an unpaired node moves up)."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    level = list(leaves)
    while len(level) > 1:
        nxt = [
            hashlib.sha256(b"\x01" + level[i] + level[i + 1]).digest() for i in range(0, len(level) - 1, 2)
        ]
        if len(level) % 2:
            nxt.append(level[-1])
        level = nxt
    return level[0]


# --- the checks -------------------------------------------------------------------------------


class _Checks:
    def __init__(self) -> None:
        self.found: dict[str, list[str]] = {name: [] for name in CHECKS}
        self.notes: dict[str, str] = {}

    def fail(self, name: str, finding: str) -> None:
        self.found[name].append(finding)

    def result(self) -> Verification:
        return Verification(tuple(Check(n, tuple(self.found[n]), self.notes.get(n, "")) for n in CHECKS))


def _check_signature(doc: dict[str, Any], keys: dict[str, bytes], c: _Checks) -> None:
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.serialization import load_pem_public_key

    sig = _get(doc, "signature", dict, "document")
    kid = _get(sig, "key_id", str, "signature")
    signature = _hexstr(_get(sig, "signature", str, "signature"), "signature", 64)
    if kid not in keys:
        c.fail("signature", f"signed by key {kid}, which is not a trusted key ({', '.join(sorted(keys))})")
        return
    public = load_pem_public_key(keys[kid])
    try:
        public.verify(signature, signing_message(doc))  # type: ignore[union-attr, call-arg]
    except InvalidSignature:
        c.fail("signature", f"the Ed25519 signature does not verify with key {kid}: the document was changed")
    else:
        c.notes["signature"] = f"Ed25519 by key {kid}"


def _check_headers(doc: dict[str, Any], c: _Checks) -> dict[str, tuple[int, BlockHeader]]:
    height, block_hash = _nat(doc, "height", "document"), _hash_hex(doc.get("block_hash"), "block_hash")
    hdrs = _get(doc, "headers", dict, "document")
    start = _nat(hdrs, "start", "headers")
    texts = _get(hdrs, "hex", list, "headers")
    headers = []
    for i, t in enumerate(texts):
        try:
            headers.append(BlockHeader.parse(_hexstr(t, f"header {start + i}", 80)))
        except InvalidInput as exc:
            raise _Malformed(f"header {start + i}: {exc}") from exc
    if start + len(headers) - 1 != height:
        c.fail("headers", f"headers cover heights {start}..{start + len(headers) - 1}, not up to {height}")
    limit = POW_LIMITS.get(_get(doc, "network", str, "document"))
    if limit is None:
        c.fail("headers", f"network {doc['network']!r} is unknown; known: {', '.join(POW_LIMITS)}")
    for f in header_chain_findings(headers, block_hash, limit):
        c.fail("headers", f)
    for f in retarget_findings(headers, start, doc["network"]):
        c.fail("headers", f)
    if c.found["headers"] == []:
        c.notes["headers"] = (
            f"{len(headers)} headers, heights {start}..{height}, end at {block_hash} (nBits "
            f"{headers[-1].bits:08x}: compare the block hash with your own node or a block explorer)"
        )
    return {h.hash: (start + i, h) for i, h in enumerate(headers)}


def _check_transactions(doc: dict[str, Any], c: _Checks) -> dict[str, RawTx]:
    txs: dict[str, RawTx] = {}
    for txid, text in _get(doc, "transactions", dict, "document").items():
        try:
            tx = RawTx.parse(_hexstr(text, f"transaction {txid}"))
        except InvalidInput as exc:
            c.fail("transactions", f"transaction {txid} cannot be parsed: {exc}")
            continue
        if tx.txid != txid:
            c.fail("transactions", f"transaction listed as {txid} hashes to {tx.txid}")
            continue
        txs[txid] = tx
    return txs


def _check_proofs(
    doc: dict[str, Any], headers: dict[str, tuple[int, BlockHeader]], c: _Checks
) -> dict[str, set[str]]:
    proven: dict[str, set[str]] = {}
    for block, text in _get(doc, "proofs", dict, "document").items():
        try:
            mb = MerkleBlock.parse(_hexstr(text, f"proof of block {block}"))
            matched = mb.matched_txids()
        except InvalidInput as exc:
            c.fail("proofs", f"the Merkle proof of block {block} is invalid: {exc}")
            continue
        if mb.header.hash != block:
            c.fail("proofs", f"the Merkle proof listed for block {block} is for block {mb.header.hash}")
            continue
        if block not in headers or headers[block][1].raw != mb.header.raw:
            c.fail("proofs", f"block {block} of a Merkle proof is not among the attested headers")
            continue
        proven[block] = set(matched)
    return proven


Proven = dict[str, list[tuple[str, int, int, bytes, bytes]]]
"""Per vault: (txid, vout, amount, script, witness script) of each output that verified."""


def _check_outputs(
    doc: dict[str, Any],
    headers: dict[str, tuple[int, BlockHeader]],
    txs: dict[str, RawTx],
    proven: dict[str, set[str]],
    c: _Checks,
) -> dict[str, list[tuple[str, int, int, bytes, bytes]]]:
    """Per vault: (txid, vout, amount, script, witness script) of its valid outputs."""
    seen: set[tuple[str, int]] = set()
    spent = {prev for tx in txs.values() for prev in tx.inputs}
    network = doc.get("network")
    out: dict[str, list[tuple[str, int, int, bytes, bytes]]] = {}
    for v in _get(doc, "vaults", list, "document"):
        name = _get(v, "name", str, "vault")
        out[name] = []
        try:
            desc = wsh_descriptor.parse(_get(v, "descriptor", str, f"vault {name}"))
        except (InvalidInput, ValueError) as exc:
            c.fail("outputs", f"vault {name}: {exc}")
            continue
        if desc.mainnet != (network == "main"):
            c.fail("outputs", f"vault {name}: its keys are not for the attestation's network {network}")
        holders = _get(v, "holders", list, f"vault {name}")
        if not all(isinstance(h, str) for h in holders):
            raise _Malformed(f"vault {name} field 'holders' must be a list of names")
        if len(holders) != len(desc.keys):
            c.fail("outputs", f"vault {name}: {len(holders)} holders for {len(desc.keys)} keys")
        if _nat(v, "threshold", f"vault {name}") != desc.threshold:
            c.fail(
                "outputs",
                f"vault {name}: threshold {v['threshold']} is not the descriptor's {desc.threshold}",
            )
        for o in _get(v, "outputs", list, f"vault {name}"):
            where = f"vault {name}"
            if not isinstance(o, dict):
                raise _Malformed(f"{where}: each output must be a JSON object")
            txid, vout = _hash_hex(o.get("txid"), f"{where} output txid"), _nat(o, "vout", where)
            op = f"{txid}:{vout}"
            amount, height = _nat(o, "amount", where), _nat(o, "height", where)
            script = _hexstr(_get(o, "script_pubkey", str, where), f"{where} output {op} script")
            block = _hash_hex(o.get("block_hash"), f"{where} output {op} block_hash")
            branch, index = _nat(o, "branch", where), _nat(o, "index", where)
            bad = len(c.found["outputs"])
            if (txid, vout) in seen:
                c.fail("outputs", f"output {op} is listed twice")
            seen.add((txid, vout))
            if (txid, vout) in spent:
                c.fail("outputs", f"output {op} is spent by a transaction of the attestation")
            tx = txs.get(txid)
            if tx is None:
                c.fail("outputs", f"output {op}: its transaction is not in the document")
            elif vout >= len(tx.outputs):
                c.fail("outputs", f"output {op}: transaction {txid} has only {len(tx.outputs)} outputs")
            else:
                real_amount, real_script = tx.outputs[vout]
                if real_amount != amount:
                    c.fail(
                        "outputs", f"output {op}: amount {amount} sat, but the transaction pays {real_amount}"
                    )
                if real_script != script:
                    c.fail(
                        "outputs",
                        f"output {op}: script {script.hex()} is not the transaction's {real_script.hex()}",
                    )
                if _get(o, "coinbase", bool, where) != tx.is_coinbase:
                    c.fail("outputs", f"output {op}: coinbase flag {o.get('coinbase')} is wrong")
            if block not in headers:
                c.fail("outputs", f"output {op}: block {block} is not among the attested headers")
            elif headers[block][0] != height:
                c.fail(
                    "outputs", f"output {op}: block {block} is at height {headers[block][0]}, not {height}"
                )
            if txid not in proven.get(block, set()):
                c.fail(
                    "outputs", f"output {op}: no valid Merkle proof shows transaction {txid} in block {block}"
                )
            try:
                ws = desc.witness_script(branch, index)
            except (InvalidInput, ValueError) as exc:
                c.fail("outputs", f"output {op}: {exc}")
                continue
            if p2wsh(ws) != script:
                c.fail("outputs", f"output {op}: script is not vault {name}'s at {branch}/{index}")
            if len(c.found["outputs"]) == bad:
                out[name].append((txid, vout, amount, script, ws))
    if not c.found["outputs"]:
        c.notes["outputs"] = f"{len(seen)} outputs in {len(out)} vaults"
    return out


def _check_sums(doc: dict[str, Any], c: _Checks) -> None:
    vaults = _get(doc, "vaults", list, "document")
    totals = _get(doc, "totals", dict, "document")
    chain_sum = 0
    for v in vaults:
        name = v["name"]
        chain = sum(_nat(o, "amount", name) for o in v["outputs"])
        stated = _nat(v, "chain_amount", f"vault {name}")
        ledger = _get(v, "ledger_amount", int, f"vault {name}")
        if stated != chain:
            c.fail("sums", f"vault {name}: chain_amount {stated} but its outputs sum to {chain}")
        if _get(v, "difference", int, f"vault {name}") != stated - ledger:
            c.fail("sums", f"vault {name}: difference {v['difference']} is not {stated} - {ledger}")
        chain_sum += stated
    t_chain, t_ledger = _nat(totals, "chain", "totals"), _get(totals, "ledger", int, "totals")
    if t_chain != chain_sum:
        c.fail("sums", f"total chain {t_chain} but the vaults' chain amounts sum to {chain_sum}")
    if _get(totals, "difference", int, "totals") != t_chain - t_ledger:
        c.fail("sums", f"total difference {totals['difference']} is not {t_chain} - {t_ledger}")
    balances = _get(_get(doc, "ledger", dict, "document"), "balances", dict, "ledger")
    for account in balances:
        _get(balances, account, int, "ledger balances")
    if t_ledger != sum(int(x) for x in balances.values()):
        c.fail("sums", f"total ledger {t_ledger} is not the sum of the vault accounts' balances")
    for v in vaults:
        stated_ledger = balances.get(_get(v, "account", str, f"vault {v['name']}"), 0)
        if v["ledger_amount"] != stated_ledger:
            c.fail(
                "sums",
                f"vault {v['name']}: ledger_amount {v['ledger_amount']} but its account has {stated_ledger}",
            )


def _check_ledger(
    doc: dict[str, Any], keys: dict[str, bytes], c: _Checks
) -> tuple[dict[str, Any], dict[str, int]]:
    """The checkpoint object, and every vault-type account's balance summed from the entries."""
    ledger = _get(doc, "ledger", dict, "document")
    cp = _get(ledger, "checkpoint", dict, "ledger")
    size, ts = _nat(cp, "tree_size", "checkpoint"), _nat(cp, "timestamp", "checkpoint")
    root = _hexstr(_get(cp, "root", str, "checkpoint"), "checkpoint root", 32)
    sig = _hexstr(_get(cp, "signature", str, "checkpoint"), "checkpoint signature", 64)
    kid = _get(cp, "key_id", str, "checkpoint")
    if kid not in keys:
        c.fail("checkpoint", f"checkpoint signed by key {kid}, which is not a trusted key")
    else:
        try:
            verify_checkpoint_signature(keys[kid], size, root, ts, sig)
        except ProofError as exc:
            c.fail("checkpoint", str(exc))
    texts = _get(ledger, "entries", list, "ledger")
    entries, leaves = [], []
    for i, t in enumerate(texts):
        data = _hexstr(t, f"journal entry {i + 1}")
        leaves.append(hashlib.sha256(b"\x00" + data).digest())
        try:
            e = decode_entry(data)
        except (ValueError, struct.error, UnicodeDecodeError) as exc:
            c.fail("checkpoint", f"journal entry {i + 1} cannot be decoded: {exc}")
            continue
        if e.seq != i + 1:
            c.fail("checkpoint", f"journal entry {i + 1} says it is entry {e.seq}")
        entries.append(e)
    if len(texts) != size:
        c.fail(
            "checkpoint", f"the document carries {len(texts)} journal entries, the checkpoint covers {size}"
        )
    elif rfc6962_root(leaves) != root:
        c.fail(
            "checkpoint", f"the journal entries lead to root {rfc6962_root(leaves).hex()}, not {root.hex()}"
        )
    if not c.found["checkpoint"]:
        c.notes["checkpoint"] = f"tree size {size}, root {root.hex()}, key {kid}"
    computed: dict[str, int] = {}
    definitions: dict[str, str] = {}
    holders: dict[str, list[str]] = {}
    for e in entries:
        for account, account_type, amount in e.postings:
            if account_type == VAULT_ACCOUNT_TYPE:
                computed[account] = computed.get(account, 0) + amount
        if e.kind == "vault-added":
            try:
                body = json.loads(e.memo)
                definitions[str(body["vault"])] = str(body["descriptor"])
                if "keys" in body:  # the holder of each key, in key order
                    holders[str(body["vault"])] = [str(k["holder"]) for k in body["keys"]]
            except (ValueError, KeyError, TypeError):
                c.fail(
                    "balances",
                    f"the vault-added record {e.seq} is not a JSON object with vault and descriptor",
                )
    stated = _get(ledger, "balances", dict, "ledger")
    for account in sorted(set(stated) | set(computed)):
        if stated.get(account, 0) != computed.get(account, 0):
            c.fail(
                "balances",
                f"account {account}: the document says {stated.get(account, 0)} sat, its journal "
                f"entries sum to {computed.get(account, 0)}",
            )
    listed = _get(doc, "vaults", list, "document")
    for v in listed:
        text = definitions.get(v["name"])
        if text is None:
            c.fail("balances", f"vault {v['name']} has no vault-added record in the journal")
        elif text.split("#")[0] != str(v["descriptor"]).split("#")[0]:
            c.fail("balances", f"vault {v['name']}: descriptor differs from its vault-added record")
        recorded = holders.get(v["name"])
        if recorded is not None and v.get("holders") != recorded:
            c.fail(
                "balances",
                f"vault {v['name']}: holders {v.get('holders')} are not those its vault-added record "
                f"gives its keys ({recorded})",
            )
        if v.get("account") != v["name"]:  # a vault's account has the vault's name
            c.fail("balances", f"vault {v['name']}: its account is {v['name']!r}, not {v.get('account')!r}")
    names = [v["name"] for v in listed]
    for name in sorted({n for n in names if names.count(n) > 1}):
        c.fail("balances", f"vault {name} is listed {names.count(name)} times; each vault is listed once")
    missing = sorted(set(definitions) - {v["name"] for v in listed})
    if missing:
        c.fail("balances", f"vaults {', '.join(missing)} are defined in the journal but not attested")
    if not c.found["balances"]:
        c.notes["balances"] = f"{len(computed)} vault accounts recomputed from {len(entries)} entries"
    return dict(cp), computed


def _check_reserves(
    doc: dict[str, Any], scripts: Proven, books: Mapping[str, int], c: _Checks
) -> tuple[VaultFigures, ...]:
    """Each vault's proven chain amount against its recomputed books, and the document's stated
    differences against them: a vault short on chain fails, one with more on chain is noted.
    Judged only when the outputs and the books verified (otherwise those checks said why, and the
    figures, still printed, count only what verified)."""
    figures = tuple(
        VaultFigures(
            v["name"],
            len(scripts.get(v["name"], [])),
            sum(o[2] for o in scripts.get(v["name"], [])),
            books.get(v["account"], 0),
        )
        for v in doc["vaults"]
    )
    unverified = [n for n in ("outputs", "checkpoint", "balances") if c.found[n]]
    if unverified:
        c.notes["reserves"] = f"not judged: {', '.join(unverified)} did not verify"
        return figures
    for v, fig in zip(doc["vaults"], figures, strict=True):
        if v["difference"] != fig.difference:
            c.fail(
                "reserves",
                f"vault {fig.name}: the document states a difference of {v['difference']} sat, the "
                f"verifier finds {fig.difference} sat ({fig.chain} proven on chain, {fig.books} booked)",
            )
        if fig.difference < 0:
            c.fail(
                "reserves",
                f"vault {fig.name}: the chain holds {format_btc(-fig.difference)} BTC less than the books "
                f"({format_btc(fig.chain)} proven, {format_btc(fig.books)} booked): a shortfall, or an "
                "output left out of the document (`reserve attest verify --node` searches for those)",
            )
    total = sum(f.difference for f in figures)
    if doc["totals"]["difference"] != total:
        c.fail(
            "reserves",
            f"the document states a total difference of {doc['totals']['difference']} sat, "
            f"the verifier finds {total} sat",
        )
    more = [f.name for f in figures if f.difference > 0]
    if not c.found["reserves"]:
        c.notes["reserves"] = (
            "no vault's chain amount is below its books"
            + (f"; more on chain than in the books: {', '.join(more)}" if more else "")
            if figures
            else "no vaults"
        )
    return figures


def _check_control(doc: dict[str, Any], cp: dict[str, Any], scripts: Proven, c: _Checks) -> None:
    """Each vault's ``control`` (BIP-322 proofs, one per funded address, docs/proof-of-control.md)
    proves every one of its outputs, over the message committing to this block and the root of the
    checkpoint (:func:`ledger.attest.control.verify_control`)."""
    vaults = [v for v in doc["vaults"] if v.get("control") is not None]
    if not vaults:
        c.notes["control"] = "no proof of control in this document"
        return
    from ledger.attest.control import verify_control  # standard library and coincurve only

    proven = []
    for v in vaults:
        name = v["name"]
        outs = scripts.get(name, [])
        if len(outs) != len(v["outputs"]):
            c.fail("control", f"vault {name}: its outputs did not verify, so neither can their proof")
            continue
        findings = verify_control(
            v["control"],
            network=doc["network"],
            height=doc["height"],
            block_hash=doc["block_hash"],
            tree_size=cp["tree_size"],
            root=cp["root"],
            vault=name,
            threshold=v["threshold"],
            outputs=outs,
            descriptor=v["descriptor"],
            holders=v.get("holders"),
        )
        for f in findings:
            c.fail("control", f"vault {name}: {f}")
        if not findings:
            proven.append(name)
    unproven = [v["name"] for v in doc["vaults"] if v.get("control") is None and v["outputs"]]
    if not c.found["control"]:
        c.notes["control"] = f"BIP-322 proofs of funds verified for {', '.join(proven)}" + (
            f"; no proof of control for {', '.join(unproven)}" if unproven else ""
        )


def verify_attestation(doc: Any, public_keys: Iterable[bytes]) -> Verification:
    """Check an attestation completely offline; ``public_keys``: the trusted ledger keys (PEM)."""
    c = _Checks()
    try:
        keys = {key_id(pem): pem for pem in public_keys}
    except ProofError as exc:
        c.fail("signature", f"a given public key is unusable: {exc}")
        return c.result()
    if not keys:
        c.fail("signature", "no trusted public key given")
    figures: tuple[VaultFigures, ...] = ()
    try:
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            found = doc.get("format") if isinstance(doc, dict) else type(doc).__name__
            raise _Malformed(f"not an attestation: format is {found!r}, expected {FORMAT!r}")
        for finding in schema_findings(doc, SCHEMA):
            c.fail("format", f"{finding}: {FORMAT} defines no such field")
        _timestamp(_get(doc, "created_at", str, "document"))
        _check_signature(doc, keys, c)
        headers = _check_headers(doc, c)
        txs = _check_transactions(doc, c)
        proven = _check_proofs(doc, headers, c)
        scripts = _check_outputs(doc, headers, txs, proven, c)
        _check_sums(doc, c)
        cp, books = _check_ledger(doc, keys, c)
        _check_control(doc, cp, scripts, c)
        figures = _check_reserves(doc, scripts, books, c)
    except _Malformed as exc:
        c.fail("format", str(exc))
    return dataclasses.replace(c.result(), figures=figures)


SEARCH_LIMIT = 100_000
"""`attest verify --node` searches at most this many addresses per branch of a vault for outputs
left out (a document naming a huge index must not make the auditor derive billions of scripts)."""


def search_end(vault: Mapping[str, Any], gap: int) -> int:
    """One past the highest address index `attest verify --node` searches on each branch of
    ``vault`` (a document's vault object): ``gap`` past the highest index it lists, at most
    :data:`SEARCH_LIMIT`."""
    highest = max((int(o["index"]) + 1 for o in vault["outputs"]), default=0)
    return min(highest + gap, SEARCH_LIMIT)


def verify_attestation_signature(doc: Any, public_keys: Iterable[bytes]) -> tuple[str, ...]:
    """Only the ``format`` of the signature and the Ed25519 ``signature`` check: the names of
    those that fail (a cheap check of a stored document's origin)."""
    c = _Checks()
    try:
        keys = {key_id(pem): pem for pem in public_keys}
        _check_signature(doc, keys, c)
    except (_Malformed, ProofError, AttributeError, TypeError, ValueError) as exc:
        c.fail("signature", str(exc))
    return c.result().failed


def node_findings(
    doc: dict[str, Any],
    best_hashes: Mapping[int, str],
    unspent: Collection[tuple[str, int]],
    spent_after: Mapping[tuple[str, int], tuple[str, int]],
    vault_unspent: Iterable[tuple[str, int, bytes, int]] = (),
    vault_scripts: Mapping[bytes, str] | None = None,
) -> list[str]:
    """What a node says against a document that verified offline (``attest verify --node``):
    every header is the node's best chain's block at its height, and every output was unspent at
    the attested height: it is in the node's UTXO set now, or a transaction confirmed after that
    height spent it. Plain values in, gathered by :mod:`custody.chain_at`.

    And no output the node knows was left out: ``vault_unspent`` (the vaults' outputs in the UTXO
    set now, ``(txid, vout, script, height)``; ``vault_scripts`` maps their scripts to vault names)
    created at or below the attested height, and ``spent_after`` entries the document does not list
    (outputs of the vaults' scripts created at or below it and spent after it), were unspent at
    that height: each is a finding."""
    found = []
    height, start = doc["height"], doc["headers"]["start"]
    for i, text in enumerate(doc["headers"]["hex"]):
        h = BlockHeader.from_hex(text).hash
        best = best_hashes.get(start + i)
        if best != h:
            shown = f"block {best}" if best else "no block (the node is behind)"
            found.append(
                f"block {h} at height {start + i} is not on the node's best chain, which has {shown}"
            )
    listed: set[tuple[str, int]] = set()
    for v in doc["vaults"]:
        for o in v["outputs"]:
            op = (o["txid"], o["vout"])
            listed.add(op)
            if op in unspent:
                continue
            spender = spent_after.get(op)
            if spender is None or spender[1] <= height:
                found.append(
                    f"output {op[0]}:{op[1]} of vault {v['name']} is not unspent at height {height}: the "
                    "node's UTXO set lacks it and no block after that height spends it"
                )
    names = vault_scripts or {}
    for txid, vout, script, created in sorted(vault_unspent):
        if created <= height and (txid, vout) not in listed:
            found.append(
                f"output {txid}:{vout} of vault {names.get(script, '?')} (block {created}) is unspent "
                f"now, so it was at height {height}, and is not attested"
            )
    for (txid, vout), (spending_txid, at) in sorted(spent_after.items()):
        if (txid, vout) not in listed and at > height:
            found.append(
                f"output {txid}:{vout} of an attested vault was unspent at height {height} (transaction "
                f"{spending_txid} spent it at {at}) and is not attested"
            )
    return found


def load_document(path: str) -> Any:
    """Read an attestation file with :func:`ledger.verify_proof.strict_json_loads` (no repeated
    key, no NaN, no fraction); :class:`ValueError` saying why it cannot be read."""
    try:
        with open(path, "rb") as f:
            data = f.read()
    except OSError as exc:
        raise ValueError(f"cannot read {path}: {exc.strerror}") from exc
    try:
        return strict_json_loads(data)
    except ProofError as exc:
        raise ValueError(f"{path}: {exc}") from exc


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m ledger.attest.verify_doc FILE --pubkey PUB.pem``: exit 0 if valid, 1 if not."""
    parser = argparse.ArgumentParser(description="Verify a reserve-ledger attestation offline.")
    parser.add_argument("document", help="attestation JSON document")
    parser.add_argument(
        "--pubkey", required=True, action="append", help="the ledger's Ed25519 public key (PEM); repeatable"
    )
    args = parser.parse_args(argv)
    try:
        pems = []
        for path in args.pubkey:
            with open(path, "rb") as f:
                pems.append(f.read())
        doc = load_document(args.document)
    except (OSError, ValueError) as exc:
        print(f"FAIL: {exc}")
        return 1
    result = verify_attestation(doc, pems)
    for line in result.lines():
        print(line)
    print(OFFLINE_NOTE)
    print(result.verdict())
    return 0 if result.ok else 1


if __name__ == "__main__":
    sys.exit(main())
