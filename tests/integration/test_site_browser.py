"""The transparency site in a real browser: a reserve built through the CLI on a regtest node,
``reserve report site OUT/``, then Debian's Chromium, headless, renders it from disk.

The rendered DOM (``--dump-dom``) must show the ledger's own figures (``reserve balance --json``,
``reserve ledger checkpoint``) to the satoshi, every stored text as text, no script; the
screenshot (``--screenshot``) must be a real picture of the page. It is kept beside the test's
temporary files and copied to ``$RESERVE_SCREENSHOT_DIR`` (default: pytest's base temp directory,
``site-screenshots/``) for a person to look at. A missing Chromium is a failure that says to run
``scripts/install-chromium``.
"""

from __future__ import annotations

import csv
import hashlib
import html.parser
import io
import json
import os
import re
import shutil
import struct
import subprocess
import zlib
from pathlib import Path

import pytest

from custody.amount import format_btc
from regtest.node import RegtestNode
from tests.fixtures.governance import retire
from tests.fixtures.reserve import Reserve
from tests.integration.test_tx_shapes import send_many, spend

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
REASON = "<script>alert('pwned')</script> keys & \"seeds\" rotated <b>now</b>"


def chromium() -> Path:
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(
            f"{CHROMIUM} is missing: the site's browser test needs Debian's Chromium; "
            "run scripts/install-chromium (apt-get install chromium chromium-driver)"
        )
    return CHROMIUM


def browse(profile: Path, page: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """Chromium, headless, with a new profile, on ``page`` (a local file)."""
    profile.mkdir()
    done = subprocess.run(
        [str(chromium()), *FLAGS, f"--user-data-dir={profile}", *args, page.as_uri()],
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, f"chromium exited {done.returncode}: {done.stderr[-2000:]}"
    return done


VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source", "track", "wbr"}


class Dom(html.parser.HTMLParser):
    """The rendered DOM: elements with their attributes and the text inside each (by id and by
    ``data-sat``), the vault table's rows and every tag name."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[str] = []
        self.by_id: dict[str, str] = {}
        self.amounts: list[tuple[int, str]] = []  # (data-sat, text)
        self.vault_rows: dict[str, list[str]] = {}  # data-vault of a <tr> -> its cells' text
        self.attested_rows: dict[str, list[str]] = {}  # the same for data-attested-vault
        self.rows: list[tuple[str, int, list[str]]] = []  # (section id, table number, cells' text)
        self._section = ""
        self._tables = 0
        self.text: list[str] = []
        self._open: list[tuple[str, dict[str, str | None], list[str]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        if tag == "section":
            self._section = dict(attrs).get("id") or ""
        if tag == "table":
            self._tables += 1
        if tag in VOID:
            return
        self._open.append((tag, dict(attrs), []))

    def handle_endtag(self, tag: str) -> None:
        if all(name != tag for name, _, _ in self._open):
            return
        while self._open:
            name, attrs, parts = self._open.pop()
            content = "".join(parts)
            if self._open:
                self._open[-1][2].append(content)
            if attrs.get("id"):
                self.by_id[str(attrs["id"])] = content
            if attrs.get("data-sat") is not None:
                self.amounts.append((int(str(attrs["data-sat"])), content))
            if name in ("td", "th") and self._open and self._open[-1][0] == "tr":
                self._open[-1][2].append("\x1f")
            if name == "tr":
                cells = content.split("\x1f")[:-1]
                self.rows.append((self._section, self._tables, cells))
                if attrs.get("data-vault"):
                    self.vault_rows[str(attrs["data-vault"])] = cells
                if attrs.get("data-attested-vault"):
                    self.attested_rows[str(attrs["data-attested-vault"])] = cells
            if name == tag:
                return

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self._open:
            self._open[-1][2].append(data)


def png_facts(path: Path) -> tuple[int, int, int]:
    """(width, height, distinct byte values of the pixel data) of a PNG, checked to be one."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path} is not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    idat, pos = b"", 8
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind = data[pos + 4 : pos + 8]
        if kind == b"IDAT":
            idat += data[pos + 8 : pos + 8 + length]
        pos += 12 + length
    return width, height, len(set(zlib.decompress(idat)))


def screenshot_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    configured = os.environ.get("RESERVE_SCREENSHOT_DIR")
    where = Path(configured) if configured else tmp_path_factory.getbasetemp() / "site-screenshots"
    where.mkdir(parents=True, exist_ok=True)
    return where


def test_the_site_renders_the_ledgers_figures_in_chromium(
    reserve: Reserve,
    node: RegtestNode,
    tmp_path: Path,
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> None:
    chromium()  # fail first, and clearly, without a browser
    cold = reserve.add_vault("cold")
    hot = reserve.add_vault("hot")
    old = reserve.add_vault("old")
    retire(reserve, old, REASON)
    issued = {
        v.name: [
            a["address"] for a in reserve.ok("vault", "address", v.name, "--count", "3", "--json").json()
        ]
        for v in (cold, hot)
    }
    send_many(node, {issued[cold.name][0]: 150_000_000, issued[hot.name][0]: 25_000_000})
    node.fund(issued[cold.name][1], 12_345_678)
    reserve.ok("sync")
    spend(node, cold, {issued[hot.name][1]: 40_000_000})  # cold -> hot, with a fee
    node.mine(1)
    reserve.ok("sync")
    attested = reserve.ok("attest", "--json").json()  # at the tip, without proofs of control
    checkpoint = json.loads(reserve.ok("ledger", "checkpoint").out)
    books = reserve.ok("balance", "--json").json()
    vault_balances = {a["name"]: a["balance_sat"] for a in books["accounts"] if a["type"] == "vault"}
    assert books["reserve_sat"] > 0 and vault_balances[hot.name] == 65_000_000

    out = tmp_path / "site"
    written = reserve.ok("report", "site", str(out), "--json").json()
    assert written["reserve_sat"] == books["reserve_sat"] and written["as_of"] == books["as_of"]
    assert "index.html" in written["files"] and "checkpoint.json" in written["files"]
    for name in written["files"]:
        assert (out / name).is_file()

    dumped = browse(tmp_path / "profile-dom", out / "index.html", "--dump-dom").stdout
    dom = Dom()
    dom.feed(dumped)
    dom.close()

    # the page rendered, with its chart, and ran nothing
    assert "svg" in dom.tags and "script" not in dom.tags and "img" not in dom.tags
    # the figures equal the ledger's
    assert dom.by_id["reserve-total"] == format_btc(books["reserve_sat"])
    assert dom.by_id["as-of"] == str(books["as_of"])
    assert set(dom.vault_rows) == set(vault_balances)
    for name, sat in vault_balances.items():
        assert dom.vault_rows[name][-1] == format_btc(sat), name
    assert dom.amounts and all(shown == format_btc(sat) for sat, shown in dom.amounts)
    figures = {sat for sat, _ in dom.amounts}
    assert books["reserve_sat"] in figures and set(vault_balances.values()) <= figures
    # the addresses handed out, the checkpoint, the attestation as the books hold them
    page_text = "".join(dom.text)
    for addresses in issued.values():
        for address in addresses:
            assert address in page_text
    assert dom.by_id["checkpoint-size"] == str(checkpoint["tree_size"])
    assert dom.by_id["checkpoint-root"] == checkpoint["root"]
    assert checkpoint["key_id"] in page_text and checkpoint["signature"] in page_text
    # the latest attestation as `reserve attest list` holds it, its figures those of the chain and
    # the books, and the document published beside the page verifies (offline and on the node)
    [latest] = reserve.ok("attest", "list", "--json").json()["attestations"]
    assert latest["sha256"] == attested["sha256"] and latest["id"] == attested["attestation_id"]
    assert dom.by_id["attestation-height"] == str(latest["height"]) == str(attested["height"])
    assert dom.by_id["attestation-block"] == latest["block_hash"]
    assert dom.by_id["attestation-sha256"] == latest["sha256"]
    assert attested["totals"] == {
        "chain": books["reserve_sat"],
        "ledger": books["reserve_sat"],
        "difference": 0,
    }
    for v in attested["vaults"]:
        assert dom.attested_rows[v["name"]][1:5] == [
            str(v["outputs"]),
            format_btc(v["chain"]),
            format_btc(v["ledger"]),
            format_btc(v["difference"]),
        ]
    [document] = [out / n for n in written["files"] if n.startswith("attestation-")]
    assert hashlib.sha256(document.read_bytes()).hexdigest() == latest["sha256"]
    pem = tmp_path / "ledger-key.pem"
    pem.write_text(reserve.ok("ledger", "pubkey").out)
    reserve.ok("attest", "verify", str(document), "--pubkey", str(pem), "--node")
    # each month's statement is what `reserve report statement` prints for the period the page names
    periods = re.findall(r"reserve report statement --from (\S+) --to (\S+):", page_text)
    tables = sorted({t for section, t, _ in dom.rows if section == "statements"})
    assert periods and len(tables) == len(periods)
    for (first, last), table in zip(periods, tables, strict=True):
        printed = reserve.ok("report", "statement", "--from", first, "--to", last, "--csv").out
        expected = [(r[0], r[1], r[2], r[4]) for r in list(csv.reader(io.StringIO(printed)))[1:]]
        shown: list[tuple[str, str, str, str]] = []
        section = ""
        for cells in [c for sec, t, c in dom.rows if t == table][1:]:  # the first row is the header
            section = cells[0] or section
            shown.append((section, cells[1], cells[2], cells[3]))
        assert shown == expected, (first, last)
        assert expected[-1][:2] == ("total", "closing")
    assert expected[-1][3] == format_btc(books["reserve_sat"])  # the newest month closes at the reserve
    # stored text is shown as text
    assert REASON in page_text

    shot = tmp_path / "site.png"
    browse(tmp_path / "profile-shot", out / "index.html", f"--screenshot={shot}", "--window-size=1280,2000")
    width, height, distinct = png_facts(shot)
    assert (width, height) == (1280, 2000)
    assert shot.stat().st_size > 20_000 and distinct > 50, "the screenshot is blank or nearly so"
    kept = screenshot_dir(tmp_path_factory) / f"site-{request.node.callspec.id}.png"
    shutil.copyfile(shot, kept)
    print(f"screenshot of the site: {kept}")


def test_an_attestation_that_does_not_verify_is_not_published(reserve: Reserve, tmp_path: Path) -> None:
    """Documents stored as the schema says (row + log record, as ``reserve attest`` writes them;
    `ledger verify` is content) but that are no signed attestation: the site publishes no
    attestation that does not verify with the ledger's key (a real one is published byte for byte
    and verified in the test above), and writes nothing."""
    from sqlalchemy.orm import Session

    from ledger.journal.records import RecordKind, append_record
    from ledger.store.spend_models import AttestationRow

    engine = reserve.engine()
    try:
        for height in (101, 102):
            figures = {"chain": 123_456_789, "ledger": 123_456_789, "difference": 0}
            doc = {"format": "reserve-ledger-attestation/v1", "height": height, "totals": figures}
            document = json.dumps(doc, sort_keys=True, separators=(",", ":"))
            digest = hashlib.sha256(document.encode()).hexdigest()
            block_hash = f"{height:064x}"
            with Session(engine) as s, s.begin():
                record = append_record(
                    s, RecordKind.ATTESTATION, {"height": height, "block_hash": block_hash, "sha256": digest}
                )
                s.add(
                    AttestationRow(
                        height=height,
                        block_hash=block_hash,
                        document=document,
                        sha256=digest,
                        record_seq=record.seq,
                    )
                )
    finally:
        engine.dispose()
    assert reserve.ok("ledger", "verify").out.startswith("OK")

    out = tmp_path / "site"
    r = reserve.run("report", "site", str(out), "--json")
    assert r.code == 2 and r.json()["error"]["code"] == "tamper-detected", r.out
    assert "does not verify" in r.json()["error"]["message"] and digest not in r.out
    assert not out.exists()


def test_bad_output_paths_write_nothing(reserve: Reserve, tmp_path: Path) -> None:
    target = tmp_path / "a-file"
    target.write_text("keep me")
    r = reserve.run("report", "site", str(target))
    assert r.code == 2 and "is a file" in r.err and target.read_text() == "keep me"
    r = reserve.run("report", "site", str(target / "sub"))
    assert r.code == 2 and target.read_text() == "keep me"
    r = reserve.run("report", "site", str(tmp_path / "new"), "--title", "Reserve\x1b[2J")
    assert r.code == 2 and "U+001B" in r.err and not (tmp_path / "new").exists()
    again = tmp_path / "site"
    for _ in range(2):  # writing over an earlier site is fine
        assert reserve.ok("report", "site", str(again), "--json").json()["files"] == ["index.html"]
    assert sorted(p.name for p in again.iterdir()) == ["index.html"]  # no temporary file left
