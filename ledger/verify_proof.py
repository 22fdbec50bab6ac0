"""Standalone verifier for reserve-ledger proofs: copy this one file to audit the books.

It imports only the Python standard library and ``cryptography`` (for Ed25519), never anything
from ``ledger`` or ``custody``, so an auditor can read it in one sitting and run it anywhere::

    python verify_proof.py PROOF.json --pubkey PUB.pem

prints ``OK: ...`` and exits 0, or prints ``FAIL: <reason>`` and exits 1. The document type is
chosen by its ``"format"`` field. ``--pubkey`` may be repeated: a checkpoint is accepted when it
is signed by any of the given keys (the keys of a rotation chain, see below).

Hashing (RFC 6962 / RFC 9162 Merkle tree, SHA-256)
--------------------------------------------------
- leaf hash:  ``SHA-256(0x00 || entry_bytes)``
- node hash:  ``SHA-256(0x01 || left || right)``
- root of the empty tree: ``SHA-256("")``

Signed checkpoint
-----------------
A checkpoint commits to the whole journal at one moment. Its signed message is the ASCII text::

    reserve-ledger checkpoint v1\\n
    <tree_size in decimal>\\n
    <root as 64 lowercase hex digits>\\n
    <timestamp: Unix seconds in decimal>\\n

signed with Ed25519. As JSON a checkpoint object is::

    {"tree_size": 10, "root": "<64 hex>", "timestamp": 1700000000,
     "key_id": "<16 hex>", "signature": "<128 hex>"}

``key_id`` is the hex of the first 8 bytes of SHA-256 of the raw 32-byte Ed25519 public key; it
names the key, the signature is what proves it.

Inclusion proof document (``reserve ledger prove SEQ``)
-------------------------------------------------------
::

    {"format": "reserve-ledger-inclusion-proof/v1",
     "seq": 5,                       # journal entry number, counted from 1
     "leaf_index": 4,                # its leaf in the tree, counted from 0: always seq - 1
     "entry_hex": "<hex>",           # the entry's canonical bytes
     "leaf_hash": "<64 hex>",        # SHA-256(0x00 || entry bytes)
     "tree_size": 10,                # number of leaves in the tree proven against
     "root": "<64 hex>",             # that tree's root
     "proof": ["<64 hex>", ...],     # RFC 6962 audit path, leaf level first
     "checkpoint": {<checkpoint object>}}   # tree_size and root equal to the two above

It is valid when every one of these holds: ``leaf_hash`` is the leaf hash of ``entry_hex``;
``leaf_index == seq - 1``; the audit path leads from ``leaf_hash`` at ``leaf_index`` to ``root``
for ``tree_size`` (RFC 9162 section 2.1.3.2: every path element is consumed, a path that is too
long or too short fails); the checkpoint states the same ``tree_size`` and ``root``; its
``key_id`` is the given key's; its signature verifies under the given key.

Consistency proof document
--------------------------
::

    {"format": "reserve-ledger-consistency-proof/v1",
     "old": {<checkpoint object>}, "new": {<checkpoint object>},
     "proof": ["<64 hex>", ...]}     # RFC 6962 consistency proof from old to new

It is valid when both checkpoints are signed by the given key and the proof shows the old tree is
a prefix of the new one (RFC 9162 section 2.1.4.2): nothing recorded before the old checkpoint
was changed or removed afterwards. Equal sizes need an empty proof and equal roots; an old size of
0 needs an empty proof and the empty-tree root.

Exported checkpoint (``reserve ledger checkpoint --export FILE``)
------------------------------------------------------------------
A checkpoint published outside the database: the checkpoint object above plus::

    {"format": "reserve-ledger-checkpoint/v1", ..., "public_key": "<PEM of the signing key>"}

It is valid when ``public_key`` is one of the given public keys, ``key_id`` names it and the
signature verifies. ``reserve ledger verify --checkpoint FILE`` checks a database against it.

Key rotation document (``reserve ledger rotation``)
---------------------------------------------------
When the ledger's signing key is replaced, the old key signs the handover, and the handover is
itself an entry of the journal (record kind ``key-rotated``), so checkpoints cover it::

    {"format": "reserve-ledger-key-rotation/v1",
     "old_public_key": "<PEM>", "old_key_id": "<16 hex>",
     "new_public_key": "<PEM>", "new_key_id": "<16 hex>",
     "tree_size": 41, "root": "<64 hex>",   # the journal just before the handover entry
     "signature": "<128 hex>"}              # Ed25519 by the OLD key over the message below

The signed message is the ASCII text::

    reserve-ledger key rotation v1\n
    <old raw 32-byte Ed25519 public key as 64 lowercase hex digits>\n
    <new raw 32-byte Ed25519 public key as 64 lowercase hex digits>\n
    <tree_size in decimal>\n
    <root as 64 lowercase hex digits>\n

It is valid when ``old_public_key`` is one of the given public keys (the key the auditor already
trusts), both key ids name their keys, and the old key's signature verifies. From then on the
auditor trusts the new key as well: pass both (``--pubkey OLD.pem --pubkey NEW.pem``) to check
proofs whose checkpoints straddle the rotation.

Tree head (in the database, ``docs/ledger-format.md`` version 1.3)
-------------------------------------------------------------------
Every write transaction of the service ends with a tree head signed by the ledger key. Its
signed message is the ASCII text::

    reserve-ledger tree head v1\n
    <tree_size in decimal>\n
    <root as 64 lowercase hex digits>\n
    <timestamp: Unix seconds in decimal>\n
    <balances: [["account","type",satoshis],...] sorted by account, compact ASCII JSON>\n

(:func:`tree_head_message`, :func:`verify_tree_head_signature`). Heads stay in the database: the
documents above do not carry them, and nothing here needs one.

Reading a document (every format, and the attestations of ``ledger.attest.verify_doc``)
--------------------------------------------------------------------------------------
The JSON text is read with :func:`strict_json_loads`: it must be UTF-8; a key repeated in one
object, at any depth, is refused (one JSON reader keeps the first value, another the last, so two
auditors would read two documents); so are ``NaN``, ``Infinity`` and ``-Infinity``, and every
number with a fraction or an exponent (every number of these formats is an integer). Each object
of each format has a closed set of fields (the ones listed above, per format version): a field
that is not in it is refused, naming the field and where it is (``$.checkpoint.extra``), so a
document says only what its signature covers and every reader reads the same fields.

Verifying by hand
-----------------
With nothing but ``sha256sum``-style tools: hash ``00 || entry`` and compare with ``leaf_hash``.
Then walk the path with ``fn = leaf_index`` and ``sn = tree_size - 1``, ``r = leaf_hash``; for each
element ``p``: if ``fn`` is odd or ``fn == sn``, set ``r = SHA-256(01 || p || r)`` and, while ``fn``
is even and not 0, halve both ``fn`` and ``sn``; otherwise set ``r = SHA-256(01 || r || p)``; then
halve ``fn`` and ``sn`` (integer division). At the end ``sn`` must be 0 and ``r`` must equal
``root``. Finally rebuild the checkpoint message above from ``tree_size``, ``root`` and
``timestamp`` and check the Ed25519 signature with the published public key, for instance with
``openssl pkeyutl -verify -pubin -inkey PUB.pem -rawin -in msg -sigfile sig``.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from collections.abc import Collection, Sequence
from typing import Any

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    PublicFormat,
    load_pem_public_key,
)

INCLUSION_FORMAT = "reserve-ledger-inclusion-proof/v1"
CONSISTENCY_FORMAT = "reserve-ledger-consistency-proof/v1"
CHECKPOINT_FORMAT = "reserve-ledger-checkpoint/v1"
ROTATION_FORMAT = "reserve-ledger-key-rotation/v1"
CHECKPOINT_HEADER = b"reserve-ledger checkpoint v1\n"
ROTATION_HEADER = b"reserve-ledger key rotation v1\n"
TREE_HEAD_HEADER = b"reserve-ledger tree head v1\n"
HASH_SIZE = 32
SIGNATURE_SIZE = 64
KEY_ID_SIZE = 8
EMPTY_ROOT = hashlib.sha256(b"").digest()

CHECKPOINT_FIELDS = frozenset({"tree_size", "root", "timestamp", "key_id", "signature"})
"""The fields of a checkpoint object (v1), in every document that carries one."""
FIELDS: dict[str, tuple[frozenset[str], dict[str, frozenset[str]]]] = {
    INCLUSION_FORMAT: (
        frozenset(
            {
                "format",
                "seq",
                "leaf_index",
                "entry_hex",
                "leaf_hash",
                "tree_size",
                "root",
                "proof",
                "checkpoint",
            }
        ),
        {"checkpoint": CHECKPOINT_FIELDS},
    ),
    CONSISTENCY_FORMAT: (
        frozenset({"format", "old", "new", "proof"}),
        {"old": CHECKPOINT_FIELDS, "new": CHECKPOINT_FIELDS},
    ),
    CHECKPOINT_FORMAT: (CHECKPOINT_FIELDS | {"format", "public_key"}, {}),
    ROTATION_FORMAT: (
        frozenset(
            {
                "format",
                "old_public_key",
                "old_key_id",
                "new_public_key",
                "new_key_id",
                "tree_size",
                "root",
                "signature",
            }
        ),
        {},
    ),
}
"""Per format: the fields of the document and of each object field it holds (a closed set)."""


class ProofError(Exception):
    """A proof, checkpoint or proof document does not verify; the message says which part."""


# --- Reading JSON strictly -------------------------------------------------------------------


class _Repeated(dict[str, Any]):
    """An object in which ``key`` appeared more than once (found by :func:`strict_json_loads`)."""

    def __init__(self, pairs: list[tuple[str, Any]], key: str) -> None:
        super().__init__(pairs)
        self.key = key


def _first_repeated(pairs: list[tuple[str, Any]]) -> str:
    first: dict[str, int] = {}
    for i, (key, _) in enumerate(pairs):
        first.setdefault(key, i)
    return next(key for i, (key, _) in enumerate(pairs) if first[key] != i)


def _no_constant(name: str) -> Any:
    raise ProofError(f"the document contains {name}, which is not a JSON number")


def _no_fraction(text: str) -> Any:
    raise ProofError(
        f"the document contains the number {text[:40]}, which is not an integer; every number of "
        "these documents is an integer (amounts in satoshis, sizes, heights, times in seconds)"
    )


def json_path(path: Sequence[str | int]) -> str:
    """``$.vaults[0].outputs[2].amount``: where a value is in a document."""
    return "$" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in path)


def _find_repeated(value: Any) -> tuple[list[str | int], str] | None:
    """The path of the first object with a repeated key, and the key (depth first, no recursion)."""
    stack: list[tuple[list[str | int], Any]] = [([], value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, _Repeated):
            return path, item.key
        if isinstance(item, dict):
            stack.extend(([*path, k], v) for k, v in reversed(item.items()))
        elif isinstance(item, list):
            stack.extend(([*path, i], v) for i, v in reversed(list(enumerate(item))))
    return None


def strict_json_loads(text: str | bytes) -> Any:
    """The JSON value of ``text`` (UTF-8 when bytes), read so that every reader reads the same.

    Raises :class:`ProofError` for text that is not JSON, a key repeated in one object at any
    depth (Python's reader keeps the last value, others the first: two readers, two documents),
    ``NaN`` and the infinities, and any number with a fraction or exponent (every number of the
    documents read with it is an integer). The message names the repeated key and its path.
    """
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ProofError(f"the document is not UTF-8 text: {exc}") from exc
    repeats = 0

    def make_object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal repeats
        obj = dict(pairs)
        if len(obj) == len(pairs):
            return obj
        repeats += 1
        return _Repeated(pairs, _first_repeated(pairs))

    try:
        value = json.loads(
            text, object_pairs_hook=make_object, parse_constant=_no_constant, parse_float=_no_fraction
        )
    except RecursionError as exc:
        raise ProofError("the document is nested too deeply to be read") from exc
    except ValueError as exc:  # json.JSONDecodeError, and integers too long to convert
        raise ProofError(f"the document is not valid JSON: {exc}") from exc
    repeated = _find_repeated(value) if repeats else None  # where: only when there is one
    if repeated is not None:
        path, key = repeated
        raise ProofError(
            f"the document repeats the key {key!r} in one object (at {json_path([*path, key])}); "
            "readers disagree on which value counts, so a document with a repeated key is refused"
        )
    return value


def unknown_fields(value: Any, allowed: Collection[str], path: Sequence[str | int]) -> list[str]:
    """Each field of the object ``value`` not in ``allowed``, as ``'name' at $.path.name``
    (nothing when ``value`` is not an object: its type is checked where it is read)."""
    if not isinstance(value, dict):
        return []
    return [f"{k!r} at {json_path([*path, k])}" for k in value if k not in allowed]


def _closed(value: Any, allowed: Collection[str], path: Sequence[str | int], fmt: str) -> None:
    unknown = unknown_fields(value, allowed, path)
    if unknown:
        raise ProofError(
            f"{fmt} has no field {unknown[0]} (fields of that object: {', '.join(sorted(allowed))}); "
            "a document carries only the fields of its format version"
        )


def _node(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _check_hash(value: bytes, what: str) -> None:
    if not isinstance(value, bytes) or len(value) != HASH_SIZE:
        shown = value.hex() if isinstance(value, bytes) else repr(value)
        raise ProofError(f"{what} must be a {HASH_SIZE}-byte SHA-256 hash, got {shown!r}")


def _check_size(value: int, what: str) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ProofError(f"{what} must be a non-negative integer, got {value!r}")


def _check_path(proof: Sequence[bytes], what: str) -> None:
    for i, element in enumerate(proof):
        _check_hash(element, f"{what} element {i}")


# --- Merkle proofs (RFC 9162 section 2.1.3.2 and 2.1.4.2) -----------------------------------


def verify_inclusion(
    leaf_hash: bytes, index: int, tree_size: int, proof: Sequence[bytes], root: bytes
) -> None:
    """Check that ``leaf_hash`` is leaf ``index`` of the tree of ``tree_size`` with ``root``.

    Every proof element is consumed and checked; a proof that is too long or too short fails.
    """
    _check_size(index, "leaf index")
    _check_size(tree_size, "tree size")
    _check_hash(leaf_hash, "leaf hash")
    _check_hash(root, "root")
    _check_path(proof, "inclusion proof")
    if index >= tree_size:
        raise ProofError(f"leaf index {index} is outside the tree of size {tree_size}")
    fn, sn = index, tree_size - 1
    r = leaf_hash
    for i, p in enumerate(proof):
        if sn == 0:
            raise ProofError(
                f"inclusion proof is too long: {len(proof)} elements, "
                f"the path for leaf {index} in a tree of size {tree_size} has only {i}"
            )
        if fn & 1 or fn == sn:
            r = _node(p, r)
            while (fn & 1) == 0 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            r = _node(r, p)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError(
            f"inclusion proof is too short: {len(proof)} elements do not reach the root "
            f"of the tree of size {tree_size} from leaf {index}"
        )
    if r != root:
        raise ProofError(f"inclusion proof for leaf {index} leads to root {r.hex()}, not {root.hex()}")


def verify_consistency(
    old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: Sequence[bytes]
) -> None:
    """Check that the tree (``old_size``, ``old_root``) is a prefix of (``new_size``, ``new_root``)."""
    _check_size(old_size, "old tree size")
    _check_size(new_size, "new tree size")
    _check_hash(old_root, "old root")
    _check_hash(new_root, "new root")
    _check_path(proof, "consistency proof")
    if old_size > new_size:
        raise ProofError(f"old tree size {old_size} is larger than new tree size {new_size}")
    if old_size in (0, new_size):
        if proof:
            raise ProofError(
                f"consistency proof from size {old_size} to {new_size} must be empty, "
                f"got {len(proof)} elements"
            )
        if old_size == new_size and old_root != new_root:
            raise ProofError(
                f"trees of the same size {old_size} have different roots "
                f"{old_root.hex()} and {new_root.hex()}"
            )
        if old_size == 0 and old_root != EMPTY_ROOT:
            raise ProofError(f"old root {old_root.hex()} is not the empty-tree root for size 0")
        return
    if not proof:
        raise ProofError(f"consistency proof from size {old_size} to {new_size} is empty")
    path = list(proof)
    if old_size & (old_size - 1) == 0:  # a power of two: the old root is itself a node
        path.insert(0, old_root)
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path[0]
    for c in path[1:]:
        if sn == 0:
            raise ProofError(
                f"consistency proof from size {old_size} to {new_size} is too long ({len(proof)} elements)"
            )
        if fn & 1 or fn == sn:
            fr = _node(c, fr)
            sr = _node(c, sr)
            while (fn & 1) == 0 and fn != 0:
                fn >>= 1
                sn >>= 1
        else:
            sr = _node(sr, c)
        fn >>= 1
        sn >>= 1
    if sn != 0:
        raise ProofError(
            f"consistency proof from size {old_size} to {new_size} is too short ({len(proof)} elements)"
        )
    if fr != old_root:
        raise ProofError(
            f"consistency proof leads to old root {fr.hex()}, not {old_root.hex()} (size {old_size})"
        )
    if sr != new_root:
        raise ProofError(
            f"consistency proof leads to new root {sr.hex()}, not {new_root.hex()} (size {new_size})"
        )


# --- Checkpoint signatures ------------------------------------------------------------------


def checkpoint_message(tree_size: int, root: bytes, timestamp: int) -> bytes:
    """The exact bytes an Ed25519 checkpoint signature covers."""
    return CHECKPOINT_HEADER + f"{tree_size}\n{root.hex()}\n{timestamp}\n".encode()


def tree_head_message(tree_size: int, root: bytes, timestamp: int, balances: str) -> bytes:
    """The exact bytes the ledger key signs for a tree head (``docs/ledger-format.md``, tree heads):
    like a checkpoint's, under its own header (neither can pass for the other), plus the
    balances line, the canonical JSON of every account's balance after entry ``tree_size``."""
    _check_size(tree_size, "tree head size")
    _check_size(timestamp, "tree head timestamp")
    _check_hash(root, "tree head root")
    if not isinstance(balances, str) or not balances.isascii() or "\n" in balances:
        raise ProofError(f"tree head balances must be one line of ASCII JSON, got {balances!r}")
    return TREE_HEAD_HEADER + f"{tree_size}\n{root.hex()}\n{timestamp}\n{balances}\n".encode()


def _load_public_key(public_key_pem: bytes) -> Ed25519PublicKey:
    try:
        key = load_pem_public_key(public_key_pem)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise ProofError(f"public key is not a PEM public key: {exc}") from exc
    if not isinstance(key, Ed25519PublicKey):
        raise ProofError(
            f"public key is a {type(key).__name__}, not an Ed25519 key; checkpoints are signed with Ed25519"
        )
    return key


def raw_public_key(public_key_pem: bytes) -> bytes:
    """The raw 32 bytes of an Ed25519 public key given as PEM."""
    return _load_public_key(public_key_pem).public_bytes(Encoding.Raw, PublicFormat.Raw)


def key_id(public_key_pem: bytes) -> str:
    """Hex of the first 8 bytes of SHA-256 of the raw 32-byte Ed25519 public key."""
    return hashlib.sha256(raw_public_key(public_key_pem)).digest()[:KEY_ID_SIZE].hex()


def rotation_message(
    old_public_key_pem: bytes, new_public_key_pem: bytes, tree_size: int, root: bytes
) -> bytes:
    """The exact bytes the old key signs when it hands the ledger over to the new key."""
    _check_size(tree_size, "rotation tree size")
    _check_hash(root, "rotation root")
    old, new = raw_public_key(old_public_key_pem), raw_public_key(new_public_key_pem)
    return ROTATION_HEADER + f"{old.hex()}\n{new.hex()}\n{tree_size}\n{root.hex()}\n".encode()


def verify_checkpoint_signature(
    public_key_pem: bytes, tree_size: int, root: bytes, timestamp: int, signature: bytes
) -> None:
    """Check the Ed25519 signature of a checkpoint; raise :class:`ProofError` if it is bad."""
    _check_size(tree_size, "checkpoint tree size")
    _check_size(timestamp, "checkpoint timestamp")
    _check_hash(root, "checkpoint root")
    if not isinstance(signature, bytes) or len(signature) != SIGNATURE_SIZE:
        raise ProofError(f"checkpoint signature must be {SIGNATURE_SIZE} bytes, got {signature!r}")
    key = _load_public_key(public_key_pem)
    try:
        key.verify(signature, checkpoint_message(tree_size, root, timestamp))
    except InvalidSignature as exc:
        raise ProofError(
            f"checkpoint signature over size {tree_size}, root {root.hex()}, "
            f"timestamp {timestamp} does not verify with key {key_id(public_key_pem)}"
        ) from exc


def verify_tree_head_signature(
    public_key_pem: bytes, tree_size: int, root: bytes, timestamp: int, balances: str, signature: bytes
) -> None:
    """Check the Ed25519 signature of a tree head; raise :class:`ProofError` if it is bad."""
    if not isinstance(signature, bytes) or len(signature) != SIGNATURE_SIZE:
        raise ProofError(f"tree head signature must be {SIGNATURE_SIZE} bytes, got {signature!r}")
    message = tree_head_message(tree_size, root, timestamp, balances)
    try:
        _load_public_key(public_key_pem).verify(signature, message)
    except InvalidSignature as exc:
        raise ProofError(
            f"tree head signature over size {tree_size}, root {root.hex()} does not verify with key "
            f"{key_id(public_key_pem)}"
        ) from exc


# --- Proof documents --------------------------------------------------------------------------


def _field(doc: dict[str, Any], name: str, where: str) -> Any:
    if not isinstance(doc, dict):
        raise ProofError(f"{where} must be a JSON object, got {type(doc).__name__}")
    if name not in doc:
        raise ProofError(f"{where} has no field {name!r}")
    return doc[name]


def _int_field(doc: dict[str, Any], name: str, where: str) -> int:
    value = _field(doc, name, where)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ProofError(f"{where} field {name!r} must be a non-negative integer, got {value!r}")
    return value


def _hex(value: Any, what: str, size: int | None = None) -> bytes:
    if not isinstance(value, str) or value != value.lower() or not value.isascii():
        raise ProofError(f"{what} must be a lowercase hex string, got {value!r}")
    try:
        raw = bytes.fromhex(value)
    except ValueError as exc:
        raise ProofError(f"{what} is not valid hex: {value!r}") from exc
    if raw.hex() != value:  # bytes.fromhex tolerates whitespace; the format does not
        raise ProofError(f"{what} must be plain hex without spaces, got {value!r}")
    if size is not None and len(raw) != size:
        raise ProofError(f"{what} must be {size} bytes ({2 * size} hex digits), got {len(raw)}")
    return raw


def _hex_field(doc: dict[str, Any], name: str, where: str, size: int | None = None) -> bytes:
    return _hex(_field(doc, name, where), f"{where} field {name!r}", size)


def _proof_field(doc: dict[str, Any], where: str) -> tuple[bytes, ...]:
    value = _field(doc, "proof", where)
    if not isinstance(value, list):
        raise ProofError(f"{where} field 'proof' must be a list of hex hashes, got {value!r}")
    return tuple(_hex(v, f"{where} proof element {i}", HASH_SIZE) for i, v in enumerate(value))


Keys = dict[str, bytes]  # key id -> public key PEM: the keys a verification trusts


def keyring(public_keys: bytes | Sequence[bytes]) -> Keys:
    """The given public key PEM(s) by key id."""
    pems = [public_keys] if isinstance(public_keys, bytes) else list(public_keys)
    if not pems:
        raise ProofError("no public key given")
    return {key_id(pem): pem for pem in pems}


def _trusted_key(keys: Keys, stated_key: Any, where: str) -> bytes:
    if not isinstance(stated_key, str) or stated_key not in keys:
        given = ", ".join(sorted(keys))
        noun = "key is" if len(keys) == 1 else "keys are"
        raise ProofError(
            f"{where} says it was signed by key {stated_key!r}, but the given public {noun} {given}"
        )
    return keys[stated_key]


def _verify_checkpoint_object(cp: Any, keys: Keys, where: str) -> tuple[int, bytes]:
    tree_size = _int_field(cp, "tree_size", where)
    root = _hex_field(cp, "root", where, HASH_SIZE)
    timestamp = _int_field(cp, "timestamp", where)
    signature = _hex_field(cp, "signature", where, SIGNATURE_SIZE)
    public_key_pem = _trusted_key(keys, _field(cp, "key_id", where), where)
    try:
        verify_checkpoint_signature(public_key_pem, tree_size, root, timestamp, signature)
    except ProofError as exc:
        raise ProofError(f"{where}: {exc}") from exc
    return tree_size, root


def _pem_field(doc: dict[str, Any], name: str, where: str) -> bytes:
    value = _field(doc, name, where)
    if not isinstance(value, str) or not value.isascii():
        raise ProofError(f"{where} field {name!r} must be a PEM public key as text, got {value!r}")
    pem = value.encode()
    _load_public_key(pem)
    return pem


def check_fields(doc: dict[str, Any], fmt: str) -> None:
    """Refuse (:class:`ProofError`) a field the format ``fmt`` does not define, at any level."""
    top, nested = FIELDS[fmt]
    _closed(doc, top, [], fmt)
    for name, allowed in nested.items():
        _closed(doc.get(name), allowed, [name], fmt)


def _check_format(doc: dict[str, Any], expected: str) -> None:
    found = _field(doc, "format", "proof document")
    if found != expected:
        raise ProofError(f"proof document format is {found!r}, expected {expected!r}")
    check_fields(doc, expected)


def verify_inclusion_document(doc: dict[str, Any], public_keys: bytes | Sequence[bytes]) -> None:
    """Check an inclusion proof document completely (see the module docstring)."""
    keys = keyring(public_keys)
    where = "inclusion proof"
    _check_format(doc, INCLUSION_FORMAT)
    seq = _int_field(doc, "seq", where)
    leaf_index = _int_field(doc, "leaf_index", where)
    entry = _hex_field(doc, "entry_hex", where)
    leaf_hash = _hex_field(doc, "leaf_hash", where, HASH_SIZE)
    tree_size = _int_field(doc, "tree_size", where)
    root = _hex_field(doc, "root", where, HASH_SIZE)
    proof = _proof_field(doc, where)
    if leaf_index != seq - 1:
        raise ProofError(f"leaf_index {leaf_index} does not belong to entry {seq} (expected {seq - 1})")
    computed = hashlib.sha256(b"\x00" + entry).digest()
    if computed != leaf_hash:
        raise ProofError(
            f"leaf_hash {leaf_hash.hex()} is not the hash of entry_hex (which hashes to "
            f"{computed.hex()}): the entry bytes were changed"
        )
    verify_inclusion(leaf_hash, leaf_index, tree_size, proof, root)
    cp_size, cp_root = _verify_checkpoint_object(_field(doc, "checkpoint", where), keys, "checkpoint")
    if cp_size != tree_size or cp_root != root:
        raise ProofError(
            f"checkpoint is for size {cp_size} root {cp_root.hex()}, but the proof is against "
            f"size {tree_size} root {root.hex()}"
        )


def verify_consistency_document(doc: dict[str, Any], public_keys: bytes | Sequence[bytes]) -> None:
    """Check a consistency proof document completely (see the module docstring)."""
    keys = keyring(public_keys)
    _check_format(doc, CONSISTENCY_FORMAT)
    where = "consistency proof"
    old_size, old_root = _verify_checkpoint_object(_field(doc, "old", where), keys, "old checkpoint")
    new_size, new_root = _verify_checkpoint_object(_field(doc, "new", where), keys, "new checkpoint")
    verify_consistency(old_size, new_size, old_root, new_root, _proof_field(doc, where))


def verify_exported_checkpoint(doc: dict[str, Any], public_keys: bytes | Sequence[bytes]) -> bytes:
    """Check an exported checkpoint (see the module docstring); return its public key PEM."""
    keys = keyring(public_keys)
    _check_format(doc, CHECKPOINT_FORMAT)
    where = "exported checkpoint"
    pem = _pem_field(doc, "public_key", where)
    if key_id(pem) not in keys or _field(doc, "key_id", where) != key_id(pem):
        raise ProofError(
            f"{where} carries public key {key_id(pem)} (key_id {doc.get('key_id')!r}), which is not "
            f"one of the given public keys {', '.join(sorted(keys))}"
        )
    _verify_checkpoint_object(doc, keys, where)
    return pem


def verify_rotation_document(doc: dict[str, Any], public_keys: bytes | Sequence[bytes]) -> bytes:
    """Check a key rotation document (see the module docstring); return the new key's PEM."""
    keys = keyring(public_keys)
    _check_format(doc, ROTATION_FORMAT)
    where = "key rotation"
    old_pem = _pem_field(doc, "old_public_key", where)
    new_pem = _pem_field(doc, "new_public_key", where)
    for name, pem in (("old_key_id", old_pem), ("new_key_id", new_pem)):
        if _field(doc, name, where) != key_id(pem):
            raise ProofError(f"{where} field {name!r} is {doc[name]!r}, but its public key is {key_id(pem)}")
    _trusted_key(keys, key_id(old_pem), f"{where} (old key)")
    tree_size = _int_field(doc, "tree_size", where)
    root = _hex_field(doc, "root", where, HASH_SIZE)
    signature = _hex_field(doc, "signature", where, SIGNATURE_SIZE)
    try:
        _load_public_key(old_pem).verify(signature, rotation_message(old_pem, new_pem, tree_size, root))
    except InvalidSignature as exc:
        raise ProofError(
            f"{where} from key {key_id(old_pem)} to key {key_id(new_pem)} at tree size {tree_size} "
            "is not signed by the old key"
        ) from exc
    return new_pem


def verify_document(doc: Any, public_keys: bytes | Sequence[bytes]) -> str:
    """Verify a document of any format and return the one-line ``OK: ...`` summary."""
    if not isinstance(doc, dict):
        raise ProofError(f"proof document must be a JSON object, got {type(doc).__name__}")
    keyring(public_keys)
    fmt = doc.get("format")
    if fmt == INCLUSION_FORMAT:
        verify_inclusion_document(doc, public_keys)
        return (
            f"OK: entry {doc['seq']} is included in the tree of size {doc['tree_size']} "
            f"with root {doc['root']}, checkpoint signed by key {doc['checkpoint']['key_id']}"
        )
    if fmt == CONSISTENCY_FORMAT:
        verify_consistency_document(doc, public_keys)
        old, new = doc["old"], doc["new"]
        signers = sorted({old["key_id"], new["key_id"]})
        return (
            f"OK: the tree of size {old['tree_size']} with root {old['root']} is a prefix of "
            f"the tree of size {new['tree_size']} with root {new['root']}, "
            + ("both checkpoints signed by key " if len(signers) == 1 else "checkpoints signed by keys ")
            + " and ".join(signers)
        )
    if fmt == CHECKPOINT_FORMAT:
        verify_exported_checkpoint(doc, public_keys)
        return (
            f"OK: checkpoint of tree size {doc['tree_size']} with root {doc['root']} "
            f"signed by key {doc['key_id']}"
        )
    if fmt == ROTATION_FORMAT:
        verify_rotation_document(doc, public_keys)
        return (
            f"OK: key {doc['old_key_id']} handed the ledger over to key {doc['new_key_id']} at tree "
            f"size {doc['tree_size']} with root {doc['root']}; trust key {doc['new_key_id']} from now on"
        )
    known = ", ".join(
        repr(f) for f in (INCLUSION_FORMAT, CONSISTENCY_FORMAT, CHECKPOINT_FORMAT, ROTATION_FORMAT)
    )
    raise ProofError(f"unknown proof document format {fmt!r}; expected one of {known}")


def main(argv: Sequence[str] | None = None) -> int:
    """Command line: ``verify_proof.py PROOF.json --pubkey PUB.pem``; exit 0 if OK, 1 if not."""
    parser = argparse.ArgumentParser(
        description="Verify a reserve-ledger inclusion or consistency proof document."
    )
    parser.add_argument("proof", help="proof JSON document")
    parser.add_argument(
        "--pubkey",
        required=True,
        action="append",
        help="the ledger's Ed25519 public key (PEM); repeat for the keys of a rotation chain",
    )
    args = parser.parse_args(argv)
    try:
        pems = []
        for path in args.pubkey:
            try:
                with open(path, "rb") as f:
                    pems.append(f.read())
            except OSError as exc:
                raise ProofError(f"cannot read public key {path}: {exc.strerror}") from exc
        try:
            with open(args.proof, "rb") as f:
                data = f.read()
        except OSError as exc:
            raise ProofError(f"cannot read proof document {args.proof}: {exc.strerror}") from exc
        try:
            doc = strict_json_loads(data)
        except ProofError as exc:
            raise ProofError(f"proof document {args.proof}: {exc}") from exc
        summary = verify_document(doc, pems)
    except ProofError as exc:
        print(f"FAIL: {exc}")
        return 1
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
