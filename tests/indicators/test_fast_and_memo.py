"""The numpy indicators give pandas-ta's bits; the memo gives what ``compute`` gives, once per window."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import numpy as np
import pandas as pd
import pytest

from rez_cli import indicators
from rez_cli.indicators import (
    INDICATORS,
    IndicatorError,
    IndicatorMemo,
    compute,
    summarize,
    summary_rows,
    summary_table,
)
from tests.support.candles import make_candles

HOUR_MS = 3_600_000
FAST = sorted(name for name, spec in INDICATORS.items() if spec.fast is not None)
LENGTHS = [2, 3, 6, 10, 14, 20, 50, 200]


@pytest.fixture(autouse=True)
def _quiet_pandas_ta() -> Iterator[None]:
    # pandas-ta logs a warning for every frame shorter than the indicator's length.
    logging.disable(logging.WARNING)
    yield
    logging.disable(logging.NOTSET)


def _frames() -> dict[str, pd.DataFrame]:
    btc = make_candles(1000, seed=11, start_price=35_000.0)
    shib = make_candles(1000, seed=12, start_price=0.00001234)
    flat = make_candles(300, seed=5)
    for column in ("open", "high", "low", "close"):
        flat[column] = 100.0  # a constant series: pandas skips the update, RSI is 0/0, ranges are 0
    return {"btc": btc, "shib": shib, "flat": flat}


FRAMES = _frames()


def test_the_context_indicators_have_numpy_versions() -> None:
    assert FAST == ["atr", "ema", "rsi"]


@pytest.mark.parametrize("market", sorted(FRAMES))
@pytest.mark.parametrize("name", FAST)
def test_numpy_versions_give_pandas_ta_bits(market: str, name: str) -> None:
    frame = FRAMES[market]
    for length in LENGTHS:
        params = {"length": length}
        ours, theirs = compute(frame, name, params), compute(frame, name, params, fast=False)
        # Equal, not close: a backtest's decisions must not depend on which path computed them.
        np.testing.assert_array_equal(ours.to_numpy(), theirs.to_numpy(), err_msg=f"{name}{params}")
        pd.testing.assert_frame_equal(ours, theirs)
        assert ours.attrs == theirs.attrs


@pytest.mark.parametrize("name", FAST)
def test_numpy_versions_on_histories_around_their_length(name: str) -> None:
    frame = FRAMES["btc"]
    for length in (2, 14, 20):
        for size in (0, 1, 2, length - 1, length, length + 1, length + 2, 3 * length):
            window = frame.iloc[:size].reset_index(drop=True)
            ours = compute(window, name, {"length": length}).to_numpy()
            theirs = compute(window, name, {"length": length}, fast=False).to_numpy()
            np.testing.assert_array_equal(ours, theirs, err_msg=f"{name} length={length} on {size} candles")


@pytest.mark.parametrize("name", FAST)
def test_numpy_versions_agree_to_1e9_relative_within_a_window(name: str) -> None:
    """What a backtest computes: 300 candles cut out of a longer history, starting anywhere."""
    history = make_candles(2000, seed=31, start_price=1.9534)
    for start in (0, 117, 1700):
        window = history.iloc[start : start + 300].reset_index(drop=True)
        ours = compute(window, name).to_numpy()
        theirs = compute(window, name, fast=False).to_numpy()
        np.testing.assert_allclose(ours, theirs, rtol=1e-9, atol=0)
        np.testing.assert_array_equal(np.isnan(ours), np.isnan(theirs))


def test_a_frame_that_is_not_all_finite_goes_to_pandas_ta() -> None:
    frame = FRAMES["btc"].iloc[:100].copy()
    frame.loc[50, "close"] = np.nan  # not a valid candle, but compute must not answer differently
    for name in FAST:
        pd.testing.assert_frame_equal(compute(frame, name), compute(frame, name, fast=False))
        pd.testing.assert_frame_equal(
            IndicatorMemo().compute(frame, "1h", name), compute(frame, name, fast=False)
        )


# --- the memo ------------------------------------------------------------------------------------


def _window(start: int, size: int = 300) -> pd.DataFrame:
    return FRAMES["btc"].iloc[start : start + size].reset_index(drop=True)


@pytest.mark.parametrize(
    ("name", "params"),
    [("ema", {"length": 20}), ("rsi", {}), ("atr", {"length": 14}), ("macd", {}), ("bbands", {"std": 1.5})],
)
def test_memo_gives_what_compute_gives(name: str, params: dict[str, Any]) -> None:
    memo = IndicatorMemo()
    frame = _window(100)
    expected = compute(frame, name, params)
    first = memo.compute(frame, "1h", name, params)
    pd.testing.assert_frame_equal(first, expected)
    assert first.attrs == expected.attrs
    values = memo.values(frame, "1h", name, params)
    for column in expected.columns:
        np.testing.assert_array_equal(values[column], expected[column].to_numpy())
    assert (memo.misses, memo.hits) == (1, 1)


def test_the_same_window_is_computed_once_even_as_another_frame_object() -> None:
    memo = IndicatorMemo()
    first = memo.compute(_window(100), "1h", "ema", {"length": 20})
    # The same candles cut again (a 4h window at the next 1h step), parameters spelled otherwise.
    again = memo.compute(_window(100), "1h", "ema", {"length": 20.0})
    assert again is first
    assert memo.known(_window(100), "1h", "ema", indicators.validate_params("ema", {"length": 20}))
    assert (memo.misses, memo.hits) == (1, 2)


def test_a_window_is_known_by_its_timeframe_and_its_candles() -> None:
    memo = IndicatorMemo()
    base = memo.compute(_window(100), "1h", "ema", {"length": 20})
    shifted = memo.compute(_window(101), "1h", "ema", {"length": 20})
    shorter = memo.compute(_window(100, 299), "1h", "ema", {"length": 20})
    other_timeframe = memo.compute(_window(100), "4h", "ema", {"length": 20})
    other_params = memo.compute(_window(100), "1h", "ema", {"length": 21})
    assert memo.misses == 5
    assert not np.array_equal(base.to_numpy(), shifted.to_numpy(), equal_nan=True)
    assert shorter is not base
    assert other_timeframe is not base
    assert other_params is not base
    pd.testing.assert_frame_equal(shifted, compute(_window(101), "ema", {"length": 20}))


def test_shared_results_are_read_only() -> None:
    memo = IndicatorMemo()
    frame = _window(0)
    values = memo.values(frame, "1h", "rsi")
    with pytest.raises(ValueError, match="read-only"):
        values["rsi"][-1] = 0.0
    with pytest.raises(ValueError, match="read-only"):
        memo.column(frame, "close")[-1] = 0.0
    np.testing.assert_array_equal(memo.array(frame), frame.to_numpy(dtype="float64"))


def test_the_memo_forgets_the_least_recently_used() -> None:
    memo = IndicatorMemo(capacity=2)
    frame = _window(0)
    memo.values(frame, "1h", "ema")
    memo.values(frame, "1h", "rsi")
    memo.values(frame, "1h", "ema")  # used again: rsi is now the oldest
    memo.values(frame, "1h", "atr")
    assert len(memo) == 2
    assert memo.known(frame, "1h", "ema")
    assert not memo.known(frame, "1h", "rsi")


def test_memo_rejects_bad_parameters_as_compute_does() -> None:
    memo = IndicatorMemo()
    with pytest.raises(IndicatorError, match="length must be at least 2"):
        memo.values(_window(0), "1h", "ema", {"length": 1})
    with pytest.raises(IndicatorError, match="params must be an object"):
        memo.values(_window(0), "1h", "ema", [20])  # type: ignore[arg-type]  # what a model might send


def test_derived_values_are_made_once_per_window() -> None:
    memo = IndicatorMemo()
    made: list[int] = []

    def make() -> int:
        made.append(1)
        return len(made)

    assert memo.derived(_window(5), "1h", "label", make) == 1
    assert memo.derived(_window(5), "1h", "label", make) == 1
    assert memo.derived(_window(6), "1h", "label", make) == 2
    assert memo.derived(_window(5), "1h", "other", make) == 3


@pytest.mark.parametrize(("name", "lookback"), [("ema", 6), ("rsi", 1), ("psar", 12), ("obv", 5)])
def test_memo_summary_is_the_summary_of_compute(name: str, lookback: int) -> None:
    memo = IndicatorMemo()
    frame = _window(200)
    result = compute(frame, name)
    reference = float(frame["close"].iloc[-1])
    text, rows = memo.summary_table(frame, "1h", name, None, lookback, reference, HOUR_MS)
    assert text == summarize(result, lookback, reference, HOUR_MS)
    assert rows == summary_rows(result, lookback, reference, HOUR_MS)
    assert summary_table(result, lookback, reference, HOUR_MS) == (text, rows)
    with pytest.raises(IndicatorError, match="lookback must be at least 1"):
        memo.summary_table(frame, "1h", name, None, 0, reference, HOUR_MS)
