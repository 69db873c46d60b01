"""Backtest cycles in blobs: read back exactly as a live cycle is, a few KB each, and whole after a prune."""

from __future__ import annotations

import asyncio
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from rez_cli.backtest.walk import BacktestRequest, run_backtest
from rez_cli.config.settings import load_profile, load_settings
from rez_cli.errors import DataError
from rez_cli.journal import INCOMPLETE, Journal, JournalRecorder
from rez_cli.journal.blobs import Blobs, Dictionary
from rez_cli.market.candles import parse_time

HOUR = 3_600_000
# Every cycle of a backtest as the orchestrator hands it to the recorder: (method, trace id, arguments).
Call = tuple[str, str, dict[str, Any]]
# What differs between two journals holding the same cycle: when and under which run it was written.
WHEN_AND_WHERE = {"run_id", "run", "started_ms", "finished_ms", "backtest_id"}


@pytest.fixture(scope="module")
def backtest_calls() -> list[Call]:
    """The recorder calls of a five-day rules backtest on the sim market (trades and holds)."""
    calls: list[Call] = []
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("REZ_HOME", str(Path(os.environ.get("TMPDIR", "/tmp")) / f"rez-bt-{os.getpid()}"))
        for method in ("cycle_started", "cycle_finished"):
            original = getattr(JournalRecorder, method)

            def spy(
                self: JournalRecorder,
                trace_id: str,
                *,
                _method: str = method,
                _original: Any = original,
                **kwargs: Any,
            ) -> None:
                calls.append((_method, trace_id, kwargs))
                _original(self, trace_id, **kwargs)

            patch.setattr(JournalRecorder, method, spy)
        start = parse_time("2021-02-01")
        request = BacktestRequest(
            symbol="BTC/USDT",
            start_ms=start,
            end_ms=start + 5 * 24 * HOUR,
            timeframe="1h",
            mode="rules",
            exchange="sim",
            baselines=False,
        )
        asyncio.run(run_backtest(load_settings().value, load_profile("moderate").value, request))
    return calls


def replay(calls: list[Call], journal: Journal, backtest_id: str | None) -> None:
    run_id = journal.start_run("backtest", [], config_hash="c", profile_hash="p", versions={})
    recorder = journal.recorder(run_id, backtest_id=backtest_id)
    with journal.batched():
        for method, trace_id, kwargs in calls:
            getattr(recorder, method)(trace_id, **kwargs)


def without(record: dict[str, Any], keys: set[str]) -> dict[str, Any]:
    return {key: value for key, value in record.items() if key not in keys}


def test_a_backtest_cycle_reads_back_as_the_same_cycle_kept_in_columns(
    backtest_calls: list[Call], tmp_path: Path
) -> None:
    packed, inline = Journal(tmp_path / "packed.sqlite"), Journal(tmp_path / "inline.sqlite")
    replay(backtest_calls, packed, "bt-test")
    replay(backtest_calls, inline, None)
    trace_ids = [trace_id for method, trace_id, _ in backtest_calls if method == "cycle_finished"]
    assert len(trace_ids) == 5 * 24
    actions = set()
    for trace_id in trace_ids:
        stored, expected = packed.get_cycle(trace_id), inline.get_cycle(trace_id)
        assert without(stored, WHEN_AND_WHERE) == without(expected, WHEN_AND_WHERE)
        # Everything traces show and export read is there: context, its text, tool results, checks.
        assert stored["context"]["symbol"] == "BTC/USDT"
        assert stored["trace"]["context"] == stored["context"]
        assert stored["trace"]["context_text"] == stored["context_text"]
        assert [call["name"] for call in stored["trace"]["tool_calls"]] == ["fetch_indicator"] * 3
        assert stored["trace"]["tool_calls"][0]["content"].startswith("ema 4h")
        actions.add(stored["action"])
        if stored["action"] != "hold":
            assert stored["verdicts"]
            assert all(row["passed"] for row in stored["verdicts"])
    assert actions == {"buy", "sell", "hold"} or {"hold"} < actions
    assert [without(row, WHEN_AND_WHERE) for row in packed.list_cycles(limit=None)] == [
        without(row, WHEN_AND_WHERE) for row in inline.list_cycles(limit=None)
    ]
    prices = packed.backtest_prices("bt-test")
    assert len(prices) == len(trace_ids)
    assert prices[0] == (backtest_calls[0][2]["as_of_ms"], backtest_calls[0][2]["context"].last_price)


def test_a_batched_backtest_stopped_mid_cycle_keeps_that_cycle_incomplete_with_its_inputs(
    backtest_calls: list[Call], tmp_path: Path
) -> None:
    """Batched, a cycle's inputs wait for its end to be written with its record: the batch's end
    writes those of a cycle that never got there."""
    packed, inline = Journal(tmp_path / "packed.sqlite"), Journal(tmp_path / "inline.sqlite")
    replay(backtest_calls, inline, None)
    started = backtest_calls[:5]  # two whole cycles, and the start of a third
    assert [method for method, _, _ in started][-1] == "cycle_started"
    recorder = packed.recorder(None, backtest_id="bt-test")

    def interrupted_backtest() -> None:
        with packed.batched():
            for method, trace_id, kwargs in started:
                getattr(recorder, method)(trace_id, **kwargs)
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        interrupted_backtest()
    reread = Journal(tmp_path / "packed.sqlite")
    for _, trace_id, _ in started:
        stored, expected = reread.get_cycle(trace_id), inline.get_cycle(trace_id)
        assert stored["context"] == expected["context"]
        assert stored["context_text"] == expected["context_text"]
    interrupted = reread.get_cycle(started[-1][1])
    assert interrupted["status"] == INCOMPLETE
    assert interrupted["context"]["symbol"] == "BTC/USDT"
    assert reread.get_cycle(started[0][1])["trace"] == inline.get_cycle(started[0][1])["trace"]


def test_a_batched_backtest_cycle_is_written_once_at_its_end_or_when_a_turn_needs_its_row(
    backtest_calls: list[Call], tmp_path: Path
) -> None:
    """Batched, a backtest cycle's row waits for its end (one write a cycle), unless a turn of it is
    recorded first; either way it reads back as the cycle kept in columns does."""
    from tests.journal.test_store import make_turn

    packed, inline = Journal(tmp_path / "packed.sqlite"), Journal(tmp_path / "inline.sqlite")
    (_, first, started), (_, _, finished) = backtest_calls[:2]
    recorders = {
        journal: journal.recorder(None, backtest_id=backtest_id)
        for journal, backtest_id in ((packed, "bt-test"), (inline, None))
    }
    for journal, recorder in recorders.items():
        with journal.batched():
            recorder.cycle_started(first, **started)
            if journal is packed:
                assert packed.list_cycles(limit=None) == []  # its own connection sees no row yet
            recorder.turn_recorded(first, make_turn(1))
            recorder.cycle_finished(first, **finished)
    stored, expected = packed.get_cycle(first), inline.get_cycle(first)
    assert without(stored, WHEN_AND_WHERE) == without(expected, WHEN_AND_WHERE)
    assert stored["turn_count"] == 1


def test_a_turn_that_fails_to_be_written_takes_the_held_row_with_it_and_the_end_writes_it(
    backtest_calls: list[Call], tmp_path: Path
) -> None:
    packed, inline = Journal(tmp_path / "packed.sqlite"), Journal(tmp_path / "inline.sqlite")
    (_, first, started), (_, _, finished) = backtest_calls[:2]
    replay(backtest_calls[:2], inline, None)
    recorder = packed.recorder(None, backtest_id="bt-test")
    with packed.batched():
        recorder.cycle_started(first, **started)
        with pytest.raises(AttributeError):  # a tool call that is not a mapping, after the row's insert
            recorder.turn_recorded(first, {"index": 1, "content": "x", "tool_calls": [5]})
        recorder.cycle_finished(first, **finished)
    stored, expected = packed.get_cycle(first), inline.get_cycle(first)
    assert without(stored, WHEN_AND_WHERE) == without(expected, WHEN_AND_WHERE)


def test_a_backtest_cycle_takes_a_few_kilobytes(backtest_calls: list[Call], tmp_path: Path) -> None:
    packed, inline = tmp_path / "packed.sqlite", tmp_path / "inline.sqlite"
    for path, backtest_id in ((packed, "bt-test"), (inline, None)):
        with Journal(path) as journal:
            replay(backtest_calls, journal, backtest_id)
    cycles = len(backtest_calls) // 2
    # 120 cycles: the schema's empty pages are still a tenth of the file; bench_journal measures more.
    # Each cycle's payloads are deflated against the cycle before's, whose window of candles (and
    # price action) is the same but for one candle.
    assert os.path.getsize(packed) / cycles < 3 * 1024
    assert os.path.getsize(packed) * 4 < os.path.getsize(inline)
    with sqlite3.connect(packed) as db:
        assert db.execute(
            "SELECT COUNT(*) FROM cycles WHERE context IS NOT NULL OR trace IS NOT NULL"
        ).fetchone() == (0,)
        # One profile for the whole backtest, and each cycle's inputs and record (the first of each
        # is also what the others are deflated against).
        assert db.execute("SELECT COUNT(*) FROM blobs").fetchone() == (2 * cycles + 1,)


def test_a_second_backtest_over_the_same_moments_stores_their_inputs_once(
    backtest_calls: list[Call], tmp_path: Path
) -> None:
    with Journal(tmp_path / "j.sqlite") as journal:
        replay(backtest_calls, journal, "bt-first")
        with sqlite3.connect(journal.path) as db:
            inputs = db.execute("SELECT inputs_blob FROM cycles ORDER BY as_of_ms").fetchall()
        renamed = [(method, trace_id + "-again", kwargs) for method, trace_id, kwargs in backtest_calls]
        replay(renamed, journal, "bt-again")
        with sqlite3.connect(journal.path) as db:
            again = db.execute(
                "SELECT inputs_blob FROM cycles WHERE backtest_id = 'bt-again' ORDER BY as_of_ms"
            ).fetchall()
        assert again == inputs
        assert (
            journal.get_cycle(renamed[-1][1])["context"]
            == journal.get_cycle(backtest_calls[-1][1])["context"]
        )


def test_a_prune_leaves_a_backtest_still_running_alone(backtest_calls: list[Call], tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite")
    run_id = journal.start_run("backtest", [], config_hash="c", profile_hash="p", versions={})
    recorder = journal.recorder(run_id, backtest_id="bt-test")
    for method, trace_id, kwargs in backtest_calls[:4]:
        getattr(recorder, method)(trace_id, **kwargs)
    # Another process prunes every backtest, while this one (alive: its run's pid) still writes.
    other = Journal(journal.path)
    later = parse_time("2100-01-01")
    assert other.prune_target(later, backtests=True).cycles == 0
    assert other.prune(later, backtests=True).cycles == 0
    for method, trace_id, kwargs in backtest_calls[4:8]:
        getattr(recorder, method)(trace_id, **kwargs)
    assert [journal.get_cycle(trace_id)["context"]["symbol"] for _, trace_id, _ in backtest_calls[:8]] == [
        "BTC/USDT"
    ] * 8
    # Once its process has ended, the backtest goes whole, its payloads with it.
    ended = subprocess.Popen([sys.executable, "-c", "pass"])
    ended.wait()
    with sqlite3.connect(journal.path) as db:
        db.execute("UPDATE runs SET pid = ?", (ended.pid,))
    assert other.prune_target(later, backtests=True).cycles == 4
    count = other.prune(later, backtests=True)
    assert (count.cycles, count.runs, count.blobs) == (4, 1, 2 * 4 + 1)
    assert journal.list_cycles() == []


def test_a_blob_is_never_stored_against_a_dictionary_that_is_gone(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    Journal(path).close()
    blobs, text = Blobs(path), '{"context":"' + "BTC/USDT 1h " * 40 + '"}'
    with sqlite3.connect(path) as db:
        assert blobs.put(db, text, Dictionary(blob_id=999, data=text.encode())) is None
        assert db.execute("SELECT COUNT(*) FROM blobs").fetchone() == (0,)
        dictionary = blobs.dictionary(db, text)
        stored = blobs.put(db, text[:-2] + ' and more"}', dictionary)
        assert stored is not None
        assert Blobs(path).text(db, stored, "a test's payload") == text[:-2] + ' and more"}'


def test_a_damaged_blob_is_one_line_naming_the_journal(backtest_calls: list[Call], tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    with Journal(path) as journal:
        replay(backtest_calls[:4], journal, "bt-test")
    trace_id = backtest_calls[3][1]
    with sqlite3.connect(path) as db:
        db.execute(
            "UPDATE blobs SET body = X'00FF00FF'"
            " WHERE id = (SELECT record_blob FROM cycles WHERE trace_id = ?)",
            (trace_id,),
        )
    with Journal(path) as damaged:
        assert [row["trace_id"] for row in damaged.list_cycles()] == [trace_id, backtest_calls[0][1]]
        with pytest.raises(DataError) as caught:
            damaged.get_cycle(trace_id)
    line = caught.value.one_line()
    assert f"journal {path} is damaged: a cycle's record does not inflate" in line
    assert "\n" not in line


def test_chains_of_blobs_stay_short_and_read_back(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from rez_cli.journal.blobs import KEYFRAME_EVERY
    from tests.support.cli import run

    journal = tmp_path / "chained.sqlite"
    result = run(
        capsys, "backtest", "BTC/USDT", "--exchange", "sim", "--mode", "rules", "--no-baselines",
        "--from", "2021-01-01", "--to", "2021-01-03", "--journal", str(journal), "--json",
    )  # fmt: skip
    assert result.exit_code == 0, result.stderr
    decisions = result.json_lines()[0]["decisions"]
    with sqlite3.connect(journal) as db:
        links = dict(db.execute("SELECT id, dictionary FROM blobs").fetchall())
        held = [row[0] for row in db.execute("SELECT inputs_blob FROM cycles WHERE inputs_blob IS NOT NULL")]

    def depth(blob: int) -> int:
        steps = 0
        while links[blob] is not None:
            blob, steps = links[blob], steps + 1
        return steps

    # A chain holds KEYFRAME_EVERY blobs: the keyframe, then each deflated against the one before.
    assert max(depth(blob) for blob in held) == KEYFRAME_EVERY - 1
    # The last cycle, at the end of a chain, reads back whole.
    shown = run(capsys, "traces", "export", decisions[-1]["trace_id"], "--journal", str(journal))
    assert shown.exit_code == 0, shown.stderr
    assert shown.json_lines()[0]["context"]["symbol"] == "BTC/USDT"
