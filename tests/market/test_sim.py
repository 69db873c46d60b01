from __future__ import annotations

import asyncio

import pandas as pd
import pytest

from rez_cli.market.candles import resample, validate_candles
from rez_cli.market.sim import SimSource

AS_OF = 1_625_097_600_000  # 2021-07-01T00:00Z


def fetch(
    source: SimSource, symbol: str, timeframes: list[str], limit: int, until: int
) -> dict[str, pd.DataFrame]:
    return asyncio.run(source.fetch(symbol, timeframes, limit, until_ms=until))


def test_same_symbol_and_seed_give_the_same_candles() -> None:
    first = fetch(SimSource(seed=7), "BTC/USDT", ["1h"], 200, AS_OF)["1h"]
    again = fetch(SimSource(seed=7), "BTC/USDT", ["1h"], 200, AS_OF)["1h"]
    pd.testing.assert_frame_equal(first, again)
    other_seed = fetch(SimSource(seed=8), "BTC/USDT", ["1h"], 200, AS_OF)["1h"]
    other_symbol = fetch(SimSource(seed=7), "ETH/USDT", ["1h"], 200, AS_OF)["1h"]
    assert not first["close"].equals(other_seed["close"])
    assert not first["close"].equals(other_symbol["close"])


def test_a_candle_is_the_same_whatever_window_asks_for_it() -> None:
    short = fetch(SimSource(), "SOL/USDT", ["15m"], 50, AS_OF)["15m"]
    longer = fetch(SimSource(), "SOL/USDT", ["15m"], 400, AS_OF + 2 * 86_400_000)["15m"]
    merged = short.merge(longer, on="timestamp", suffixes=("_a", "_b"))
    assert len(merged) == 50
    for column in ("open", "high", "low", "close", "volume"):
        pd.testing.assert_series_equal(merged[f"{column}_a"], merged[f"{column}_b"], check_names=False)


@pytest.mark.parametrize(("low", "high"), [("15m", "1h"), ("1h", "4h"), ("4h", "1d")])
def test_higher_timeframes_are_aggregates_of_lower_ones(low: str, high: str) -> None:
    frames = fetch(SimSource(), "BTC/USDT", [low, high], 300, AS_OF)
    rebuilt = resample(frames[low], low, high)
    joined = rebuilt.merge(frames[high], on="timestamp", suffixes=("_r", "_h"))
    assert len(joined) >= 50
    for column in ("open", "high", "low", "close", "volume"):
        pd.testing.assert_series_equal(
            joined[f"{column}_r"], joined[f"{column}_h"], check_names=False, rtol=1e-12
        )


def test_only_closed_candles_and_a_plausible_market() -> None:
    frame = fetch(SimSource(), "BTC/USDT", ["1h"], 300, AS_OF + 30 * 60_000)["1h"]
    assert int(frame["timestamp"].iloc[-1]) + 3_600_000 <= AS_OF + 30 * 60_000
    validate_candles(frame, "sim")
    returns = frame["close"].pct_change().dropna()
    assert 0.001 < returns.std() < 0.05  # hourly moves of a crypto major, not a flat line or chaos
    assert (frame["volume"] > 0).all()
    # Volatility clustering: absolute returns are positively autocorrelated.
    assert returns.abs().autocorr(lag=1) > 0
    assert SimSource().simulated is True
