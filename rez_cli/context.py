"""The zero-shot context: the compact snapshot the model reads before it asks for anything.

Per timeframe: last close, change over the window, EMA 20 (and its slope), RSI 14, ATR 14, distance
to the window's high and low, and the last volume against its 20-candle average. The text form is
what the model reads; it stays under ``MAX_TEXT_CHARS`` for three timeframes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path

import pandas as pd
from pydantic import BaseModel

from rez_cli import indicators
from rez_cli.market.candles import close_time_ms, find_gaps, iso
from rez_cli.settings import Settings

MAX_TEXT_CHARS = 4_800
SLOPE_BARS = 5
VOLUME_WINDOW = 20


class TimeframeSnapshot(BaseModel):
    """One timeframe of the context (prices in quote currency, percentages as 1.5 = 1.5%)."""

    candles: int
    first_open_ms: int
    last_close_ms: int
    last_close: float
    change_pct: float
    ema_20: float | None
    ema_20_slope_pct: float | None
    rsi_14: float | None
    atr_14: float | None
    high: float
    low: float
    from_high_pct: float
    from_low_pct: float
    volume_ratio: float | None
    gaps: int


class Context(BaseModel):
    """What one cycle knows about the market when it starts."""

    symbol: str
    exchange: str
    as_of: int
    last_price: float
    simulated: bool
    primary_timeframe: str
    timeframes: dict[str, TimeframeSnapshot]


def _last(series: pd.Series) -> float | None:
    value = series.iloc[-1] if len(series) else float("nan")
    return float(value) if value is not None and math.isfinite(value) else None


def _pct(new: float, old: float) -> float:
    return (new / old - 1.0) * 100.0


def snapshot(frame: pd.DataFrame, timeframe: str) -> TimeframeSnapshot:
    """Summarise one validated frame of closed candles."""
    close = frame["close"]
    last_close = float(close.iloc[-1])
    ema = indicators.compute(frame, "ema", {"length": 20}).iloc[:, 0]
    rsi = indicators.compute(frame, "rsi", {"length": 14}).iloc[:, 0]
    atr = indicators.compute(frame, "atr", {"length": 14}).iloc[:, 0]
    ema_now = _last(ema)
    ema_then = float(ema.iloc[-1 - SLOPE_BARS]) if len(ema) > SLOPE_BARS else float("nan")
    slope = _pct(ema_now, ema_then) if ema_now is not None and math.isfinite(ema_then) else None
    volume = frame["volume"]
    average_volume = (
        float(volume.iloc[-VOLUME_WINDOW - 1 : -1].mean()) if len(volume) > VOLUME_WINDOW else 0.0
    )
    high, low = float(frame["high"].max()), float(frame["low"].min())
    return TimeframeSnapshot(
        candles=len(frame),
        first_open_ms=int(frame["timestamp"].iloc[0]),
        last_close_ms=close_time_ms(frame, timeframe),
        last_close=last_close,
        change_pct=_pct(last_close, float(frame["open"].iloc[0])),
        ema_20=ema_now,
        ema_20_slope_pct=slope,
        rsi_14=_last(rsi),
        atr_14=_last(atr),
        high=high,
        low=low,
        from_high_pct=_pct(last_close, high),
        from_low_pct=_pct(last_close, low),
        volume_ratio=float(volume.iloc[-1]) / average_volume if average_volume > 0 else None,
        gaps=sum(gap.missing for gap in find_gaps(frame, timeframe)),
    )


def build_context(
    symbol: str,
    exchange: str,
    frames: Mapping[str, pd.DataFrame],
    *,
    primary_timeframe: str,
    simulated: bool,
) -> Context:
    """The context of a cycle from its frames (one per timeframe, all cut at the same moment)."""
    snapshots = {timeframe: snapshot(frame, timeframe) for timeframe, frame in frames.items()}
    finest = min(snapshots.values(), key=lambda item: item.last_close_ms - item.first_open_ms)
    latest = max(snapshots.values(), key=lambda item: item.last_close_ms)
    return Context(
        symbol=symbol,
        exchange=exchange,
        as_of=latest.last_close_ms,
        # The most recent close of any timeframe is the freshest price the cycle knows.
        last_price=latest.last_close if latest.last_close_ms >= finest.last_close_ms else finest.last_close,
        simulated=simulated,
        primary_timeframe=primary_timeframe,
        timeframes=snapshots,
    )


def _fmt(value: float | None, reference: float) -> str:
    if value is None:
        return "n/a"
    return f"{indicators.round_value(value, reference):,.{indicators.price_decimals(reference)}f}"


def _signed(value: float | None, digits: int = 2) -> str:
    return "n/a" if value is None else f"{value:+.{digits}f}%"


def context_text(context: Context) -> str:
    """The context as the model reads it: one header line, one line per timeframe, a legend."""
    price = context.last_price
    lines = [
        f"{context.symbol} on {context.exchange}{' (SIMULATED market)' if context.simulated else ''}, "
        f"as of {iso(context.as_of)} (close of the last closed candle). Last price {_fmt(price, price)}. "
        f"Primary timeframe {context.primary_timeframe}.",
        "tf | candles | close | chg% window | EMA20 | EMA20 slope 5 bars | RSI14 | ATR14 | "
        "window high (dist) | window low (dist) | vol/avg20",
    ]
    for timeframe, item in context.timeframes.items():
        vol = "n/a" if item.volume_ratio is None else f"{item.volume_ratio:.2f}x"
        rsi = "n/a" if item.rsi_14 is None else f"{item.rsi_14:.1f}"
        lines.append(
            f"{timeframe} | {item.candles} | {_fmt(item.last_close, price)} | {_signed(item.change_pct)} | "
            f"{_fmt(item.ema_20, price)} | {_signed(item.ema_20_slope_pct, 3)} | {rsi} | "
            f"{_fmt(item.atr_14, price)} | {_fmt(item.high, price)} ({_signed(item.from_high_pct)}) | "
            f"{_fmt(item.low, price)} ({_signed(item.from_low_pct)}) | {vol}"
            + (f" | {item.gaps} missing candles" if item.gaps else "")
        )
    return "\n".join(lines)


def context_timeframes(requested: list[str], primary: str) -> list[str]:
    """The timeframes of a context: those asked for, plus the primary one trades are planned on."""
    from rez_cli.timeframes import timeframe_ms

    return sorted({*requested, primary}, key=timeframe_ms)


async def load_context(
    settings: Settings,
    symbol: str,
    *,
    timeframes: list[str],
    exchange: str | None = None,
    data: Path | None = None,
    use_cache: bool = True,
    as_of_ms: int | None = None,
) -> Context:
    """Open the source the user chose, fetch every timeframe concurrently, and build the context.

    Raises:
        DataError, ExchangeError: the candles cannot be had; the message says why.
    """
    from rez_cli.market.view import MarketView, open_source

    source = open_source(settings, exchange=exchange, data=data, use_cache=use_cache, now_ms=as_of_ms)
    try:
        view = MarketView(source, symbol, limit=settings.market.candles, until_ms=as_of_ms)
        primary = settings.market.timeframe
        frames = await view.frames(context_timeframes(timeframes, primary))
    finally:
        await source.close()
    return build_context(symbol, source.name, frames, primary_timeframe=primary, simulated=source.simulated)
