"""BIP-174 Partially Signed Bitcoin Transactions (version 0): parse, inspect, serialize.

A PSBT is the file a key holder signs: the unsigned transaction plus, per input and output, what a
signer needs (the spent output, the witness script, BIP-32 key origins) and what signers added
(partial signatures). :meth:`Psbt.parse` reads raw bytes (magic ``psbt\\xff``) or base64 text and is
strict: anything malformed, truncated, duplicated or inconsistent raises :class:`InvalidInput` naming
what and at which byte. Key-value pairs this module does not model (proprietary, taproot, hash
preimages, future types) are kept in ``unknown`` and written back byte for byte.

The values are frozen dataclasses with tuples, normalised on construction (partial signatures,
derivations and global xpubs sorted by key) so ``Psbt.parse(p.serialize()) == p`` for every ``p``.
Only the fields this project reads are modelled: P2WSH multisig (witness UTXO, witness script,
derivations, partial signatures) plus what a finalizer writes.

The transaction (de)serialization is written here rather than taken from python-bitcoinlib: an
unsigned PSBT transaction must be refused when it carries a scriptSig or witness, errors must name the
byte offset inside the PSBT, and the values must be this module's typed, immutable ones.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace

import coincurve

from custody.errors import InvalidInput
from custody.network import TPUB_VERSION, XPUB_VERSION, NetworkKind

MAGIC = b"psbt\xff"
MAX_MONEY = 21_000_000 * 100_000_000
MAX_SIZE = 0x02000000  # Bitcoin Core's MAX_SIZE for compact sizes

# global key types
GLOBAL_UNSIGNED_TX = 0x00
GLOBAL_XPUB = 0x01
GLOBAL_VERSION = 0xFB
_GLOBAL_V2_ONLY = {0x02: "TX_VERSION", 0x03: "FALLBACK_LOCKTIME", 0x04: "INPUT_COUNT", 0x05: "OUTPUT_COUNT",
                   0x06: "TX_MODIFIABLE"}  # fmt: skip

# input key types
IN_NON_WITNESS_UTXO = 0x00
IN_WITNESS_UTXO = 0x01
IN_PARTIAL_SIG = 0x02
IN_SIGHASH_TYPE = 0x03
IN_REDEEM_SCRIPT = 0x04
IN_WITNESS_SCRIPT = 0x05
IN_BIP32_DERIVATION = 0x06
IN_FINAL_SCRIPTSIG = 0x07
IN_FINAL_SCRIPTWITNESS = 0x08
_IN_MODELLED = frozenset(range(0x00, 0x09))
_IN_V2_ONLY = {0x0E: "PREVIOUS_TXID", 0x0F: "OUTPUT_INDEX", 0x10: "SEQUENCE",
               0x11: "REQUIRED_TIME_LOCKTIME", 0x12: "REQUIRED_HEIGHT_LOCKTIME"}  # fmt: skip

# output key types
OUT_REDEEM_SCRIPT = 0x00
OUT_WITNESS_SCRIPT = 0x01
OUT_BIP32_DERIVATION = 0x02
_OUT_MODELLED = frozenset(range(0x00, 0x03))
_OUT_V2_ONLY = {0x03: "AMOUNT", 0x04: "SCRIPT"}

# key data lengths of types kept in ``unknown`` but checked (BIP-174, BIP-371): type -> allowed lengths
_IN_KEYDATA_LENGTHS = {0x09: (0,), 0x0A: (20,), 0x0B: (32,), 0x0C: (20,), 0x0D: (32,), 0x13: (0,),
                       0x14: (64,), 0x16: (32,), 0x17: (0,), 0x18: (0,)}  # fmt: skip
_OUT_KEYDATA_LENGTHS = {0x05: (0,), 0x06: (0,), 0x07: (32,)}


def _hash256(data: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


def compact_size(n: int) -> bytes:
    """Bitcoin's CompactSize encoding of ``n``."""
    if n < 0xFD:
        return bytes((n,))
    if n <= 0xFFFF:
        return b"\xfd" + struct.pack("<H", n)
    if n <= 0xFFFFFFFF:
        return b"\xfe" + struct.pack("<I", n)
    return b"\xff" + struct.pack("<Q", n)


def _varbytes(data: bytes) -> bytes:
    return compact_size(len(data)) + data


class _Reader:
    """A cursor over ``data`` that raises :class:`InvalidInput` with absolute byte offsets."""

    def __init__(self, data: bytes, what: str, base: int = 0) -> None:
        self.data = data
        self.what = what
        self.base = base
        self.pos = 0

    @property
    def at(self) -> int:
        return self.base + self.pos

    @property
    def left(self) -> int:
        return len(self.data) - self.pos

    def fail(self, message: str, at: int | None = None) -> InvalidInput:
        return InvalidInput(f"{self.what}: {message} at byte {self.at if at is None else at}")

    def take(self, n: int, field_name: str) -> bytes:
        if n > self.left:
            raise InvalidInput(
                f"{self.what} truncated at byte {self.base + len(self.data)}: {field_name} at byte "
                f"{self.at} needs {n} byte(s), only {self.left} left"
            )
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def u32(self, field_name: str) -> int:
        value: int = struct.unpack("<I", self.take(4, field_name))[0]
        return value

    def i64(self, field_name: str) -> int:
        value: int = struct.unpack("<q", self.take(8, field_name))[0]
        return value

    def compact(self, field_name: str) -> int:
        start = self.at
        first = self.take(1, field_name)[0]
        if first < 0xFD:
            return first
        width, minimum = {0xFD: (2, 0xFD), 0xFE: (4, 0x10000), 0xFF: (8, 0x100000000)}[first]
        value = int.from_bytes(self.take(width, field_name), "little")
        if value < minimum:
            raise self.fail(f"non-canonical compact size {value} for {field_name}", start)
        if value > MAX_SIZE:
            raise self.fail(f"compact size {value} for {field_name} is larger than {MAX_SIZE}", start)
        return value

    def varbytes(self, field_name: str) -> bytes:
        return self.take(self.compact(f"{field_name} length"), field_name)


# --- transactions ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TxIn:
    """An input of the unsigned transaction: the outpoint it spends and its nSequence."""

    txid: str  # hex, display order (as bitcoind shows it)
    vout: int
    sequence: int

    def __post_init__(self) -> None:
        try:
            raw = bytes.fromhex(self.txid)
        except ValueError:
            raw = b""
        if len(raw) != 32 or self.txid != self.txid.lower():
            raise InvalidInput(f"txid {self.txid!r} is not 64 lowercase hex digits")
        for name, value in (("vout", self.vout), ("sequence", self.sequence)):
            if not 0 <= value <= 0xFFFFFFFF:
                raise InvalidInput(f"input {name} {value} is not a 32-bit unsigned integer")

    @property
    def outpoint(self) -> str:
        """``txid:vout``."""
        return f"{self.txid}:{self.vout}"

    def serialize_outpoint(self) -> bytes:
        return bytes.fromhex(self.txid)[::-1] + struct.pack("<I", self.vout)


@dataclass(frozen=True, slots=True)
class TxOut:
    """An output: its value in satoshis and its scriptPubKey."""

    value: int
    script_pubkey: bytes

    def __post_init__(self) -> None:
        if not 0 <= self.value <= MAX_MONEY:
            raise InvalidInput(f"output value {self.value} sat is outside 0..{MAX_MONEY}")

    def serialize(self) -> bytes:
        return struct.pack("<q", self.value) + _varbytes(self.script_pubkey)


def _read_txout(reader: _Reader, where: str) -> TxOut:
    start = reader.at
    value = reader.i64(f"{where} value")
    script = reader.varbytes(f"{where} scriptPubKey")
    if not 0 <= value <= MAX_MONEY:
        raise reader.fail(f"{where} value {value} sat is outside 0..{MAX_MONEY}", start)
    return TxOut(value, script)


@dataclass(frozen=True, slots=True)
class UnsignedTx:
    """The PSBT's transaction: no scriptSigs, no witnesses; serialized in the non-witness format."""

    version: int
    locktime: int
    inputs: tuple[TxIn, ...]
    outputs: tuple[TxOut, ...]

    def __post_init__(self) -> None:
        for name, value in (("version", self.version), ("locktime", self.locktime)):
            if not 0 <= value <= 0xFFFFFFFF:
                raise InvalidInput(f"transaction {name} {value} is not a 32-bit unsigned integer")
        object.__setattr__(self, "inputs", tuple(self.inputs))
        object.__setattr__(self, "outputs", tuple(self.outputs))

    def serialize(self) -> bytes:
        """The non-witness serialization (what the txid commits to)."""
        parts = [struct.pack("<I", self.version), compact_size(len(self.inputs))]
        for txin in self.inputs:
            parts += [txin.serialize_outpoint(), b"\x00", struct.pack("<I", txin.sequence)]
        parts.append(compact_size(len(self.outputs)))
        parts += [out.serialize() for out in self.outputs]
        parts.append(struct.pack("<I", self.locktime))
        return b"".join(parts)

    @property
    def txid(self) -> str:
        return _hash256(self.serialize())[::-1].hex()

    @classmethod
    def parse(cls, data: bytes) -> UnsignedTx:
        """Parse a non-witness serialization with empty scriptSigs; nothing may follow it."""
        return _parse_unsigned_tx(_Reader(bytes(data), "unsigned transaction"))


def _parse_unsigned_tx(reader: _Reader) -> UnsignedTx:
    try:
        return _read_unsigned_tx(reader)
    except InvalidInput as e:
        if reader.data[4:6] == b"\x00\x01":
            e.add_note(
                "it looks like the witness serialization (marker 0x00, flag 0x01); a PSBT's transaction "
                "must be serialized without witnesses"
            )
        raise


def _read_unsigned_tx(reader: _Reader) -> UnsignedTx:
    version = reader.u32("version")
    n_in = reader.compact("input count")
    inputs = []
    for i in range(n_in):
        txid = reader.take(32, f"input {i} txid")[::-1].hex()
        vout = reader.u32(f"input {i} vout")
        script_at = reader.at
        script_sig = reader.varbytes(f"input {i} scriptSig")
        if script_sig:
            raise reader.fail(
                f"input {i} has a {len(script_sig)}-byte scriptSig; a PSBT's transaction must be "
                "unsigned (signatures go in the input maps)",
                script_at,
            )
        inputs.append(TxIn(txid, vout, reader.u32(f"input {i} sequence")))
    n_out = reader.compact("output count")
    outputs = [_read_txout(reader, f"output {i}") for i in range(n_out)]
    locktime = reader.u32("locktime")
    if reader.left:
        raise reader.fail(f"{reader.left} trailing byte(s) after the transaction")
    return UnsignedTx(version, locktime, tuple(inputs), tuple(outputs))


def _parse_full_tx(data: bytes, what: str, base: int) -> tuple[str, tuple[TxOut, ...]]:
    """A complete network transaction (with or without witnesses): its txid and its outputs."""
    reader = _Reader(data, what, base)
    version = reader.take(4, "version")
    segwit = reader.left >= 2 and reader.data[reader.pos] == 0 and reader.data[reader.pos + 1] != 0
    if segwit:
        flag = reader.take(2, "marker and flag")[1]
        if flag != 1:
            raise reader.fail(f"unknown witness flag {flag}", reader.at - 1)
    body_start = reader.pos
    n_in = reader.compact("input count")
    for i in range(n_in):
        reader.take(36, f"input {i} outpoint")
        reader.varbytes(f"input {i} scriptSig")
        reader.take(4, f"input {i} sequence")
    n_out = reader.compact("output count")
    outputs = tuple(_read_txout(reader, f"output {i}") for i in range(n_out))
    body = reader.data[body_start : reader.pos]
    if segwit:
        for i in range(n_in):
            for j in range(reader.compact(f"input {i} witness item count")):
                reader.varbytes(f"input {i} witness item {j}")
    locktime = reader.take(4, "locktime")
    if reader.left:
        raise reader.fail(f"{reader.left} trailing byte(s) after the transaction")
    return _hash256(version + body + locktime)[::-1].hex(), outputs


# --- PSBT values ----------------------------------------------------------------------------------


def _check_pubkey(pubkey: bytes, what: str) -> None:
    if len(pubkey) not in (33, 65):
        raise InvalidInput(f"{what}: public key has {len(pubkey)} bytes, expected 33 (or 65 uncompressed)")
    try:
        coincurve.PublicKey(pubkey)
    except ValueError as e:
        raise InvalidInput(f"{what}: {pubkey.hex()} is not a valid secp256k1 public key") from e


def _check_unique(keys: Iterable[bytes], what: str) -> None:
    seen: set[bytes] = set()
    for key in keys:
        if key in seen:
            raise InvalidInput(f"{what}: key {key.hex()} appears twice")
        seen.add(key)


def _key_type(key: bytes) -> int:
    reader = _Reader(key, "PSBT key")
    return reader.compact("key type")


def _check_unknown(unknown: tuple[tuple[bytes, bytes], ...], modelled: frozenset[int], what: str) -> None:
    _check_unique((k for k, _ in unknown), what)
    for key, _value in unknown:
        if not key:
            raise InvalidInput(f"{what}: an unknown pair has an empty key")
        if _key_type(key) in modelled:
            raise InvalidInput(f"{what}: unknown pair {key.hex()} has a modelled key type; use its field")


def _path_bytes(fingerprint: bytes, path: tuple[int, ...]) -> bytes:
    return fingerprint + b"".join(struct.pack("<I", p) for p in path)


def _parse_origin(value: bytes, what: str) -> tuple[bytes, tuple[int, ...]]:
    if len(value) < 4 or len(value) % 4:
        raise InvalidInput(
            f"{what}: key origin has {len(value)} bytes; expected a 4-byte fingerprint and 4 bytes per step"
        )
    path = tuple(struct.unpack(f"<{len(value) // 4 - 1}I", value[4:]))
    return value[:4], path


def _check_origin(fingerprint: bytes, path: tuple[int, ...], what: str) -> None:
    if len(fingerprint) != 4:
        raise InvalidInput(f"{what}: fingerprint has {len(fingerprint)} bytes, expected 4")
    if any(not 0 <= p <= 0xFFFFFFFF for p in path):
        raise InvalidInput(f"{what}: derivation path {path} has a step outside 32 bits")


@dataclass(frozen=True, slots=True)
class Derivation:
    """A BIP-32 origin of a public key: master fingerprint and derivation path."""

    pubkey: bytes
    fingerprint: bytes
    path: tuple[int, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", tuple(self.path))
        _check_pubkey(self.pubkey, "BIP-32 derivation")
        _check_origin(self.fingerprint, self.path, "BIP-32 derivation")


@dataclass(frozen=True, slots=True)
class GlobalXpub:
    """A global extended public key (78 bytes, BIP-32 serialization) with its origin."""

    xpub: bytes
    fingerprint: bytes
    path: tuple[int, ...]

    def __post_init__(self) -> None:
        object.__setattr__(self, "path", tuple(self.path))
        if len(self.xpub) != 78:
            raise InvalidInput(f"global xpub has {len(self.xpub)} bytes, expected 78")
        _check_pubkey(self.xpub[45:], "global xpub")
        _check_origin(self.fingerprint, self.path, "global xpub")

    @property
    def network_kind(self) -> NetworkKind:
        version = self.xpub[:4]
        if version == XPUB_VERSION:
            return "mainnet"
        if version == TPUB_VERSION:
            return "test"
        raise InvalidInput(
            f"global xpub has unknown version bytes {version.hex()}; expected {XPUB_VERSION.hex()} (xpub, "
            f"mainnet) or {TPUB_VERSION.hex()} (tpub, test networks)"
        )


def _sorted_sigs(sigs: Iterable[tuple[bytes, bytes]]) -> tuple[tuple[bytes, bytes], ...]:
    return tuple(sorted(((bytes(k), bytes(v)) for k, v in sigs), key=lambda kv: kv[0]))


@dataclass(frozen=True, slots=True)
class PsbtInput:
    """One input map. ``partial_sigs`` are ``(pubkey, DER signature + sighash byte)``, sorted by key."""

    non_witness_utxo: bytes | None = None
    witness_utxo: TxOut | None = None
    partial_sigs: tuple[tuple[bytes, bytes], ...] = ()
    sighash_type: int | None = None
    witness_script: bytes | None = None
    derivations: tuple[Derivation, ...] = ()
    final_script_witness: tuple[bytes, ...] | None = None
    unknown: tuple[tuple[bytes, bytes], ...] = ()
    redeem_script: bytes | None = None
    final_script_sig: bytes | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "partial_sigs", _sorted_sigs(self.partial_sigs))
        object.__setattr__(self, "derivations", tuple(sorted(self.derivations, key=lambda d: d.pubkey)))
        object.__setattr__(self, "unknown", tuple(self.unknown))
        if self.final_script_witness is not None:
            object.__setattr__(self, "final_script_witness", tuple(self.final_script_witness))
        _check_unique((k for k, _ in self.partial_sigs), "PSBT input partial signatures")
        for pubkey, sig in self.partial_sigs:
            _check_pubkey(pubkey, "PSBT input partial signature")
            if not sig:
                raise InvalidInput(f"PSBT input partial signature for {pubkey.hex()} is empty")
        _check_unique((d.pubkey for d in self.derivations), "PSBT input BIP-32 derivations")
        if self.sighash_type is not None and not 0 <= self.sighash_type <= 0xFFFFFFFF:
            raise InvalidInput(f"PSBT input sighash type {self.sighash_type} is not 32-bit")
        _check_unknown(self.unknown, _IN_MODELLED, "PSBT input")

    def serialize(self) -> bytes:
        pairs: list[tuple[bytes, bytes]] = []
        if self.non_witness_utxo is not None:
            pairs.append((bytes((IN_NON_WITNESS_UTXO,)), self.non_witness_utxo))
        if self.witness_utxo is not None:
            pairs.append((bytes((IN_WITNESS_UTXO,)), self.witness_utxo.serialize()))
        pairs += [(bytes((IN_PARTIAL_SIG,)) + k, v) for k, v in self.partial_sigs]
        if self.sighash_type is not None:
            pairs.append((bytes((IN_SIGHASH_TYPE,)), struct.pack("<I", self.sighash_type)))
        if self.redeem_script is not None:
            pairs.append((bytes((IN_REDEEM_SCRIPT,)), self.redeem_script))
        if self.witness_script is not None:
            pairs.append((bytes((IN_WITNESS_SCRIPT,)), self.witness_script))
        pairs += [
            (bytes((IN_BIP32_DERIVATION,)) + d.pubkey, _path_bytes(d.fingerprint, d.path))
            for d in self.derivations
        ]
        if self.final_script_sig is not None:
            pairs.append((bytes((IN_FINAL_SCRIPTSIG,)), self.final_script_sig))
        if self.final_script_witness is not None:
            stack = compact_size(len(self.final_script_witness)) + b"".join(
                _varbytes(item) for item in self.final_script_witness
            )
            pairs.append((bytes((IN_FINAL_SCRIPTWITNESS,)), stack))
        pairs += self.unknown
        return _serialize_map(pairs)


@dataclass(frozen=True, slots=True)
class PsbtOutput:
    """One output map: the scripts and key origins a signer uses to recognise change."""

    witness_script: bytes | None = None
    derivations: tuple[Derivation, ...] = ()
    unknown: tuple[tuple[bytes, bytes], ...] = ()
    redeem_script: bytes | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "derivations", tuple(sorted(self.derivations, key=lambda d: d.pubkey)))
        object.__setattr__(self, "unknown", tuple(self.unknown))
        _check_unique((d.pubkey for d in self.derivations), "PSBT output BIP-32 derivations")
        _check_unknown(self.unknown, _OUT_MODELLED, "PSBT output")

    def serialize(self) -> bytes:
        pairs: list[tuple[bytes, bytes]] = []
        if self.redeem_script is not None:
            pairs.append((bytes((OUT_REDEEM_SCRIPT,)), self.redeem_script))
        if self.witness_script is not None:
            pairs.append((bytes((OUT_WITNESS_SCRIPT,)), self.witness_script))
        pairs += [
            (bytes((OUT_BIP32_DERIVATION,)) + d.pubkey, _path_bytes(d.fingerprint, d.path))
            for d in self.derivations
        ]
        pairs += self.unknown
        return _serialize_map(pairs)


def _serialize_map(pairs: Iterable[tuple[bytes, bytes]]) -> bytes:
    return b"".join(_varbytes(k) + _varbytes(v) for k, v in pairs) + b"\x00"


@dataclass(frozen=True, slots=True)
class Psbt:
    """A version-0 PSBT. Build with :meth:`parse`; change signatures with :meth:`with_partial_sigs`."""

    tx: UnsignedTx
    xpubs: tuple[GlobalXpub, ...] = ()
    inputs: tuple[PsbtInput, ...] = ()
    outputs: tuple[PsbtOutput, ...] = ()
    unknown: tuple[tuple[bytes, bytes], ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "xpubs", tuple(sorted(self.xpubs, key=lambda x: x.xpub)))
        object.__setattr__(self, "inputs", tuple(self.inputs))
        object.__setattr__(self, "outputs", tuple(self.outputs))
        object.__setattr__(self, "unknown", tuple(self.unknown))
        if len(self.inputs) != len(self.tx.inputs):
            raise InvalidInput(
                f"PSBT has {len(self.inputs)} input map(s) for {len(self.tx.inputs)} transaction input(s)"
            )
        if len(self.outputs) != len(self.tx.outputs):
            raise InvalidInput(
                f"PSBT has {len(self.outputs)} output map(s) for {len(self.tx.outputs)} transaction output(s)"
            )
        _check_unique((x.xpub for x in self.xpubs), "PSBT global xpubs")
        _check_unknown(
            self.unknown, frozenset((GLOBAL_UNSIGNED_TX, GLOBAL_XPUB, GLOBAL_VERSION)), "PSBT global"
        )

    @classmethod
    def parse(cls, data: bytes | str) -> Psbt:
        """Parse raw bytes (starting ``psbt\\xff``) or base64 text (whitespace at the ends allowed)."""
        return _parse(_decode(data))

    def serialize(self) -> bytes:
        pairs: list[tuple[bytes, bytes]] = [(bytes((GLOBAL_UNSIGNED_TX,)), self.tx.serialize())]
        pairs += [(bytes((GLOBAL_XPUB,)) + x.xpub, _path_bytes(x.fingerprint, x.path)) for x in self.xpubs]
        pairs += self.unknown
        return (
            MAGIC
            + _serialize_map(pairs)
            + b"".join(i.serialize() for i in self.inputs)
            + b"".join(o.serialize() for o in self.outputs)
        )

    def to_base64(self) -> str:
        return base64.b64encode(self.serialize()).decode("ascii")

    def networks(self) -> frozenset[NetworkKind]:
        """The network kinds the global xpubs belong to (empty when there are none)."""
        return frozenset(x.network_kind for x in self.xpubs)

    def with_partial_sigs(self, index: int, sigs: Sequence[tuple[bytes, bytes]]) -> Psbt:
        """This PSBT with ``sigs`` (pubkey, signature) added to input ``index``.

        A signature already present for the same key is kept if identical; a different one for the
        same key is refused (the caller decides which to trust, not this merge).
        """
        if not 0 <= index < len(self.inputs):
            raise InvalidInput(f"PSBT has no input {index}; it has {len(self.inputs)}")
        current = dict(self.inputs[index].partial_sigs)
        for pubkey, sig in sigs:
            pubkey, sig = bytes(pubkey), bytes(sig)
            if current.get(pubkey, sig) != sig:
                raise InvalidInput(
                    f"PSBT input {index} already has a different signature for key {pubkey.hex()}"
                )
            current[pubkey] = sig
        new_input = replace(self.inputs[index], partial_sigs=tuple(current.items()))
        inputs = (*self.inputs[:index], new_input, *self.inputs[index + 1 :])
        return replace(self, inputs=inputs)

    def input_utxo(self, index: int) -> TxOut | None:
        """The output input ``index`` spends as the PSBT claims it (witness or non-witness UTXO)."""
        item = self.inputs[index]
        if item.witness_utxo is not None:
            return item.witness_utxo
        if item.non_witness_utxo is not None:
            _, outputs = _parse_full_tx(item.non_witness_utxo, "non-witness UTXO", 0)
            return outputs[self.tx.inputs[index].vout]
        return None


# --- parsing --------------------------------------------------------------------------------------


def _decode(data: bytes | str) -> bytes:
    if isinstance(data, (bytes, bytearray, memoryview)):
        raw = bytes(data)
        if raw.startswith(MAGIC):
            return raw
        try:
            text = raw.decode("ascii")
        except UnicodeDecodeError:
            raise _bad_magic(raw) from None
    else:
        text = data
    text = text.strip()
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        if text.startswith("cHNidP8"):
            raise InvalidInput(
                "PSBT base64 text is malformed (bad character, padding or length); "
                "pass the PSBT file exactly as the signer wrote it"
            ) from None
        raise _bad_magic(text.encode("utf-8", "replace")) from None
    if not raw.startswith(MAGIC):
        raise _bad_magic(raw)
    return raw


def _bad_magic(raw: bytes) -> InvalidInput:
    return InvalidInput(
        f"PSBT bad magic: starts with {raw[:5].hex() or 'nothing'}, expected 70736274ff ('psbt' 0xff) "
        "or its base64 'cHNidP8'; is this a PSBT file?"
    )


_Pair = tuple[bytes, bytes, int, int]  # key, value, key offset, value offset


def _read_map(reader: _Reader, name: str) -> list[_Pair]:
    pairs: list[_Pair] = []
    seen: set[bytes] = set()
    while True:
        key_at = reader.at
        key_len = reader.compact(f"{name} key length")
        if key_len == 0:
            return pairs
        key = reader.take(key_len, f"{name} key")
        value_at = reader.at
        value = reader.varbytes(f"{name} value")
        if key in seen:
            raise reader.fail(f"duplicate key {key.hex()} in the {name} map", key_at)
        seen.add(key)
        pairs.append((key, value, key_at, value_at))


def _split_key(reader: _Reader, key: bytes, key_at: int, name: str) -> tuple[int, bytes]:
    sub = _Reader(key, reader.what, key_at + len(compact_size(len(key))))
    key_type = sub.compact(f"{name} key type")
    return key_type, key[sub.pos :]


def _expect_keydata(reader: _Reader, keydata: bytes, lengths: tuple[int, ...], label: str, at: int) -> None:
    if len(keydata) not in lengths:
        want = " or ".join(str(n + 1) for n in lengths)
        raise reader.fail(f"{label} key has {len(keydata) + 1} byte(s), expected {want}", at)


def _parse(raw: bytes) -> Psbt:
    reader = _Reader(raw, "PSBT")
    reader.take(len(MAGIC), "magic")
    tx: UnsignedTx | None = None
    xpubs: list[GlobalXpub] = []
    unknown: list[tuple[bytes, bytes]] = []
    for key, value, key_at, value_at in _read_map(reader, "global"):
        key_type, keydata = _split_key(reader, key, key_at, "global")
        if key_type == GLOBAL_UNSIGNED_TX:
            _expect_keydata(reader, keydata, (0,), "global unsigned transaction", key_at)
            tx = _parse_unsigned_tx(_Reader(value, "PSBT unsigned transaction", value_at))
        elif key_type == GLOBAL_XPUB:
            _expect_keydata(reader, keydata, (78,), "global xpub", key_at)
            with _at(key_at):
                xpubs.append(GlobalXpub(keydata, *_parse_origin(value, "global xpub")))
        elif key_type == GLOBAL_VERSION:
            _expect_keydata(reader, keydata, (0,), "global version", key_at)
            if len(value) != 4:
                raise reader.fail(f"global version value has {len(value)} bytes, expected 4", value_at)
            version = struct.unpack("<I", value)[0]
            if version != 0:
                raise reader.fail(f"PSBT version {version} is not supported (only version 0)", value_at)
        elif key_type in _GLOBAL_V2_ONLY:
            raise reader.fail(
                f"global key PSBT_GLOBAL_{_GLOBAL_V2_ONLY[key_type]} belongs to PSBT version 2", key_at
            )
        else:
            unknown.append((key, value))
    if tx is None:
        raise InvalidInput("PSBT has no unsigned transaction (global key 0x00); is this a complete PSBT?")
    inputs = tuple(_parse_input(reader, i, tx) for i in range(len(tx.inputs)))
    outputs = tuple(_parse_output(reader, i) for i in range(len(tx.outputs)))
    if reader.left:
        raise reader.fail(f"{reader.left} trailing byte(s) after the last output map")
    with _at(0):
        return Psbt(tx, tuple(xpubs), inputs, outputs, tuple(unknown))


@contextmanager
def _at(offset: int) -> Iterator[None]:
    """An :class:`InvalidInput` from a value's own checks gets the byte offset added."""
    try:
        yield
    except InvalidInput as e:
        message = str(e)
        if not message.startswith("PSBT"):
            message = "PSBT " + message
        raise InvalidInput(f"{message} (at byte {offset})") from None


def _map_start(reader: _Reader, name: str) -> None:
    if not reader.left:
        raise InvalidInput(
            f"PSBT truncated at byte {reader.at}: the {name} map is missing (a PSBT has one map per "
            "transaction input and output)"
        )


def _derivation(keydata: bytes, value: bytes, key_at: int, name: str) -> Derivation:
    with _at(key_at):
        return Derivation(keydata, *_parse_origin(value, f"{name} BIP-32 derivation"))


def _parse_input(reader: _Reader, index: int, tx: UnsignedTx) -> PsbtInput:
    name = f"input {index}"
    _map_start(reader, name)
    non_witness_utxo: bytes | None = None
    spent: TxOut | None = None  # the non-witness UTXO's output this input spends
    witness_utxo: TxOut | None = None
    sighash_type: int | None = None
    scripts: dict[int, bytes] = {}
    final_witness: tuple[bytes, ...] | None = None
    sigs: list[tuple[bytes, bytes]] = []
    derivations: list[Derivation] = []
    unknown: list[tuple[bytes, bytes]] = []
    for key, value, key_at, value_at in _read_map(reader, name):
        key_type, keydata = _split_key(reader, key, key_at, name)
        if key_type in _IN_V2_ONLY:
            raise reader.fail(f"{name} key PSBT_IN_{_IN_V2_ONLY[key_type]} belongs to PSBT version 2", key_at)
        if key_type not in _IN_MODELLED:
            if key_type in _IN_KEYDATA_LENGTHS:
                lengths = _IN_KEYDATA_LENGTHS[key_type]
                _expect_keydata(reader, keydata, lengths, f"{name} type 0x{key_type:02x}", key_at)
            unknown.append((key, value))
            continue
        label = f"{name} {_IN_NAMES[key_type]}"
        with_pubkey = key_type in (IN_PARTIAL_SIG, IN_BIP32_DERIVATION)
        _expect_keydata(reader, keydata, (33, 65) if with_pubkey else (0,), label, key_at)
        if key_type == IN_NON_WITNESS_UTXO:
            txid, outs = _parse_full_tx(value, f"PSBT {label}", value_at)
            prevout = tx.inputs[index]
            if txid != prevout.txid:
                raise reader.fail(f"{label} is transaction {txid}, not the spent {prevout.txid}", value_at)
            if prevout.vout >= len(outs):
                raise reader.fail(
                    f"{name} spends output {prevout.vout} of a transaction with {len(outs)}", value_at
                )
            non_witness_utxo, spent = value, outs[prevout.vout]
        elif key_type == IN_WITNESS_UTXO:
            sub = _Reader(value, "PSBT", value_at)
            witness_utxo = _read_txout(sub, label)
            if sub.left:
                raise sub.fail(f"{sub.left} trailing byte(s) in the {label}")
        elif key_type == IN_PARTIAL_SIG:
            with _at(key_at):
                _check_pubkey(keydata, label)
            if not value:
                raise reader.fail(f"{label} for {keydata.hex()} is empty", value_at)
            sigs.append((keydata, value))
        elif key_type == IN_SIGHASH_TYPE:
            if len(value) != 4:
                raise reader.fail(f"{label} has {len(value)} bytes, expected 4", value_at)
            sighash_type = struct.unpack("<I", value)[0]
        elif key_type == IN_BIP32_DERIVATION:
            derivations.append(_derivation(keydata, value, key_at, name))
        elif key_type == IN_FINAL_SCRIPTWITNESS:
            sub = _Reader(value, "PSBT", value_at)
            count = sub.compact(f"{label} item count")
            final_witness = tuple(sub.varbytes(f"{label} item {j}") for j in range(count))
            if sub.left:
                raise sub.fail(f"{sub.left} trailing byte(s) in the {label}")
        else:  # redeem script, witness script, final scriptSig
            scripts[key_type] = value
    if spent is not None and witness_utxo is not None and spent != witness_utxo:
        raise InvalidInput(
            f"PSBT {name}: the witness UTXO ({witness_utxo.value} sat) is not the output the non-witness "
            f"UTXO says is spent ({spent.value} sat); the PSBT contradicts itself about the amount or script "
            f"(map ends at byte {reader.at})"
        )
    with _at(reader.at):
        return PsbtInput(
            non_witness_utxo=non_witness_utxo,
            witness_utxo=witness_utxo,
            partial_sigs=tuple(sigs),
            sighash_type=sighash_type,
            witness_script=scripts.get(IN_WITNESS_SCRIPT),
            derivations=tuple(derivations),
            final_script_witness=final_witness,
            unknown=tuple(unknown),
            redeem_script=scripts.get(IN_REDEEM_SCRIPT),
            final_script_sig=scripts.get(IN_FINAL_SCRIPTSIG),
        )


_IN_NAMES = {
    IN_NON_WITNESS_UTXO: "non-witness UTXO",
    IN_WITNESS_UTXO: "witness UTXO",
    IN_PARTIAL_SIG: "partial signature",
    IN_SIGHASH_TYPE: "sighash type",
    IN_REDEEM_SCRIPT: "redeem script",
    IN_WITNESS_SCRIPT: "witness script",
    IN_BIP32_DERIVATION: "BIP-32 derivation",
    IN_FINAL_SCRIPTSIG: "final scriptSig",
    IN_FINAL_SCRIPTWITNESS: "final script witness",
}


def _parse_output(reader: _Reader, index: int) -> PsbtOutput:
    name = f"output {index}"
    _map_start(reader, name)
    scripts: dict[int, bytes] = {}
    derivations: list[Derivation] = []
    unknown: list[tuple[bytes, bytes]] = []
    for key, value, key_at, _value_at in _read_map(reader, name):
        key_type, keydata = _split_key(reader, key, key_at, name)
        if key_type in (OUT_REDEEM_SCRIPT, OUT_WITNESS_SCRIPT):
            label = "redeem script" if key_type == OUT_REDEEM_SCRIPT else "witness script"
            _expect_keydata(reader, keydata, (0,), f"{name} {label}", key_at)
            scripts[key_type] = value
        elif key_type == OUT_BIP32_DERIVATION:
            _expect_keydata(reader, keydata, (33, 65), f"{name} BIP-32 derivation", key_at)
            derivations.append(_derivation(keydata, value, key_at, name))
        elif key_type in _OUT_V2_ONLY:
            raise reader.fail(
                f"{name} key PSBT_OUT_{_OUT_V2_ONLY[key_type]} belongs to PSBT version 2", key_at
            )
        else:
            if key_type in _OUT_KEYDATA_LENGTHS:
                lengths = _OUT_KEYDATA_LENGTHS[key_type]
                _expect_keydata(reader, keydata, lengths, f"{name} type 0x{key_type:02x}", key_at)
            unknown.append((key, value))
    with _at(reader.at):
        return PsbtOutput(
            witness_script=scripts.get(OUT_WITNESS_SCRIPT),
            derivations=tuple(derivations),
            unknown=tuple(unknown),
            redeem_script=scripts.get(OUT_REDEEM_SCRIPT),
        )
