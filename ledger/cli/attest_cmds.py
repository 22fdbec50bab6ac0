"""``reserve attest``: the books bound to the chain at a block, signed; and their verification.

- ``reserve attest [--height H] [--out FILE]``: a signed attestation at block H (default the tip),
  kept append-only; without proofs of control;
- ``reserve attest prepare [--height H] --out DIR`` / ``reserve attest finish DIR --signed FILE...``:
  the same with each vault's BIP-322 proof of control, signed by its holders in between;
- ``reserve attest list``, ``reserve attest show ID --out FILE``;
- ``reserve attest verify FILE [--pubkey PEM] [--node]``: every offline check (exit 1 naming each
  failure), and with ``--node`` what the configured node says.

The format is ``docs/attestation.md``; the auditor's copy of the verifier is
``python -m ledger.attest.verify_doc``.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from rich.table import Table

from custody.amount import format_btc
from ledger.cli.app import App, json_option, pass_app

if TYPE_CHECKING:
    from custody.chain_at import Snapshot
    from ledger.attest.document import VaultInfo

EXIT_FINDINGS = 1
DRAFT_NAME = "attestation-draft.json"


def _now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="seconds")


def _gather(app: App, height: int | None) -> tuple[Snapshot, tuple[VaultInfo, ...]]:
    """Read the vaults (short read), then the chain at ``height`` (no transaction open)."""
    from custody.chain_at import snapshot_at
    from ledger.attest.store import read_vaults

    with app.read_session() as s:
        specs, infos = read_vaults(s)
    return snapshot_at(app.rpc(), specs, height), infos


def _write_json(path: Path, doc: dict[str, Any]) -> None:
    """Write the document whole or not at all (a failure is exit 2 naming ``path``)."""
    from ledger.files import write_text

    write_text(path, json.dumps(doc, indent=1, sort_keys=True) + "\n", encoding="ascii")


def _check_out(path: Path | None) -> None:
    """Refuse an --out that cannot be written before anything is gathered or kept."""
    from ledger.files import check_target

    if path is not None:
        check_target(path)


def _show(app: App, doc: dict[str, Any], stored_id: int | None, as_json: bool) -> None:
    from ledger.attest.document import summary
    from ledger.attest.verify_doc import document_sha256

    data = summary(doc)
    data["sha256"] = document_sha256(doc)
    if stored_id is not None:
        data["attestation_id"] = stored_id
    if as_json:
        app.print_json(data)
        return
    table = Table(title=f"attestation at block {doc['height']} {doc['block_hash']} ({doc['network']})")
    for col in ("vault", "outputs", "chain (BTC)", "ledger (BTC)", "difference (BTC)", "control"):
        table.add_column(col, justify="left" if col in ("vault", "control") else "right")
    for v in data["vaults"]:
        table.add_row(
            v["name"],
            str(v["outputs"]),
            format_btc(v["chain"]),
            format_btc(v["ledger"]),
            format_btc(v["difference"]),
            "BIP-322" if v["control"] else "-",
        )
    t = data["totals"]
    table.add_row(
        "total", "", format_btc(t["chain"]), format_btc(t["ledger"]), format_btc(t["difference"]), ""
    )
    app.console.print(table)
    cp = data["checkpoint"]
    click.echo(f"checkpoint: tree size {cp['tree_size']}, root {cp['root']}")
    click.echo(
        f"document sha256 {data['sha256']}" + (f", stored as attestation #{stored_id}" if stored_id else "")
    )


_height = click.option(
    "--height", type=click.IntRange(min=0), help="Block height to attest [default: the tip]."
)


@click.group("attest", invoke_without_command=True)
@_height
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Also write the document here.")
@json_option
@pass_app
@click.pass_context
def attest(ctx: click.Context, app: App, height: int | None, out: Path | None, as_json: bool) -> None:
    """Proof of reserves at a block: attest, prepare/finish with proofs of control, list, verify.

    Without a subcommand: a signed attestation at block --height (default: the tip) binding every
    vault's unspent outputs there, with their Merkle proofs and headers, to a new signed checkpoint
    of the ledger and its vault balances, kept append-only. Format: docs/attestation.md.
    """
    if ctx.invoked_subcommand is not None:
        return
    from ledger.attest.store import write_attestation
    from ledger.journal.checkpoint import load_signing_key

    _check_out(out)
    key = load_signing_key(app.settings.signing_key_path)
    chain, infos = _gather(app, height)
    with app.session() as s:  # write: one short transaction, no node call inside
        doc, stored = write_attestation(s, key, chain, infos, _now())
        if out is not None:  # before the attestation is kept: a failed write keeps nothing
            _write_json(out, doc)
    _show(app, doc, stored.id, as_json)


@attest.command("prepare")
@_height
@click.option(
    "--out",
    "out_dir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Directory to write to.",
)
@json_option
@pass_app
def prepare(app: App, height: int | None, out_dir: Path, as_json: bool) -> None:
    """Draft an attestation and the PSBTs its proofs of control need.

    Writes DIR/attestation-draft.json (signed by the ledger, not yet kept) and one PSBT per funded
    address of each vault (DIR/<vault>-<address>.psbt, base64): a BIP-322 proof of funds over a
    message committing to the block and the ledger root. Each holder signs them as they sign a
    spend; then `reserve attest finish DIR --signed FILE ...`.
    """
    from ledger.attest.store import control_requests, draft_attestation
    from ledger.files import check_directory, make_directory, write_text
    from ledger.journal.checkpoint import load_signing_key

    make_directory(out_dir)
    check_directory(out_dir)  # before a checkpoint is signed for the draft
    key = load_signing_key(app.settings.signing_key_path)
    chain, infos = _gather(app, height)
    with app.session() as s:
        doc = draft_attestation(s, key, chain, infos, _now())
    with app.read_session() as s:
        requests = control_requests(s, doc)
    files = []
    for vault, address, psbt in requests:
        path = out_dir / f"{vault}-{address}.psbt"
        write_text(path, psbt + "\n", encoding="ascii")
        files.append({"vault": vault, "address": address, "psbt": str(path)})
    _write_json(out_dir / DRAFT_NAME, doc)  # last: a draft beside its PSBTs means all were written
    if as_json:
        app.print_json({"draft": str(out_dir / DRAFT_NAME), "psbts": files})
        return
    click.echo(f"draft: {out_dir / DRAFT_NAME} (block {doc['height']} {doc['block_hash']})")
    for f in files:
        click.echo(f"  sign: {f['psbt']}  (vault {f['vault']}, address {f['address']})")
    click.echo("then: reserve attest finish " + str(out_dir) + " --signed FILE [--signed FILE ...]")


@attest.command("finish")
@click.argument("draft_dir", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--signed",
    "signed",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="A holder's signed PSBT (base64 or binary); repeat for every holder and address.",
)
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Also write the document here.")
@json_option
@pass_app
def finish(app: App, draft_dir: Path, signed: tuple[Path, ...], out: Path | None, as_json: bool) -> None:
    """Add the holders' proofs of control to a draft, sign it and keep it.

    Every signature is checked as a spend's; a vault whose every funded address does not reach its
    threshold of distinct holders (one holder's keys count once) is refused (exit 2, naming the
    address), and so is a draft whose block is no longer on the node's best chain."""
    from ledger.attest.store import check_draft, finish_attestation, finish_controls
    from ledger.attest.verify_doc import load_document
    from ledger.errors import InvalidInput
    from ledger.journal.checkpoint import load_signing_key, public_key_pem

    _check_out(out)
    key = load_signing_key(app.settings.signing_key_path)
    path = draft_dir / DRAFT_NAME if draft_dir.is_dir() else draft_dir
    try:
        draft = check_draft(load_document(str(path)), [public_key_pem(key)])
    except ValueError as exc:
        raise InvalidInput(str(exc)) from exc
    texts = [p.read_bytes() for p in signed]
    psbts = [t.decode("ascii").strip() if t.isascii() else t for t in texts]  # base64 or binary
    with app.read_session() as s:
        controls = finish_controls(s, draft, psbts)
    _still_best(app, draft["height"], draft["block_hash"])  # holders may have taken days
    with app.session() as s:
        doc, stored = finish_attestation(s, key, draft, controls)
        if out is not None:  # before the attestation is kept: a failed write keeps nothing
            _write_json(out, doc)
    _show(app, doc, stored.id, as_json)


def _still_best(app: App, height: int, block_hash: str) -> None:
    """Refuse (:class:`ChainMismatch`) when block ``height`` of the node's best chain is no longer
    ``block_hash``: an attestation is never kept for a block a reorganisation took away."""
    from custody.errors import RpcError
    from ledger.errors import ChainMismatch

    rpc = app.rpc()
    try:
        best = rpc.get_block_hash(height)
    except RpcError:  # the node's chain is shorter than the draft's height now
        best = None
    if best != block_hash:
        raise ChainMismatch(
            f"block {block_hash} at height {height} is no longer on the node's best chain "
            f"(it has {best or 'no block'} there): the draft's outputs are not the chain's; run "
            "`reserve attest prepare` again and have the holders sign the new PSBTs"
        )


@attest.command("list")
@json_option
@pass_app
def list_(app: App, as_json: bool) -> int:
    """Every kept attestation, each checked against its log record and signed by the ledger's key
    (exit 1 if one is not)."""
    from ledger.attest.store import list_attestations
    from ledger.journal.checkpoint import load_signing_key, public_key_pem
    from ledger.journal.keychain import trusted_public_keys

    key_path = app.settings.signing_key_path
    with app.read_session() as s:  # without the key file, the rows are held to their records only
        pems = None
        if key_path.exists():
            pems = trusted_public_keys(s, public_key_pem(load_signing_key(key_path)))
        items, problems = list_attestations(s, pems)
    bad = bool(problems) or any(a.findings for a in items)
    if as_json:
        app.print_json({"attestations": [a.to_json() for a in items], "problems": list(problems)})
        return EXIT_FINDINGS if bad else 0
    table = Table(title="attestations")
    for col in ("#", "height", "block", "sha256", "record", "created"):
        table.add_column(col)
    for a in items:
        table.add_row(str(a.id), str(a.height), a.block_hash, a.sha256, f"#{a.record_seq}", a.created_at)
    app.console.print(table)
    for text in [f for a in items for f in a.findings] + list(problems):
        click.echo(f"FAIL {text}")
    return EXIT_FINDINGS if bad else 0


@attest.command("show")
@click.argument("attestation_id", type=click.IntRange(min=1))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write the document here.")
@json_option
@pass_app
def show(app: App, attestation_id: int, out: Path | None, as_json: bool) -> None:
    """A kept attestation's figures; --out writes its document (what auditors verify)."""
    from ledger.attest.store import get_document

    _check_out(out)
    with app.read_session() as s:
        doc = get_document(s, attestation_id)
    if out is not None:
        _write_json(out, doc)
    _show(app, doc, attestation_id, as_json)


@attest.command("verify")
@click.argument("document", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--pubkey",
    multiple=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Trusted ledger public key (PEM), repeatable [default: the signing key file's and the keys "
    "rotation records link to it].",
)
@click.option(
    "--node", is_flag=True, help="Also check against the configured node: unspent at H, best chain."
)
@click.option(
    "--gap",
    type=click.IntRange(min=0),
    default=1000,  # ledger.attest.node_check.DEFAULT_GAP (not imported: --help stays light)
    show_default=True,
    help="With --node: search each vault's addresses up to this many past the highest index attested.",
)
@json_option
@pass_app
def verify(app: App, document: Path, pubkey: tuple[Path, ...], node: bool, gap: int, as_json: bool) -> int:
    """Check an attestation: offline (signature, Merkle proofs, headers, sums, proofs of control,
    checkpoint and balances), and with --node against a node. Exit 0 valid, 1 not."""
    from ledger.attest.verify_doc import (
        OFFLINE_NOTE,
        SEARCH_LIMIT,
        load_document,
        printable,
        verify_attestation,
    )
    from ledger.errors import InvalidInput

    if pubkey:
        pems = [p.read_bytes() for p in pubkey]
    else:  # the signing key file's key and every key linked to it by rotation records
        from ledger.journal.checkpoint import load_signing_key, public_key_pem
        from ledger.journal.keychain import trusted_public_keys

        with app.read_session() as s:
            pems = trusted_public_keys(s, public_key_pem(load_signing_key(app.settings.signing_key_path)))
    try:
        doc = load_document(str(document))
    except ValueError as exc:
        raise InvalidInput(str(exc)) from exc
    result = verify_attestation(doc, pems)
    lines = result.lines()
    failed = list(result.failed)
    against_node: list[str] = []
    if node and not result.integrity_failed:  # a shortfall too: the node may say what is missing
        from ledger.attest.node_check import check_against_node

        height = doc["height"]
        against_node, n_outputs = check_against_node(app.rpc(), doc, gap)
        lines += [printable(f"FAIL  node: {f}") for f in against_node] or [
            f"ok    node: {n_outputs} outputs unspent at {height} and none left out (addresses "
            f"searched to --gap {gap} past each vault's highest attested index, at most "
            f"{SEARCH_LIMIT:,}), headers on the node's best chain"
        ]
        if against_node:
            failed.append("node")
    ok = not failed
    searched = node and not result.integrity_failed  # outputs left out: only the node sees them
    verdict = result.verdict(failed)
    if as_json:
        app.print_json(
            {
                "ok": ok,
                "failed": failed,
                "verdict": verdict,
                "checks": [
                    {"name": c.name, "ok": c.ok, "findings": list(c.findings), "note": c.note}
                    for c in result.checks
                ],
                "vaults": [v.to_json() for v in result.figures],  # recomputed, satoshis
                "node": None if not searched else {"ok": not against_node, "findings": against_node},
                "outputs_left_out_searched": searched,
            }
        )
    else:
        for line in lines:
            click.echo(line)
        if not searched:
            click.echo(OFFLINE_NOTE + ("" if not node else " (not searched: the document failed offline)"))
        click.echo(verdict)
    return 0 if ok else EXIT_FINDINGS


COMMANDS: tuple[click.Command, ...] = (attest,)
