"""A spend from proposal to booking, through the CLI, with key holders as signing wallets.

Each holder is a :class:`~regtest.signers.DemoSigner`: a bitcoind wallet with only its own private
key, exchanging PSBT files with the service as a hardware wallet would. On SQLite and PostgreSQL
against the session's regtest node.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from sqlalchemy import Engine, text

from custody.psbt import Psbt
from regtest.node import RegtestNode
from regtest.signers import DemoSigner
from tests.fixtures import governance
from tests.fixtures.reserve import Reserve

if TYPE_CHECKING:
    from tests.fixtures.reserve import TestVault

BTC = 100_000_000
LOOSEN_DELAY = 144  # the default: a new allowlist entry is active this many blocks after it is added


@pytest.fixture
def db(reserve: Reserve) -> Iterator[Engine]:
    engine = reserve.engine()
    yield engine
    engine.dispose()


# --- helpers (used by the other test_spend_* modules) ------------------------------------------------


def signer(reserve: Reserve, vault: TestVault, holder: str) -> DemoSigner:
    """``holder`` of ``vault`` as a signing wallet on the reserve's node (its key only)."""
    return governance.holder(reserve.node, vault, holder)


def sign_file(node: RegtestNode, holder: DemoSigner, psbt_file: Path, out_dir: Path) -> Path:
    """What a holder does with the spend's PSBT file: sign it on its device, hand back a file."""
    signed = holder.sign(node.rpc(), psbt_file.read_text().strip())
    out = out_dir / f"{psbt_file.stem}-{holder.holder}.psbt"
    out.write_text(signed + "\n")
    return out


def outside_address(node: RegtestNode) -> str:
    return str(node.miner().call("getnewaddress"))


def allow(reserve: Reserve, node: RegtestNode, vault: TestVault, name: str, address: str) -> None:
    """Put ``name`` on the vault's allowlist (its holders approve) and mine until it is active."""
    governance.governed(reserve, vault, "policy", "allow", "add", vault.name, name, "--address", address)
    node.mine(LOOSEN_DELAY)


def mempool(node: RegtestNode) -> set[str]:
    return {str(t) for t in node.rpc().call("getrawmempool")}


def count(db: Engine, table: str) -> int:
    with db.connect() as c:
        return int(c.execute(text(f"SELECT count(*) FROM {table}")).scalar_one())


@dataclass
class Setup:
    vault: TestVault
    other: TestVault
    exchange: str  # the allowlisted counterparty's address
    signers: dict[str, DemoSigner]


def funded_vault(reserve: Reserve, node: RegtestNode, sat: int = 2 * BTC) -> Setup:
    """A 2-of-3 vault with ``sat`` in two coins, another vault its holders approved as a
    destination, and ``exchange`` on its allowlist."""
    vault = reserve.add_vault("hot")
    other = reserve.add_vault("cold")
    node.fund(vault.address(), sat // 2)
    node.fund(vault.address(), sat - sat // 2)
    reserve.ok("sync")
    exchange = outside_address(node)
    governance.governed(reserve, vault, "policy", "destination", "add", vault.name, other.name)
    allow(reserve, node, vault, "exchange", exchange)
    holders = {h: signer(reserve, vault, h) for h in vault.keys}
    return Setup(vault, other, exchange, holders)


def create(reserve: Reserve, out: Path, vault: TestVault, *args: str) -> dict[str, object]:
    r = reserve.ok("spend", "create", "--vault", vault.name, "--out", str(out), "--json", *args)
    created: dict[str, object] = r.json()
    return created


def signed_by(node: RegtestNode, setup: Setup, psbt_file: Path, out: Path, *holders: str) -> list[Path]:
    return [sign_file(node, setup.signers[h], psbt_file, out) for h in holders]


def entry_of(db: Engine, seq: int) -> tuple[str, str, dict[str, int]]:
    """(kind, memo, account -> amount) of journal entry ``seq``."""
    with db.connect() as c:
        kind, memo = c.execute(text("SELECT kind, memo FROM entries WHERE seq = :s"), {"s": seq}).one()
        legs = c.execute(
            text(
                "SELECT a.name, p.amount FROM postings p JOIN accounts a ON a.id = p.account_id "
                "WHERE p.entry_seq = :s"
            ),
            {"s": seq},
        ).all()
    return str(kind), str(memo), {str(n): int(a) for n, a in legs}


# --- the happy path -----------------------------------------------------------------------------------


def test_withdrawal_and_transfer_from_proposal_to_books(
    reserve: Reserve, node: RegtestNode, db: Engine, tmp_path: Path
) -> None:
    setup = funded_vault(reserve, node)
    hot = setup.vault.name

    created = create(
        reserve, tmp_path, setup.vault, "--pay", "exchange=0.5", "--fee-rate", "2", "--memo", "payout 17"
    )
    number = int(str(created["spend"]))
    psbt_file = Path(str(created["psbt_file"]))
    assert psbt_file.name == f"spend-{number}.psbt" and psbt_file.exists()
    assert created["amount_sat"] == 50_000_000
    rules = {r["rule"]: r["ok"] for r in created["rules"]}  # type: ignore[attr-defined]
    assert rules["inputs"] and rules["outputs"] and not rules["approvals"]

    shown = reserve.ok("spend", "show", str(number), "--json").json()
    assert shown["state"] == "proposed"
    assert [d["name"] for d in shown["destinations"]] == ["exchange"]
    assert shown["destinations"][0]["address"] == setup.exchange
    assert {m["holder"] for m in shown["inputs"][0]["missing"]} == set(setup.vault.keys)
    assert all(m["fingerprint"] for m in shown["inputs"][0]["missing"])

    # one holder signs: not enough
    [ministry] = signed_by(node, setup, psbt_file, tmp_path, "ministry")
    reserve.ok("spend", "sign", str(number), str(ministry))
    text_view = reserve.ok("spend", "show", str(number)).out
    assert "[FAIL] approvals" in text_view and "signed by ministry" in text_view
    assert "missing central-bank" in text_view
    again = tmp_path / "again"
    again.mkdir()
    reserve.ok("spend", "psbt", str(number), "--out", str(again))
    merged = Psbt.parse((again / psbt_file.name).read_text())
    assert all(len(i.partial_sigs) == 1 for i in merged.inputs)
    refused = reserve.run("spend", "broadcast", str(number))
    assert refused.code == 1 and "approvals" in refused.err
    # the second holder: quorum
    [central] = signed_by(node, setup, psbt_file, tmp_path, "central-bank")
    out = reserve.ok("spend", "sign", str(number), str(central), "--json").json()
    assert out["quorum"] is True and out["quorum_height"] == node.rpc().get_block_count()
    shown = reserve.ok("spend", "show", str(number), "--json").json()
    assert all(r["ok"] for r in shown["rules"]), shown["rules"]
    assert {s["holder"] for s in shown["inputs"][0]["signed"]} == {"ministry", "central-bank"}

    sent = reserve.ok("spend", "broadcast", str(number), "--json").json()
    assert sent["broadcast"] is True and sent["txid"] == shown["txid"]
    assert sent["txid"] in mempool(node)
    node.mine(1)
    reserve.ok("sync")

    shown = reserve.ok("spend", "show", str(number), "--json").json()
    assert shown["state"] == "confirmed"
    kind, memo, legs = entry_of(db, shown["history"][-1]["detail"]["entry_seq"])
    assert memo == "payout 17" and kind == "withdrawal"
    assert legs["exchange"] == 50_000_000
    assert legs[hot] == -(50_000_000 + legs["network-fees"])

    # a transfer to the other vault: its next receive address, issued and watched
    created = create(reserve, tmp_path, setup.vault, "--pay", f"{setup.other.name}=0.3", "--memo", "to cold")
    number2 = int(str(created["spend"]))
    psbt2 = Path(str(created["psbt_file"]))
    files = signed_by(node, setup, psbt2, tmp_path, "ministry", "regulator")
    reserve.ok("spend", "sign", str(number2), *map(str, files))
    reserve.ok("spend", "broadcast", str(number2))
    node.mine(1)
    reserve.ok("sync")
    shown = reserve.ok("spend", "show", str(number2), "--json").json()
    assert shown["state"] == "confirmed"
    kind, memo, legs = entry_of(db, shown["history"][-1]["detail"]["entry_seq"])
    assert kind == "transfer" and memo == "to cold"
    assert legs[setup.other.name] == 30_000_000

    listed = reserve.ok("spend", "list", "--json").json()["spends"]
    assert [(s["spend"], s["state"]) for s in listed] == [(number, "confirmed"), (number2, "confirmed")]
    audit = reserve.run("audit", "--json")
    assert audit.code == 0, audit.out
    assert reserve.run("ledger", "verify").code == 0


def test_a_descriptor_entry_is_paid_at_its_next_unused_address(
    reserve: Reserve, node: RegtestNode, db: Engine, tmp_path: Path
) -> None:
    setup = funded_vault(reserve, node)
    import secrets

    from custody.checksum import add_checksum
    from custody.keygen import test_key_from_seed
    from custody.network import Network

    key = test_key_from_seed(secrets.token_bytes(32), Network.REGTEST)
    desc = add_checksum(f"wpkh({key}/0/*)")
    governance.governed(
        reserve, setup.vault, "policy", "allow", "add", setup.vault.name, "payroll", "--descriptor", desc
    )
    node.mine(LOOSEN_DELAY)
    first, second = (str(a) for a in node.rpc().call("deriveaddresses", desc, [0, 1]))
    a = create(reserve, tmp_path, setup.vault, "--pay", "payroll=0.1", "--fee-rate", "2", "--memo", "june")
    b = create(reserve, tmp_path, setup.vault, "--pay", "payroll=0.1", "--fee-rate", "2", "--memo", "july")
    shown = [reserve.ok("spend", "show", str(x["spend"]), "--json").json() for x in (a, b)]
    assert [s["destinations"][0]["address"] for s in shown] == [first, second]
    # both open spends hold different coins
    inputs = [{i["outpoint"] for i in s["inputs"]} for s in shown]
    assert not inputs[0] & inputs[1]


def test_one_spend_paying_a_counterparty_and_a_vault_is_booked_to_both(
    reserve: Reserve, node: RegtestNode, db: Engine, tmp_path: Path
) -> None:
    setup = funded_vault(reserve, node)
    created = create(
        reserve,
        tmp_path,
        setup.vault,
        "--pay",
        "exchange=0.1",
        "--pay",
        f"{setup.other.name}=0.2",
        "--fee-rate",
        "3.5",
        "--memo",
        "split",
    )
    number = str(created["spend"])
    files = signed_by(node, setup, Path(str(created["psbt_file"])), tmp_path, "ministry", "central-bank")
    reserve.ok("spend", "sign", number, *map(str, files))
    reserve.ok("spend", "broadcast", number)
    node.mine(1)
    reserve.ok("sync")
    shown = reserve.ok("spend", "show", number, "--json").json()
    assert shown["state"] == "confirmed"
    kind, memo, legs = entry_of(db, shown["history"][-1]["detail"]["entry_seq"])
    assert (kind, memo) == ("transfer", "split")
    assert legs["exchange"] == 10_000_000 and legs[setup.other.name] == 20_000_000
    assert legs[setup.vault.name] == -(30_000_000 + legs["network-fees"])
    assert sum(legs.values()) == 0
    assert reserve.run("audit", "--json").code == 0
