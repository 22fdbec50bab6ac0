"""``reserve demo``: the whole life of a reserve on a regtest node, as a readable transcript.

The demo plays every party itself: a miner, three key holders (ministry, central-bank, regulator)
who sign with private keys kept in their own bitcoind wallets (:mod:`regtest.signers`; the service
never sees them), an exchange that deposits and a buyer who is paid. The books are kept with the
real ``reserve`` commands, each printed before it runs, against a fresh SQLite database and
signing key in ``workdir``. It ends with an audit that is clean, then one that catches a deposit
nobody booked. :func:`run_demo` returns 0 only when every step behaved as expected.
"""

from __future__ import annotations

import io
import re
import secrets
import shlex
from collections.abc import Callable, Sequence
from contextlib import redirect_stderr, redirect_stdout, suppress
from pathlib import Path
from typing import Any

from custody.amount import btc_decimal, format_btc
from custody.chain import coinbase_txid
from custody.descriptor import MultisigDescriptor
from custody.errors import CustodyError, WalletAlreadyLoaded, WalletNotFound
from custody.keys import ExtendedKey
from custody.maturity import COINBASE_MATURITY
from custody.network import Network
from custody.rpc import RpcClient
from custody.wallet import vault_wallet_name, wallet_balances, watches_address
from ledger.errors import LedgerError
from ledger.files import write_text
from regtest.signers import DemoSigner

Say = Callable[[str], None]
Cli = Callable[[list[str]], int]  # the `reserve` entry point: argv in, exit code out

HOLDERS = ("ministry", "central-bank", "regulator")
THRESHOLD = 2
MINER_WALLET = "miner"
MINER_MIN_BALANCE = 10 * 100_000_000

DEPOSIT_1 = 250_000_000  # 2.5 BTC from exchange-a, booked by hand
DEPOSIT_2 = 100_000_000  # 1.0 BTC, left for `reserve sync` to find
TRANSFER = 150_000_000  # 1.5 BTC treasury -> cold
WITHDRAWAL = 40_000_000  # 0.4 BTC cold -> buyer
STRAY = 25_000_000  # 0.25 BTC sent to cold and never booked
MAX_PER_SPEND = "1"  # BTC: the cold vault's policy limit per spend
TOO_MUCH = "1.2"  # BTC: a spend the policy refuses (the vault holds 1.5)


class DemoFailed(Exception):
    """A demo step did not behave as expected; the message says what happened."""


def default_workdir(now: str) -> Path:
    """``./.reserve-demo/run-<UTC timestamp>/`` for a timestamp like ``20260101T120000Z``."""
    return Path(".reserve-demo") / f"run-{now}"


class Demo:
    """The state of one demo run: node, miner, signers, the books' files and the transcript."""

    def __init__(self, rpc: RpcClient, workdir: Path, say: Say, cli: Cli, node_args: Sequence[str]) -> None:
        self.rpc = rpc
        self.cli = cli
        self.workdir = workdir
        self.say = say
        self.db_path = workdir / "reserve.db"
        self.key_path = workdir / "reserve-signing.key"
        self.global_args = (
            "--db",
            str(self.db_path),
            "--signing-key",
            str(self.key_path),
            *node_args,
        )
        self.network = Network.REGTEST
        self.signers: dict[tuple[str, int], DemoSigner] = {}
        self.vaults: dict[str, MultisigDescriptor] = {}
        self.wallet_names: dict[str, str] = {}
        self.treasury = "treasury"
        self.cold = "cold"
        self.deposit_2 = ""
        self.buyer_address = ""
        self.last_output = ""  # stdout and stderr of the last `reserve` command

    # ---- plumbing ------------------------------------------------------------------------------
    def reserve(self, *args: str, expect: int = 0) -> str:
        """Run ``reserve ARGS`` like a user would, show its output, check its exit code."""
        self.say(f"$ reserve {shlex.join(args)}")
        out, err = io.StringIO(), io.StringIO()
        try:
            with redirect_stdout(out), redirect_stderr(err):
                code = self.cli([*self.global_args, *args])
        except Exception as e:  # a crash of the command is a failed step, said as such
            self._show(out, err)
            raise DemoFailed(f"`reserve {shlex.join(args)}` crashed: {type(e).__name__}: {e}") from e
        self._show(out, err)
        self.last_output = out.getvalue() + err.getvalue()
        if code != expect:
            raise DemoFailed(f"`reserve {shlex.join(args)}` exited with {code}, expected {expect}")
        return out.getvalue()

    def _show(self, out: io.StringIO, err: io.StringIO) -> None:
        for line in (out.getvalue() + err.getvalue()).rstrip("\n").splitlines():
            self.say(f"    {line}")

    def node(self, method: str, *params: object) -> Any:
        """A node call the reader should see (shown as ``bitcoin-cli`` would take it)."""
        shown = " ".join(str(p) for p in params)
        self.say(f"$ bitcoin-cli {method} {shown}".rstrip())
        return self.rpc.call(method, *params)

    def miner(self) -> RpcClient:
        if MINER_WALLET not in self.rpc.list_wallets():
            try:
                self.rpc.loadwallet(MINER_WALLET)
            except WalletNotFound:
                self.rpc.createwallet(MINER_WALLET, disable_private_keys=False, blank=False)
            except WalletAlreadyLoaded:
                pass
        return self.rpc.wallet(MINER_WALLET)

    def mine(self, blocks: int, address: str | None = None) -> list[str]:
        to = address or str(self.miner().call("getnewaddress"))
        hashes = self.node("generatetoaddress", blocks, to)
        return [str(h) for h in hashes]

    def pay(self, address: str, sat: int) -> str:
        """The miner (standing in for an outside party) pays ``sat`` to ``address``."""
        self.say(f"$ bitcoin-cli -rpcwallet={MINER_WALLET} sendtoaddress {address} {format_btc(sat)}")
        return str(self.miner().call("sendtoaddress", address, btc_decimal(sat)))

    def address(self, vault: str, index: int) -> str:
        """A receive address handed out the way an operator does (``reserve vault address``:
        watched and recorded in the log first), checked against the demo's own derivation."""
        out = self.reserve("vault", "address", vault, "--index", str(index))
        issued = out.strip().splitlines()[-1].split("\t")[-1]
        expected = self.vaults[vault].address(index, False, self.network)
        if issued != expected:
            raise DemoFailed(
                f"`reserve vault address {vault}` gave {issued}, the descriptor gives {expected}"
            )
        return issued

    def watching_wallet(self, vault: str) -> str:
        """The watch-only wallet ``reserve vault watch`` made for ``vault``, checked to see it."""
        name = vault_wallet_name(vault)
        address = self.vaults[vault].address(0, False, self.network)
        try:
            mine = watches_address(self.rpc.wallet(name), address)
        except WalletNotFound:
            mine = False
        if not mine:
            raise DemoFailed(
                f"wallet {name} does not watch vault {vault} (address {address}); "
                f"`reserve vault watch {vault}` should have made it"
            )
        return name

    def pick_vault_names(self) -> None:
        """``treasury`` and ``cold``, or names with a run suffix when an earlier run took them.

        A persistent node keeps the watch-only wallets of earlier runs; reusing one would mix that
        run's coins into this run's vault, so a later run picks fresh names.
        """
        taken = set(self.rpc.list_wallet_dir())
        if {vault_wallet_name("treasury"), vault_wallet_name("cold")} & taken:
            suffix = secrets.token_hex(3)
            self.treasury, self.cold = f"treasury-{suffix}", f"cold-{suffix}"
            self.say(
                "This node already has the wallets of an earlier demo run; this run's vaults are "
                f"named {self.treasury} and {self.cold} so their coins do not mix."
            )

    def signer(self, holder: str, account: int) -> DemoSigner:
        return self.signers[(holder, account)]

    # ---- steps ---------------------------------------------------------------------------------
    def step_node(self) -> None:
        chain = self.rpc.get_blockchain_info()
        if chain.chain != "regtest":
            raise DemoFailed(
                f"the node at {self.rpc.url} is on {chain.chain!r}; the demo mines blocks and "
                "spends coins, so it only runs on regtest: start one with `reserve regtest start`"
            )
        self.reserve("node", "status")
        miner = self.miner()
        balance = wallet_balances(miner).trusted
        while balance < MINER_MIN_BALANCE:
            blocks = 101 if self.rpc.get_block_count() < 101 else 10
            self.say(
                f"The miner wallet has {format_btc(balance)} BTC; mining {blocks} blocks so that coinbase "
                "rewards mature (they become spendable after 100 confirmations)."
            )
            self.mine(blocks)
            balance = wallet_balances(miner).trusted
        self.say(f"The miner wallet has {format_btc(balance)} BTC to play the outside world with.")
        self.pick_vault_names()

    def step_vaults(self) -> None:
        self.reserve("init")
        self.say(
            "Three institutions hold one key each. Each makes a random seed and derives its BIP-48 "
            "account key m/48h/1h/<account>h/2h; only the public half (tpub) is given to the "
            f"service. Account 0 keys make the {self.treasury} vault, account 1 keys the {self.cold} vault."
        )
        for holder in HOLDERS:
            seed = secrets.token_bytes(32)
            for account in (0, 1):
                signer = DemoSigner(holder, seed, network=self.network, account=account)
                self.signers[(holder, account)] = signer
                self.say(f"  {holder} account {account}: {signer.public_key}")
        for vault, account in ((self.treasury, 0), (self.cold, 1)):
            keys: list[ExtendedKey] = [self.signer(h, account).public_key for h in HOLDERS]
            self.vaults[vault] = MultisigDescriptor.from_keys(THRESHOLD, keys)
            key_args = [a for h in HOLDERS for a in ("--key", f"{h}={self.signer(h, account).public_key}")]
            self.reserve("vault", "add", vault, "--threshold", str(THRESHOLD), *key_args)
            self.reserve("vault", "watch", vault)
            self.wallet_names[vault] = self.watching_wallet(vault)
            for h in HOLDERS:
                self.signer(h, account).import_vault(self.rpc, THRESHOLD, keys)
        self.say(
            "Each key holder also loaded the vault descriptors with its private key into its own "
            "signing wallet on the node (demo only: in real life they live on signing devices)."
        )

    def step_mining(self) -> None:
        address = self.address(self.treasury, 0)
        self.say(f"A block is mined straight to the treasury ({address}): a mining reward.")
        block = self.mine(1, address)[0]
        coinbase = coinbase_txid(self.rpc, block)
        self.say(f"Its coinbase transaction is {coinbase}; it matures after 100 more blocks.")
        self.mine(COINBASE_MATURITY)
        self.reserve("record", "mining", "--vault", self.treasury, "--txid", coinbase)

    def step_deposits(self) -> None:
        self.say("exchange-a deposits 2.5 BTC into the treasury; someone else deposits 1.0 BTC.")
        first = self.pay(self.address(self.treasury, 1), DEPOSIT_1)
        self.deposit_2 = self.pay(self.address(self.treasury, 2), DEPOSIT_2)
        self.mine(1)
        self.reserve("account", "add", "exchange-a", "--type", "counterparty")
        self.reserve(
            "record", "deposit", "--vault", self.treasury, "--txid", first,
            "--from", "exchange-a", "--amount", format_btc(DEPOSIT_1),
        )  # fmt: skip
        self.say(f"The 1.0 BTC deposit {self.deposit_2} is not booked by hand: `reserve sync` will find it.")

    def spend(self, vault: str, pays: Sequence[str], memo: str, signers: Sequence[DemoSigner]) -> int:
        """A spend the way the reserve makes one: ``reserve spend create`` writes the PSBT file, the
        first holder signs it and the service refuses to broadcast on one signature, the second
        signs, ``reserve spend sign`` imports both, ``reserve spend broadcast`` sends it."""
        pay_args = [a for p in pays for a in ("--pay", p)]
        out = self.reserve(
            "spend", "create", "--vault", vault, *pay_args, "--memo", memo, "--out", str(self.workdir)
        )
        found = re.search(r"spend #(\d+) proposed", out)
        if found is None:
            raise DemoFailed(f"`reserve spend create` did not say which spend it proposed:\n{out}")
        number = found[1]
        psbt = self.workdir / f"spend-{number}.psbt"
        first, *others = signers
        self.say(f"{first.holder} signs {psbt.name} on their own signing device and sends the file back.")
        signed = [first.sign_file(self.rpc, psbt, self.workdir)]
        self.reserve("spend", "sign", number, str(signed[0]))
        self.say("One signature is short of the vault's 2-of-3: the policy gate refuses to broadcast.")
        self.reserve("spend", "broadcast", number, expect=1)
        for signer in others:
            self.say(f"{signer.holder} signs too.")
            signed.append(signer.sign_file(self.rpc, psbt, self.workdir))
        self.reserve("spend", "sign", number, *(str(f) for f in signed[1:]))
        self.reserve("spend", "show", number)
        self.reserve("spend", "broadcast", number)
        return int(number)

    def step_policy(self) -> None:
        buyer_address = str(self.miner().call("getnewaddress"))
        self.buyer_address = buyer_address
        self.say(
            f"Each vault has a spending policy. Limits that tighten apply at once: at most {MAX_PER_SPEND} "
            f"BTC may leave {self.cold} in one spend, fees are capped."
        )
        self.reserve("policy", "set", self.cold, "--max-per-spend", MAX_PER_SPEND, "--max-fee", "0.001")
        self.say(
            f"Paying anyone outside the reserve needs an allowlist entry. The buyer ({buyer_address}) is "
            "added; a new destination loosens the policy, so it is in force only after the policy's "
            "loosening delay (144 blocks by default), while the key holders can still object."
        )
        self.reserve("policy", "allow", "add", self.cold, "buyer", "--address", buyer_address)
        self.reserve("policy", "show", self.cold)
        self.mine(144)
        self.reserve("policy", "show", self.cold)

    def step_transfer(self) -> None:
        self.say(
            f"Move {format_btc(TRANSFER)} BTC from treasury to cold storage through the policy gate: "
            "the treasury's watch-only wallet builds the PSBT, and the destination is the cold "
            "vault's next receive address, derived by the service itself."
        )
        signers = [self.signer("ministry", 0), self.signer("central-bank", 0)]
        pays = [f"{self.cold}={format_btc(TRANSFER)}"]
        number = self.spend(self.treasury, pays, "to cold storage", signers)
        self.mine(1)
        self.say(
            "`reserve sync` books the confirmed spend as the transfer it is, linked to the spend, and "
            "the 1.0 BTC deposit nobody booked by hand."
        )
        out = self.reserve("sync")
        if self.deposit_2 not in out:
            raise DemoFailed(f"`reserve sync` did not book the second deposit {self.deposit_2}")
        if f"spend #{number} confirmed" not in out:
            raise DemoFailed(f"`reserve sync` did not settle spend #{number} as confirmed")

    def step_withdrawal(self) -> None:
        stranger = str(self.miner().call("getnewaddress"))
        self.say(f"A spend to an address on no allowlist ({stranger}) is refused; nothing is kept.")
        self.reserve(
            "spend", "create", "--vault", self.cold, "--pay", f"{stranger}=0.1", "--memo", "not allowed",
            "--out", str(self.workdir), expect=2,
        )  # fmt: skip
        self.say(f"So is one above the cold vault's limit of {MAX_PER_SPEND} BTC per spend.")
        self.reserve(
            "spend", "create", "--vault", self.cold, "--pay", f"buyer={TOO_MUCH}", "--memo", "too much",
            "--out", str(self.workdir), expect=2,
        )  # fmt: skip
        if "max-per-spend" not in self.last_output:
            raise DemoFailed(f"the spend of {TOO_MUCH} BTC was refused, but not for the max-per-spend limit")
        self.say(
            f"Pay {format_btc(WITHDRAWAL)} BTC from cold storage to the buyer; central-bank and "
            "regulator sign."
        )
        signers = [self.signer("central-bank", 1), self.signer("regulator", 1)]
        self.spend(self.cold, [f"buyer={format_btc(WITHDRAWAL)}"], "sale to the buyer", signers)
        self.mine(1)
        self.reserve("sync")

    def step_reconcile(self) -> None:
        self.say("Every movement is booked: sync finds nothing new.")
        self.reserve("sync")
        self.reserve("balance")
        self.say("Sign a checkpoint of the journal (its Merkle root), then verify the whole ledger.")
        self.reserve("ledger", "checkpoint")
        self.reserve("ledger", "verify")
        self.say("Audit: the books must match the chain exactly.")
        self.reserve("audit")

    def step_unrecorded(self) -> None:
        address = self.address(self.cold, 5)
        self.say(
            f"Now someone sends {format_btc(STRAY)} BTC to the cold vault ({address}) and nobody "
            "books it. The audit must catch it."
        )
        txid = self.pay(address, STRAY)
        self.mine(1)
        out = self.reserve("audit", expect=1)
        if "[unrecorded]" not in out or txid not in out:
            raise DemoFailed(f"the audit did not report transaction {txid} as unrecorded")
        self.say(
            "As expected: the audit exits with 1 and an `unrecorded` finding for that transaction. "
            f"Book it with `reserve sync` (or `reserve record deposit --vault {self.cold} --txid {txid}`)."
        )

    def step_attest(self) -> None:
        self.say("Book the stray deposit, then prove the reserve to outsiders at the tip's block.")
        self.reserve("sync")
        pem = self.workdir / "ledger-pubkey.pem"
        write_text(pem, self.reserve("ledger", "pubkey"), encoding="ascii")
        self.say(f"The reserve publishes its ledger key ({pem.name}) for auditors.")
        drafts = self.workdir / "attestation"
        out = self.reserve("attest", "prepare", "--out", str(drafts))
        requests = re.findall(r"sign: (\S+)\s+\(vault (\S+), address", out)
        if not requests:
            raise DemoFailed(f"`reserve attest prepare` named no PSBT to sign:\n{out}")
        self.say(
            "Proof of control: for every funded address of each vault, a BIP-322 proof of funds over a "
            "message naming the block and the ledger root. Two holders of each vault sign the PSBT "
            "files as they sign spends; the virtual transaction can never be broadcast."
        )
        signed_dir = drafts / "signed"
        signed_dir.mkdir()
        signed: list[str] = []
        for file, vault in requests:
            account = 0 if vault == self.treasury else 1
            for holder in ("ministry", "regulator"):
                signed.append(str(self.signer(holder, account).sign_file(self.rpc, Path(file), signed_dir)))
        document = self.workdir / "attestation.json"
        self.reserve(
            "attest",
            "finish",
            str(drafts),
            *[a for f in signed for a in ("--signed", f)],
            "--out",
            str(document),
        )
        self.say(
            "An auditor checks it offline (no node) with the published key, then against their own node."
        )
        self.reserve("attest", "verify", str(document), "--pubkey", str(pem))
        self.reserve("attest", "verify", str(document), "--pubkey", str(pem), "--node")
        tip = self.rpc.get_block_count()
        self.say("The accountant's statement of the whole history, and the public transparency site.")
        self.reserve("report", "statement", "--from", "0", "--to", str(tip))
        site = self.workdir / "site"
        self.reserve("report", "site", str(site))
        if not (site / "index.html").is_file():
            raise DemoFailed(f"`reserve report site` wrote no {site / 'index.html'}")

    def close(self) -> None:
        for signer in self.signers.values():
            with suppress(CustodyError):
                signer.unload(self.rpc)


STEPS: tuple[tuple[str, Callable[[Demo], None]], ...] = (
    ("the node and a miner", Demo.step_node),
    ("the books, three key holders and two 2-of-3 vaults", Demo.step_vaults),
    ("a mining reward into the treasury", Demo.step_mining),
    ("two deposits into the treasury", Demo.step_deposits),
    ("spending policy: limits and an allowlist", Demo.step_policy),
    ("a transfer from treasury to cold storage, signed by two holders", Demo.step_transfer),
    ("two spends the policy refuses, then a withdrawal to the buyer", Demo.step_withdrawal),
    ("balances, checkpoint, verification and a clean audit", Demo.step_reconcile),
    ("an unrecorded deposit, caught by the audit", Demo.step_unrecorded),
    ("an attestation with proofs of control, its verification, a statement and the site", Demo.step_attest),
)


def run_demo(rpc: RpcClient, workdir: Path, say: Say, *, cli: Cli, node_args: Sequence[str] = ()) -> int:
    """Run the demo in ``workdir`` (created; must not hold a previous run); 0 when all went as expected.

    ``cli`` runs one ``reserve`` command in this process (:func:`ledger.cli.main.main`, handed over
    by the ``demo`` command so that this module never imports the CLI that loads it).

    ``node_args`` are the global ``reserve`` options that reach the node (``--rpc-url``,
    ``--rpc-cookie``) when they are not in the environment.
    """
    if (workdir / "reserve.db").exists():
        say(f"error: {workdir} already holds a demo run; give a new --workdir")
        return 1
    workdir.mkdir(parents=True, exist_ok=True)
    demo = Demo(rpc, workdir, say, cli, node_args)
    say(f"reserve demo in {workdir}")
    say(f"Every `reserve` command below runs with --db {demo.db_path} --signing-key {demo.key_path}.")
    try:
        for number, (title, step) in enumerate(STEPS, start=1):
            say("")
            say(f"== Step {number}/{len(STEPS)}: {title} ==")
            try:
                step(demo)
            except (DemoFailed, CustodyError, LedgerError) as e:
                say(f"DEMO FAILED at step {number} ({title}): {e}")
                return 1
    finally:
        demo.close()
    say("")
    say("== Summary ==")
    say("All steps behaved as expected: every spend went through the policy gate, every movement was")
    say("booked, the ledger verified, the audit was clean and then caught the deposit nobody booked;")
    say("the reserve was attested at a block with the holders' proofs of control, and verified.")
    say(f"Open the transparency site: {demo.workdir / 'site' / 'index.html'}")
    say(f"The books are in {demo.db_path}; look around with, for example:")
    say(f"  reserve --db {demo.db_path} --signing-key {demo.key_path} ledger log")
    return 0
