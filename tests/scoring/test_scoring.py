"""Forward scoring on hand-made futures: TP/SL first, fees in R, holds, pending, calibration, storage."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from rez_cli.account.fills import Candle
from rez_cli.config.settings import load_settings
from rez_cli.journal import Journal
from rez_cli.journal import db as journal_db
from rez_cli.journal.migrations import MIGRATIONS
from rez_cli.scoring.judge import Score, judge_hold, judge_trade
from rez_cli.scoring.run import ScoreReport, ScoreRequest, score_journal
from rez_cli.scoring.stats import brier_score, calibration, group_stats

T0 = 1_614_556_800_000  # 2021-03-01T00:00Z
HOUR = 3_600_000


def bars(*rows: tuple[float, float, float, float], start_ms: int = T0) -> list[Candle]:
    """Hourly candles from (open, high, low, close) rows, the first opening at ``start_ms``."""
    return [Candle(start_ms + i * HOUR, o, h, lo, c) for i, (o, h, lo, c) in enumerate(rows)]


def r_after_fees(side: int, entry: float, exit_: float, stop: float, fee_pct: float) -> float:
    """The R multiple worked out by hand: gross move minus both fees, over the stop distance."""
    fee = fee_pct / 100
    return (side * (exit_ - entry) - fee * (entry + exit_)) / abs(entry - stop)


# -- one trade ----------------------------------------------------------------------------------------


def test_long_reaching_its_target_first_is_tp_first_with_r_after_fees() -> None:
    future = bars((100, 104, 99, 103), (103, 111, 102, 110), (110, 112, 90, 91))
    judged = judge_trade(1, 110.0, 95.0, future, horizon=3, timeframe_ms=HOUR, fee_pct=0.1)
    assert judged is not None
    assert judged.outcome == "tp_first"
    assert judged.reason == "target"
    assert judged.candles == 2
    assert judged.entry_price == 100.0
    assert judged.exit_price == 110.0
    assert judged.exit_ms == T0 + 2 * HOUR
    assert judged.r_multiple == pytest.approx(r_after_fees(1, 100, 110, 95, 0.1))
    assert judged.r_multiple == pytest.approx((10 - 0.21) / 5)


def test_short_reaching_its_stop_first_is_sl_first() -> None:
    future = bars((100, 101, 98, 100), (100, 106, 99, 105), (105, 105, 80, 81))
    judged = judge_trade(-1, 90.0, 105.0, future, horizon=3, timeframe_ms=HOUR, fee_pct=0.1)
    assert judged is not None
    assert judged.outcome == "sl_first"
    assert judged.reason == "stop"
    assert judged.candles == 2
    assert judged.r_multiple == pytest.approx(r_after_fees(-1, 100, 105, 105, 0.1))


def test_both_levels_in_one_candle_count_as_the_stop_first() -> None:
    future = bars((100, 101, 99, 100), (100, 112, 94, 111))
    judged = judge_trade(1, 110.0, 95.0, future, horizon=2, timeframe_ms=HOUR, fee_pct=0.1)
    assert judged is not None
    assert judged.outcome == "sl_first"
    assert judged.exit_price == 95.0
    assert judged.r_multiple == pytest.approx(r_after_fees(1, 100, 95, 95, 0.1))


def test_both_levels_in_the_entry_candle_count_as_the_stop_first() -> None:
    judged = judge_trade(1, 110.0, 95.0, bars((100, 112, 94, 100)), horizon=1, timeframe_ms=HOUR)
    assert judged is not None
    assert judged.outcome == "sl_first"
    assert judged.candles == 1


def test_a_gap_through_the_stop_exits_at_the_open_worse_than_minus_one_r() -> None:
    future = bars((100, 101, 99, 100), (90, 91, 88, 89))
    judged = judge_trade(1, 110.0, 95.0, future, horizon=2, timeframe_ms=HOUR, fee_pct=0.0)
    assert judged is not None
    assert judged.outcome == "sl_first"
    assert judged.reason == "stop_gap"
    assert judged.r_multiple == pytest.approx(-2.0)


def test_neither_level_within_the_horizon_closes_at_the_last_close() -> None:
    # The target is only reached by the fourth candle, outside a horizon of three.
    future = bars((100, 102, 99, 101), (101, 103, 100, 102), (102, 104, 101, 103), (103, 120, 103, 119))
    judged = judge_trade(1, 110.0, 95.0, future, horizon=3, timeframe_ms=HOUR, fee_pct=0.1)
    assert judged is not None
    assert judged.outcome == "neither"
    assert judged.reason == "end"
    assert judged.candles == 3
    assert judged.exit_price == 103.0
    assert judged.exit_ms == T0 + 3 * HOUR
    assert judged.r_multiple == pytest.approx(r_after_fees(1, 100, 103, 95, 0.1))


def test_fewer_candles_than_the_horizon_is_pending_even_after_the_target() -> None:
    future = bars((100, 111, 99, 110))
    assert judge_trade(1, 110.0, 95.0, future, horizon=2, timeframe_ms=HOUR) is None
    assert judge_trade(1, 110.0, 95.0, [], horizon=1, timeframe_ms=HOUR) is None


def test_fees_lower_r_by_their_share_of_the_risk() -> None:
    future = bars((100, 111, 99, 110))
    free = judge_trade(1, 110.0, 95.0, future, horizon=1, timeframe_ms=HOUR, fee_pct=0.0)
    paid = judge_trade(1, 110.0, 95.0, future, horizon=1, timeframe_ms=HOUR, fee_pct=0.5)
    assert free is not None
    assert paid is not None
    assert free.r_multiple == pytest.approx(2.0)
    # 0.5% of 100 on entry and of 110 on exit: 1.05 of price, over a risk of 5.
    assert paid.r_multiple == pytest.approx(2.0 - 1.05 / 5)


def test_an_open_already_past_the_stop_is_sl_first_without_a_trade() -> None:
    judged = judge_trade(1, 110.0, 95.0, bars((94, 96, 93, 95)), horizon=1, timeframe_ms=HOUR)
    assert judged is not None
    assert judged.outcome == "sl_first"
    assert judged.reason == "beyond_levels"
    assert judged.r_multiple == 0.0
    assert judged.candles == 0


def test_a_trade_without_a_stop_has_no_r() -> None:
    judged = judge_trade(1, 110.0, None, bars((100, 111, 99, 110)), horizon=1, timeframe_ms=HOUR)
    assert judged is not None
    assert judged.outcome == "tp_first"
    assert judged.r_multiple is None


# -- holds --------------------------------------------------------------------------------------------


def test_a_hold_before_a_rise_missed_the_naive_long() -> None:
    future = bars((100, 101, 99.5, 100.5), (100.5, 102.5, 100, 102), (102, 102, 97, 97))
    judged = judge_hold(future, distance=2.0, horizon=3, timeframe_ms=HOUR, fee_pct=0.1)
    assert judged is not None
    assert judged.outcome == "up_first"
    assert judged.basis == "1 ATR"
    assert judged.long.outcome == "tp_first"
    assert judged.long.candles == 2
    assert judged.short.outcome == "sl_first"
    assert judged.missed_r == pytest.approx(r_after_fees(1, 100, 102, 98, 0.1))
    assert judged.worst_r == pytest.approx(r_after_fees(-1, 100, 102, 102, 0.1))


def test_a_hold_before_a_fall_missed_the_naive_short() -> None:
    future = bars((100, 100.5, 97, 97.5))
    judged = judge_hold(future, distance=2.0, horizon=1, timeframe_ms=HOUR, fee_pct=0.0)
    assert judged is not None
    assert judged.outcome == "down_first"
    assert judged.missed_r == pytest.approx(1.0)
    assert judged.worst_r == pytest.approx(-1.0)


def test_a_hold_through_one_wide_candle_stops_both_naive_trades() -> None:
    judged = judge_hold(bars((100, 103, 97, 100)), distance=2.0, horizon=1, timeframe_ms=HOUR, fee_pct=0.0)
    assert judged is not None
    assert judged.outcome == "neither"
    assert judged.missed_r == pytest.approx(-1.0)


def test_a_hold_without_an_atr_uses_one_percent_of_the_open() -> None:
    judged = judge_hold(
        bars((200, 202.5, 199.5, 202)), distance=None, horizon=1, timeframe_ms=HOUR, fee_pct=0
    )
    assert judged is not None
    assert judged.basis == "1%"
    assert judged.distance == pytest.approx(2.0)
    assert judged.outcome == "up_first"
    assert judged.long.tp_price == pytest.approx(202.0)


def test_a_hold_is_pending_until_its_horizon_has_passed() -> None:
    assert judge_hold(bars((100, 103, 97, 100)), distance=2.0, horizon=2, timeframe_ms=HOUR) is None


# -- calibration --------------------------------------------------------------------------------------

PAIRS: list[tuple[float | None, str]] = [
    (0.9, "tp_first"),
    (0.9, "sl_first"),
    (0.1, "sl_first"),
    (0.6, "tp_first"),
    (1.0, "tp_first"),
    (0.5, "neither"),  # no verdict: left out
    (None, "tp_first"),  # no confidence: left out
    (0.3, "pending"),
]


def test_brier_score_on_hand_made_outcomes() -> None:
    # (0.1² + 0.9² + 0.1² + 0.4² + 0²) / 5
    assert brier_score(PAIRS) == pytest.approx(0.198)
    assert brier_score([(0.5, "neither")]) is None
    assert brier_score([(0.5, "tp_first"), (0.5, "sl_first")]) == pytest.approx(0.25)


def test_calibration_buckets_confidence_against_hit_rate() -> None:
    result = calibration(PAIRS)
    assert result.count == 5
    assert result.brier == pytest.approx(0.198)
    assert [(b.low, b.high) for b in result.buckets] == [
        (0.0, 0.2),
        (0.2, 0.4),
        (0.4, 0.6),
        (0.6, 0.8),
        (0.8, 1.0),
    ]
    assert [b.count for b in result.buckets] == [1, 0, 0, 1, 3]
    assert [b.hits for b in result.buckets] == [0, 0, 0, 1, 2]
    assert [b.hit_rate for b in result.buckets] == [0.0, None, None, 1.0, pytest.approx(2 / 3)]
    assert result.buckets[4].mean_confidence == pytest.approx((0.9 + 0.9 + 1.0) / 3)


# -- a journal scored end to end ----------------------------------------------------------------------


class FrameSource:
    """A market of hand-made candles that knows nothing after ``until_ms``, like a real one."""

    name = "memory"
    simulated = False

    def __init__(self, candles: Sequence[Candle]) -> None:
        self.frame = pd.DataFrame(
            {
                "timestamp": [c.ts_ms for c in candles],
                "open": [c.open for c in candles],
                "high": [c.high for c in candles],
                "low": [c.low for c in candles],
                "close": [c.close for c in candles],
                "volume": [1.0] * len(candles),
            }
        )
        self.calls = 0

    async def fetch(
        self, symbol: str, timeframes: Sequence[str], limit: int, *, until_ms: int | None = None
    ) -> dict[str, pd.DataFrame]:
        self.calls += 1
        frame = self.frame
        if until_ms is not None:
            frame = frame[frame["timestamp"] + HOUR <= until_ms]
        return {timeframe: frame.tail(limit).reset_index(drop=True) for timeframe in timeframes}

    async def close(self) -> None:
        return None


def record(
    journal: Journal,
    trace_id: str,
    *,
    action: str = "buy",
    as_of_ms: int = T0,
    tp: float | None = 110.0,
    sl: float | None = 95.0,
    confidence: float = 0.8,
    error: str | None = None,
    backtest_id: str | None = None,
    symbol: str = "BTC/USDT",
    model: str | None = "gpt-test",
    atr: float | None = 2.0,
) -> None:
    """A finished cycle as the orchestrator journals it, with the fields scoring reads."""
    recorder = journal.recorder(None, backtest_id=backtest_id)
    recorder.cycle_started(
        trace_id,
        symbol=symbol,
        exchange="binance",
        simulated=False,
        mode="react",
        model=model,
        profile={"name": "moderate"},
        as_of_ms=as_of_ms,
        candles={},
        context={"primary_timeframe": "1h", "last_price": 100.0, "timeframes": {"1h": {"atr_14": atr}}},
        context_text="",
    )
    trade = action != "hold"
    recorder.cycle_finished(
        trace_id,
        status="held" if error else "decided",
        decision={
            "symbol": symbol,
            "action": action,
            "entry_price": 100.0 if trade else None,
            "tp_price": tp if trade else None,
            "sl_price": sl if trade else None,
            "confidence": confidence,
            "rationale": "r",
            "invalidation": None,
            "error": error,
            "timestamp": as_of_ms,
            "trace_id": trace_id,
        },
        trace={},
        signals=[],
    )


def score(journal: Journal, source: FrameSource, *, now_ms: int, **request: Any) -> ScoreReport:
    settings = load_settings(None).value
    return asyncio.run(
        score_journal(journal, settings, ScoreRequest(**request), now_ms=now_ms, source=source)
    )


# Rises to the target by the third candle, then falls through everything.
RISE = bars(
    (100, 101, 99, 100.5),
    (100.5, 103, 100, 102.5),
    (102.5, 111, 102, 110),
    (110, 110, 90, 91),
    (91, 92, 89, 90),
    (90, 91, 88, 89),
)


def test_scores_are_stored_and_live_decisions_only_are_judged(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite")
    record(journal, "buy0000000000000", confidence=0.8)
    record(journal, "sell000000000000", action="sell", tp=90.0, sl=105.0, confidence=0.3)
    record(journal, "hold000000000000", action="hold")
    record(journal, "forced0000000000", action="hold", error="model_timeout")
    record(journal, "bt00000000000000", backtest_id="bt-1")
    source = FrameSource(RISE)

    report = score(journal, source, now_ms=T0 + 10 * HOUR, horizon=4)

    by_id = {item.trace_id: item for item in report.scores}
    assert set(by_id) == {"buy0000000000000", "sell000000000000", "hold000000000000"}
    assert by_id["buy0000000000000"].outcome == "tp_first"
    assert by_id["buy0000000000000"].r_multiple == pytest.approx(r_after_fees(1, 100, 110, 95, 0.1))
    assert by_id["sell000000000000"].outcome == "sl_first"
    assert by_id["hold000000000000"].outcome == "up_first"
    assert report.new == 3
    assert report.pending == []
    assert report.exit_code == 0
    [group] = report.groups
    assert (group.decisions, group.trades, group.tp_first, group.sl_first, group.holds) == (3, 2, 1, 1, 1)
    assert group.hit_rate == 0.5
    assert report.calibration.brier == pytest.approx((0.8 - 1) ** 2 / 2 + 0.3**2 / 2)
    with sqlite3.connect(journal.path) as db:
        stored = dict(db.execute("SELECT trace_id, outcome FROM scores").fetchall())
    assert stored == {
        "buy0000000000000": "tp_first",
        "sell000000000000": "sl_first",
        "hold000000000000": "up_first",
    }

    # A second run reads the scores back instead of fetching candles again.
    calls = source.calls
    again = score(journal, source, now_ms=T0 + 10 * HOUR, horizon=4)
    assert source.calls == calls
    assert again.new == 0
    assert {item.trace_id: item.outcome for item in again.scores} == stored
    # Another horizon, or --force, judges them again.
    longer = score(journal, source, now_ms=T0 + 10 * HOUR, horizon=2)
    assert longer.new == 3
    assert {item.outcome for item in longer.scores if item.action == "buy"} == {"neither"}
    forced = score(journal, source, now_ms=T0 + 10 * HOUR, horizon=2, force=True)
    assert forced.new == 3


def test_a_decision_whose_horizon_has_not_passed_is_pending_and_not_stored(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite")
    record(journal, "buy0000000000000")
    source = FrameSource(RISE)

    early = score(journal, source, now_ms=T0 + 3 * HOUR, horizon=4)
    assert early.scores == []
    [pending] = early.pending
    assert (pending.trace_id, pending.candles, pending.due_ms) == ("buy0000000000000", 3, T0 + 4 * HOUR)
    with sqlite3.connect(journal.path) as db:
        assert db.execute("SELECT COUNT(*) FROM scores").fetchone()[0] == 0
    assert journal.recent("BTC/USDT")[0]["outcome"] is None

    later = score(journal, source, now_ms=T0 + 4 * HOUR, horizon=4)
    assert [item.outcome for item in later.scores] == ["tp_first"]


def test_candles_missing_inside_an_elapsed_window_do_not_keep_it_pending(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite")
    record(journal, "buy0000000000000")
    gappy = FrameSource([candle for index, candle in enumerate(RISE) if index != 1])

    report = score(journal, gappy, now_ms=T0 + 10 * HOUR, horizon=4)
    [item] = report.scores
    assert item.outcome == "tp_first"
    assert item.details["missing_candles"] == 1
    assert item.details["window_end_ms"] == T0 + 4 * HOUR

    # Data that stops before the window's end is not a gap: the decision waits.
    journal_2 = Journal(tmp_path / "j2.sqlite")
    record(journal_2, "buy0000000000000")
    short = score(journal_2, FrameSource(RISE[:3]), now_ms=T0 + 10 * HOUR, horizon=4)
    assert short.scores == []
    assert [item.candles for item in short.pending] == [3]


def test_filters_by_symbol_and_market_time(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite")
    record(journal, "old0000000000000", as_of_ms=T0)
    record(journal, "new0000000000000", as_of_ms=T0 + HOUR)
    record(journal, "eth0000000000000", as_of_ms=T0 + HOUR, symbol="ETH/USDT")
    report = score(journal, FrameSource(RISE), now_ms=T0 + 10 * HOUR, horizon=2, since_ms=T0 + HOUR)
    assert {item.trace_id for item in report.scores} == {"new0000000000000", "eth0000000000000"}
    report = score(journal, FrameSource(RISE), now_ms=T0 + 10 * HOUR, horizon=2, symbol="ETH/USDT")
    assert [item.trace_id for item in report.scores] == ["eth0000000000000"]


def test_recent_shows_the_score_as_the_outcome_once_its_window_has_closed(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.sqlite")
    record(journal, "buy0000000000000")
    record(journal, "hold000000000000", action="hold", as_of_ms=T0, symbol="ETH/USDT")
    score(journal, FrameSource(RISE), now_ms=T0 + 10 * HOUR, horizon=4)

    [memory] = journal.recent("BTC/USDT")
    assert memory["outcome"] == "tp_first, +2.0R after 3 candles"
    [hold] = journal.recent("ETH/USDT")
    assert hold["outcome"] == "hold; the price moved +1 ATR first, after 2 candles: a naive long made +0.9R"
    # A cycle replayed at a moment inside the judged window must not learn how it ended.
    assert journal.recent("BTC/USDT", before_ms=T0 + 3 * HOUR)[0]["outcome"] is None
    assert journal.recent("BTC/USDT", before_ms=T0 + 4 * HOUR)[0]["outcome"] is not None


def test_group_stats_split_by_model() -> None:
    def item(model: str, action: str, outcome: str, r: float | None) -> Score:
        return Score(
            trace_id=f"{model}-{action}-{outcome}",
            symbol="BTC/USDT",
            exchange="binance",
            simulated=False,
            model=model,
            mode="react",
            profile="moderate",
            action=action,
            confidence=0.5,
            as_of_ms=T0,
            horizon=24,
            outcome=outcome,
            r_multiple=r,
            exit_price=None,
            exit_ms=None,
            details={},
            new=True,
        )

    groups = group_stats(
        [
            item("a", "buy", "tp_first", 2.0),
            item("a", "sell", "sl_first", -1.0),
            item("a", "buy", "neither", 0.5),
            item("a", "hold", "up_first", 0.8),
            item("b", "buy", "sl_first", -1.1),
        ]
    )
    assert [(g.model, g.decisions, g.trades, g.holds) for g in groups] == [("a", 4, 3, 1), ("b", 1, 1, 0)]
    first = groups[0]
    assert first.hit_rate == 0.5  # neither is no verdict
    assert first.avg_r == pytest.approx(1.5 / 3)
    assert first.total_r == pytest.approx(1.5)
    assert first.avg_missed_r == pytest.approx(0.8)
    assert groups[1].hit_rate == 0.0


# -- the journal's schema -----------------------------------------------------------------------------


def test_a_journal_made_before_scores_existed_is_upgraded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "old.sqlite"
    with monkeypatch.context() as patch:
        patch.setattr(journal_db, "MIGRATIONS", MIGRATIONS[:1])
        old = Journal(path)
        record(old, "buy0000000000000")
        assert old.migrations() == ["m001_initial"]
        old.close()
    with sqlite3.connect(path) as db:
        tables = {row[0] for row in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert "scores" not in tables

    upgraded = Journal(path)
    assert upgraded.migrations() == [migration.name for migration in MIGRATIONS]
    assert [m["trace_id"] for m in upgraded.recent("BTC/USDT")] == ["buy0000000000000"]
    score(upgraded, FrameSource(RISE), now_ms=T0 + 10 * HOUR, horizon=4)
    assert upgraded.recent("BTC/USDT")[0]["outcome"] == "tp_first, +2.0R after 3 candles"
    upgraded.close()

    # Opening again applies nothing twice.
    again = Journal(path)
    assert again.migrations() == [migration.name for migration in MIGRATIONS]
    again.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT COUNT(*) FROM _migrations").fetchone()[0] == len(MIGRATIONS)
        assert db.execute("SELECT COUNT(*) FROM scores").fetchone()[0] == 1
