"""A market source over history held in memory, cut at each step's moment.

A backtest asks for thousands of views of one market. Loading the span once per timeframe and
slicing it is what makes that affordable. The slice is cut by close time, as ``drop_unclosed`` cuts a
live fetch: a candle exists for a step only once it has closed by that step's ``until_ms`` (a 4h
candle still forming at 10:00 does not exist at 10:00). That cut is all that stands between a
backtest and the future, for the context and for every ``fetch_indicator`` call alike, since both read
the cycle's ``MarketView`` over this source; ``tests/backtest/test_lookahead.py`` changes every
later candle to prove it.

Because loaded candles never change, a window of them is known by its timeframe, length and first
and last open times, and ``memo`` can hand every cycle the indicators already computed on the same
window (a 4h window is the same for four 1h steps). Each value is still computed from that window
alone, so it is what a cycle computing from scratch at that moment would get.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd

from rez_cli.clock import iso
from rez_cli.errors import DataNotFound, UsageError
from rez_cli.indicators import IndicatorMemo
from rez_cli.market.source import MarketSource
from rez_cli.timeframes import timeframe_ms


class HistorySource:
    """Candles of one symbol from ``start_ms - warmup candles`` to ``end_ms``, loaded once per timeframe.

    A timeframe nobody asked for in advance (a model calling ``fetch_indicator`` on ``1d``) is loaded
    from the underlying source the first time it is asked for, over the same span.

    Args:
        source: where the candles come from; it is not closed here (its owner closes it).
        symbol: the one symbol this history holds.
        start_ms: the first moment a step may stand at.
        end_ms: the last moment; nothing that closes later is loaded.
        warmup: candles each step needs before ``start_ms`` (``[market] candles``).
    """

    def __init__(self, source: MarketSource, symbol: str, *, start_ms: int, end_ms: int, warmup: int) -> None:
        self.source = source
        self.name = source.name
        self.simulated = source.simulated
        self.symbol = symbol
        self.start_ms = start_ms
        self.end_ms = end_ms
        self.warmup = warmup
        self._frames: dict[str, pd.DataFrame] = {}
        self._closes: dict[str, np.ndarray[tuple[int], np.dtype[np.int64]]] = {}
        # Each loaded frame as one read-only float64 array (a cut window's numbers are a slice of
        # it), and how many of its first rows hold a value that is not finite.
        self._arrays: dict[str, np.ndarray[tuple[int, int], np.dtype[np.float64]]] = {}
        self._not_finite: dict[str, np.ndarray[tuple[int], np.dtype[np.int64]]] = {}
        # The last slice of each timeframe: a 4h frame stays the same for four 1h steps.
        self._last: dict[str, tuple[int, int, pd.DataFrame]] = {}
        self.memo = IndicatorMemo()
        """Indicators of windows of this history, for every cycle that stands on it."""

    @property
    def frames(self) -> Mapping[str, pd.DataFrame]:
        """Every timeframe loaded so far, whole (a live view: ``load`` adds to it)."""
        return self._frames

    def frame(self, timeframe: str) -> pd.DataFrame:
        """The whole loaded frame of ``timeframe`` (``load`` it first)."""
        return self._frames[timeframe]

    def closes(self, timeframe: str) -> np.ndarray[tuple[int], np.dtype[np.int64]]:
        """Close times of the loaded candles of ``timeframe``."""
        return self._closes[timeframe]

    async def load(self, timeframes: Sequence[str]) -> None:
        """Fetch the timeframes not held yet, whole span and warm-up at once.

        Raises:
            DataError, ExchangeError: from the underlying source.
        """
        missing = [timeframe for timeframe in dict.fromkeys(timeframes) if timeframe not in self._frames]
        for timeframe in missing:
            step = timeframe_ms(timeframe)
            count = self.warmup + math.ceil((self.end_ms - self.start_ms) / step) + 1
            fetched = await self.source.fetch(self.symbol, [timeframe], count, until_ms=self.end_ms)
            # A copy with the float columns in one block: every cut and conversion of it is cheaper.
            frame = fetched[timeframe].copy()
            self._frames[timeframe] = frame
            self._closes[timeframe] = frame["timestamp"].to_numpy(dtype=np.int64) + step
            array = frame.to_numpy(dtype="float64")
            array.flags.writeable = False
            self._arrays[timeframe] = array
            self._not_finite[timeframe] = np.concatenate(([0], np.cumsum(~np.isfinite(array).all(axis=1))))

    def cut(self, timeframe: str, until_ms: int, limit: int) -> pd.DataFrame:
        """The last ``limit`` candles of a loaded timeframe that closed by ``until_ms``.

        Raises:
            DataNotFound: none had closed by then.
        """
        end = int(np.searchsorted(self._closes[timeframe], until_ms, side="right"))
        start = max(0, end - limit)
        last = self._last.get(timeframe)
        if last is not None and last[0] == start and last[1] == end:
            return last[2]
        if end == 0:
            raise DataNotFound(f"no {timeframe} candles of {self.symbol} closed by {iso(until_ms)}")
        frame = self._frames[timeframe].iloc[start:end]
        # Numbered from 0 like any fetched frame; setting the slice's own index costs half of
        # reset_index, and the loaded frame is untouched (the slice is a new object).
        frame.index = pd.RangeIndex(end - start)
        self._last[timeframe] = (start, end, frame)
        not_finite = self._not_finite[timeframe]
        finite = bool(not_finite[end] == not_finite[start])
        whole = self._arrays[timeframe]
        self.memo.adopt(frame, whole[start:end], finite=finite, history=(whole, start))
        return frame

    async def fetch(
        self, symbol: str, timeframes: Sequence[str], limit: int, *, until_ms: int | None = None
    ) -> dict[str, pd.DataFrame]:
        """``MarketSource.fetch`` over the history: every frame cut at ``until_ms`` (default: the end).

        Raises:
            UsageError: another symbol than the one loaded.
            DataNotFound: no candle of a timeframe closed by ``until_ms``.
            DataError, ExchangeError: loading a new timeframe failed.
        """
        if symbol != self.symbol:
            raise UsageError(f"this backtest holds {self.symbol}, not {symbol}")
        until = self.end_ms if until_ms is None else min(until_ms, self.end_ms)
        await self.load(timeframes)
        return {timeframe: self.cut(timeframe, until, limit) for timeframe in timeframes}

    async def close(self) -> None:
        """Nothing to release: the underlying source belongs to whoever opened it."""
        return None
