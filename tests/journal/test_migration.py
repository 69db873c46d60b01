"""An older journal: read as it is, and backed up once before its first write brings it up to date."""

from __future__ import annotations

import logging
import sqlite3
from pathlib import Path

import pytest

from rez_cli.journal import Journal
from rez_cli.journal import db as journal_db
from rez_cli.journal.migrations import MIGRATIONS

T0 = 1_700_000_000_000
# The schema before blobs: what every journal written until now has.
V3 = MIGRATIONS[:3]


def older_journal(path: Path) -> None:
    """A journal an older Rez wrote: schema v3, one finished live cycle."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(journal_db, "MIGRATIONS", V3)
        with Journal(path, clock=lambda: T0) as journal:
            recorder = journal.recorder(
                journal.start_run("decide", [], config_hash="c", profile_hash="p", versions={})
            )
            recorder.cycle_started(
                "old0000000000000",
                symbol="BTC/USDT",
                exchange="sim",
                simulated=True,
                mode="rules",
                model=None,
                profile={"name": "moderate"},
                as_of_ms=T0,
                candles={},
                context={"symbol": "BTC/USDT", "last_price": 100.0},
                context_text="BTC/USDT last 100",
            )
            recorder.cycle_finished(
                "old0000000000000",
                status="decided",
                decision={"symbol": "BTC/USDT", "action": "hold", "timestamp": T0, "usage": {}},
                trace={
                    "mode": "rules",
                    "verdicts": [{"checks": [{"rule": "r", "passed": True, "detail": "d"}]}],
                },
                signals=[],
            )
            assert journal.migrations() == [migration.name for migration in V3]


def applied(path: Path) -> list[str]:
    with sqlite3.connect(path) as db:
        return [row[0] for row in db.execute("SELECT name FROM _migrations ORDER BY rowid")]


def notes(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == "rez_cli.journal"]


def test_reading_an_older_journal_changes_nothing(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    path = tmp_path / "journal.sqlite"
    older_journal(path)
    before = path.read_bytes()
    with Journal(path, create=False) as reader:
        assert [row["trace_id"] for row in reader.list_cycles()] == ["old0000000000000"]
        assert reader.get_cycle("old0").get("context_text") == "BTC/USDT last 100"
        assert reader.stats()["live"]["cycles"] == 1
    assert path.read_bytes() == before
    assert applied(path) == [migration.name for migration in V3]
    assert sorted(item.name for item in tmp_path.iterdir() if ".bak" in item.name) == []
    assert notes(caplog) == []


def test_the_first_write_keeps_a_copy_then_brings_the_journal_up_to_date(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "journal.sqlite"
    older_journal(path)
    caplog.set_level(logging.WARNING, logger="rez_cli.journal")
    with Journal(path, create=False) as journal:
        record = journal.get_cycle("old0")
        assert notes(caplog) == []
        journal.save_score("old0000000000000", horizon=4, outcome="neither", r_multiple=None, exit_price=None,
                           exit_ms=None, details={})  # fmt: skip
        assert journal.migrations() == [migration.name for migration in MIGRATIONS]
        assert without_score(journal.get_cycle("old0")) == without_score(record)
    backup = tmp_path / "journal.sqlite.bak-v3"
    [note] = notes(caplog)
    assert str(path) in note
    assert str(backup) in note
    # The copy is the journal as it was: the older schema, the cycle, no score yet.
    assert applied(backup) == [migration.name for migration in V3]
    with sqlite3.connect(backup) as db:
        assert db.execute("SELECT trace_id FROM cycles").fetchall() == [("old0000000000000",)]
        assert db.execute("SELECT COUNT(*) FROM scores").fetchone() == (0,)
    assert backup.stat().st_mode & 0o777 == 0o600
    # Up to date now: opening it again neither migrates nor copies.
    Journal(path).close()
    assert notes(caplog) == [note]
    assert sorted(item.name for item in tmp_path.iterdir() if ".bak" in item.name) == [
        "journal.sqlite.bak-v3"
    ]


def without_score(record: dict[str, object]) -> dict[str, object]:
    return {key: value for key, value in record.items() if key != "score"}


def test_a_writer_opening_an_older_journal_migrates_it_at_once_beside_an_earlier_copy(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "journal.sqlite"
    older_journal(path)
    (tmp_path / "journal.sqlite.bak-v3").write_text("a copy the user made and named so")
    caplog.set_level(logging.WARNING, logger="rez_cli.journal")
    with Journal(path) as journal:
        assert journal.migrations() == [migration.name for migration in MIGRATIONS]
    assert (tmp_path / "journal.sqlite.bak-v3").read_text() == "a copy the user made and named so"
    assert applied(tmp_path / "journal.sqlite.bak-v3-2") == [migration.name for migration in V3]
    assert len(notes(caplog)) == 1


def test_a_new_journal_needs_no_copy(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="rez_cli.journal")
    with Journal(tmp_path / "journal.sqlite") as journal:
        journal.start_run("decide", [], config_hash="c", profile_hash="p", versions={})
    assert [item.name for item in tmp_path.iterdir() if ".bak" in item.name] == []
    assert notes(caplog) == []
