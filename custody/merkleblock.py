"""Block headers, transactions and ``gettxoutproof`` Merkle proofs, parsed and checked: pure.

What an attestation needs to show an auditor, without a node, that an output existed in a block
of a chain of headers:

- :class:`BlockHeader`: the 80-byte header (``getblockheader HASH false``), its hash and the
  target its ``nBits`` encode (:func:`target_from_bits`, Bitcoin Core's ``arith_uint256::SetCompact``
  with its negative and overflow refusals); :func:`header_chain_findings` checks that headers link
  by ``hashPrevBlock``, that each hash meets its own target and that no target is easier than the
  network's proof-of-work limit.
- :class:`MerkleBlock`: the ``CMerkleBlock`` that ``gettxoutproof`` returns (a header and a
  ``CPartialMerkleTree``); :meth:`MerkleBlock.matched_txids` walks the partial tree as Core's
  ``CPartialMerkleTree::ExtractMatches`` does (same refusals: unused hashes or flag bits, a
  duplicated right child, more hashes than transactions) and checks the root it computes against
  the header's Merkle root.
- :class:`RawTx`: a serialised transaction (with or without witness), its txid (double SHA-256 of
  the serialisation without witness), inputs and outputs: the amounts and scripts an auditor checks
  against the txid the Merkle proof covers.

:func:`retarget_findings` checks what headers alone show of the difficulty rule (no change between
retargets, at most a factor of 4 at one). What this cannot check offline: that the headers are the
heaviest chain (only a node knows), the exact retarget and the median-time rules (they need headers
back to the period's start). Bad
bytes raise :class:`~custody.errors.InvalidInput` naming the field and byte offset; checks that
judge return findings.

Imports only the standard library (and :mod:`custody.errors`): the auditor's verifier uses it.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Sequence
from dataclasses import dataclass

from custody.errors import InvalidInput

HEADER_SIZE = 80
MAX_BLOCK_TXS = 4_000_000 // 240  # MAX_BLOCK_WEIGHT / MIN_TRANSACTION_WEIGHT, as Core bounds a proof

# The proof-of-work limit (the easiest target) of each chain, by ``getblockchaininfo``'s "chain".
POW_LIMITS: dict[str, int] = {
    "main": 0x00000000FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF,
    "test": 0x00000000FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF,
    "testnet4": 0x00000000FFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFF,
    "signet": 0x00000377AE000000000000000000000000000000000000000000000000000000,
    "regtest": 0x7FFFFF0000000000000000000000000000000000000000000000000000000000,
}


def sha256d(data: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(data).digest()).digest()


def display_hex(internal: bytes) -> str:
    """A hash as bitcoind prints it (byte-reversed hex)."""
    return internal[::-1].hex()


def internal_bytes(display: str, what: str) -> bytes:
    """The internal byte order of a hash printed by bitcoind; :class:`InvalidInput` if not 64 hex."""
    if not isinstance(display, str) or len(display) != 64 or display != display.lower():
        raise InvalidInput(f"{what} must be 64 lowercase hex digits, got {display!r}")
    try:
        return bytes.fromhex(display)[::-1]
    except ValueError:
        raise InvalidInput(f"{what} must be 64 lowercase hex digits, got {display!r}") from None


class _Reader:
    """Bytes read front to back; every short read names the field and offset."""

    def __init__(self, data: bytes, what: str) -> None:
        self.data = data
        self.pos = 0
        self.what = what

    def take(self, n: int, field: str) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise InvalidInput(
                f"{self.what} is truncated: {field} needs {n} bytes at byte {self.pos}, "
                f"{len(self.data) - self.pos} left"
            )
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def u32(self, field: str) -> int:
        return int(struct.unpack("<I", self.take(4, field))[0])

    def i64(self, field: str) -> int:
        return int(struct.unpack("<q", self.take(8, field))[0])

    def compact_size(self, field: str) -> int:
        start = self.pos
        first = self.take(1, field)[0]
        if first < 0xFD:
            return first
        size = {0xFD: 2, 0xFE: 4, 0xFF: 8}[first]
        value = int.from_bytes(self.take(size, field), "little")
        if value < {2: 0xFD, 4: 0x10000, 8: 0x100000000}[size]:
            raise InvalidInput(f"{self.what}: {field} at byte {start} is not minimally encoded")
        if value > 0x02000000:  # Core's MAX_SIZE
            raise InvalidInput(f"{self.what}: {field} at byte {start} is {value}, beyond 33,554,432")
        return value

    def end(self) -> None:
        if self.pos != len(self.data):
            raise InvalidInput(
                f"{self.what} has {len(self.data) - self.pos} unexpected bytes after byte {self.pos}"
            )


# --- headers ----------------------------------------------------------------------------------


def target_from_bits(bits: int) -> int:
    """The target a compact ``nBits`` encodes; :class:`InvalidInput` when it is negative, zero or
    overflows 256 bits (``arith_uint256::SetCompact`` with ``fNegative``/``fOverflow``)."""
    exponent, mantissa = bits >> 24, bits & 0x007FFFFF
    if mantissa and bits & 0x00800000:
        raise InvalidInput(f"nBits {bits:08x} encodes a negative target")
    if mantissa and (
        exponent > 34 or (mantissa > 0xFF and exponent > 33) or (mantissa > 0xFFFF and exponent > 32)
    ):
        raise InvalidInput(f"nBits {bits:08x} overflows 256 bits")
    target = mantissa >> 8 * (3 - exponent) if exponent <= 3 else mantissa << 8 * (exponent - 3)
    if target == 0:
        raise InvalidInput(f"nBits {bits:08x} encodes a zero target")
    return target


@dataclass(frozen=True, slots=True)
class BlockHeader:
    """An 80-byte block header. Hashes are kept as bitcoind prints them (display hex)."""

    version: int
    prev_hash: str
    merkle_root: str
    time: int
    bits: int
    nonce: int
    raw: bytes

    @classmethod
    def parse(cls, raw: bytes) -> BlockHeader:
        if len(raw) != HEADER_SIZE:
            raise InvalidInput(f"a block header is {HEADER_SIZE} bytes, got {len(raw)}")
        version, prev, root, time, bits, nonce = struct.unpack("<i32s32sIII", raw)
        return cls(version, display_hex(prev), display_hex(root), time, bits, nonce, bytes(raw))

    @classmethod
    def from_hex(cls, text: str) -> BlockHeader:
        try:
            raw = bytes.fromhex(text)
        except (ValueError, TypeError):
            raise InvalidInput(f"block header {str(text)[:20]!r}... is not hex") from None
        return cls.parse(raw)

    @property
    def hash(self) -> str:
        return display_hex(sha256d(self.raw))

    @property
    def target(self) -> int:
        return target_from_bits(self.bits)

    def pow_findings(self, pow_limit: int | None = None) -> list[str]:
        """Why this header's proof of work is bad (empty: it meets its own target)."""
        try:
            target = self.target
        except InvalidInput as exc:
            return [f"block {self.hash}: {exc}"]
        found = []
        if pow_limit is not None and target > pow_limit:
            found.append(f"block {self.hash}: nBits {self.bits:08x} is easier than the network's limit")
        if int(self.hash, 16) > target:
            found.append(f"block {self.hash} does not meet its own target (nBits {self.bits:08x})")
        return found


def header_chain_findings(
    headers: Sequence[BlockHeader], tip_hash: str, pow_limit: int | None = None
) -> list[str]:
    """Check ``headers`` (oldest first) form a chain ending at block ``tip_hash``: each links to the
    one before by its previous-block hash and each meets its own target (within ``pow_limit``)."""
    if not headers:
        return ["no block headers"]
    found: list[str] = []
    for i, h in enumerate(headers):
        found += h.pow_findings(pow_limit)
        if i and h.prev_hash != headers[i - 1].hash:
            found.append(
                f"header {i} (block {h.hash}) names previous block {h.prev_hash}, but header {i - 1} "
                f"is block {headers[i - 1].hash}: the headers do not link"
            )
    if headers[-1].hash != tip_hash:
        found.append(f"the last header is block {headers[-1].hash}, not the attested block {tip_hash}")
    return found


RETARGET_INTERVAL = 2016
# Chains whose every block follows the retarget rule (testnet3 and testnet4 allow a minimum-difficulty
# block after 20 minutes, so nBits can drop anywhere there); regtest never retargets.
_RETARGETING = ("main", "signet")


def retarget_findings(headers: Sequence[BlockHeader], start_height: int, network: str) -> list[str]:
    """Check the difficulty of consecutive ``headers`` (the first at ``start_height``) follows the
    network's rule, as far as headers alone show it: on mainnet and signet ``nBits`` stays the same
    except at a multiple of 2016, where the target moves by at most a factor of 4 either way; on
    regtest it never changes. (Whether a retarget is the exact one needs the period's first header,
    which the document may not hold; testnet's 20-minute rule is not checked.)

    A forged block of minimum difficulty put on top of real headers fails here: its forger must
    spend the real difficulty's work, or forge every header back to the oldest one attested."""
    if network not in (*_RETARGETING, "regtest"):
        return []
    found = []
    for i in range(1, len(headers)):
        height, prev, cur = start_height + i, headers[i - 1], headers[i]
        if cur.bits == prev.bits:
            continue
        if network == "regtest" or height % RETARGET_INTERVAL:
            found.append(
                f"block {cur.hash} at height {height} has nBits {cur.bits:08x}, block {height - 1} "
                f"{prev.bits:08x}: the difficulty changes only every {RETARGET_INTERVAL} blocks on "
                f"{network}" + (" (never on regtest)" if network == "regtest" else "")
            )
            continue
        try:
            old, new = prev.target, cur.target
        except InvalidInput:
            continue  # pow_findings names the bad nBits
        # [old/4, old*4]; the compact encoding rounds the new target down by less than 2^-15
        if new > old * 4 or new * 4 * (1 << 16) < old * ((1 << 16) - 1):
            found.append(
                f"block {cur.hash} at height {height} retargets nBits {prev.bits:08x} to "
                f"{cur.bits:08x}, more than a factor of 4"
            )
    return found


# --- partial Merkle trees (gettxoutproof) -----------------------------------------------------


@dataclass(frozen=True, slots=True)
class MerkleBlock:
    """``CMerkleBlock``: a header and a partial Merkle tree over ``total_txs`` transactions."""

    header: BlockHeader
    total_txs: int
    hashes: tuple[bytes, ...]  # internal byte order
    flags: bytes

    @classmethod
    def parse(cls, raw: bytes) -> MerkleBlock:
        r = _Reader(raw, "Merkle proof")
        header = BlockHeader.parse(r.take(HEADER_SIZE, "block header"))
        total = r.u32("transaction count")
        n_hashes = r.compact_size("hash count")
        hashes = tuple(r.take(32, f"hash {i}") for i in range(n_hashes))
        flags = r.take(r.compact_size("flag byte count"), "flag bytes")
        r.end()
        return cls(header, total, hashes, flags)

    @classmethod
    def from_hex(cls, text: str) -> MerkleBlock:
        try:
            raw = bytes.fromhex(text)
        except (ValueError, TypeError):
            raise InvalidInput("Merkle proof is not hex") from None
        return cls.parse(raw)

    def _width(self, height: int) -> int:
        return (self.total_txs + (1 << height) - 1) >> height

    def matched_txids(self) -> tuple[str, ...]:
        """The txids the proof proves to be in the block (display hex, block order).

        Raises :class:`InvalidInput` when the partial tree is malformed or does not lead to the
        header's Merkle root."""
        where = f"Merkle proof for block {self.header.hash}"
        if self.total_txs == 0:
            raise InvalidInput(f"{where} claims a block without transactions")
        if self.total_txs > MAX_BLOCK_TXS:
            raise InvalidInput(f"{where} claims {self.total_txs} transactions, more than a block holds")
        if len(self.hashes) > self.total_txs:
            raise InvalidInput(f"{where} has more hashes ({len(self.hashes)}) than transactions")
        bits = [(byte >> i) & 1 for byte in self.flags for i in range(8)]
        if len(bits) < len(self.hashes):
            raise InvalidInput(f"{where} has fewer flag bits than hashes")
        height = 0
        while self._width(height) > 1:
            height += 1
        state = [0, 0]  # bits used, hashes used
        matches: list[str] = []

        def walk(h: int, pos: int) -> bytes:
            if state[0] >= len(bits):
                raise InvalidInput(f"{where} runs out of flag bits")
            parent_of_match = bits[state[0]]
            state[0] += 1
            if h == 0 or not parent_of_match:
                if state[1] >= len(self.hashes):
                    raise InvalidInput(f"{where} runs out of hashes")
                node = self.hashes[state[1]]
                state[1] += 1
                if h == 0 and parent_of_match:
                    matches.append(display_hex(node))
                return node
            left = walk(h - 1, pos * 2)
            if pos * 2 + 1 < self._width(h - 1):
                right = walk(h - 1, pos * 2 + 1)
                if right == left:  # CVE-2012-2459: a duplicated subtree could fake a match
                    raise InvalidInput(f"{where} has a right subtree equal to its left one")
            else:
                right = left
            return sha256d(left + right)

        root = walk(height, 0)
        if (state[0] + 7) // 8 != len(self.flags):
            raise InvalidInput(f"{where} has unused flag bytes")
        if state[1] != len(self.hashes):
            raise InvalidInput(f"{where} has {len(self.hashes) - state[1]} unused hashes")
        if display_hex(root) != self.header.merkle_root:
            raise InvalidInput(
                f"{where} leads to Merkle root {display_hex(root)}, but the header commits to "
                f"{self.header.merkle_root}"
            )
        return tuple(matches)


# --- transactions -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class RawTx:
    """A transaction: txid, the outpoints it spends, its outputs, and its bytes without witness."""

    txid: str
    inputs: tuple[tuple[str, int], ...]  # (previous txid, vout); a coinbase input is ("00"*32, 0xffffffff)
    outputs: tuple[tuple[int, bytes], ...]  # (amount in sat, scriptPubKey)
    stripped: bytes  # serialisation without witness: sha256d(stripped) is the txid

    @property
    def is_coinbase(self) -> bool:
        return len(self.inputs) == 1 and self.inputs[0] == ("00" * 32, 0xFFFFFFFF)

    @classmethod
    def parse(cls, raw: bytes) -> RawTx:
        r = _Reader(raw, "transaction")
        version = r.take(4, "version")
        segwit = len(raw) > 6 and raw[4] == 0 and raw[5] == 1
        if segwit:
            r.take(2, "segwit marker")
        body_start = r.pos
        n_in = r.compact_size("input count")
        inputs = []
        for i in range(n_in):
            prev = r.take(32, f"input {i} previous txid")
            vout = r.u32(f"input {i} previous index")
            r.take(r.compact_size(f"input {i} script length"), f"input {i} script")
            r.take(4, f"input {i} sequence")
            inputs.append((display_hex(prev), vout))
        n_out = r.compact_size("output count")
        outputs = []
        for i in range(n_out):
            value = r.i64(f"output {i} amount")
            if value < 0:
                raise InvalidInput(f"transaction output {i} has a negative amount {value}")
            outputs.append((value, r.take(r.compact_size(f"output {i} script length"), f"output {i} script")))
        body_end = r.pos
        if segwit:
            for i in range(n_in):
                for j in range(r.compact_size(f"input {i} witness count")):
                    r.take(
                        r.compact_size(f"input {i} witness item {j} length"), f"input {i} witness item {j}"
                    )
        locktime = r.take(4, "locktime")
        r.end()
        if not inputs:
            raise InvalidInput("transaction has no inputs")
        stripped = version + raw[body_start:body_end] + locktime
        return cls(display_hex(sha256d(stripped)), tuple(inputs), tuple(outputs), stripped)

    @classmethod
    def from_hex(cls, text: str) -> RawTx:
        try:
            raw = bytes.fromhex(text)
        except (ValueError, TypeError):
            raise InvalidInput("transaction is not hex") from None
        return cls.parse(raw)
