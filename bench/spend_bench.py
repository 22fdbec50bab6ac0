"""The spend gate on a 200-input, 3-signature PSBT against bitcoind's ``analyzepsbt`` + ``decodepsbt``,
and the velocity query on a ledger of 100,000 entries against the same query without its index.

Gate: builds a PSBT spending 200 inputs of a 3-of-5 (or 2-of-3) ``wsh(sortedmulti)`` vault, each
input signed here by three holders with coincurve private keys (BIP-48 keys from fixed seeds), to an
allowlisted address and the vault's change. Then, in this one run, times

- ours: parse the base64 PSBT, establish the facts (:func:`custody.spend_facts.gather_facts`:
  every input's witness script re-derived from a freshly parsed descriptor, each of the 600
  signatures verified over its BIP-143 sighash and attributed to a holder, outputs classified) and
  judge every rule (:func:`custody.spend_gate.evaluate`); the map of the vault's scripts that
  a caller derives first (both branches over the input range) is timed apart;
- bitcoind: ``analyzepsbt`` + ``decodepsbt`` of the same text on a regtest node started here (the
  inputs need not exist: both read the PSBT's own UTXO fields); bitcoind must find the PSBT
  complete (next role ``finalizer``), which also checks our signatures.

Prints the median of ``--repeat`` runs of each and the ratio (bitcoind / ours: above 1, the gate is
faster).

Velocity: a SQLite ledger of ``--entries`` chain-booked entries (10 per block, every other a
withdrawal from the vault), then :func:`ledger.spend.events.velocity_used` over a 144-block window
at the tip of the ledger at a tenth of its size and at full size (an indexed query reads the
window, so its time should not grow with the ledger), its SQL's query plans, and as the baseline the
same sum read by a full scan of the postings. Again on PostgreSQL when ``RESERVE_TEST_PG_URL`` is set
(a scratch database, dropped after; baseline: the same call planned without indexes).

    .venv/bin/python -m bench.spend_bench [--inputs 200] [--vault 3-of-5] [--repeat 5]
                                          [--entries 100000] [--no-velocity]

``regtest/install-bitcoind`` must have run (or set $BITCOIND).
"""

from __future__ import annotations

import argparse
import hashlib
import os
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bip_utils import Bip32KeyNetVersions, Bip32Secp256k1
from coincurve import PrivateKey

from custody import sighash
from custody.descriptor import MultisigDescriptor
from custody.keygen import bip48_path
from custody.keys import ExtendedKey, KeyOrigin, format_path
from custody.network import Network
from custody.psbt import Derivation, Psbt, PsbtInput, PsbtOutput, TxIn, TxOut, UnsignedTx
from custody.spend_facts import derive_vault_scripts, estimate_vsize, gather_facts, input_script
from custody.spend_gate import GateFacts, evaluate, violations
from custody.spend_policy import SpendLimits
from regtest.node import RegtestNode

NET = Network.REGTEST
FEE_RATE = 2  # sat/vB, well inside the default caps
VAULT = "cold"


@dataclass(frozen=True)
class Holder:
    name: str
    seed: bytes

    def account(self) -> tuple[Bip32Secp256k1, bytes]:
        versions = Bip32KeyNetVersions(NET.xpub_version, NET.xprv_version)
        master = Bip32Secp256k1.FromSeed(self.seed, versions)
        node = master.DerivePath("m/" + format_path(bip48_path(NET)).replace("h", "'"))
        return node, bytes(master.FingerPrint().ToBytes())

    def public(self) -> ExtendedKey:
        node, fingerprint = self.account()
        return ExtendedKey(node.PublicKey().ToExtended(), KeyOrigin(fingerprint, bip48_path(NET)))


@dataclass(frozen=True)
class Spend:
    psbt_b64: str
    descriptor_text: str
    holders: tuple[str, ...]
    prevouts: dict[tuple[str, int], tuple[int, bytes]]
    allowlist: dict[bytes, str]
    n_signatures: int


def build_spend(n_inputs: int, threshold: int, n_keys: int, n_signers: int) -> Spend:
    """A PSBT spending ``n_inputs`` coins of a ``threshold``-of-``n_keys`` vault, each input
    signed by the first ``n_signers`` holders (SIGHASH_ALL, coincurve), as a coordinator would
    hold it after collecting their files."""
    holders = [
        Holder(f"holder-{n}", hashlib.sha256(b"spend-bench" + bytes([n])).digest()) for n in range(n_keys)
    ]
    descriptor = MultisigDescriptor.from_keys(threshold, [h.public() for h in holders])
    payee = MultisigDescriptor.from_keys(1, [Holder("payee", b"\x07" * 32).public()])
    amounts = [1_000_000 + i for i in range(n_inputs)]
    prevouts = {
        (hashlib.sha256(i.to_bytes(4, "big")).hexdigest(), i % 4): (
            amounts[i],
            descriptor.script_pubkey(i, False),
        )
        for i in range(n_inputs)
    }
    inputs = tuple(TxIn(txid, vout, 0xFFFFFFFD) for txid, vout in prevouts)
    draft = UnsignedTx(
        2, 0, inputs, (TxOut(0, payee.script_pubkey(0, False)), TxOut(0, descriptor.script_pubkey(0, True)))
    )
    fee = estimate_vsize(draft, threshold, n_keys) * FEE_RATE
    pay = sum(amounts) // 2
    tx = UnsignedTx(
        2,
        0,
        inputs,
        (
            TxOut(pay, payee.script_pubkey(0, False)),
            TxOut(sum(amounts) - pay - fee, descriptor.script_pubkey(0, True)),
        ),
    )

    branches = [h.account() for h in holders]
    receive = [node.ChildKey(0) for node, _ in branches]
    psbt_inputs = []
    for i, ((amount, script), _) in enumerate(zip(prevouts.values(), inputs, strict=True)):
        _, witness_script = input_script(descriptor, (0, i))
        digest = sighash.segwit_v0_sighash(tx, i, witness_script, amount, sighash.SIGHASH_ALL)
        children = [r.ChildKey(i) for r in receive]
        sigs = []
        for child in children[:n_signers]:
            key = PrivateKey(bytes(child.PrivateKey().Raw().ToBytes()))
            sigs.append((key.public_key.format(compressed=True), key.sign(digest, hasher=None) + b"\x01"))
        derivations = tuple(
            Derivation(bytes(c.PublicKey().RawCompressed().ToBytes()), fp, (*bip48_path(NET), 0, i))
            for c, (_, fp) in zip(children, branches, strict=True)
        )
        psbt_inputs.append(
            PsbtInput(
                witness_utxo=TxOut(amount, script),
                partial_sigs=tuple(sigs),
                witness_script=witness_script,
                derivations=derivations,
            )
        )
    psbt = Psbt(tx, inputs=tuple(psbt_inputs), outputs=(PsbtOutput(), PsbtOutput()))
    return Spend(
        psbt.to_base64(),
        str(descriptor),
        tuple(h.name for h in holders),
        prevouts,
        {payee.script_pubkey(0, False): "payee"},
        n_signers * n_inputs,
    )


def run_gate(spend: Spend, n_inputs: int) -> tuple[GateFacts, tuple[str, ...], float, float]:
    """Parse, establish facts, judge: (facts, violations, seconds for the script map, for the rest)."""
    descriptor = MultisigDescriptor.parse(spend.descriptor_text)  # no derivation cached
    # Psbt.parse makes a new transaction object: custody.sighash's memo (by identity) starts empty.
    t0 = time.perf_counter()
    scripts = derive_vault_scripts(descriptor, n_inputs)
    t_map = time.perf_counter() - t0
    t0 = time.perf_counter()
    psbt = Psbt.parse(spend.psbt_b64)
    facts = gather_facts(
        psbt,
        vault=VAULT,
        descriptor=descriptor,
        holders=spend.holders,
        network=NET,
        prevouts=spend.prevouts,  # gettxout's answers, gathered before the judging
        vault_scripts=scripts,
        other_vaults={},
        allowlist=spend.allowlist,
        pending={},
        locks={},
        velocity_used=0,
        tip_height=1000,
        quorum_height=990,
    )
    found = violations(evaluate(facts, SpendLimits()))
    return facts, found, t_map, time.perf_counter() - t0


def median_time(fn: Callable[[], float], repeat: int) -> float:
    return statistics.median(fn() for _ in range(repeat))


def bench_gate(n_inputs: int, vault: str, repeat: int) -> None:
    threshold, n_keys = (int(x) for x in vault.split("-of-"))
    n_signers = 3
    spend = build_spend(n_inputs, threshold, n_keys, n_signers)
    facts, found, _, _ = run_gate(spend, n_inputs)
    assert found == (), found
    assert all(len(i.signers) == n_signers for i in facts.inputs)

    def ours() -> float:
        _, _, _, t = run_gate(spend, n_inputs)
        return t

    def ours_with_map() -> float:
        _, _, t_map, t = run_gate(spend, n_inputs)
        return t_map + t

    with RegtestNode(rpc_timeout=600) as node:
        rpc = node.rpc()
        analysis = rpc.call("analyzepsbt", spend.psbt_b64)
        assert analysis.get("next") == "finalizer", analysis  # bitcoind agrees every input is signed
        rpc.call("decodepsbt", spend.psbt_b64)

        def theirs() -> float:
            t0 = time.perf_counter()
            rpc.call("analyzepsbt", spend.psbt_b64)
            rpc.call("decodepsbt", spend.psbt_b64)
            return time.perf_counter() - t0

        t_theirs = median_time(theirs, repeat)
    t_ours = median_time(ours, repeat)
    t_total = median_time(ours_with_map, repeat)

    size = len(spend.psbt_b64)
    print(
        f"policy gate: {n_inputs}-input PSBT of a {vault} vault, {n_signers} signatures per input "
        f"({spend.n_signatures} in all), {size:,} base64 characters; median of {repeat}"
    )
    print(f"  bitcoind analyzepsbt + decodepsbt : {t_theirs * 1000:8.1f} ms (two RPC calls)")
    print(f"  gate: parse + facts + evaluate    : {t_ours * 1000:8.1f} ms (every signature verified)")
    print(f"  gate + vault script map ({2 * n_inputs} paths): {t_total * 1000:6.1f} ms")
    print(f"  ratio bitcoind / gate             : {t_theirs / t_ours:8.2f}  (> 1: the gate is faster)")
    print(f"  ratio bitcoind / gate + map       : {t_theirs / t_total:8.2f}")


# --- velocity ---------------------------------------------------------------------------------------


FULL_SCAN = (
    "SELECT coalesce(sum(-p.amount), 0) FROM postings p NOT INDEXED "
    "JOIN entries e ON e.seq = p.entry_seq JOIN accounts a ON a.id = p.account_id "
    "WHERE e.block_height > :since AND a.name = :vault AND p.amount < 0 "
    "AND e.kind IN ('withdrawal', 'transfer') "
    "AND NOT EXISTS (SELECT 1 FROM entries r WHERE r.reverses_seq = e.seq)"
)
"""The baseline: the booked part of the velocity sum, reading every posting once (SQLite)."""


def _velocity_drafts(start: int, stop: int, per_block: int) -> list[Any]:
    from ledger.journal.entry import EntryDraft, Posting

    drafts = []
    for i in range(start, stop):
        height = i // per_block + 1
        amount = 1000 + i
        withdrawal = i % 2 == 1
        legs = (Posting(VAULT, -amount), Posting("acme", amount))
        if not withdrawal:
            legs = (Posting(VAULT, amount), Posting("acme", -amount))
        drafts.append(
            EntryDraft(
                kind="withdrawal" if withdrawal else "deposit",
                memo=f"bench {i}",
                postings=legs,
                ref=f"chain:{i:064x}",
                txid=hashlib.sha256(i.to_bytes(8, "big")).hexdigest(),
                outputs="0",
                block_hash=hashlib.sha256(height.to_bytes(8, "big")).hexdigest(),
                block_height=height,
            )
        )
    return drafts


def _expected_velocity(n_entries: int, per_block: int, window: int) -> int:
    tip = n_entries // per_block
    return sum(1000 + i for i in range(n_entries) if i % 2 == 1 and i // per_block + 1 > tip - window)


def _velocity_on(engine: Any, dialect: str, n_entries: int, window: int) -> None:
    """Fill ``engine``'s (empty, migrated) ledger and print velocity_used's times, plans and baseline."""
    from sqlalchemy import Engine, event, text
    from sqlalchemy.orm import Session

    from ledger.journal.accounts import add_account
    from ledger.journal.book import append_many
    from ledger.spend.events import velocity_used

    per_block = 10
    assert isinstance(engine, Engine)

    def fill(start: int, stop: int) -> None:
        for at in range(start, stop, 1000):
            with Session(engine) as s, s.begin():
                append_many(s, _velocity_drafts(at, min(at + 1000, stop), per_block), chain_verified=True)

    def measure(n: int, *, indexes: bool = True) -> tuple[float, list[tuple[str, Any]]]:
        statements: list[tuple[str, Any]] = []

        def capture(
            conn: Any, cursor: Any, statement: str, parameters: Any, context: Any, many: bool
        ) -> None:
            statements.append((statement, parameters))

        tip = n // per_block
        with Session(engine) as s, s.begin():
            if not indexes:  # PostgreSQL's baseline: the planner may not use an index
                s.execute(text("SET LOCAL enable_indexscan = off"))
                s.execute(text("SET LOCAL enable_bitmapscan = off"))
                s.execute(text("SET LOCAL enable_nestloop = off"))  # hash joins: one linear scan
            velocity_used(s, VAULT, tip, window)  # warm the connection and the page cache
            times = []
            for _ in range(5):
                event.listen(engine, "before_cursor_execute", capture)
                t0 = time.perf_counter()
                used = velocity_used(s, VAULT, tip, window)
                times.append(time.perf_counter() - t0)
                event.remove(engine, "before_cursor_execute", capture)
        expected = _expected_velocity(n, per_block, window)
        assert used == expected, (used, expected)
        return statistics.median(times), statements[: len(statements) // 5]

    with Session(engine) as s, s.begin():
        # A bench's ledger: the vault account opened as a vault definition opens it.
        add_account(s, VAULT, "vault", vault_definition=True)
        add_account(s, "acme", "counterparty")
    small = max(n_entries // 10, per_block * window)
    t0 = time.perf_counter()
    fill(0, small)
    t_small, _ = measure(small)
    fill(small, n_entries)
    t_fill = time.perf_counter() - t0
    t_query, statements = measure(n_entries)

    since = n_entries // per_block - window
    plans: list[list[str]] = []
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        explain = "EXPLAIN QUERY PLAN " if dialect == "sqlite" else "EXPLAIN "
        for statement, parameters in statements:
            cursor.execute(explain + statement, parameters)
            plans.append([str(row[-1]).strip() for row in cursor.fetchall()])
        if dialect == "sqlite":
            params = {"since": since, "vault": VAULT}
            cursor.execute(FULL_SCAN, params)
            t1 = time.perf_counter()
            cursor.execute(FULL_SCAN, params)
            row = cursor.fetchone()
            t_scan = time.perf_counter() - t1
            assert row is not None and int(row[0]) == _expected_velocity(n_entries, per_block, window)
    finally:
        raw.close()
    if dialect != "sqlite":
        t_scan, _ = measure(n_entries, indexes=False)
    baseline = (
        "the same sum by a full scan (every posting read once)"
        if dialect == "sqlite"
        else "velocity_used with index scans and nested loops disabled (full scans, hash joins)"
    )

    print(f"velocity rule on {dialect}: chain-booked entries, {per_block} per block, window {window} blocks")
    print(f"  ledger of {n_entries:,} entries filled in {t_fill:.1f} s")
    print(f"  velocity_used at {small:>9,} entries : {t_small * 1000:8.2f} ms (median of 5)")
    print(f"  velocity_used at {n_entries:>9,} entries : {t_query * 1000:8.2f} ms")
    print(
        f"  growth with a {n_entries / small:.0f}x ledger        : {t_query / t_small:8.2f}x "
        "(~1: reads the window only; ~ledger growth: reads the vault's history)"
    )
    for n, plan in enumerate(plans):
        print(f"  plan of statement {n + 1}: " + " | ".join(plan))
    print(f"  baseline: {baseline}: {t_scan * 1000:.2f} ms")
    print(f"  ratio baseline / velocity_used    : {t_scan / t_query:8.1f}  (> 1: the index pays)")


def bench_velocity(n_entries: int, window: int) -> None:
    """velocity_used at the tip of a ledger of n/10 and then n entries (an indexed query takes
    about as long on both: it reads the window, not the history), its query plans, and a
    baseline without the index; on SQLite, and on PostgreSQL when RESERVE_TEST_PG_URL is set (a
    scratch database, dropped after)."""
    from sqlalchemy import create_engine, make_url, text

    from ledger.settings import normalise_db_url
    from ledger.store.db import make_engine
    from ledger.store.migrate import upgrade

    with tempfile.TemporaryDirectory() as tmp:
        engine = make_engine(f"sqlite:///{Path(tmp) / 'velocity.db'}")
        upgrade(engine)
        try:
            _velocity_on(engine, "sqlite", n_entries, window)
        finally:
            engine.dispose()

    pg = os.environ.get("RESERVE_TEST_PG_URL")
    if not pg:
        print("PostgreSQL: skipped (set RESERVE_TEST_PG_URL to include it)")
        return
    admin_url = normalise_db_url(pg)
    name = f"reserve_bench_{uuid.uuid4().hex[:12]}"
    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        engine = make_engine(make_url(admin_url).set(database=name).render_as_string(hide_password=False))
        upgrade(engine)
        try:
            _velocity_on(engine, "postgresql", n_entries, window)
        finally:
            engine.dispose()
    finally:
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--inputs", type=int, default=200)
    parser.add_argument("--vault", choices=("3-of-5", "2-of-3"), default="3-of-5")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--window", type=int, default=144)
    parser.add_argument("--no-velocity", action="store_true", help="only the gate")
    args = parser.parse_args()
    bench_gate(args.inputs, args.vault, args.repeat)
    if not args.no_velocity:
        bench_velocity(args.entries, args.window)


if __name__ == "__main__":
    main()
