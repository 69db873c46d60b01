"""Every test runs with its own config/data/cache dirs, a fixed terminal, and no credentials."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from rez_cli.redact import reset_active

pytest_plugins = ["tests.support.openai_server", "tests.support.llama_server"]


@pytest.fixture(autouse=True)
def isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    import os

    for name in list(os.environ):
        if name.startswith(("REZ_", "OPENAI_")):
            monkeypatch.delenv(name)
    home = tmp_path / "rez-home"
    monkeypatch.setenv("REZ_HOME", str(home))
    monkeypatch.setenv("COLUMNS", "120")
    monkeypatch.setenv("NO_COLOR", "1")
    monkeypatch.delenv("FORCE_COLOR", raising=False)
    # Secrets another test's config registered would strike text this test expects to see.
    reset_active()
    return home
