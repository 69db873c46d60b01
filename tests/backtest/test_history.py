"""The history hands each window it cuts to the indicators as numbers it already holds: the same ones."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
import pytest

from rez_cli.backtest.history import HistorySource
from rez_cli.indicators import compute
from tests.support.candles import START_MS, make_candles

HOUR_MS = 3_600_000
CANDLES = 600


class FrameSource:
    """A source of one 1h frame, as loaded: whatever the frame holds, even what no exchange would send."""

    name = "frame"
    simulated = True

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame

    async def fetch(
        self, symbol: str, timeframes: Sequence[str], limit: int, *, until_ms: int | None = None
    ) -> dict[str, pd.DataFrame]:
        return {timeframe: self.frame.copy() for timeframe in timeframes}

    async def close(self) -> None:
        return None


def history_of(frame: pd.DataFrame) -> HistorySource:
    end_ms = START_MS + CANDLES * HOUR_MS
    history = HistorySource(FrameSource(frame), "BTC/USDT", start_ms=START_MS, end_ms=end_ms, warmup=0)
    asyncio.run(history.load(["1h"]))
    return history


@pytest.mark.parametrize("name", ["ema", "rsi", "atr", "macd"])
def test_every_window_gives_what_its_own_candles_give(name: str) -> None:
    history = history_of(make_candles(CANDLES, seed=41))
    for closed in (1, 13, 40, 299, 300, 301, 450, CANDLES):
        window = history.cut("1h", START_MS + closed * HOUR_MS, 300)
        np.testing.assert_array_equal(history.memo.array(window), window.to_numpy(dtype="float64"))
        computed = history.memo.compute(window, "1h", name)
        pd.testing.assert_frame_equal(computed, compute(window.reset_index(drop=True), name))


def test_a_window_with_a_value_that_is_not_finite_is_computed_by_pandas_ta() -> None:
    frame = make_candles(CANDLES, seed=42)
    frame.loc[350, "close"] = np.nan  # not a valid candle: the numpy versions must not see it
    history = history_of(frame)
    for closed in (340, 351, 400, 650):
        window = history.cut("1h", START_MS + closed * HOUR_MS, 300)
        for name in ("ema", "rsi", "atr"):
            expected = compute(window, name, fast=False)
            pd.testing.assert_frame_equal(history.memo.compute(window, "1h", name), expected)


def _bits(values: np.ndarray[Any, np.dtype[np.float64]]) -> np.ndarray[Any, np.dtype[np.int64]]:
    return np.ascontiguousarray(values).view(np.int64)


@pytest.mark.parametrize("every", [1, 4])
def test_a_walk_over_every_window_gives_each_what_its_own_candles_give(every: int) -> None:
    """Consecutive windows are computed in blocks: each must still be its own candles' result, bit for bit.

    The walk starts at the first candle, so it crosses the windows cut short by the start of history,
    and a candle that is not finite sends the windows holding it to pandas-ta.
    """
    frame = make_candles(CANDLES, seed=43)
    frame.loc[470, "high"] = np.inf  # in every window closed after candle 470
    history = history_of(frame)
    shared = 0
    for closed in range(1, CANDLES + 1, every):
        window = history.cut("1h", START_MS + closed * HOUR_MS, 300)
        alone = window.reset_index(drop=True)
        for name, params in (("ema", {"length": 20}), ("rsi", {}), ("atr", {}), ("ema", {"length": 50})):
            served = history.memo.values(window, "1h", name, params)
            expected = compute(alone, name, params)
            for output, values in served.items():
                same = np.array_equal(_bits(values), _bits(expected[output].to_numpy()))
                assert same, (closed, name, output)
                shared += values.base is not None and values.base.ndim == 2
    # Through blocks: every full window before the one holding the infinite high, but the first few.
    assert shared >= 4 * ((470 - 300) // every - 3)


def test_windows_of_one_size_far_apart_are_each_computed_alone() -> None:
    # Irregular steps predict no next window: nothing is computed for windows no cycle asks for.
    history = history_of(make_candles(CANDLES, seed=44))
    for closed in (310, 312, 317, 331, 360, 420, 599):
        window = history.cut("1h", START_MS + closed * HOUR_MS, 300)
        served = history.memo.values(window, "1h", "ema")["ema"]
        assert served.base is None or served.base.ndim == 1
        assert np.array_equal(
            _bits(served), _bits(compute(window.reset_index(drop=True), "ema")["ema"].to_numpy())
        )
