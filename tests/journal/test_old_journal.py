"""A journal written by an older Rez (schema v3) reads back exactly as it did when it was new.

tests/fixtures/journal_v3/journal.sqlite was written by Rez itself before the journal schema
changed (``make_fixture.py`` beside it says how, and ``cycles.json`` names its cycles): a react cycle
with a ``fetch_indicator`` call, a rules-mode cycle, a hold forced by a model answering garbage, and
a ten-cycle rules backtest. Each test copies it into a tmp REZ_HOME (so whatever migration opening
it applies never touches the committed file) and compares what ``rez traces list``, ``show``,
``replay`` and ``stats`` print with tests/golden/journal_v3/. A migration must keep that output
identical.

Everything in the journal is fixed, the trace ids, times and measured durations included, so they
stay in the golden files as they are. The only thing normalised (``tests.support.golden.normalise``)
is the tmp REZ_HOME, should a message name a path in it: ``<REZ_HOME>``.

The golden files were written from the fixture by today's code; to rewrite them (only for an
intended change of output, never to make a migration pass)::

    REZ_UPDATE_GOLDEN=1 .venv/bin/pytest tests/journal/test_old_journal.py
"""

from __future__ import annotations

import json
import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from rez_cli.journal import Journal
from rez_cli.journal.migrations import MIGRATIONS
from tests.support.cli import run
from tests.support.golden import assert_golden, normalise, render

FIXTURE = Path(__file__).resolve().parents[1] / "fixtures" / "journal_v3"
CYCLES: dict[str, str] = json.loads((FIXTURE / "cycles.json").read_text(encoding="utf-8"))


def dump(path: Path) -> list[str]:
    """Every row and table of a journal as SQL: equal for two files holding the same journal."""
    with closing(sqlite3.connect(path)) as db:
        return list(db.iterdump())


@pytest.fixture(autouse=True, params=["as written", "migrated"])
def old_journal(isolated_env: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> Path:
    """The fixture as an older Rez left it (readers leave it so), and the same journal once a writer
    has opened it, backed it up and migrated it: both must show exactly the same."""
    # 120 columns, the suite's terminal: wide enough that the list shows whole trace ids.
    monkeypatch.setenv("COLUMNS", "120")
    monkeypatch.setenv("NO_COLOR", "1")
    journal = isolated_env / "data" / "journal.sqlite"
    journal.parent.mkdir(parents=True)
    shutil.copyfile(FIXTURE / "journal.sqlite", journal)
    if request.param == "migrated":
        Journal(journal).close()
        backup = journal.with_name("journal.sqlite.bak-v3")
        pristine = shutil.copyfile(FIXTURE / "journal.sqlite", isolated_env / "pristine.sqlite")
        assert dump(backup) == dump(pristine)
        assert Journal(journal, create=False).migrations() == [migration.name for migration in MIGRATIONS]
    return journal


def check(capsys: pytest.CaptureFixture[str], home: Path, golden: str, *args: str) -> None:
    """Run ``rez *args`` on the copied journal and compare with tests/golden/journal_v3/``golden``."""
    result = run(capsys, *args)
    text = normalise(render(args, result), replace={str(home): "<REZ_HOME>"})
    assert_golden(f"journal_v3/{golden}", text)
    assert result.exit_code == 0, text


def test_the_fixture_holds_the_cycles_it_names() -> None:
    assert sorted(CYCLES) == ["backtest_first", "backtest_last", "garbage", "model", "rules"]
    # Small enough to commit, and complete: a -wal beside it would hold writes the file lacks.
    assert (FIXTURE / "journal.sqlite").stat().st_size < 300_000
    assert not (FIXTURE / "journal.sqlite-wal").exists()


def test_list(capsys: pytest.CaptureFixture[str], isolated_env: Path) -> None:
    check(capsys, isolated_env, "traces_list.txt", "traces", "list")


@pytest.mark.parametrize("name", sorted(CYCLES))
def test_show(capsys: pytest.CaptureFixture[str], isolated_env: Path, name: str) -> None:
    check(capsys, isolated_env, f"traces_show_{name}.txt", "traces", "show", CYCLES[name])


def test_replay_of_the_model_cycle(capsys: pytest.CaptureFixture[str], isolated_env: Path) -> None:
    check(capsys, isolated_env, "traces_replay_model.txt", "traces", "replay", CYCLES["model"])


def test_stats(capsys: pytest.CaptureFixture[str], isolated_env: Path) -> None:
    check(capsys, isolated_env, "traces_stats.txt", "traces", "stats")
