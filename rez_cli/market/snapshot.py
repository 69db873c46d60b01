"""The market as one cycle sees it when it starts: the data of the zero-shot context.

Only the data lives here; ``rez_cli.cycle.context`` computes it from candles and writes the text the
model reads. The reasoning modes hold a ``Context`` too, and they sit below the cycle, so its type has
its home below both.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict

__all__ = ["Context", "DayRange", "RecentCandles", "Swings", "TimeframeSnapshot"]


class RecentCandles(BaseModel):
    """The last closed candles of a timeframe, oldest first, one tuple per column (compact in JSON)."""

    model_config = ConfigDict(frozen=True)

    open_ms: tuple[int, ...] = ()
    open: tuple[float, ...] = ()
    high: tuple[float, ...] = ()
    low: tuple[float, ...] = ()
    close: tuple[float, ...] = ()


class Swings(BaseModel):
    """Recent swing highs (or lows) of a timeframe, oldest first: each candle's open time and its
    high (or low)."""

    model_config = ConfigDict(frozen=True)

    open_ms: tuple[int, ...] = ()
    price: tuple[float, ...] = ()


class DayRange(BaseModel):
    """The high and low of one whole UTC day, read from the candles of ``timeframe``."""

    model_config = ConfigDict(frozen=True)

    day_open_ms: int
    high: float
    low: float
    timeframe: str


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
    # Added after journal v3: a context journaled before them reads back with none.
    recent: RecentCandles = RecentCandles()
    swing_highs: Swings = Swings()
    swing_lows: Swings = Swings()


class Context(BaseModel):
    """What one cycle knows about the market when it starts."""

    symbol: str
    exchange: str
    as_of: int
    last_price: float
    simulated: bool
    primary_timeframe: str
    timeframes: dict[str, TimeframeSnapshot]
    previous_day: DayRange | None = None
    """The last whole UTC day before ``as_of``; None when no timeframe's window covers it (or in a
    context journaled before it was kept)."""

    @property
    def primary_atr(self) -> float | None:
        """ATR 14 of the primary timeframe: the yardstick for the profile's limits in ATRs."""
        snapshot = self.timeframes.get(self.primary_timeframe)
        return snapshot.atr_14 if snapshot is not None else None
