"""Watch-only descriptor wallets for vaults, and one-pass UTXO scans over many vaults.

Each vault is watched by its own bitcoind descriptor wallet (``reserve-vault-<name>``) created
without private keys: it holds the vault's receive and change descriptors (xpubs only), and
bitcoind follows every block and mempool transaction paying to them.

What bitcoind (v28 to v31) does, and what :func:`ensure_watch_wallet` relies on:

- Importing an active ranged descriptor tops its range up to ``next_index + keypool - 1``
  (``-keypool``, default 1000), and when a block or mempool transaction pays an address of the
  range, ``next_index`` moves past it and the range grows again: a built-in gap limit.
- Importing a descriptor the wallet already has succeeds only if the new range includes the
  current one ("new range must include current range"); it then replaces the stored timestamp
  with the one given. With ``timestamp: "now"`` nothing is rescanned; with an older timestamp the
  wallet rescans from that time.
- ``getaddressinfo`` reports vault addresses ``ismine: true``, ``solvable: true`` and
  ``iswatchonly: false`` (descriptor wallets have no separate watch-only class of scripts).
- A coinbase output counts as ``immature`` in ``getbalances`` until it has 101 confirmations
  (the wallet's ``GetBlocksToMaturity``; the rule is :mod:`custody.maturity`).

- ``keypoolrefill N`` tops every active ranged descriptor of a wallet up to
  ``next_index + N - 1`` (also in a wallet without private keys, as xpubs derive unhardened
  children), keeping its stored timestamp and rescanning nothing: :func:`cover_range` uses it to
  watch addresses about to be handed out.

So running :func:`ensure_watch_wallet` again compares ``listdescriptors`` with what is wanted and
imports nothing when the wallet already watches the vault far enough (no duplicate, no rescan).
When the range must grow beyond what bitcoind topped up (a gap wider than the keypool), the
descriptor is re-imported with the larger range and its *original* timestamp: the newly watched
addresses may have been paid at any time since the vault's birth, so that rescan is the smallest
one that cannot miss coins, and it keeps the stored birth time.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from custody.amount import sat_from_rpc
from custody.descriptor import MultisigDescriptor
from custody.errors import CustodyError, InvalidInput, RpcError, ScanInProgress, rpc_error
from custody.maturity import is_immature
from custody.rpc import ChainInfo, RpcClient

WALLET_PREFIX = "reserve-vault-"
DEFAULT_GAP = 1000  # bitcoind's default keypool: the range it keeps ahead of the last used index
MAX_INDEX = 2**31 - 1  # the last non-hardened BIP-32 index
PROGRESS_POLL_S = 0.5

SCAN_IN_PROGRESS = (
    "another scantxoutset is running on this node (only one at a time); try again when it ends, "
    "or abort it with `bitcoin-cli scantxoutset abort`"
)

ProgressCallback = Callable[[float], None]
Branch = Literal["receive", "change"]


def vault_wallet_name(vault_name: str) -> str:
    """The name of the watch-only wallet of vault ``vault_name``: ``reserve-vault-<name>``."""
    if not vault_name or vault_name != vault_name.strip() or "/" in vault_name:
        raise InvalidInput(
            f"vault name {vault_name!r} cannot name a wallet: it must be non-empty, without "
            "surrounding spaces or '/'"
        )
    return WALLET_PREFIX + vault_name


# --- values ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class WatchedBranch:
    """One imported branch of a vault as the wallet has it: range ``[0, range_end]``."""

    branch: Branch
    descriptor: str
    range_end: int
    next_index: int
    timestamp: int


@dataclass(frozen=True, slots=True)
class WatchResult:
    """What :func:`ensure_watch_wallet` found and did."""

    wallet_name: str
    created: bool
    loaded: bool
    imported: tuple[Branch, ...]
    extended: tuple[Branch, ...]
    rescanned: bool
    branches: tuple[WatchedBranch, ...]

    @property
    def status(self) -> str:
        """``"created"``, ``"imported"``, ``"extended"`` or ``"already watching"``."""
        if self.created:
            return "created"
        if self.imported:
            return "imported"
        if self.extended:
            return "extended"
        return "already watching"

    def branch(self, branch: Branch) -> WatchedBranch:
        """The receive or change branch as the wallet now has it."""
        for b in self.branches:
            if b.branch == branch:
                return b
        raise KeyError(branch)


@dataclass(frozen=True, slots=True)
class Balances:
    """``getbalances`` of a watch-only wallet, in satoshis."""

    trusted: int
    untrusted_pending: int
    immature: int

    @property
    def total(self) -> int:
        return self.trusted + self.untrusted_pending + self.immature


@dataclass(frozen=True, slots=True)
class Utxo:
    """One spendable (mature) unspent output the wallet watches, from ``listunspent`` (or, for a
    locked one, from its wallet transaction: :func:`custody.wallet_view.read_wallet_view`)."""

    txid: str
    vout: int
    address: str
    script_pubkey: bytes
    amount: int
    confirmations: int
    solvable: bool
    descriptor: str
    locked: bool = False
    """locked in the wallet (``lockunspent``, e.g. by an open spend): unspent all the same, but
    left out of ``listunspent``"""

    def __post_init__(self) -> None:
        if self.amount < 0 or self.vout < 0 or len(self.txid) != 64:
            raise InvalidInput(f"bad unspent output {self.txid}:{self.vout} of {self.amount} sat")


@dataclass(frozen=True, slots=True)
class ScannedOutput:
    """One unspent output found by ``scantxoutset``."""

    txid: str
    vout: int
    script_pubkey: bytes
    amount: int
    height: int
    coinbase: bool
    confirmations: int

    @property
    def immature(self) -> bool:
        """A coinbase output the wallet does not yet count as spendable (< 101 confirmations)."""
        return is_immature(coinbase=self.coinbase, confirmations=self.confirmations)


@dataclass(frozen=True, slots=True)
class ScanTotals:
    """Sums over scanned outputs: ``mature`` (spendable) and ``immature`` coinbase, in sats."""

    mature: int
    immature: int
    count: int

    @property
    def total(self) -> int:
        return self.mature + self.immature


@dataclass(frozen=True, slots=True)
class ScanResult:
    """The outputs of one ``scantxoutset`` pass at chain height ``height`` (block ``best_block``)."""

    height: int
    best_block: str
    outputs: tuple[ScannedOutput, ...]

    def outputs_for(self, scripts: Collection[bytes]) -> tuple[ScannedOutput, ...]:
        """The outputs paying one of ``scripts`` (e.g. one vault's scripts)."""
        wanted = scripts if isinstance(scripts, set | frozenset) else frozenset(scripts)
        return tuple(o for o in self.outputs if o.script_pubkey in wanted)

    def totals(self, scripts: Collection[bytes] | None = None) -> ScanTotals:
        """Totals over all outputs, or over those paying ``scripts``."""
        outputs = self.outputs if scripts is None else self.outputs_for(scripts)
        immature = sum(o.amount for o in outputs if o.immature)
        return ScanTotals(sum(o.amount for o in outputs) - immature, immature, len(outputs))


# --- pure decisions -------------------------------------------------------------------------------


def _same_descriptor(a: str, b: str) -> bool:
    """Whether two single-branch descriptor texts describe the same scripts (parsed, not textual)."""
    try:
        pa, pb = MultisigDescriptor.parse(a), MultisigDescriptor.parse(b)
    except InvalidInput:
        return False
    return (pa.threshold, pa.keys, pa.branches) == (pb.threshold, pb.keys, pb.branches)


def wanted_range_end(next_index: int, gap: int, cover: int = 0) -> int:
    """The last index that must be watched: ``gap`` addresses past the highest used one and past
    the highest one handed out (``cover`` is that index + 1), within the BIP-32 index range.

    bitcoind keeps a range's end as a 32-bit signed *exclusive* bound, so the last index it can
    watch is ``2^31 - 2``."""
    return min(max(next_index, cover) + gap - 1, MAX_INDEX - 1)


@dataclass(frozen=True, slots=True)
class PlannedImport:
    """One ``importdescriptors`` request to make: a missing branch or a range to grow.

    ``stored_timestamp`` is the branch's timestamp in the wallet when the range grows (re-used so
    the rescan starts at the vault's birth), ``None`` for a branch the wallet lacks;
    ``next_index`` is the branch's next unused index in the wallet (0 for a missing branch).
    """

    branch: Branch
    descriptor: str
    range_end: int
    stored_timestamp: int | None
    next_index: int = 0


def plan_imports(
    descriptor: MultisigDescriptor, listed: Sequence[Mapping[str, Any]], gap: int, cover: int = 0
) -> tuple[tuple[PlannedImport, ...], tuple[WatchedBranch, ...]]:
    """Compare ``listdescriptors`` with the vault: what to import, and what is there already.

    Each branch must watch ``gap`` addresses past its highest used index and past ``cover - 1``,
    the highest index handed out (:func:`wanted_range_end`).

    Raises :class:`InvalidInput` when the wallet watches anything but this vault, or has one of
    its branches in another role (inactive, or receive and change swapped).
    """
    wanted: tuple[tuple[Branch, str], ...] = (
        ("receive", descriptor.receive()),
        ("change", descriptor.change()),
    )
    todo: list[PlannedImport] = []
    present: list[WatchedBranch] = []
    matched: set[int] = set()
    for branch, text in wanted:
        position = next(
            (i for i, item in enumerate(listed) if _same_descriptor(str(item["desc"]), text)), None
        )
        if position is None:
            todo.append(PlannedImport(branch, text, wanted_range_end(0, gap, cover), None))
            continue
        matched.add(position)
        found = listed[position]
        if bool(found.get("internal")) != (branch == "change") or not found.get("active"):
            role = "internal" if branch == "change" else "external"
            raise InvalidInput(
                f"the wallet has the vault's {branch} descriptor, but not as an active {role} "
                "descriptor (it was set up by other means); unload that wallet and let "
                "`reserve vault watch` create its own"
            )
        stored = WatchedBranch(
            branch=branch,
            descriptor=text,
            range_end=int(found["range"][1]),
            next_index=int(found.get("next_index", found.get("next", 0))),
            timestamp=int(found["timestamp"]),
        )
        need = wanted_range_end(stored.next_index, gap, cover)
        if stored.range_end < need:
            todo.append(PlannedImport(branch, text, need, stored.timestamp, stored.next_index))
        else:
            present.append(stored)
    others = [str(item["desc"]) for i, item in enumerate(listed) if i not in matched]
    if others:
        raise InvalidInput(
            f"the wallet also watches {len(others)} descriptor(s) that are not this vault's "
            f"(e.g. {others[0][:48]}...); one wallet watches one vault: use another wallet name"
        )
    return tuple(todo), tuple(present)


# --- adapters: RPC --------------------------------------------------------------------------------


def _open_wallet(rpc: RpcClient, wallet_name: str) -> tuple[bool, bool]:
    """Load or create the watch-only wallet; returns ``(created, loaded)``."""
    if wallet_name in rpc.list_wallets():
        return False, False
    if wallet_name in rpc.list_wallet_dir():
        rpc.loadwallet(wallet_name, load_on_startup=True)
        return False, True
    rpc.createwallet(
        wallet_name, disable_private_keys=True, blank=True, descriptors=True, load_on_startup=True
    )
    return True, False


def _check_watch_only(wallet: RpcClient, wallet_name: str) -> None:
    info = wallet.call("getwalletinfo")
    if info.get("private_keys_enabled") or not info.get("descriptors"):
        raise InvalidInput(
            f"wallet {wallet_name!r} exists but is not a watch-only descriptor wallet (private "
            "keys enabled or legacy); this service never holds keys: rename that wallet"
        )


def _import(
    rpc: RpcClient,
    wallet_name: str,
    requests: list[dict[str, Any]],
    on_progress: ProgressCallback | None,
) -> None:
    """``importdescriptors``; while a rescan runs, report ``getwalletinfo`` scanning progress.

    The import runs on a worker thread with its own connection (and a timeout long enough for a
    chain rescan); this thread polls ``getwalletinfo`` and calls ``on_progress(fraction)``.
    """
    rescans = any(r["timestamp"] != "now" for r in requests)
    if not rescans or on_progress is None:
        _import_now(rpc.wallet(wallet_name).long_call_client(), requests)
        return
    outcome: list[BaseException] = []
    done = threading.Event()

    def work() -> None:
        try:
            _import_now(rpc.wallet(wallet_name).long_call_client(), requests)
        except BaseException as exc:  # handed to the caller's thread below
            outcome.append(exc)
        finally:
            done.set()

    worker = threading.Thread(target=work, name=f"import-{wallet_name}", daemon=True)
    on_progress(0.0)
    worker.start()
    poller = rpc.wallet(wallet_name)
    try:
        while not done.wait(PROGRESS_POLL_S):
            scanning = poller.call("getwalletinfo").get("scanning")
            if isinstance(scanning, dict):
                on_progress(float(scanning.get("progress", 0)))
    finally:
        poller.close()
        worker.join()
    if outcome:
        raise outcome[0]
    on_progress(1.0)


def _import_now(wallet: RpcClient, requests: list[dict[str, Any]]) -> None:
    try:
        results = wallet.importdescriptors(requests)
    finally:
        wallet.close()
    for request, result in zip(requests, results, strict=True):
        if not result.get("success"):
            err = result.get("error") or {}
            raise rpc_error(
                int(err.get("code", 0)),
                f"{err.get('message', 'import failed')} (descriptor {request['desc'][:48]}...)",
                "importdescriptors",
            )


def check_birthday(height: int, chain: ChainInfo) -> None:
    """A vault's birthday must be a block of the node's chain whose data the node still has: its
    watch-only wallet rescans from there for the vault's deposits (a pruned node no longer has the
    blocks below its prune height)."""
    if not 0 <= height <= chain.blocks:
        raise InvalidInput(
            f"birthday height {height} is not on the node's chain (0..{chain.blocks}); give the "
            "height of a block at or before the vault's first deposit"
        )
    if chain.prune_height is not None and height < chain.prune_height:
        raise InvalidInput(
            f"birthday height {height} is below the node's prune height {chain.prune_height}: the "
            f"node is pruned and no longer has blocks {height}..{chain.prune_height - 1}, so the "
            f"vault's wallet cannot rescan them for deposits; give a birthday of {chain.prune_height} "
            "or later if nothing was paid to the vault before that block, or point --rpc-url at an "
            "unpruned node"
        )


def birthday_timestamp(rpc: RpcClient, height: int) -> int:
    """The time of block ``height``: where a rescan for a vault born at that height starts
    (:func:`check_birthday` first)."""
    check_birthday(height, rpc.get_blockchain_info())
    return int(rpc.call("getblockheader", rpc.get_block_hash(height))["time"])


def ensure_watch_wallet(
    rpc: RpcClient,
    wallet_name: str,
    descriptor: MultisigDescriptor,
    birthday_height: int | None = None,
    gap: int = DEFAULT_GAP,
    on_progress: ProgressCallback | None = None,
    cover: int = 0,
) -> WatchResult:
    """Make ``wallet_name`` a watch-only wallet of ``descriptor``'s receive and change branches.

    Creates or loads the wallet, imports what ``listdescriptors`` lacks (active, change as
    ``internal``, range ``[0, gap-1]``, timestamp of block ``birthday_height`` or ``"now"``), and
    grows a branch whose range ends less than ``gap`` addresses past its highest used index or
    past ``cover - 1`` (the highest address index handed out, so every issued address is watched).
    Idempotent: a second run imports nothing and rescans nothing. ``on_progress(fraction)`` is
    called (on this thread) while a rescan runs.
    """
    _check_cover(descriptor, gap, cover)
    timestamp: int | Literal["now"] = (
        "now" if birthday_height is None else birthday_timestamp(rpc, birthday_height)
    )
    created, loaded = _open_wallet(rpc, wallet_name)
    wallet = rpc.wallet(wallet_name)
    imported: list[Branch] = []
    extended: list[Branch] = []
    rescanned = False
    try:
        _check_watch_only(wallet, wallet_name)
        todo, present = plan_imports(descriptor, _listed(wallet), gap, cover)
        # A rescan can reveal addresses used further out, which moves the wanted range again:
        # repeat until the wallet's ranges cover `gap` past the highest used index.
        while todo:
            requests = [
                {
                    "desc": item.descriptor,
                    "active": True,
                    "internal": item.branch == "change",
                    "range": [0, item.range_end],
                    "timestamp": timestamp if item.stored_timestamp is None else item.stored_timestamp,
                }
                for item in todo
            ]
            _import(rpc, wallet_name, requests, on_progress)
            imported += [i.branch for i in todo if i.stored_timestamp is None]
            extended += [i.branch for i in todo if i.stored_timestamp is not None]
            rescanned = rescanned or any(r["timestamp"] != "now" for r in requests)
            left, present = plan_imports(descriptor, _listed(wallet), gap, cover)
            if any(i.stored_timestamp is None for i in left) or any(
                after.range_end <= before.range_end
                for after in left
                for before in todo
                if after.branch == before.branch and before.stored_timestamp is not None
            ):
                raise CustodyError(
                    f"wallet {wallet_name!r} did not take the import of "
                    f"{', '.join(i.branch for i in left)}; see bitcoind's debug.log"
                )
            todo = left
    finally:
        wallet.close()
    return WatchResult(
        wallet_name=wallet_name,
        created=created,
        loaded=loaded,
        imported=tuple(dict.fromkeys(imported)),
        extended=tuple(b for b in dict.fromkeys(extended) if b not in imported),
        rescanned=rescanned,
        branches=tuple(sorted(present, key=lambda b: b.branch != "receive")),
    )


def _listed(wallet: RpcClient) -> list[dict[str, Any]]:
    """The wallet's descriptors (``listdescriptors``)."""
    listed: list[dict[str, Any]] = wallet.call("listdescriptors")["descriptors"]
    return listed


def watched_range_end(rpc: RpcClient, wallet_name: str) -> int | None:
    """One past the highest index any ranged descriptor of the wallet watches (``None`` when it
    has none). Raises :class:`~custody.errors.WalletNotFound` when the wallet is not loaded."""
    wallet = rpc.wallet(wallet_name)
    try:
        return range_end_of(_listed(wallet))
    finally:
        wallet.close()


def range_end_of(listed: Sequence[Mapping[str, Any]]) -> int | None:
    """One past the highest ranged index in ``listdescriptors`` results (``None``: none ranged)."""
    ends = [int(d["range"][1]) + 1 for d in listed if "range" in d]
    return max(ends) if ends else None


def _check_cover(descriptor: MultisigDescriptor, gap: int, cover: int) -> None:
    if gap < 1:
        raise InvalidInput(f"gap limit {gap} must be at least 1")
    if not 0 <= cover <= MAX_INDEX + 1:
        raise InvalidInput(f"cannot watch up to index {cover - 1}: indexes run 0..{MAX_INDEX}")
    if not descriptor.is_multipath:
        raise InvalidInput(
            "a vault is watched through its receive and change branches; give the /<0;1>/* form"
        )


def cover_range(
    rpc: RpcClient, wallet_name: str, descriptor: MultisigDescriptor, cover: int, gap: int = DEFAULT_GAP
) -> tuple[WatchedBranch, ...]:
    """Make the vault's existing wallet watch indexes ``0..cover+gap-1`` of both branches.

    For addresses about to be handed out: the range is topped up with ``keypoolrefill``, which
    derives the new scripts without a rescan and keeps each branch's stored timestamp (the
    vault's birth), so a later :func:`ensure_watch_wallet` still rescans from there. Addresses
    nobody was given cannot have been paid, so there is nothing to rescan for.

    Returns the branches as the wallet now has them, or ``()`` when the vault is not watched yet
    (no such wallet, or the wallet lacks a branch): :func:`ensure_watch_wallet` with the same
    ``cover`` then imports that far. A wallet on disk but not loaded is loaded.
    """
    _check_cover(descriptor, gap, cover)
    if wallet_name not in rpc.list_wallets():
        if wallet_name not in rpc.list_wallet_dir():
            return ()
        rpc.loadwallet(wallet_name, load_on_startup=True)
    wallet = rpc.wallet(wallet_name)
    try:
        _check_watch_only(wallet, wallet_name)
        todo, present = plan_imports(descriptor, _listed(wallet), gap, cover)
        if any(item.stored_timestamp is None for item in todo):
            return ()
        if todo:
            # keypoolrefill N tops every active branch up to next_index + N - 1 (no rescan).
            refill = wallet.long_call_client()  # ~0.15 ms per script: may be long
            try:
                refill.call("keypoolrefill", max(i.range_end + 1 - i.next_index for i in todo))
            finally:
                refill.close()
            left, present = plan_imports(descriptor, _listed(wallet), gap, cover)
            if left:
                raise CustodyError(
                    f"wallet {wallet_name!r} did not grow its range to index {left[0].range_end} "
                    f"({left[0].branch}); see bitcoind's debug.log"
                )
    finally:
        wallet.close()
    return tuple(sorted(present, key=lambda b: b.branch != "receive"))


def watches_address(rpc_wallet: RpcClient, address: str) -> bool:
    """Whether the wallet counts ``address`` as its own (``getaddressinfo``'s ``ismine``; a
    watch-only wallet's descriptors make it so)."""
    return bool(rpc_wallet.call("getaddressinfo", address).get("ismine"))


def wallet_balances(rpc_wallet: RpcClient) -> Balances:
    """``getbalances`` of a watch-only descriptor wallet (its coins are under ``mine``)."""
    mine = rpc_wallet.call("getbalances")["mine"]
    return Balances(
        trusted=sat_from_rpc(mine["trusted"]),
        untrusted_pending=sat_from_rpc(mine["untrusted_pending"]),
        immature=sat_from_rpc(mine["immature"]),
    )


def list_unspent(rpc_wallet: RpcClient, min_conf: int = 0) -> tuple[Utxo, ...]:
    """The wallet's unspent outputs with at least ``min_conf`` confirmations (``listunspent``).

    Immature coinbase outputs are not listed by bitcoind; :func:`wallet_balances` counts them.
    """
    rows = rpc_wallet.call("listunspent", min_conf)
    return tuple(
        sorted(
            (
                Utxo(
                    txid=r["txid"],
                    vout=int(r["vout"]),
                    address=r.get("address", ""),
                    script_pubkey=bytes.fromhex(r["scriptPubKey"]),
                    amount=sat_from_rpc(r["amount"]),
                    confirmations=int(r["confirmations"]),
                    solvable=bool(r.get("solvable")),
                    descriptor=r.get("desc", ""),
                )
                for r in rows
            ),
            key=lambda u: (u.txid, u.vout),
        )
    )


def vault_scan_objects(descriptor: MultisigDescriptor, range_end: int) -> list[tuple[str, int]]:
    """The receive and change descriptors of a vault with range ``[0, range_end]``."""
    return [(descriptor.receive(), range_end), (descriptor.change(), range_end)]


def scan_vaults(rpc: RpcClient, descriptors_with_ranges: Sequence[tuple[str, int]]) -> ScanResult:
    """One ``scantxoutset start`` pass over every ``(descriptor, range_end)`` given.

    The UTXO set is read once whatever the number of vaults; callers group the outputs by each
    vault's scripts (:meth:`ScanResult.totals`). Immature coinbase outputs are included and
    flagged (:attr:`ScannedOutput.immature`).
    """
    if not descriptors_with_ranges:
        raise InvalidInput("nothing to scan: give at least one vault descriptor")
    objects = [{"desc": d, "range": [0, end]} for d, end in descriptors_with_ranges]
    scanner = rpc.clone(wallet=None).long_call_client()
    try:
        result = scanner.call_named("scantxoutset", action="start", scanobjects=objects)
    except RpcError as exc:
        if "in progress" in exc.rpc_message:
            raise ScanInProgress(exc.code, SCAN_IN_PROGRESS, exc.method) from exc
        raise
    finally:
        scanner.close()
    if not result.get("success"):
        raise CustodyError("scantxoutset was aborted before it finished; run the scan again")
    # one consistent read: every confirmation count is taken from the scan's own height
    tip = int(result["height"])
    outputs = tuple(
        sorted(
            (
                ScannedOutput(
                    txid=u["txid"],
                    vout=int(u["vout"]),
                    script_pubkey=bytes.fromhex(u["scriptPubKey"]),
                    amount=sat_from_rpc(u["amount"]),
                    height=int(u["height"]),
                    coinbase=bool(u.get("coinbase", False)),
                    confirmations=tip - int(u["height"]) + 1,
                )
                for u in result["unspents"]
            ),
            key=lambda o: (o.height, o.txid, o.vout),
        )
    )
    return ScanResult(height=tip, best_block=str(result["bestblock"]), outputs=outputs)
