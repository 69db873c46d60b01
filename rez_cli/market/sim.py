"""A seeded synthetic market for offline use (``--exchange sim``).

The truth is a 1-minute price path; every timeframe is aggregated from it, so a 4h candle is exactly
the 1h candles under it. The path is built so that any window can be produced on its own and always
comes out the same for a given (symbol, seed):

- a daily log-price level follows a GARCH(1,1) random walk from a fixed origin (volatility clustering
  across days), drawn from one stream per (symbol, seed);
- within each day, minute returns with hour-to-hour volatility clustering are drawn from a stream of
  their own per (symbol, seed, day), then bent by a Brownian bridge to land on the next day's level.
Volume rises with the size of a move and with the volatility regime, with log-normal noise.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import pandas as pd

from rez_cli.clock import iso, now_ms
from rez_cli.errors import DataNotFound, UsageError
from rez_cli.market.candles import drop_unclosed, resample, validate_candles
from rez_cli.timeframes import timeframe_ms

MINUTE_MS = 60_000
DAY_MS = 86_400_000
MINUTES_PER_DAY = 1440
ORIGIN_MS = 1_420_070_400_000  # 2015-01-01T00:00Z: the sim market has no candle before this
HORIZON_DAYS = 12_000  # ~2047: enough for any "now" this tool will see
# Rough 2021 price levels so the simulated market looks like the real one to a reader.
START_PRICES = {"BTC": 30_000.0, "ETH": 2_000.0, "SOL": 40.0, "BNB": 300.0, "XRP": 0.8, "DOGE": 0.2}


def _symbol_key(symbol: str) -> int:
    return int.from_bytes(hashlib.sha256(symbol.upper().encode()).digest()[:8], "little")


def _start_price(symbol: str) -> float:
    base = symbol.split("/")[0].upper()
    if base in START_PRICES:
        return START_PRICES[base]
    # Unknown bases still get a stable, plausible price between 0.1 and 1000.
    return float(10 ** (-1 + 4 * ((_symbol_key(symbol) % 10_000) / 10_000)))


@lru_cache(maxsize=32)
def _daily_levels(symbol: str, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Log-price at the start of every day since the origin, and each day's volatility."""
    rng = np.random.default_rng([seed, _symbol_key(symbol), 1])
    shocks = rng.standard_normal(HORIZON_DAYS)
    omega, alpha, beta = 0.000_04, 0.10, 0.85  # long-run daily vol ≈ 3.3%, as crypto majors
    variance = np.empty(HORIZON_DAYS)
    returns = np.empty(HORIZON_DAYS)
    var = omega / (1 - alpha - beta)
    for day in range(HORIZON_DAYS):
        variance[day] = var
        returns[day] = np.sqrt(var) * shocks[day]
        var = omega + alpha * returns[day] ** 2 + beta * var
    levels = np.log(_start_price(symbol)) + np.concatenate(([0.0], np.cumsum(returns)))
    return levels, np.sqrt(variance)


def _day_minutes(symbol: str, seed: int, day: int) -> tuple[np.ndarray, np.ndarray]:
    """Minute close log-prices (1441 points, start to end of day) and minute volumes for one day."""
    levels, daily_vol = _daily_levels(symbol, seed)
    rng = np.random.default_rng([seed, _symbol_key(symbol), 2, day])
    # Hour-level volatility regime: an AR(1) in log space, so busy hours cluster.
    hourly = np.empty(24)
    state = rng.standard_normal() * 0.3
    for hour in range(24):
        state = 0.8 * state + 0.3 * rng.standard_normal()
        hourly[hour] = np.exp(state)
    minute_scale = np.repeat(hourly / np.sqrt(np.mean(hourly**2)), 60)
    steps = rng.standard_normal(MINUTES_PER_DAY) * minute_scale * daily_vol[day] / np.sqrt(MINUTES_PER_DAY)
    walk = np.concatenate(([0.0], np.cumsum(steps)))
    target = levels[day + 1] - levels[day]
    bridge = walk - np.linspace(0.0, 1.0, MINUTES_PER_DAY + 1) * (walk[-1] - target)
    path = levels[day] + bridge
    moves = np.abs(np.diff(path)) / (daily_vol[day] / np.sqrt(MINUTES_PER_DAY))
    base_volume = 1_000_000.0 / np.exp(levels[day])  # about $1M of turnover a minute
    volume = base_volume * (0.5 + 0.5 * moves) * minute_scale * rng.lognormal(0.0, 0.4, MINUTES_PER_DAY)
    return path, volume


# A day's minutes, drawn once: a backtest loads each timeframe's history from the same days (about
# 70 KB a day; 512 days cover a 10,000-hour backtest and its warm-up).
@lru_cache(maxsize=512)
def _day_candles(symbol: str, seed: int, day: int) -> tuple[np.ndarray, ...]:
    """Open, high, low, close and volume of one day's 1440 minute candles (read-only)."""
    path, volume = _day_minutes(symbol, seed, day)
    opens, closes = path[:-1], path[1:]
    # Wicks: a small extra excursion beyond the body, drawn from the same day stream.
    wick_rng = np.random.default_rng([seed, _symbol_key(symbol), 3, day])
    span = np.abs(closes - opens) + 1e-5
    highs = np.maximum(opens, closes) + wick_rng.exponential(0.5, MINUTES_PER_DAY) * span
    lows = np.minimum(opens, closes) - wick_rng.exponential(0.5, MINUTES_PER_DAY) * span
    columns = (np.exp(opens), np.exp(highs), np.exp(lows), np.exp(closes), volume)
    for values in columns:
        values.flags.writeable = False
    return columns


def minute_candles(symbol: str, seed: int, start_ms: int, end_ms: int) -> pd.DataFrame:
    """The 1-minute candles opening in ``[start_ms, end_ms)``, both aligned to the minute."""
    start_ms = max(start_ms, ORIGIN_MS)
    if end_ms <= start_ms:
        return pd.DataFrame(
            {column: [] for column in ("timestamp", "open", "high", "low", "close", "volume")}
        )
    first_day = (start_ms - ORIGIN_MS) // DAY_MS
    last_day = (end_ms - 1 - ORIGIN_MS) // DAY_MS
    if last_day >= HORIZON_DAYS:
        raise UsageError("the simulated market ends in 2047", hint="use an earlier --as-of")
    days = [_day_candles(symbol, seed, day) for day in range(first_day, last_day + 1)]
    timestamps = (
        ORIGIN_MS + first_day * DAY_MS + np.arange(len(days) * MINUTES_PER_DAY, dtype=np.int64) * MINUTE_MS
    )
    first, end = np.searchsorted(timestamps, [start_ms, end_ms])
    # One frame of the whole span, its columns joined from the days' (copies: the days stay cached).
    return pd.DataFrame(
        {
            "timestamp": timestamps[first:end],
            **{
                name: np.concatenate([day[index] for day in days])[first:end]
                for index, name in enumerate(("open", "high", "low", "close", "volume"))
            },
        }
    )


class SimSource:
    """The ``sim`` market: seeded, offline, deterministic. Everything shown from it says SIMULATED."""

    name = "sim"
    simulated = True

    def __init__(self, *, seed: int = 7, now_ms: int | None = None) -> None:
        self.seed = seed
        self._now_ms = now_ms

    def candles(self, symbol: str, timeframe: str, limit: int, until_ms: int) -> pd.DataFrame:
        """The last ``limit`` candles of one timeframe closed by ``until_ms``."""
        step = timeframe_ms(timeframe)
        if step < MINUTE_MS:
            raise UsageError(f"the simulated market has no {timeframe} candles", hint="use 1m or higher")
        end = until_ms // step * step
        start = end - limit * step
        minutes = minute_candles(symbol, self.seed, start, end)
        frame = resample(minutes, "1m", timeframe) if step > MINUTE_MS else minutes
        frame = drop_unclosed(frame, timeframe, until_ms).tail(limit).reset_index(drop=True)
        if frame.empty:
            raise DataNotFound(
                f"the simulated market has no {symbol} {timeframe} candle closed by {iso(until_ms)}",
                hint=f"it starts at {iso(ORIGIN_MS)}: use a later --as-of",
            )
        return validate_candles(frame, f"sim {symbol} {timeframe}")

    async def fetch(
        self, symbol: str, timeframes: Sequence[str], limit: int, *, until_ms: int | None = None
    ) -> dict[str, pd.DataFrame]:
        now = now_ms()
        until = until_ms if until_ms is not None else self._now_ms or now
        if until > now:
            # The simulator would happily draw candles for any day until 2047: a future that never
            # happened must not pass for market data.
            raise UsageError(
                f"{iso(until)} is in the future: the simulated market has no candles after now",
                hint="use a past --as-of, or leave it out for now",
            )
        # Pure numpy work: run it off the event loop so concurrent symbols overlap their I/O-free parts.
        frames = await asyncio.gather(
            *(asyncio.to_thread(self.candles, symbol, timeframe, limit, until) for timeframe in timeframes)
        )
        return dict(zip(timeframes, frames, strict=True))

    async def close(self) -> None:
        return None
