"""``rez journal prune/vacuum`` and the journal's backtest cycles, as a user meets them in a shell."""

from __future__ import annotations

import io
import json
import logging
import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from rez_cli.journal import Journal
from rez_cli.journal.migrations import MIGRATIONS
from tests.support.cli import Result, run
from tests.support.golden import GOLDEN_DIR
from tests.support.openai_server import FakeOpenAI, Reply, reply, tool_calls

REPO = Path(__file__).resolve().parents[2]
DAY = 24 * 3_600_000
T0 = 1_700_000_000_000  # 2023-11-14T22:13:20Z
FIXTURE = REPO / "tests" / "fixtures" / "journal_v3"
RULES_DAY = ("--exchange", "sim", "--mode", "rules", "--from", "2021-01-01", "--to", "2021-01-02", "--json")


def one_line_exit_2(result: Result) -> str:
    assert result.exit_code == 2, result
    assert result.stdout == ""
    [line] = result.stderr.splitlines()
    assert line.startswith("rez: error: ")
    return line


class Clock:
    def __init__(self) -> None:
        self.now = T0

    def __call__(self) -> int:
        return self.now


def live_cycle(journal: Journal, clock: Clock, trace_id: str, *, day: int, score: bool = False) -> None:
    """A cron run's cycle, ``day`` days after T0: a turn with a tool call, a policy check, maybe a score."""
    clock.now = T0 + day * DAY
    recorder = journal.recorder(
        journal.start_run("decide", [], config_hash="c", profile_hash="p", versions={})
    )
    recorder.cycle_started(
        trace_id, symbol="BTC/USDT", exchange="binance", simulated=False, mode="react", model="m",
        profile={"name": "moderate"}, as_of_ms=clock.now, candles={}, context={"last_price": 100.0},
        context_text="BTC/USDT last 100",
    )  # fmt: skip
    call = {"id": "c1", "name": "fetch_indicator", "arguments": "{}", "ok": True, "content": "rsi 1h 55"}
    recorder.turn_recorded(trace_id, {"index": 1, "content": "checking", "tool_calls": [call]})
    recorder.cycle_finished(
        trace_id,
        status="decided",
        decision={"symbol": "BTC/USDT", "action": "hold", "timestamp": clock.now, "usage": {}},
        trace={"verdicts": [{"checks": [{"rule": "stop_required", "passed": True, "detail": "ok"}]}]},
        signals=[],
    )
    if score:
        journal.save_score(trace_id, horizon=4, outcome="neither", r_multiple=None, exit_price=None,
                           exit_ms=None, details={})  # fmt: skip


@pytest.fixture
def live_journal(tmp_path: Path) -> Path:
    path = tmp_path / "live.sqlite"
    clock = Clock()
    with Journal(path, clock=clock) as journal:
        live_cycle(journal, clock, "old0000000000000", day=0, score=True)
        live_cycle(journal, clock, "new0000000000000", day=10)
    ended_runs(path)
    return path


def ended_runs(path: Path) -> None:
    """Mark every run of ``path`` as made by a process that has ended.

    Runs made in this test process carry its pid, alive, and a prune leaves a run under way alone;
    a user's runs have ended by the time they prune them.
    """
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE runs SET pid = ?", (ended.pid,))
    db.close()


class Terminal(io.StringIO):
    """A stdin that is a terminal, with a user's answers typed in advance."""

    def isatty(self) -> bool:
        return True


def trace_ids(path: Path) -> list[str]:
    with Journal(path, create=False) as journal:
        return sorted(row["trace_id"] for row in journal.list_cycles(limit=None))


def test_prune_asks_before_deleting_old_live_cycles_with_what_hangs_on_them(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, live_journal: Path
) -> None:
    prune = ("journal", "prune", "--before", "2023-11-20", "--journal", str(live_journal))
    # Not at a terminal, nothing to ask on: refused, nothing deleted.
    line = one_line_exit_2(run(capsys, *prune))
    assert "would delete 1 live cycle journaled before 2023-11-20" in line
    assert "pass --yes to delete without asking" in line
    assert trace_ids(live_journal) == ["new0000000000000", "old0000000000000"]

    monkeypatch.setattr(sys, "stdin", Terminal("n\n"))
    declined = run(capsys, *prune)
    assert declined.exit_code == 0
    assert f"delete 1 live cycle journaled before 2023-11-20 from {live_journal}? [y/N]" in declined.stderr
    assert "nothing deleted" in declined.stderr
    assert trace_ids(live_journal) == ["new0000000000000", "old0000000000000"]

    monkeypatch.setattr(sys, "stdin", Terminal("y\n"))
    done = run(capsys, *prune)
    assert done.exit_code == 0, done.stderr
    assert done.stdout.split(" from ")[0] == (
        "deleted 1 live cycle, 1 turn, 1 tool call, 1 verdict, 1 score, 1 run"
    )
    assert trace_ids(live_journal) == ["new0000000000000"]
    with sqlite3.connect(live_journal) as db:
        assert db.execute("SELECT COUNT(*) FROM runs").fetchone() == (1,)
        assert db.execute("SELECT COUNT(*) FROM scores").fetchone() == (0,)
    db.close()
    # Nothing older is left: said so, exit 0.
    again = run(capsys, *prune, "--yes")
    assert again.exit_code == 0
    assert again.stdout.startswith("nothing to delete: no live cycle journaled before 2023-11-20")


def test_prune_backtests_deletes_whole_backtests_and_leaves_live_cycles(
    capsys: pytest.CaptureFixture[str], isolated_env: Path
) -> None:
    backtest = run(capsys, "backtest", "BTC/USDT", *RULES_DAY)
    assert backtest.exit_code == 0, backtest.stderr
    decided = run(
        capsys, "decide", "BTC/USDT", "--exchange", "sim", "--mode", "rules", "--as-of", "2021-02-01"
    )
    assert decided.exit_code == 0, decided.stderr
    journal = isolated_env / "data" / "journal.sqlite"
    ended_runs(journal)

    stats = run(capsys, "traces", "stats", "--json").json_lines()[0]
    assert (stats["cycles"], stats["live"]["cycles"], stats["backtest"]["cycles"]) == (25, 1, 24)
    assert stats["backtest"]["by_mode"] == {"rules": 24}
    assert stats["live"]["by_mode"] == {"rules": 1}
    shown = run(capsys, "traces", "stats")
    assert shown.stdout.startswith("live cycles\n")
    assert "\nbacktest cycles\n" in shown.stdout

    pruned = run(capsys, "journal", "prune", "--before", "2100-01-01", "--backtests", "--yes")
    assert pruned.exit_code == 0, pruned.stderr
    # Its 24 cycles, its run, and its payloads: 24 inputs, 24 records and the profile.
    assert pruned.stdout.startswith("deleted 24 backtest cycles, 1 run, 49 stored payloads from ")
    with Journal(journal, create=False) as opened:
        [left] = opened.list_cycles(limit=None)
    assert left["backtest_id"] is None
    with sqlite3.connect(journal) as db:
        assert db.execute("SELECT COUNT(*) FROM blobs").fetchone() == (0,)
        # Its stored report, kept for rez audit, goes with it.
        assert db.execute("SELECT COUNT(*) FROM backtests").fetchone() == (0,)
    db.close()

    vacuumed = run(capsys, "journal", "vacuum")
    assert vacuumed.exit_code == 0, vacuumed.stderr
    sizes = vacuumed.stdout.removeprefix(f"journal {journal}: ").split()
    assert (sizes[2], sizes[5]) == ("before,", "after")
    assert journal.stat().st_size < 200 * 1024  # a live cycle's worth, and the empty tables
    assert trace_ids(journal) == [left["trace_id"]]


def test_traces_show_a_rules_backtest_cycle_with_its_context_and_export_its_tool_results(
    capsys: pytest.CaptureFixture[str], isolated_env: Path
) -> None:
    backtest = run(capsys, "backtest", "BTC/USDT", *RULES_DAY)
    assert backtest.exit_code == 0, backtest.stderr
    decision = json.loads(backtest.stdout)["decisions"][5]
    shown = run(capsys, "traces", "show", decision["trace_id"])
    assert shown.exit_code == 0, shown.stderr
    assert f"trace {decision['trace_id']} · BTC/USDT on sim · mode rules" in shown.stdout
    assert "BTC/USDT on sim · as of 2021-01-01T05:00:00Z" in shown.stdout
    for timeframe in ("15m", "1h", "4h"):
        assert any(line.startswith(f"{timeframe} ") for line in shown.stdout.splitlines())
    assert f"BTC/USDT · {decision['action'].upper()}" in shown.stdout
    exported = json.loads(run(capsys, "traces", "export", decision["trace_id"]).stdout)
    assert exported["trace"]["context"] == exported["context"]
    assert [call["content"].split()[:2] for call in exported["trace"]["tool_calls"]] == [
        ["ema", "4h"],
        ["rsi", "15m"],
        ["atr", "1h"],
    ]
    assert exported["decision"]["action"] == decision["action"]


def scripted(body: dict[str, Any]) -> Reply:
    """A model that checks the 1h RSI once, then holds."""
    if not any(message["role"] == "tool" for message in body["messages"]):
        return tool_calls([("fetch_indicator", {"indicator": "rsi", "timeframe": "1h", "lookback": 1})])
    return reply(json.dumps({"action": "hold", "confidence": 0.5, "rationale": "nothing to do"}))


@pytest.fixture
def model(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeOpenAI]:
    with FakeOpenAI.start([scripted], repeat_last=True) as fake:
        monkeypatch.setenv("OPENAI_BASE_URL", fake.base_url)
        monkeypatch.setenv("OPENAI_API_KEY", "sk-test-journal")
        monkeypatch.setenv("REZ__LLM__MODEL", "test-model")
        yield fake


def test_traces_show_a_react_backtest_cycle_with_its_tool_results(
    capsys: pytest.CaptureFixture[str], isolated_env: Path, model: FakeOpenAI
) -> None:
    backtest = run(
        capsys, "backtest", "BTC/USDT", "--exchange", "sim", "--mode", "react", "--from", "2021-01-01",
        "--to", "2021-01-01T12:00", "--every", "4", "--json",
    )  # fmt: skip
    assert backtest.exit_code == 0, backtest.stderr
    decision = json.loads(backtest.stdout)["decisions"][1]
    shown = run(capsys, "traces", "show", decision["trace_id"])
    assert shown.exit_code == 0, shown.stderr
    assert "mode react · model test-model" in shown.stdout
    assert "BTC/USDT · turn 1" in shown.stdout
    assert '✓ fetch_indicator({"indicator": "rsi", "timeframe": "1h", "lookback": 1})' in shown.stdout
    assert "    rsi 1h" in shown.stdout
    assert "BTC/USDT · HOLD" in shown.stdout
    assert "sk-test-journal" not in shown.stdout


def test_the_first_write_to_an_older_journal_keeps_a_copy_and_its_traces_read_as_before(
    capsys: pytest.CaptureFixture[str], isolated_env: Path, caplog: pytest.LogCaptureFixture
) -> None:
    journal = isolated_env / "data" / "journal.sqlite"
    journal.parent.mkdir(parents=True)
    shutil.copyfile(FIXTURE / "journal.sqlite", journal)
    cycles: dict[str, str] = json.loads((FIXTURE / "cycles.json").read_text(encoding="utf-8"))
    caplog.set_level(logging.WARNING, logger="rez_cli.journal")
    decided = run(
        capsys, "decide", "BTC/USDT", "--exchange", "sim", "--mode", "rules", "--as-of", "2021-07-01"
    )
    assert decided.exit_code == 0, decided.stderr
    backup = journal.with_name("journal.sqlite.bak-v3")
    assert [record.getMessage() for record in caplog.records if record.name == "rez_cli.journal"] == [
        f"note: journal {journal} was written by an older Rez; it is kept as it was in {backup} "
        "before this Rez brings it up to date"
    ]
    assert backup.read_bytes() != journal.read_bytes()
    with sqlite3.connect(backup) as db:
        assert [row[0] for row in db.execute("SELECT name FROM _migrations")] == [
            m.name for m in MIGRATIONS[:3]
        ]
        assert db.execute("SELECT COUNT(*) FROM cycles").fetchone() == (13,)
    db.close()
    with Journal(journal, create=False) as opened:
        assert opened.migrations() == [migration.name for migration in MIGRATIONS]
    # Migrated, the old cycles show as they did (tests/journal/test_old_journal.py's golden files).
    for name, trace_id in cycles.items():
        shown = run(capsys, "traces", "show", trace_id)
        golden = (GOLDEN_DIR / "journal_v3" / f"traces_show_{name}.txt").read_text(encoding="utf-8")
        assert golden.split("--- stdout\n")[1].split("--- stderr\n")[0] == shown.stdout


def test_the_copy_before_a_migration_is_said_once_on_stderr(tmp_path: Path) -> None:
    home = tmp_path / "home"
    journal = home / "data" / "journal.sqlite"
    journal.parent.mkdir(parents=True)
    shutil.copyfile(FIXTURE / "journal.sqlite", journal)
    env = {key: value for key, value in os.environ.items() if not key.startswith(("REZ_", "OPENAI_"))}
    env["REZ_HOME"] = str(home)

    def rez(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "rez_cli", *args],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )

    listed = rez("traces", "list")
    assert (listed.returncode, listed.stderr) == (0, "")
    assert not journal.with_name("journal.sqlite.bak-v3").exists()  # reading changes nothing
    pruned = rez("journal", "prune", "--before", "1999-01-01", "--yes")
    assert (pruned.returncode, pruned.stderr) == (0, "")  # nothing to delete, nothing written
    decided = rez("decide", "BTC/USDT", "--exchange", "sim", "--mode", "rules", "--as-of", "2021-07-01")
    assert decided.returncode == 0, decided.stderr
    assert decided.stderr.count("note: journal ") == 1
    assert f"it is kept as it was in {journal}.bak-v3" in decided.stderr
    again = rez("decide", "BTC/USDT", "--exchange", "sim", "--mode", "rules", "--as-of", "2021-07-02")
    assert again.returncode == 0
    # No second word about the journal; only what the paper account did since the first run.
    assert all(line.startswith("note: paper BTC/USDT: ") for line in again.stderr.splitlines())


@pytest.mark.parametrize(
    ("args", "said"),
    [
        (("journal", "prune"), "Missing option '--before'"),
        (("journal", "prune", "--before", "last week"), "--before: cannot read 'last week' as a date"),
        (("journal", "prune", "--before", "2021-01-01", "--journal", "{missing}"), "no journal at"),
        (("journal", "vacuum", "--journal", "{missing}"), "no journal at"),
        (("journal", "prune", "--before", "2021-01-01", "--backtests", "--journal", "{garbage}"), "garbage"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, args: tuple[str, ...], said: str
) -> None:
    garbage = tmp_path / "garbage.sqlite"
    garbage.write_bytes(b"\x00\xff" * 4000)
    paths = {"missing": str(tmp_path / "missing.sqlite"), "garbage": str(garbage)}
    line = one_line_exit_2(run(capsys, *(arg.format(**paths) for arg in args)))
    assert said in line
    assert not (tmp_path / "missing.sqlite").exists()
