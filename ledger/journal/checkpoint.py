"""Signed checkpoints: the ledger's Ed25519 key and the (tree size, root, time) it signs.

The key file is PKCS8 PEM, created with mode 0600 and never overwritten; a key file that group
or others may read is refused. What is signed, and how to check it, is defined in
:mod:`ledger.verify_proof` (:func:`~ledger.verify_proof.checkpoint_message`), the same code an
auditor runs.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import (
    Encoding,
    NoEncryption,
    PrivateFormat,
    PublicFormat,
    load_pem_private_key,
)

from ledger.errors import Conflict, InvalidInput, NotInitialised, WriteFailed
from ledger.files import cause
from ledger.verify_proof import (
    CHECKPOINT_FORMAT,
    HASH_SIZE,
    SIGNATURE_SIZE,
    ProofError,
    checkpoint_message,
    key_id,
    verify_checkpoint_signature,
)

KEY_FILE_MODE = 0o600
_KEY_ID_RE = re.compile(r"^[0-9a-f]{16}$")


@dataclass(frozen=True, slots=True)
class Checkpoint:
    """A signed statement that the journal's tree of ``tree_size`` leaves has ``root``."""

    tree_size: int
    root: bytes
    timestamp: int  # Unix seconds
    key_id: str  # hex of the first 8 bytes of SHA-256 of the raw public key
    signature: bytes  # Ed25519 over checkpoint_message(tree_size, root, timestamp)

    def __post_init__(self) -> None:
        for name in ("tree_size", "timestamp"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise InvalidInput(f"checkpoint {name} must be a non-negative integer, got {value!r}")
        if not isinstance(self.root, bytes) or len(self.root) != HASH_SIZE:
            raise InvalidInput(f"checkpoint root must be {HASH_SIZE} bytes, got {self.root!r}")
        if not isinstance(self.signature, bytes) or len(self.signature) != SIGNATURE_SIZE:
            raise InvalidInput(f"checkpoint signature must be {SIGNATURE_SIZE} bytes, got {self.signature!r}")
        if not isinstance(self.key_id, str) or not _KEY_ID_RE.match(self.key_id):
            raise InvalidInput(f"checkpoint key_id must be 16 lowercase hex digits, got {self.key_id!r}")

    def to_json(self) -> dict[str, Any]:
        """The checkpoint object of the proof document formats (see :mod:`ledger.verify_proof`)."""
        return {
            "tree_size": self.tree_size,
            "root": self.root.hex(),
            "timestamp": self.timestamp,
            "key_id": self.key_id,
            "signature": self.signature.hex(),
        }

    def to_export(self, public_key_pem: bytes) -> dict[str, Any]:
        """The exported checkpoint document: :meth:`to_json`, its format and the signing key."""
        if key_id(public_key_pem) != self.key_id:
            raise InvalidInput(f"checkpoint was signed by key {self.key_id}, not by {key_id(public_key_pem)}")
        return {"format": CHECKPOINT_FORMAT, **self.to_json(), "public_key": public_key_pem.decode("ascii")}

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Checkpoint:
        """Parse :meth:`to_json` output; raise :class:`InvalidInput` on anything else."""
        if not isinstance(d, dict):
            raise InvalidInput(f"a checkpoint must be a JSON object, got {d!r}")
        expected = {"tree_size", "root", "timestamp", "key_id", "signature"}
        if set(d) != expected:
            raise InvalidInput(f"checkpoint fields are {sorted(d)}, expected exactly {sorted(expected)}")
        return cls(
            tree_size=d["tree_size"],
            root=_from_hex(d["root"], "root"),
            timestamp=d["timestamp"],
            key_id=d["key_id"],
            signature=_from_hex(d["signature"], "signature"),
        )


def parse_exported(d: Any) -> tuple[Checkpoint, bytes]:
    """An exported checkpoint document as (checkpoint, public key PEM), its signature checked.

    Raises :class:`InvalidInput` when the document is malformed or its signature does not verify
    with the key it carries; whether that key is this ledger's is for the caller to judge.
    """
    if not isinstance(d, dict) or d.get("format") != CHECKPOINT_FORMAT:
        raise InvalidInput(
            f"not an exported checkpoint: expected a JSON object with format {CHECKPOINT_FORMAT!r} "
            "(written by `reserve ledger checkpoint --export FILE`)"
        )
    fields = {k: v for k, v in d.items() if k not in ("format", "public_key")}
    cp = Checkpoint.from_json(fields)
    pem = d.get("public_key")
    if not isinstance(pem, str) or not pem.isascii():
        raise InvalidInput(f"exported checkpoint field 'public_key' must be a PEM public key, got {pem!r}")
    try:
        verify_checkpoint(pem.encode(), cp)
    except ProofError as exc:
        raise InvalidInput(f"exported checkpoint does not verify with the key it carries: {exc}") from exc
    return cp, pem.encode()


def _from_hex(value: Any, name: str) -> bytes:
    if not isinstance(value, str) or not re.fullmatch(r"(?:[0-9a-f]{2})*", value):
        raise InvalidInput(f"checkpoint {name} must be lowercase hex, got {value!r}")
    return bytes.fromhex(value)


# --- The signing key --------------------------------------------------------------------------


def create_signing_key(path: Path) -> Ed25519PrivateKey:
    """Generate a new Ed25519 key and write it to ``path`` (PKCS8 PEM, mode 0600).

    The file is created exclusively with its final permissions, so it is never readable by
    anyone else, not even for a moment; an existing file is never overwritten.
    """
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, KEY_FILE_MODE)
    except FileExistsError as exc:
        raise Conflict(
            f"signing key file {path} already exists; refusing to overwrite it "
            "(move it away first if you really mean to replace the ledger's key)"
        ) from exc
    try:
        os.fchmod(fd, KEY_FILE_MODE)  # the umask may have removed bits; never added any
        view = memoryview(pem)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except BaseException as exc:
        os.close(fd)
        with contextlib.suppress(OSError):
            path.unlink()
        if isinstance(exc, OSError):  # a full disk, say: name the file (os.write does not)
            raise WriteFailed(f"cannot write signing key {path}: {cause(exc)}") from exc
        raise
    os.close(fd)
    return key


def load_signing_key(path: Path) -> Ed25519PrivateKey:
    """Read the ledger's Ed25519 key, refusing a file that group or others can access."""
    try:
        st = path.stat()
        data = path.read_bytes()
    except FileNotFoundError as exc:
        raise NotInitialised(f"no signing key at {path}: run `reserve init` to create one") from exc
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        raise InvalidInput(
            f"signing key {path} has mode {mode:04o}, so group or others can read it; run `chmod 600 {path}`"
        )
    try:
        key = load_pem_private_key(data, password=None)
    except (ValueError, TypeError, UnsupportedAlgorithm) as exc:
        raise InvalidInput(f"signing key {path} is not an unencrypted PEM private key: {exc}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise InvalidInput(
            f"signing key {path} is a {type(key).__name__}, not an Ed25519 key; "
            "create one with `reserve init`"
        )
    return key


def public_key_pem(key: Ed25519PrivateKey) -> bytes:
    """The public half of ``key`` as SubjectPublicKeyInfo PEM, the file auditors are given."""
    return key.public_key().public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)


def sign_checkpoint(key: Ed25519PrivateKey, tree_size: int, root: bytes, timestamp: int) -> Checkpoint:
    """Sign (``tree_size``, ``root``, ``timestamp``) with the ledger's key."""
    if not isinstance(root, bytes) or len(root) != HASH_SIZE:
        raise InvalidInput(f"checkpoint root must be {HASH_SIZE} bytes, got {root!r}")
    return Checkpoint(
        tree_size=tree_size,
        root=root,
        timestamp=timestamp,
        key_id=key_id(public_key_pem(key)),
        signature=key.sign(checkpoint_message(tree_size, root, timestamp)),
    )


def verify_checkpoint(public_key_pem: bytes, cp: Checkpoint) -> None:
    """Raise :class:`ProofError` unless ``cp`` was signed by the key ``public_key_pem``."""
    expected = key_id(public_key_pem)
    if cp.key_id != expected:
        raise ProofError(
            f"checkpoint of size {cp.tree_size} names key {cp.key_id}, but the given public key is {expected}"
        )
    verify_checkpoint_signature(public_key_pem, cp.tree_size, cp.root, cp.timestamp, cp.signature)
