"""What an install gets: requirements.lock pins (with hashes) everything pyproject.toml asks for,
the auditors' list is the lock's versions, and a missing optional extra is named by its error.

scripts/lock writes both files; tests/integration/test_auditor_install.py installs the auditors'
list in a clean venv.
"""

from __future__ import annotations

import datetime as dt
import re
import sys
import tomllib
from dataclasses import dataclass
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from ledger.cli.main import main
from ledger.errors import DatabaseUnavailable, LedgerError
from ledger.report.site import ReservePoint, reserve_chart
from ledger.store.db import make_engine

ROOT = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9_.-]+)==([^\s;]+)(?: ; (.+))? \\$")
AUDITOR_PACKAGES = {"cryptography", "coincurve", "cffi", "pycparser"}
PASSWORD = "no-driver-secret"


@dataclass(frozen=True, slots=True)
class Pin:
    version: str
    marker: str | None
    hashes: frozenset[str]


def pins(path: Path) -> dict[str, Pin]:
    """Each ``name==version [; marker] \\`` of a requirements file with its ``--hash`` lines;
    any other requirement line fails (a lock holds exact pins only)."""
    found: dict[str, Pin] = {}
    name = None
    for line in path.read_text().splitlines():
        if line.startswith("    --hash=sha256:"):
            assert name is not None, line
            pin = found[name]
            found[name] = Pin(pin.version, pin.marker, pin.hashes | {line.split(":")[1].rstrip(" \\")})
        elif line and not line.lstrip().startswith(("#", "--only-binary")):
            match = PIN.match(line)
            assert match, f"{path.name}: not an exact pin: {line}"
            name = canonicalize_name(match.group(1))
            assert name not in found, f"{path.name}: {name} pinned twice"
            found[name] = Pin(match.group(2), match.group(3), frozenset())
    return found


def test_the_lock_pins_every_requirement_of_pyproject_with_hashes() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())
    wanted = [*project["project"]["dependencies"], *project["build-system"]["requires"], "pip"]
    for extra in project["project"]["optional-dependencies"].values():
        wanted += extra
    lock = pins(ROOT / "requirements.lock")
    for text in wanted:
        req = Requirement(text)
        pin = lock.get(canonicalize_name(req.name))
        assert pin is not None, (
            f"{req.name} is in pyproject.toml but not in requirements.lock: run scripts/lock"
        )
        assert req.specifier.contains(pin.version, prereleases=True), (text, pin.version)
    assert all(len(pin.hashes) >= 1 for pin in lock.values())
    # the core install leaves the PostgreSQL driver and the chart to their extras
    core = {canonicalize_name(Requirement(r).name) for r in project["project"]["dependencies"]}
    assert not core & {"psycopg", "matplotlib"}
    assert {"postgres", "charts", "dev"} <= set(project["project"]["optional-dependencies"])


def test_the_auditors_list_is_the_locks_versions() -> None:
    auditor = pins(ROOT / "docs" / "auditor-requirements.txt")
    lock = pins(ROOT / "requirements.lock")
    assert set(auditor) == AUDITOR_PACKAGES
    assert "\n--only-binary :all:\n" in (ROOT / "docs" / "auditor-requirements.txt").read_text()
    for name, pin in auditor.items():
        assert (pin.version, pin.marker) == (lock[name].version, lock[name].marker), name
        assert pin.hashes and pin.hashes <= lock[name].hashes, name


def test_setup_installs_the_lock_and_the_docs_give_the_auditors_command() -> None:
    setup = (ROOT / "scripts" / "setup").read_text()
    assert "pip install -q --require-hashes -r requirements.lock" in setup
    assert "pip install -q --no-deps --no-build-isolation -e ." in setup
    command = "pip install --require-hashes -r docs/auditor-requirements.txt"
    for doc in ("README.md", "docs/auditor-requirements.txt", "ledger/attest/verify_doc.py"):
        assert command in (ROOT / doc).read_text(), doc


def test_postgresql_without_its_driver_names_the_extra(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # import psycopg now fails, as when not installed
    with pytest.raises(DatabaseUnavailable, match=re.escape("pip install 'reserve-ledger[postgres]'")):
        make_engine("postgresql+psycopg://u@127.0.0.1:9/books")
    make_engine("sqlite://")  # SQLite needs no extra
    monkeypatch.setenv("RESERVE_DB", f"postgresql://u:{PASSWORD}@127.0.0.1:9/books")
    assert main(["balance"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: PostgreSQL needs the psycopg driver") and PASSWORD not in err, err
    assert "pip install 'reserve-ledger[postgres]'" in err


def test_the_chart_without_matplotlib_names_the_extra(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    with pytest.raises(LedgerError, match=re.escape("pip install 'reserve-ledger[charts]'")):
        reserve_chart([ReservePoint(1, dt.date(2026, 1, 1), 1_000, (("cold", 1_000),))])
