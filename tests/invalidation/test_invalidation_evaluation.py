"""Evaluating a condition on candles: each comparator, crossings, warm-up, timeframes, no look-ahead."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from rez_cli.errors import DataNotFound
from rez_cli.indicators import IndicatorMemo, compute
from rez_cli.invalidation import first_firing, holds, parse_invalidation, series_at
from tests.support.candles import START_MS, make_candles

HOUR = 3_600_000


def candles(closes: list[float], step_ms: int = HOUR, start_ms: int = START_MS) -> pd.DataFrame:
    """Flat candles (open = high = low = close) at the given closes, one ``step_ms`` apart."""
    values = np.asarray(closes, dtype=np.float64)
    return pd.DataFrame(
        {
            "timestamp": start_ms + step_ms * np.arange(len(values), dtype=np.int64),
            "open": values,
            "high": values,
            "low": values,
            "close": values,
            "volume": np.full(len(values), 5.0),
        }
    )


def closes_of(frame: pd.DataFrame, step_ms: int = HOUR) -> np.ndarray:
    return frame["timestamp"].to_numpy(dtype=np.int64) + step_ms


def fired_at(condition: str, frame: pd.DataFrame, previous_ms: int | None = None) -> list[bool]:
    return holds(parse_invalidation(condition), {"1h": frame}, closes_of(frame), previous_ms).tolist()


@pytest.mark.parametrize(
    ("condition", "expected"),
    [
        ("close_1h < 20", [True, False, False]),
        ("close_1h <= 20", [True, True, False]),
        ("close_1h > 20", [False, False, True]),
        ("close_1h >= 20", [False, True, True]),
        ("20 > close_1h", [True, False, False]),
        ("close_1h > 15 and close_1h < 25", [False, True, False]),
        ("close_1h < 15 or close_1h > 25", [True, False, True]),
        ("volume_1h >= 5 and high_1h > 29", [False, False, True]),
    ],
)
def test_each_comparator_holds_where_it_should(condition: str, expected: list[bool]) -> None:
    assert fired_at(condition, candles([10, 20, 30])) == expected


def test_a_crossing_needs_the_previous_moment_on_the_other_side() -> None:
    frame = candles([12, 10, 9, 8, 11, 12])
    # 10 -> 9 crosses below 10 (10 >= 10 before); 8 stays below; 11 crosses back above.
    assert fired_at("close_1h crosses_below 10", frame) == [False, False, True, False, False, False]
    assert fired_at("close_1h crosses_above 10", frame) == [False, False, False, False, True, False]


def test_a_crossing_at_the_first_moment_compares_with_the_moment_the_position_was_decided() -> None:
    frame = candles([12, 9, 8])
    moments = closes_of(frame)[1:]
    condition = parse_invalidation("close_1h crosses_below 10")
    # Decided at the close of the 12 candle: the first moment checked sees 12 -> 9.
    assert holds(condition, {"1h": frame}, moments, previous_ms=int(closes_of(frame)[0])).tolist() == [
        True,
        False,
    ]
    # Without a previous moment nothing is known before the first: no crossing there.
    assert holds(condition, {"1h": frame}, moments).tolist() == [False, False]


def test_two_series_cross() -> None:
    fast = "sma_2_1h crosses_below sma_3_1h"
    # sma2: -, 11, 11.5, 10.5, 8.5 ; sma3: -, -, 11.33, 11, 9.67: below from the fourth candle on.
    assert fired_at(fast, candles([10, 12, 11, 10, 7])) == [False, False, False, True, False]


def test_a_series_still_warming_up_makes_its_term_false() -> None:
    frame = candles([10, 11, 12, 13])
    assert fired_at("sma_3_1h > 0", frame) == [False, False, True, True]
    assert fired_at("sma_3_1h > 0 or close_1h > 12", frame) == [False, False, True, True]
    assert fired_at("sma_3_1h < 1e9 or close_1h > 10", frame) == [False, True, True, True]
    # A crossing whose previous value is still NaN does not hold either.
    assert fired_at("sma_3_1h crosses_above 0", frame) == [False, False, False, False]


def test_a_slower_timeframe_is_read_only_once_its_candle_has_closed() -> None:
    hourly = candles([1.0] * 10)
    four_hourly = candles([100.0, 200.0, 300.0], step_ms=4 * HOUR)
    moments = closes_of(hourly)  # 01:00 ... 10:00
    values = series_at(parse_invalidation("close_4h > 0").series[0], four_hourly, moments)
    # The 00:00 4h candle closes at 04:00, the 04:00 one at 08:00; the 08:00 one is still open at 10:00.
    expected = [np.nan] * 3 + [100.0] * 4 + [200.0] * 3
    np.testing.assert_array_equal(values, expected)
    firing = first_firing(
        parse_invalidation("close_4h > 150 and close_1h < 2"), {"1h": hourly, "4h": four_hourly}, moments
    )
    assert firing is not None
    assert firing.moment_ms == START_MS + 8 * HOUR
    assert firing.describe() == "close_4h 200 > 150 and close_1h 1 < 2 at 2021-03-01T08:00Z"


def test_the_firing_names_the_first_clause_that_held_and_what_it_saw() -> None:
    frame = candles([12, 10, 9])
    condition = parse_invalidation("close_1h > 100 or close_1h crosses_below 10 or close_1h < 9.5")
    firing = first_firing(condition, {"1h": frame}, closes_of(frame))
    assert firing is not None
    assert (firing.clause_index, firing.clause_text) == (1, "close_1h crosses_below 10")
    assert firing.describe() == "close_1h 9 crosses_below 10 (before: 10 vs 10) at 2021-03-01T03:00Z"
    assert first_firing(parse_invalidation("close_1h > 100"), {"1h": frame}, closes_of(frame)) is None


def test_no_moments_and_no_candles_fire_nothing() -> None:
    condition = parse_invalidation("close_1h < 100")
    assert first_firing(condition, {"1h": candles([1.0])}, []) is None
    assert holds(condition, {"1h": candles([])}, [START_MS + HOUR]).tolist() == [False]


def test_a_timeframe_without_candles_is_a_data_error() -> None:
    with pytest.raises(DataNotFound, match="no 4h candles to evaluate close_4h in 'close_4h < 1'"):
        holds(parse_invalidation("close_4h < 1"), {"1h": candles([1.0])}, [START_MS + HOUR])


def test_indicator_values_are_computes_over_the_same_frame_with_or_without_a_memo() -> None:
    frame = make_candles(400, seed=5)
    moments = closes_of(frame)
    for text, name, params in (
        ("ema_20_1h", "ema", {"length": 20}),
        ("rsi_1h", "rsi", {}),
        ("atr_14_1h", "atr", {}),
        ("cci_1h", "cci", {}),
    ):
        series = parse_invalidation(f"{text} > 0").series[0]
        expected = compute(frame, name, params).iloc[:, 0].to_numpy()
        np.testing.assert_array_equal(series_at(series, frame, moments), expected)
        np.testing.assert_array_equal(series_at(series, frame, moments, memo=IndicatorMemo()), expected)


CONDITIONS = (
    "close_1h < 29500 or rsi_14_4h > 70",
    "ema_20_1h crosses_below ema_50_1h",
    "ema_20_4h crosses_above close_4h and atr_14_1h > 50",
    "sma_10_4h crosses_below sma_30_4h or willr_1h < -95",
)


@pytest.mark.parametrize("text", CONDITIONS)
def test_candles_after_a_moment_never_change_what_is_found_up_to_it(text: str) -> None:
    hourly = make_candles(600, seed=21)
    four_hourly = make_candles(150, seed=22, timeframe_ms=4 * HOUR)
    condition = parse_invalidation(text)
    moments = closes_of(hourly)[100:]
    previous = int(closes_of(hourly)[99])
    full = holds(condition, {"1h": hourly, "4h": four_hourly}, moments, previous)
    assert full.any(), "the data should make the condition hold somewhere"
    for cut in (1, 37, 160, 333, len(moments) - 1):
        moment = int(moments[cut - 1])
        # Everything that opened by the moment stays, the 4h candle still open at it included.
        seen = {
            "1h": hourly[hourly["timestamp"] < moment].reset_index(drop=True),
            "4h": four_hourly[four_hourly["timestamp"] < moment].reset_index(drop=True),
        }
        truncated = holds(condition, seen, moments[:cut], previous)
        np.testing.assert_array_equal(truncated, full[:cut])
        firing = first_firing(condition, seen, moments[:cut], previous)
        whole = first_firing(condition, {"1h": hourly, "4h": four_hourly}, moments[:cut], previous)
        assert firing == whole
