"""Candle frames that look like a real market, built from a seed.

Indicator parity tests need data with the features that break naive implementations: quiet and
violent stretches (volatility clustering), gaps between one close and the next open, wicks, prices
on a tick grid (so closes repeat and ranges can be flat), and volume that rises with volatility.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from rez_cli.market.candles import validate_candles

# 2021-03-01T00:00:00Z: a fixed start keeps every frame, and every failure message, reproducible.
START_MS = 1_614_556_800_000


def make_candles(
    n: int,
    seed: int,
    *,
    start_price: float = 30_000.0,
    timeframe_ms: int = 3_600_000,
    start_ms: int = START_MS,
    tick: float | None = None,
) -> pd.DataFrame:
    """A seeded random walk of ``n`` candles, valid under ``validate_candles``.

    Returns follow a GARCH(1, 1) process, so calm and turbulent regimes alternate as they do in
    crypto markets; volume is lognormal and grows with the size of the move.

    Args:
        n: number of candles.
        seed: seed of the generator; the same seed gives the same frame.
        start_price: open of the first candle.
        timeframe_ms: interval between candle open times.
        start_ms: open time of the first candle, ms since epoch.
        tick: price grid; by default about 1/100,000 of the start price, so equal closes happen.
    """
    rng = np.random.default_rng(seed)
    tick = tick if tick is not None else 10.0 ** np.floor(np.log10(start_price) - 5)
    omega, alpha, beta = 2e-7, 0.08, 0.9
    variance = omega / (1 - alpha - beta)
    log_returns = np.empty(n)
    shocks = rng.standard_t(df=5, size=n) / np.sqrt(5 / 3)
    for i in range(n):
        log_returns[i] = np.sqrt(variance) * shocks[i]
        variance = omega + alpha * log_returns[i] ** 2 + beta * variance
    closes = start_price * np.exp(np.cumsum(log_returns))
    # Most candles open at the previous close; a few gap, as after exchange maintenance.
    gaps = np.where(rng.random(n) < 0.03, rng.normal(0.0, 0.002, n), 0.0)
    opens = np.concatenate(([start_price], closes[:-1])) * np.exp(gaps)
    scale = np.abs(log_returns) + 5e-4
    highs = np.maximum(opens, closes) * np.exp(np.abs(rng.normal(0.0, 1.0, n)) * scale * 0.6)
    lows = np.minimum(opens, closes) * np.exp(-np.abs(rng.normal(0.0, 1.0, n)) * scale * 0.6)

    def on_grid(values: np.ndarray[Any, np.dtype[np.float64]]) -> np.ndarray[Any, np.dtype[np.float64]]:
        return np.asarray(np.maximum(np.round(values / tick), 1.0) * tick, dtype=np.float64)

    opens, closes, highs, lows = (on_grid(values) for values in (opens, closes, highs, lows))
    highs = np.maximum(highs, np.maximum(opens, closes))
    lows = np.minimum(lows, np.minimum(opens, closes))
    volume = np.round(rng.lognormal(mean=3.0, sigma=0.6, size=n) * (1.0 + 400.0 * np.abs(log_returns)), 4)
    frame = pd.DataFrame(
        {
            "timestamp": start_ms + timeframe_ms * np.arange(n, dtype="int64"),
            "open": opens,
            "high": highs,
            "low": lows,
            "close": closes,
            "volume": volume,
        }
    )
    return validate_candles(frame, f"make_candles(seed={seed})")
