"""The zero-shot context: the compact snapshot the model reads before it asks for anything.

Per timeframe: last close, change over the window, EMA 20 (and its slope), RSI 14, ATR 14, distance
to the window's high and low, and the last volume against its 20-candle average. The text form is
what the model reads; it stays under ``MAX_TEXT_CHARS`` for three timeframes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from contextlib import nullcontext
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from rez_cli import indicators
from rez_cli.clock import iso
from rez_cli.config.settings import Settings
from rez_cli.formatting import price, signed_pct
from rez_cli.market.snapshot import Context, TimeframeSnapshot
from rez_cli.timeframes import timeframe_ms

if TYPE_CHECKING:
    from rez_cli.llm.meter import Meter
    from rez_cli.market.view import MarketView

MAX_TEXT_CHARS = 4_800
SLOPE_BARS = 5
VOLUME_WINDOW = 20


def _last(values: np.ndarray[Any, np.dtype[np.float64]]) -> float | None:
    value = float(values[-1]) if len(values) else math.nan
    return value if math.isfinite(value) else None


def _pct(new: float, old: float) -> float:
    return (new / old - 1.0) * 100.0


def snapshot(
    frame: pd.DataFrame, timeframe: str, memo: indicators.IndicatorMemo | None = None
) -> TimeframeSnapshot:
    """Summarise one validated frame of closed candles.

    Args:
        frame: the candles, oldest first.
        timeframe: their interval.
        memo: the indicators of the cycle (or of a backtest), where EMA, RSI and ATR of this window
            may already be and where the tool calls find them; a snapshot of a window seen before
            (a 4h window, four 1h cycles in a row) is taken from it too. None computes everything.
    """
    if memo is None:
        return _snapshot(frame, timeframe, None)
    # Every field is an immutable number, so a shallow copy is the caller's own.
    return memo.derived(
        frame, timeframe, "context.snapshot", lambda: _snapshot(frame, timeframe, memo)
    ).model_copy()


def _snapshot(
    frame: pd.DataFrame, timeframe: str, memo: indicators.IndicatorMemo | None
) -> TimeframeSnapshot:
    # numpy arrays rather than pandas Series: this runs for every timeframe of every cycle.
    if memo is None:
        array = frame.to_numpy(dtype="float64")

        def indicator(name: str, length: int) -> np.ndarray[Any, np.dtype[np.float64]]:
            return indicators.compute(frame, name, {"length": length})[name].to_numpy()

    else:
        array = memo.array(frame)

        def indicator(name: str, length: int) -> np.ndarray[Any, np.dtype[np.float64]]:
            return memo.values(frame, timeframe, name, {"length": length})[name]

    def column(label: str) -> np.ndarray[Any, np.dtype[np.float64]]:
        return array[:, frame.columns.get_loc(label)]

    opens = column("timestamp")  # as float64: exact for any time in milliseconds
    step_ms = timeframe_ms(timeframe)
    close = column("close")
    last_close = float(close[-1])
    ema = indicator("ema", 20)
    ema_now = _last(ema)
    ema_then = float(ema[-1 - SLOPE_BARS]) if len(ema) > SLOPE_BARS else math.nan
    slope = _pct(ema_now, ema_then) if ema_now is not None and math.isfinite(ema_then) else None
    volume = column("volume")
    average_volume = float(volume[-VOLUME_WINDOW - 1 : -1].mean()) if len(volume) > VOLUME_WINDOW else 0.0
    high, low = float(column("high").max()), float(column("low").min())
    # As market.candles.find_gaps counts them: consecutive candles more than one interval apart.
    steps = np.diff(opens)
    return TimeframeSnapshot(
        candles=len(frame),
        first_open_ms=int(opens[0]),
        last_close_ms=int(opens[-1]) + step_ms,
        last_close=last_close,
        change_pct=_pct(last_close, float(column("open")[0])),
        ema_20=ema_now,
        ema_20_slope_pct=slope,
        rsi_14=_last(indicator("rsi", 14)),
        atr_14=_last(indicator("atr", 14)),
        high=high,
        low=low,
        from_high_pct=_pct(last_close, high),
        from_low_pct=_pct(last_close, low),
        volume_ratio=float(volume[-1]) / average_volume if average_volume > 0 else None,
        gaps=int((steps[steps > step_ms] // step_ms - 1).sum()),
    )


def build_context(
    symbol: str,
    exchange: str,
    frames: Mapping[str, pd.DataFrame],
    *,
    primary_timeframe: str,
    simulated: bool,
    memo: indicators.IndicatorMemo | None = None,
) -> Context:
    """The context of a cycle from its frames (one per timeframe, all cut at the same moment).

    ``memo``: indicator results to share with the rest of the cycle (see ``snapshot``).
    """
    snapshots = {timeframe: snapshot(frame, timeframe, memo) for timeframe, frame in frames.items()}
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


def context_text(context: Context) -> str:
    """The context as the model reads it: one header line, one line per timeframe, a legend."""
    last = context.last_price
    lines = [
        f"{context.symbol} on {context.exchange}{' (SIMULATED market)' if context.simulated else ''}, "
        f"as of {iso(context.as_of)} (close of the last closed candle). Last price {price(last, last)}. "
        f"Primary timeframe {context.primary_timeframe}.",
        "tf | candles | close | chg% window | EMA20 | EMA20 slope 5 bars | RSI14 | ATR14 | "
        "window high (dist) | window low (dist) | vol/avg20",
    ]
    for timeframe, item in context.timeframes.items():
        vol = "n/a" if item.volume_ratio is None else f"{item.volume_ratio:.2f}x"
        rsi = "n/a" if item.rsi_14 is None else f"{item.rsi_14:.1f}"
        lines.append(
            f"{timeframe} | {item.candles} | {price(item.last_close, last)} | "
            f"{signed_pct(item.change_pct)} | {price(item.ema_20, last)} | "
            f"{signed_pct(item.ema_20_slope_pct, 3)} | {rsi} | "
            f"{price(item.atr_14, last)} | {price(item.high, last)} ({signed_pct(item.from_high_pct)}) | "
            f"{price(item.low, last)} ({signed_pct(item.from_low_pct)}) | {vol}"
            + (f" | {item.gaps} missing candles" if item.gaps else "")
        )
    return "\n".join(lines)


def context_timeframes(requested: list[str], primary: str) -> list[str]:
    """The timeframes of a context: those asked for, plus the primary one trades are planned on."""
    return sorted({*requested, primary}, key=timeframe_ms)


async def view_context(
    view: MarketView, timeframes: list[str], primary: str, meter: Meter | None = None
) -> tuple[dict[str, pd.DataFrame], Context]:
    """The frames the context needs (``timeframes`` and the primary one), fetched concurrently from
    ``view``, and the context built from them with the view's memo: the one way every command gets a
    context. ``meter`` times the two stages, as a cycle reports them."""
    with meter.stage("market") if meter is not None else nullcontext():
        frames = await view.frames(context_timeframes(timeframes, primary))
    with meter.stage("context") if meter is not None else nullcontext():
        context = build_context(
            view.symbol,
            view.source.name,
            frames,
            primary_timeframe=primary,
            simulated=view.source.simulated,
            memo=view.memo,
        )
    return frames, context


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
        _, context = await view_context(view, timeframes, settings.market.timeframe)
    finally:
        await source.close()
    return context
