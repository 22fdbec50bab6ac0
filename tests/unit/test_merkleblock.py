"""Block headers, partial Merkle trees (gettxoutproof) and raw transactions: parsing and checks.

Mainnet vectors: the genesis block and block 1 (their headers, hashes and the genesis coinbase).
Partial trees are built here with Bitcoin Core's ``CPartialMerkleTree::TraverseAndBuild`` for
random blocks and matches (hypothesis), then parsed and walked by :mod:`custody.merkleblock`.
"""

from __future__ import annotations

import hashlib
import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from custody.errors import InvalidInput
from custody.merkleblock import (
    POW_LIMITS,
    BlockHeader,
    MerkleBlock,
    RawTx,
    header_chain_findings,
    target_from_bits,
)

GENESIS_HEADER = (
    "0100000000000000000000000000000000000000000000000000000000000000000000003ba3edfd7a7b12b27ac72c3e"
    "67768f617fc81bc3888a51323a9fb8aa4b1e5e4a29ab5f49ffff001d1dac2b7c"
)
GENESIS_HASH = "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f"
BLOCK1_HEADER = (
    "010000006fe28c0ab6f1b372c1a6a246ae63f74f931e8365e15a089c68d6190000000000982051fd1e4ba744bbbe680e"
    "1fee14677ba1a3c3540bf7b1cdb606e857233e0e61bc6649ffff001d01e36299"
)
BLOCK1_HASH = "00000000839a8e6886ab5951d76f411475428afc90947ee320161bbf18eb6048"
GENESIS_COINBASE = (
    "01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff4d04ffff001d01"
    "04455468652054696d65732030332f4a616e2f32303039204368616e63656c6c6f72206f6e206272696e6b206f662073"
    "65636f6e64206261696c6f757420666f722062616e6b73ffffffff0100f2052a01000000434104678afdb0fe55482719"
    "67f1a67130b7105cd6a828e03909a67962e0ea1f61deb649f6bc3f4cef38c4f35504e51ec112de5c384df7ba0b8d578a"
    "4c702b6bf11d5fac00000000"
)
GENESIS_TXID = "4a5e1e4baab89f3a32518a88c31bc87f618f76673e2cc77ab2127b7afdeda33b"


def sha256d(b: bytes) -> bytes:
    return hashlib.sha256(hashlib.sha256(b).digest()).digest()


# --- a reference builder: CPartialMerkleTree's constructor -------------------------------------


def width(n: int, height: int) -> int:
    return (n + (1 << height) - 1) >> height


def node_hash(txids: list[bytes], height: int, pos: int) -> bytes:
    if height == 0:
        return txids[pos]
    left = node_hash(txids, height - 1, pos * 2)
    right = left
    if pos * 2 + 1 < width(len(txids), height - 1):
        right = node_hash(txids, height - 1, pos * 2 + 1)
    return sha256d(left + right)


def build(txids: list[bytes], matches: list[bool]) -> tuple[bytes, list[bytes], bytes]:
    """(root, hashes, flag bytes) as Core's TraverseAndBuild makes them."""
    n = len(txids)
    height = 0
    while width(n, height) > 1:
        height += 1
    bits: list[int] = []
    hashes: list[bytes] = []

    def walk(h: int, pos: int) -> None:
        parent = any(matches[p] for p in range(pos << h, min((pos + 1) << h, n)))
        bits.append(int(parent))
        if h == 0 or not parent:
            hashes.append(node_hash(txids, h, pos))
        else:
            walk(h - 1, pos * 2)
            if pos * 2 + 1 < width(n, h - 1):
                walk(h - 1, pos * 2 + 1)

    walk(height, 0)
    flags = bytearray((len(bits) + 7) // 8)
    for i, b in enumerate(bits):
        flags[i // 8] |= b << (i % 8)
    return node_hash(txids, height, 0), hashes, bytes(flags)


def compact(n: int) -> bytes:
    return bytes([n]) if n < 0xFD else b"\xfd" + struct.pack("<H", n)


def header_with_root(root: bytes, prev: bytes = b"\x00" * 32, bits: int = 0x207FFFFF) -> bytes:
    """A regtest-difficulty header committing to ``root``, its nonce ground to meet the target."""
    for nonce in range(1000):
        raw = struct.pack("<i32s32sIII", 4, prev, root, 1700000000, bits, nonce)
        if int(sha256d(raw)[::-1].hex(), 16) <= target_from_bits(bits):
            return raw
    raise AssertionError("no nonce found")


def merkleblock(txids: list[bytes], matches: list[bool]) -> bytes:
    root, hashes, flags = build(txids, matches)
    return (
        header_with_root(root)
        + struct.pack("<I", len(txids))
        + compact(len(hashes))
        + b"".join(hashes)
        + compact(len(flags))
        + flags
    )


# --- headers ---------------------------------------------------------------------------------------


def test_mainnet_headers_hash_link_and_meet_their_target() -> None:
    genesis, block1 = BlockHeader.from_hex(GENESIS_HEADER), BlockHeader.from_hex(BLOCK1_HEADER)
    assert genesis.hash == GENESIS_HASH and block1.hash == BLOCK1_HASH
    assert genesis.merkle_root == GENESIS_TXID and genesis.bits == 0x1D00FFFF
    assert block1.prev_hash == GENESIS_HASH
    assert header_chain_findings([genesis, block1], BLOCK1_HASH, POW_LIMITS["main"]) == []


def test_header_chain_refusals_name_what() -> None:
    genesis, block1 = BlockHeader.from_hex(GENESIS_HEADER), BlockHeader.from_hex(BLOCK1_HEADER)
    assert "do not link" in header_chain_findings([block1, genesis], GENESIS_HASH)[0]
    assert "not the attested block" in header_chain_findings([genesis, block1], GENESIS_HASH)[0]
    bad_nonce = BlockHeader.parse(genesis.raw[:76] + b"\x00\x00\x00\x00")
    assert "does not meet its own target" in header_chain_findings([bad_nonce], bad_nonce.hash)[0]
    regtest = BlockHeader.parse(header_with_root(b"\x01" * 32))
    assert (
        "easier than the network's limit"
        in header_chain_findings([regtest], regtest.hash, POW_LIMITS["main"])[0]
    )
    assert header_chain_findings([], GENESIS_HASH) == ["no block headers"]


@pytest.mark.parametrize(
    ("bits", "target"),
    [
        (0x1D00FFFF, 0xFFFF << 208),
        (0x207FFFFF, 0x7FFFFF << 232),
        (0x03123456, 0x123456),
        (0x02123456, 0x1234),
        (0x01120000, 0x12),
    ],
)
def test_compact_targets(bits: int, target: int) -> None:
    assert target_from_bits(bits) == target


@pytest.mark.parametrize("bits", [0x04923456, 0x01003456, 0x00000000, 0xFF123456, 0x21010000, 0x2300FFFF])
def test_compact_refusals(bits: int) -> None:
    with pytest.raises(InvalidInput, match="nBits"):
        target_from_bits(bits)


def test_header_must_be_80_bytes() -> None:
    with pytest.raises(InvalidInput, match="80 bytes, got 79"):
        BlockHeader.parse(bytes(79))


# --- partial Merkle trees ---------------------------------------------------------------------------


def test_genesis_proof_matches_its_coinbase() -> None:
    raw = (
        bytes.fromhex(GENESIS_HEADER)
        + struct.pack("<I", 1)
        + b"\x01"
        + bytes.fromhex(GENESIS_TXID)[::-1]
        + b"\x01\x01"
    )
    assert MerkleBlock.parse(raw).matched_txids() == (GENESIS_TXID,)


@settings(max_examples=150, deadline=None)
@given(
    st.integers(1, 40).flatmap(
        lambda n: st.tuples(st.just(n), st.lists(st.booleans(), min_size=n, max_size=n))
    )
)
def test_partial_trees_yield_exactly_their_matches(case: tuple[int, list[bool]]) -> None:
    n, matches = case
    txids = [sha256d(i.to_bytes(4, "little")) for i in range(n)]
    mb = MerkleBlock.parse(merkleblock(txids, matches))
    expected = tuple(t[::-1].hex() for t, m in zip(txids, matches, strict=True) if m)
    assert mb.matched_txids() == expected


def test_a_proof_for_another_root_is_refused() -> None:
    txids = [sha256d(bytes([i])) for i in range(5)]
    raw = bytearray(merkleblock(txids, [False, True, False, False, True]))
    raw[36:68] = sha256d(b"other root")  # the header's Merkle root
    with pytest.raises(InvalidInput, match="leads to Merkle root"):
        MerkleBlock.parse(bytes(raw)).matched_txids()


def test_a_changed_hash_is_refused() -> None:
    txids = [sha256d(bytes([i])) for i in range(6)]
    raw = bytearray(merkleblock(txids, [True, False, False, False, False, False]))
    raw[80 + 4 + 1] ^= 1  # first hash of the tree
    with pytest.raises(InvalidInput, match="leads to Merkle root"):
        MerkleBlock.parse(bytes(raw)).matched_txids()


def test_malformed_trees_are_refused() -> None:
    txids = [sha256d(bytes([i])) for i in range(4)]
    root, hashes, flags = build(txids, [True, False, False, False])
    header = header_with_root(root)

    def mb(total: int, hs: list[bytes], fl: bytes) -> MerkleBlock:
        return MerkleBlock(BlockHeader.parse(header), total, tuple(hs), fl)

    with pytest.raises(InvalidInput, match="without transactions"):
        mb(0, hashes, flags).matched_txids()
    with pytest.raises(InvalidInput, match="unused hashes"):
        mb(4, [*hashes, b"\x00" * 32], flags).matched_txids()
    with pytest.raises(InvalidInput, match="unused flag bytes"):
        mb(4, hashes, flags + b"\x00").matched_txids()
    with pytest.raises(InvalidInput, match="more hashes"):
        mb(1, hashes, flags).matched_txids()
    with pytest.raises(InvalidInput, match="runs out of"):
        mb(4, hashes[:-1], flags).matched_txids()


def test_duplicated_subtree_is_refused() -> None:
    """CVE-2012-2459: [a, b, c] and [a, b, c, c] have the same root; a proof must not show c twice."""
    txids = [sha256d(bytes([i])) for i in range(3)]
    dup = [*txids, txids[2]]
    root, hashes, flags = build(dup, [False, False, False, True])
    assert root == build(txids, [False, False, True])[0]
    fake = MerkleBlock(BlockHeader.parse(header_with_root(root)), 4, tuple(hashes), flags)
    with pytest.raises(InvalidInput, match="right subtree equal"):
        fake.matched_txids()


def test_truncated_proof_names_field_and_offset() -> None:
    with pytest.raises(InvalidInput, match=r"hash count needs 1 bytes at byte 84"):
        MerkleBlock.parse(bytes.fromhex(GENESIS_HEADER) + b"\x01\x00\x00\x00")
    with pytest.raises(InvalidInput, match="unexpected bytes"):
        MerkleBlock.parse(merkleblock([sha256d(b"x")], [True]) + b"\x00")


# --- transactions -----------------------------------------------------------------------------------


def test_genesis_coinbase_parses() -> None:
    tx = RawTx.from_hex(GENESIS_COINBASE)
    assert tx.txid == GENESIS_TXID and tx.is_coinbase
    assert tx.outputs[0][0] == 50 * 100_000_000 and tx.stripped.hex() == GENESIS_COINBASE


def test_witness_serialisation_keeps_the_txid() -> None:
    plain = bytes.fromhex(GENESIS_COINBASE)
    witness = b"\x02\x03abc\x00"  # one input: two items, "abc" and empty
    segwit = plain[:4] + b"\x00\x01" + plain[4:-4] + witness + plain[-4:]
    tx = RawTx.parse(segwit)
    assert tx.txid == GENESIS_TXID and tx.stripped == plain


def test_bad_transactions_are_refused() -> None:
    with pytest.raises(InvalidInput, match="truncated"):
        RawTx.from_hex(GENESIS_COINBASE[:-10])
    with pytest.raises(InvalidInput, match="not hex"):
        RawTx.from_hex("zz")
    negative = bytearray.fromhex(GENESIS_COINBASE)
    at = negative.index(bytes.fromhex("00f2052a01000000"))
    negative[at : at + 8] = struct.pack("<q", -1)
    with pytest.raises(InvalidInput, match="negative amount"):
        RawTx.parse(bytes(negative))
