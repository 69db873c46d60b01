"""A tape in memory: what a run sees, frozen, and the market source that replays it.

A tape holds the candles of one symbol on every timeframe a run needs (warm-up included), the
moments its cycles stand at, and the settings that shape those cycles. Its hash is over its content
(``tape.file.content_hash``), so two tapes with the same hash are the same benchmark.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import numpy as np
import pandas as pd

from rez_cli.clock import iso
from rez_cli.config.settings import Settings
from rez_cli.errors import DataNotFound, UsageError
from rez_cli.market.candles import COLUMNS, LATEST_MS, PRICE_COLUMNS, resample
from rez_cli.timeframes import timeframe_ms

DAY_MS = 86_400_000


@dataclass(frozen=True)
class TapeMeta:
    """What a tape is of, and how a run over it is shaped.

    ``moments`` are the cycle moments (ms, ascending): a regular grid for ``rez tape record``, the
    live cycles' moments for ``rez tape from-journal``. ``warmup`` is ``[market] candles`` when the
    tape was made: every timeframe holds that many candles before the first moment.
    ``origin`` says how the tape was made (``record``, ``journal``, or ``altered``), ``derived_from``
    the hash of the tape an altered copy was made from, ``alteration`` what was changed.
    """

    symbol: str
    exchange: str
    simulated: bool
    timeframe: str
    context_timeframes: tuple[str, ...]
    every: int
    start_ms: int
    end_ms: int
    moments: tuple[int, ...]
    created_ms: int
    warmup: int
    seed: int
    origin: str = "record"
    derived_from: str | None = None
    alteration: Mapping[str, Any] = field(default_factory=dict)

    @property
    def timeframes(self) -> list[str]:
        """The primary timeframe and the context ones, finest first, each once."""
        return sorted({self.timeframe, *self.context_timeframes}, key=timeframe_ms)

    def to_json(self) -> dict[str, Any]:
        return {
            "symbol": self.symbol,
            "exchange": self.exchange,
            "simulated": self.simulated,
            "timeframe": self.timeframe,
            "context_timeframes": list(self.context_timeframes),
            "every": self.every,
            "start_ms": self.start_ms,
            "end_ms": self.end_ms,
            "moments": list(self.moments),
            "created_ms": self.created_ms,
            "settings": {"market": {"candles": self.warmup, "seed": self.seed}},
            "origin": self.origin,
            "derived_from": self.derived_from,
            "alteration": dict(self.alteration),
        }


@dataclass(frozen=True)
class Tape:
    """One frozen market: ``meta``, the candles per timeframe, and the content hash (``sha256:...``).

    Build one with ``Tape.of`` (which computes the hash); ``load_tape`` checks it on every load.
    The frames are shared, not copied: treat them as read-only.
    """

    meta: TapeMeta
    frames: dict[str, pd.DataFrame]
    hash: str

    @classmethod
    def of(cls, meta: TapeMeta, frames: Mapping[str, pd.DataFrame]) -> Tape:
        """A tape of these frames (canonical columns, int64 times, float64 prices), hashed."""
        from rez_cli.tape.file import content_hash, document

        canonical = {timeframe: _canonical(frames[timeframe]) for timeframe in meta.timeframes}
        return cls(meta, canonical, content_hash(document(meta, canonical)))

    def source(self) -> TapeSource:
        """A ``MarketSource`` over the tape's frames: only candles closed by ``until_ms`` exist."""
        return TapeSource(self)

    def apply(self, settings: Settings) -> Settings:
        """``settings`` with the tape's timeframes, warm-up and seed: a run over it sees what was recorded."""
        shaped = settings.with_timeframes(self.meta.timeframe, list(self.meta.context_timeframes))
        market = shaped.market.model_copy(update={"candles": self.meta.warmup, "seed": self.meta.seed})
        return shaped.model_copy(update={"market": market})

    def altered(self, *, symbol: str | None = None, price_scale: float = 1.0, shift_years: int = 0) -> Tape:
        """An altered copy, for telling memory from reasoning: same shapes, different surface.

        Args:
            symbol: the symbol it is shown as (``ASSET/USD``).
            price_scale: open, high, low and close times this constant (volume is left as it is).
            shift_years: every timestamp and moment moved by this many calendar years, as one shift
                of whole days: the days from 1 January of the first candle's year to 1 January of
                that year plus ``shift_years`` (365 or 366 a year). Dates land on the same day of the
                year or one off, the candle grid of every timeframe up to 1d is kept, and weekdays
                change.

        Raises:
            UsageError: a scale that is not a finite positive number, or a shift beyond 1970..9999.
        """
        if not (math.isfinite(price_scale) and price_scale > 0):
            raise UsageError(f"a price scale must be a finite number above 0, got {price_scale!r}")
        shift_ms = self.shift_ms(shift_years)
        frames: dict[str, pd.DataFrame] = {}
        for timeframe, frame in self.frames.items():
            out = frame.copy()
            out["timestamp"] = out["timestamp"] + shift_ms
            if price_scale != 1.0:
                with np.errstate(over="ignore", under="ignore"):
                    scaled = out[PRICE_COLUMNS].to_numpy() * price_scale
                if not np.isfinite(scaled).all() or (scaled <= 0).any():
                    raise UsageError(f"prices times {price_scale!r} are not finite positive numbers")
                out[PRICE_COLUMNS] = scaled
            frames[timeframe] = out
        meta = self.meta
        alteration = {
            "renamed": symbol is not None and symbol != meta.symbol,
            "price_scale": price_scale,
            "shift_years": shift_years,
            "shift_days": shift_ms // DAY_MS,
        }
        altered_meta = replace(
            meta,
            symbol=symbol or meta.symbol,
            start_ms=meta.start_ms + shift_ms,
            end_ms=meta.end_ms + shift_ms,
            moments=tuple(moment + shift_ms for moment in meta.moments),
            origin="altered",
            derived_from=meta.derived_from or self.hash,
            alteration=alteration,
        )
        return Tape.of(altered_meta, frames)

    def shift_ms(self, years: int) -> int:
        """The whole-day shift ``altered(shift_years=years)`` applies (see there).

        Raises:
            UsageError: the shifted tape would begin before 1970 or end after 9999.
        """
        if years == 0:
            return 0
        first = min(
            (int(frame["timestamp"].iloc[0]) for frame in self.frames.values() if len(frame)), default=0
        )
        year = datetime.fromtimestamp(first / 1000, tz=UTC).year
        if not 1970 <= year + years <= 9999:
            raise UsageError(f"cannot shift a tape of {year} by {years} years: it must stay in 1970..9999")
        days = (datetime(year + years, 1, 1, tzinfo=UTC) - datetime(year, 1, 1, tzinfo=UTC)).days
        shift = days * DAY_MS
        last = max(
            self.meta.end_ms,
            *(int(frame["timestamp"].iloc[-1]) for frame in self.frames.values() if len(frame)),
        )
        if first + shift < 0 or last + shift > LATEST_MS:
            raise UsageError(f"cannot shift this tape by {years} years: it must stay in 1970..9999")
        return shift


def _canonical(frame: pd.DataFrame) -> pd.DataFrame:
    out = frame[COLUMNS].reset_index(drop=True).astype(dict.fromkeys(COLUMNS, "float64"))
    out["timestamp"] = frame["timestamp"].to_numpy(dtype=np.int64)
    return out


class TapeSource:
    """The tape as a ``MarketSource``: named ``tape``, cut by close time as a live fetch is.

    A timeframe the tape does not hold (a model asking for ``1d`` indicators) is built from the
    finest tape timeframe it is a whole multiple of, complete candles only, so it has fewer candles
    of warm-up than a recorded one.
    """

    name = "tape"

    def __init__(self, tape: Tape) -> None:
        self.tape = tape
        self.simulated = tape.meta.simulated
        self._frames: dict[str, pd.DataFrame] = dict(tape.frames)
        self._closes: dict[str, np.ndarray[tuple[int], np.dtype[np.int64]]] = {}

    def _frame(self, timeframe: str) -> tuple[pd.DataFrame, np.ndarray[tuple[int], np.dtype[np.int64]]]:
        if timeframe not in self._frames:
            step = timeframe_ms(timeframe)
            bases = [
                tf for tf in self.tape.frames if step > timeframe_ms(tf) and step % timeframe_ms(tf) == 0
            ]
            if not bases:
                held = ", ".join(self.tape.meta.timeframes)
                raise DataNotFound(
                    f"the tape holds no {timeframe} candles of {self.tape.meta.symbol} (it holds {held})",
                    hint="record the tape with that timeframe in --timeframes",
                )
            base = max(bases, key=timeframe_ms)
            self._frames[timeframe] = resample(self.tape.frames[base], base, timeframe)
        if timeframe not in self._closes:
            frame = self._frames[timeframe]
            self._closes[timeframe] = frame["timestamp"].to_numpy(dtype=np.int64) + timeframe_ms(timeframe)
        return self._frames[timeframe], self._closes[timeframe]

    def cut(self, timeframe: str, limit: int, until_ms: int) -> pd.DataFrame:
        """The last ``limit`` candles of ``timeframe`` closed by ``until_ms``.

        Raises:
            DataNotFound: none had closed by then, or the timeframe cannot be had from the tape.
        """
        frame, closes = self._frame(timeframe)
        end = int(np.searchsorted(closes, until_ms, side="right"))
        if end == 0:
            raise DataNotFound(
                f"the tape has no {timeframe} candle of {self.tape.meta.symbol} closed by {iso(until_ms)}",
                hint=f"it starts at {iso(int(closes[0]) - timeframe_ms(timeframe))}" if len(closes) else None,
            )
        return frame.iloc[max(0, end - max(limit, 0)) : end].reset_index(drop=True)

    async def fetch(
        self, symbol: str, timeframes: Sequence[str], limit: int, *, until_ms: int | None = None
    ) -> dict[str, pd.DataFrame]:
        """``MarketSource.fetch`` over the tape; ``until_ms`` None is the tape's end.

        Raises:
            UsageError: another symbol than the tape's.
            DataNotFound: no candle of a timeframe closed by ``until_ms``.
        """
        if symbol != self.tape.meta.symbol:
            raise UsageError(f"the tape holds {self.tape.meta.symbol}, not {symbol}")
        until = self.tape.meta.end_ms if until_ms is None else until_ms
        return {timeframe: self.cut(timeframe, limit, until) for timeframe in timeframes}

    async def close(self) -> None:
        return None
