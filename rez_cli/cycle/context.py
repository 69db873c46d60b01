"""The zero-shot context: the compact snapshot the model reads before it asks for anything.

Per timeframe: last close, change over the window, EMA 20 (and its slope), RSI 14, ATR 14, distance
to the window's high and low, the last volume against its 20-candle average, the last
``RECENT_CANDLES`` candles and the last ``SWINGS_SHOWN`` swing highs and lows; and the previous UTC
day's high and low. Everything comes from the closed candles the frames hold, so nothing after
``as_of`` can reach it. The text form is what the model reads: numbers without thousands separators
(a model may read ``61,200`` as two numbers) and to 6 significant digits, and under
``MAX_TEXT_CHARS`` for three timeframes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from contextlib import nullcontext
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np
import pandas as pd
from pydantic import BaseModel

from rez_cli import indicators
from rez_cli.clock import iso
from rez_cli.config.settings import Settings
from rez_cli.formatting import signed_pct
from rez_cli.indicators.specs import DAY_MS
from rez_cli.indicators.summary import candle_time
from rez_cli.market.snapshot import Context, DayRange, RecentCandles, Swings, TimeframeSnapshot
from rez_cli.timeframes import timeframe_ms

if TYPE_CHECKING:
    from rez_cli.indicators import IndicatorMemo
    from rez_cli.llm.meter import Meter
    from rez_cli.market.source import MarketSource
    from rez_cli.market.view import MarketView

MAX_TEXT_CHARS = 6_000
SLOPE_BARS = 5
VOLUME_WINDOW = 20
RECENT_CANDLES = 12
# A swing high is a fractal: a candle whose high is above the highs of the SWING_BARS candles before
# it and not below those of the SWING_BARS after it (a flat top counts once, at its first candle); a
# swing low mirrors it. The candles after it must be in the window, so the last SWING_BARS candles
# are never swings: a swing is only ever confirmed by closed candles.
SWING_BARS = 3
SWINGS_SHOWN = 2


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
    # Every field is a number or a frozen model of tuples, so a shallow copy is the caller's own.
    return memo.derived(
        frame, timeframe, "context.snapshot", lambda: _snapshot(frame, timeframe, memo)
    ).model_copy()


@lru_cache(maxsize=8)
def _length_params(name: str, length: int) -> BaseModel:
    """An indicator's validated parameters, once: the memo knows a frozen model by itself."""
    return indicators.validate_params(name, {"length": length})


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
            return memo.values(frame, timeframe, name, _length_params(name, length))[name]

    at = _columns_of(frame)
    step_ms = timeframe_ms(timeframe)
    last_close = float(array[-1, at.close])
    # Kept as the model reads them, to the instrument's decimals: a journal stores thousands of
    # contexts, and rounded numbers it has just seen in the text compress to almost nothing.
    places = model_decimals(last_close)
    found = _Shown.of_history(frame, at, step_ms, memo) if memo is not None else None
    if found is None or found[1] == 0:
        # Not cut from a history, or cut short by its start: each such window has a size of its own,
        # and tables of the whole history for every size would cost more than the window alone.
        found = (_Shown(array, at, step_ms), 0)
    shown, start = found
    fields = shown.window(start, len(array), places)
    ema = indicator("ema", 20)
    ema_now = _last(ema)
    ema_then = float(ema[-1 - SLOPE_BARS]) if len(ema) > SLOPE_BARS else math.nan
    slope = _pct(ema_now, ema_then) if ema_now is not None and math.isfinite(ema_then) else None
    high, low, average_volume = fields.high, fields.low, fields.average_volume
    return TimeframeSnapshot(
        candles=len(frame),
        first_open_ms=int(array[0, at.timestamp]),
        last_close_ms=int(array[-1, at.timestamp]) + step_ms,
        last_close=last_close,
        change_pct=_pct(last_close, float(array[0, at.open])),
        ema_20=ema_now,
        ema_20_slope_pct=slope,
        rsi_14=_last(indicator("rsi", 14)),
        atr_14=_last(indicator("atr", 14)),
        high=high,
        low=low,
        from_high_pct=_pct(last_close, high),
        from_low_pct=_pct(last_close, low),
        volume_ratio=float(array[-1, at.volume]) / average_volume if average_volume > 0 else None,
        gaps=fields.gaps,
        recent=fields.recent,
        swing_highs=fields.swing_highs,
        swing_lows=fields.swing_lows,
    )


@dataclass(frozen=True)
class _WindowFields:
    """The parts of a snapshot that ``_Shown`` works out: everything but the indicators and the
    numbers read straight off the window's first and last candles."""

    high: float
    low: float
    average_volume: float
    gaps: int
    recent: RecentCandles
    swing_highs: Swings
    swing_lows: Swings


class _Shown:
    """What the windows of one run of candles show: their highs and lows, volume averages, missing
    candles, recent candles and swings, worked out for every window of the run at once.

    A backtest cuts thousands of windows from one history, each a candle on from the one before;
    each value below depends on the rows of its own window alone, so a window reads the very numbers
    a search of it alone would find (``tests/backtest/test_context_windows.py``), and nothing of the
    rows after it (``tests/backtest/test_lookahead.py``). Per window size, since a window's high is
    the highest of its own rows.
    """

    def __init__(self, array: np.ndarray[Any, np.dtype[np.float64]], at: _Columns, step_ms: int) -> None:
        self._array, self._at = array, at
        opens = array[:, at.timestamp]  # as float64: exact for any time in milliseconds
        self._opens: list[int] = [int(value) for value in opens.tolist()]
        # As market.candles.find_gaps counts them: consecutive candles more than one interval apart.
        steps = np.diff(opens)
        missing = np.where(steps > step_ms, steps // step_ms - 1, 0.0)
        # Missing candles between row 0 and row i, summed in order: whole numbers, exact in float64.
        self._missing_before = np.concatenate(([0.0], np.cumsum(missing)))
        self._fractals = (_fractals(array, at, high=True), _fractals(array, at, high=False))
        self._by_size: dict[int, tuple[np.ndarray[Any, np.dtype[np.float64]], ...]] = {}
        self._rounded: dict[int, tuple[list[list[float]], list[float], list[float]]] = {}

    @staticmethod
    def of_history(
        frame: pd.DataFrame, at: _Columns, step_ms: int, memo: indicators.IndicatorMemo
    ) -> tuple[_Shown, int] | None:
        """The ``_Shown`` of the history ``frame`` was cut from, and the row the frame starts at (see
        ``IndicatorMemo.across_history``); None for a frame not cut from one."""
        return memo.across_history(
            frame, ("context.shown", at, step_ms), lambda history: _Shown(history, at, step_ms)
        )

    def _sized(self, size: int) -> tuple[np.ndarray[Any, np.dtype[np.float64]], ...]:
        """Per window of ``size`` rows, by its first row: highest high, lowest low, and the mean volume
        of the ``VOLUME_WINDOW`` candles before its last."""
        found = self._by_size.get(size)
        if found is None:
            array, at = self._array, self._at
            windows = np.lib.stride_tricks.sliding_window_view
            highs = windows(array[:, at.high], size).max(axis=1)
            lows = windows(array[:, at.low], size).min(axis=1)
            if size > VOLUME_WINDOW:
                averages = windows(array[: len(array) - 1, at.volume], VOLUME_WINDOW).mean(axis=1)
                # The window starting at row s averages rows s + size - 1 - VOLUME_WINDOW onwards.
                averages = averages[size - 1 - VOLUME_WINDOW :]
            else:
                averages = np.zeros(len(highs))
            found = (highs, lows, averages)
            self._by_size[size] = found
        return found

    def _rounded_to(self, places: int) -> tuple[list[list[float]], list[float], list[float]]:
        """Open, high, low and close of every row, and the swings' prices, rounded to ``places``."""
        found = self._rounded.get(places)
        if found is None:
            at = self._at
            ohlc = np.round(self._array[:, [at.open, at.high, at.low, at.close]], places).T.tolist()
            swings = tuple(np.round(fractals.price, places).tolist() for fractals in self._fractals)
            found = (ohlc, swings[0], swings[1])
            self._rounded[places] = found
        return found

    def window(self, start: int, size: int, places: int) -> _WindowFields:
        """The fields of the window of ``size`` (at least 1) rows from row ``start``."""
        end = start + size
        highs, lows, averages = self._sized(size)
        ohlc, high_prices, low_prices = self._rounded_to(places)
        first_recent = max(start, end - RECENT_CANDLES)
        swings = []
        for fractals, prices in zip(self._fractals, (high_prices, low_prices), strict=True):
            # A fractal needs SWING_BARS candles either side of it inside the window.
            last = int(fractals.rows.searchsorted(end - SWING_BARS))
            first = max(int(fractals.rows.searchsorted(start + SWING_BARS)), last - SWINGS_SHOWN)
            swings.append(
                Swings(open_ms=tuple(fractals.open_ms[first:last]), price=tuple(prices[first:last]))
            )
        return _WindowFields(
            high=float(highs[start]),
            low=float(lows[start]),
            average_volume=float(averages[start]),
            gaps=int(self._missing_before[end - 1] - self._missing_before[start]),
            recent=RecentCandles(
                open_ms=tuple(self._opens[first_recent:end]),
                open=tuple(ohlc[0][first_recent:end]),
                high=tuple(ohlc[1][first_recent:end]),
                low=tuple(ohlc[2][first_recent:end]),
                close=tuple(ohlc[3][first_recent:end]),
            ),
            swing_highs=swings[0],
            swing_lows=swings[1],
        )


class _Columns(NamedTuple):
    """Where each candle column is in a frame's array (pandas charges for every look-up by label)."""

    timestamp: int
    open: int
    high: int
    low: int
    close: int
    volume: int


def _columns_of(frame: pd.DataFrame) -> _Columns:
    """Where the candle columns are in ``frame``'s array (a look-up each: listing an index of Arrow
    strings costs more)."""
    labels = frame.columns

    def position(label: str) -> int:
        found = labels.get_loc(label)
        if not isinstance(found, int):  # a validated frame has each column once
            raise ValueError(f"the candles have more than one {label} column")
        return found

    return _Columns(*(position(label) for label in _Columns._fields))


@dataclass(frozen=True)
class _Fractals:
    """The fractals (see ``SWING_BARS``) of a run of candles' highs (or lows), in order."""

    rows: np.ndarray[Any, np.dtype[np.intp]]
    open_ms: list[int]
    price: np.ndarray[Any, np.dtype[np.float64]]


def _fractals(array: np.ndarray[Any, np.dtype[np.float64]], at: _Columns, *, high: bool) -> _Fractals:
    """The fractals of the highs (or lows) of the candles in ``array``.

    Whether a row is one depends on the ``SWING_BARS`` rows either side of it alone, so the fractals
    of a window are those of a longer run of candles that lie at least ``SWING_BARS`` rows inside it.
    """
    bars, values = SWING_BARS, array[:, at.high if high else at.low]
    count = len(values)
    rows = np.empty(0, dtype=np.intp)
    if count >= 2 * bars + 1:
        # A swing low is a swing high of the negated lows.
        signed = values if high else -values
        centre = signed[bars : count - bars]
        found = np.ones(len(centre), dtype=bool)
        for k in range(1, bars + 1):
            found &= centre > signed[bars - k : count - bars - k]
            found &= centre >= signed[bars + k : count - bars + k]
        rows = np.flatnonzero(found) + bars
    return _Fractals(rows, [int(value) for value in array[rows, at.timestamp].tolist()], values[rows])


def previous_day(
    frames: Mapping[str, pd.DataFrame], as_of_ms: int, memo: indicators.IndicatorMemo | None = None
) -> DayRange | None:
    """The high and low of the last whole UTC day before ``as_of_ms``, from the finest timeframe whose
    candles tile a day and whose window spans all of it; None when no window does."""
    day_end = as_of_ms // DAY_MS * DAY_MS
    day_start = day_end - DAY_MS
    for timeframe in sorted(frames, key=timeframe_ms):
        step = timeframe_ms(timeframe)
        frame = frames[timeframe]
        if step > DAY_MS or DAY_MS % step or frame.empty:
            continue
        array = memo.array(frame) if memo is not None else frame.to_numpy(dtype="float64")
        at = _columns_of(frame)
        opens = array[:, at.timestamp]
        if opens[0] > day_start or opens[-1] + step < day_end:
            continue
        # The candles that open and close within the day: open times are in order, so they are one run.
        first = int(np.searchsorted(opens, day_start, side="left"))
        end = int(np.searchsorted(opens, day_end - step, side="right"))
        if end <= first:
            continue
        return DayRange(
            day_open_ms=day_start,
            high=float(array[first:end, at.high].max()),
            low=float(array[first:end, at.low].min()),
            timeframe=timeframe,
        )
    return None


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
        previous_day=previous_day(frames, latest.last_close_ms, memo),
    )


# A backtest's windows show the same candles, times and reference decimals again and again: each is
# worked out once rather than for every cycle that shows it.
@lru_cache(maxsize=1024)
def model_decimals(reference: float) -> int:
    """Decimals that show prices of this size to 6 significant digits: a model reads every digit as a
    token of its own, and a tick finer than that says nothing about a level."""
    if not math.isfinite(reference) or reference <= 0:
        return 12
    return min(12, max(0, 5 - math.floor(math.log10(reference))))


def number(value: float | None, reference: float) -> str:
    """A price-unit value as the model reads it: ``model_decimals`` of the reference, no thousands
    separators."""
    return _number(value, model_decimals(reference))


def _number(value: float | None, places: int) -> str:
    if value is None or not math.isfinite(value):
        return "n/a"
    return _fixed(value, places)


# A cycle writes about a hundred numbers, and most of them (its recent candles, its swings) the cycle
# before it wrote too.
@lru_cache(maxsize=4096)
def _fixed(value: float, places: int) -> str:
    rounded = round(value, places)
    # round() keeps the sign of a tiny negative: "-0.00" would read as a level below zero.
    return f"{0.0 if rounded == 0 else rounded:.{places}f}"


# A candle's prices, and a slower timeframe's closes, come back cycle after cycle.
@lru_cache(maxsize=1024)
def _prices(values: tuple[float, ...], places: int) -> str:
    return " ".join(_number(value, places) for value in values)


@lru_cache(maxsize=4096)
def _moment(ts_ms: int, step_ms: int) -> str:
    """A candle's open time without its year (the header's as_of has it): ``06-30 21:00``, or
    ``06-30`` for daily and longer candles."""
    moment = datetime.fromtimestamp(ts_ms / 1000, tz=UTC)
    return moment.strftime("%m-%d" if step_ms >= DAY_MS and ts_ms % DAY_MS == 0 else "%m-%d %H:%M")


def context_text(context: Context) -> str:
    """The context as the model reads it: a header, the previous day's range, one line per timeframe
    with a legend, then each timeframe's recent candles (OHLC for the primary one, closes for the
    others) and swings."""
    last = context.last_price
    places = model_decimals(last)
    lines = [
        f"{context.symbol} on {context.exchange}{' (SIMULATED market)' if context.simulated else ''}, "
        f"as of {iso(context.as_of)} (close of the last closed candle). Last price {_number(last, places)}. "
        f"Primary timeframe {context.primary_timeframe}. Times are candle open times in UTC.",
    ]
    day = context.previous_day
    if day is not None:
        lines.append(
            f"Previous UTC day ({candle_time(day.day_open_ms, DAY_MS)}): "
            f"high {_number(day.high, places)}, low {_number(day.low, places)}."
        )
    lines.append(
        "tf | candles | close | chg% window | EMA20 | EMA20 slope 5 bars | RSI14 | ATR14 | "
        "window high (dist) | window low (dist) | vol/avg20"
    )
    for timeframe, item in context.timeframes.items():
        vol = "n/a" if item.volume_ratio is None else f"{item.volume_ratio:.2f}x"
        rsi = "n/a" if item.rsi_14 is None else f"{item.rsi_14:.1f}"
        lines.append(
            f"{timeframe} | {item.candles} | {_number(item.last_close, places)} | "
            f"{signed_pct(item.change_pct)} | {_number(item.ema_20, places)} | "
            f"{signed_pct(item.ema_20_slope_pct, 3)} | {rsi} | "
            f"{_number(item.atr_14, places)} | "
            f"{_number(item.high, places)} ({signed_pct(item.from_high_pct)}) | "
            f"{_number(item.low, places)} ({signed_pct(item.from_low_pct)}) | {vol}"
            + (f" | {item.gaps} missing candles" if item.gaps else "")
        )
    for timeframe, item in context.timeframes.items():
        lines += ["", *_price_action(timeframe, item, places, ohlc=timeframe == context.primary_timeframe)]
    return "\n".join(lines)


def _price_action(timeframe: str, item: TimeframeSnapshot, places: int, *, ohlc: bool) -> list[str]:
    step = timeframe_ms(timeframe)
    candles = item.recent
    count = len(candles.open_ms)
    if ohlc:
        lines = [f"{timeframe} last {count} candles, oldest first: open time, open, high, low, close"]
        day = ""
        for ts, o, h, lo, c in zip(
            candles.open_ms, candles.open, candles.high, candles.low, candles.close, strict=True
        ):
            # The date only where it changes: each digit is a token the model pays for.
            moment = _moment(ts, step)
            label = moment if moment[:5] != day else moment[6:] or moment
            day = moment[:5]
            lines.append(f"{label} {_prices((o, h, lo, c), places)}")
    else:
        span = (
            f" (opened {_moment(candles.open_ms[0], step)} to {_moment(candles.open_ms[-1], step)})"
            if count
            else ""
        )
        closes = _prices(candles.close, places)
        lines = [f"{timeframe} last {count} closes, oldest first{span}: {closes}"]
    for name, swings in (("swing highs", item.swing_highs), ("swing lows", item.swing_lows)):
        points = ", ".join(
            f"{_number(level, places)} ({_moment(ts, step)})"
            for ts, level in zip(swings.open_ms, swings.price, strict=True)
        )
        lines.append(f"{timeframe} {name}: {points or 'none in the window'}")
    return lines


def context_timeframes(requested: list[str], primary: str) -> list[str]:
    """The timeframes of a context: those asked for, plus the primary one trades are planned on."""
    return sorted({*requested, primary}, key=timeframe_ms)


def market_view(
    source: MarketSource,
    symbol: str,
    settings: Settings,
    until_ms: int | None,
    memo: IndicatorMemo | None = None,
) -> MarketView:
    """The view a cycle reads its market through: ``[market] candles`` of each timeframe, cut at
    ``until_ms`` (None: the latest)."""
    from rez_cli.market.view import MarketView

    return MarketView(source, symbol, limit=settings.market.candles, until_ms=until_ms, memo=memo)


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
    from rez_cli.market.view import open_source

    source = open_source(settings, exchange=exchange, data=data, use_cache=use_cache, now_ms=as_of_ms)
    try:
        view = market_view(source, symbol, settings, as_of_ms)
        _, context = await view_context(view, timeframes, settings.market.timeframe)
    finally:
        await source.close()
    return context
