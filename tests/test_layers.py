"""The package keeps its layers: the import contracts in pyproject.toml hold, and each SDK has one home.

The contracts are import-linter's (``lint-imports`` runs them outside the suite too). Imports inside
functions count: a lazy import upward is still a dependency upward.
"""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "rez_cli"
LINT_IMPORTS = "from importlinter.cli import lint_imports_command; lint_imports_command()"


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """Check the contracts of ``root``/pyproject.toml against the package found first on the path."""
    return subprocess.run(
        [sys.executable, "-c", LINT_IMPORTS, "--no-cache", "--no-logo", "--config", "pyproject.toml"],
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root), "COLUMNS": "200"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_the_import_contracts_hold() -> None:
    linted = lint_imports(ROOT)
    assert linted.returncode == 0, linted.stdout + linted.stderr
    assert "0 broken" in linted.stdout


@pytest.mark.parametrize(
    ("module", "added", "broken"),
    [
        # A lazy import upward: the model client reaching for the cycle.
        (
            "llm/client.py",
            "def _upward() -> None:\n    from rez_cli.cycle import orchestrator\n",
            "rez_cli.llm is not allowed to import rez_cli.cycle",
        ),
        ("decision/policy.py", "import pandas\n", "The decision's rules are pure"),
        ("cycle/run.py", "import rich\n", "Only the command line and the display module"),
        ("market/files.py", "from rez_cli.journal import store\n", "rez_cli.market is not allowed"),
    ],
)
def test_the_contracts_catch_a_broken_layer(tmp_path: Path, module: str, added: str, broken: str) -> None:
    shutil.copytree(PACKAGE, tmp_path / "rez_cli", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    target = tmp_path / "rez_cli" / module
    target.write_text(target.read_text(encoding="utf-8") + "\n" + added, encoding="utf-8")
    linted = lint_imports(tmp_path)
    assert linted.returncode == 1, linted.stdout + linted.stderr
    assert broken in linted.stdout


def importers_of(top_level: str, package: Path = PACKAGE) -> list[str]:
    """The modules of ``package`` that import ``top_level`` or one of its submodules, anywhere in them."""
    found = []
    for path in sorted(package.rglob("*.py")):
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            if any(name.split(".")[0] == top_level for name in names):
                found.append(".".join(path.relative_to(package.parent).with_suffix("").parts))
                break
    return found


@pytest.mark.parametrize("sdk", ["ccxt", "openai", "sqlite3", "pandas_ta_classic"])
def test_each_sdk_is_imported_by_exactly_one_module(sdk: str) -> None:
    # One module speaks to each outside system, so its errors are translated in one place and
    # everything else can be tested without it.
    importers = importers_of(sdk)
    assert len(importers) == 1, f"{sdk} is imported by {importers or 'no module'}"


def test_the_sdk_scan_sees_every_form_of_import(tmp_path: Path) -> None:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "top.py").write_text("import ccxt.async_support as ccxt\n")
    (package / "lazy.py").write_text("def f():\n    from ccxt.base import errors\n    return errors\n")
    (package / "relative.py").write_text("from .ccxt import x\n")
    (package / "other.py").write_text("import ccxtra\n")
    assert importers_of("ccxt", package) == ["pkg.lazy", "pkg.top"]
