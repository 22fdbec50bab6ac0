"""``reserve vault ...`` end to end through ``ledger.cli.main.main``: a real regtest bitcoind and
migrated databases (SQLite and PostgreSQL). Bad input exits 2, names the problem on stderr and
leaves every table as it was."""

from __future__ import annotations

import json
import os
import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, inspect, text

from custody.checksum import split_checksum
from custody.descriptor import MultisigDescriptor
from custody.keygen import test_key_from_seed
from custody.keys import ExtendedKey
from custody.network import Network
from custody.rpc import RpcClient
from ledger.store.db import make_engine
from ledger.store.vault_models import VAULT_TABLES
from regtest.node import RegtestNode, free_port
from tests.fixtures.governance import sign_change
from tests.fixtures.reserve import Result
from tests.fixtures.reserve import TestVault as Vault
from tests.integration.test_watch_only import wait_for_wallet

R = Network.REGTEST


Run = Callable[..., Result]


@pytest.fixture
def run(
    node: RegtestNode,
    db_url: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> Run:
    from ledger.cli.main import main

    monkeypatch.setenv("RESERVE_DB", db_url)  # may carry a password: never on argv
    for var in ("RESERVE_RPC_USER", "RESERVE_RPC_PASSWORD", "RESERVE_RPC_URL", "RESERVE_RPC_COOKIE"):
        monkeypatch.delenv(var, raising=False)

    def invoke(*args: str, rpc_url: str | None = None) -> Result:
        capsys.readouterr()
        code = main(
            [
                "--signing-key",
                str(tmp_path / "signing.key"),
                "--rpc-url",
                rpc_url or node.rpc_url,
                "--rpc-cookie",
                str(node.cookie_path),
                *args,
            ]
        )
        out, err = capsys.readouterr()
        return Result(code, out, err)

    assert invoke("init").code == 0
    return invoke


@pytest.fixture
def db(db_url: str) -> Iterator[Engine]:
    engine = make_engine(db_url)
    yield engine
    engine.dispose()


def row_counts(engine: Engine) -> dict[str, int]:
    """Rows in every table of the schema (not only the vault tables)."""
    tables = [t for t in inspect(engine).get_table_names() if t != "alembic_version"]
    with engine.connect() as c:
        return {t: int(c.execute(text(f"SELECT count(*) FROM {t}")).scalar_one()) for t in tables}


def _keys(n: int = 3, network: Network = R) -> list[ExtendedKey]:
    return [test_key_from_seed(os.urandom(32), network) for _ in range(n)]


def _name(prefix: str) -> str:
    # The node outlives each test's database: unique names keep vault wallets apart.
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def _key_args(keys: list[ExtendedKey], holders: tuple[str, ...] = ("alice", "bob", "carol")) -> list[str]:
    args: list[str] = []
    for holder, key in zip(holders, keys, strict=True):
        args += ["--key", f"{holder}={key}"]
    return args


def test_define_inspect_and_retire_a_vault(
    run: Run, rpc: RpcClient, db: Engine, node: RegtestNode, tmp_path: Path
) -> None:
    seeds = [os.urandom(32) for _ in range(3)]
    keys, name = [test_key_from_seed(s, R) for s in seeds], _name("cold")
    expected = MultisigDescriptor.from_keys(2, keys)
    r = run("vault", "add", name, "--threshold", "2", *_key_args(keys), "--birthday", "5", "--json")
    assert r.code == 0, r.err
    added = r.json()
    assert added["descriptor"] == str(expected)
    assert (added["account"], added["network"], added["birthday_height"]) == (name, "regtest", 5)
    assert [k["holder"] for k in added["keys"]] == ["alice", "bob", "carol"]
    assert added["wallet"] == f"reserve-vault-{name}"
    with db.connect() as c:
        assert (
            c.execute(text("SELECT type FROM accounts WHERE name = :n"), {"n": name}).scalar_one() == "vault"
        )

    shown = run("vault", "show", name, "--json").json()
    assert shown["policy_findings"] == []
    assert shown["receive_descriptor"] == expected.receive()
    assert (
        rpc.call("getdescriptorinfo", shown["change_descriptor"])["checksum"]
        == split_checksum(expected.change())[1]
    )
    text_show = run("vault", "show", name)
    assert "policy    : ok" in text_show.out and "2-of-3" in text_show.out
    assert [v["name"] for v in run("vault", "list", "--json").json()] == [name]

    r = run("vault", "address", name, "--index", "10", "--count", "5")
    assert r.code == 0, r.err
    lines = [line.split("\t") for line in r.out.splitlines()]
    assert [int(i) for i, _ in lines] == list(range(10, 15))
    assert [a for _, a in lines] == rpc.call("deriveaddresses", expected.receive(), [10, 14])
    change = run("vault", "address", name, "--change", "--json").json()
    assert change == [{"index": 0, "branch": "change", "address": expected.address(0, True, R)}]

    assert run("vault", "export", name).out.splitlines() == [
        str(expected),
        expected.receive(),
        expected.change(),
    ]
    bsms = run("vault", "export", name, "--bsms").out.splitlines()
    assert bsms[0] == "BSMS 1.0" and bsms[2] == "/0/*,/1/*"
    assert bsms[3] == rpc.call("deriveaddresses", expected.receive(), [0, 0])[0]
    assert "/**" in bsms[1] and split_checksum(bsms[1], require=True)

    assert run("vault", "check").code == 0
    assert run("vault", "check", name, "--json").json() == {name: []}

    # retiring is a governed change: proposed, then retired when two of the holders approve
    r = run("vault", "retire", name, "--reason", "keys rotated", "--out", str(tmp_path), "--json")
    assert r.code == 0, r.err
    proposed = r.json()["proposed"]
    assert proposed["action"] == "vault-retire" and proposed["status"] == "pending"
    assert [v["name"] for v in run("vault", "list", "--json").json()] == [name]
    holders = ("alice", "bob", "carol")
    vault = Vault(
        name, dict(zip(holders, seeds, strict=True)), dict(zip(holders, keys, strict=True)), expected
    )
    files = sign_change(node, vault, Path(proposed["psbt_file"]), "alice", "bob")
    r = run("approve", "sign", str(proposed["change"]), *map(str, files))
    assert r.code == 0 and "applied at height" in r.out, r.err
    assert run("vault", "list", "--json").json() == []
    [retired] = run("vault", "list", "--all", "--json").json()
    assert (retired["retired"], retired["retired_reason"]) == (True, "keys rotated")
    r = run("vault", "retire", name, "--reason", "again")
    assert r.code == 2 and "already retired" in r.err

    # A key serves one vault, ever: a retired vault's keys never serve a new vault (the same
    # addresses, watched twice); an active vault's may not either.
    r = run("vault", "add", _name("cold"), "--threshold", "2", *_key_args(keys))
    assert r.code == 2 and f"was a key of retired vault '{name}'" in r.err
    successor, fresh = _name("cold"), _keys()
    assert run("vault", "add", successor, "--threshold", "2", *_key_args(fresh)).code == 0
    r = run("vault", "add", _name("third"), "--threshold", "2", *_key_args(fresh))
    assert r.code == 2 and f"already used by active vault '{successor}'" in r.err


def test_descriptor_and_file_forms(run: Run, tmp_path: Path) -> None:
    d1 = MultisigDescriptor.from_keys(2, _keys())
    n1 = _name("desc")
    r = run("vault", "add", n1, "--descriptor", str(d1), "--holder", "a", "--holder", "b", "--holder", "c")
    assert r.code == 0, r.err

    keys = _keys()
    by_keys = tmp_path / "by-keys.json"
    n2 = _name("file")
    by_keys.write_text(
        json.dumps(
            {
                "name": n2,
                "threshold": 2,
                "birthday": 1,
                "keys": [{"holder": h, "key": str(k)} for h, k in zip("xyz", keys, strict=True)],
            }
        )
    )
    r = run("vault", "add", "--file", str(by_keys), "--json")
    assert r.code == 0, r.err
    assert r.json()["descriptor"] == str(MultisigDescriptor.from_keys(2, keys))
    assert r.json()["birthday_height"] == 1

    d3, n3 = MultisigDescriptor.from_keys(3, _keys(4)), _name("file")
    by_desc = tmp_path / "by-desc.json"
    by_desc.write_text(json.dumps({"descriptor": str(d3), "holders": ["p", "q", "r", "s"]}))
    r = run("vault", "add", n3, "--file", str(by_desc), "--json")
    assert r.code == 0, r.err
    assert (r.json()["name"], r.json()["threshold"]) == (n3, 3)
    assert {v["name"] for v in run("vault", "list", "--json").json()} == {n1, n2, n3}


def test_watch_twice_then_extend_the_gap(run: Run, node: RegtestNode, rpc: RpcClient) -> None:
    keys, name = _keys(), _name("watched")
    vault = MultisigDescriptor.from_keys(2, keys)
    assert run("vault", "add", name, "--threshold", "2", *_key_args(keys)).code == 0
    first = run("vault", "watch", name, "--json")
    assert first.code == 0, first.err
    assert first.json()["status"] == "created"
    wallet = rpc.wallet(f"reserve-vault-{name}")
    listed = wallet.call("listdescriptors")["descriptors"]

    second = run("vault", "watch", name)
    assert second.code == 0 and "already watching" in second.out
    assert wallet.call("listdescriptors")["descriptors"] == listed  # no duplicate, no new timestamp

    txid = node.fund(vault.address(0, False, R), 5_000_000)
    wait_for_wallet(rpc, wallet, [txid])
    assert wallet.call("getbalances")["mine"]["trusted"] * 100_000_000 == 5_000_000

    # Use an address near the end of the range, then ask for a gap wider than bitcoind's keypool.
    txid = node.fund(vault.address(990, False, R), 1_000_000)
    wait_for_wallet(rpc, wallet, [txid])
    r = run("vault", "watch", name, "--gap", "1500", "--json")
    assert r.code == 0, r.err
    assert r.json()["status"] == "extended" and r.json()["rescanned"] is True
    receive = next(b for b in r.json()["branches"] if b["branch"] == "receive")
    assert receive["range_end"] >= 990 + 1500
    assert len(wallet.call("listdescriptors")["descriptors"]) == 2
    assert run("vault", "watch", name, "--gap", "1500", "--json").json()["status"] == "already watching"


def _mutate(key: ExtendedKey) -> str:
    body = key.xpub
    middle = len(body) // 2
    swapped = "A" if body[middle] != "A" else "B"
    return f"[{key.origin}]{body[:middle]}{swapped}{body[middle + 1 :]}"


def _bad_inputs() -> list[tuple[str, list[str], str]]:
    keys = _keys()
    good = MultisigDescriptor.from_keys(2, keys)
    body, checksum = str(good).split("#")
    wrong_checksum = body + "#" + ("q" * 8 if checksum != "q" * 8 else "p" * 8)
    mainnet = _keys(3, Network.MAINNET)
    others = _key_args(keys[1:], ("b", "c"))
    tprv = (  # BIP-32 test vector 1 master key, as a tprv
        "tprv8ZgxMBicQKsPd7Uf69XL1XwhmjHopUGep8GuEiJDZmbQz6o58Lninor"
        "QAfcKZWARbtRtfnLcJ5MQ2AtHcQJCCRUcMRvmDUjyEmNUWwx8UbK"
    )
    return [
        ("malformed xpub", ["--threshold", "2", "--key", f"a={_mutate(keys[0])}", *others],
         "not valid Base58Check"),
        ("truncated xpub", ["--threshold", "2", "--key", f"a={str(keys[0])[:-10]}", *others],
         "not valid Base58Check"),
        ("mainnet xpub on regtest", ["--threshold", "2", *_key_args(mainnet)],
         "is a mainnet xpub but the node is on regtest"),
        ("bad checksum", ["--descriptor", wrong_checksum, "--holder", "a", "--holder", "b", "--holder", "c"],
         "bad descriptor checksum"),
        ("no checksum", ["--descriptor", body, "--holder", "a", "--holder", "b", "--holder", "c"],
         "has no #checksum"),
        ("m > n", ["--threshold", "4", *_key_args(keys)], "sortedmulti(4, 3 keys) is impossible"),
        ("m = 1", ["--threshold", "1", *_key_args(keys)], "threshold 1 is below the policy minimum of 2"),
        ("duplicate key", ["--threshold", "2", *_key_args([keys[0], keys[0], keys[1]])], "appears 2 times"),
        ("holder reaches m alone", ["--threshold", "2", *_key_args(keys, ("a", "a", "b"))],
         "holder 'a' holds 2 of the 3 keys and alone reaches the threshold"),
        ("holders vs keys", ["--descriptor", str(good), "--holder", "a", "--holder", "b"],
         "2 --holder given for the descriptor's 3 keys"),
        ("private key", ["--threshold", "2", "--key", f"a={tprv}", *others], "PRIVATE"),
        ("no form", [], "exactly one of --key"),
        ("bad birthday", ["--threshold", "2", *_key_args(keys), "--birthday", "-3"], "-3"),
        ("huge birthday", ["--threshold", "2", *_key_args(keys), "--birthday", "9" * 30],
         "is not a whole number in 0..2,147,483,647"),
        ("5,000-digit birthday", ["--threshold", "2", *_key_args(keys), "--birthday", "9" * 5000],
         "is not a whole number"),
        ("birthday above the tip", ["--threshold", "2", *_key_args(keys), "--birthday", "2000000000"],
         "birthday height 2000000000 is not on the node's chain"),
        ("holder with ESC", ["--threshold", "2", *_key_args(keys, ("a\x1b[31m", "b", "c"))],
         "contains the control character U+001B"),
        ("holder with a bidi override", ["--threshold", "2", *_key_args(keys, ("a\u202eb", "b", "c"))],
         "contains the control character U+202E"),
        ("holder with a line break", ["--descriptor", str(good), "--holder", "a\nb", "--holder", "b",
                                      "--holder", "c"], "contains the control character U+000A"),
    ]  # fmt: skip


@pytest.mark.parametrize("case", range(len(_bad_inputs())), ids=[c[0] for c in _bad_inputs()])
def test_bad_vault_definitions_exit_2_and_store_nothing(run: Run, db: Engine, case: int) -> None:
    _label, args, message = _bad_inputs()[case]
    existing = _keys()
    assert run("vault", "add", _name("ok"), "--threshold", "2", *_key_args(existing)).code == 0
    before = row_counts(db)
    assert set(VAULT_TABLES) <= set(before)
    r = run("vault", "add", _name("bad"), *args)
    assert r.code == 2, r.out
    assert message in r.err, r.err
    assert "Traceback" not in r.err and len(r.err.strip().splitlines()) == 1, r.err
    assert "\x1b" not in r.err and "\u202e" not in r.err  # shown escaped, never raw
    assert row_counts(db) == before


def test_refusals_that_need_stored_state(run: Run, db: Engine, tmp_path: Path) -> None:
    keys, name = _keys(), _name("taken")
    assert run("vault", "add", name, "--threshold", "2", *_key_args(keys)).code == 0
    before = row_counts(db)

    r = run("vault", "add", name, "--threshold", "2", *_key_args(_keys()))
    assert r.code == 2 and f"vault '{name}' already exists" in r.err
    r = run("vault", "add", _name("reuse"), "--threshold", "2", *_key_args([keys[0], *_keys(2)]))
    assert r.code == 2 and f"already used by active vault '{name}'" in r.err
    bad_json = tmp_path / "bad.json"
    bad_json.write_text("{not json")
    r = run("vault", "add", "--file", str(bad_json))
    assert r.code == 2 and "is not valid JSON" in r.err
    for command in (
        ["show", "nope"],
        ["address", "nope"],
        ["watch", "nope"],
        ["export", "nope"],
        ["check", "nope"],
    ):
        r = run("vault", *command)
        assert r.code == 2 and "unknown vault 'nope'; `reserve vault list` shows the vaults" in r.err, r.err
    r = run("vault", "retire", name, "--reason", "  ")
    assert r.code == 2 and "needs a reason" in r.err
    assert row_counts(db) == before


def test_node_unreachable_during_add_stores_nothing(run: Run, db: Engine) -> None:
    before = row_counts(db)
    dead = f"http://127.0.0.1:{free_port()}"
    r = run("vault", "add", _name("offline"), "--threshold", "2", *_key_args(_keys()), rpc_url=dead)
    assert r.code == 2
    assert "cannot reach bitcoind" in r.err and "nothing was stored" in r.err
    assert row_counts(db) == before


def test_check_reports_violations_of_a_stricter_policy(run: Run, monkeypatch: pytest.MonkeyPatch) -> None:
    name = _name("lenient")
    assert run("vault", "add", name, "--threshold", "2", *_key_args(_keys())).code == 0
    monkeypatch.setenv("RESERVE_POLICY_MIN_THRESHOLD", "3")
    r = run("vault", "check")
    assert r.code == 1
    assert "threshold 2 is below the policy minimum of 3" in r.out
    assert "VIOLATED" in run("vault", "show", name).out


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--gap", "0"], "--gap 0 is out of range: give 1..10,000"),
        (["--gap", "9" * 30], "is not a whole number"),
        (["--birthday", "9" * 30], "is not a whole number"),
        (["--birthday", "2000000000"], "birthday height 2000000000 is not on the node's chain"),
    ],
)
def test_bad_watch_numbers_exit_2_and_create_nothing(
    run: Run, rpc: RpcClient, db: Engine, args: list[str], message: str
) -> None:
    name = _name("unwatched")
    assert run("vault", "add", name, "--threshold", "2", *_key_args(_keys())).code == 0
    before = row_counts(db)
    r = run("vault", "watch", name, *args)
    assert r.code == 2 and message in r.err, r.err
    assert len(r.err.strip().splitlines()) == 1 and "Traceback" not in r.err
    assert f"reserve-vault-{name}" not in {w["name"] for w in rpc.call("listwalletdir")["wallets"]}
    assert row_counts(db) == before


def test_retire_reason_with_control_characters_is_refused(run: Run, db: Engine) -> None:
    name = _name("reason")
    assert run("vault", "add", name, "--threshold", "2", *_key_args(_keys())).code == 0
    before = row_counts(db)
    r = run("vault", "retire", name, "--reason", "rotated\x1b[2J")
    assert r.code == 2 and "control character U+001B" in r.err and "\x1b" not in r.err
    assert row_counts(db) == before


def test_vault_list_columns(run: Run) -> None:
    name = _name("listed")
    assert run("vault", "add", name, "--threshold", "2", *_key_args(_keys()), "--birthday", "3").code == 0
    out = run("vault", "list").out
    header = next(line for line in out.splitlines() if "name" in line and "status" in line)
    assert re.findall(r"\w+", header) == [
        "name",
        "policy",
        "holders",
        "network",
        "birthday",
        "issued",
        "status",
    ]
    row = next(line for line in out.splitlines() if name in line)
    assert "2-of-3" in row and "regtest" in row and "active" in row
    [listed] = [v for v in run("vault", "list", "--json").json() if v["name"] == name]
    assert listed["addresses_issued"] == 0
