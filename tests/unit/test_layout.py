"""The layout README describes: subpackages by role, no import cycles, custody never imports ledger,
the regtest demo loaded only by ``reserve demo``."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

from ledger.cli.main import main

ROOT = Path(__file__).resolve().parents[2]


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path, known: set[str]) -> set[str]:
    """The known modules ``path`` imports, at module level or inside a function."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module:
            for alias in node.names:
                full = f"{node.module}.{alias.name}"
                found.add(full if full in known else node.module)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found & known


def import_graph(package: str) -> dict[str, set[str]]:
    paths = {module_name(p): p for p in (ROOT / package).rglob("*.py")}
    known = set(paths)
    return {name: imports_of(path, known) - {name} for name, path in paths.items()}


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    found: list[list[str]] = []
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []

    def visit(node: str) -> None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph[node]):
            if state.get(nxt) == 1:
                found.append([*path[path.index(nxt) :], nxt])
            elif nxt not in state:
                visit(nxt)
        path.pop()
        state[node] = 2

    for node in sorted(graph):
        if node not in state:
            visit(node)
    return found


def test_the_cycle_check_finds_a_cycle() -> None:
    assert cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == [["a", "b", "c", "a"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def test_ledger_has_no_import_cycle_even_through_function_level_imports() -> None:
    assert cycles(import_graph("ledger")) == []


def test_custody_never_imports_ledger() -> None:
    ledger_modules = {module_name(p) for p in (ROOT / "ledger").rglob("*.py")}
    for path in (ROOT / "custody").rglob("*.py"):
        assert imports_of(path, ledger_modules) == set(), path


def test_ledger_is_grouped_by_role() -> None:
    top = sorted(
        p.name for p in (ROOT / "ledger").iterdir() if p.suffix == ".py" or (p / "__init__.py").exists()
    )
    assert top == [
        "__init__.py",
        "attest",
        "chain",
        "cli",
        "errors.py",
        "files.py",
        "journal",
        "report",
        "settings.py",
        "spend",
        "store",
        "verify_proof.py",
    ]


def test_only_reserve_demo_loads_the_demo_and_the_regtest_signers() -> None:
    code = (
        "import sys\n"
        "from ledger.cli.main import main\n"
        "main(['--help'])\n"
        "assert 'ledger.cli.demo' not in sys.modules and 'regtest.signers' not in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_reserve_demo_runs_through_the_cli_entry(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The ``demo`` command hands the CLI entry to the demo (no import back); a used workdir stops it."""
    (tmp_path / "reserve.db").touch()
    args = ["--rpc-url", "http://127.0.0.1:9", "demo", "--workdir", str(tmp_path)]
    with pytest.MonkeyPatch.context() as env:
        env.setenv("RESERVE_RPC_USER", "u")
        env.setenv("RESERVE_RPC_PASSWORD", "p")
        assert main(args) == 1
    assert "already holds a demo run" in capsys.readouterr().out


def test_the_readme_layout_table_names_every_module_of_every_subpackage() -> None:
    readme = (ROOT / "README.md").read_text()
    table = readme[readme.index("## Layout") :].split("\n## ", 1)[0]
    rows = {
        m.group(1): set(re.findall(r"`([a-z_]+)`", m.group(2)))
        for m in re.finditer(r"^\| `ledger/([a-z]+)/` \|(.*)$", table, re.MULTILINE)
    }
    packages = {p.name for p in (ROOT / "ledger").iterdir() if (p / "__init__.py").exists()}
    assert set(rows) == packages
    for package, named in rows.items():
        modules = {p.stem for p in (ROOT / "ledger" / package).glob("*.py") if p.stem != "__init__"}
        if "*_cmds" in table:
            modules = {m for m in modules if not m.endswith("_cmds")}
        assert modules <= named, (package, sorted(modules - named))


PURE = (
    "ledger/journal/entry.py",
    "ledger/journal/canonical.py",
    "ledger/journal/merkle.py",
    "ledger/chain/movement.py",
    "ledger/chain/audit_judge.py",
    "ledger/chain/audit_report.py",
)
EFFECTS = {"os", "io", "pathlib", "shutil", "tempfile", "socket", "subprocess", "http", "urllib", "sqlite3"}
EFFECTS |= {"sqlalchemy", "psycopg", "alembic", "click", "rich", "custody.rpc", "ledger.store", "ledger.cli"}


def test_pure_modules_import_no_effects_and_open_nothing() -> None:
    for rel in PURE:
        tree = ast.parse((ROOT / rel).read_text())
        names = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        names |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.module}
        bad = {m for m in names if any(m == e or m.startswith(e + ".") for e in EFFECTS)}
        assert bad == set(), (rel, bad)
        calls = {
            n.func.id for n in ast.walk(tree) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)
        }
        assert not calls & {"open", "print", "input"}, rel
