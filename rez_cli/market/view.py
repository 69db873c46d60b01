"""One symbol's market as one cycle sees it: frames fetched once, all ending at the same moment.

The first fetch fixes ``as_of`` (the close time of the last closed candle); every later request in
the cycle (a tool asking for another timeframe) is cut at that same moment, so the model never mixes
two views of the market, and a backtest never sees past its step.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from rez_cli.config.settings import Settings
from rez_cli.indicators import IndicatorMemo
from rez_cli.market.candles import close_time_ms
from rez_cli.market.source import MarketSource


class MarketView:
    """Candles of one symbol from one source, fetched on demand and kept for the cycle.

    ``memo`` holds the indicators computed on the view's frames, so that the context and the tool
    calls of the cycle compute each one once. By default it is the view's own; a backtest passes
    its history's, shared by every cycle (see ``IndicatorMemo`` for when that is sound).
    """

    def __init__(
        self,
        source: MarketSource,
        symbol: str,
        *,
        limit: int,
        until_ms: int | None = None,
        memo: IndicatorMemo | None = None,
    ) -> None:
        self.source = source
        self.symbol = symbol
        self.limit = limit
        self.memo = memo if memo is not None else IndicatorMemo()
        self._until_ms = until_ms
        self._frames: dict[str, pd.DataFrame] = {}
        self._lock = asyncio.Lock()

    @property
    def simulated(self) -> bool:
        return self.source.simulated

    @property
    def as_of(self) -> int | None:
        """The moment the view is cut at; known after the first fetch."""
        return self._until_ms

    async def frames(self, timeframes: Sequence[str]) -> dict[str, pd.DataFrame]:
        """Frames for each timeframe, fetching (concurrently) only those not yet held.

        Raises:
            DataError, ExchangeError: from the source.
        """
        async with self._lock:
            missing = [timeframe for timeframe in timeframes if timeframe not in self._frames]
            if missing:
                fetched = await self.source.fetch(self.symbol, missing, self.limit, until_ms=self._until_ms)
                if self._until_ms is None:
                    # Frames may end before "now" (files, an exchange lagging): the latest close among
                    # them is the moment the whole cycle stands at.
                    self._until_ms = max(close_time_ms(frame, tf) for tf, frame in fetched.items())
                self._frames.update(fetched)
            return {timeframe: self._frames[timeframe] for timeframe in timeframes}

    async def frame(self, timeframe: str) -> pd.DataFrame:
        return (await self.frames([timeframe]))[timeframe]


def open_source(
    settings: Settings,
    *,
    exchange: str | None = None,
    data: Path | None = None,
    use_cache: bool = True,
    now_ms: int | None = None,
) -> MarketSource:
    """The source the user asked for: ``--data`` files, the ``sim`` market, or an exchange through ccxt.

    Raises:
        DataNotFound: ``--data`` names nothing.
        UnknownExchange: not a ccxt id.
    """
    if data is not None:
        from rez_cli.market.files import FileSource

        return FileSource(data)
    exchange_id = exchange or settings.exchange.id
    if exchange_id == "sim":
        from rez_cli.market.sim import SimSource

        return SimSource(seed=settings.market.seed, now_ms=now_ms)
    from rez_cli.config import paths
    from rez_cli.market.cache import CandleCache
    from rez_cli.market.ccxt_source import CcxtSource

    cache = CandleCache(paths.cache_dir() / "candles") if use_cache and settings.exchange.cache else None
    return CcxtSource(
        exchange_id,
        dict(settings.exchange.ccxt),
        retries=settings.exchange.retries,
        cache=cache,
        now_ms=((lambda: now_ms) if now_ms is not None else None),
    )
