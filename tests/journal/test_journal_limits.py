"""What the journal refuses and what it survives: a newer schema, spellings of a market, numbers
too big for SQLite, text that is not UTF-8."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from rez_cli.errors import ConfigError, DataError, LockHeld, UsageError
from rez_cli.journal import Journal
from rez_cli.journal.migrations import MIGRATIONS

T0 = 1_700_000_000_000


def test_a_journal_migrated_by_a_newer_rez_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    Journal(path).close()
    db = sqlite3.connect(path)
    db.execute("INSERT INTO _migrations (name, applied_ms) VALUES ('m900_newer', 1), ('m901_newer', 2)")
    db.commit()
    db.close()
    before = path.read_bytes()
    with pytest.raises(ConfigError) as caught:
        Journal(path)
    line = caught.value.one_line()
    assert "written by a newer Rez" in line
    assert "m900_newer, m901_newer" in line
    assert "upgrade Rez" in line
    assert "\n" not in line
    assert path.read_bytes() == before
    assert [name for name in _applied(path) if name.startswith("m0")] == [m.name for m in MIGRATIONS]


def test_a_journal_this_rez_knows_opens(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    Journal(path).close()
    with Journal(path) as journal:
        assert journal.migrations() == [migration.name for migration in MIGRATIONS]


def _applied(path: Path) -> list[str]:
    db = sqlite3.connect(path)
    try:
        return [row[0] for row in db.execute("SELECT name FROM _migrations ORDER BY rowid")]
    finally:
        db.close()


@pytest.mark.parametrize("other", ["btc/usdt", "BTC-USDT", "btc_usdt", " BTC/USDT "])
def test_the_lock_is_per_market_not_per_spelling(tmp_path: Path, other: str) -> None:
    journal = Journal(tmp_path / "journal.sqlite")
    assert journal.lock_path(other) == journal.lock_path("BTC/USDT")
    with journal.lock("BTC/USDT"), pytest.raises(LockHeld), journal.lock(other):
        pass
    with journal.lock(other):
        pass
    journal.close()


def test_a_symbol_that_names_no_market_takes_no_lock(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.sqlite")
    with pytest.raises(UsageError), journal.lock(" "):
        pass
    assert not (tmp_path / "journal.sqlite.locks").exists()
    journal.close()


def test_integers_too_big_for_sqlite_are_clamped_and_the_cycle_completes(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.sqlite", clock=lambda: T0)
    recorder = journal.recorder(None)
    huge = 10**19
    turn = {"index": 1, "content": "x", "prompt_tokens": huge, "completion_tokens": -huge, "tool_calls": []}
    recorder.cycle_finished(
        "t1",
        status="decided",
        decision={
            "symbol": "BTC/USDT",
            "action": "hold",
            "timestamp": huge,
            "usage": {"llm_calls": huge, "tool_calls": huge, "prompt_tokens": huge},
        },
        trace={"turns": [turn]},
        signals=[],
    )
    [cycle] = journal.list_cycles()
    assert cycle["status"] == "decided"
    assert cycle["llm_calls"] == 2**63 - 1
    record = journal.get_cycle("t1")
    assert record["turns"][0]["prompt_tokens"] == 2**63 - 1
    assert record["turns"][0]["completion_tokens"] == -(2**63)
    assert record["usage"]["prompt_tokens"] == huge  # JSON keeps the number as it came
    journal.close()


def test_text_with_lone_surrogates_is_stored_escaped(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "journal.sqlite", clock=lambda: T0)
    run_id = journal.start_run(
        "decide", ["--data", "caf\udce9.csv"], config_hash="c", profile_hash="p", versions={}
    )
    recorder = journal.recorder(run_id)
    recorder.cycle_finished(
        "t1",
        status="decided",
        decision={"symbol": "BTC/USDT", "action": "hold", "rationale": "model said \ud800"},
        trace={"turns": [{"index": 1, "content": "\udfff", "tool_calls": []}]},
        signals=[],
    )
    record = journal.get_cycle("t1")
    # Stored as a JSON escape, read back as it was given.
    assert record["run"]["argv"] == ["--data", "caf\udce9.csv"]
    assert record["turns"][0]["content"] == "\\udfff"
    assert record["decision"]["rationale"] == "model said \ud800"
    journal.close()


@pytest.mark.parametrize(
    ("column", "stored"),
    [
        ("decision", "{not json"),
        ("trace", "[1, 2]"),
        ("context", '"x"'),
        ("usage", "\udcff"),
        ("signals", "{}"),
    ],
)
def test_a_damaged_json_column_is_one_line_naming_the_journal(
    tmp_path: Path, column: str, stored: str
) -> None:
    path = tmp_path / "journal.sqlite"
    journal = Journal(path, clock=lambda: T0)
    journal.recorder(None).cycle_finished(
        "t1",
        status="decided",
        decision={"symbol": "BTC/USDT", "action": "hold", "timestamp": T0},
        trace={"turns": []},
        signals=[],
    )
    journal.close()
    db = sqlite3.connect(path)
    db.execute(
        f"UPDATE cycles SET {column} = ?", (stored.encode("utf-8", "surrogateescape"),)
    )  # test's own column names
    db.commit()
    db.close()
    with Journal(path) as damaged:
        assert [row["trace_id"] for row in damaged.list_cycles()] == ["t1"]  # the listing still shows it
        readers = [lambda: damaged.get_cycle("t1")]
        if column in ("decision", "context"):
            readers.append(damaged.scorable_cycles)
        for read in readers:
            with pytest.raises(DataError) as caught:
                read()
            assert f"journal {path} is damaged" in caught.value.one_line()
            assert "\n" not in caught.value.one_line()
