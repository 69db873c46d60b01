"""A backtest's context of a window is the one that window alone gives.

The snapshot of a window cut from a history reads its high, low, volume average, missing candles,
recent candles and swings from tables worked out once for the whole history, and the previous day's
range by the candles' order; here against the window read on its own, and against those fields
worked out from the window's rows in plain pandas, on candles with flat tops and bottoms (a coarse
tick) and with missing candles.
"""

from __future__ import annotations

import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rez_cli.cycle.context import RECENT_CANDLES, model_decimals, previous_day, snapshot
from rez_cli.indicators import IndicatorMemo
from rez_cli.indicators.specs import DAY_MS
from rez_cli.market.candles import find_gaps, validate_candles
from rez_cli.market.snapshot import TimeframeSnapshot
from tests.support.candles import START_MS, make_candles

HOUR = 3_600_000
QUARTER = 900_000


def _window(memo: IndicatorMemo, history: pd.DataFrame, start: int, end: int) -> pd.DataFrame:
    """Rows ``start:end`` of ``history``, cut as a backtest's history cuts them."""
    whole = history.to_numpy(dtype="float64")
    whole.flags.writeable = False
    frame = history.iloc[start:end].reset_index(drop=True)
    memo.adopt(frame, whole[start:end], finite=True, history=(whole, start))
    return frame


def _assert_plainly_right(found: TimeframeSnapshot, frame: pd.DataFrame) -> None:
    """The fields the history's tables give, against the window's own rows read in plain pandas."""
    assert (found.high, found.low) == (frame["high"].max(), frame["low"].min())
    assert found.gaps == sum(gap.missing for gap in find_gaps(frame, "1h"))
    volume = frame["volume"].to_numpy()
    average = volume[-21:-1].mean() if len(frame) > 20 else 0.0
    assert found.volume_ratio == (volume[-1] / average if average > 0 else None)
    recent = frame.iloc[-RECENT_CANDLES:]
    places = model_decimals(float(frame["close"].iloc[-1]))
    assert found.recent.open_ms == tuple(recent["timestamp"].astype(int))
    assert found.recent.high == tuple(recent["high"].round(places))
    assert found.recent.close == tuple(recent["close"].round(places))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    seed=st.integers(0, 2**16),
    tick=st.sampled_from([None, 50.0, 200.0]),
    missing=st.sets(st.integers(1, 238), max_size=12),
    cuts=st.lists(st.tuples(st.integers(0, 150), st.integers(1, 80)), min_size=1, max_size=6),
)
def test_the_snapshot_of_a_window_cut_from_a_history_is_the_window_s_own(
    seed: int, tick: float | None, missing: set[int], cuts: list[tuple[int, int]]
) -> None:
    # A coarse tick makes equal highs and lows: a flat top is one swing, at its first candle.
    history = make_candles(240, seed, tick=tick).drop(index=sorted(missing)).reset_index(drop=True)
    memo = IndicatorMemo()
    # Windows of one size a row apart, as a backtest cuts them, and others of other sizes.
    for start, size in [*cuts, *((start + 1, size) for start, size in cuts)]:
        frame = _window(memo, history, start, start + size)
        shared, alone = snapshot(frame, "1h", memo), snapshot(frame, "1h", None)
        assert (shared.swing_highs, shared.swing_lows) == (alone.swing_highs, alone.swing_lows)
        assert shared == alone
        _assert_plainly_right(shared, frame)


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 2**16),
    missing=st.sets(st.integers(0, 399), max_size=60),
    start=st.integers(0, 200),
    size=st.integers(1, 200),
)
def test_the_previous_day_is_every_candle_inside_it_with_candles_missing(
    seed: int, missing: set[int], start: int, size: int
) -> None:
    candles = make_candles(400, seed, timeframe_ms=QUARTER)
    kept = candles.drop(index=sorted(missing)).reset_index(drop=True)
    frame = validate_candles(kept.iloc[start : start + size].reset_index(drop=True), "test")
    if frame.empty:
        return
    as_of = int(frame["timestamp"].iloc[-1]) + QUARTER
    day_end = as_of // DAY_MS * DAY_MS
    opens = frame["timestamp"].to_numpy()
    # The day's first and last candles hold its extremes: the edges of the day are where it is easy
    # to take a candle too many or too few.
    frame.loc[opens == day_end - DAY_MS, "high"] = frame["high"].max() + 1.0
    frame.loc[opens == day_end - QUARTER, "low"] = frame["low"].min() - 1.0
    found = previous_day({"15m": frame}, as_of)
    covered = opens[0] <= day_end - DAY_MS and opens[-1] + QUARTER >= day_end
    inside = (opens >= day_end - DAY_MS) & (opens + QUARTER <= day_end)
    if not covered or not inside.any():
        assert found is None
        return
    assert found is not None
    assert (found.high, found.low) == (frame["high"][inside].max(), frame["low"][inside].min())
    assert found.day_open_ms == day_end - DAY_MS


def test_a_window_at_the_start_of_its_history_finds_no_swing_before_it() -> None:
    history = make_candles(40, 5)
    history.loc[1, "high"] = history["high"].max() + 100.0  # too near the start to be confirmed
    memo = IndicatorMemo()
    frame = _window(memo, history, 0, 30)
    assert START_MS + HOUR not in snapshot(frame, "1h", memo).swing_highs.open_ms
    assert snapshot(frame, "1h", memo) == snapshot(frame, "1h", None)
