"""What `import rez_cli` and `rez ... --help` cost: none of the heavy libraries the work itself needs.

Each check runs in a fresh interpreter, since this test process has long since imported them all.
"""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

import rez_cli

# What a cycle needs and a help text does not: data frames, an exchange, a model, the journal.
HEAVY = ("pandas", "numpy", "pyarrow", "pandas_ta_classic", "ccxt", "openai", "sqlite3")


def loaded_after(code: str) -> dict[str, object]:
    """Run ``code`` in a fresh interpreter; it reports on the last line of stderr as JSON."""
    report = (
        "\nimport json, sys\n"
        f"heavy = {(*HEAVY, 'pydantic', 'rich', 'typer')!r}\n"
        "print(json.dumps({'loaded': sorted(m for m in heavy if m in sys.modules),"
        " 'extra': globals().get('extra')}), file=sys.stderr)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code + report], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stderr.strip().splitlines()[-1])
    return result


def test_importing_the_package_loads_no_heavy_library() -> None:
    assert loaded_after("import rez_cli")["loaded"] == []


def test_rez_help_loads_no_heavy_library_nor_pydantic() -> None:
    code = "from rez_cli.cli.app import main\nextra = main(['--help'])"
    result = loaded_after(code)
    assert result["extra"] == 0
    # rich and typer draw the help itself.
    assert result["loaded"] == ["rich", "typer"]


def test_no_commands_help_loads_a_heavy_library() -> None:
    # Every command and subcommand, found from the app itself, so that a new one is covered too.
    # Typer validates a command's options with pydantic, so pydantic is not asked of these.
    code = (
        "import typer.main\n"
        "from rez_cli.cli.app import app, main\n"
        "def paths(command, prefix):\n"
        "    yield prefix\n"
        "    for name, sub in getattr(command, 'commands', {}).items():\n"
        "        yield from paths(sub, [*prefix, name])\n"
        "every = paths(typer.main.get_command(app), [])\n"
        "extra = {' '.join(path): main([*path, '--help']) for path in every}\n"
    )
    result = loaded_after(code)
    codes = result["extra"]
    assert isinstance(codes, dict)
    assert {"decide", "context", "backtest", "traces show"} <= set(codes)
    assert {path: code for path, code in codes.items() if code != 0} == {}
    loaded = result["loaded"]
    assert isinstance(loaded, list)
    assert [name for name in loaded if name in HEAVY] == []


@pytest.mark.parametrize("name", rez_cli.__all__)
def test_every_public_name_resolves_from_the_package_root(name: str) -> None:
    value = getattr(rez_cli, name)
    assert value is not None
    assert name in dir(rez_cli)
    if name != "__version__":
        assert value.__name__ == name


def test_the_library_face_names_what_a_user_needs() -> None:
    assert {"Decision", "Settings", "load_settings", "load_profile", "run_backtest"} <= set(rez_cli.__all__)
