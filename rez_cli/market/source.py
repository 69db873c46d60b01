"""The contract every market-data source follows."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

import pandas as pd


class MarketSource(Protocol):
    """Where candles come from: an exchange through ccxt, files, or the simulator.

    Every frame returned is validated (see ``market.candles``), holds only closed candles, and
    ends at the same moment for every timeframe of one call.
    """

    name: str
    """Shown to the user: an exchange id, ``files``, ``sim``."""

    simulated: bool
    """True for synthetic candles: everything printed from them says SIMULATED."""

    async def fetch(
        self, symbol: str, timeframes: Sequence[str], limit: int, *, until_ms: int | None = None
    ) -> dict[str, pd.DataFrame]:
        """The last ``limit`` candles of ``symbol`` per timeframe, closed by ``until_ms`` (default: now).

        Timeframes are fetched concurrently. A candle that has not closed by ``until_ms`` does not exist
        for the caller: that is what keeps a backtest from seeing the future.

        Raises:
            DataError, ExchangeError: the data cannot be had; the message says why.
        """
        ...

    async def close(self) -> None:
        """Release connections; the source is not used afterwards."""
        ...
