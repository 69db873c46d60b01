"""The journal on a real SQLite file in a tmpdir: schema, write-as-you-go, reads, secrets, locks."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from rez_cli.cycle.recording import CycleRecorder
from rez_cli.decision.model import Decision, Usage
from rez_cli.errors import ConfigError, DataNotFound, ExitCode, LockHeld, UsageError
from rez_cli.journal import Journal, JournalRecorder, default_journal_path, resolve_journal_path
from rez_cli.journal.migrations import MIGRATIONS

REPO = Path(__file__).resolve().parents[2]
T0 = 1_700_000_000_000
HOUR = 3_600_000


class Clock:
    def __init__(self, now: int = T0) -> None:
        self.now = now

    def __call__(self) -> int:
        return self.now


def make_turn(
    index: int, content: str = "thinking", arguments: str = '{"indicator":"rsi"}'
) -> dict[str, Any]:
    return {
        "index": index,
        "content": content,
        "tools_offered": True,
        "tool_calls": [
            {
                "id": f"call_{index}",
                "name": "fetch_indicator",
                "arguments": arguments,
                "ok": True,
                "content": "rsi_14 1h: 55.2 56.0",
                "rows": [{"timestamp": T0, "value": 55.2}],
                "cached": False,
                "duration_ms": 1.5,
            }
        ],
        "prompt_tokens": 120,
        "completion_tokens": 30,
        "duration_ms": 410.0,
    }


def make_decision(
    trace_id: str,
    *,
    symbol: str = "BTC/USDT",
    action: str = "buy",
    error: str | None = None,
    source: str = "native",
    mode: str = "react",
    cost_usd: float = 0.01,
    timestamp: int = T0,
    rationale: str = "trend up",
) -> dict[str, Any]:
    trade = action != "hold"
    return Decision(
        symbol=symbol,
        action=action,  # type: ignore[arg-type]  # tests pass the literal strings
        entry_price=100.0 if trade else None,
        tp_price=(110.0 if action == "buy" else 90.0) if trade else None,
        sl_price=(95.0 if action == "buy" else 105.0) if trade else None,
        leverage=1.0,
        size_pct=10.0 if trade else 0.0,
        confidence=0.7 if error is None else 0.0,
        rationale=rationale,
        invalidation="1h close below 95" if trade else None,
        mode=mode,
        source=source,  # type: ignore[arg-type]
        error=error,
        usage=Usage(prompt_tokens=100, completion_tokens=20, llm_calls=1, tool_calls=1, cost_usd=cost_usd),
        trace_id=trace_id,
        timestamp=timestamp,
    ).model_dump(mode="json")


def start_cycle(
    recorder: JournalRecorder,
    trace_id: str,
    *,
    symbol: str = "BTC/USDT",
    exchange: str = "binance",
    mode: str = "react",
    model: str | None = "gpt-test",
    as_of_ms: int = T0,
    context: dict[str, Any] | None = None,
    context_text: str = "BTC/USDT last 100",
) -> None:
    recorder.cycle_started(
        trace_id,
        symbol=symbol,
        exchange=exchange,
        simulated=exchange == "sim",
        mode=mode,
        model=model,
        profile={"name": "moderate", "max_leverage": 3.0},
        as_of_ms=as_of_ms,
        candles={"1h": {"count": 300, "first_open_ms": T0 - 300 * HOUR, "last_close_ms": T0, "sha256": "ab"}},
        context=context or {"symbol": symbol, "last_price": 100.0},
        context_text=context_text,
    )


def record_cycle(
    journal: Journal,
    trace_id: str,
    *,
    turns: int = 1,
    model: str | None = "gpt-test",
    exchange: str = "binance",
    as_of_ms: int = T0,
    status: str | None = None,
    **decision: Any,
) -> None:
    """A whole cycle as the orchestrator records it: started, ``turns`` turns, finished."""
    recorder = journal.recorder(1)
    mode = decision.get("mode", "react")
    symbol = decision.get("symbol", "BTC/USDT")
    start_cycle(
        recorder, trace_id, symbol=symbol, exchange=exchange, mode=mode, model=model, as_of_ms=as_of_ms
    )
    for index in range(1, turns + 1):
        recorder.turn_recorded(trace_id, make_turn(index))
    result = make_decision(trace_id, timestamp=as_of_ms, **decision)
    checks = [{"rule": "stop_required", "passed": True, "detail": "sl set"}]
    if result["error"] == "tp_not_above_entry":
        checks.append({"rule": "tp_side", "passed": False, "detail": "tp 90 <= entry 100"})
    recorder.cycle_finished(
        trace_id,
        status=status or ("held" if result["error"] else "decided"),
        decision=result,
        trace={"mode": mode, "verdicts": [{"error": result["error"], "checks": checks}]},
        signals=[{"signal_type": "decision"}],
    )


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def journal(tmp_path: Path, clock: Clock) -> Journal:
    opened = Journal(tmp_path / "j" / "journal.sqlite", clock=clock)
    opened.start_run("decide", ["BTC/USDT"], config_hash="c", profile_hash="p", versions={"rez": "0.1.0"})
    return opened


# -- schema -------------------------------------------------------------------------------------------


def test_opening_again_applies_no_migration_twice(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    first = Journal(path)
    every = [migration.name for migration in MIGRATIONS]
    assert first.migrations() == every
    first.close()
    second = Journal(path)
    assert second.migrations() == every
    second.close()
    with sqlite3.connect(path) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert db.execute("SELECT COUNT(*) FROM _migrations").fetchone()[0] == len(every)
    assert {"runs", "cycles", "turns", "tool_calls", "verdicts", "scores", "blobs", "_migrations"} <= tables


def test_journal_file_is_in_wal_mode(journal: Journal) -> None:
    with sqlite3.connect(journal.path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_journal_path_defaults_under_rez_home_and_yields_to_settings_and_flag(isolated_env: Path) -> None:
    assert default_journal_path() == isolated_env / "data" / "journal.sqlite"
    assert resolve_journal_path(None, None) == default_journal_path()
    assert resolve_journal_path(None, Path("/x/from-settings.sqlite")) == Path("/x/from-settings.sqlite")
    assert resolve_journal_path(Path("/y/flag.sqlite"), Path("/x/s.sqlite")) == Path("/y/flag.sqlite")


def test_unwritable_path_is_one_line_config_error(tmp_path: Path) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    with pytest.raises(ConfigError) as caught:
        Journal(blocker / "journal.sqlite")
    assert str(blocker) in caught.value.one_line()
    assert "\n" not in caught.value.one_line()


def test_file_that_is_not_a_database_is_config_error(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    path.write_bytes(b"definitely not sqlite " * 100)
    with pytest.raises(ConfigError, match="not a database"):
        Journal(path)


def test_reader_gets_data_not_found_instead_of_a_new_file(tmp_path: Path) -> None:
    path = tmp_path / "typo.sqlite"
    with pytest.raises(DataNotFound, match="no journal at"):
        Journal(path, create=False)
    assert not path.exists()


def test_importing_the_store_loads_no_heavy_library() -> None:
    code = (
        "import sys, rez_cli.journal.store\n"
        "print(sorted(m for m in ('pandas', 'ccxt', 'openai', 'typer', 'rich') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "[]"


# -- write as you go ----------------------------------------------------------------------------------


def test_unfinished_cycle_and_its_turn_are_visible_to_another_reader(journal: Journal) -> None:
    recorder: CycleRecorder = journal.recorder(1)
    start_cycle(journal.recorder(1), "aaaa000011112222")
    recorder.turn_recorded("aaaa000011112222", make_turn(1, "let me check RSI"))

    reader = Journal(journal.path, create=False)
    [row] = reader.list_cycles()
    assert row["trace_id"] == "aaaa000011112222"
    assert row["status"] == "incomplete"
    assert row["finished_ms"] is None
    assert row["turn_count"] == 1
    record = reader.get_cycle("aaaa000011112222")
    assert record["status"] == "incomplete"
    assert record["decision"] is None
    [turn] = record["turns"]
    assert turn == make_turn(1, "let me check RSI")
    assert record["context_text"] == "BTC/USDT last 100"
    assert record["run"]["command"] == "decide"
    assert record["run"]["argv"] == ["BTC/USDT"]


def test_run_killed_mid_cycle_keeps_the_cycle_and_its_turns(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    script = textwrap.dedent(
        f"""
        import os, signal
        from pathlib import Path
        from rez_cli.journal import Journal
        journal = Journal(Path({str(path)!r}))
        run = journal.start_run("decide", [], config_hash="c", profile_hash="p", versions={{}})
        recorder = journal.recorder(run)
        recorder.cycle_started("killed0000000000", symbol="ETH/USDT", exchange="sim", simulated=True,
            mode="react", model="m", profile={{}}, as_of_ms=1, candles={{}}, context={{}}, context_text="ctx")
        recorder.turn_recorded("killed0000000000", {{"index": 1, "content": "first", "tool_calls": []}})
        recorder.turn_recorded("killed0000000000", {{"index": 2, "content": "second", "tool_calls": []}})
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True, check=False
    )
    assert done.returncode == -9, done.stderr
    record = Journal(path, create=False).get_cycle("killed")
    assert record["status"] == "incomplete"
    assert [turn["content"] for turn in record["turns"]] == ["first", "second"]


def test_finished_cycle_fills_decision_columns_and_one_verdict_row_per_check(journal: Journal) -> None:
    record_cycle(journal, "bbbb000011112222", action="hold", error="tp_not_above_entry", turns=2)
    record = journal.get_cycle("bbbb000011112222")
    assert record["status"] == "held"
    assert record["finished_ms"] is not None
    assert record["action"] == "hold"
    assert record["error"] == "tp_not_above_entry"
    assert record["source"] == "native"
    assert record["cost_usd"] == pytest.approx(0.01)
    assert record["llm_calls"] == 1
    assert record["tool_calls"] == 1
    assert record["turn_count"] == 2
    assert record["decision"]["trace_id"] == "bbbb000011112222"
    assert record["usage"]["prompt_tokens"] == 100
    assert record["signals"] == [{"signal_type": "decision"}]
    assert record["verdicts"] == [
        {"verdict_idx": 0, "rule": "stop_required", "passed": True, "detail": "sl set"},
        {"verdict_idx": 0, "rule": "tp_side", "passed": False, "detail": "tp 90 <= entry 100"},
    ]
    with sqlite3.connect(journal.path) as db:
        assert db.execute("SELECT COUNT(*) FROM verdicts").fetchone()[0] == 2


def test_cycle_that_failed_before_starting_is_still_recorded(journal: Journal) -> None:
    journal.recorder(1).cycle_finished(
        "cccc000011112222",
        status="held",
        decision=make_decision(
            "cccc000011112222", action="hold", error="exchange_unavailable", source="fallback"
        ),
        trace={},
        signals=[],
    )
    [row] = journal.list_cycles()
    assert row["status"] == "held"
    assert row["error"] == "exchange_unavailable"
    assert row["symbol"] == "BTC/USDT"
    assert row["exchange"] is None


def test_turns_known_only_from_the_trace_are_added_at_the_end(journal: Journal) -> None:
    recorder = journal.recorder(1)
    start_cycle(recorder, "dddd000011112222")
    recorder.turn_recorded("dddd000011112222", make_turn(1))
    recorder.cycle_finished(
        "dddd000011112222",
        status="decided",
        decision=make_decision("dddd000011112222"),
        trace={"turns": [make_turn(1), make_turn(2, "final answer")]},
        signals=[],
    )
    record = journal.get_cycle("dddd000011112222")
    assert [turn["content"] for turn in record["turns"]] == ["thinking", "final answer"]
    assert record["turn_count"] == 2


def test_non_finite_numbers_are_stored_as_null(journal: Journal) -> None:
    start_cycle(journal.recorder(1), "eeee000011112222", context={"rsi_14": float("nan"), "x": float("inf")})
    assert journal.get_cycle("eeee000011112222")["context"] == {"rsi_14": None, "x": None}


# -- reads --------------------------------------------------------------------------------------------


def test_list_is_newest_first_and_filters_by_symbol_action_since_and_limit(
    journal: Journal, clock: Clock
) -> None:
    for hour, (trace_id, symbol, action) in enumerate(
        [
            ("1000000000000000", "BTC/USDT", "buy"),
            ("2000000000000000", "ETH/USDT", "sell"),
            ("3000000000000000", "BTC/USDT", "hold"),
            ("4000000000000000", "BTC/USDT", "buy"),
        ]
    ):
        clock.now = T0 + hour * HOUR
        record_cycle(journal, trace_id, symbol=symbol, action=action)
    ids = [row["trace_id"][0] for row in journal.list_cycles()]
    assert ids == ["4", "3", "2", "1"]
    assert [row["trace_id"][0] for row in journal.list_cycles(symbol="BTC/USDT")] == ["4", "3", "1"]
    assert [row["trace_id"][0] for row in journal.list_cycles(action="buy")] == ["4", "1"]
    assert [row["trace_id"][0] for row in journal.list_cycles(since_ms=T0 + 2 * HOUR)] == ["4", "3"]
    assert [row["trace_id"][0] for row in journal.list_cycles(limit=2)] == ["4", "3"]
    assert [row["trace_id"][0] for row in journal.list_cycles(symbol="ETH/USDT", action="buy")] == []
    with pytest.raises(UsageError, match="unknown action 'long'"):
        journal.list_cycles(action="long")


def test_get_cycle_accepts_a_unique_prefix_only(journal: Journal) -> None:
    for trace_id in ("abc1230000000000", "abc4560000000000", "f00d000000000000"):
        record_cycle(journal, trace_id)
    assert journal.get_cycle("f00")["trace_id"] == "f00d000000000000"
    assert journal.get_cycle("abc1")["trace_id"] == "abc1230000000000"
    assert journal.get_cycle("abc4560000000000")["trace_id"] == "abc4560000000000"
    with pytest.raises(UsageError, match="ambiguous") as ambiguous:
        journal.get_cycle("abc")
    assert ambiguous.value.exit_code == ExitCode.USAGE
    with pytest.raises(DataNotFound, match="no trace 'zzz'"):
        journal.get_cycle("zzz")
    with pytest.raises(UsageError):
        journal.get_cycle("  ")


def test_stats_on_hand_made_cycles(journal: Journal, clock: Clock) -> None:
    clock.now = T0 - 10 * HOUR
    record_cycle(journal, "old0000000000000", action="buy", cost_usd=5.0, turns=9)
    clock.now = T0
    record_cycle(journal, "s100000000000000", action="buy", model="gpt-a", cost_usd=0.02, turns=2)
    record_cycle(journal, "s200000000000000", action="hold", model="gpt-a", source="repaired", cost_usd=0.04)
    record_cycle(
        journal,
        "s300000000000000",
        action="hold",
        model="gpt-a",
        error="llm_timeout",
        source="fallback",
        turns=3,
    )
    record_cycle(
        journal,
        "s400000000000000",
        action="hold",
        model="gpt-b",
        error="llm_timeout",
        source="fallback",
        turns=0,
    )
    record_cycle(
        journal,
        "s500000000000000",
        action="hold",
        model=None,
        mode="rules",
        error="tp_not_above_entry",
        turns=0,
    )
    start_cycle(journal.recorder(1), "s600000000000000", mode="react")

    summary = journal.stats(since_ms=T0)
    assert summary["cycles"] == 6
    assert summary["finished"] == 5
    assert summary["incomplete"] == 1
    assert summary["hold_rate"] == pytest.approx(4 / 5)
    assert summary["failure_rate"] == pytest.approx(3 / 5)
    assert summary["failures"] == {
        "llm_timeout": {"count": 2, "rate": pytest.approx(2 / 5)},
        "tp_not_above_entry": {"count": 1, "rate": pytest.approx(1 / 5)},
    }
    assert summary["repair_rate_by_model"] == {
        "gpt-a": {"cycles": 3, "repaired": 1, "rate": pytest.approx(1 / 3)},
        "gpt-b": {"cycles": 1, "repaired": 0, "rate": 0.0},
    }
    assert summary["avg_cost_usd"] == pytest.approx((0.02 + 0.04 + 0.01 + 0.01 + 0.01) / 5)
    assert summary["avg_turns"] == pytest.approx((2 + 1 + 3 + 0 + 0) / 5)
    assert summary["by_mode"] == {"react": 5, "rules": 1}
    assert summary["by_action"] == {"hold": 4, "buy": 1}
    assert journal.stats()["cycles"] == 7


def test_stats_of_an_empty_journal_has_no_rates(journal: Journal) -> None:
    summary = journal.stats()
    assert summary["cycles"] == 0
    assert summary["hold_rate"] is None
    assert summary["failure_rate"] is None
    assert summary["avg_cost_usd"] is None
    assert summary["failures"] == {}


def test_recent_gives_finished_decisions_newest_market_time_first(journal: Journal) -> None:
    record_cycle(journal, "r100000000000000", as_of_ms=T0, action="buy", rationale="first")
    record_cycle(journal, "r200000000000000", as_of_ms=T0 + 2 * HOUR, action="sell", rationale="third")
    record_cycle(journal, "r300000000000000", as_of_ms=T0 + HOUR, action="hold", rationale="second")
    record_cycle(journal, "r400000000000000", as_of_ms=T0 + 3 * HOUR, exchange="sim", rationale="sim")
    record_cycle(journal, "e100000000000000", as_of_ms=T0 + 5 * HOUR, symbol="ETH/USDT")
    start_cycle(journal.recorder(1), "r500000000000000", as_of_ms=T0 + 9 * HOUR)

    memories = journal.recent("BTC/USDT", exchange="binance")
    assert [m["rationale"] for m in memories] == ["third", "second", "first"]
    latest = memories[0]
    assert latest["action"] == "sell"
    assert latest["timestamp"] == T0 + 2 * HOUR
    assert (latest["entry_price"], latest["tp_price"], latest["sl_price"]) == (100.0, 90.0, 105.0)
    assert latest["invalidation"] == "1h close below 95"
    assert latest["outcome"] is None
    assert [m["rationale"] for m in journal.recent("BTC/USDT", 1)] == ["sim"]
    assert [m["rationale"] for m in journal.recent("BTC/USDT", before_ms=T0 + HOUR)] == ["first"]


# -- secrets ------------------------------------------------------------------------------------------

FAKE_KEY = "sk-test-THIS-IS-NOT-A-REAL-KEY-0123456789"


def test_registered_secret_never_reaches_the_file_bytes(tmp_path: Path) -> None:
    path = tmp_path / "journal.sqlite"
    journal = Journal(path)
    journal.add_secret(FAKE_KEY)
    journal.add_secret("")
    run_id = journal.start_run(
        "decide", ["BTC/USDT", f"--api-key={FAKE_KEY}"], config_hash="c", profile_hash="p", versions={}
    )
    recorder = journal.recorder(run_id)
    start_cycle(
        recorder,
        "5ec0000000000000",
        context={"headers": {"Authorization": f"Bearer {FAKE_KEY}"}, FAKE_KEY: [FAKE_KEY]},
        context_text=f"key is {FAKE_KEY}",
    )
    recorder.turn_recorded("5ec0000000000000", make_turn(1, f"I saw {FAKE_KEY}", f'{{"k": "{FAKE_KEY}"}}'))
    recorder.cycle_finished(
        "5ec0000000000000",
        status="decided",
        decision=make_decision("5ec0000000000000", rationale=f"because {FAKE_KEY}"),
        trace={"messages": [{"role": "system", "content": f"api_key={FAKE_KEY}"}], "verdicts": []},
        signals=[{"payload": {"detail": FAKE_KEY}}],
    )

    def stored_bytes() -> bytes:
        return b"".join(p.read_bytes() for p in tmp_path.iterdir() if p.name.startswith("journal.sqlite"))

    needle = FAKE_KEY.encode()
    assert needle not in stored_bytes()  # while the writes may still sit in the -wal file
    record = journal.get_cycle("5ec0")
    assert record["context_text"] == "key is ***"
    assert record["decision"]["rationale"] == "because ***"
    assert record["run"]["argv"] == ["BTC/USDT", "--api-key=***"]
    journal.close()
    assert needle not in stored_bytes()  # and after the checkpoint into the main file


# -- locks --------------------------------------------------------------------------------------------


def test_second_lock_on_the_same_symbol_is_lock_held_naming_the_pid(journal: Journal) -> None:
    with journal.lock("BTC/USDT") as lock_file:
        assert lock_file == journal.path.parent / "journal.sqlite.locks" / "BTC_USDT.lock"
        with pytest.raises(LockHeld) as caught, journal.lock("BTC/USDT"):
            pass
        with journal.lock("ETH/USDT"):
            pass
    assert caught.value.exit_code == ExitCode.LOCKED
    assert caught.value.message == (
        f"another rez run is deciding BTC/USDT on {journal.path} (pid {os.getpid()})"
    )
    with journal.lock("BTC/USDT"):
        pass


def test_lock_held_by_another_process_is_lock_held_until_it_exits(journal: Journal) -> None:
    script = textwrap.dedent(
        f"""
        import sys
        from pathlib import Path
        from rez_cli.journal import Journal
        with Journal(Path({str(journal.path)!r})).lock("BTC/USDT"):
            print("locked", flush=True)
            sys.stdin.readline()
        """
    )
    holder = subprocess.Popen(
        [sys.executable, "-c", script], cwd=REPO, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(LockHeld, match=rf"\(pid {holder.pid}\)"), journal.lock("BTC/USDT"):
            pass
    finally:
        holder.communicate("done\n", timeout=10)
    with journal.lock("BTC/USDT"):
        pass


def test_backtest_cycles_never_reach_live_memory(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite")
    run_id = journal.start_run("backtest", [], config_hash="c", profile_hash="p", versions={})
    recorder = journal.recorder(run_id, backtest_id="bt-1")
    recorder.cycle_started(
        "t-bt",
        symbol="BTC/USDT",
        exchange="sim",
        simulated=True,
        mode="rules",
        model=None,
        profile={},
        as_of_ms=1_000,
        candles={},
        context={},
        context_text="",
    )
    recorder.cycle_finished(
        "t-bt",
        status="decided",
        signals=[],
        trace={},
        decision={
            "symbol": "BTC/USDT",
            "action": "buy",
            "entry_price": 1.0,
            "tp_price": 2.0,
            "sl_price": 0.5,
            "leverage": 1.0,
            "size_pct": 1.0,
            "confidence": 0.5,
            "rationale": "bt",
            "invalidation": None,
            "mode": "rules",
            "source": "native",
            "error": None,
            "usage": {},
            "trace_id": "t-bt",
            "timestamp": 1_000,
        },
    )
    assert journal.list_cycles()[0]["trace_id"] == "t-bt"
    assert journal.recent("BTC/USDT") == []


def _start(journal: Journal, trace_id: str, run_id: int) -> None:
    """A live cycle's start: its row is written at once, in a batch too (a batched backtest cycle's
    waits for the cycle's end)."""
    journal.recorder(run_id).cycle_started(
        trace_id,
        symbol="BTC/USDT",
        exchange="sim",
        simulated=True,
        mode="rules",
        model=None,
        profile={},
        as_of_ms=1,
        candles={},
        context={},
        context_text="",
    )


def test_batched_writes_are_committed_on_the_way_out_even_on_interrupt(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    journal = Journal(path)
    run_id = journal.start_run("backtest", [], config_hash="c", profile_hash="p", versions={})
    seen_inside: list[int] = []

    def interrupted_backtest() -> None:
        with journal.batched(size=1000):
            for index in range(5):
                _start(journal, f"t{index}", run_id)
            seen_inside.append(len(Journal(path).list_cycles(limit=None)))
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        interrupted_backtest()
    assert seen_inside == [0]  # nothing committed while the batch was open
    assert len(Journal(path).list_cycles(limit=None)) == 5


def test_a_batch_commits_when_full_and_a_failed_write_leaves_nothing_half_done(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    journal = Journal(path)
    run_id = journal.start_run("backtest", [], config_hash="c", profile_hash="p", versions={})
    with journal.batched(size=2):
        _start(journal, "a", run_id)
        _start(journal, "b", run_id)
        assert len(Journal(path).list_cycles(limit=None)) == 2  # the batch of two was committed
        with pytest.raises(sqlite3.IntegrityError):
            _start(journal, "a", run_id)  # the same trace twice: a caller bug
        _start(journal, "c", run_id)
    assert sorted(row["trace_id"] for row in Journal(path).list_cycles(limit=None)) == ["a", "b", "c"]
