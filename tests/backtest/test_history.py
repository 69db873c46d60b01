"""The history hands each window it cuts to the indicators as numbers it already holds: the same ones."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

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
